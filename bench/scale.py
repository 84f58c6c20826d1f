"""Scale: the reads a chain makes all day, timed on a full-size dataset and on one of 1% of it
(built the same way), to show how their cost grows with the data.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/scale.py \\
        [--fraction 1.0] [--runs 20]

PostgreSQL only. For each size it creates and migrates its own scratch database
(``bench_scale_<pid>_1pct`` and ``bench_scale_<pid>_full``; the database DATABASE_URL names is only
used to reach the server, never touched) and drops it afterwards. Full size (``--fraction`` scales
it down for a quick try): 1,000 stores (GCJ-02 coordinates around 12 cities of the Yangtze delta,
about 400 km end to end; 30% in Shanghai), 5,000 SKUs (2,500 products in 10 categories, EAN-13
barcodes with their GS1 check digits), the 5,000,000 stock rows of every store x SKU (reserved 0,
one in 20 out of stock), 200,000 members, 1,000,000 orders over 90 days (every channel; statuses
by age: the last two days' online orders still open, one in 20 never paid, one in 20 partly
refunded; a pricing breakdown that adds up to the discount) with 1-3 lines each, and the
delivery orders of Shanghai stores routed to one fulfilment partner (PartnerOrder rows). The
rows are written with ``INSERT ... SELECT generate_series`` and ``COPY``, not the ORM, then
``VACUUM ANALYZE``. Stock is inserted without ledger rows: ``inventory_audit`` would report drift
on these databases, which is expected here. There are no outbox rows (``console_dashboard.py``
measures the dashboard against those).

Timed, ``--runs`` times each after two warm-up runs, through Django's test client (or the
selector itself): nearest stores with stock for a 3-SKU basket (``nearest_stores_for_basket``
from central Shanghai), the shop catalogue (first page with a chosen store, and with
``in_stock=true``), the staff order list as HQ and as a store manager, the partner order list,
and the console dashboard of one store and of all stores, after the daily sales roll-up
(``orders.sales_rollup``: its first run is timed, then a run with nothing new), so the
dashboards' past days come from ``DailySales`` and only today from the orders. It prints the
generation and roll-up times, a table (median and p90 ms, queries, at each size, and the
full/1% ratio of the medians) and one JSON line.
"""

import argparse
import io
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retail.settings")
os.environ.setdefault("DEBUG", "1")

POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql", "postgis"}
FULL = {"stores": 1000, "skus": 5000, "members": 200_000, "orders": 1_000_000}
DAYS = 90
# (city, province, GCJ-02 latitude, longitude of the centre, share of the stores)
CITIES = [
    ("上海市", "上海市", 31.2304, 121.4737, 30),
    ("苏州市", "江苏省", 31.2990, 120.5853, 10),
    ("杭州市", "浙江省", 30.2741, 120.1551, 12),
    ("南京市", "江苏省", 32.0603, 118.7969, 10),
    ("无锡市", "江苏省", 31.4912, 120.3119, 6),
    ("宁波市", "浙江省", 29.8683, 121.5440, 6),
    ("合肥市", "安徽省", 31.8206, 117.2272, 6),
    ("常州市", "江苏省", 31.8107, 119.9741, 4),
    ("嘉兴市", "浙江省", 30.7467, 120.7555, 4),
    ("绍兴市", "浙江省", 29.9958, 120.5861, 4),
    ("南通市", "江苏省", 31.9802, 120.8943, 4),
    ("湖州市", "浙江省", 30.8943, 120.0868, 4),
]
SHOPPER = (31.2304, 121.4737)  # People's Square, Shanghai


class QueryClock:
    def __init__(self) -> None:
        self.queries: list[tuple[float, str]] = []

    def __call__(self, execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((time.perf_counter() - began, sql))


def copy_rows(cursor, table: str, columns: list[str], rows) -> None:
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(r"\N" if v is None else str(v) for v in row) + "\n")
    buffer.seek(0)
    cursor.cursor.copy_expert(
        f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT text)", buffer
    )


def generate(sizes: dict) -> dict:
    """Fill the (migrated, empty) scratch database; returns seconds per step."""
    from django.db import connection

    from retail.validators import gtin_check_digit

    rng = random.Random(42)
    timings: dict[str, float] = {}
    n_stores, n_skus = sizes["stores"], sizes["skus"]
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SELECT setseed(0.42)")

        began = time.perf_counter()
        weights = [c[4] for c in CITIES]
        stores = []
        for n in range(1, n_stores + 1):
            # The first store of each city is in its centre; the first store of all in Shanghai.
            city, province, lat, lng, _ = (
                CITIES[n - 1] if n <= len(CITIES) else rng.choices(CITIES, weights)[0]
            )
            spread = 0.0 if n <= len(CITIES) else 0.08  # about 9 km, one standard deviation
            stores.append(
                (
                    f"S{n:04d}",
                    f"{city[:-1]}{n}号店",
                    "store",
                    province,
                    city,
                    "中心区",
                    f"示范路{n}号",
                    "",
                    f"{lat + rng.gauss(0, spread):.6f}",
                    f"{lng + rng.gauss(0, spread):.6f}",
                    "07:00:00",
                    "23:00:00",
                    "t",
                    "t",
                    "t",
                    5000,
                    "t",
                    "now()",
                    "now()",
                )
            )
        copy_rows(
            cursor,
            "retail_store",
            [
                "code",
                "name",
                "kind",
                "province",
                "city",
                "district",
                "address",
                "phone",
                "latitude",
                "longitude",
                "opens_at",
                "closes_at",
                "offers_pickup",
                "offers_ship_from_store",
                "offers_counter_sales",
                "delivery_radius_m",
                "active",
                "created_at",
                "updated_at",
            ],
            stores,
        )
        categories = [(f"C{n:02d}", f"品类{n}", n, "t") for n in range(1, 11)]
        copy_rows(cursor, "retail_category", ["code", "name", "sort_order", "active"], categories)
        cursor.execute("SELECT id FROM retail_category ORDER BY id")
        category_ids = [row[0] for row in cursor.fetchall()]
        n_products = max(1, n_skus // 2)
        copy_rows(
            cursor,
            "retail_product",
            [
                "code",
                "name",
                "category_id",
                "brand",
                "unit",
                "description",
                "active",
                "created_at",
                "updated_at",
            ],
            (
                (
                    f"P{n:05d}",
                    f"商品{n}",
                    category_ids[n % 10],
                    f"品牌{n % 50}",
                    "件",
                    "",
                    "t",
                    "now()",
                    "now()",
                )
                for n in range(n_products)
            ),
        )
        cursor.execute("SELECT id FROM retail_product ORDER BY id")
        product_ids = [row[0] for row in cursor.fetchall()]
        skus = []
        for n in range(n_skus):
            body = f"69{n:010d}"
            skus.append(
                (
                    product_ids[(n // 2) % n_products],
                    f"K{n:05d}",
                    f"{body}{gtin_check_digit(body)}",
                    json.dumps({"规格": "大" if n % 2 else "小"}, ensure_ascii=False),
                    100 + (n * 7919) % 20000,  # the same formula the order lines use below
                    "t",
                    "now()",
                    "now()",
                )
            )
        copy_rows(
            cursor,
            "retail_sku",
            [
                "product_id",
                "code",
                "barcode",
                "attributes",
                "price_fen",
                "active",
                "created_at",
                "updated_at",
            ],
            skus,
        )
        timings["catalogue_and_stores_s"] = time.perf_counter() - began

        began = time.perf_counter()
        cursor.execute(
            """
            INSERT INTO inventory_stockitem (store_id, sku_id, on_hand, reserved, safety_stock,
                lead_time_days, review_days, pack_size, updated_at)
            SELECT s.id, k.id,
                   CASE WHEN random() < 0.05 THEN 0 ELSE 1 + floor(random() * 80)::int END,
                   0, 2, 2, 7, 6, now()
            FROM retail_store s CROSS JOIN retail_sku k
            ORDER BY s.id, k.id
            """
        )
        timings["stock_s"] = time.perf_counter() - began
        print(f"stock rows: {timings['stock_s']:.1f} s", flush=True)

        began = time.perf_counter()
        cursor.execute(
            """
            INSERT INTO members_member (mobile, name, home_store_id, joined_channel,
                points_balance, created_at, updated_at)
            SELECT '13' || lpad(g::text, 9, '0'), '会员' || g,
                   (SELECT min(id) FROM retail_store) + (g * 7919) %% %s,
                   (ARRAY['mini_shop', 'h5', 'counter'])[1 + g %% 3], 0,
                   now() - interval '400 days' * random(), now()
            FROM generate_series(1::bigint, %s) g
            """,
            [n_stores, sizes["members"]],
        )
        timings["members_s"] = time.perf_counter() - began

        began = time.perf_counter()
        cursor.execute(
            """
            CREATE TEMP TABLE kinds AS
            SELECT * FROM (VALUES
              (0, 'counter', 'counter'), (1, 'counter', 'counter'), (2, 'counter', 'counter'),
              (3, 'counter', 'counter'), (4, 'counter', 'counter'), (5, 'counter', 'counter'),
              (6, 'counter', 'counter'), (7, 'counter', 'counter'),
              (8, 'mini_shop', 'delivery'), (9, 'mini_shop', 'delivery'),
              (10, 'mini_shop', 'delivery'), (11, 'mini_shop', 'delivery'),
              (12, 'mini_shop', 'pickup'), (13, 'mini_shop', 'pickup'), (14, 'mini_shop', 'pickup'),
              (15, 'h5', 'pickup'), (16, 'h5', 'pickup'), (17, 'h5', 'delivery'),
              (18, 'partner', 'delivery'), (19, 'mini_shop', 'delivery')
            ) AS t(k, channel, fulfilment)
            """
        )
        # Order g: lines j = 0..(g % 3) of SKU (g * 7919 + j * 104729) % skus, quantity
        # 1 + (g + j) % 3, at that SKU's price; the subtotal is their sum.
        cursor.execute(
            """
            INSERT INTO orders_order (number, channel, fulfilment, store_id, member_id, status,
                client_reference, subtotal_fen, discount_fen, shipping_fen, total_fen, paid_fen,
                refunded_fen, pricing, coupon_code, points_redeemed, address, pickup_code, note,
                expires_at, paid_at, closed_at, created_at, updated_at)
            SELECT 'S' || lpad(g::text, 12, '0'), channel, fulfilment, store_id,
                   CASE WHEN channel = 'counter' AND g %% 3 = 0 THEN NULL ELSE member_id END,
                   status, 'scale-' || g, subtotal, promotion + tier, shipping,
                   subtotal - promotion - tier + shipping,
                   CASE WHEN paid THEN subtotal - promotion - tier + shipping ELSE 0 END,
                   CASE WHEN paid AND g %% 20 = 3 THEN (subtotal - promotion - tier + shipping) / 3
                        ELSE 0 END,
                   jsonb_build_object('promotion_fen', promotion, 'tier_fen', tier,
                        'coupon_fen', 0, 'points_fen', 0, 'shipping_discount_fen', 0),
                   '', 0,
                   CASE WHEN fulfilment = 'delivery' THEN jsonb_build_object(
                        'name', '收货人', 'mobile', '13800000000', 'province', '上海市',
                        'city', '上海市', 'district', '黄浦区',
                        'street', '人民大道' || (g %% 500) || '号')
                        ELSE '{}'::jsonb END,
                   '', '',
                   CASE WHEN status = 'pending_payment' THEN created + interval '15 minutes' END,
                   CASE WHEN paid THEN created + interval '1 minute' END,
                   CASE WHEN status IN ('completed', 'cancelled') THEN created + interval '1 hour'
                   END,
                   created, created + interval '1 hour'
            FROM (
              SELECT g, kinds.channel, kinds.fulfilment, created,
                     st.first + (g * 104729) %% %(stores)s AS store_id,
                     mb.first + (g * 7919) %% %(members)s AS member_id,
                     sub.subtotal,
                     CASE WHEN g %% 5 = 0 THEN sub.subtotal / 10 ELSE 0 END AS promotion,
                     CASE WHEN g %% 4 = 1 THEN sub.subtotal / 50 ELSE 0 END AS tier,
                     CASE WHEN kinds.fulfilment = 'delivery' THEN 600 ELSE 0 END AS shipping,
                     g %% 20 <> 7 AS paid,
                     CASE
                       WHEN g %% 20 = 7 THEN CASE WHEN created > now() - interval '30 minutes'
                                                  THEN 'pending_payment' ELSE 'cancelled' END
                       WHEN kinds.fulfilment = 'counter' THEN 'completed'
                       WHEN created < now() - interval '2 days' THEN 'completed'
                       WHEN kinds.fulfilment = 'delivery' THEN
                         (ARRAY['paid', 'shipped', 'delivered'])[1 + g %% 3]
                       ELSE (ARRAY['paid', 'ready_for_pickup'])[1 + g %% 2]
                     END AS status
              FROM generate_series(1::bigint, %(orders)s) g
              CROSS JOIN (SELECT min(id) AS first FROM retail_store) st
              CROSS JOIN (SELECT min(id) AS first FROM members_member) mb
              JOIN kinds ON kinds.k = g %% 20
              CROSS JOIN LATERAL (
                SELECT now() - interval '%(days)s days' * (1 - g::float8 / %(orders)s) AS created
              ) c
              CROSS JOIN LATERAL (
                SELECT sum((100 + (((g * 7919 + j * 104729) %% %(skus)s) * 7919) %% 20000)
                           * (1 + (g + j) %% 3))::bigint AS subtotal
                FROM generate_series(0, g %% 3) j
              ) sub
            ) o
            """,
            {
                "stores": n_stores,
                "members": sizes["members"],
                "orders": sizes["orders"],
                "skus": n_skus,
                "days": DAYS,
            },
        )
        timings["orders_s"] = time.perf_counter() - began
        print(f"orders: {timings['orders_s']:.1f} s", flush=True)

        began = time.perf_counter()
        cursor.execute(
            """
            INSERT INTO orders_orderline (order_id, sku_id, sku_code, product_name, attributes,
                unit_price_fen, quantity, discount_fen, total_fen, line_key, shipped)
            SELECT o.id, k.first + idx, 'K' || lpad(idx::text, 5, '0'), '商品' || (idx / 2),
                   CASE WHEN idx %% 2 = 1 THEN '{"规格": "大"}' ELSE '{"规格": "小"}' END::jsonb,
                   price, qty, 0, price * qty, 'scale-' || g || '-' || j,
                   o.status IN ('shipped', 'delivered', 'completed') AND o.fulfilment = 'delivery'
            FROM orders_order o
            CROSS JOIN (SELECT min(id) AS first FROM retail_sku) k
            CROSS JOIN LATERAL (SELECT substr(o.number, 2)::bigint AS g) n
            CROSS JOIN LATERAL generate_series(0, g %% 3) j
            CROSS JOIN LATERAL (
              SELECT (g * 7919 + j * 104729) %% %s AS idx, 1 + (g + j) %% 3 AS qty
            ) l
            CROSS JOIN LATERAL (SELECT 100 + (idx * 7919) %% 20000 AS price) p
            """,
            [n_skus],
        )
        timings["order_lines_s"] = time.perf_counter() - began
    return timings


def route_to_partner(partner) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO partners_partnerorder (partner_id, order_id, role, idempotency_key,
                request_digest, acknowledged_at, created_at)
            SELECT %s, o.id, 'fulfil', '', '', o.paid_at + interval '5 minutes', o.paid_at
            FROM orders_order o JOIN retail_store s ON s.id = o.store_id
            WHERE o.fulfilment = 'delivery' AND o.paid_at IS NOT NULL AND s.city = '上海市'
            """,
            [partner.pk],
        )
        return cursor.rowcount


def roll_up(label: str) -> dict:
    """The sales roll-up's first run (the dashboard's 29 closed days), then a run with nothing
    new (what the beat task does every five minutes): the dashboards below read from it."""
    from django.db import connection

    from orders.models import DailySales
    from orders.sales_rollup import sales_rollup

    began = time.perf_counter()
    sales_rollup()
    built_s = time.perf_counter() - began
    began = time.perf_counter()
    sales_rollup()
    again_ms = (time.perf_counter() - began) * 1000
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_dailysales")
    figures = {
        "built_s": round(built_s, 2),
        "rows": DailySales.objects.count(),
        "again_ms": round(again_ms, 1),
    }
    print(
        f"[{label}] roll-up built in {figures['built_s']} s ({figures['rows']} rows); "
        f"a run with nothing new {figures['again_ms']} ms",
        flush=True,
    )
    return figures


def measure(call, runs: int) -> dict:
    from django.db import connection

    for _ in range(2):
        call()
    durations, counts, slowest = [], set(), (0.0, "")
    for _ in range(runs):
        clock = QueryClock()
        with connection.execute_wrapper(clock):
            began = time.perf_counter()
            call()
            durations.append(time.perf_counter() - began)
        counts.add(len(clock.queries))
        slowest = max(slowest, max(clock.queries))
    cuts = statistics.quantiles(durations, n=10, method="inclusive")
    return {
        "median_ms": round(statistics.median(durations) * 1000, 1),
        "p90_ms": round(cuts[8] * 1000, 1),
        "queries": sorted(counts),
        "slowest_query_ms": round(slowest[0] * 1000, 1),
        "slowest_query": " ".join(slowest[1].split())[:160],
    }


def get(client, url: str, **headers):
    def call():
        response = client.get(url, **headers)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
        return response

    return call


def run_size(label: str, sizes: dict, runs: int) -> dict:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from inventory.selectors import nearest_stores_for_basket
    from partners.services import partner_api_key_issue, partner_create
    from retail.models import SKU, StaffRole, Store

    began = time.perf_counter()
    timings = generate(sizes)
    store = Store.objects.get(code="S0001")
    partner, _secret = partner_create(name="速达配送", kind="fulfilment", cities=["上海市"])
    raw_key, _key = partner_api_key_issue(partner=partner)
    routed = route_to_partner(partner)
    step = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    timings["vacuum_analyze_s"] = time.perf_counter() - step
    timings = {name: round(seconds, 1) for name, seconds in timings.items()}
    timings["total_s"] = round(time.perf_counter() - began, 1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        database_mb = round(cursor.fetchone()[0] / 1e6)
        counts = {}
        for table in (
            "retail_store",
            "retail_sku",
            "inventory_stockitem",
            "members_member",
            "orders_order",
            "orders_orderline",
        ):
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    counts["partners_partnerorder"] = routed
    print(f"[{label}] generated in {timings['total_s']} s: {counts}", flush=True)
    rollup = roll_up(label)

    manager = User.objects.create_user("scale-manager", is_staff=True)
    StaffRole.objects.create(user=manager, role=StaffRole.Role.STORE_MANAGER, store=store)
    hq = User.objects.create_user("scale-hq", is_staff=True)
    StaffRole.objects.create(user=hq, role=StaffRole.Role.HQ_ADMIN)
    manager_client, hq_client, anonymous = Client(), Client(), Client()
    manager_client.force_login(manager)
    hq_client.force_login(hq)
    partner_client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    basket = [(sku.pk, 1 + n) for n, sku in enumerate(SKU.objects.order_by("pk")[:3])]

    def nearest():
        return nearest_stores_for_basket(
            latitude=SHOPPER[0], longitude=SHOPPER[1], lines=basket, radius_m=10_000, limit=10
        )

    operations = {
        "nearest_stores_for_basket": nearest,
        "shop_products": get(anonymous, f"/api/shop/v1/products/?store={store.pk}"),
        "shop_products_in_stock": get(
            anonymous, f"/api/shop/v1/products/?store={store.pk}&in_stock=true"
        ),
        "staff_orders_hq": get(hq_client, "/api/staff/v1/orders/"),
        "staff_orders_manager": get(manager_client, "/api/staff/v1/orders/"),
        "partner_orders": get(partner_client, "/api/partner/v1/orders/"),
        "dashboard_store": get(manager_client, f"/console/{store.code}/dashboard/"),
        "dashboard_all": get(hq_client, "/console/all/dashboard/"),
    }
    figures = {}
    for name, call in operations.items():
        figures[name] = measure(call, runs)
        print(f"[{label}] {name}: {figures[name]}", flush=True)
    return {
        "label": label,
        "sizes": sizes,
        "rows": counts,
        "database_mb": database_mb,
        "generation": timings,
        "rollup": rollup,
        "nearest_stores_found": len(nearest()),
        "operations": figures,
    }


def scratch(label: str, sizes: dict, runs: int) -> dict:
    from django.db import connection

    main_database = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = f"bench_scale_{os.getpid()}_{label}"
    began = time.perf_counter()
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    migrate_s = round(time.perf_counter() - began, 1)
    try:
        result = run_size(label, sizes, runs)
        result["migrate_s"] = migrate_s
        return result
    finally:
        connection.creation.destroy_test_db(main_database, verbosity=0)


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def print_table(result: dict) -> None:
    small, full = result["small"], result["full"]
    print(
        f"\nscale {result['date']}: {result['database']}, Python {result['python']}, "
        f"{result['cpus']} CPUs, {result['runs']} runs per figure, load average before "
        f"{result['load_before']} after {result['load_after']}"
    )
    for size in (small, full):
        print(
            f"{size['label']}: {size['rows']}, {size['database_mb']} MB; migrate "
            f"{size['migrate_s']} s, generation {size['generation']}; roll-up built in "
            f"{size['rollup']['built_s']} s ({size['rollup']['rows']} rows), a run with nothing "
            f"new {size['rollup']['again_ms']} ms"
        )
    print(
        f"{'operation':<28}{'1% ms':>9}{'p90':>8}{'q':>4}{'full ms':>10}{'p90':>8}{'q':>4}"
        f"{'ratio':>8}"
    )
    for name, ratio in result["ratios"].items():
        a, b = small["operations"][name], full["operations"][name]
        print(
            f"{name:<28}{a['median_ms']:>9}{a['p90_ms']:>8}{','.join(map(str, a['queries'])):>4}"
            f"{b['median_ms']:>10}{b['p90_ms']:>8}{','.join(map(str, b['queries'])):>4}{ratio:>8}"
        )
    for name, figures in full["operations"].items():
        print(
            f"slowest query at full size, {name}: {figures['slowest_query_ms']} ms: "
            f"{figures['slowest_query']}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fraction", type=float, default=1.0, help="the full size, as a fraction of 1,000 stores"
    )
    parser.add_argument("--runs", type=int, default=20, help="timed runs per figure")
    args = parser.parse_args()
    if not 0 < args.fraction <= 1 or args.runs < 2:
        parser.error("--fraction must be in (0, 1]; --runs at least 2")
    if urlsplit(os.environ.get("DATABASE_URL", "")).scheme not in POSTGRES_SCHEMES:
        parser.error("DATABASE_URL must name a PostgreSQL server")

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    full = {name: max(1, round(count * args.fraction)) for name, count in FULL.items()}
    small = {name: max(1, round(count / 100)) for name, count in full.items()}
    load_before = load_average()
    small_result = scratch("1pct", small, args.runs)
    full_result = scratch("full", full, args.runs)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = f"PostgreSQL {cursor.fetchone()[0]}"
    result = {
        "bench": "scale",
        "date": time.strftime("%Y-%m-%d"),
        "database": server,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "fraction": args.fraction,
        "load_before": load_before,
        "load_after": load_average(),
        "small": small_result,
        "full": full_result,
        "ratios": {
            name: round(
                full_result["operations"][name]["median_ms"]
                / max(small_result["operations"][name]["median_ms"], 0.1),
                2,
            )
            for name in full_result["operations"]
        },
    }
    print_table(result)
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
