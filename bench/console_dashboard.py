"""Console dashboard at scale: how long one store's dashboard (and HQ's all-stores view) takes
to render with 1,000, 10,000 and 50,000 orders in the store, and how many queries it costs.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retail .venv/bin/python \\
        bench/console_dashboard.py [--sizes 1000,10000,50000] [--renders 20]

It creates and migrates a scratch database beside the one DATABASE_URL names
(``<name>_dashbench``; that one is never touched; on SQLite an in-memory database). The
measured store gets orders spread evenly over the last 60 days in every channel (the last
three hours' online orders waiting to ship, to be prepared or picked up, older ones done, one
in twenty partly refunded, one in twenty-five never paid), each with a timeline event and two
outbox events delivered to two subscribers (0.5% failing, 0.1% dead); a second store gets half
as many, so the filters have something to leave out; the store has 300 stock items, a third
of them short. Sizes grow in place (1k, then 9k more, then 40k more), with ``ANALYZE`` after each
load on PostgreSQL. At each size the page is rendered ``--renders`` times through Django's test
client after two warm-up renders: median and p90 milliseconds, the number of queries and the
slowest query; then the same after rebuilding the daily sales roll-up
(``orders.sales_rollup``), whose closed days the page then reads instead of the orders. It
prints a table, the ratio of the largest size's median to the smallest's, and one JSON line,
drops the scratch database, and exits 1 if the number of queries changed with the number of
orders.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The bench signs nothing; DEBUG on lets the settings load without a SECRET_KEY.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retail.settings")
os.environ.setdefault("DEBUG", "1")

POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql", "postgis"}
SUBSCRIBERS = ("wechat_sync", "partner_pushes")
DAYS = 60
STOCK_ITEMS = 300
BATCH = 5000


class QueryClock:
    """An execute wrapper that times every query of a render."""

    def __init__(self) -> None:
        self.queries: list[tuple[float, str]] = []

    def __call__(self, execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((time.perf_counter() - began, sql))


def make_store(code: str, name: str):
    from retail.models import Store

    return Store.objects.create(
        code=code,
        name=name,
        province="上海市",
        city="上海市",
        district="静安区",
        address="南京西路1618号",
        latitude=31.2235,
        longitude=121.4459,
        offers_pickup=True,
        offers_ship_from_store=True,
        offers_counter_sales=True,
    )


def make_stock(store) -> None:
    from inventory.models import StockItem
    from retail.models import SKU, Category, Product
    from retail.validators import gtin_check_digit

    category = Category.objects.create(code="BENCH", name="压测")
    items = []
    for n in range(STOCK_ITEMS):
        product = Product.objects.create(code=f"P-{n:04d}", name=f"压测商品{n}", category=category)
        body = f"69{n:010d}"
        sku = SKU.objects.create(
            product=product,
            code=f"SKU-{n:04d}",
            barcode=f"{body}{gtin_check_digit(body)}",
            price_fen=990,
        )
        short = n % 3 == 0
        items.append(
            StockItem(store=store, sku=sku, on_hand=1 if short else 50, safety_stock=5, pack_size=6)
        )
    StockItem.objects.bulk_create(items)


def add_orders(store, *, start: int, count: int, now) -> None:
    """``count`` more orders of ``store`` (numbers from ``start``), evenly over the last
    ``DAYS`` days, with a timeline event each and two outbox events of two deliveries each."""
    from orders.models import ActorKind, Channel, Fulfilment, Order, OrderEvent, OrderStatus
    from retail.models import OutboxDelivery, OutboxEvent

    S = OrderStatus
    # (channel, fulfilment) by weight.
    kinds = (
        [(Channel.COUNTER, Fulfilment.COUNTER)] * 8
        + [(Channel.MINI_SHOP, Fulfilment.DELIVERY)] * 4
        + [(Channel.MINI_SHOP, Fulfilment.PICKUP)] * 3
        + [(Channel.H5, Fulfilment.PICKUP)] * 2
        + [(Channel.H5, Fulfilment.DELIVERY)] * 1
        + [(Channel.PARTNER, Fulfilment.DELIVERY)] * 1
    )
    window_minutes = DAYS * 24 * 60
    for first in range(start, start + count, BATCH):
        orders = []
        routed = set()
        for i in range(first, min(first + BATCH, start + count)):
            channel, fulfilment = kinds[i % len(kinds)]
            total = 100 + (i * 7919) % 30000
            minutes_ago = (i * 7919) % window_minutes
            paid_at = now - timedelta(minutes=minutes_ago)
            # What a real store looks like: the last three hours' online orders still wait
            # (to ship, to prepare, for the shopper), older ones are done; one in 25 orders
            # was never paid (cancelled, or still pending if recent).
            if i % 25 == 7:
                status = S.PENDING_PAYMENT if minutes_ago < 30 else S.CANCELLED
                paid_at = None
            elif fulfilment == Fulfilment.COUNTER:
                status = S.COMPLETED
            elif minutes_ago < 180:
                if fulfilment == Fulfilment.DELIVERY:
                    status = S.PAID
                    if i % 4 == 0:
                        routed.add(i)
                else:
                    status = S.READY_FOR_PICKUP if i % 2 else S.PAID
            else:
                status = S.COMPLETED
            paid = total if paid_at else 0
            orders.append(
                Order(
                    number=f"B{store.pk:02d}{i:011d}",
                    channel=channel,
                    fulfilment=fulfilment,
                    store=store,
                    status=status,
                    client_reference=f"bench-{store.pk}-{i}",
                    subtotal_fen=total,
                    total_fen=total,
                    paid_fen=paid,
                    refunded_fen=paid // 3 if i % 20 == 0 else 0,
                    paid_at=paid_at,
                )
            )
        Order.objects.bulk_create(orders)
        OrderEvent.objects.bulk_create(
            [
                OrderEvent(order=order, kind=kind, actor_kind=ActorKind.SYSTEM)
                for i, order in enumerate(orders, start=first)
                for kind in ("order.created", *(["order.routed"] if i in routed else []))
            ]
        )
        events = OutboxEvent.objects.bulk_create(
            [
                OutboxEvent(
                    event_type=kind,
                    aggregate_type="order",
                    aggregate_id=str(order.pk),
                    payload={"order": {"id": order.pk, "number": order.number}},
                )
                for order in orders
                for kind in ("order.created", "order.paid")
            ]
        )
        deliveries = []
        for event in events:
            for n, subscriber in enumerate(SUBSCRIBERS):
                # 0.1% dead, 0.5% failing: a bad day for one receiver.
                slot = (event.pk * len(SUBSCRIBERS) + n) * 7919 % 1000
                state = "dead" if slot < 1 else "failed" if slot < 6 else "delivered"
                deliveries.append(
                    OutboxDelivery(
                        event=event,
                        subscriber=subscriber,
                        state=state,
                        attempts=12 if state == "dead" else 3 if state == "failed" else 1,
                        attempt_limit=12,
                        last_error="" if state == "delivered" else "HTTP 503",
                        delivered_at=now if state == "delivered" else None,
                    )
                )
        OutboxDelivery.objects.bulk_create(deliveries)


def measure(client, url: str, renders: int) -> dict:
    from django.db import connection

    for _ in range(2):
        assert client.get(url).status_code == 200
    durations = []
    counts = set()
    slowest = (0.0, "")
    for _ in range(renders):
        clock = QueryClock()
        with connection.execute_wrapper(clock):
            began = time.perf_counter()
            response = client.get(url)
            durations.append(time.perf_counter() - began)
        assert response.status_code == 200, response.status_code
        counts.add(len(clock.queries))
        slowest = max(slowest, max(clock.queries))
    cuts = statistics.quantiles(durations, n=10, method="inclusive")
    return {
        "median_ms": round(statistics.median(durations) * 1000, 1),
        "p90_ms": round(cuts[8] * 1000, 1),
        "queries": sorted(counts),
        "slowest_query_ms": round(slowest[0] * 1000, 1),
        "slowest_query": " ".join(slowest[1].split())[:140],
    }


def run(*, sizes: list[int], renders: int) -> dict:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.utils import timezone

    from orders.models import SalesRollupState
    from orders.sales_rollup import sales_rollup
    from retail.models import OutboxDelivery, StaffRole

    setup_test_environment()
    store = make_store("SH001", "静安寺店")
    other = make_store("SH002", "人民广场店")
    make_stock(store)
    manager = User.objects.create_user("bench-manager", is_staff=True)
    StaffRole.objects.create(user=manager, role=StaffRole.Role.STORE_MANAGER, store=store)
    hq = User.objects.create_user("bench-hq", is_staff=True)
    StaffRole.objects.create(user=hq, role=StaffRole.Role.HQ_ADMIN)
    store_client, hq_client = Client(), Client()
    store_client.force_login(manager)
    hq_client.force_login(hq)

    now = timezone.now()
    results = []
    loaded = 0
    for size in sizes:
        began = time.perf_counter()
        add_orders(store, start=loaded, count=size - loaded, now=now)
        add_orders(other, start=loaded // 2, count=size // 2 - loaded // 2, now=now)
        loaded = size
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        load_s = time.perf_counter() - began
        row = {
            "orders_in_store": size,
            "orders_in_all": size + size // 2,
            "outbox_deliveries": OutboxDelivery.objects.count(),
            "load_s": round(load_s, 1),
            "store": measure(store_client, "/console/SH001/dashboard/", renders),
            "all_stores": measure(hq_client, "/console/all/dashboard/", renders),
        }
        # The same pages reading closed days from the daily roll-up (orders.sales_rollup),
        # rebuilt over every order loaded so far; then back to live for the next size.
        began = time.perf_counter()
        sales_rollup(rebuild=True)
        row["rollup_build_s"] = round(time.perf_counter() - began, 2)
        row["store_rolled_up"] = measure(store_client, "/console/SH001/dashboard/", renders)
        row["all_stores_rolled_up"] = measure(hq_client, "/console/all/dashboard/", renders)
        SalesRollupState.objects.all().delete()
        results.append(row)
    server = connection.vendor
    if server == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            server = f"PostgreSQL {cursor.fetchone()[0]}"
    first, last = results[0], results[-1]
    return {
        "bench": "console_dashboard",
        "date": time.strftime("%Y-%m-%d"),
        "database": server,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "renders": renders,
        "sizes": results,
        "ratio_store": round(last["store"]["median_ms"] / first["store"]["median_ms"], 2),
        "ratio_all_stores": round(
            last["all_stores"]["median_ms"] / first["all_stores"]["median_ms"], 2
        ),
        "ratio_store_rolled_up": round(
            last["store_rolled_up"]["median_ms"] / first["store_rolled_up"]["median_ms"], 2
        ),
        "ratio_all_stores_rolled_up": round(
            last["all_stores_rolled_up"]["median_ms"] / first["all_stores_rolled_up"]["median_ms"],
            2,
        ),
    }


def print_table(result: dict) -> None:
    print(
        f"console dashboard {result['date']}: {result['database']}, Python {result['python']}, "
        f"{result['cpus']} CPUs, {result['renders']} renders per figure"
    )
    print(
        f"{'orders':>8}{'deliveries':>12}{'store ms':>10}{'p90':>8}{'queries':>9}"
        f"{'all ms':>9}{'p90':>8}{'queries':>9}"
    )
    for row in result["sizes"]:
        store, every = row["store"], row["all_stores"]
        print(
            f"{row['orders_in_store']:>8}{row['outbox_deliveries']:>12}"
            f"{store['median_ms']:>10}{store['p90_ms']:>8}{','.join(map(str, store['queries'])):>9}"
            f"{every['median_ms']:>9}{every['p90_ms']:>8}{','.join(map(str, every['queries'])):>9}"
        )
    print("with the daily roll-up (closed days from orders.DailySales):")
    print(
        f"{'orders':>8}{'built s':>9}{'store ms':>10}{'p90':>8}{'queries':>9}{'all ms':>9}"
        f"{'p90':>8}"
    )
    for row in result["sizes"]:
        store, every = row["store_rolled_up"], row["all_stores_rolled_up"]
        print(
            f"{row['orders_in_store']:>8}{row['rollup_build_s']:>9}{store['median_ms']:>10}"
            f"{store['p90_ms']:>8}{','.join(map(str, store['queries'])):>9}"
            f"{every['median_ms']:>9}{every['p90_ms']:>8}"
        )
    for row in result["sizes"]:
        for view in ("store", "all_stores", "store_rolled_up", "all_stores_rolled_up"):
            figures = row[view]
            print(
                f"slowest query, {row['orders_in_store']} orders, {view}: "
                f"{figures['slowest_query_ms']} ms: {figures['slowest_query']}"
            )
    print(
        f"median at the largest size / at the smallest: store {result['ratio_store']}, "
        f"all stores {result['ratio_all_stores']}; with the roll-up: store "
        f"{result['ratio_store_rolled_up']}, all stores {result['ratio_all_stores_rolled_up']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="1000,10000,50000", help="orders in the store, growing, comma-separated"
    )
    parser.add_argument("--renders", type=int, default=20, help="timed renders per figure")
    args = parser.parse_args()
    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error("--sizes takes whole numbers separated by commas")
    if not sizes or sizes != sorted(sizes) or sizes[0] < 1 or args.renders < 2:
        parser.error("--sizes must grow from at least 1; --renders must be at least 2")

    import django

    django.setup()
    from django.db import connection

    # Django's test-database machinery creates, migrates and drops the scratch database; the
    # database DATABASE_URL names is only used to reach the server.
    main_database = connection.settings_dict["NAME"]
    if urlsplit(os.environ.get("DATABASE_URL", "")).scheme in POSTGRES_SCHEMES:
        connection.settings_dict["TEST"]["NAME"] = f"{main_database}_dashbench"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        result = run(sizes=sizes, renders=args.renders)
    finally:
        connection.creation.destroy_test_db(main_database, verbosity=0)

    print_table(result)
    print(json.dumps(result, ensure_ascii=False))
    fixed = all(
        len({q for row in result["sizes"] for q in row[view]["queries"]}) == 1
        for view in ("store", "all_stores", "store_rolled_up", "all_stores_rolled_up")
    )
    return 0 if fixed else 1


if __name__ == "__main__":
    sys.exit(main())
