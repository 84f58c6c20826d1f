"""What the orders services give partners: a delivery address changed before the goods leave
(``order_address_change``), a failed delivery on the timeline (``order_delivery_failed``),
and orders placed by a partner for its own customer (channel ``partner``, no member)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from inventory.models import StockItem
from orders.models import Channel, Fulfilment, Order, OrderEvent
from orders.pricing import BasketLine
from orders.services import (
    checkout_place,
    order_address_change,
    order_delivery_failed,
    shipment_create,
)
from retail.errors import BusinessError
from retail.models import OutboxEvent
from tests.orders.conftest import ADDRESS

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
MOVED = {
    "name": "王小明",
    "mobile": "13912345678",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "detail": "文三路90号",
}


@pytest.fixture
def delivery(place, water, milk):
    """A delivery order from store A: 2 waters and a milk, waiting for payment."""
    return place((water, 2), (milk, 1), fulfilment=Fulfilment.DELIVERY)


def refused(call, **kwargs) -> BusinessError:
    with pytest.raises(BusinessError) as error:
        call(**kwargs)
    return error.value


def snapshot(order: Order) -> tuple:
    order.refresh_from_db()
    return (
        order.status,
        order.address,
        order.updated_at,
        OrderEvent.objects.filter(order=order).count(),
        OutboxEvent.objects.count(),
    )


# --- order_address_change -----------------------------------------------------------------------


@pytest.mark.parametrize("paid", [False, True], ids=["pending_payment", "paid"])
def test_the_address_of_a_delivery_order_not_yet_sent_changes(delivery, pay, hq_user, paid):
    if paid:
        pay(delivery)
    later = NOW + timedelta(days=400)

    with time_machine.travel(later, tick=False):
        changed = order_address_change(
            order=delivery.pk, address={**MOVED, "detail": " 文三路90号 "}, actor=hq_user
        )

    delivery.refresh_from_db()
    assert changed.address == delivery.address == MOVED
    assert delivery.updated_at == later
    assert delivery.status == ("paid" if paid else "pending_payment")
    event = OrderEvent.objects.get(order=delivery, kind="order.address_changed")
    assert (
        event.from_status,
        event.to_status,
        event.actor,
        event.actor_kind,
        event.data,
    ) == ("", "", hq_user, "staff", {"previous_city": "上海市", "city": "杭州市"})
    published = OutboxEvent.objects.get(event_type="order.address_changed")
    assert published.aggregate_id == str(delivery.pk)
    assert published.payload["order"]["address"] == MOVED
    assert published.payload["event"]["data"] == event.data


def test_a_partner_changes_the_address_as_a_partner(delivery):
    order_address_change(order=delivery, address=MOVED, actor_kind="partner")

    event = OrderEvent.objects.get(order=delivery, kind="order.address_changed")
    assert (event.actor, event.actor_kind) == (None, "partner")


def test_the_same_address_again_changes_nothing(delivery):
    order_address_change(order=delivery, address=MOVED)
    before = snapshot(delivery)

    again = order_address_change(order=delivery, address={**MOVED, "city": " 杭州市 "})

    assert again.address == MOVED
    assert snapshot(delivery) == before
    assert OrderEvent.objects.filter(kind="order.address_changed").count() == 1


def test_a_pickup_order_has_no_address_to_change(place, water):
    pickup = place((water, 1))
    before = snapshot(pickup)

    error = refused(order_address_change, order=pickup, address=MOVED)

    assert (error.code, error.status_code, error.fields) == (
        "not_a_delivery",
        409,
        {"fulfilment": ["pickup"]},
    )
    assert snapshot(pickup) == before


@pytest.mark.parametrize("shipped", ["partly", "wholly"])
def test_once_goods_have_left_the_address_is_locked(delivery, pay, english, shipped):
    pay(delivery)
    line_keys = [f"{delivery.number}-1"] if shipped == "partly" else None
    shipment_create(order=delivery, carrier_code="SF", tracking_number="SF1", line_keys=line_keys)
    before = snapshot(delivery)

    error = refused(order_address_change, order=delivery, address=MOVED)

    status = "paid" if shipped == "partly" else "shipped"
    assert (error.code, error.status_code, error.message, error.fields) == (
        "address_locked",
        409,
        "The goods have left: the address can no longer change.",
        {"status": [status]},
    )
    assert snapshot(delivery) == before
    assert before[0] == status


def test_a_cancelled_order_keeps_its_address(delivery):
    from orders.services import order_cancel

    order_cancel(order=delivery, cause="staff")
    before = snapshot(delivery)

    error = refused(order_address_change, order=delivery, address=MOVED)

    assert (error.code, error.fields) == ("address_locked", {"status": ["cancelled"]})
    assert snapshot(delivery) == before


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"mobile": ""}, "address.mobile", ""),
        ({"detail": "   "}, "address.detail", ""),
        ({"city": "城" * 33}, "address.city", "城" * 33),
    ],
)
def test_an_invalid_address_changes_nothing(delivery, english, change, field, value):
    before = snapshot(delivery)

    error = refused(order_address_change, order=delivery, address={**MOVED, **change})

    assert (error.code, error.status_code, error.fields) == (
        "invalid_address",
        400,
        {field: [value]},
    )
    assert error.message == f"The delivery address needs a valid “{field.split('.')[1]}”."
    assert snapshot(delivery) == before
    assert before[1] == ADDRESS


# --- order_delivery_failed ----------------------------------------------------------------------


@pytest.fixture
def shipped(delivery, pay):
    pay(delivery)
    shipment_create(order=delivery, carrier_code="SF", tracking_number="SF1")
    delivery.refresh_from_db()
    assert delivery.status == "shipped"
    return delivery


def test_a_failed_delivery_goes_on_the_timeline_and_the_order_stays_shipped(shipped, hq_user):
    reason = " 收件人不在家," + "再联系" * 100

    order = order_delivery_failed(
        order=shipped.pk, reason=reason, actor=hq_user, actor_kind="staff"
    )

    assert order.status == Order.objects.get(pk=shipped.pk).status == "shipped"
    event = OrderEvent.objects.get(order=shipped, kind="order.delivery_failed")
    assert (event.from_status, event.to_status, event.actor, event.actor_kind) == (
        "",
        "",
        hq_user,
        "staff",
    )
    assert event.note == event.data["reason"] == reason.strip()[:200]
    assert len(event.note) == 200
    assert OutboxEvent.objects.filter(event_type="order.delivery_failed").count() == 1


def test_a_failed_delivery_twice_is_noted_twice(shipped):
    order_delivery_failed(order=shipped, reason="不在家", actor_kind="partner")
    order_delivery_failed(order=shipped, reason="拒收", actor_kind="partner")

    assert list(
        OrderEvent.objects.filter(kind="order.delivery_failed").values_list("note", "actor_kind")
    ) == [("不在家", "partner"), ("拒收", "partner")]


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_failed_delivery_needs_a_reason(shipped, english, reason):
    before = snapshot(shipped)

    error = refused(order_delivery_failed, order=shipped, reason=reason, actor_kind="partner")

    assert (error.code, error.status_code, error.message, error.fields) == (
        "reason_required",
        400,
        "Say why the delivery failed.",
        {"reason": [""]},
    )
    assert snapshot(shipped) == before


@pytest.mark.parametrize("status", ["pending_payment", "paid", "delivered"])
def test_only_a_shipped_order_fails_to_be_delivered(delivery, pay, english, status):
    from orders.services import order_mark_delivered

    if status != "pending_payment":
        pay(delivery)
    if status == "delivered":
        shipment_create(order=delivery, carrier_code="SF", tracking_number="SF1")
        order_mark_delivered(order=delivery)
    before = snapshot(delivery)

    error = refused(order_delivery_failed, order=delivery, reason="拒收", actor_kind="partner")

    assert (error.code, error.status_code, error.message, error.fields) == (
        "not_in_delivery",
        409,
        "Only a shipped order can fail to be delivered.",
        {"status": [status]},
    )
    assert snapshot(delivery) == before


# --- checkout_place for partners ----------------------------------------------------------------


def test_a_partner_order_needs_no_member(shop, water):
    order = checkout_place(
        channel=Channel.PARTNER,
        store=shop,
        fulfilment=Fulfilment.DELIVERY,
        lines=[BasketLine(water.pk, 3)],
        client_reference="7:mt-000001",
        address=ADDRESS,
        actor_kind="partner",
    )

    assert (order.channel, order.member, order.status, order.address) == (
        "partner",
        None,
        "pending_payment",
        ADDRESS,
    )
    assert (order.subtotal_fen, order.shipping_fen, order.total_fen) == (600, 600, 1200)
    assert StockItem.objects.get(sku=water).reserved == 3
    created = OrderEvent.objects.get(order=order)
    assert (created.kind, created.actor_kind) == ("order.created", "partner")


@pytest.mark.parametrize("channel", [Channel.MINI_SHOP, Channel.H5])
def test_a_shop_order_without_a_member_is_still_refused(shop, water, english, channel):
    error = refused(
        checkout_place,
        channel=channel,
        store=shop,
        fulfilment=Fulfilment.DELIVERY,
        lines=[BasketLine(water.pk, 3)],
        client_reference="no-member-1",
        address=ADDRESS,
    )

    assert (error.code, error.status_code, error.message, error.fields) == (
        "member_required",
        400,
        "Online orders need a member.",
        {"member": [""]},
    )
    assert Order.objects.count() == 0
    assert StockItem.objects.get(sku=water).reserved == 0
