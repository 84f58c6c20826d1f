"""Stock writes: the ledger, reservations and their refusals. Concurrency is in
test_concurrency.py; the audit's randomised proof in test_audit.py."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from inventory.models import Reservation, StockItem, StockMovement
from inventory.services import (
    ReserveLine,
    StockLine,
    stock_commit,
    stock_consume,
    stock_receive,
    stock_release,
    stock_release_expired,
    stock_reserve,
    stock_return,
    stock_sell_at_counter,
    stock_write_off,
)
from inventory.tasks import release_expired_holds
from retail.errors import BusinessError
from tests.factories import SKUFactory, StoreFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def store():
    return StoreFactory(code="SH001")


@pytest.fixture
def sku():
    return SKUFactory(code="P0001-01")


def stocked(store, sku, on_hand: int, *, safety_stock: int = 0) -> StockItem:
    stock_receive(store=store, lines=[StockLine(sku, on_hand)], idempotency_key=f"seed-{sku.pk}")
    StockItem.objects.filter(store=store, sku=sku).update(safety_stock=safety_stock)
    return StockItem.objects.get(store=store, sku=sku)


def numbers(item: StockItem) -> tuple[int, int]:
    item.refresh_from_db()
    return item.on_hand, item.reserved


def test_receipt_creates_the_stock_row_and_one_ledger_row(store, sku, hq_user):
    [movement] = stock_receive(
        store=store,
        lines=[StockLine(sku, 24)],
        idempotency_key="DN-1",
        actor=hq_user,
        reference="送货单 DN-1",
    )

    item = StockItem.objects.get(store=store, sku=sku)
    assert (item.on_hand, item.reserved) == (24, 0)
    assert (movement.quantity, movement.on_hand_after, movement.reason) == (24, 24, "receipt")
    assert (movement.actor, movement.reference) == (hq_user, "送货单 DN-1")


def test_a_repeated_receipt_changes_nothing(store, sku):
    first = stock_receive(store=store, lines=[StockLine(sku, 24)], idempotency_key="DN-1")
    again = stock_receive(store=store, lines=[StockLine(sku, 24)], idempotency_key="DN-1")

    assert [m.pk for m in again] == [m.pk for m in first]
    assert StockItem.objects.get(store=store, sku=sku).on_hand == 24
    assert StockMovement.objects.count() == 1


def test_reserve_commit_consume(store, sku):
    item = stocked(store, sku, 10)

    [held] = stock_reserve(store=store, lines=[ReserveLine(sku, 3, "SO1/1")])
    assert (held.status, numbers(item)) == ("held", (10, 3))
    assert held.expires_at is not None

    committed = stock_commit(line_key="SO1/1")
    assert (committed.status, committed.expires_at) == ("committed", None)

    movement = stock_consume(line_key="SO1/1")
    assert numbers(item) == (7, 0)
    assert (movement.quantity, movement.reason, movement.on_hand_after) == (
        -3,
        "online_fulfilment",
        7,
    )
    assert Reservation.objects.get(line_key="SO1/1").status == "consumed"


def test_each_step_is_idempotent_per_order_line(store, sku):
    item = stocked(store, sku, 10)

    first = stock_reserve(store=store, lines=[ReserveLine(sku, 3, "SO1/1")])
    again = stock_reserve(store=store, lines=[ReserveLine(sku, 5, "SO1/1")])
    stock_commit(line_key="SO1/1")
    stock_commit(line_key="SO1/1")
    stock_consume(line_key="SO1/1")
    stock_consume(line_key="SO1/1")

    assert [r.pk for r in again] == [r.pk for r in first]
    assert numbers(item) == (7, 0)
    assert StockMovement.objects.filter(reason="online_fulfilment").count() == 1


def test_release_returns_the_units_and_is_idempotent(store, sku):
    item = stocked(store, sku, 10)
    stock_reserve(store=store, lines=[ReserveLine(sku, 4, "SO1/1")])

    stock_release(line_key="SO1/1")
    stock_release(line_key="SO1/1")

    assert numbers(item) == (10, 0)
    assert Reservation.objects.get(line_key="SO1/1").status == "released"


def test_reserving_more_than_available_changes_nothing(store, sku):
    item = stocked(store, sku, 5)
    stock_reserve(store=store, lines=[ReserveLine(sku, 4, "SO1/1")])

    with pytest.raises(BusinessError) as refused:
        stock_reserve(store=store, lines=[ReserveLine(sku, 2, "SO2/1")])

    assert refused.value.code == "insufficient_stock"
    assert refused.value.fields == {"sku": [str(sku.pk)], "quantity": ["2"]}
    assert numbers(item) == (5, 4)
    assert list(Reservation.objects.values_list("line_key", flat=True)) == ["SO1/1"]


def test_online_reservations_leave_the_safety_stock_but_the_counter_may_sell_it(store, sku):
    item = stocked(store, sku, 5, safety_stock=2)

    stock_reserve(store=store, lines=[ReserveLine(sku, 3, "SO1/1")])
    with pytest.raises(BusinessError):
        stock_reserve(store=store, lines=[ReserveLine(sku, 1, "SO2/1")])
    stock_sell_at_counter(store=store, lines=[StockLine(sku, 2)], idempotency_key="POS-1")

    assert numbers(item) == (3, 3)


def test_the_counter_cannot_sell_reserved_units(store, sku):
    item = stocked(store, sku, 3)
    stock_reserve(store=store, lines=[ReserveLine(sku, 2, "SO1/1")])

    with pytest.raises(BusinessError) as refused:
        stock_sell_at_counter(store=store, lines=[StockLine(sku, 2)], idempotency_key="POS-1")

    assert refused.value.code == "insufficient_stock"
    assert numbers(item) == (3, 2)
    assert not StockMovement.objects.filter(reason="counter_sale").exists()


def test_a_basket_is_all_or_nothing(store, sku):
    other = SKUFactory()
    plenty = stocked(store, sku, 10)
    scarce = stocked(store, other, 1)

    with pytest.raises(BusinessError):
        stock_reserve(
            store=store, lines=[ReserveLine(sku, 2, "SO1/1"), ReserveLine(other, 2, "SO1/2")]
        )

    assert numbers(plenty) == (10, 0)
    assert numbers(scarce) == (1, 0)
    assert Reservation.objects.count() == 0


def test_a_basket_comes_back_in_the_order_asked(store, sku):
    other = SKUFactory()
    stocked(store, other, 10)
    stocked(store, sku, 10)

    reservations = stock_reserve(
        store=store, lines=[ReserveLine(other, 1, "SO1/1"), ReserveLine(sku, 1, "SO1/2")]
    )

    assert [r.line_key for r in reservations] == ["SO1/1", "SO1/2"]


def test_consuming_a_released_reservation_is_refused(store, sku):
    item = stocked(store, sku, 10)
    stock_reserve(store=store, lines=[ReserveLine(sku, 3, "SO1/1")])
    stock_release(line_key="SO1/1")

    with pytest.raises(BusinessError) as refused:
        stock_consume(line_key="SO1/1")

    assert refused.value.code == "reservation_released"
    assert numbers(item) == (10, 0)
    assert not StockMovement.objects.filter(reason="online_fulfilment").exists()


def test_committing_a_released_reservation_is_refused(store, sku):
    stocked(store, sku, 10)
    stock_reserve(store=store, lines=[ReserveLine(sku, 3, "SO1/1")])
    stock_release(line_key="SO1/1")

    with pytest.raises(BusinessError) as refused:
        stock_commit(line_key="SO1/1")

    assert refused.value.code == "reservation_released"
    assert Reservation.objects.get(line_key="SO1/1").status == "released"


def test_releasing_consumed_goods_is_refused(store, sku):
    item = stocked(store, sku, 10)
    stock_reserve(store=store, lines=[ReserveLine(sku, 3, "SO1/1")])
    stock_consume(line_key="SO1/1")

    with pytest.raises(BusinessError) as refused:
        stock_release(line_key="SO1/1")

    assert refused.value.code == "reservation_consumed"
    assert numbers(item) == (7, 0)


def test_an_unknown_order_line_is_a_404_error(store):
    with pytest.raises(BusinessError) as refused:
        stock_commit(line_key="NOPE/1")

    assert (refused.value.code, refused.value.status_code) == ("reservation_not_found", 404)


@pytest.mark.parametrize("quantity", [0, -1])
def test_a_quantity_below_one_is_refused(store, sku, quantity):
    item = stocked(store, sku, 10)

    with pytest.raises(BusinessError) as refused:
        stock_reserve(store=store, lines=[ReserveLine(sku, quantity, "SO1/1")])
    with pytest.raises(BusinessError):
        stock_receive(store=store, lines=[StockLine(sku, quantity)], idempotency_key="DN-9")

    assert refused.value.code == "invalid_quantity"
    assert numbers(item) == (10, 0)
    assert StockMovement.objects.count() == 1


def test_expired_holds_are_released_and_paid_ones_stay(store, sku):
    item = stocked(store, sku, 10)
    past = timezone.now() - timedelta(minutes=1)
    stock_reserve(store=store, lines=[ReserveLine(sku, 2, "SO1/1")], expires_at=past)
    stock_reserve(store=store, lines=[ReserveLine(sku, 3, "SO2/1")], expires_at=past)
    stock_reserve(store=store, lines=[ReserveLine(sku, 4, "SO3/1")])
    stock_commit(line_key="SO2/1")

    assert stock_release_expired() == 1
    assert release_expired_holds.delay().get() == 0

    assert numbers(item) == (10, 7)
    assert dict(Reservation.objects.values_list("line_key", "status")) == {
        "SO1/1": "released",
        "SO2/1": "committed",
        "SO3/1": "held",
    }


def test_damage_and_returns_go_through_the_ledger(store, sku):
    item = stocked(store, sku, 10)

    stock_write_off(store=store, lines=[StockLine(sku, 2)], idempotency_key="D-1")
    stock_return(store=store, lines=[StockLine(sku, 1)], idempotency_key="R-1")

    assert numbers(item) == (9, 0)
    assert list(StockMovement.objects.order_by("pk").values_list("reason", "quantity")) == [
        ("receipt", 10),
        ("damage", -2),
        ("return", 1),
    ]


def test_the_ledger_is_append_only_in_the_database(store, sku):
    stocked(store, sku, 10)
    movement = StockMovement.objects.get()

    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        StockMovement.objects.filter(pk=movement.pk).update(quantity=99)
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        StockMovement.objects.filter(pk=movement.pk).delete()

    movement.refresh_from_db()
    assert movement.quantity == 10


def test_the_database_refuses_more_reserved_than_on_hand(store, sku):
    item = stocked(store, sku, 2)

    with pytest.raises(IntegrityError), transaction.atomic():
        StockItem.objects.filter(pk=item.pk).update(reserved=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        StockItem.objects.filter(pk=item.pk).update(on_hand=-1, reserved=0)

    assert numbers(item) == (2, 0)


def test_the_ledger_refuses_a_sign_that_contradicts_its_reason(store, sku):
    item = stocked(store, sku, 2)

    with pytest.raises(IntegrityError), transaction.atomic():
        StockMovement.objects.create(
            stock_item=item, quantity=5, on_hand_after=7, reason="damage", idempotency_key="x"
        )

    assert StockMovement.objects.count() == 1
