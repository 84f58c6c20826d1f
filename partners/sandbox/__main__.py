"""``python -m partners.sandbox --port 8767 --secret <s> --api-base <url> --api-key <k>``: the
partner sandbox on its own port."""

import argparse
import logging
import sys

from partners.sandbox.core import Sandbox
from partners.sandbox.server import SandboxServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m partners.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8767, help="0 picks a free port")
    parser.add_argument("--secret", required=True, help="the signing secret we push with")
    parser.add_argument("--api-base", help="our base URL; without it no callbacks are made")
    parser.add_argument("--api-key", help="the partner API key the callbacks send")
    parser.add_argument("--ship-delay", type=float, default=2.0, help="seconds to the shipment")
    parser.add_argument(
        "--deliver-delay", type=float, default=5.0, help="seconds from shipment to delivery"
    )
    parser.add_argument("--carrier-code", default="SF")
    parser.add_argument("--tolerance", type=int, default=300, help="timestamp tolerance, s")
    parser.add_argument("--quiet", action="store_true", help="log only warnings")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stdout,
    )
    sandbox = Sandbox(
        secret=args.secret,
        api_base=args.api_base,
        api_key=args.api_key,
        ship_delay=args.ship_delay,
        deliver_delay=args.deliver_delay,
        carrier_code=args.carrier_code,
        tolerance=args.tolerance,
    )
    server = SandboxServer(sandbox, host=args.host, port=args.port)
    print(f"Partner sandbox: pushes to {server.url}pushes, log on {server.url}sandbox/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
