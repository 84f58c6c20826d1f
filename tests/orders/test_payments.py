"""Payments and refunds: confirmations are idempotent, wrong ones are refused and recorded,
refunds never exceed what was paid."""

from datetime import timedelta

import pytest
import time_machine

from inventory.models import Reservation, StockItem, StockMovement
from orders.models import Channel, Fulfilment, Order, OrderEvent, Payment, PaymentIssue, Refund
from orders.payments import (
    counter_sale_pay_cash,
    payment_confirm,
    payment_create,
    payment_start,
    refund_create,
)
from orders.services import order_cancel, shipment_create
from orders.transitions import Cause
from retail.errors import BusinessError
from retail.models import OutboxEvent

S = Order.Status


def _stock(store, sku) -> tuple[int, int]:
    item = StockItem.objects.get(store=store, sku=sku)
    return item.on_hand, item.reserved


def _books(order):
    order.refresh_from_db()
    return (
        order.status,
        order.paid_fen,
        order.refunded_fen,
        list(order.payments.values_list("status", "transaction_id")),
        order.events.count(),
        OutboxEvent.objects.count(),
    )


# --- Starting a payment ------------------------------------------------------------------------


def test_payment_start_creates_one_pending_payment_and_reuses_it(place, water, fakepay):
    order = place((water, 2))

    payment, start = payment_start(order=order, provider="fakepay")
    again, _ = payment_start(order=order, provider="fakepay")

    assert again.pk == payment.pk
    assert (payment.status, payment.amount_fen, payment.provider) == ("pending", 400, "fakepay")
    assert payment.out_trade_no.startswith("P") and len(payment.out_trade_no) == 25
    assert start.client_parameters == {"pay": payment.out_trade_no}
    assert Payment.objects.get().provider_data == {"prepay_id": f"prepay-{payment.out_trade_no}"}


def test_a_cancelled_or_expired_order_cannot_be_paid(place, water, fakepay):
    cancelled = place((water, 1))
    order_cancel(order=cancelled, cause=Cause.SHOPPER)
    late = place((water, 1))

    with pytest.raises(BusinessError) as not_payable:
        payment_create(order=cancelled, provider="fakepay")
    with (
        time_machine.travel(late.expires_at + timedelta(seconds=1)),
        pytest.raises(BusinessError) as expired,
    ):
        payment_create(order=late, provider="fakepay")
    with pytest.raises(BusinessError) as unknown:
        payment_create(order=late, provider="bitcoin")

    assert not_payable.value.code == "order_not_payable"
    assert expired.value.code == "order_expired"
    assert (unknown.value.code, unknown.value.status_code) == ("unknown_provider", 400)
    assert Payment.objects.count() == 0


# --- Confirming --------------------------------------------------------------------------------


def test_confirmation_pays_the_order_and_commits_its_stock(place, shop, water, pay):
    order = place((water, 3))

    payment = pay(order, transaction_id="4200000001")

    order.refresh_from_db()
    assert (order.status, order.paid_fen, order.paid_at is not None) == (S.PAID, 600, True)
    assert (payment.status, payment.transaction_id, payment.raw_payload) == (
        "succeeded",
        "4200000001",
        {"trade_state": "SUCCESS"},
    )
    assert list(Reservation.objects.values_list("status", "expires_at")) == [("committed", None)]
    assert _stock(shop, water) == (10, 3)
    assert list(order.events.values_list("kind", flat=True)) == ["order.created", "order.paid"]


def test_a_second_confirmation_changes_nothing(place, water, pay):
    order = place((water, 3))
    payment = pay(order, transaction_id="4200000001")
    before = _books(order)

    again = payment_confirm(
        provider="fakepay",
        out_trade_no=payment.out_trade_no,
        transaction_id="4200000001",
        amount_fen=600,
    )

    assert again.pk == payment.pk
    assert _books(order) == before
    assert order.events.filter(kind="order.paid").count() == 1
    assert PaymentIssue.objects.count() == 0


def test_a_wrong_amount_is_refused_recorded_and_changes_nothing(place, water, fakepay):
    order = place((water, 3))
    payment, _start = payment_start(order=order, provider="fakepay")
    before = _books(order)

    with pytest.raises(BusinessError) as refused:
        payment_confirm(
            provider="fakepay",
            out_trade_no=payment.out_trade_no,
            transaction_id="4200000002",
            amount_fen=1,
            payload={"total": 1},
        )

    assert refused.value.code == "amount_mismatch"
    assert _books(order) == before
    assert list(
        PaymentIssue.objects.values_list("payment", "code", "amount_fen", "raw_payload")
    ) == [(payment.pk, "amount_mismatch", 1, {"total": 1})]
    assert Reservation.objects.get().status == "held"


def test_an_unknown_trade_number_is_refused_and_recorded(place, water, fakepay):
    order = place((water, 1))
    before = _books(order)

    with pytest.raises(BusinessError) as refused:
        payment_confirm(
            provider="fakepay", out_trade_no="P-nope", transaction_id="t", amount_fen=200
        )

    assert (refused.value.code, refused.value.status_code) == ("unknown_payment", 404)
    assert _books(order) == before
    assert list(PaymentIssue.objects.values_list("payment", "out_trade_no", "code")) == [
        (None, "P-nope", "unknown_payment")
    ]


def test_another_transaction_for_a_paid_payment_is_refused_and_recorded(place, water, pay):
    order = place((water, 1))
    payment = pay(order, transaction_id="4200000001")
    before = _books(order)

    with pytest.raises(BusinessError) as refused:
        payment_confirm(
            provider="fakepay",
            out_trade_no=payment.out_trade_no,
            transaction_id="4200000009",
            amount_fen=200,
        )

    assert refused.value.code == "transaction_id_mismatch"
    assert _books(order) == before
    assert PaymentIssue.objects.get().code == "transaction_id_mismatch"


def test_money_arriving_after_the_order_expired_goes_straight_back(
    place, shop, water, fakepay, after_commit
):
    order = place((water, 2))
    payment, _start = payment_start(order=order, provider="fakepay")
    order_cancel(order=order, cause=Cause.EXPIRY)

    with after_commit():
        payment_confirm(
            provider="fakepay",
            out_trade_no=payment.out_trade_no,
            transaction_id="tx-late",
            amount_fen=400,
        )

    order.refresh_from_db()
    assert (order.status, order.paid_fen, order.refunded_fen) == (S.CANCELLED, 400, 400)
    refund = Refund.objects.get()
    assert (refund.amount_fen, refund.status, refund.provider_refund_id) == (
        400,
        "succeeded",
        f"wx-{refund.out_refund_no}",
    )
    assert fakepay.refunds_asked == [refund.out_refund_no]
    assert _stock(shop, water) == (10, 0)
    assert list(order.events.values_list("kind", flat=True)) == [
        "order.created",
        "order.cancelled",
        "payment.after_cancel",
        "refund.requested",
        "refund.succeeded",
    ]


# --- Counter sales -----------------------------------------------------------------------------


def test_cash_at_the_counter_completes_the_sale_and_gives_change(place, shop, water, clerk_a):
    order = place((water, 3), channel=Channel.COUNTER, fulfilment=Fulfilment.COUNTER, actor=clerk_a)

    payment, change = counter_sale_pay_cash(order=order, tendered_fen=1000, actor=clerk_a)
    again, change_again = counter_sale_pay_cash(order=order, tendered_fen=1000, actor=clerk_a)

    order.refresh_from_db()
    assert (order.status, order.paid_fen) == (S.COMPLETED, 600)
    assert (change, again.pk, change_again) == (400, payment.pk, 400)
    assert _stock(shop, water) == (7, 0)
    assert list(
        StockMovement.objects.filter(reason="counter_sale").values_list("quantity", "actor")
    ) == [(-3, clerk_a.pk)]
    assert list(order.events.values_list("kind", flat=True)) == [
        "order.created",
        "order.paid",
        "order.completed",
    ]


def test_cash_short_of_the_total_is_refused_and_leaves_no_sale(place, shop, water, clerk_a):
    order = place((water, 3), channel=Channel.COUNTER, fulfilment=Fulfilment.COUNTER, actor=clerk_a)
    before = _books(order)

    with pytest.raises(BusinessError) as refused:
        counter_sale_pay_cash(order=order, tendered_fen=599, actor=clerk_a)

    assert (refused.value.code, refused.value.status_code) == ("cash_short", 400)
    assert _books(order) == before
    assert _stock(shop, water) == (10, 3)
    assert StockMovement.objects.filter(reason="counter_sale").count() == 0


# --- Refunds -----------------------------------------------------------------------------------


def test_partial_refunds_add_up_and_never_exceed_what_was_paid(
    place, water, pay, manager_a, after_commit
):
    order = place((water, 5))
    pay(order)

    with after_commit():
        first = refund_create(order=order, amount_fen=300, reason="少发一瓶", actor=manager_a)
        second = refund_create(order=order, amount_fen=600, reason="破损", actor=manager_a)
    before = _books(order)
    with pytest.raises(BusinessError) as refused:
        refund_create(order=order, amount_fen=101, reason="多退", actor=manager_a)

    assert refused.value.code == "refund_exceeds_paid"
    assert _books(order) == before
    order.refresh_from_db()
    assert (order.status, order.paid_fen, order.refunded_fen) == (S.PAID, 1000, 900)
    assert [first.amount_fen, second.amount_fen] == [300, 600]
    assert list(Refund.objects.order_by("pk").values_list("status", flat=True)) == [
        "succeeded",
        "succeeded",
    ]


def test_a_full_refund_before_the_goods_leave_cancels_the_order_and_frees_its_stock(
    place, shop, water, pay, manager_a, after_commit
):
    order = place((water, 4))
    pay(order)

    with after_commit():
        refund_create(order=order, amount_fen=800, reason="不要了", actor=manager_a)

    order.refresh_from_db()
    assert (order.status, order.refunded_fen) == (S.CANCELLED, 800)
    assert _stock(shop, water) == (10, 0)
    assert Reservation.objects.get().status == "released"


def test_a_full_refund_after_shipping_keeps_the_order_shipped(
    place, shop, water, pay, manager_a, after_commit
):
    order = place((water, 4), fulfilment=Fulfilment.DELIVERY)
    pay(order)
    shipment_create(order=order, carrier_code="SF", tracking_number="SF100", actor=manager_a)

    with after_commit():
        refund_create(order=order, amount_fen=order.total_fen, reason="退货", actor=manager_a)

    order.refresh_from_db()
    assert (order.status, order.refunded_fen) == (S.SHIPPED, 1400)
    assert _stock(shop, water) == (6, 0)


def test_a_refund_the_provider_refuses_no_longer_counts(
    place, water, pay, fakepay, manager_a, after_commit
):
    order = place((water, 5))
    pay(order)
    fakepay.refund_answer = "failed"

    with after_commit():
        failed = refund_create(order=order, amount_fen=1000, reason="退款", actor=manager_a)
    fakepay.refund_answer = "succeeded"
    with after_commit():
        retried = refund_create(order=order, amount_fen=1000, reason="再退", actor=manager_a)

    failed.refresh_from_db()
    order.refresh_from_db()
    assert (failed.status, failed.error) == ("failed", "NOTENOUGH")
    assert retried.status == "pending"  # as created; the provider answered after commit
    assert Refund.objects.get(pk=retried.pk).status == "succeeded"
    assert (order.status, order.refunded_fen) == (S.CANCELLED, 1000)


@pytest.mark.parametrize("amount", [0, -5])
def test_a_refund_of_nothing_is_refused(place, water, pay, manager_a, amount):
    order = place((water, 1))
    pay(order)

    with pytest.raises(BusinessError) as refused:
        refund_create(order=order, amount_fen=amount, reason="x", actor=manager_a)

    assert (refused.value.code, refused.value.status_code) == ("invalid_amount", 400)
    assert Refund.objects.count() == 0


def test_an_unpaid_order_cannot_be_refunded(place, water, manager_a):
    order = place((water, 1))

    with pytest.raises(BusinessError) as refused:
        refund_create(order=order, amount_fen=100, reason="x", actor=manager_a)

    assert refused.value.code == "order_not_paid"
    assert OrderEvent.objects.filter(kind__startswith="refund").count() == 0
