"""Sale day mix and sync lag: shoppers browse, check out and pay, clerks sell at the counter and
a fulfilment partner ships, all at once for a fixed time, on gunicorn and PostgreSQL, with ONE
Celery worker carrying the status changes to the WeChat sandbox and the partner sandbox.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retail .venv/bin/python bench/sale_day.py
        [--seconds 60] [--browsers 8] [--buyers 6] [--clerks 2] [--partners 2]
        [--web-workers 2] [--threads 4] [--worker-pool prefork|threads] [--worker-concurrency 1]
        [--redis-restart-at SECONDS] [--redis-down 4]
        [--drain-seconds 180] [--server-log FILE]

It reuses the flash sale's harness (bench/flash_sale.py): a scratch database
``bench_saleday_<pid>`` (created, migrated, dropped in the end), the WeChat sandbox as the demo
runs it, gunicorn (DEBUG off, throttles out of the way), and a Redis server of its own
(``redis-server`` on a free port, nothing on disk) as cache, Celery broker and result backend.
Besides, it starts the partner sandbox (``python -m partners.sandbox``, no callbacks: the
bench ships) as the webhook of a fulfilment partner serving Shanghai with a routing rule for
warehouse orders (as ``partner_demo_setup`` does), and one Celery worker with beat
(``celery -A retail worker --concurrency 1 -B``: the outbox deliveries and the sweeper).

Seed: 20 products of one SKU each, 100,000 units of each at a counter store (``SALE1``, pickup
and counter sales) and at a warehouse (``WH01``); one member per buyer thread with a WeChat
identity the sandbox knows, a shop token, a Shanghai address, and the paid and shipped
subscribe templates allowed in the sandbox; one clerk (staff session) per clerk thread.

First the ceiling: ``GET /health/live`` from as many client threads as the mix has, 5,000
requests. Then, for ``--seconds``, all at once (each thread one keep-alive connection):

* ``--browsers`` threads: ``home/``, ``products/`` (a page of 20 at the store) and
  ``products/<id>/`` in turn;
* ``--buyers`` threads, each her own member: ``PUT cart/lines/<sku>/``, ``POST checkout/``
  (delivery from the warehouse to her address), ``POST orders/<n>/pay/`` and the sandbox
  cashier ``POST /sandbox/pay/v3/pay`` (which sends the signed notify to the platform);
* ``--clerks`` threads: a cash counter sale of one unit through the console's till
  (``POST /console/SALE1/pos/cash/``, a staff session and its CSRF token);
* ``--partners`` threads, with the partner's API key: ``GET /api/partner/v1/orders/?status=paid``
  and ``POST .../orders/<n>/shipments/`` for each order routed to it not yet shipped;
* one probe thread: ``GET /health/live`` every 50 ms (the trivial endpoint under the mix).

With ``--redis-restart-at S``, Redis is killed with SIGKILL S seconds into the mix and started
again, empty, ``--redis-down`` seconds later (a crash of Redis without persistence: the task
messages queued or in flight, the cached WeChat token and the rate-limit counters are gone); the
books must hold all the same, and the lag shows what the outbox's lease costs the events whose
task message was lost (the sweeper sends them again once the lease, ``OUTBOX_LEASE_SECONDS``,
has passed).

Then the worker is left to drain (up to ``--drain-seconds``) until no outbox delivery is open,
and the sync lag is read: for each order paid or shipped during the mix, OutboxEvent.created_at
to the moment the WeChat sandbox recorded the call (``GET /sandbox/calls``: the subscribe
message on paid and shipped, the shipping-info upload on shipped) and to the moment the partner
sandbox received the push (``GET /sandbox/pushes``: ``order.paid`` made from ``order.routed``);
also the lag of the events created in the mix's last 20 s apart (the worker's backlog).

It prints a table and one JSON line (throughput and p50/p99 per operation, each as a ratio to
the trivial endpoint; lag p50/p99 per channel; the books: orders by status, open and dead
deliveries, ``inventory_audit`` and ``points_audit`` exit codes), stops every process it started,
and exits 1 on any 5xx, a failed audit, an event not received, or a duplicate call.
Figures and their meaning: docs/performance.md.
"""

import argparse
import json
import os
import platform
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from flash_sale import (
    POSTGRES_SCHEMES,
    ROOT,
    RedisServer,
    drop_scratch,
    free_port,
    hammer,
    percentiles,
    sandbox_env,
    server_log_errors,
    start_sandbox,
    start_server,
    stop,
    wait_until_up,
)

STORE_CODE = "SALE1"
WAREHOUSE_CODE = "WH01"
PRODUCTS = 20
UNITS = 100_000
PRICE_FEN = 1290
CARRIER = "SF"
PAID_TEMPLATE, SHIPPED_TEMPLATE = "sandbox-order-paid", "sandbox-order-shipped"
MESSAGE_PATH = "/cgi-bin/message/subscribe/send"
UPLOAD_PATH = "/wxa/sec/order/upload_shipping_info"
OPERATIONS = (
    "live_probe",
    "home",
    "products",
    "product",
    "cart",
    "checkout",
    "pay",
    "sandbox_pay",
    "counter_cash",
    "partner_list",
    "partner_ship",
)
# The sandbox's cashier is WeChat's, not the platform's: timed, not counted as platform work.
NOT_PLATFORM = {"sandbox_pay", "live_probe"}
ADDRESS = {
    "name": "王小明",
    "mobile": "13912345678",
    "province": "上海市",
    "city": "上海市",
    "district": "静安区",
    "detail": "愚园路168号5楼",
}
TAIL_SECONDS = 20
BUCKET_SECONDS = 10


# --- seeding ------------------------------------------------------------------------------------


def prepare(*, buyers: int, clerks: int, app_id: str, partner_webhook: str) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from inventory.services import StockLine, stock_receive
    from members.services.identity import member_login_wechat
    from partners.models import Partner, RoutingRule
    from partners.services import partner_api_key_issue, partner_create
    from retail.models import SKU, Category, Product, StaffRole, Store
    from retail.validators import gtin_check_digit
    from wechat.models import Address
    from wechat.services.auth import token_issue

    place = {
        "province": "上海市",
        "city": "上海市",
        "district": "静安区",
        "latitude": 31.2235,
        "longitude": 121.4459,
    }
    store = Store.objects.create(
        code=STORE_CODE,
        name="大促门店",
        address="南京西路1618号",
        offers_pickup=True,
        offers_counter_sales=True,
        **place,
    )
    warehouse = Store.objects.create(
        code=WAREHOUSE_CODE, name="上海仓", address="外高桥1号", kind=Store.Kind.WAREHOUSE, **place
    )
    category = Category.objects.create(code="SALE", name="大促")
    skus = []
    for number in range(PRODUCTS):
        product = Product.objects.create(
            code=f"P-SALE-{number:02d}", name=f"大促商品{number}", category=category
        )
        body = f"6900000{number:05d}"
        skus.append(
            SKU.objects.create(
                product=product,
                code=f"SALE-{number:02d}",
                barcode=f"{body}{gtin_check_digit(body)}",
                price_fen=PRICE_FEN,
            )
        )
    for where in (store, warehouse):
        stock_receive(
            store=where,
            lines=[StockLine(sku.pk, UNITS) for sku in skus],
            idempotency_key=f"bench:saleday:{where.code}",
        )
    partner, secret = partner_create(
        name="大促同城配送 (沙箱)",
        kind=Partner.Kind.FULFILMENT,
        webhook_url=partner_webhook,
        cities=["上海市"],
    )
    rule = RoutingRule(
        partner=partner,
        name="大促: 仓库发货的配送单",
        priority=10,
        active=True,
        store_kind=RoutingRule.StoreKind.WAREHOUSE,
        without_ship_from_store=False,
        channels=[],
    )
    rule.full_clean()
    rule.save()
    partner_key, _key = partner_api_key_issue(partner=partner)
    users, buyers_data = [], []
    for number in range(buyers):
        openid = f"oBenchSaleDay{number:015d}"
        member = member_login_wechat(app_id=app_id, openid=openid)
        address = Address.objects.create(member=member, is_default=True, **ADDRESS)
        raw, _token = token_issue(member=member)
        users.append({"openid": openid, "nickname": f"大促{number}"})
        buyers_data.append({"openid": openid, "token": raw, "address": address.pk})
    sessions = []
    for number in range(clerks):
        user = get_user_model().objects.create_user(
            username=f"bench-clerk-{number}", password=None, is_staff=True
        )
        StaffRole.objects.create(user=user, role=StaffRole.Role.CLERK, store=store)
        client = Client()
        client.force_login(user)
        sessions.append(client.cookies["sessionid"].value)
    return {
        "store": store.pk,
        "warehouse": warehouse.pk,
        "skus": [{"id": sku.pk, "code": sku.code, "product": sku.product_id} for sku in skus],
        "users": users,
        "buyers": buyers_data,
        "sessions": sessions,
        "partner_secret": secret,
        "partner_key": partner_key,
    }


def start_partner_sandbox(port: int, secret: str) -> subprocess.Popen:
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "partners.sandbox",
            "--port",
            str(port),
            "--secret",
            secret,
            "--quiet",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
    wait_until_up(f"http://127.0.0.1:{port}/sandbox/pushes", "the partner sandbox", sandbox)
    return sandbox


def start_worker(
    env: dict, workdir: Path, log, *, pool: str = "prefork", concurrency: int = 1
) -> subprocess.Popen:
    """One Celery worker (one child process by default), with beat (the outbox sweeper)
    embedded."""
    return subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "celery"),
            "-A",
            "retail",
            "worker",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "-B",
            "-s",
            str(workdir / "celerybeat-schedule"),
            "--loglevel",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        start_new_session=True,
        stdout=log,
        stderr=log,
    )


def worker_log_errors(log) -> list[str]:
    """The worker's warnings and errors (a failed delivery logs one), without its banner."""
    log.flush()
    log.seek(0)
    return [
        f"worker: {line.rstrip()}"
        for line in log
        if re.search(r"(WARNING|ERROR|CRITICAL)/", line) and "SecurityWarning" not in line
    ][:40]


def wait_for_worker(worker: subprocess.Popen) -> None:
    """Until the worker answers a ping through the broker (it takes seconds to start)."""
    from retail.celery import app

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"the Celery worker exited with {worker.returncode}")
        if app.control.ping(timeout=1.0):
            return
    raise SystemExit("the Celery worker did not answer within 90 s")


# --- the mix ------------------------------------------------------------------------------------


def mix(base: str, sandbox: str, data: dict, args) -> dict:
    import requests

    shop = f"{base}/api/shop/v1"
    partner_api = f"{base}/api/partner/v1"
    lock = threading.Lock()
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    outcomes: Counter = Counter()
    notifies: Counter = Counter()
    claimed: set[str] = set()
    ready = threading.Barrier(
        args.browsers + args.buyers + args.clerks + args.partners + 1, timeout=120
    )
    clock: dict[str, float] = {}

    def call(session, mine, operation, method, url, **kwargs):
        began = time.perf_counter()
        try:
            response = session.request(method, url, timeout=60, **kwargs)
            status = response.status_code
        except requests.RequestException as failure:
            response, status = None, type(failure).__name__
        mine.append((operation, status, time.perf_counter() - began))
        return response

    def running() -> bool:
        return time.perf_counter() < clock["stop"]

    def start(session) -> None:
        session.headers["Accept-Language"] = "en"
        session.get(f"{base}/health/live", timeout=30)  # connect before the clock starts
        ready.wait()
        with lock:
            if "stop" not in clock:
                clock["start"] = time.perf_counter()
                clock["stop"] = clock["start"] + args.seconds

    def browser(index: int, session, mine, mine_outcomes) -> None:
        chooser = random.Random(index)
        store = data["store"]
        while running():
            call(session, mine, "home", "GET", f"{shop}/home/", params={"store": store})
            call(
                session, mine, "products", "GET", f"{shop}/products/",
                params={"store": store, "page_size": 20},
            )  # fmt: skip
            product = chooser.choice(data["skus"])["product"]
            call(
                session, mine, "product", "GET", f"{shop}/products/{product}/",
                params={"store": store},
            )  # fmt: skip

    def buyer(index: int, session, mine, mine_outcomes) -> None:
        chooser = random.Random(1000 + index)
        me = data["buyers"][index]
        session.headers["Authorization"] = f"Bearer {me['token']}"
        turn = 0
        while running():
            turn += 1
            sku = chooser.choice(data["skus"])["id"]
            answer = call(
                session, mine, "cart", "PUT", f"{shop}/cart/lines/{sku}/", json={"quantity": 1}
            )
            if answer is None or answer.status_code != 200:
                mine_outcomes[f"cart:{getattr(answer, 'status_code', None)}"] += 1
                continue
            answer = call(
                session, mine, "checkout", "POST", f"{shop}/checkout/",
                json={
                    "fulfilment": "delivery",
                    "store": data["warehouse"],
                    "address_id": me["address"],
                    "skus": [sku],
                    "client_reference": f"day-{index}-{turn}-{uuid.uuid4().hex[:8]}",
                },
            )  # fmt: skip
            if answer is None or answer.status_code not in (200, 201):
                mine_outcomes[f"checkout:{_code(answer)}"] += 1
                continue
            number = answer.json()["number"]
            answer = call(session, mine, "pay", "POST", f"{shop}/orders/{number}/pay/")
            if answer is None or answer.status_code != 200:
                mine_outcomes[f"pay:{_code(answer)}"] += 1
                continue
            answer = call(
                session, mine, "sandbox_pay", "POST", f"{sandbox}/sandbox/pay/v3/pay",
                json={"out_trade_no": answer.json()["out_trade_no"]},
            )  # fmt: skip
            if answer is None or answer.status_code != 200:
                mine_outcomes[f"sandbox_pay:{_code(answer)}"] += 1
                continue
            sent = answer.json()["notifies"]
            with lock:
                notifies.update(str(n.get("status") or n.get("error")) for n in sent)
            if sent and all(n.get("status") in (200, 204) for n in sent):
                mine_outcomes["paid"] += 1
            else:
                mine_outcomes["notify_failed"] += 1

    def clerk(index: int, session, mine, mine_outcomes) -> None:
        chooser = random.Random(2000 + index)
        session.cookies.set("sessionid", data["sessions"][index])
        pos = f"{base}/console/{STORE_CODE}/pos/"
        # The till's page would set the CSRF cookie; its own secret does as well (the page
        # itself needs collectstatic's manifest with DEBUG off, which the bench does not run).
        token = secrets.token_hex(16)
        session.cookies.set("csrftoken", token)
        session.headers["X-CSRFToken"] = token
        while running():
            sku = chooser.choice(data["skus"])
            answer = call(
                session, mine, "counter_cash", "POST", f"{pos}cash/", allow_redirects=False,
                data={
                    "client_reference": uuid.uuid4().hex,
                    "basket": json.dumps([{"code": sku["code"], "quantity": 1}]),
                    "member": "",
                    "coupon_code": "",
                    "points": "0",
                    "expected_total": "",
                    "tendered": f"{PRICE_FEN / 100:.2f}",
                },
            )  # fmt: skip
            location = answer.headers.get("Location", "") if answer is not None else ""
            if answer is not None and answer.status_code == 302 and "/pos/receipt/" in location:
                mine_outcomes["counter_sold"] += 1
            else:
                mine_outcomes[f"counter:{getattr(answer, 'status_code', None)}:{location}"] += 1

    def partner(index: int, session, mine, mine_outcomes) -> None:
        session.headers["Authorization"] = f"Bearer {data['partner_key']}"
        while running():
            answer = call(
                session, mine, "partner_list", "GET", f"{partner_api}/orders/",
                params={"status": "paid"},
            )  # fmt: skip
            if answer is None or answer.status_code != 200:
                mine_outcomes[f"partner_list:{_code(answer)}"] += 1
                time.sleep(0.2)
                continue
            numbers = [row["number"] for row in answer.json().get("results", [])]
            with lock:
                mine_numbers = [n for n in numbers if n not in claimed]
                claimed.update(mine_numbers)
            for number in mine_numbers:
                if not running():
                    break
                answer = call(
                    session, mine, "partner_ship", "POST",
                    f"{partner_api}/orders/{number}/shipments/",
                    json={"carrier_code": CARRIER, "tracking_number": f"SF{uuid.uuid4().hex[:12]}"},
                )  # fmt: skip
                if answer is not None and answer.status_code in (200, 201):
                    mine_outcomes["shipped"] += 1
                else:
                    mine_outcomes[f"partner_ship:{_code(answer)}"] += 1
            if not mine_numbers:
                time.sleep(0.2)

    def probe(index: int, session, mine, mine_outcomes) -> None:
        while running():
            call(session, mine, "live_probe", "GET", f"{base}/health/live")
            time.sleep(0.05)

    def client(role, index: int) -> None:
        session = requests.Session()
        mine: list = []
        mine_outcomes: Counter = Counter()
        start(session)
        try:
            role(index, session, mine, mine_outcomes)
        finally:
            with lock:
                for operation, status, latency in mine:
                    latencies[operation].append(latency)
                    statuses[operation][status] += 1
                outcomes.update(mine_outcomes)

    threads = [
        threading.Thread(target=client, args=(role, index))
        for role, count in (
            (browser, args.browsers),
            (buyer, args.buyers),
            (clerk, args.clerks),
            (partner, args.partners),
            (probe, 1),
        )
        for index in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - clock["start"]
    rows = []
    for operation in OPERATIONS:
        done = statuses[operation]
        count = sum(done.values())
        rows.append(
            {
                "operation": operation,
                "requests": count,
                "per_s": round(count / wall, 1),
                **percentiles(latencies[operation]),
                "non_2xx": sum(n for s, n in done.items() if not (isinstance(s, int) and s < 300))
                - (done.get(302, 0) if operation == "counter_cash" else 0),
                "5xx": sum(n for s, n in done.items() if isinstance(s, int) and s >= 500),
                "statuses": {str(s): n for s, n in sorted(done.items(), key=str)},
            }
        )
    platform_requests = sum(r["requests"] for r in rows if r["operation"] not in NOT_PLATFORM)
    return {
        "wall_s": round(wall, 3),
        "platform_requests": platform_requests,
        "platform_per_s": round(platform_requests / wall, 1),
        "operations": rows,
        "outcomes": dict(sorted(outcomes.items())),
        "notifies": dict(notifies),
    }


def _code(response) -> str:
    if response is None:
        return "no_answer"
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"http_{response.status_code}"


# --- after the mix ------------------------------------------------------------------------------


def drain(deadline_s: float) -> dict:
    """Wait until the worker has no open outbox delivery (or the deadline): how long it took."""
    from retail.models import OutboxDelivery

    began = time.perf_counter()
    open_states = ["pending", "in_flight", "failed"]
    while True:
        left = OutboxDelivery.objects.filter(state__in=open_states).count()
        if left == 0 or time.perf_counter() - began > deadline_s:
            return {"drain_s": round(time.perf_counter() - began, 1), "open_left": left}
        time.sleep(1)


def lag(wechat_base: str, partner_base: str, mix_ended_at, mix_seconds: float) -> dict:
    """Event created -> received by each sandbox, from their logs and the outbox; also the
    median by ``BUCKET_SECONDS`` of the mix in which the events were created."""
    import requests
    from django.db.models import Count

    from orders.models import Channel, Order, Payment
    from retail.models import OutboxDelivery, OutboxEvent

    shopper_orders = dict(
        Order.objects.filter(channel=Channel.MINI_SHOP).values_list("number", "pk")
    )
    by_transaction = dict(
        Payment.objects.filter(order_id__in=shopper_orders.values())
        .exclude(transaction_id="")
        .values_list("transaction_id", "order__number")
    )
    events = {
        (event.event_type, int(event.aggregate_id)): event
        for event in OutboxEvent.objects.filter(
            aggregate_type="order",
            event_type__in=["order.paid", "order.shipped", "order.routed"],
            aggregate_id__in=[str(pk) for pk in shopper_orders.values()],
        )
    }
    by_event_id = {str(event.event_id): event for event in events.values()}
    calls = requests.get(f"{wechat_base}/sandbox/calls", timeout=60).json()["calls"]
    pushes = requests.get(f"{partner_base}/sandbox/pushes", timeout=60).json()

    channels: dict[str, dict] = {
        name: {"received": {}, "repeats": 0, "not_ok": Counter()}
        for name in ("wechat_message_paid", "wechat_message_shipped", "wechat_upload", "partner")
    }

    def seen(channel: str, key, event, at: datetime, ok: bool) -> None:
        entry = channels[channel]
        if not ok:
            entry["not_ok"]["rejected"] += 1
        if key in entry["received"]:
            entry["repeats"] += 1
            return
        entry["received"][key] = ((at - event.created_at).total_seconds(), event.created_at)

    for record in calls:
        body = record.get("body") if isinstance(record.get("body"), dict) else {}
        answer = record.get("answer") if isinstance(record.get("answer"), dict) else {}
        ok = record.get("status") == 200 and answer.get("errcode", 0) == 0
        at = datetime.fromisoformat(record["time"])
        if record["path"] == MESSAGE_PATH:
            template = body.get("template_id")
            number = ((body.get("data") or {}).get("character_string1") or {}).get("value")
            kind = {PAID_TEMPLATE: "paid", SHIPPED_TEMPLATE: "shipped"}.get(template)
            event = events.get((f"order.{kind}", shopper_orders.get(number)))
            if event is not None:
                seen(f"wechat_message_{kind}", number, event, at, ok)
        elif record["path"] == UPLOAD_PATH:
            number = by_transaction.get((body.get("order_key") or {}).get("transaction_id"))
            event = events.get(("order.shipped", shopper_orders.get(number)))
            if event is not None:
                seen("wechat_upload", number, event, at, ok)
    for push in pushes["pushes"]:
        event = by_event_id.get(push["event_id"])
        if event is not None:
            at = datetime.fromisoformat(push["received_at"])
            seen("partner", push["event_id"], event, at, True)
            channels["partner"]["repeats"] += push["repeats"]

    expected = {
        "wechat_message_paid": sum(1 for (kind, _pk) in events if kind == "order.paid"),
        "wechat_message_shipped": sum(1 for (kind, _pk) in events if kind == "order.shipped"),
        "wechat_upload": sum(1 for (kind, _pk) in events if kind == "order.shipped"),
        "partner": sum(1 for (kind, _pk) in events if kind == "order.routed"),
    }
    rows = []
    mix_started_at = mix_ended_at - timedelta(seconds=mix_seconds)
    for name, entry in channels.items():
        lags = [seconds for seconds, _created in entry["received"].values()]
        buckets: dict[int, list[float]] = defaultdict(list)
        for seconds, created in entry["received"].values():
            bucket = int((created - mix_started_at).total_seconds() // BUCKET_SECONDS)
            buckets[bucket * BUCKET_SECONDS].append(seconds)
        tail = [
            seconds
            for seconds, created in entry["received"].values()
            if (mix_ended_at - created).total_seconds() <= TAIL_SECONDS
        ]
        rows.append(
            {
                "channel": name,
                "events": expected[name],
                "received": len(lags),
                "missing": expected[name] - len(lags),
                "repeats": entry["repeats"],
                "rejected": entry["not_ok"]["rejected"],
                **_seconds(lags),
                "last_20s": _seconds(tail) | {"received": len(tail)},
                "p50_s_by_created_at": {
                    f"{start}s": round(statistics.median(values), 2)
                    for start, values in sorted(buckets.items())
                },
            }
        )
    deliveries = {
        f"{row['subscriber']}:{row['state']}": row["n"]
        for row in OutboxDelivery.objects.values("subscriber", "state")
        .annotate(n=Count("pk"))
        .order_by("subscriber", "state")
    }
    return {"channels": rows, "deliveries": deliveries, "wechat_calls_logged": len(calls)}


def _seconds(values: list[float]) -> dict:
    if not values:
        return {"p50_s": None, "p99_s": None, "max_s": None}
    figures = percentiles(values)  # in ms
    return {
        "p50_s": round(figures["p50_ms"] / 1000, 3),
        "p99_s": round(figures["p99_ms"] / 1000, 3),
        "max_s": round(max(values), 3),
    }


def books(database_url: str, env: dict) -> dict:
    from django.db.models import Count

    from orders.models import Order

    rows = Order.objects.values("channel", "status").annotate(n=Count("pk")).order_by("channel")
    audits = {}
    for command in ("inventory_audit", "points_audit"):
        ran = subprocess.run(
            [sys.executable, "manage.py", command],
            cwd=ROOT,
            env={**os.environ, **env, "DATABASE_URL": database_url},
            capture_output=True,
            text=True,
            timeout=300,
        )
        audits[command] = {
            "exit": ran.returncode,
            "output": (ran.stdout + ran.stderr).strip()[-300:],
        }
    return {
        "orders": {f"{row['channel']}:{row['status']}": row["n"] for row in rows},
        "audits": audits,
    }


# --- output -------------------------------------------------------------------------------------


def print_table(result: dict) -> None:
    ceiling, day = result["trivial"], result["mix"]
    print(
        f"sale day {result['date']}: {result['seconds']} s; {result['browsers']} browsers, "
        f"{result['buyers']} buyers, {result['clerks']} clerks, {result['partners']} partner "
        f"threads + 1 probe; gunicorn {result['web_workers']} workers × {result['threads']} "
        f"threads; 1 Celery worker ({result['worker_pool']}, concurrency "
        f"{result['worker_concurrency']}, beat); PostgreSQL {result['postgresql']}, "
        f"Python {result['python']}, {result['cpus']} CPUs; load {result['loadavg_before']} "
        f"before, {result['loadavg_after']} after"
    )
    for fault in result["faults"]:
        print(f"fault: {fault}")
    print(
        f"{'operation':<22}{'requests':>9}{'per s':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>8}"
        f"{'5xx':>5}{'÷triv/s':>9}{'p50÷triv':>9}{'p99÷triv':>9}"
    )
    print(
        f"{'trivial (alone)':<22}{ceiling['requests']:>9}{ceiling['per_s']:>8}"
        f"{ceiling['p50_ms']:>9}{ceiling['p99_ms']:>9}{0:>8}{ceiling['5xx']:>5}{1:>9}{1:>9}{1:>9}"
    )
    for row in day["operations"]:
        print(
            f"{row['operation']:<22}{row['requests']:>9}{row['per_s']:>8}{row['p50_ms']!s:>9}"
            f"{row['p99_ms']!s:>9}{row['non_2xx']:>8}{row['5xx']:>5}"
            f"{row['per_s_ratio']!s:>9}{row['p50_ratio']!s:>9}{row['p99_ratio']!s:>9}"
        )
    print(
        f"platform requests per second in the mix: {day['platform_per_s']} "
        f"(trivial alone {ceiling['per_s']}); outcomes {day['outcomes']}"
    )
    sync = result["sync"]
    print(
        f"sync lag (event created -> received), drained in {result['drain']['drain_s']} s after "
        f"the mix, {result['drain']['open_left']} deliveries left open"
    )
    print(
        f"{'channel':<24}{'events':>7}{'recv':>6}{'miss':>6}{'rep':>5}{'rej':>5}{'p50 s':>8}"
        f"{'p99 s':>8}{'max s':>8}{'last20 p50':>11}{'p99':>8}"
    )
    for row in sync["channels"]:
        tail = row["last_20s"]
        print(
            f"{row['channel']:<24}{row['events']:>7}{row['received']:>6}{row['missing']:>6}"
            f"{row['repeats']:>5}{row['rejected']:>5}{row['p50_s']!s:>8}{row['p99_s']!s:>8}"
            f"{row['max_s']!s:>8}{tail['p50_s']!s:>11}{tail['p99_s']!s:>8}"
        )
    print("lag p50 s by when in the mix the event was created:")
    for row in sync["channels"]:
        timeline = "  ".join(f"{k} {v}" for k, v in row["p50_s_by_created_at"].items())
        print(f"  {row['channel']:<22}{timeline}")
    print(f"deliveries: {sync['deliveries']}")
    book = result["books"]
    print(
        f"orders: {book['orders']}; inventory_audit exit "
        f"{book['audits']['inventory_audit']['exit']}, points_audit exit "
        f"{book['audits']['points_audit']['exit']}"
    )


def verdict(result: dict) -> list[str]:
    problems = []
    fives = result["trivial"]["5xx"] + sum(r["5xx"] for r in result["mix"]["operations"])
    if fives:
        problems.append(f"{fives} answers 5xx")
    for name, audit in result["books"]["audits"].items():
        if audit["exit"] != 0:
            problems.append(f"{name} exit {audit['exit']}")
    for row in result["sync"]["channels"]:
        if row["missing"]:
            problems.append(f"{row['channel']}: {row['missing']} events not received")
        if row["repeats"]:
            problems.append(f"{row['channel']}: {row['repeats']} repeated calls")
    if result["drain"]["open_left"]:
        problems.append(f"{result['drain']['open_left']} outbox deliveries still open")
    dead = {k: n for k, n in result["sync"]["deliveries"].items() if k.endswith(":dead")}
    if dead:
        problems.append(f"dead deliveries {dead}")
    unexpected = {
        k: n
        for k, n in result["mix"]["outcomes"].items()
        if k not in ("paid", "shipped", "counter_sold")
    }
    if unexpected:
        problems.append(f"unexpected outcomes {unexpected}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="how long the mix runs")
    parser.add_argument("--browsers", type=int, default=8, help="browsing client threads")
    parser.add_argument("--buyers", type=int, default=6, help="checkout-and-pay client threads")
    parser.add_argument("--clerks", type=int, default=2, help="counter-sale client threads")
    parser.add_argument("--partners", type=int, default=2, help="partner shipping threads")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn process")
    parser.add_argument(
        "--drain-seconds", type=float, default=180, help="longest wait for the worker after"
    )
    parser.add_argument(
        "--worker-pool", choices=["prefork", "threads"], default="prefork", help="Celery pool"
    )
    parser.add_argument(
        "--worker-concurrency", type=int, default=1, help="Celery worker processes or threads"
    )
    parser.add_argument(
        "--redis-restart-at",
        type=float,
        default=0,
        help="kill Redis this many seconds into the mix and start it again (0: never)",
    )
    parser.add_argument(
        "--redis-down", type=float, default=4, help="seconds Redis stays down when restarted"
    )
    parser.add_argument(
        "--server-log", type=Path, help="keep gunicorn's log here (default: thrown away)"
    )
    args = parser.parse_args()
    if min(args.browsers, args.buyers, args.clerks, args.partners) < 1 or args.seconds <= 0:
        parser.error("every thread count must be >= 1 and --seconds positive")

    url = urlsplit(os.environ.get("DATABASE_URL", ""))
    if url.scheme not in POSTGRES_SCHEMES:
        print(
            "sale_day needs PostgreSQL. Set DATABASE_URL, e.g.\n  "
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/retail .venv/bin/python "
            "bench/sale_day.py",
            file=sys.stderr,
        )
        return 2

    sandbox_port, web_port, partner_port = free_port(), free_port(), free_port()
    wechat = sandbox_env(sandbox_port=sandbox_port, web_port=web_port)
    secret_key = secrets.token_urlsafe(40)
    workdir = Path(tempfile.mkdtemp(prefix="sale-day-"))
    redis_server = RedisServer(workdir)
    common = {
        **wechat,
        "REDIS_URL": redis_server.url,
        # The bench signs the clerks' sessions in and encrypts the partner's signing secret:
        # the same keys as the server's.
        "SECRET_KEY": secret_key,
        "PARTNER_SECRET_KEY": secrets.token_urlsafe(32),
    }
    os.environ.update(common)

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    # The sandbox's subscribe templates (what DEBUG gives the bench process) for the server too.
    common["WECHAT_SUBSCRIBE_TEMPLATES"] = json.dumps(settings.WECHAT_SUBSCRIBE_TEMPLATES)

    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    print(f"load average before: {loadavg_before}", file=sys.stderr)
    scratch = f"bench_saleday_{os.getpid()}"
    scratch_url = urlunsplit(url._replace(path=f"/{scratch}"))
    main_database = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = scratch
    server_env = {
        **common,
        "DATABASE_URL": scratch_url,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        # Plain HTTP on 127.0.0.1: the clerks' session and CSRF cookies must come back.
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SHOP_THROTTLE_CHECKOUT_SHOPPER": "100000/min",
        "SHOP_THROTTLE_CHECKOUT_IP": "100000/min",
        "SHOP_THROTTLE_LOGIN_IP": "100000/min",
        "PARTNER_THROTTLE_RATE": "100000/min",
    }
    sandbox = partner_sandbox = server = worker = restarter = None
    faults: list[str] = []
    server_log = (args.server_log or workdir / "server.log").open("w+", encoding="utf-8")
    worker_log = (workdir / "worker.log").open("w+", encoding="utf-8")
    try:
        redis_server.start()
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        began = time.perf_counter()
        data = prepare(
            buyers=args.buyers,
            clerks=args.clerks,
            app_id=wechat["WECHAT_APP_ID"],
            partner_webhook=f"http://127.0.0.1:{partner_port}/pushes",
        )
        seeded_s = time.perf_counter() - began
        connection.close()
        users_file = workdir / "users.json"
        users_file.write_text(json.dumps(data["users"], ensure_ascii=False), encoding="utf-8")
        sandbox = start_sandbox(sandbox_port, users_file, wechat, max_calls=1_000_000)
        partner_sandbox = start_partner_sandbox(partner_port, data["partner_secret"])
        import requests

        wechat_base = f"http://127.0.0.1:{sandbox_port}"
        partner_base = f"http://127.0.0.1:{partner_port}"
        for buyer in data["buyers"]:
            for template in (PAID_TEMPLATE, SHIPPED_TEMPLATE):
                requests.post(
                    f"{wechat_base}/sandbox/subscriptions",
                    json={"openid": buyer["openid"], "template_id": template, "times": 100_000},
                    timeout=10,
                ).raise_for_status()
        server = start_server(server_env, web_port, args.web_workers, args.threads, server_log)
        worker = start_worker(
            server_env,
            workdir,
            worker_log,
            pool=args.worker_pool,
            concurrency=args.worker_concurrency,
        )
        wait_for_worker(worker)
        base = f"http://127.0.0.1:{web_port}"
        clients = args.browsers + args.buyers + args.clerks + args.partners + 1
        trivial = hammer(base, requests_total=5000, clients=clients)
        if args.redis_restart_at:

            def restart_redis() -> None:
                away = redis_server.restart_after(args.redis_down)
                faults.append(
                    f"Redis killed (SIGKILL) {args.redis_restart_at:g} s into the mix, "
                    f"started again, empty, {away:.1f} s later"
                )

            restarter = threading.Timer(args.redis_restart_at, restart_redis)
            restarter.start()
        day = mix(base, wechat_base, data, args)
        if restarter is not None:
            restarter.join()
        from django.utils import timezone

        mix_ended_at = timezone.now()
        drained = drain(args.drain_seconds)
        sync = lag(wechat_base, partner_base, mix_ended_at, args.seconds)
        book = books(scratch_url, server_env)
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            [server_version] = cursor.fetchone()
    finally:
        for process in (worker, server, partner_sandbox, sandbox):
            try:
                stop(process)
            except Exception as failure:  # keep cleaning up
                print(f"could not stop {process.args[:3]}: {failure!r}", file=sys.stderr)
        drop_scratch(connection, main_database, scratch)
        if restarter is not None:
            restarter.cancel()
            restarter.join()
        redis_server.stop()
        server_errors = server_log_errors(server_log) + worker_log_errors(worker_log)
        server_log.close()
        worker_log.close()
        shutil.rmtree(workdir, ignore_errors=True)

    loadavg_after = [round(x, 2) for x in os.getloadavg()]
    for row in day["operations"]:
        row["per_s_ratio"] = round(row["per_s"] / trivial["per_s"], 4)
        for figure in ("p50", "p99"):
            mine, ceiling = row[f"{figure}_ms"], trivial[f"{figure}_ms"]
            row[f"{figure}_ratio"] = round(mine / ceiling, 1) if mine and ceiling else None
    result = {
        "bench": "sale_day",
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "postgresql": server_version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_before": loadavg_before,
        "loadavg_after": loadavg_after,
        "seconds": args.seconds,
        "browsers": args.browsers,
        "buyers": args.buyers,
        "clerks": args.clerks,
        "partners": args.partners,
        "web_workers": args.web_workers,
        "threads": args.threads,
        "worker_pool": args.worker_pool,
        "worker_concurrency": args.worker_concurrency,
        "seed_s": round(seeded_s, 1),
        "faults": faults,
        "trivial": trivial,
        "mix": day,
        "drain": drained,
        "sync": sync,
        "books": book,
        "server_log": server_errors,
    }
    result["problems"] = verdict(result)
    print_table(result)
    if server_errors:
        print("gunicorn and celery logged (besides 4xx warnings):")
        for line in server_errors:
            print(f"  {line}")
    print(json.dumps(result, ensure_ascii=False, default=str))
    for problem in result["problems"]:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
