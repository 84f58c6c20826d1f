"""Hot-SKU storm: many buyers reserve the last units of one SKU in one store at once.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retail .venv/bin/python bench/hot_sku_storm.py
        [--buyers 500] [--units 50] [--workers 32]

It creates and migrates a scratch database beside the one DATABASE_URL names (``<name>_bench``;
that one is never touched), stocks ``--units`` units, then ``--workers`` threads, each with its
own connection, fire ``--buyers`` one-unit ``stock_reserve`` calls with distinct order lines.
In the same run it measures the ceiling: the same threads firing the same number of bare
guarded UPDATEs on one stock row, each its own autocommit transaction. It prints a table and
one JSON line, drops the scratch database, and exits 1 if anything was oversold or failed.
Figures and their meaning: docs/performance.md.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, SimpleQueue
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The bench signs nothing; DEBUG on lets the settings load without a SECRET_KEY.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retail.settings")
os.environ.setdefault("DEBUG", "1")

WON = "won"
REFUSED = "refused"
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql", "postgis"}


@dataclass
class Storm:
    outcomes: Counter
    latencies_s: list[float]
    wall_s: float
    # From the start until the last successful call returned: the units are gone by then, and
    # what follows is refusals only.
    last_win_s: float

    @property
    def attempts(self) -> int:
        return sum(self.outcomes.values())

    @property
    def won(self) -> int:
        return self.outcomes[WON]

    @property
    def refused(self) -> int:
        return self.outcomes[REFUSED]

    @property
    def errors(self) -> int:
        return self.attempts - self.won - self.refused

    def figures(self, *, units: int) -> dict:
        cuts = statistics.quantiles(self.latencies_s, n=100, method="inclusive")
        return {
            "attempts": self.attempts,
            "won": self.won,
            "refused": self.refused,
            "errors": self.errors,
            "error_kinds": {k: v for k, v in self.outcomes.items() if k not in (WON, REFUSED)},
            "oversold": max(self.won - units, 0),
            "wall_s": round(self.wall_s, 3),
            "last_win_s": round(self.last_win_s, 3),
            "won_per_s": round(self.won / self.last_win_s, 1) if self.won else 0.0,
            "attempts_per_s": round(self.attempts / self.wall_s, 1),
            "p50_ms": round(cuts[49] * 1000, 2),
            "p99_ms": round(cuts[98] * 1000, 2),
        }


def storm(call: Callable[[int], str], *, attempts: int, workers: int) -> Storm:
    """Run ``call(0) .. call(attempts - 1)`` from ``workers`` threads released together; each
    thread connects before the start, so the clock measures queries, not handshakes."""
    from django.db import connection

    pending: SimpleQueue[int] = SimpleQueue()
    for attempt in range(attempts):
        pending.put(attempt)
    start = threading.Barrier(workers)
    lock = threading.Lock()
    outcomes: Counter = Counter()
    latencies: list[float] = []
    spans: list[tuple[float, float]] = []
    wins_returned_at: list[float] = []

    def worker() -> None:
        mine: list[tuple[str, float, float]] = []
        try:
            connection.ensure_connection()
            start.wait(timeout=60)
            began = time.perf_counter()
            while True:
                try:
                    attempt = pending.get_nowait()
                except Empty:
                    break
                called = time.perf_counter()
                try:
                    outcome = call(attempt)
                except Exception as failure:
                    outcome = type(failure).__name__
                returned = time.perf_counter()
                mine.append((outcome, returned - called, returned))
            ended = time.perf_counter()
        finally:
            connection.close()
        with lock:
            outcomes.update(outcome for outcome, _, _ in mine)
            latencies.extend(latency for _, latency, _ in mine)
            wins_returned_at.extend(at for outcome, _, at in mine if outcome == WON)
            spans.append((began, ended))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for running in [pool.submit(worker) for _ in range(workers)]:
            running.result()
    started = min(begin for begin, _ in spans)
    return Storm(
        outcomes=outcomes,
        latencies_s=latencies,
        wall_s=max(end for _, end in spans) - started,
        last_win_s=max(wins_returned_at, default=started) - started,
    )


def stocked_item(*, store_id: int, sku_code: str, number: int, units: int):
    from inventory.models import StockItem
    from inventory.services import StockLine, stock_receive
    from retail.models import SKU, Category, Product
    from retail.validators import gtin_check_digit

    category, _ = Category.objects.get_or_create(code="BENCH", defaults={"name": "压测"})
    product = Product.objects.create(code=f"P-{sku_code}", name="压测商品", category=category)
    barcode_body = f"69{number:010d}"
    sku = SKU.objects.create(
        product=product,
        code=sku_code,
        barcode=f"{barcode_body}{gtin_check_digit(barcode_body)}",
        price_fen=100,
    )
    stock_receive(
        store=store_id, lines=[StockLine(sku.pk, units)], idempotency_key=f"bench-{sku_code}"
    )
    return StockItem.objects.get(store_id=store_id, sku=sku)


def run(*, buyers: int, units: int, workers: int) -> dict:
    from django.db import connection

    from inventory.models import Reservation
    from inventory.services import ReserveLine, stock_reserve
    from retail.errors import BusinessError
    from retail.models import Store

    store = Store.objects.create(
        code="BENCH",
        name="压测门店",
        province="上海市",
        city="上海市",
        district="静安区",
        address="南京西路1618号",
        latitude=31.2235,
        longitude=121.4459,
    )
    hot = stocked_item(store_id=store.pk, sku_code="HOT-SERVICE", number=1, units=units)
    ceiling_row = stocked_item(store_id=store.pk, sku_code="HOT-RAW", number=2, units=units)

    def reserve_one(attempt: int) -> str:
        try:
            stock_reserve(store=store.pk, lines=[ReserveLine(hot.sku_id, 1, f"BENCH/{attempt}")])
        except BusinessError as refused:
            return REFUSED if refused.code == "insufficient_stock" else refused.code
        return WON

    def guarded_update(attempt: int) -> str:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE inventory_stockitem SET reserved = reserved + 1"
                " WHERE id = %s AND on_hand - reserved >= 1",
                [ceiling_row.pk],
            )
            return WON if cursor.rowcount == 1 else REFUSED

    service = storm(reserve_one, attempts=buyers, workers=workers)
    ceiling = storm(guarded_update, attempts=buyers, workers=workers)

    hot.refresh_from_db()
    ceiling_row.refresh_from_db()
    service_figures = service.figures(units=units)
    ceiling_figures = ceiling.figures(units=units)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        [server_version] = cursor.fetchone()
    return {
        "bench": "hot_sku_storm",
        "date": time.strftime("%Y-%m-%d"),
        "postgresql": server_version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "buyers": buyers,
        "units": units,
        "workers": workers,
        "service": service_figures,
        "raw_update": ceiling_figures,
        "ratio_attempts_per_s": round(
            service_figures["attempts_per_s"] / ceiling_figures["attempts_per_s"], 3
        ),
        "books": {
            "on_hand": hot.on_hand,
            "reserved": hot.reserved,
            "reservations": Reservation.objects.filter(stock_item=hot).count(),
            "raw_on_hand": ceiling_row.on_hand,
            "raw_reserved": ceiling_row.reserved,
        },
    }


def books_balance(result: dict) -> bool:
    """Nothing oversold or failed, and the stock rows agree with what the callers were told."""
    service, raw, books = result["service"], result["raw_update"], result["books"]
    return (
        service["oversold"] == raw["oversold"] == 0
        and service["errors"] == raw["errors"] == 0
        and books["reserved"] == books["reservations"] == service["won"] <= books["on_hand"]
        and books["raw_reserved"] == raw["won"] <= books["raw_on_hand"]
    )


def print_table(result: dict) -> None:
    service, raw = result["service"], result["raw_update"]
    print(
        f"hot-SKU storm {result['date']}: {result['buyers']} buyers, {result['units']} units, "
        f"{result['workers']} threads; PostgreSQL {result['postgresql']}, "
        f"Python {result['python']}, {result['cpus']} CPUs"
    )
    rows = [
        ("won", "won"),
        ("refused (insufficient_stock)", "refused"),
        ("other errors", "errors"),
        ("oversold", "oversold"),
        ("wall time (s)", "wall_s"),
        ("last unit taken after (s)", "last_win_s"),
        ("won per second (until then)", "won_per_s"),
        ("attempts per second", "attempts_per_s"),
        ("latency p50 (ms)", "p50_ms"),
        ("latency p99 (ms)", "p99_ms"),
    ]
    print(f"{'':30}{'stock_reserve':>16}{'guarded UPDATE':>16}")
    for label, key in rows:
        print(f"{label:30}{service[key]:>16}{raw[key]:>16}")
    books = result["books"]
    print(
        f"books: on_hand {books['on_hand']}, reserved {books['reserved']}, "
        f"reservations {books['reservations']}"
    )
    print(f"service / raw UPDATE attempts per second: {result['ratio_attempts_per_s']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=500, help="concurrent one-unit reservations")
    parser.add_argument("--units", type=int, default=50, help="units on hand before the storm")
    parser.add_argument("--workers", type=int, default=32, help="threads, one connection each")
    args = parser.parse_args()
    if min(args.buyers, args.units, args.workers) < 1:
        parser.error("--buyers, --units and --workers must be at least 1")

    url = urlsplit(os.environ.get("DATABASE_URL", ""))
    if url.scheme not in POSTGRES_SCHEMES:
        print(
            "hot_sku_storm needs PostgreSQL: SQLite takes one write lock for the whole file, so "
            "there is no row-level race to measure. Set DATABASE_URL, e.g.\n"
            "  DATABASE_URL=postgres://postgres@127.0.0.1:5432/retail "
            ".venv/bin/python bench/hot_sku_storm.py",
            file=sys.stderr,
        )
        return 2

    import django

    django.setup()
    from django.db import connection

    # Django's test-database machinery creates, migrates and drops the scratch database; the
    # database DATABASE_URL names is only used to reach the server.
    main_database = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = f"{main_database}_bench"
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        result = run(buyers=args.buyers, units=args.units, workers=args.workers)
    finally:
        connection.creation.destroy_test_db(main_database, verbosity=0)

    print_table(result)
    print(json.dumps(result, ensure_ascii=False))
    return 0 if books_balance(result) else 1


if __name__ == "__main__":
    sys.exit(main())
