"""Checkout, payment and refunds racing on PostgreSQL, with threads holding connections of
their own: one order per client reference, no oversold basket, one payment per order, no
refund beyond what was paid."""

import pytest
from django.db import connection
from django.db.models import Sum

from inventory.models import Reservation, StockItem
from inventory.services import StockLine, stock_receive
from orders.models import Channel, Fulfilment, Order, OrderEvent, Payment, Refund
from orders.payments import payment_confirm, payment_create, refund_create
from orders.pricing import BasketLine
from orders.services import checkout_place
from tests.factories import MemberFactory, SKUFactory, StoreFactory, UserFactory
from tests.inventory.test_concurrency import WON, race, tally

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: set DATABASE_URL (.ci/run does)",
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def store():
    return StoreFactory(code="SH001", offers_pickup=True)


def stocked(store, on_hand: int, code: str):
    sku = SKUFactory(code=code, price_fen=500)
    stock_receive(store=store, lines=[StockLine(sku, on_hand)], idempotency_key=f"seed-{code}")
    return sku


def checkout(store, member, lines, reference):
    return lambda: (
        checkout_place(
            channel=Channel.MINI_SHOP,
            store=store,
            fulfilment=Fulfilment.PICKUP,
            lines=[BasketLine(sku.pk, quantity) for sku, quantity in lines],
            client_reference=reference,
            member=member,
        ).pk
    )


def test_the_same_client_reference_from_many_taps_makes_one_order(store):
    water = stocked(store, 100, "WATER")
    member = MemberFactory()

    outcomes = race([checkout(store, member, [(water, 2)], "double-tap")] * 20)

    assert tally(outcomes) == {WON: 20}
    assert len({order_id for _kind, order_id in outcomes}) == 1
    assert Order.objects.count() == 1
    assert StockItem.objects.get(sku=water).reserved == 2
    assert OrderEvent.objects.filter(kind="order.created").count() == 1


def test_baskets_racing_for_two_skus_in_opposite_order_never_oversell(store):
    water = stocked(store, 30, "WATER")
    milk = stocked(store, 30, "MILK")
    members = MemberFactory.create_batch(2)
    calls = [
        checkout(
            store,
            members[index % 2],
            [(water, 1), (milk, 1)] if index % 2 else [(milk, 1), (water, 1)],
            f"basket-{index}",
        )
        for index in range(60)
    ]

    outcomes = race(calls)

    assert tally(outcomes) == {WON: 30, "insufficient_stock": 30}
    assert Order.objects.count() == 30
    assert list(StockItem.objects.order_by("sku__code").values_list("on_hand", "reserved")) == [
        (30, 30),
        (30, 30),
    ]
    assert Reservation.objects.aggregate(total=Sum("quantity"))["total"] == 60


def test_a_payment_confirmed_by_many_notifies_at_once_pays_once(store):
    water = stocked(store, 10, "WATER")
    order_id = checkout(store, MemberFactory(), [(water, 3)], "pay-once")()
    payment = payment_create(order=order_id, provider="cash")

    outcomes = race(
        [
            lambda: (
                payment_confirm(
                    provider="cash",
                    out_trade_no=payment.out_trade_no,
                    transaction_id="4200000001",
                    amount_fen=1500,
                ).pk
            )
        ]
        * 15
    )

    assert tally(outcomes) == {WON: 15}
    order = Order.objects.get(pk=order_id)
    assert (order.status, order.paid_fen) == ("paid", 1500)
    assert OrderEvent.objects.filter(order=order, kind="order.paid").count() == 1
    assert Payment.objects.get().status == "succeeded"


def test_refunds_racing_never_exceed_what_was_paid(store):
    water = stocked(store, 10, "WATER")
    order_id = checkout(store, MemberFactory(), [(water, 4)], "refund-race")()
    payment = payment_create(order=order_id, provider="cash")
    payment_confirm(
        provider="cash", out_trade_no=payment.out_trade_no, transaction_id="t-1", amount_fen=2000
    )
    manager = UserFactory()

    outcomes = race(
        [lambda: refund_create(order=order_id, amount_fen=300, reason="破损", actor=manager).pk]
        * 12
    )

    # 6 × 3.00 = 18.00 of 20.00; a seventh would exceed it.
    assert tally(outcomes) == {WON: 6, "refund_exceeds_paid": 6}
    assert Refund.objects.aggregate(total=Sum("amount_fen"))["total"] == 1800
    assert Order.objects.get(pk=order_id).refunded_fen == 1800


def test_locking_an_order_leaves_its_store_row_free(store):
    """``order_locked`` locks the order only: a store row locked with it made every payment in
    the store queue behind one another and deadlock with checkouts (bench/flash_sale.py)."""
    import threading

    from django.db import transaction

    from orders.transitions import order_locked
    from retail.models import Store

    sku = stocked(store, 5, "LOCK-1")
    order = checkout(store, MemberFactory(), [(sku, 1)], "lock-1")()
    answers = []
    locked = threading.Event()
    done = threading.Event()

    def hold_the_order():
        with transaction.atomic():
            order_locked(order)
            locked.set()
            done.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_the_order)
    holder.start()
    try:
        assert locked.wait(10)
        with transaction.atomic():
            # NOWAIT: refused at once if another transaction holds the row.
            answers.append(Store.objects.select_for_update(nowait=True).get(pk=store.pk).code)
    finally:
        done.set()
        holder.join()

    assert answers == ["SH001"]
