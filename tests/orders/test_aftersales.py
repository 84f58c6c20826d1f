"""After-sales: refund only, return and refund with restock, rejection, and what is refused."""

import pytest

from inventory.models import StockItem, StockMovement
from orders.aftersales import (
    after_sale_approve,
    after_sale_receive_return,
    after_sale_reject,
    after_sale_request,
)
from orders.models import AfterSale, Fulfilment, Order, Refund
from orders.services import pickup_handover
from retail.errors import BusinessError

S = Order.Status


def _stock(store, sku) -> tuple[int, int]:
    item = StockItem.objects.get(store=store, sku=sku)
    return item.on_hand, item.reserved


@pytest.fixture
def collected(place, shop, water, milk, pay, clerk_a):
    """A pickup order of 3 water (6.00) and 2 milk (25.00), paid and collected."""
    order = place((water, 3), (milk, 2))
    pay(order)
    pickup_handover(store=shop, pickup_code=order.pickup_code, actor=clerk_a)
    return order


def _key(order, sku):
    return order.lines.get(sku=sku).line_key


def test_refund_only_is_refunded_on_approval(collected, milk, manager_a, after_commit):
    request = after_sale_request(
        order=collected, kind="refund_only", lines=[(_key(collected, milk), 1)], reason="临期"
    )
    assert (request.status, request.amount_fen) == ("requested", 1250)

    with after_commit():
        after_sale_approve(after_sale=request, actor=manager_a, note="同意")

    request.refresh_from_db()
    collected.refresh_from_db()
    assert (request.status, request.decided_by) == ("refunded", manager_a)
    assert (collected.status, collected.refunded_fen) == (S.COMPLETED, 1250)
    assert list(Refund.objects.values_list("amount_fen", "status", "after_sale")) == [
        (1250, "succeeded", request.pk)
    ]


def test_return_and_refund_puts_the_goods_back_then_refunds(
    collected, shop, water, manager_a, after_commit
):
    request = after_sale_request(
        order=collected,
        kind="return_and_refund",
        lines=[(_key(collected, water), 2)],
        reason="买多了",
    )
    after_sale_approve(after_sale=request, actor=manager_a)
    request.refresh_from_db()
    assert request.status == "approved"
    assert Refund.objects.count() == 0
    assert _stock(shop, water) == (7, 0)

    with after_commit():
        after_sale_receive_return(after_sale=request, actor=manager_a)

    request.refresh_from_db()
    collected.refresh_from_db()
    assert request.status == "refunded"
    assert request.restocked_at is not None
    assert _stock(shop, water) == (9, 0)
    assert list(
        StockMovement.objects.filter(reason="return").values_list("quantity", "reference")
    ) == [(2, collected.number)]
    assert collected.refunded_fen == 400


def test_a_rejected_request_changes_no_money_and_needs_a_reason(collected, milk, manager_a):
    request = after_sale_request(
        order=collected, kind="refund_only", lines=[(_key(collected, milk), 2)], reason="不想要"
    )

    with pytest.raises(BusinessError) as no_reason:
        after_sale_reject(after_sale=request, actor=manager_a, note=" ")
    after_sale_reject(after_sale=request, actor=manager_a, note="已拆封")
    with pytest.raises(BusinessError) as decided:
        after_sale_approve(after_sale=request, actor=manager_a)

    request.refresh_from_db()
    collected.refresh_from_db()
    assert no_reason.value.code == "reason_required"
    assert decided.value.code == "after_sale_decided"
    assert (request.status, request.decision_note) == ("rejected", "已拆封")
    assert collected.refunded_fen == 0
    assert Refund.objects.count() == 0


@pytest.mark.parametrize(
    ("lines", "code"),
    [
        ([("water", 4)], "invalid_quantity"),
        ([("water", 0)], "invalid_quantity"),
        ([("nope", 1)], "invalid_lines"),
        ([("water", 1), ("water", 1)], "invalid_lines"),
        ([], "invalid_lines"),
    ],
)
def test_bad_requests_are_refused_and_create_nothing(collected, water, lines, code):
    keys = {"water": _key(collected, water), "nope": "nope"}

    with pytest.raises(BusinessError) as refused:
        after_sale_request(
            order=collected,
            kind="refund_only",
            lines=[(keys[name], qty) for name, qty in lines],
            reason="坏了",
        )

    assert refused.value.code == code
    assert AfterSale.objects.count() == 0


def test_one_open_request_per_order_and_none_for_unpaid_orders(collected, place, water, milk):
    after_sale_request(
        order=collected, kind="refund_only", lines=[(_key(collected, milk), 1)], reason="坏了"
    )
    unpaid = place((water, 1))

    with pytest.raises(BusinessError) as open_one:
        after_sale_request(
            order=collected,
            kind="refund_only",
            lines=[(_key(collected, water), 1)],
            reason="也坏了",
        )
    with pytest.raises(BusinessError) as not_paid:
        after_sale_request(
            order=unpaid, kind="refund_only", lines=[(_key(unpaid, water), 1)], reason="x"
        )

    assert (open_one.value.code, not_paid.value.code) == ("after_sale_open", "order_not_paid")
    assert AfterSale.objects.count() == 1


def test_units_refunded_once_cannot_be_asked_for_again(collected, milk, manager_a, after_commit):
    first = after_sale_request(
        order=collected, kind="refund_only", lines=[(_key(collected, milk), 2)], reason="坏了"
    )
    with after_commit():
        after_sale_approve(after_sale=first, actor=manager_a)

    with pytest.raises(BusinessError) as refused:
        after_sale_request(
            order=collected, kind="refund_only", lines=[(_key(collected, milk), 1)], reason="又坏了"
        )

    assert refused.value.code == "invalid_quantity"
    assert AfterSale.objects.count() == 1


def test_receiving_goods_for_a_refund_only_request_is_refused(collected, milk, manager_a):
    request = after_sale_request(
        order=collected, kind="refund_only", lines=[(_key(collected, milk), 1)], reason="坏了"
    )

    with pytest.raises(BusinessError) as refused:
        after_sale_receive_return(after_sale=request, actor=manager_a)

    assert refused.value.code == "not_awaiting_goods"
    assert StockMovement.objects.filter(reason="return").count() == 0


def test_delivery_orders_can_ask_before_completion(place, water, pay, manager_a, after_commit):
    order = place((water, 2), fulfilment=Fulfilment.DELIVERY)
    pay(order)

    request = after_sale_request(
        order=order, kind="refund_only", lines=[(_key(order, water), 2)], reason="不要了"
    )
    with after_commit():
        after_sale_approve(after_sale=request, actor=manager_a)

    order.refresh_from_db()
    # 2 water for 4.00 yuan; the delivery fee stays with the shop.
    assert (order.refunded_fen, order.paid_fen, order.status) == (400, 1000, S.PAID)
