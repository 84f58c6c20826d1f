"""The partner loop end to end over HTTP: the platform on Django's live server, the partner
sandbox as the courier's webhook calling the partner API back on the live server, and the
WeChat sandbox taking the shipping-info upload.

A paid delivery order at the warehouse is routed to the courier, pushed (signed by our code,
verified by the sandbox), shipped by the sandbox's callback, uploaded to WeChat, and delivered
by the sandbox's next callback. With the partner down while five orders are paid, every push
waits, and once it is back each is delivered exactly once and each order shipped. Our own push
body and signature headers, as they go out on the wire, are verified by the sandbox, and one
changed byte is refused.
"""

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from django.utils import timezone

from members.services.identity import member_login_wechat
from orders.models import Order, OrderEvent, Payment
from orders.payments import payment_confirm
from orders.pricing import BasketLine
from orders.services import checkout_place
from partners import pushes, signing
from partners.models import PartnerPush
from partners.sandbox import Sandbox, SandboxServer
from partners.services import partner_api_key_issue, partner_signing_secret
from retail.models import OutboxDelivery, OutboxEvent
from retail.outbox import outbox_sweep
from tests.partners.conftest import ADDRESS
from tests.wechat.conftest import LIN
from wechat import sync
from wechat.models import SyncCall
from wechat.sandbox import SANDBOX_APP_ID

TX = "4200002026112500000000000077"
UPLOAD = "/wxa/sec/order/upload_shipping_info"


class GatedSandbox(Sandbox):
    """The partner sandbox, its callbacks to our API held at ``gate``.

    On SQLite the live server shares the test's one in-memory connection, which two threads
    must not use at once: the test holds the gate while it works on the database, and the
    callbacks (which make the live server work on it) wait for it."""

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.gate = threading.Lock()

    def _send(self, callback: dict[str, Any]) -> None:
        with self.gate:
            super()._send(callback)


@pytest.fixture
def partner_sandbox(
    ledger_emptied_after, live_server, courier, warehouse_rule
) -> Iterator[SandboxServer]:
    """The courier played by the sandbox: pushes to it, callbacks to the live server with the
    courier's API key, a shipment 0.2 s after an order.paid push and delivery 0.2 s later."""
    raw_key, _key = partner_api_key_issue(partner=courier)
    server = SandboxServer(
        GatedSandbox(
            secret=partner_signing_secret(partner=courier),
            api_base=live_server.url,
            api_key=raw_key,
            ship_delay=0.2,
            deliver_delay=0.2,
            retry_seconds=0.2,
        )
    ).start()
    courier.webhook_url = f"{server.url}pushes"
    courier.save(update_fields=["webhook_url"])
    yield server
    server.stop()


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def callbacks_settled(server: SandboxServer, count: int) -> Callable[[], bool]:
    """``count`` callbacks made and none still to make; a failed one fails the test at once."""

    def settled() -> bool:
        callbacks = server.sandbox.snapshot()["callbacks"]
        failed = [c for c in callbacks if c["state"] == "failed"]
        assert not failed, failed
        return len(callbacks) == count and all(c["state"] == "sent" for c in callbacks)

    return settled


def callbacks(server: SandboxServer) -> list[tuple]:
    """(kind, order, body, statuses of its attempts) of each callback to our API."""
    return [
        (c["kind"], c["order_number"], c["body"], [a["status"] for a in c["attempts"]])
        for c in server.sandbox.snapshot()["callbacks"]
    ]


def partner_pushes(event_type: str, order: Order) -> OutboxDelivery:
    return OutboxDelivery.objects.get(
        subscriber=pushes.SUBSCRIBER,
        event__event_type=event_type,
        event__aggregate_id=str(order.pk),
    )


@pytest.mark.django_db(transaction=True)
def test_paid_order_pushed_shipped_by_the_partner_uploaded_to_wechat_and_delivered(
    partner_sandbox, wechat_sandbox, goods, warehouse
):
    sandbox: GatedSandbox = partner_sandbox.sandbox
    rice, oil = goods
    with sandbox.gate:
        shopper = member_login_wechat(app_id=SANDBOX_APP_ID, openid=LIN)
        order = checkout_place(
            channel="mini_shop",
            store=warehouse,
            fulfilment="delivery",
            lines=[BasketLine(rice.pk, 2), BasketLine(oil.pk, 1)],
            client_reference="e2e-1",
            member=shopper,
            address=ADDRESS,
        )
        # Paid with WeChat Pay, as its notify confirms it (the pay flow has tests of its own).
        payment = Payment.objects.create(
            order=order,
            provider=sync.WECHAT_PAY,
            out_trade_no=f"P{order.number}",
            amount_fen=order.total_fen,
        )
        payment_confirm(
            provider=sync.WECHAT_PAY,
            out_trade_no=payment.out_trade_no,
            transaction_id=TX,
            amount_fen=payment.amount_fen,
        )
        # The payment's commit routed the order and pushed it: the sandbox verified and took it.
        routed = OutboxEvent.objects.get(event_type="order.routed")
        pushed = [(p["event_id"], p["event_type"]) for p in sandbox.snapshot()["pushes"]]
        assert pushed == [(str(routed.event_id), "order.paid")]

    wait_for(callbacks_settled(partner_sandbox, 2), what="the shipment and the delivery")

    with sandbox.gate:
        assert callbacks(partner_sandbox) == [
            (
                "shipment",
                order.number,
                {"carrier_code": "SF", "tracking_number": "SBX000000001"},
                [201],
            ),
            ("delivery", order.number, {"status": "delivered"}, [200]),
        ]
        order.refresh_from_db()
        assert order.status == "delivered"
        assert list(order.shipments.values_list("carrier_code", "tracking_number")) == [
            ("SF", "SBX000000001")
        ]
        assert list(
            OrderEvent.objects.filter(order=order)
            .order_by("pk")
            .values_list("kind", "to_status", "actor_kind")
        ) == [
            ("order.created", "pending_payment", "shopper"),
            ("order.paid", "paid", "system"),
            ("order.routed", "", "system"),
            ("order.shipped", "shipped", "partner"),
            ("order.delivered", "delivered", "partner"),
        ]
        # Shipped by the partner's call to the live server; the WeChat sync (the outbox
        # delivery ran at that call's commit) uploaded it, named by WeChat's transaction id.
        uploads = wechat_sandbox.sandbox.calls(path=UPLOAD)
        assert [(call["status"], call["answer"]["errcode"]) for call in uploads] == [(200, 0)]
        assert uploads[0]["body"]["order_key"] == {"order_number_type": 2, "transaction_id": TX}
        assert uploads[0]["body"]["shipping_list"] == [
            {
                "tracking_no": "SBX000000001",
                "express_company": "SF",
                "item_desc": "五常大米 5kg×2、花生油 5L×1",
                "contact": {"receiver_contact": "139****5678"},
            }
        ]
        assert list(SyncCall.objects.values_list("kind", "order_number", "state")) == [
            ("shipping", order.number, "sent")
        ]
        shipped = OutboxDelivery.objects.get(
            subscriber=sync.SHIPPING, event__event_type="order.shipped"
        )
        assert (shipped.state, shipped.attempts) == ("delivered", 1)
        assert (partner_pushes("order.routed", order).state, PartnerPush.objects.count()) == (
            "delivered",
            1,
        )


@pytest.mark.django_db(transaction=True)
def test_partner_down_while_five_orders_are_paid_each_push_delivered_once_when_back(
    partner_sandbox, place_paid, goods, warehouse
):
    sandbox: GatedSandbox = partner_sandbox.sandbox
    rice, _oil = goods
    with sandbox.gate:
        sandbox.add_fault("down", times=5)
        orders = [place_paid(warehouse, (rice, 1)) for _order in range(5)]

        rows = [partner_pushes("order.routed", order) for order in orders]
        assert [(row.state, row.attempts, row.last_status_code) for row in rows] == [
            ("failed", 1, 503)
        ] * 5
        assert set(PartnerPush.objects.values_list("status", "attempts")) == {("retrying", 1)}
        assert sandbox.snapshot()["pushes"] == []

        # The partner is back; the backoff is over and the sweeper sends what is due.
        past = timezone.now() - timedelta(seconds=1)
        OutboxDelivery.objects.filter(pk__in=[row.pk for row in rows]).update(
            next_attempt_at=past, lease_until=past
        )
        assert sorted(outbox_sweep()) == sorted(row.pk for row in rows)

        for row in rows:
            row.refresh_from_db()
        assert [(row.state, row.attempts) for row in rows] == [("delivered", 2)] * 5
        assert set(PartnerPush.objects.values_list("status", "attempts", "status_code")) == {
            ("delivered", 2, 200)
        }
        # Nothing else was due: a second sweep sends nothing.
        assert outbox_sweep() == []

    wait_for(callbacks_settled(partner_sandbox, 10), what="five shipments and deliveries")

    with sandbox.gate:
        events = {
            str(event.event_id): event.payload["order"]["number"]
            for event in OutboxEvent.objects.filter(event_type="order.routed")
        }
        state = sandbox.snapshot()
        # Each event taken once, none lost, none twice.
        taken = sorted((p["event_id"], p["order_number"], p["repeats"]) for p in state["pushes"])
        assert taken == sorted((event_id, number, 0) for event_id, number in events.items())
        assert sorted(o.number for o in orders) == sorted(events.values())
        calls = [(c["status"], c["reason"]) for c in state["calls"]]
        assert calls == [(503, "down")] * 5 + [(200, "accepted")] * 5
        made = sorted((kind, number) for kind, number, _body, _s in callbacks(partner_sandbox))
        assert made == sorted((kind, o.number) for kind in ("shipment", "delivery") for o in orders)
        statuses = Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("status")
        assert list(statuses) == [("delivered",)] * 5
        assert Order.objects.filter(shipments__tracking_number__startswith="SBX").count() == 5


# --- our pushes, as they go out on the wire, against the sandbox's verifier --------------------


class Recorder:
    """A webhook that takes every push and keeps its raw bytes and headers."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.requests.append((dict(self.headers.items()), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()


@pytest.mark.django_db
def test_our_push_as_sent_is_verified_by_the_sandbox_and_one_changed_byte_is_refused(
    courier, warehouse_rule, place_paid, warehouse
):
    recorder = Recorder()
    sandbox = SandboxServer(Sandbox(secret=partner_signing_secret(partner=courier))).start()
    try:
        courier.webhook_url = recorder.url
        courier.save(update_fields=["webhook_url"])
        order = place_paid(warehouse)

        routed = OutboxEvent.objects.get(event_type="order.routed")
        ((headers, body),) = recorder.requests
        assert body == pushes.push_body(routed, "order.paid")
        assert (
            headers["X-Partner-Event"],
            headers["X-Partner-Event-Id"],
            headers["Content-Type"],
        ) == ("order.paid", str(routed.event_id), "application/json; charset=utf-8")
        assert abs(int(headers["X-Partner-Timestamp"]) - time.time()) < 60
        assert headers["X-Partner-Signature"] == signing.sign(
            partner_signing_secret(partner=courier), int(headers["X-Partner-Timestamp"]), body
        )
        signed = {name: value for name, value in headers.items() if name.startswith("X-Partner")}
        index = body.index(order.number.encode())  # one digit of the order number
        changed = body[:index] + bytes([body[index] ^ 1]) + body[index + 1 :]
        assert len(changed) == len(body) and changed != body

        refused = requests.post(f"{sandbox.url}pushes", data=changed, headers=signed, timeout=5)
        taken = requests.post(f"{sandbox.url}pushes", data=body, headers=signed, timeout=5)

        assert (refused.status_code, refused.json()["reason"]) == (401, "bad_signature")
        assert (taken.status_code, taken.json()) == (200, {"status": "accepted"})
        state = sandbox.sandbox.snapshot()
        assert [(p["event_id"], p["order_number"]) for p in state["pushes"]] == [
            (str(routed.event_id), order.number)
        ]
        assert [(c["status"], c["reason"]) for c in state["calls"]] == [
            (401, "bad_signature"),
            (200, "accepted"),
        ]
    finally:
        sandbox.stop()
        recorder.stop()
