"""Chaos runs: faults injected while orders flow through the real processes, then the books.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/retail .venv/bin/python bench/chaos.py
        [--scenarios web_kill,worker_kill,partner_down,wechat_faults,redis_restart] [--orders 12]
        [--shoppers 300] [--redis-down 4]

One scratch PostgreSQL database ``bench_chaos_<pid>`` (created, migrated and dropped here; no
other database is touched) and a Redis server of the run's own (``redis-server`` on a free port,
nothing kept on disk: the Celery broker, the result backend and the cache; restarting it touches
no other user of the machine's Redis) serve every scenario. Processes, each in a session of its
own and stopped with it: Redis, the WeChat sandbox and gunicorn (started with
bench/flash_sale.py's helpers), a Celery worker (prefork, two children) and Celery beat (the
outbox sweeper every 15 s) with a short outbox lease and backoff (``OUTBOX_LEASE_SECONDS`` 8,
``OUTBOX_BACKOFF_BASE_SECONDS`` 0.5, ``OUTBOX_BACKOFF_MAX_SECONDS`` 4), and the partner sandbox
(in this process) as the courier's webhook, calling the partner API on gunicorn back with a
shipment and a delivery.

Scenarios (each tens of seconds):

- ``web_kill``: ``--shoppers`` shoppers (flash_sale's seed: one pickup store, one SKU with
  three units for four shoppers) put a unit in their cart and check out with a client reference
  of their own, retrying the same request through connection errors until answered; meanwhile two
  gunicorn workers are killed with SIGKILL (at 10 % and 30 % of the shoppers), then the whole
  gunicorn group (at 50 %), and gunicorn is started again. Books: at most one order per client
  reference, each answered order is the one in the database, the held reservations are exactly
  the unpaid orders' lines (no hold without its order line), the stock row's ``reserved`` agrees.
- ``worker_kill``: ``--orders`` paid delivery orders (WeChat Pay, the payment confirmed as its
  notify would) routed to the courier; the courier's first push is held 4 s and the Celery
  worker group is killed with SIGKILL while it waits, then started again.
- ``partner_down``: the courier answers 503 to the first ``--orders`` pushes while the orders
  are paid.
- ``wechat_faults``: WeChat's shipping-info upload answers busy (-1) three times and holds two
  calls past the platform's 1 s timeout; its subscribe-message send answers busy twice and
  holds one call.
- ``redis_restart``: Redis is killed with SIGKILL after a quarter of ``--orders`` are paid and
  started again, empty, ``--redis-down`` seconds later, while orders are paid and the courier
  calls back: task messages queued or in flight are gone with it, and so are the cached WeChat
  token and the rate-limit counters.

Books of the partner scenarios: every order ``delivered``; each ``order.routed`` event recorded
once by the partner sandbox (by event id; the repeats it answered ``duplicate`` are counted, a
receiver's idempotency is the contract); one shipment and one delivery callback per order, one
shipment row; every outbox delivery of the orders delivered (none failed; dead only a subscribe
message whose call got no answer, which wechat.sync by design does not send twice); exactly one
accepted shipping upload per WeChat transaction and one accepted ``paid`` and ``shipped``
subscribe message per order in the WeChat sandbox's call log (none for a message given up that
way: at most once); one succeeded payment per order.
Every scenario ends with ``manage.py inventory_audit`` and ``manage.py points_audit`` (exit 0).
It prints a table and one JSON line and exits 1 on any lost or duplicated order, payment, push,
callback, upload or message, a 5xx, or a failed audit.
"""

import argparse
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import flash_sale as fs

ROOT = fs.ROOT
SCENARIOS = ("web_kill", "worker_kill", "partner_down", "wechat_faults", "redis_restart")
UPLOAD = "/wxa/sec/order/upload_shipping_info"
MESSAGE = "/cgi-bin/message/subscribe/send"
# The order events that send the shopper a subscribe message (wechat.sync.MESSAGE_FOR_EVENT).
MESSAGES = ("paid", "shipped")
SHORT_OUTBOX = {
    "OUTBOX_LEASE_SECONDS": "8",
    "OUTBOX_BACKOFF_BASE_SECONDS": "0.5",
    "OUTBOX_BACKOFF_MAX_SECONDS": "4",
    "WECHAT_TIMEOUT_SECONDS": "1",
    "WECHAT_RETRY_ATTEMPTS": "2",
    "WECHAT_RETRY_BACKOFF_SECONDS": "0.1",
}
ADDRESS = {
    "name": "王小明",
    "mobile": "13912345678",
    "province": "上海市",
    "city": "上海市",
    "district": "静安区",
    "detail": "愚园路168号5楼",
}
COURIER_OPENID = "oBenchChaosCourier000000000"


def wait_for(check, *, timeout: float, step: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(step)
    return check()


class Celery:
    """``celery -A retail worker`` or ``beat`` in a session of its own, logging to a file."""

    def __init__(self, kind: str, env: dict, workdir: Path) -> None:
        self.kind, self.env, self.workdir = kind, env, workdir
        self.process: subprocess.Popen | None = None
        self.started = 0

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.kind}-{self.started}.log"

    def start(self) -> None:
        self.started += 1
        if self.kind == "worker":
            arguments = [
                *("worker", "--pool", "prefork", "--concurrency", "2"),
                *("--hostname", f"chaos-{self.started}@%h"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            ]
        else:
            arguments = ["beat", "--schedule", str(self.workdir / "beat-schedule")]
        with self.log.open("w") as output:
            self.process = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "celery"), "--app", "retail", *arguments,
                 "--loglevel", "INFO"],
                cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        if self.kind == "worker":
            ready = wait_for(lambda: " ready." in self.log.read_text(), timeout=60)
            if not ready:
                raise SystemExit(f"the Celery worker did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        fs.stop(self.process)


def audits(env: dict) -> dict:
    found = {}
    for command in ("inventory_audit", "points_audit"):
        done = subprocess.run(
            [sys.executable, "manage.py", command],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        found[command] = {"exit": done.returncode, "output": (done.stdout + done.stderr)[-300:]}
    return found


# --- web_kill ---------------------------------------------------------------------------------


def gunicorn_workers(master: int) -> list[int]:
    try:
        text = Path(f"/proc/{master}/task/{master}/children").read_text()
    except OSError:
        return []
    return [int(pid) for pid in text.split()]


def web_kill(ctx: dict) -> dict:
    """Shoppers check out while gunicorn's workers, then gunicorn itself, are killed."""
    import requests
    from django.db.models import Count, Sum

    from inventory.models import Reservation, StockItem
    from orders.models import Order, OrderLine

    data, api = ctx["flash"], f"{ctx['base']}/api/shop/v1"
    shoppers = list(enumerate(data["tokens"]))
    queue = iter(shoppers)
    take, lock = threading.Lock(), threading.Lock()
    done_count = [0]
    answers: dict[str, dict] = {}
    statuses: Counter = Counter()
    kills: list[str] = []

    def send(session, method, url, **kwargs):
        """The same request again through connection errors and 502/503, for up to 60 s."""
        deadline = time.monotonic() + 60
        tries = 0
        while True:
            tries += 1
            try:
                answer = session.request(method, url, timeout=30, **kwargs)
                with lock:
                    statuses[answer.status_code] += 1
                if answer.status_code not in (502, 503) or time.monotonic() > deadline:
                    return answer, tries
            except requests.RequestException as failure:
                with lock:
                    statuses[type(failure).__name__] += 1
                if time.monotonic() > deadline:
                    return None, tries
            time.sleep(0.1)

    def client() -> None:
        session = requests.Session()
        session.headers["Accept-Language"] = "en"
        while True:
            with take:
                shopper = next(queue, None)
            if shopper is None:
                return
            index, token = shopper
            auth = {"Authorization": f"Bearer {token}"}
            reference = f"chaos-web-{index}"
            send(session, "PUT", f"{api}/cart/lines/{data['sku']}/", json={"quantity": 1},
                 headers=auth)  # fmt: skip
            answer, tries = send(
                session, "POST", f"{api}/checkout/", headers=auth,
                json={"fulfilment": "pickup", "store": data["store"], "skus": [data["sku"]],
                      "client_reference": reference},
            )  # fmt: skip
            outcome = {"tries": tries, "status": None, "number": None, "code": None}
            if answer is not None:
                outcome["status"] = answer.status_code
                body = answer.json() if answer.headers.get("content-type", "").startswith(
                    "application/json") else {}  # fmt: skip
                outcome["number"] = body.get("number")
                outcome["code"] = (body.get("error") or {}).get("code")
            with lock:
                answers[reference] = outcome
                done_count[0] += 1

    def killer() -> None:
        total = len(shoppers)
        plan = [(0.1, "worker"), (0.3, "worker"), (0.5, "gunicorn")]
        for share, what in plan:
            wait_for(lambda share=share: done_count[0] >= share * total, timeout=120, step=0.02)
            master = ctx["server"].pid
            if what == "worker":
                workers = gunicorn_workers(master)
                if workers:
                    os.kill(workers[0], signal.SIGKILL)
                    kills.append(f"worker {workers[0]} at {done_count[0]}/{total}")
            else:
                os.killpg(master, signal.SIGKILL)
                ctx["server"].wait(timeout=10)
                kills.append(f"gunicorn group {master} at {done_count[0]}/{total}")
                time.sleep(1)
                ctx["server"] = ctx["restart_server"]()
                kills.append(f"gunicorn up again at {done_count[0]}/{total}")

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(ctx["clients"])]
    chaos = threading.Thread(target=killer)
    for thread in [chaos, *threads]:
        thread.start()
    for thread in threads:
        thread.join()
    chaos.join()
    wall = time.perf_counter() - began

    orders = Order.objects.filter(client_reference__startswith="chaos-web-")
    per_reference = Counter(orders.values_list("client_reference", flat=True))
    numbers = dict(orders.values_list("client_reference", "number"))
    placed = {ref: a for ref, a in answers.items() if a["status"] in (200, 201)}
    refused = {ref: a for ref, a in answers.items() if a["code"] == "insufficient_stock"}
    unanswered = {ref: a for ref, a in answers.items() if ref not in placed and ref not in refused}
    mismatched = [ref for ref, a in placed.items() if numbers.get(ref) != a["number"]]
    orphans = [ref for ref in per_reference if ref not in placed]
    item = StockItem.objects.get(sku_id=data["sku"])
    held = Reservation.objects.filter(stock_item=item, status=Reservation.Status.HELD)
    line_keys = set(
        OrderLine.objects.filter(order__in=orders.filter(status="pending_payment")).values_list(
            "line_key", flat=True
        )
    )
    held_keys = set(held.values_list("line_key", flat=True))
    by_status = dict(
        Reservation.objects.filter(stock_item=item)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    held_units = held.aggregate(units=Sum("quantity"))["units"] or 0
    problems = []
    if any(n > 1 for n in per_reference.values()):
        problems.append("a client reference with two orders")
    if mismatched:
        problems.append(f"{len(mismatched)} answers name another order than the database")
    if orphans:
        problems.append(f"{len(orphans)} orders nobody was told of")
    if unanswered:
        problems.append(f"{len(unanswered)} shoppers unanswered: {list(unanswered.items())[:3]}")
    if held_keys != line_keys:
        problems.append(
            f"holds without an unpaid order line {len(held_keys - line_keys)}, "
            f"unpaid lines without a hold {len(line_keys - held_keys)}"
        )
    if item.reserved != held_units or item.on_hand != ctx["units"]:
        problems.append(f"stock row reserved {item.reserved}/on hand {item.on_hand}")
    if len(placed) != min(ctx["units"], len(shoppers)):
        problems.append(f"{len(placed)} orders placed for {ctx['units']} units")
    fives = {s: n for s, n in statuses.items() if isinstance(s, int) and s >= 500}
    if fives:
        problems.append(f"5xx answers {fives}")
    return {
        "wall_s": round(wall, 1),
        "faults": kills,
        "figures": {
            "shoppers": len(shoppers),
            "orders": orders.count(),
            "placed": len(placed),
            "placed_after_a_retry": sum(1 for a in placed.values() if a["tries"] > 1),
            "answered_200_repeat": sum(1 for a in placed.values() if a["status"] == 200),
            "sold_out": len(refused),
            "unanswered": len(unanswered),
            "held_reservations": len(held_keys),
            "unpaid_order_lines": len(line_keys),
            "reservations": by_status,
            "reserved": item.reserved,
            "on_hand": item.on_hand,
            "calls": {str(s): n for s, n in sorted(statuses.items(), key=str)},
        },
        "problems": problems,
    }


# --- the partner scenarios ----------------------------------------------------------------------


def place_paid(ctx: dict, reference: str):
    """A paid mini-shop delivery order at the warehouse, paid with WeChat Pay (confirmed as its
    notify would): its commit queues the outbox deliveries to the worker."""
    from orders.models import Payment
    from orders.payments import payment_confirm
    from orders.pricing import BasketLine
    from orders.services import checkout_place

    order = checkout_place(
        channel="mini_shop",
        store=ctx["warehouse"],
        fulfilment="delivery",
        lines=[BasketLine(ctx["rice"].pk, 1)],
        client_reference=reference,
        member=ctx["member"],
        address=ADDRESS,
    )
    payment = Payment.objects.create(
        order=order, provider="wechat_pay", out_trade_no=f"P{order.number}",
        amount_fen=order.total_fen,
    )  # fmt: skip
    transaction_id = f"4200002026{uuid.uuid4().int % 10**18:018d}"
    payment_confirm(
        provider="wechat_pay",
        out_trade_no=payment.out_trade_no,
        transaction_id=transaction_id,
        amount_fen=payment.amount_fen,
    )
    return order.pk, transaction_id


def wechat_calls(ctx: dict, path: str) -> list[dict]:
    import requests

    answer = requests.get(f"{ctx['wechat_base']}/sandbox/calls", params={"path": path}, timeout=10)
    body = answer.json()
    return body["calls"] if isinstance(body, dict) else body


def partner_scenario(ctx: dict, name: str) -> dict:
    import requests
    from django.db.models import Count

    from orders.models import Order, Payment, Shipment
    from retail.models import OutboxDelivery, OutboxEvent
    from wechat.sync import UNANSWERED

    # Neither sandbox is reset between scenarios (the courier's tracking numbers would start
    # again and collide with the last scenario's; WeChat would forget its tokens): what each
    # recorded is read for this scenario's events, orders and transactions only.
    sandbox = ctx["partner"].sandbox
    faults: list[str] = []
    if name == "partner_down":
        sandbox.add_fault("down", times=ctx["orders"])
        faults.append(f"courier answers 503 to the first {ctx['orders']} pushes")
    elif name == "worker_kill":
        sandbox.add_fault("slow", times=1, seconds=4.0)
        faults.append("courier holds the first push 4 s")
    elif name == "wechat_faults":
        for spec in (
            {"path": UPLOAD, "mode": "busy", "times": 3},
            {"path": UPLOAD, "mode": "timeout", "seconds": 3, "times": 2},
            {"path": MESSAGE, "mode": "busy", "times": 2},
            {"path": MESSAGE, "mode": "timeout", "seconds": 3, "times": 1},
        ):
            answer = requests.post(f"{ctx['wechat_base']}/sandbox/faults", json=spec, timeout=10)
            answer.raise_for_status()
        faults.append(
            "WeChat upload: busy -1 ×3, then held 3 s (> the 1 s timeout) ×2; subscribe "
            "message: busy ×2, then held 3 s ×1"
        )

    began = time.perf_counter()
    placed: dict[int, str] = {}

    def flow() -> None:
        for number in range(ctx["orders"]):
            order_id, transaction_id = place_paid(ctx, f"chaos-{name}-{number}")
            placed[order_id] = transaction_id
            time.sleep(0.25)

    orders_thread = threading.Thread(target=flow)
    orders_thread.start()
    if name == "redis_restart":
        quarter = max(1, ctx["orders"] // 4)
        if wait_for(lambda: len(placed) >= quarter, timeout=60, step=0.05):
            faults.append(f"Redis killed (SIGKILL) after {len(placed)} orders were paid")
            away = ctx["redis"].restart_after(ctx["redis_down"])
            faults.append(
                f"Redis started again, empty, {away:.1f} s later, after {len(placed)} orders"
            )
        else:
            faults.append("the orders did not flow: Redis was NOT restarted")
    if name == "worker_kill":
        held = wait_for(
            lambda: any(c["status"] is None for c in sandbox.snapshot()["calls"]), timeout=30,
            step=0.05,
        )  # fmt: skip
        if held:
            ctx["worker"].kill()
            faults.append("worker group killed (SIGKILL) while the push was held")
            time.sleep(0.5)
            ctx["worker"].start()
            faults.append("worker started again")
        else:
            faults.append("no push was held: the worker was NOT killed")
    orders_thread.join()
    from django.db import connection

    connection.close()  # the flow thread's own connection closed itself; ours re-opens

    ids = list(placed)

    def settled() -> bool:
        statuses = set(Order.objects.filter(pk__in=ids).values_list("status", flat=True))
        open_deliveries = OutboxDelivery.objects.filter(
            event__aggregate_type="order", event__aggregate_id__in=[str(i) for i in ids]
        ).exclude(state__in=("delivered", "dead"))
        return statuses == {"delivered"} and not open_deliveries.exists()

    wait_for(settled, timeout=90, step=0.5)
    time.sleep(1)  # a late duplicate would land now
    wall = time.perf_counter() - began

    events = OutboxEvent.objects.filter(
        event_type="order.routed", aggregate_id__in=[str(i) for i in ids]
    )
    event_ids = {str(e) for e in events.values_list("event_id", flat=True)}
    state = sandbox.snapshot()
    numbers = dict(Order.objects.filter(pk__in=ids).values_list("pk", "number"))
    state["pushes"] = [p for p in state["pushes"] if p["event_id"] in event_ids]
    state["calls"] = [c for c in state["calls"] if c["event_id"] in event_ids]
    state["callbacks"] = [c for c in state["callbacks"] if c["order_number"] in numbers.values()]
    pushed = Counter(p["event_id"] for p in state["pushes"])
    repeats = sum(p["repeats"] for p in state["pushes"])
    callbacks = Counter((c["kind"], c["order_number"]) for c in state["callbacks"])
    unsent = [c for c in state["callbacks"] if c["state"] != "sent"]
    statuses = Counter(Order.objects.filter(pk__in=ids).values_list("status", flat=True))
    shipments = Counter(
        Shipment.objects.filter(order_id__in=ids).values_list("order_id", flat=True)
    )
    payments = Counter(
        Payment.objects.filter(order_id__in=ids, status="succeeded").values_list(
            "order_id", flat=True
        )
    )
    deliveries = dict(
        OutboxDelivery.objects.filter(
            event__aggregate_type="order", event__aggregate_id__in=[str(i) for i in ids]
        )
        .values_list("state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    retried = OutboxDelivery.objects.filter(
        event__aggregate_type="order", event__aggregate_id__in=[str(i) for i in ids], attempts__gt=1
    ).count()
    by_event = Counter(c["event_id"] for c in state["calls"])
    uploads = [
        call
        for call in wechat_calls(ctx, UPLOAD)
        if ((call.get("body") or {}).get("order_key") or {}).get("transaction_id")
        in set(placed.values())
    ]
    accepted = Counter(
        ((call.get("body") or {}).get("order_key") or {}).get("transaction_id")
        for call in uploads
        if (call.get("answer") or {}).get("errcode") == 0
    )
    upload_answers = Counter(str((c.get("answer") or {}).get("errcode")) for c in uploads)
    templates = {ctx["templates"][name]["template_id"]: name for name in MESSAGES}
    by_page = {f"pages/order/detail?number={n}": n for n in numbers.values()}
    messages = [
        call
        for call in wechat_calls(ctx, MESSAGE)
        if (call.get("body") or {}).get("page") in by_page
    ]
    messages_accepted = Counter(
        (templates.get(call["body"].get("template_id")), by_page[call["body"]["page"]])
        for call in messages
        if (call.get("answer") or {}).get("errcode") == 0
    )
    message_answers = Counter(str((c.get("answer") or {}).get("errcode")) for c in messages)
    # A message whose call got no answer is not sent again (WeChat may have sent it; a shopper
    # must not get it twice): its delivery ends dead, saying so. Nothing else may be dead.
    dead = OutboxDelivery.objects.filter(
        event__aggregate_type="order", event__aggregate_id__in=[str(i) for i in ids], state="dead"
    ).values_list("subscriber", "last_error", "event__event_type", "event__aggregate_id")
    # (template, order number) of each message given up because a worker vanished during its
    # call (killed, or cancelled when it lost Redis): WeChat may have sent it, so by design it
    # is not sent again (at most once); staff can retry it from the console's sync page.
    given_up = {
        (event_type.removeprefix("order."), numbers[int(aggregate_id)])
        for subscriber, error, event_type, aggregate_id in dead
        if subscriber == "wechat_messages" and UNANSWERED in error
    }
    unanswered_messages = len(given_up)

    problems = []
    lost_pushes = event_ids - set(pushed)
    if len(event_ids) != len(ids):
        problems.append(f"{len(event_ids)} order.routed events for {len(ids)} orders")
    if lost_pushes:
        problems.append(f"{len(lost_pushes)} pushes never recorded by the courier")
    for kind in ("shipment", "delivery"):
        wrong = [n for n in numbers.values() if callbacks[(kind, n)] != 1]
        if wrong:
            problems.append(f"{len(wrong)} orders without exactly one {kind} callback")
    if unsent:
        problems.append(f"{len(unsent)} callbacks not accepted")
    if statuses != Counter({"delivered": len(ids)}):
        problems.append(f"orders {dict(statuses)}")
    if any(shipments[i] != 1 for i in ids):
        problems.append("an order without exactly one shipment")
    if any(payments[i] != 1 for i in ids):
        problems.append("an order without exactly one succeeded payment")
    if set(deliveries) - {"delivered", "dead"} or len(dead) != unanswered_messages:
        problems.append(f"outbox deliveries {deliveries}: dead {list(dead)[:3]}")
    wrong_messages = [
        (name, n)
        for name in MESSAGES
        for n in numbers.values()
        if messages_accepted[(name, n)] != 1
        and not (messages_accepted[(name, n)] == 0 and (name, n) in given_up)
    ]
    if wrong_messages:
        problems.append(f"messages not exactly once: {wrong_messages[:5]}")
    wrong_uploads = {t: accepted[t] for t in placed.values() if accepted[t] != 1}
    if wrong_uploads:
        problems.append(f"uploads not exactly once: {wrong_uploads}")
    return {
        "wall_s": round(wall, 1),
        "faults": faults,
        "figures": {
            "orders": len(ids),
            "order_status": dict(statuses),
            "pushes_recorded": len(pushed),
            "push_calls": len(state["calls"]),
            "push_answers": dict(Counter(str(c["reason"]) for c in state["calls"])),
            "push_repeats_answered_duplicate": repeats,
            "events_by_push_calls": dict(sorted(Counter(by_event.values()).items())),
            "callbacks": len(state["callbacks"]),
            "shipments": sum(shipments.values()),
            "payments_succeeded": sum(payments.values()),
            "outbox_deliveries": deliveries,
            "deliveries_retried": retried,
            "upload_calls": len(uploads),
            "upload_answers": dict(upload_answers),
            "uploads_accepted": sum(accepted.values()),
            "message_calls": len(messages),
            "message_answers": dict(message_answers),
            "messages_accepted": sum(messages_accepted.values()),
            "messages_unanswered_not_resent": unanswered_messages,
        },
        "problems": problems,
    }


def seed_partner(ctx: dict) -> None:
    from inventory.services import StockLine, stock_receive
    from members.services.identity import member_login_wechat
    from partners.models import RoutingRule
    from partners.services import partner_api_key_issue, partner_create, partner_signing_secret
    from retail.models import SKU, Category, Product, Store
    from retail.validators import gtin_check_digit

    warehouse = Store.objects.create(
        code="WH-CHAOS", name="混沌仓", kind="warehouse", province="上海市", city="上海市",
        district="嘉定区", address="嘉定路1号", latitude=31.38, longitude=121.25,
        offers_pickup=False, offers_counter_sales=False, delivery_radius_m=0,
    )  # fmt: skip
    category = Category.objects.create(code="CHAOS", name="混沌")
    product = Product.objects.create(code="P-RICE", name="五常大米 5kg", category=category)
    body = "690000000002"
    rice = SKU.objects.create(
        product=product, code="RICE-5KG", barcode=f"{body}{gtin_check_digit(body)}",
        price_fen=3990,
    )  # fmt: skip
    stock_receive(store=warehouse, lines=[StockLine(rice.pk, 1000)], idempotency_key="chaos:wh")
    partner, _secret = partner_create(
        name="混沌快递", kind="fulfilment", webhook_url="http://127.0.0.1:9/pushes",
        stores=[warehouse], cities=["上海市"],
    )  # fmt: skip
    RoutingRule.objects.create(
        name="仓库发货", partner=partner, priority=10, store_kind="warehouse"
    )
    raw_key, _key = partner_api_key_issue(partner=partner)
    ctx.update(
        warehouse=warehouse,
        rice=rice,
        partner_row=partner,
        partner_key=raw_key,
        partner_secret=partner_signing_secret(partner=partner),
        member=member_login_wechat(app_id=ctx["app_id"], openid=COURIER_OPENID),
    )


# --- the run ------------------------------------------------------------------------------------


def print_table(result: dict) -> None:
    print(
        f"chaos {result['date']}: PostgreSQL {result['postgresql']}, Python {result['python']}, "
        f"{result['cpus']} CPUs; total {result['wall_s']} s"
    )
    print(f"{'scenario':<15}{'s':>6}  {'audits':<8}{'verdict':<8}figures")
    for name, run in result["scenarios"].items():
        audit = "ok" if all(a["exit"] == 0 for a in run["audits"].values()) else "FAILED"
        verdict = "ok" if not run["problems"] else "FAILED"
        figures = ", ".join(f"{k} {v}" for k, v in run["figures"].items())
        print(f"{name:<15}{run['wall_s']:>6}  {audit:<8}{verdict:<8}{figures}")
        print(f"{'':<15}faults: {'; '.join(run['faults'])}")
        for problem in run["problems"]:
            print(f"{'':<15}PROBLEM: {problem}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--orders", type=int, default=12, help="paid orders per partner scenario")
    parser.add_argument("--shoppers", type=int, default=300, help="shoppers of web_kill")
    parser.add_argument("--clients", type=int, default=12, help="client threads of web_kill")
    parser.add_argument(
        "--redis-down", type=float, default=4, help="seconds Redis stays down in redis_restart"
    )
    args = parser.parse_args()
    # A SIGTERM (``timeout``, CI) unwinds like an error: the finally below stops every process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not 1 <= args.orders <= 40:
        # The WeChat sandbox keeps its last 200 calls (flash_sale.start_sandbox), read after
        # each scenario: a scenario's uploads, retries and token calls must fit.
        parser.error("--orders must be between 1 and 40")
    if args.shoppers < 4 or args.clients < 1:
        parser.error("--shoppers must be at least 4 and --clients at least 1")
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if unknown := set(chosen) - set(SCENARIOS):
        parser.error(f"unknown scenarios {sorted(unknown)}; choose among {SCENARIOS}")
    url = urlsplit(os.environ.get("DATABASE_URL", ""))
    if url.scheme not in fs.POSTGRES_SCHEMES:
        print("chaos needs PostgreSQL: set DATABASE_URL (see the docstring)", file=sys.stderr)
        return 2

    sandbox_port, web_port = fs.free_port(), fs.free_port()
    workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
    redis_server = fs.RedisServer(workdir)
    wechat = fs.sandbox_env(sandbox_port=sandbox_port, web_port=web_port)
    scratch = f"bench_chaos_{os.getpid()}"
    scratch_url = urlunsplit(url._replace(path=f"/{scratch}"))
    secret_key = secrets.token_urlsafe(40)

    shared = {
        **wechat,
        **SHORT_OUTBOX,
        "REDIS_URL": redis_server.url,
        "SECRET_KEY": secret_key,
        "PARTNER_SECRET_KEY": secrets.token_urlsafe(32),
    }
    os.environ.update(shared)  # this process seeds and publishes as the servers do
    # The subscribe messages DEBUG configures (the servers run without DEBUG). Imported once the
    # environment above is in place: Django's settings are this module.
    from retail.settings import _SANDBOX_SUBSCRIBE_TEMPLATES as templates

    shared["WECHAT_SUBSCRIBE_TEMPLATES"] = os.environ["WECHAT_SUBSCRIBE_TEMPLATES"] = json.dumps(
        templates
    )
    import django
    import requests

    django.setup()
    from django.db import connection

    server_env = {
        **os.environ,
        **shared,
        "DATABASE_URL": scratch_url,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "CONN_MAX_AGE": "0",
        "SHOP_THROTTLE_CHECKOUT_SHOPPER": "100000/min",
        "SHOP_THROTTLE_CHECKOUT_IP": "100000/min",
        "SHOP_THROTTLE_LOGIN_IP": "100000/min",
        "PARTNER_THROTTLE_RATE": "100000/min",
    }
    main_database = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = scratch
    server_log = (workdir / "gunicorn.log").open("w+", encoding="utf-8")
    ctx: dict = {
        "app_id": wechat["WECHAT_APP_ID"], "orders": args.orders, "templates": templates,
        "redis": redis_server, "redis_down": args.redis_down,
    }  # fmt: skip
    sandbox = partner = None
    worker = Celery("worker", server_env, workdir)
    beat = Celery("beat", server_env, workdir)
    results: dict[str, dict] = {}
    began = time.perf_counter()
    try:
        redis_server.start()
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        units = args.shoppers * 3 // 4
        flash = {"users": []}
        if "web_kill" in chosen:
            flash = fs.prepare(shoppers=args.shoppers, units=units, app_id=ctx["app_id"])
        seed_partner(ctx)
        connection.close()
        users = [*flash["users"], {"openid": COURIER_OPENID, "nickname": "混沌"}]
        users_file = workdir / "users.json"
        users_file.write_text(json.dumps(users, ensure_ascii=False), encoding="utf-8")
        sandbox = fs.start_sandbox(sandbox_port, users_file, wechat)
        for name in MESSAGES:  # the courier scenarios' shopper allowed each message, often
            requests.post(
                f"http://127.0.0.1:{sandbox_port}/sandbox/subscriptions",
                json={"openid": COURIER_OPENID, "template_id": templates[name]["template_id"],
                      "times": 1000},
                timeout=10,
            ).raise_for_status()  # fmt: skip

        def restart_server():
            return fs.start_server(server_env, web_port, 2, 4, server_log)

        ctx.update(
            flash=flash, units=units, clients=args.clients, server=restart_server(),
            restart_server=restart_server, base=f"http://127.0.0.1:{web_port}",
            wechat_base=f"http://127.0.0.1:{sandbox_port}", worker=worker,
        )  # fmt: skip
        from partners.sandbox import Sandbox, SandboxServer

        logging.getLogger("partners.sandbox").setLevel(logging.WARNING)  # one line a callback

        partner = SandboxServer(
            Sandbox(
                secret=ctx["partner_secret"], api_base=ctx["base"], api_key=ctx["partner_key"],
                ship_delay=0.3, deliver_delay=0.3, retry_seconds=0.5, callback_attempts=20,
            )
        ).start()  # fmt: skip
        ctx["partner"] = partner
        ctx["partner_row"].webhook_url = f"{partner.url}pushes"
        ctx["partner_row"].save(update_fields=["webhook_url"])
        connection.close()
        worker.start()
        beat.start()
        for name in chosen:
            print(f"scenario {name} ...", file=sys.stderr)
            run = web_kill(ctx) if name == "web_kill" else partner_scenario(ctx, name)
            run["audits"] = audits({**server_env})
            for command, audit in run["audits"].items():
                if audit["exit"] != 0:
                    run["problems"].append(f"{command} exit {audit['exit']}: {audit['output']}")
            results[name] = run
            print(f"  {name}: {run['wall_s']} s, problems {run['problems']}", file=sys.stderr)
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            [server_version] = cursor.fetchone()
    finally:
        for stopping in (beat.stop, worker.stop, lambda: fs.stop(ctx.get("server"))):
            try:
                stopping()
            except Exception as failure:  # keep cleaning up
                print(f"could not stop a process: {failure!r}", file=sys.stderr)
        if partner is not None:
            partner.stop()
        fs.stop(sandbox)
        fs.drop_scratch(connection, main_database, scratch)
        redis_server.stop()
        errors = fs.server_log_errors(server_log)
        server_log.close()
        shutil.rmtree(workdir, ignore_errors=True)

    result = {
        "bench": "chaos",
        "date": time.strftime("%Y-%m-%d"),
        "postgresql": server_version,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "wall_s": round(time.perf_counter() - began, 1),
        "scenarios": results,
        "server_log": errors,
    }
    print_table(result)
    if errors:
        print("gunicorn logged (besides 4xx warnings):")
        for line in errors:
            print(f"  {line}")
    print(json.dumps(result, ensure_ascii=False, default=str))
    failed = [f"{name}: {p}" for name, run in results.items() for p in run["problems"]]
    for problem in failed:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
