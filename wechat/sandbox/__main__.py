"""``python -m wechat.sandbox --port 8766``: the WeChat sandbox on its own port."""

import argparse
import logging
import sys
from pathlib import Path

from wechat.sandbox.core import Sandbox
from wechat.sandbox.data import DEFAULT_USERS, SANDBOX_APP_ID, SANDBOX_APP_SECRET, load_users
from wechat.sandbox.server import SandboxServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wechat.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766, help="0 picks a free port")
    parser.add_argument("--app-id", default=SANDBOX_APP_ID)
    parser.add_argument("--app-secret", default=SANDBOX_APP_SECRET)
    parser.add_argument("--users", type=Path, help="JSON list of WeChat users (see data.py)")
    parser.add_argument("--max-calls", type=int, default=1000, help="calls kept in memory")
    parser.add_argument("--quiet", action="store_true", help="do not log every call")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stdout,
    )
    sandbox = Sandbox(
        app_id=args.app_id,
        app_secret=args.app_secret,
        users=load_users(args.users) if args.users else DEFAULT_USERS,
        max_calls=args.max_calls,
    )
    server = SandboxServer(sandbox, host=args.host, port=args.port)
    print(f"WeChat sandbox for app {args.app_id} on {server.url}sandbox/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
