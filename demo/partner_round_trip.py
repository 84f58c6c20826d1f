"""A paid delivery order going to the demo's courier and coming back shipped and delivered,
played over HTTP against a running ``make demo`` (standard library only):

    python demo/partner_round_trip.py            # DEMO_PORT, WECHAT_SANDBOX_PORT and
                                                 # PARTNER_SANDBOX_PORT as make demo reads them

A sandbox WeChat user logs in to the shop, buys a bag of apples at 静安寺店 (SH001, a store
that does not ship parcels itself) for delivery, and pays on the WeChat Pay sandbox, whose
notify marks the order paid. The routing rule of ``partner_demo_setup`` gives the order to
"闪送同城配送 (沙箱)": the worker pushes ``order.paid`` to the partner sandbox, which posts a
shipment and then a delivery event to the partner API. The script prints each status as the
shop sees it, with the seconds since payment, and exits 1 if the order is not delivered in time
(``--timeout``; a freshly seeded demo's worker first works through the seed's outbox events).
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

SHOPPER = "oSbx5t1_LinXiaomei00000000001"  # 林晓梅, a user of the WeChat sandbox
STORE = "SH001"
ADDRESS = {
    "name": "林晓梅",
    "mobile": "13800138000",
    "province": "上海市",
    "city": "上海市",
    "district": "静安区",
    "detail": "南京西路1601号 越洋广场 12楼",
    "latitude": "31.224500",
    "longitude": "121.451300",
}


class Client:
    def __init__(self, base: str, token: str = ""):
        self.base = base.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Accept": "application/json", "Accept-Language": "en"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base + path, data, headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as refused:
            text = refused.read().decode("utf-8", "replace")[:500]
            raise SystemExit(f"{method} {self.base}{path}: HTTP {refused.code} {text}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default=f"http://127.0.0.1:{os.environ.get('DEMO_PORT', '8000')}")
    parser.add_argument(
        "--wechat", default=f"http://127.0.0.1:{os.environ.get('WECHAT_SANDBOX_PORT', '8766')}"
    )
    parser.add_argument(
        "--partner", default=f"http://127.0.0.1:{os.environ.get('PARTNER_SANDBOX_PORT', '8767')}"
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to delivery")
    args = parser.parse_args()

    wechat = Client(args.wechat)
    shop = Client(args.demo + "/api/shop/v1")
    code = wechat.call("POST", "/sandbox/codes", {"openid": SHOPPER})["code"]
    shop.token = shop.call("POST", "/login/", {"code": code})["token"]

    # Closed stores too: the demo runs at any hour, and delivery orders are taken around the clock.
    home = shop.call("GET", "/home/?lat=31.2243&lng=121.4513&include_closed=true")
    store = next(s for s in home["stores"] if s["code"] == STORE)
    shop.call("PUT", "/cart/store/", {"store": store["id"]})
    products = shop.call("GET", f"/products/?store={store['id']}")["results"]
    sku = next(s for p in products for s in p["skus"] if s["available_online"] >= 1)
    shop.call("PUT", f"/cart/lines/{sku['id']}/", {"quantity": 1})
    address = shop.call("POST", "/addresses/", ADDRESS)
    order = shop.call(
        "POST",
        "/checkout/",
        {
            "fulfilment": "delivery",
            "address_id": address["id"],
            "skus": [sku["id"]],
            "client_reference": f"partner-round-trip-{time.time_ns()}",
        },
    )
    number = order["number"]
    paying = shop.call("POST", f"/orders/{number}/pay/")
    print(f"order {number}: {sku['code']} at {STORE} for delivery, {order['status']}", flush=True)
    wechat.call("POST", "/sandbox/pay/v3/pay", {"out_trade_no": paying["out_trade_no"]})

    started = time.monotonic()
    seen = ""
    paid_at = None
    while time.monotonic() - started < args.timeout:
        status = shop.call("GET", f"/orders/{number}/")["status"]
        if status != seen:
            now = time.monotonic()
            if status == "paid" or (paid_at is None and status != "pending_payment"):
                paid_at = now
            since = f"+{now - paid_at:5.1f}s" if paid_at is not None else "      "
            print(f"{time.strftime('%H:%M:%S')} {since} {status}", flush=True)
            seen = status
        if status in ("delivered", "completed"):
            pushes = Client(args.partner).call("GET", "/sandbox/pushes")
            mine = [p for p in pushes["pushes"] if p["order_number"] == number]
            callbacks = [
                f"{c['kind']} {c['attempts'][-1]['status']}"
                for c in pushes["callbacks"]
                if c["order_number"] == number and c["attempts"]
            ]
            print(
                f"partner sandbox: pushes {[p['event_type'] for p in mine]}, callbacks {callbacks}"
            )
            return 0
        time.sleep(0.5)
    print(f"order {number} is still {seen} after {args.timeout:.0f}s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
