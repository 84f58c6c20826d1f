"""Shop load: shoppers browse the catalogue and check out through the HTTP API, against
PostgreSQL, beside the same server's trivial endpoint as the ceiling.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retail .venv/bin/python bench/shop_load.py
        [--shoppers 40] [--seconds 8] [--web-workers 2] [--threads 4]

It creates and migrates a scratch database beside the one DATABASE_URL names
(``<name>_shopbench``; that one is never touched), seeds the demo chain with stock at SH001,
issues a login token to each shopper, and starts gunicorn on it (``--web-workers`` processes of
``--threads`` threads, DEBUG off, throttles out of the way). Then, for ``--seconds`` each,
``--shoppers`` client threads run one operation as fast as they get answers:

* ``trivial``: ``GET /health/live`` (no database, no cache): the framework's ceiling;
* ``catalogue``: a page of 20 products with availability at the store;
* ``product``: one product with its stock nearby;
* ``checkout``: put two SKUs in the cart, then place a pickup order (the POST is timed; each
  shopper's orders have their own client reference).

It prints a table (requests per second, p50 / p99, non-2xx, 5xx, ratio of requests per second
to ``trivial``) and one JSON line, stops gunicorn, drops the scratch database, and exits 1 on any
5xx. The clients share the 2 CPUs with the server, so the figures are for comparison within one
run. Figures and their meaning: docs/performance.md.
"""

import argparse
import io
import json
import os
import platform
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retail.settings")
os.environ.setdefault("DEBUG", "1")

POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql", "postgis"}
STORE = "SH001"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(shoppers: int) -> dict:
    """Demo data, plenty of stock of the SKUs shoppers buy, and a token per shopper."""
    from django.core.management import call_command

    from inventory.models import StockItem
    from inventory.services import StockLine, stock_receive
    from members.services.identity import member_signup_at_counter
    from retail.models import Store
    from wechat.services.auth import token_issue

    quiet = io.StringIO()
    call_command("seed_demo", verbosity=0, stdout=quiet)
    call_command("seed_demo_stock", stores=STORE, verbosity=0, stdout=quiet)
    store = Store.objects.get(code=STORE)
    items = list(
        StockItem.objects.filter(store=store, sku__active=True, sku__product__active=True)
        .select_related("sku")
        .order_by("sku__code")
    )
    basket = [item.sku for item in items[:20]]
    stock_receive(
        store=store,
        lines=[StockLine(sku, 100_000) for sku in basket],
        idempotency_key="bench:shop-load",
    )
    tokens = []
    for number in range(shoppers):
        member = member_signup_at_counter(
            mobile=f"1390000{number:04d}", name=f"压测{number}", store=store, actor=None
        )
        raw, _token = token_issue(member=member)
        tokens.append(raw)
    return {
        "store": store.pk,
        "skus": [sku.pk for sku in basket],
        "products": sorted({item.sku.product_id for item in items}),
        "tokens": tokens,
    }


def start_server(database_url: str, port: int, workers: int, threads: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SHOP_THROTTLE_CHECKOUT_SHOPPER": "100000/min",
        "SHOP_THROTTLE_CHECKOUT_IP": "100000/min",
        "SHOP_THROTTLE_LOGIN_IP": "100000/min",
    }
    server = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "retail.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--worker-class",
            "gthread",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    import requests

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health/live", timeout=1).ok:
                return server
        except requests.RequestException:
            time.sleep(0.2)
    os.killpg(server.pid, signal.SIGTERM)
    raise SystemExit("gunicorn did not answer within 30 s")


def load(name: str, call: Callable, *, clients: int, seconds: float, tokens: list[str]) -> dict:
    """``clients`` threads, each with its own HTTP session and shopper, call ``call(session,
    state)`` until ``seconds`` have passed; ``call`` returns the timed response."""
    import requests

    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    start = threading.Barrier(clients)
    stop_at: list[float] = []

    def client(index: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {tokens[index % len(tokens)]}"
        session.headers["Accept-Language"] = "zh-hans"
        state = {"index": index, "count": 0, "random": random.Random(index)}
        mine: list[tuple[int, float]] = []
        start.wait(timeout=60)
        if not stop_at:
            stop_at.append(time.perf_counter() + seconds)
        while time.perf_counter() < stop_at[0]:
            began = time.perf_counter()
            try:
                status = call(session, state)
            except requests.RequestException as failure:
                status = type(failure).__name__
            mine.append((status, time.perf_counter() - began))
            state["count"] += 1
        with lock:
            statuses.update(status for status, _ in mine)
            latencies.extend(latency for _, latency in mine)

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    requests_done = len(latencies)
    return {
        "operation": name,
        "requests": requests_done,
        "per_s": round(requests_done / wall, 1),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "non_2xx": sum(n for s, n in statuses.items() if not (isinstance(s, int) and s < 300)),
        "5xx": sum(n for s, n in statuses.items() if isinstance(s, int) and s >= 500),
        "statuses": {str(s): n for s, n in sorted(statuses.items(), key=str)},
    }


def operations(base: str, data: dict) -> dict[str, Callable]:
    store, skus, products = data["store"], data["skus"], data["products"]
    api = f"{base}/api/shop/v1"

    def trivial(session, state) -> int:
        return session.get(f"{base}/health/live", timeout=30).status_code

    def catalogue(session, state) -> int:
        return session.get(
            f"{api}/products/", params={"store": store, "page_size": 20}, timeout=30
        ).status_code

    def product(session, state) -> int:
        chosen = state["random"].choice(products)
        return session.get(
            f"{api}/products/{chosen}/", params={"store": store}, timeout=30
        ).status_code

    def checkout(session, state) -> int:
        if state["count"] == 0:
            session.put(f"{api}/cart/store/", json={"store": store}, timeout=30)
        for sku in state["random"].sample(skus, 2):
            session.put(f"{api}/cart/lines/{sku}/", json={"quantity": 1}, timeout=30)
        return session.post(
            f"{api}/checkout/",
            json={"fulfilment": "pickup", "store": store, "client_reference": uuid.uuid4().hex},
            timeout=30,
        ).status_code

    return {"trivial": trivial, "catalogue": catalogue, "product": product, "checkout": checkout}


def print_table(result: dict) -> None:
    print(
        f"shop load {result['date']}: {result['shoppers']} shoppers × {result['seconds']} s per "
        f"operation; gunicorn {result['web_workers']} workers × {result['threads']} threads; "
        f"PostgreSQL {result['postgresql']}, Python {result['python']}, {result['cpus']} CPUs"
    )
    header = f"{'operation':<11}{'requests':>9}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}"
    print(header + f"{'non-2xx':>9}{'5xx':>6}{'÷ trivial':>11}")
    for row in result["operations"]:
        print(
            f"{row['operation']:<11}{row['requests']:>9}{row['per_s']:>9}{row['p50_ms']:>9}"
            f"{row['p99_ms']:>9}{row['non_2xx']:>9}{row['5xx']:>6}{row['ratio_to_trivial']:>11}"
        )
    print(f"orders placed: {result['orders_placed']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shoppers", type=int, default=40, help="concurrent client threads")
    parser.add_argument("--seconds", type=float, default=8, help="per operation")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn process")
    args = parser.parse_args()
    if min(args.shoppers, args.web_workers, args.threads) < 1 or args.seconds <= 0:
        parser.error("--shoppers, --web-workers, --threads and --seconds must be positive")

    url = urlsplit(os.environ.get("DATABASE_URL", ""))
    if url.scheme not in POSTGRES_SCHEMES:
        print(
            "shop_load needs PostgreSQL (several server processes share the database). Set "
            "DATABASE_URL, e.g.\n  DATABASE_URL=postgres://postgres@127.0.0.1:5432/retail "
            ".venv/bin/python bench/shop_load.py",
            file=sys.stderr,
        )
        return 2

    import django

    django.setup()
    from django.db import connection

    main_database = connection.settings_dict["NAME"]
    scratch = f"{main_database}_shopbench"
    connection.settings_dict["TEST"]["NAME"] = scratch
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    server = None
    try:
        data = prepare(args.shoppers)
        connection.close()
        port = free_port()
        server = start_server(
            urlunsplit(url._replace(path=f"/{scratch}")), port, args.web_workers, args.threads
        )
        rows = [
            load(name, call, clients=args.shoppers, seconds=args.seconds, tokens=data["tokens"])
            for name, call in operations(f"http://127.0.0.1:{port}", data).items()
        ]
        from orders.models import Order

        orders_placed = Order.objects.count()
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            [server_version] = cursor.fetchone()
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        connection.close()
        connection.creation.destroy_test_db(main_database, verbosity=0)

    ceiling = rows[0]["per_s"]
    for row in rows:
        row["ratio_to_trivial"] = round(row["per_s"] / ceiling, 3) if ceiling else 0.0
    result = {
        "bench": "shop_load",
        "date": time.strftime("%Y-%m-%d"),
        "postgresql": server_version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "shoppers": args.shoppers,
        "seconds": args.seconds,
        "web_workers": args.web_workers,
        "threads": args.threads,
        "operations": rows,
        "orders_placed": orders_placed,
    }
    print_table(result)
    print(json.dumps(result, ensure_ascii=False))
    return 1 if any(row["5xx"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
