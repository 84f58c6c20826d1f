"""partners.pushes against the partner sandbox over real sockets: the sandbox runs on a port of
its own with the partner's signing secret and is the partner's webhook, so every push is signed
by our code and verified by the sandbox's. With eager Celery the outbox delivery runs when the
payment (or refund, address change, shipment) commits.

Proves who is told what (the fulfiller: order.paid from the routing, then refunded, cancelled,
address changed; the seller: paid and shipped; nobody before payment, for a pickup order or an
order no rule routes, without a webhook or while inactive), the exact body, and what the
partner's answers do: 2xx delivered, 500/503/timeout retried until it takes the push once,
401 given up with the answer kept until staff retry it (and a later automatic attempt of the
same delivery does not send it again), a push never sent twice once taken.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import Order
from orders.payments import refund_create
from orders.services import order_address_change
from partners import pushes
from partners.models import PartnerOrder, PartnerPush
from partners.orders import OrderRequest, partner_order_place, partner_shipment_post
from partners.sandbox import Sandbox, SandboxServer
from partners.services import partner_signing_secret
from retail.models import OutboxAttempt, OutboxDelivery, OutboxEvent
from retail.outbox import Result, done, outbox_delivery_attempt, outbox_delivery_retry
from tests.partners.conftest import ADDRESS

pytestmark = pytest.mark.django_db

NEW_ADDRESS = {**ADDRESS, "district": "徐汇区", "detail": "漕溪北路88号"}


@pytest.fixture
def start_sandbox():
    """A sandbox for ``partner``, playing it with its real signing secret; the partner's
    webhook is the sandbox's ``/pushes``."""
    servers: list[SandboxServer] = []

    def start(partner, **options) -> SandboxServer:
        options.setdefault("secret", partner_signing_secret(partner=partner))
        server = SandboxServer(Sandbox(**options)).start()
        servers.append(server)
        partner.webhook_url = f"{server.url}pushes"
        partner.save(update_fields=["webhook_url"])
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox(start_sandbox, courier, warehouse_rule) -> SandboxServer:
    """The courier played by the sandbox; delivery orders from the warehouse go to it."""
    return start_sandbox(courier)


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Commit as a service does: the outbox's deliveries run (eager Celery) on the way out."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def routed(order: Order) -> OutboxEvent:
    return OutboxEvent.objects.get(event_type="order.routed", aggregate_id=str(order.pk))


def delivery(order: Order, event_type: str) -> OutboxDelivery:
    return OutboxDelivery.objects.get(
        subscriber=pushes.SUBSCRIBER,
        event__event_type=event_type,
        event__aggregate_id=str(order.pk),
    )


def state(row: OutboxDelivery) -> tuple:
    row.refresh_from_db()
    return row.state, row.attempts, row.last_status_code, row.last_error


def outcomes(row: OutboxDelivery) -> list[tuple]:
    return list(
        OutboxAttempt.objects.filter(delivery=row)
        .order_by("number")
        .values_list("outcome", "status_code")
    )


def due_now(row: OutboxDelivery) -> None:
    """The delivery's backoff is over (what its retry message's ETA waits for)."""
    OutboxDelivery.objects.filter(pk=row.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def received(server: SandboxServer) -> list[tuple]:
    """What the sandbox took in (verified, once per event id): (event id, type, order)."""
    return [
        (push["event_id"], push["event_type"], push["order_number"])
        for push in server.sandbox.snapshot()["pushes"]
    ]


def calls(server: SandboxServer) -> list[tuple]:
    """Every push call the sandbox answered: (type, status, reason)."""
    return [
        (call["event_type"], call["status"], call["reason"])
        for call in server.sandbox.snapshot()["calls"]
    ]


def body(server: SandboxServer, event_id) -> dict:
    (push,) = [p for p in server.sandbox.snapshot()["pushes"] if p["event_id"] == str(event_id)]
    return push["body"]


def push_rows() -> list[tuple]:
    return list(
        PartnerPush.objects.order_by("pk").values_list(
            "partner__name", "event_type", "order_number", "status", "attempts", "status_code"
        )
    )


def wait_for(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def order_data(
    order: Order, *, status: str = "paid", address: dict = ADDRESS, refunded_fen: int = 0
) -> dict:
    """The order as a push shows it, for the default basket (2 rice, 1 oil) from WH01."""
    order.refresh_from_db()
    number = order.number
    return {
        "number": number,
        "status": status,
        "channel": "mini_shop",
        "fulfilment": "delivery",
        "store": {"code": "WH01", "name": "嘉定仓"},
        "subtotal_fen": 13880,
        "discount_fen": 0,
        "shipping_fen": 0,
        "total_fen": 13880,
        "paid_fen": 13880,
        "refunded_fen": refunded_fen,
        "address": address,
        "note": "",
        "pickup_code": "",
        "created_at": order.created_at.isoformat(),
        "paid_at": order.paid_at.isoformat(),
        "lines": [
            {
                "line_key": f"{number}-1",
                "sku_code": "RICE-5KG",
                "product_name": "五常大米 5kg",
                "quantity": 2,
                "unit_price_fen": 3990,
                "total_fen": 7980,
            },
            {
                "line_key": f"{number}-2",
                "sku_code": "OIL-5L",
                "product_name": "花生油 5L",
                "quantity": 1,
                "unit_price_fen": 5900,
                "total_fen": 5900,
            },
        ],
        "shipments": [],
    }


# --- who is told what -------------------------------------------------------------------------


def test_a_paid_order_routed_to_the_courier_is_pushed_once_as_order_paid(
    sandbox, place_paid, warehouse
):
    order = place_paid(warehouse)

    event = routed(order)
    assert received(sandbox) == [(str(event.event_id), "order.paid", order.number)]
    assert calls(sandbox) == [("order.paid", 200, "accepted")]
    # The exact body: the event's id, the push type, when it happened and the order as it
    # stood, without our row ids.
    assert body(sandbox, event.event_id) == {
        "id": str(event.event_id),
        "type": "order.paid",
        "created_at": event.created_at.isoformat(),
        "data": {"order": order_data(order)},
    }
    assert push_rows() == [("顺丰同城", "order.paid", order.number, "delivered", 1, 200)]
    assert PartnerPush.objects.get().answer == '{"status": "accepted"}'
    assert state(delivery(order, "order.routed")) == ("delivered", 1, None, "")
    # The payment's own event concerns no seller: delivered without a call.
    assert state(delivery(order, "order.paid")) == ("delivered", 1, None, "")


def test_a_full_refund_pushes_refunded_then_cancelled(sandbox, place_paid, warehouse, commit):
    order = place_paid(warehouse)

    with commit():
        refund_create(order=order, amount_fen=13880, reason="缺货", actor=None)

    order.refresh_from_db()
    assert (order.status, order.refunded_fen) == ("cancelled", 13880)
    refunded = OutboxEvent.objects.get(event_type="refund.succeeded")
    cancelled = OutboxEvent.objects.get(event_type="order.cancelled")
    assert received(sandbox) == [
        (str(routed(order).event_id), "order.paid", order.number),
        (str(refunded.event_id), "order.refunded", order.number),
        (str(cancelled.event_id), "order.cancelled", order.number),
    ]
    assert body(sandbox, refunded.event_id)["data"] == {
        "order": order_data(order, status="paid", refunded_fen=13880),
        "refund": {"amount_fen": 13880},
    }
    assert body(sandbox, cancelled.event_id) == {
        "id": str(cancelled.event_id),
        "type": "order.cancelled",
        "created_at": cancelled.created_at.isoformat(),
        "data": {"order": order_data(order, status="cancelled", refunded_fen=13880)},
    }
    assert [row[1:4] for row in push_rows()] == [
        ("order.paid", order.number, "delivered"),
        ("order.refunded", order.number, "delivered"),
        ("order.cancelled", order.number, "delivered"),
    ]


def test_an_address_change_after_payment_is_pushed(sandbox, place_paid, warehouse, commit):
    order = place_paid(warehouse)

    with commit():
        order_address_change(order=order, address=NEW_ADDRESS)

    changed = OutboxEvent.objects.get(event_type="order.address_changed")
    assert [push[1] for push in received(sandbox)] == ["order.paid", "order.address_changed"]
    assert body(sandbox, changed.event_id) == {
        "id": str(changed.event_id),
        "type": "order.address_changed",
        "created_at": changed.created_at.isoformat(),
        "data": {"order": order_data(order, address=NEW_ADDRESS)},
    }
    assert state(delivery(order, "order.address_changed")) == ("delivered", 1, None, "")


def test_nothing_is_pushed_before_payment(sandbox, testpay, member, goods, warehouse, commit):
    from orders.payments import payment_confirm, payment_start
    from orders.pricing import BasketLine
    from orders.services import checkout_place

    rice, _oil = goods
    with commit():
        order = checkout_place(
            channel="mini_shop",
            store=warehouse,
            fulfilment="delivery",
            lines=[BasketLine(rice.pk, 1)],
            client_reference="mini-early",
            member=member,
            address=ADDRESS,
        )
    with commit():
        order_address_change(order=order, address=NEW_ADDRESS)

    assert (calls(sandbox), PartnerPush.objects.count(), PartnerOrder.objects.count()) == (
        [],
        0,
        0,
    )
    # Not routed yet, so nobody to tell: the delivery is done without a call.
    assert state(delivery(order, "order.address_changed")) == ("delivered", 1, None, "")

    with commit():
        payment, _start = payment_start(order=order, provider=testpay)
        payment_confirm(
            provider=testpay,
            out_trade_no=payment.out_trade_no,
            transaction_id="tx-early",
            amount_fen=payment.amount_fen,
        )

    assert [push[1:] for push in received(sandbox)] == [("order.paid", order.number)]
    assert body(sandbox, routed(order).event_id)["data"]["order"]["address"] == NEW_ADDRESS


def test_a_pickup_order_and_an_order_no_rule_routes_push_nothing(
    sandbox, place_paid, store_a, warehouse
):
    store_a.offers_ship_from_store = True
    store_a.save(update_fields=["offers_ship_from_store"])

    pickup = place_paid(store_a, fulfilment="pickup")
    from_store = place_paid(store_a)  # the courier serves store A, but no rule routes it

    assert (pickup.status, from_store.status, from_store.fulfilment) == ("paid", "paid", "delivery")
    assert (calls(sandbox), PartnerPush.objects.count(), PartnerOrder.objects.count()) == (
        [],
        0,
        0,
    )
    assert not OutboxEvent.objects.filter(event_type="order.routed").exists()
    # The pickup order's events do not even reach the subscriber; the delivery's are done.
    assert not OutboxDelivery.objects.filter(event__aggregate_id=str(pickup.pk)).exists()
    assert state(delivery(from_store, "order.paid")) == ("delivered", 1, None, "")


def test_a_sales_channel_order_tells_the_seller_paid_then_shipped(
    start_sandbox, courier, channel, warehouse_rule, goods, commit
):
    courier_sandbox = start_sandbox(courier)
    seller_sandbox = start_sandbox(channel)
    request = OrderRequest(
        store_code="WH01", fulfilment="delivery", lines=[("RICE-5KG", 1)], address=ADDRESS
    )

    with commit():
        link, created = partner_order_place(
            partner=channel, idempotency_key="mt-order-0001", request=request
        )
    order = link.order

    paid = OutboxEvent.objects.get(event_type="order.paid")
    assert created is True
    assert received(seller_sandbox) == [(str(paid.event_id), "order.paid", order.number)]
    assert received(courier_sandbox) == [(str(routed(order).event_id), "order.paid", order.number)]
    seller_body = body(seller_sandbox, paid.event_id)
    assert (seller_body["data"]["order"]["channel"], seller_body["data"]["order"]["status"]) == (
        "partner",
        "paid",
    )

    with commit():
        partner_shipment_post(
            partner=courier,
            number=order.number,
            carrier_code="SF",
            tracking_number="SF1000000001",
            line_keys=None,
        )

    shipped = OutboxEvent.objects.get(event_type="order.shipped")
    assert [push[1] for push in received(seller_sandbox)] == ["order.paid", "order.shipped"]
    assert [push[1] for push in received(courier_sandbox)] == ["order.paid"]  # it shipped it
    assert body(seller_sandbox, shipped.event_id)["data"]["order"]["shipments"] == [
        {
            "carrier_code": "SF",
            "tracking_number": "SF1000000001",
            "shipped_at": order.shipments.get().shipped_at.isoformat(),
            "line_keys": [f"{order.number}-1"],
        }
    ]
    assert sorted(push_rows()) == [
        ("美团闪购", "order.paid", order.number, "delivered", 1, 200),
        ("美团闪购", "order.shipped", order.number, "delivered", 1, 200),
        ("顺丰同城", "order.paid", order.number, "delivered", 1, 200),
    ]


def test_a_partner_without_a_webhook_is_sent_nothing(sandbox, courier, place_paid, warehouse):
    courier.webhook_url = ""
    courier.save(update_fields=["webhook_url"])

    order = place_paid(warehouse)

    assert PartnerOrder.objects.get(order=order).partner == courier  # routed all the same
    assert (calls(sandbox), PartnerPush.objects.count()) == ([], 0)
    assert state(delivery(order, "order.routed")) == ("delivered", 1, None, "")


def test_an_inactive_partner_is_sent_nothing(sandbox, courier, place_paid, warehouse, commit):
    order = place_paid(warehouse)
    courier.active = False
    courier.save(update_fields=["active"])

    with commit():
        order_address_change(order=order, address=NEW_ADDRESS)

    assert calls(sandbox) == [("order.paid", 200, "accepted")]
    assert push_rows() == [("顺丰同城", "order.paid", order.number, "delivered", 1, 200)]
    assert state(delivery(order, "order.address_changed")) == ("delivered", 1, None, "")


# --- what the partner's answers do --------------------------------------------------------------


def test_a_500_is_retried_and_delivered_once_when_the_partner_is_back(
    sandbox, place_paid, warehouse
):
    sandbox.sandbox.add_fault("error")

    order = place_paid(warehouse)

    row = delivery(order, "order.routed")
    error = 'HTTP 500: {"error": "error", "reason": "error"}'
    assert state(row) == ("failed", 1, 500, error)
    assert push_rows() == [("顺丰同城", "order.paid", order.number, "retrying", 1, 500)]
    assert PartnerPush.objects.get().answer == error
    assert received(sandbox) == []

    due_now(row)
    assert outbox_delivery_attempt(delivery_id=row.pk) == Result.DELIVERED

    assert state(row) == ("delivered", 2, None, "")
    assert outcomes(row) == [("retry", 500), ("done", None)]
    assert push_rows() == [("顺丰同城", "order.paid", order.number, "delivered", 2, 200)]
    assert received(sandbox) == [(str(routed(order).event_id), "order.paid", order.number)]
    assert calls(sandbox) == [("order.paid", 500, "error"), ("order.paid", 200, "accepted")]


def test_down_three_times_then_back_is_delivered_once_after_four_attempts(
    sandbox, place_paid, warehouse
):
    sandbox.sandbox.add_fault("down", times=3)

    order = place_paid(warehouse)
    row = delivery(order, "order.routed")
    results = []
    for _attempt in range(3):
        due_now(row)
        results.append(outbox_delivery_attempt(delivery_id=row.pk))

    assert results == [Result.FAILED, Result.FAILED, Result.DELIVERED]
    assert state(row) == ("delivered", 4, None, "")
    assert outcomes(row) == [("retry", 503)] * 3 + [("done", None)]
    assert push_rows() == [("顺丰同城", "order.paid", order.number, "delivered", 4, 200)]
    assert received(sandbox) == [(str(routed(order).event_id), "order.paid", order.number)]
    assert calls(sandbox) == [("order.paid", 503, "down")] * 3 + [("order.paid", 200, "accepted")]


def test_a_refusal_is_given_up_with_the_answer_kept_until_staff_retry(
    sandbox, place_paid, warehouse, commit, hq_user, courier
):
    sandbox.sandbox.secret = "not-what-we-sign-with"  # the partner configured a wrong secret

    order = place_paid(warehouse)

    row = delivery(order, "order.routed")
    answer = 'HTTP 401: {"error": "no v1 signature matches the body", "reason": "bad_signature"}'
    assert state(row) == ("dead", 1, 401, answer)
    assert outcomes(row) == [("give_up", 401)]
    push = PartnerPush.objects.get()
    assert (push.status, push.attempts, push.status_code, push.answer) == (
        "failed",
        1,
        401,
        answer,
    )
    assert (received(sandbox), calls(sandbox)) == ([], [("order.paid", 401, "bad_signature")])

    sandbox.sandbox.secret = partner_signing_secret(partner=courier)
    with commit():
        outbox_delivery_retry(delivery=row, actor=hq_user)

    assert state(row) == ("delivered", 2, None, "")
    assert push_rows() == [("顺丰同城", "order.paid", order.number, "delivered", 2, 200)]
    assert received(sandbox) == [(str(routed(order).event_id), "order.paid", order.number)]


def test_a_slow_partner_times_out_and_the_repeat_is_taken_as_done(
    sandbox, place_paid, warehouse, settings
):
    settings.PARTNER_PUSH_TIMEOUT_SECONDS = 0.5
    sandbox.sandbox.add_fault("slow", seconds=1.0)

    order = place_paid(warehouse)

    row = delivery(order, "order.routed")
    timeout = (
        f"ReadTimeout: HTTPConnectionPool(host='127.0.0.1', port={sandbox.port}): "
        "Read timed out. (read timeout=0.5)"
    )
    assert state(row) == ("failed", 1, None, timeout)
    assert push_rows() == [("顺丰同城", "order.paid", order.number, "retrying", 1, None)]
    # The partner took it in after we stopped waiting: our retry is its repeat.
    wait_for(lambda: calls(sandbox) == [("order.paid", 200, "accepted")])

    due_now(row)
    assert outbox_delivery_attempt(delivery_id=row.pk) == Result.DELIVERED

    assert push_rows() == [("顺丰同城", "order.paid", order.number, "delivered", 2, 200)]
    assert calls(sandbox) == [("order.paid", 200, "accepted"), ("order.paid", 200, "duplicate")]
    assert [push["repeats"] for push in sandbox.sandbox.snapshot()["pushes"]] == [1]


def test_a_push_the_partner_took_is_not_sent_again(
    sandbox, place_paid, warehouse, django_assert_num_queries
):
    order = place_paid(warehouse)
    event = routed(order)

    # The delivery runs again (a lost worker's message, another partner that was down): the
    # push row says the partner has it.
    with django_assert_num_queries(2):
        assert pushes.push_deliver(event) == done()

    assert calls(sandbox) == [("order.paid", 200, "accepted")]
    assert push_rows() == [("顺丰同城", "order.paid", order.number, "delivered", 1, 200)]


def test_a_refused_push_is_not_sent_again_by_a_later_automatic_attempt_after_a_staff_retry(
    start_sandbox, courier, channel, warehouse_rule, goods, commit, hq_user
):
    """One event, two partners: the seller refuses (401), the courier is down. Staff retry the
    delivery, which sends to the seller once more; the automatic attempt that follows only
    sends to the courier."""
    courier_sandbox = start_sandbox(courier)
    seller_sandbox = start_sandbox(channel)
    request = OrderRequest(
        store_code="WH01", fulfilment="delivery", lines=[("RICE-5KG", 1)], address=ADDRESS
    )
    with commit():
        link, _created = partner_order_place(
            partner=channel, idempotency_key="mt-order-0002", request=request
        )
    order = link.order
    seller_sandbox.sandbox.secret = "not-what-we-sign-with"
    courier_sandbox.sandbox.add_fault("down", times=2)

    with commit():
        refund_create(order=order, amount_fen=order.paid_fen, reason="缺货", actor=None)
    row = delivery(order, "refund.succeeded")
    assert state(row)[:3] == ("failed", 1, 503)

    with commit():
        outbox_delivery_retry(delivery=row, actor=hq_user)
    assert state(row)[:3] == ("failed", 2, 503)

    due_now(row)
    assert outbox_delivery_attempt(delivery_id=row.pk) == Result.DEAD

    assert [c for c in calls(seller_sandbox) if c[0] == "order.refunded"] == [
        ("order.refunded", 401, "bad_signature")
    ] * 2
    assert [c for c in calls(courier_sandbox) if c[0] == "order.refunded"] == [
        ("order.refunded", 503, "down"),
        ("order.refunded", 503, "down"),
        ("order.refunded", 200, "accepted"),
    ]
    refunded = PartnerPush.objects.filter(event_type="order.refunded").order_by("partner__name")
    assert [(p.partner.name, p.status, p.attempts, p.status_code) for p in refunded] == [
        ("美团闪购", "failed", 2, 401),
        ("顺丰同城", "delivered", 3, 200),
    ]
