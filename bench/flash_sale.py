"""Flash sale: N shoppers rush one SKU with few units through the shop API, across gunicorn
workers on PostgreSQL, and pay through the WeChat sandbox; beside the same server's trivial
endpoint hammered with the same concurrency, as the ceiling.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retail .venv/bin/python bench/flash_sale.py
        [--shoppers 500] [--units 50] [--clients 64] [--web-workers 2] [--threads 4]
        [--worker-class gthread|sync] [--wechat-latency 0]
        [--fulfilment pickup|delivery] [--redis-url redis://127.0.0.1:6379/12]
        [--server-log FILE]

It creates and migrates a scratch database ``bench_flash_<pid>`` on the server DATABASE_URL
names (no other database is touched), seeds one pickup store and one SKU with ``--units`` units,
and ``--shoppers`` members, each with a WeChat openid the sandbox knows and a shop token. With
``--fulfilment delivery`` the store also delivers (a 3 km radius and a delivery fee of its own,
never waived) and each member has one address in her book, inside that radius. It
starts the WeChat sandbox (``python -m wechat.sandbox``, configured as the demo is:
demo/wechat-sandbox.env) and gunicorn (``--web-workers`` processes of ``--threads`` threads,
DEBUG off, throttles out of the way) on free ports, with Redis at ``--redis-url`` (a database
index of its own, emptied at the start and at the end; outbox tasks queue there, no Celery
worker runs: the payment notify is the sandbox's HTTP call to the platform).

First the ceiling: ``GET /health/live`` (no database, no cache) from ``--clients`` threads, as many
requests as the sale makes of the platform, and at least 5,000. Then the sale: ``--clients`` threads
(one HTTP connection each) work through the shoppers, released together; each shopper puts one unit
in her cart (``PUT cart/lines/<sku>/``), checks out (``POST checkout/`` with her own client
reference, and her address for delivery) and, if an order was placed, asks to pay it
(``POST orders/<number>/pay/``) and pays it at the sandbox's cashier
(``POST /sandbox/pay/v3/pay``: the sandbox marks the trade paid and sends the signed notify to
the platform before it answers).

Then the books, from the database: orders by status, paid payments, reservations by status,
units committed to paid orders (oversold = committed - units, must be 0), the money paid
(orders' ``paid_fen`` and succeeded payments, each exactly units × (price + delivery fee)), the
stock row, and ``manage.py inventory_audit`` (exit code 0). It prints a table and one JSON line,
stops every process it started, drops the scratch database, and exits 1 on any 5xx, oversold
unit, failed audit, unexpected refusal (a shopper too late must get 409 ``insufficient_stock``),
unpaid unit or fen off. Figures and their meaning: docs/performance.md.
"""

import argparse
import io
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retail.settings")
os.environ.setdefault("DEBUG", "1")

POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "psql", "postgis"}
SANDBOX_ENV_FILE = ROOT / "demo" / "wechat-sandbox.env"
# What a shopper may be told when the units are gone: the checkout's refusal of a basket whose
# stock is held or sold.
SOLD_OUT = {"insufficient_stock"}
# ``notify`` is the sandbox's call to the platform inside ``sandbox_pay``: counted, not timed.
OPERATIONS = ("cart", "checkout", "pay", "sandbox_pay", "notify")
PLATFORM_OPERATIONS = ("cart", "checkout", "pay", "notify")
FULFILMENTS = ("pickup", "delivery")
PRICE_FEN = 990
# The store's own delivery fee, never waived (no free-delivery amount), so that every delivery
# order pays it whatever the settings' default says.
DELIVERY_FEE_FEN = 600
DELIVERY_RADIUS_M = 3000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sandbox_env(*, sandbox_port: int, web_port: int) -> dict[str, str]:
    """The demo's WeChat settings (demo/wechat-sandbox.env), with this run's ports."""
    ports = {"WECHAT_SANDBOX_PORT": str(sandbox_port), "DEMO_PORT": str(web_port)}
    found = {}
    for line in SANDBOX_ENV_FILE.read_text(encoding="utf-8").splitlines():
        matched = re.fullmatch(r"export (\w+)=(.*)", line.strip())
        if matched:
            name, value = matched.groups()
            found[name] = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: ports.get(m[1], m[2]), value)
    return found


def wait_until_up(url: str, what: str, process: subprocess.Popen) -> None:
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode} before answering")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not answer within 60 s")


def stop(process: subprocess.Popen | None) -> None:
    """Stop a process started in its own session, with its children (gunicorn's workers)."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


class RedisServer:
    """``redis-server`` of the run's own on a free port, without persistence (as the machine's):
    the broker, result backend and cache of the processes a bench starts, emptied by a restart
    (queued task messages included) without touching anyone else's Redis."""

    def __init__(self, workdir: Path) -> None:
        self.port, self.workdir = free_port(), workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("this bench needs redis-server on the PATH (Debian: redis-server)")
        with (self.workdir / "redis.log").open("a") as output:
            self.process = subprocess.Popen(
                [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir)],
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise SystemExit(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """A crash: SIGKILL, nothing saved."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def restart_after(self, seconds: float) -> float:
        """Kill, stay down ``seconds``, start again; the time it was away."""
        self.kill()
        down_at = time.perf_counter()
        time.sleep(seconds)
        self.start()
        return time.perf_counter() - down_at

    def stop(self) -> None:
        stop(self.process)


def drop_scratch(connection, main_database: str, scratch: str) -> None:
    """Drop the scratch database (whatever state it is in) and point Django back at the one
    DATABASE_URL names."""
    from django.conf import settings

    connection.close()
    connection.settings_dict["NAME"] = main_database
    settings.DATABASES[connection.alias]["NAME"] = main_database
    with connection._nodb_cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


def server_log_errors(log: io.TextIOBase) -> list[str]:
    """The gist of what gunicorn logged: its unindented lines (log records, exceptions and
    their details), without the WARNING each 4xx answer logs and without the traceback frames
    (``--server-log FILE`` keeps them all)."""
    log.flush()
    log.seek(0)
    return [
        line.rstrip()
        for line in log
        if line.strip()
        and not line.startswith((" ", "Traceback", "The above exception"))
        and " WARNING django.request " not in line
    ][:60]


def prepare(*, shoppers: int, units: int, app_id: str, fulfilment: str = "pickup") -> dict:
    """One pickup store, one SKU with ``units`` units, and ``shoppers`` members who came in
    through the mini-program (a WeChat identity the sandbox knows) with a shop token each.

    For ``delivery`` the store also delivers within ``DELIVERY_RADIUS_M`` for
    ``DELIVERY_FEE_FEN`` (its own shipping rule, never free), and each member has one address,
    a few hundred metres from the store, whose id is in ``addresses`` (in shopper order)."""
    from inventory.services import StockLine, stock_receive
    from members.services.identity import member_login_wechat
    from orders.models import ShippingRule
    from retail.geo import haversine_m
    from retail.models import SKU, Category, Product, Store
    from retail.validators import gtin_check_digit
    from wechat.services.addresses import address_create
    from wechat.services.auth import token_issue

    if fulfilment not in FULFILMENTS:
        raise ValueError(f"unknown fulfilment {fulfilment!r}")

    store = Store.objects.create(
        code="FLASH",
        name="秒杀门店",
        province="上海市",
        city="上海市",
        district="静安区",
        address="南京西路1618号",
        latitude=31.2235,
        longitude=121.4459,
        offers_pickup=True,
    )
    delivery_fee_fen = 0
    if fulfilment == "delivery":
        store.delivery_radius_m = DELIVERY_RADIUS_M
        store.save(update_fields=["delivery_radius_m"])
        ShippingRule.objects.create(store=store, fee_fen=DELIVERY_FEE_FEN, free_from_fen=None)
        delivery_fee_fen = DELIVERY_FEE_FEN
        # 常德路, about 700 m north-west of the store.
        home = {"latitude": "31.228900", "longitude": "121.440100"}
        distance = haversine_m(
            float(home["latitude"]),
            float(home["longitude"]),
            float(store.latitude),
            float(store.longitude),
        )
        assert distance < DELIVERY_RADIUS_M, distance
    category = Category.objects.create(code="FLASH", name="秒杀")
    product = Product.objects.create(code="P-FLASH", name="秒杀商品", category=category)
    barcode_body = "690000000001"
    sku = SKU.objects.create(
        product=product,
        code="FLASH-1",
        barcode=f"{barcode_body}{gtin_check_digit(barcode_body)}",
        price_fen=PRICE_FEN,
    )
    stock_receive(store=store, lines=[StockLine(sku.pk, units)], idempotency_key="bench:flash")
    users, tokens, addresses = [], [], []
    for number in range(shoppers):
        openid = f"oBenchFlash{number:018d}"
        member = member_login_wechat(app_id=app_id, openid=openid)
        raw, _token = token_issue(member=member)
        users.append({"openid": openid, "nickname": f"秒杀{number}"})
        tokens.append(raw)
        if fulfilment == "delivery":
            address = address_create(
                member=member,
                name=f"秒杀{number}",
                mobile=f"138{number:08d}",
                province="上海市",
                city="上海市",
                district="静安区",
                detail=f"常德路{number % 1000 + 1}号",
                **home,
            )
            addresses.append(address.pk)
    return {
        "store": store.pk,
        "sku": sku.pk,
        "tokens": tokens,
        "users": users,
        "fulfilment": fulfilment,
        "price_fen": PRICE_FEN,
        "delivery_fee_fen": delivery_fee_fen,
        "addresses": addresses,
    }


def start_sandbox(
    port: int, users_file: Path, env: dict, *, max_calls: int = 200
) -> subprocess.Popen:
    """The WeChat sandbox, keeping its last ``max_calls`` calls (``GET /sandbox/calls``)."""
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wechat.sandbox",
            "--port",
            str(port),
            "--users",
            str(users_file),
            "--quiet",
            "--max-calls",
            str(max_calls),
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
    wait_until_up(f"http://127.0.0.1:{port}/sandbox/", "the WeChat sandbox", sandbox)
    return sandbox


def start_server(
    env: dict,
    port: int,
    workers: int,
    threads: int,
    log: io.TextIOBase,
    *,
    worker_class: str = "gthread",
) -> subprocess.Popen:
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
            worker_class,
            "--backlog",
            "2048",
            # A client thread leaves its connection idle while the sandbox settles a payment;
            # gunicorn's default of 2 s would close it under the next request now and then.
            "--keep-alive",
            "75",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        start_new_session=True,
        stdout=log,
        stderr=log,
    )
    wait_until_up(f"http://127.0.0.1:{port}/health/live", "gunicorn", server)
    return server


def percentiles(latencies: list[float]) -> dict:
    if not latencies:
        return {"p50_ms": None, "p99_ms": None}
    if len(latencies) == 1:
        return {"p50_ms": round(latencies[0] * 1000, 1), "p99_ms": round(latencies[0] * 1000, 1)}
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1000, 1), "p99_ms": round(cuts[98] * 1000, 1)}


def hammer(base: str, *, requests_total: int, clients: int) -> dict:
    """The ceiling: ``GET /health/live`` from ``clients`` threads, ``requests_total`` in all."""
    import requests

    remaining = iter(range(requests_total))
    take = threading.Lock()
    start = threading.Barrier(clients)
    latencies: list[float] = []
    statuses: Counter = Counter()
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def client() -> None:
        session = requests.Session()
        session.get(f"{base}/health/live", timeout=30)  # connect before the clock starts
        mine, mine_statuses = [], Counter()
        start.wait(timeout=60)
        began = time.perf_counter()
        while True:
            with take:
                if next(remaining, None) is None:
                    break
            called = time.perf_counter()
            try:
                status = session.get(f"{base}/health/live", timeout=30).status_code
            except requests.RequestException as failure:
                status = type(failure).__name__
            mine.append(time.perf_counter() - called)
            mine_statuses[status] += 1
        ended = time.perf_counter()
        with lock:
            latencies.extend(mine)
            statuses.update(mine_statuses)
            spans.append((began, ended))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = max(end for _, end in spans) - min(begin for begin, _ in spans)
    return {
        "requests": len(latencies),
        "wall_s": round(wall, 3),
        "per_s": round(len(latencies) / wall, 1),
        **percentiles(latencies),
        "5xx": sum(n for s, n in statuses.items() if isinstance(s, int) and s >= 500),
        "statuses": {str(s): n for s, n in sorted(statuses.items(), key=str)},
    }


def sale(base: str, sandbox: str, data: dict, *, clients: int, fulfilment: str) -> dict:
    """Every shopper once through cart, checkout, pay and the sandbox's cashier, from
    ``clients`` threads (one keep-alive connection each) released together."""
    import requests

    api = f"{base}/api/shop/v1"
    shoppers = iter(enumerate(data["tokens"]))
    take = threading.Lock()
    start = threading.Barrier(clients)
    lock = threading.Lock()
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    outcomes: Counter = Counter()
    spans: list[tuple[float, float]] = []
    placed_at: list[float] = []

    def call(session, operation: str, method: str, url: str, mine: list, **kwargs):
        called = time.perf_counter()
        try:
            response = session.request(method, url, timeout=60, **kwargs)
            status = response.status_code
        except requests.RequestException as failure:
            response, status = None, type(failure).__name__
        mine.append((operation, status, time.perf_counter() - called))
        return response

    def error_code(response) -> str:
        try:
            return response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return f"http_{response.status_code}"

    def shop(session, index: int, token: str, mine: list) -> str:
        auth = {"Authorization": f"Bearer {token}"}
        answer = call(
            session, "cart", "PUT", f"{api}/cart/lines/{data['sku']}/", mine,
            json={"quantity": 1}, headers=auth,
        )  # fmt: skip
        if answer is None:
            return f"cart:{mine[-1][1]}"
        if answer.status_code != 200:
            return f"cart:{error_code(answer)}"
        asked = {
            "fulfilment": fulfilment,
            "store": data["store"],
            "skus": [data["sku"]],
            "client_reference": f"flash-{index}-{uuid.uuid4().hex[:12]}",
        }
        if fulfilment == "delivery":
            asked["address_id"] = data["addresses"][index]
        answer = call(
            session, "checkout", "POST", f"{api}/checkout/", mine, headers=auth, json=asked
        )
        if answer is None:
            return f"checkout:{mine[-1][1]}"
        if answer.status_code != 201 and answer.status_code != 200:
            code = error_code(answer)
            if code in SOLD_OUT and answer.status_code == 409:
                return f"refused:{code}"
            return f"checkout:{answer.status_code}:{code}"
        placed_at.append(time.perf_counter())
        number = answer.json()["number"]
        answer = call(session, "pay", "POST", f"{api}/orders/{number}/pay/", mine, headers=auth)
        if answer is None:
            return f"pay:{mine[-1][1]}"
        if answer.status_code != 200:
            return f"pay:{error_code(answer)}"
        out_trade_no = answer.json()["out_trade_no"]
        answer = call(
            session, "sandbox_pay", "POST", f"{sandbox}/sandbox/pay/v3/pay", mine,
            json={"out_trade_no": out_trade_no},
        )  # fmt: skip
        if answer is None:
            return f"sandbox_pay:{mine[-1][1]}"
        if answer.status_code != 200:
            return f"sandbox_pay:http_{answer.status_code}"
        notifies = answer.json()["notifies"]
        for notify in notifies:
            mine.append(("notify", notify.get("status") or notify.get("error"), None))
        if not notifies or any(n.get("status") not in (200, 204) for n in notifies):
            return f"notify:{[n.get('status') or n.get('error') for n in notifies]}"
        return "paid"

    def client() -> None:
        session = requests.Session()
        session.headers["Accept-Language"] = "en"
        session.get(f"{base}/health/live", timeout=30)  # connect before the clock starts
        mine: list[tuple[str, object, float]] = []
        mine_outcomes: Counter = Counter()
        start.wait(timeout=120)
        began = time.perf_counter()
        while True:
            with take:
                shopper = next(shoppers, None)
            if shopper is None:
                break
            index, token = shopper
            mine_outcomes[shop(session, index, token, mine)] += 1
        ended = time.perf_counter()
        with lock:
            for operation, status, latency in mine:
                if latency is not None:
                    latencies[operation].append(latency)
                statuses[operation][status] += 1
            outcomes.update(mine_outcomes)
            spans.append((began, ended))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    started = min(begin for begin, _ in spans)
    wall = max(end for _, end in spans) - started
    rows = []
    for operation in OPERATIONS:
        done = statuses[operation]
        rows.append(
            {
                "operation": operation,
                "requests": sum(done.values()),
                **percentiles(latencies[operation]),
                "non_2xx": sum(n for s, n in done.items() if not (isinstance(s, int) and s < 300)),
                "5xx": sum(n for s, n in done.items() if isinstance(s, int) and s >= 500),
                "statuses": {str(s): n for s, n in sorted(done.items(), key=str)},
            }
        )
    platform_requests = sum(r["requests"] for r in rows if r["operation"] in PLATFORM_OPERATIONS)
    return {
        "wall_s": round(wall, 3),
        "last_order_placed_s": round(max(placed_at, default=started) - started, 3),
        "platform_requests": platform_requests,
        "platform_per_s": round(platform_requests / wall, 1),
        "shoppers_per_s": round(sum(outcomes.values()) / wall, 1),
        "operations": rows,
        "outcomes": dict(sorted(outcomes.items())),
    }


def books(*, sku: int, units: int, database_url: str, env: dict) -> dict:
    from django.db.models import Count, Sum

    from inventory.models import Reservation, StockItem
    from orders.models import Order, OrderLine, OrderStatus, Payment

    def counted(model) -> dict[str, int]:
        rows = model.objects.values("status").annotate(n=Count("pk")).order_by("status")
        return {row["status"]: row["n"] for row in rows}

    item = StockItem.objects.get(sku_id=sku)
    by_status = {
        row["status"]: {"lines": row["lines"], "units": row["units"]}
        for row in Reservation.objects.filter(stock_item=item)
        .values("status")
        .annotate(lines=Count("pk"), units=Sum("quantity"))
    }
    committed = sum(
        by_status.get(status, {}).get("units") or 0
        for status in (Reservation.Status.COMMITTED, Reservation.Status.CONSUMED)
    )
    paid_units = (
        OrderLine.objects.filter(order__status=OrderStatus.PAID, sku_id=sku).aggregate(
            units=Sum("quantity")
        )["units"]
        or 0
    )
    paid_orders = Order.objects.filter(status=OrderStatus.PAID)
    money = Order.objects.aggregate(paid=Sum("paid_fen"))
    paid_money = paid_orders.aggregate(total=Sum("total_fen"), shipping=Sum("shipping_fen"))
    paid_by_fulfilment = {
        row["fulfilment"]: row["n"]
        for row in paid_orders.values("fulfilment").annotate(n=Count("pk")).order_by("fulfilment")
    }
    payments_fen = Payment.objects.filter(status=Payment.Status.SUCCEEDED).aggregate(
        fen=Sum("amount_fen")
    )["fen"]
    audit = subprocess.run(
        [sys.executable, "manage.py", "inventory_audit"],
        cwd=ROOT,
        env={**os.environ, **env, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return {
        "orders": counted(Order),
        "payments": counted(Payment),
        "reservations": by_status,
        "on_hand": item.on_hand,
        "reserved": item.reserved,
        "units_committed": committed,
        "units_in_paid_orders": paid_units,
        "paid_orders_by_fulfilment": paid_by_fulfilment,
        "paid_fen": money["paid"] or 0,
        "paid_orders_total_fen": paid_money["total"] or 0,
        "paid_orders_shipping_fen": paid_money["shipping"] or 0,
        "payments_succeeded_fen": payments_fen or 0,
        "oversold": max(committed - units, paid_units - units, 0),
        "inventory_audit_exit": audit.returncode,
        "inventory_audit_output": (audit.stdout + audit.stderr).strip()[-400:],
    }


def print_table(result: dict) -> None:
    sale_figures, ceiling = result["sale"], result["trivial"]
    print(
        f"flash sale {result['date']}: {result['fulfilment']}, {result['shoppers']} shoppers, "
        f"{result['units']} units, {result['clients']} client threads; gunicorn "
        f"{result['web_workers']} {result['worker_class']} workers × {result['threads']} threads; "
        f"WeChat Pay answers after {result['wechat_latency_s']:g} s; PostgreSQL "
        f"{result['postgresql']}, Python {result['python']}, {result['cpus']} CPUs; load "
        f"{result['loadavg_before']} before, {result['loadavg_after']} after"
    )
    print(f"{'operation':<22}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'5xx':>6}")
    print(
        f"{'trivial /health/live':<22}{ceiling['requests']:>9}{ceiling['p50_ms']:>9}"
        f"{ceiling['p99_ms']:>9}{0:>9}{ceiling['5xx']:>6}"
    )
    for row in sale_figures["operations"]:
        print(
            f"{row['operation']:<22}{row['requests']:>9}{row['p50_ms']!s:>9}"
            f"{row['p99_ms']!s:>9}{row['non_2xx']:>9}{row['5xx']:>6}"
        )
    print(
        f"platform requests per second: sale {sale_figures['platform_per_s']}, trivial "
        f"{ceiling['per_s']}, ratio {result['ratio_to_trivial']}; sale took "
        f"{sale_figures['wall_s']} s, last order placed after "
        f"{sale_figures['last_order_placed_s']} s"
    )
    print(f"shoppers: {sale_figures['outcomes']}")
    book = result["books"]
    print(
        f"books: orders {book['orders']}, payments {book['payments']}, on_hand {book['on_hand']}, "
        f"reserved {book['reserved']}, units committed {book['units_committed']}, "
        f"in paid orders {book['units_in_paid_orders']}, oversold {book['oversold']}, "
        f"inventory_audit exit {book['inventory_audit_exit']}"
    )
    print(
        f"money: paid {book['paid_fen']} fen (payments {book['payments_succeeded_fen']}, "
        f"delivery fees {book['paid_orders_shipping_fen']}), expected {result['expected_paid_fen']}"
        f" = paid units × ({result['price_fen']} + {result['delivery_fee_fen']})"
    )


def print_server_log(result: dict) -> None:
    if result["server_log"]:
        print("gunicorn logged (besides 4xx warnings; tracebacks in --server-log):")
        for line in result["server_log"]:
            print(f"  {line}")


def verdict(result: dict) -> list[str]:
    """What went wrong, if anything."""
    book, sale_figures = result["books"], result["sale"]
    expected_paid = min(result["units"], result["shoppers"])
    expected_refused = result["shoppers"] - expected_paid
    problems = []
    if book["oversold"]:
        problems.append(f"{book['oversold']} units oversold")
    if book["inventory_audit_exit"] != 0:
        problems.append("inventory_audit failed")
    fives = result["trivial"]["5xx"] + sum(r["5xx"] for r in sale_figures["operations"])
    if fives:
        problems.append(f"{fives} answers 5xx")
    unexpected = {
        outcome: count
        for outcome, count in sale_figures["outcomes"].items()
        if outcome != "paid" and not outcome.startswith("refused:")
    }
    if unexpected:
        problems.append(f"unexpected outcomes {unexpected}")
    if sale_figures["outcomes"].get("paid", 0) != expected_paid:
        problems.append(f"paid {sale_figures['outcomes'].get('paid', 0)}, not {expected_paid}")
    refused = sum(n for o, n in sale_figures["outcomes"].items() if o.startswith("refused:"))
    if refused != expected_refused:
        problems.append(f"refused {refused}, not {expected_refused}")
    if book["units_in_paid_orders"] != expected_paid:
        problems.append(f"{book['units_in_paid_orders']} units in paid orders")
    paid_orders = {result["fulfilment"]: expected_paid} if expected_paid else {}
    if book["paid_orders_by_fulfilment"] != paid_orders:
        problems.append(f"paid orders {book['paid_orders_by_fulfilment']}, not {paid_orders}")
    expected_fen = result["expected_paid_fen"]
    for figure in ("paid_fen", "paid_orders_total_fen", "payments_succeeded_fen"):
        if book[figure] != expected_fen:
            problems.append(f"{figure} {book[figure]}, not {expected_fen}")
    if book["paid_orders_shipping_fen"] != expected_paid * result["delivery_fee_fen"]:
        problems.append(f"delivery fees paid {book['paid_orders_shipping_fen']} fen")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shoppers", type=int, default=500, help="shoppers, one unit each")
    parser.add_argument("--units", type=int, default=50, help="units on hand before the sale")
    parser.add_argument("--clients", type=int, default=64, help="concurrent client threads")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn process")
    parser.add_argument(
        "--worker-class", choices=["gthread", "sync"], default="gthread", help="gunicorn's"
    )
    parser.add_argument(
        "--wechat-latency",
        type=float,
        default=0,
        help="seconds WeChat Pay takes to answer each JSAPI trade the platform creates",
    )
    parser.add_argument(
        "--fulfilment",
        choices=FULFILMENTS,
        default="pickup",
        help="pickup at the store, or delivery to each shopper's address (with a fee)",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/12",
        help="a Redis database of the bench's own: emptied at the start and at the end",
    )
    parser.add_argument(
        "--server-log", type=Path, help="keep gunicorn's log in this file (default: thrown away)"
    )
    args = parser.parse_args()
    if min(args.shoppers, args.units, args.clients, args.web_workers, args.threads) < 1:
        parser.error("--shoppers, --units, --clients, --web-workers and --threads must be >= 1")

    url = urlsplit(os.environ.get("DATABASE_URL", ""))
    if url.scheme not in POSTGRES_SCHEMES:
        print(
            "flash_sale needs PostgreSQL (several server processes share the database). Set "
            "DATABASE_URL, e.g.\n  DATABASE_URL=postgres://postgres@127.0.0.1:5432/retail "
            ".venv/bin/python bench/flash_sale.py",
            file=sys.stderr,
        )
        return 2

    sandbox_port, web_port = free_port(), free_port()
    wechat = sandbox_env(sandbox_port=sandbox_port, web_port=web_port)
    # The bench process seeds with the same WeChat app and the same Redis as the server.
    os.environ.update(wechat)
    os.environ["REDIS_URL"] = args.redis_url

    import django
    import redis

    django.setup()
    from django.db import connection

    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    print(f"load average before: {loadavg_before}", file=sys.stderr)
    scratch = f"bench_flash_{os.getpid()}"
    scratch_url = urlunsplit(url._replace(path=f"/{scratch}"))
    main_database = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = scratch
    cache = redis.Redis.from_url(args.redis_url)
    cache.flushdb()
    server_env = {
        **wechat,
        "DATABASE_URL": scratch_url,
        "REDIS_URL": args.redis_url,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "SHOP_THROTTLE_CHECKOUT_SHOPPER": "100000/min",
        "SHOP_THROTTLE_CHECKOUT_IP": "100000/min",
        "SHOP_THROTTLE_LOGIN_IP": "100000/min",
    }
    sandbox = server = None
    workdir = Path(tempfile.mkdtemp(prefix="flash-sale-"))
    server_log = (args.server_log or workdir / "gunicorn.log").open("w+", encoding="utf-8")
    try:
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        began = time.perf_counter()
        data = prepare(
            shoppers=args.shoppers,
            units=args.units,
            app_id=wechat["WECHAT_APP_ID"],
            fulfilment=args.fulfilment,
        )
        seeded_s = time.perf_counter() - began
        connection.close()
        users_file = workdir / "users.json"
        users_file.write_text(json.dumps(data["users"], ensure_ascii=False), encoding="utf-8")
        sandbox = start_sandbox(sandbox_port, users_file, wechat)
        server = start_server(
            server_env,
            web_port,
            args.web_workers,
            args.threads,
            server_log,
            worker_class=args.worker_class,
        )
        base, sandbox_base = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{sandbox_port}"
        # As many requests as the sale makes to the platform when every shopper checks out and
        # ``units`` of them pay, and no fewer than 5,000 so that the ceiling is steady.
        expected = 2 * args.shoppers + 2 * min(args.units, args.shoppers)
        trivial = hammer(base, requests_total=max(expected, 5000), clients=args.clients)
        if args.wechat_latency:
            # Every JSAPI trade the platform creates is answered that much later, as over the
            # internet from a shop's server to api.mch.weixin.qq.com.
            import requests

            requests.post(
                f"{sandbox_base}/sandbox/faults",
                json={"path": "/v3/pay/transactions/jsapi", "mode": "timeout",
                      "seconds": args.wechat_latency, "times": args.shoppers},
                timeout=10,
            ).raise_for_status()  # fmt: skip
        sale_figures = sale(
            base, sandbox_base, data, clients=args.clients, fulfilment=args.fulfilment
        )
        book = books(sku=data["sku"], units=args.units, database_url=scratch_url, env=server_env)
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            [server_version] = cursor.fetchone()
    finally:
        for process in (server, sandbox):
            try:
                stop(process)
            except Exception as failure:  # keep cleaning up
                print(f"could not stop {process.args[:3]}: {failure!r}", file=sys.stderr)
        drop_scratch(connection, main_database, scratch)
        cache.flushdb()
        server_errors = server_log_errors(server_log)
        server_log.close()
        shutil.rmtree(workdir, ignore_errors=True)

    loadavg_after = [round(x, 2) for x in os.getloadavg()]
    result = {
        "bench": "flash_sale",
        "date": time.strftime("%Y-%m-%d"),
        "postgresql": server_version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_before": loadavg_before,
        "loadavg_after": loadavg_after,
        "shoppers": args.shoppers,
        "units": args.units,
        "clients": args.clients,
        "web_workers": args.web_workers,
        "worker_class": args.worker_class,
        "wechat_latency_s": args.wechat_latency,
        "threads": args.threads,
        "fulfilment": args.fulfilment,
        "price_fen": data["price_fen"],
        "delivery_fee_fen": data["delivery_fee_fen"],
        "expected_paid_fen": min(args.units, args.shoppers)
        * (data["price_fen"] + data["delivery_fee_fen"]),
        "seed_s": round(seeded_s, 1),
        "trivial": trivial,
        "sale": sale_figures,
        "ratio_to_trivial": round(sale_figures["platform_per_s"] / trivial["per_s"], 3),
        "books": book,
    }
    result["server_log"] = server_errors
    result["problems"] = verdict(result)
    print_table(result)
    print_server_log(result)
    print(json.dumps(result, ensure_ascii=False))
    for problem in result["problems"]:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
