"""From paid to done: pickup by code, shipments (split too), delivery, receipt, auto-complete."""

from datetime import timedelta

import pytest
import time_machine

from inventory.models import StockItem, StockMovement
from orders.models import Fulfilment, Order, OrderLine, Shipment
from orders.services import (
    order_confirm_receipt,
    order_mark_delivered,
    order_mark_ready,
    orders_auto_complete,
    pickup_handover,
    shipment_create,
)
from retail.errors import BusinessError

S = Order.Status


def _stock(store, sku) -> tuple[int, int]:
    item = StockItem.objects.get(store=store, sku=sku)
    return item.on_hand, item.reserved


def test_pickup_is_handed_over_by_code(place, shop, water, milk, pay, clerk_a):
    order = place((water, 2), (milk, 1))
    pay(order)
    order_mark_ready(order=order, actor=clerk_a)

    done = pickup_handover(store=shop, pickup_code=f" {order.pickup_code} ", actor=clerk_a)

    assert (done.pk, done.status) == (order.pk, S.COMPLETED)
    assert _stock(shop, water) == (8, 0)
    assert _stock(shop, milk) == (3, 0)
    assert list(
        StockMovement.objects.filter(reason="online_fulfilment")
        .order_by("quantity")
        .values_list("quantity", "reference")
    ) == [(-2, order.number), (-1, order.number)]
    assert list(order.events.values_list("kind", flat=True)) == [
        "order.created",
        "order.paid",
        "order.ready_for_pickup",
        "order.completed",
    ]


def test_a_paid_pickup_order_can_be_handed_over_before_it_was_marked_ready(
    place, shop, water, pay, clerk_a
):
    order = place((water, 1))
    pay(order)

    done = pickup_handover(store=shop, pickup_code=order.pickup_code, actor=clerk_a)

    assert done.status == S.COMPLETED
    assert list(order.events.values_list("to_status", flat=True)) == [
        "pending_payment",
        "paid",
        "ready_for_pickup",
        "completed",
    ]


@pytest.mark.parametrize("case", ["unpaid", "wrong_store", "wrong_code", "already_collected"])
def test_a_pickup_code_that_does_not_open_a_waiting_order_is_refused(
    place, shop, store_b, water, pay, clerk_a, case
):
    order = place((water, 1))
    if case != "unpaid":
        pay(order)
    if case == "already_collected":
        pickup_handover(store=shop, pickup_code=order.pickup_code, actor=clerk_a)
    store = store_b if case == "wrong_store" else shop
    code = "000000" if order.pickup_code != "000000" else "111111"
    code = code if case == "wrong_code" else order.pickup_code
    before = (
        Order.objects.get(pk=order.pk).status,
        _stock(shop, water),
        StockMovement.objects.count(),
    )

    with pytest.raises(BusinessError) as refused:
        pickup_handover(store=store, pickup_code=code, actor=clerk_a)

    assert (refused.value.code, refused.value.status_code) == ("pickup_code_unknown", 404)
    assert (
        Order.objects.get(pk=order.pk).status,
        _stock(shop, water),
        StockMovement.objects.count(),
    ) == before


def test_split_shipments_ship_the_order_when_the_last_line_leaves(
    place, shop, water, milk, pay, clerk_a
):
    order = place((water, 2), (milk, 1), fulfilment=Fulfilment.DELIVERY)
    pay(order)
    water_key, milk_key = order.lines.order_by("pk").values_list("line_key", flat=True)

    first = shipment_create(
        order=order,
        carrier_code="SF",
        tracking_number="SF001",
        line_keys=[water_key],
        actor=clerk_a,
    )
    order.refresh_from_db()
    assert order.status == S.PAID
    assert _stock(shop, water) == (8, 0)
    assert _stock(shop, milk) == (4, 1)

    second = shipment_create(
        order=order, carrier_code="YTO", tracking_number="YT002", actor=clerk_a
    )

    order.refresh_from_db()
    assert order.status == S.SHIPPED
    assert [list(s.lines.values_list("line_key", flat=True)) for s in (first, second)] == [
        [water_key],
        [milk_key],
    ]
    assert _stock(shop, milk) == (3, 0)
    assert list(order.events.values_list("kind", "data")) == [
        ("order.created", {}),
        (
            "order.paid",
            {
                "cause": "payment",
                "provider": "fakepay",
                "out_trade_no": order.payments.get().out_trade_no,
                "amount_fen": 2250,
            },
        ),
        ("order.partially_shipped", {"carrier_code": "SF", "tracking_number": "SF001"}),
        ("order.shipped", {"cause": "shipment", "carrier_code": "YTO", "tracking_number": "YT002"}),
    ]


def test_posting_the_same_tracking_number_again_returns_the_first_shipment(
    place, water, pay, clerk_a
):
    order = place((water, 2), fulfilment=Fulfilment.DELIVERY)
    pay(order)

    first = shipment_create(order=order, carrier_code="SF", tracking_number="SF001", actor=clerk_a)
    again = shipment_create(order=order, carrier_code="SF", tracking_number="SF001", actor=clerk_a)

    assert again.pk == first.pk
    assert Shipment.objects.count() == 1
    assert order.events.filter(kind="order.shipped").count() == 1


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unpaid", "not_shippable"),
        ("pickup_order", "not_shippable"),
        ("unknown_line", "invalid_shipment_lines"),
        ("empty_tracking", "invalid_tracking"),
        ("tracking_of_another_order", "tracking_number_taken"),
    ],
)
def test_shipments_that_cannot_be_are_refused_and_change_nothing(
    place, shop, water, pay, clerk_a, case, code
):
    fulfilment = Fulfilment.PICKUP if case == "pickup_order" else Fulfilment.DELIVERY
    order = place((water, 2), fulfilment=fulfilment)
    if case != "unpaid":
        pay(order)
    tracking, line_keys = "SF001", None
    if case == "unknown_line":
        line_keys = ["nope"]
    if case == "empty_tracking":
        tracking = "  "
    if case == "tracking_of_another_order":
        other = place((water, 1), fulfilment=Fulfilment.DELIVERY)
        pay(other)
        shipment_create(order=other, carrier_code="SF", tracking_number="SF001", actor=clerk_a)
    before = (Order.objects.get(pk=order.pk).status, _stock(shop, water), Shipment.objects.count())

    with pytest.raises(BusinessError) as refused:
        shipment_create(
            order=order,
            carrier_code="SF",
            tracking_number=tracking,
            line_keys=line_keys,
            actor=clerk_a,
        )

    assert refused.value.code == code
    assert (
        Order.objects.get(pk=order.pk).status,
        _stock(shop, water),
        Shipment.objects.count(),
    ) == before
    assert OrderLine.objects.filter(order=order, shipped=True).count() == 0


def test_confirming_receipt_of_a_shipped_order_delivers_and_completes_it(
    place, water, pay, clerk_a
):
    order = place((water, 1), fulfilment=Fulfilment.DELIVERY)
    pay(order)
    shipment_create(order=order, carrier_code="SF", tracking_number="SF001", actor=clerk_a)

    done = order_confirm_receipt(order=order)

    assert done.status == S.COMPLETED
    assert list(order.events.values_list("to_status", "actor_kind"))[-2:] == [
        ("delivered", "shopper"),
        ("completed", "shopper"),
    ]


def test_delivered_orders_complete_by_themselves_after_seven_days(place, water, pay, clerk_a):
    order = place((water, 1), fulfilment=Fulfilment.DELIVERY)
    pay(order)
    shipment_create(order=order, carrier_code="SF", tracking_number="SF001", actor=clerk_a)
    order_mark_delivered(order=order, actor=clerk_a)
    delivered_at = Order.objects.get(pk=order.pk).updated_at

    with time_machine.travel(delivered_at + timedelta(days=7) - timedelta(seconds=1)):
        assert orders_auto_complete() == 0
    with time_machine.travel(delivered_at + timedelta(days=7)):
        assert orders_auto_complete() == 1

    order.refresh_from_db()
    assert order.status == S.COMPLETED
    assert order.events.last().data == {"cause": "auto_complete"}
