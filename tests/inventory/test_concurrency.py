"""Stock services under real concurrency: threads with connections of their own racing for the
same rows on PostgreSQL. SQLite serialises every writer on one file lock, so a race there proves
nothing; these tests run where the row locks and the guards have to do the work."""

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from queue import Empty, SimpleQueue

import pytest
from django.db import connection
from django.db.models import F, Q

from inventory.models import Reservation, StockItem, StockMovement
from inventory.services import (
    ReserveLine,
    StockLine,
    stock_receive,
    stock_reserve,
    stock_sell_at_counter,
)
from retail.errors import BusinessError
from tests.factories import SKUFactory, StoreFactory

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: set DATABASE_URL (.ci/run does)",
    ),
    # Threads open connections of their own: they only see what the test has committed.
    pytest.mark.django_db(transaction=True),
]

# Enough threads to queue on one row lock, few enough to share PostgreSQL's 100 connections
# with other test runs on the same server.
WORKERS = 25

WON = "won"


def race(calls: list[Callable[[], object]], *, workers: int = WORKERS) -> list[tuple[str, object]]:
    """Run ``calls`` from ``workers`` threads, each with its own connection, released together
    by a barrier. Returns, in the order of ``calls``, ``("won", result)``, the
    ``BusinessError`` code and ``None``, or the name and text of any other exception."""
    workers = min(workers, len(calls))
    pending: SimpleQueue[int] = SimpleQueue()
    for index in range(len(calls)):
        pending.put(index)
    outcomes: list[tuple[str, object]] = [("not run", None)] * len(calls)
    start = threading.Barrier(workers)

    def worker() -> None:
        try:
            # Connect before the barrier, so the race is between queries, not handshakes.
            connection.ensure_connection()
            start.wait(timeout=30)
            while True:
                try:
                    index = pending.get_nowait()
                except Empty:
                    return
                try:
                    outcomes[index] = (WON, calls[index]())
                except BusinessError as refused:
                    outcomes[index] = (refused.code, None)
                except Exception as failure:
                    outcomes[index] = (type(failure).__name__, str(failure))
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for running in [pool.submit(worker) for _ in range(workers)]:
            running.result()
    return outcomes


def tally(outcomes: list[tuple[str, object]]) -> Counter:
    return Counter(kind for kind, _result in outcomes)


def assert_stock_invariants() -> None:
    broken = StockItem.objects.filter(Q(reserved__lt=0) | Q(on_hand__lt=F("reserved"))).values_list(
        "pk", "on_hand", "reserved"
    )
    assert list(broken) == []


def numbers(item: StockItem) -> tuple[int, int]:
    item.refresh_from_db()
    return item.on_hand, item.reserved


@pytest.fixture
def store():
    return StoreFactory(code="SH001")


def stocked(store, on_hand: int, *, code: str) -> StockItem:
    sku = SKUFactory(code=code)
    stock_receive(store=store, lines=[StockLine(sku, on_hand)], idempotency_key=f"seed-{code}")
    return StockItem.objects.get(store=store, sku=sku)


def test_200_buyers_for_20_units_get_exactly_20(store):
    item = stocked(store, 20, code="HOT-01")

    outcomes = race(
        [
            lambda n=n: stock_reserve(store=store, lines=[ReserveLine(item.sku_id, 1, f"SO{n}/1")])
            for n in range(200)
        ]
    )

    assert tally(outcomes) == {WON: 20, "insufficient_stock": 180}
    assert numbers(item) == (20, 20)
    assert Reservation.objects.filter(stock_item=item, quantity=1, status="held").count() == 20
    assert StockMovement.objects.count() == 1
    assert_stock_invariants()


def test_baskets_taking_two_skus_in_opposite_order_queue_instead_of_deadlocking(store):
    first = stocked(store, 100, code="PAIR-A")
    second = stocked(store, 100, code="PAIR-B")

    def basket(n: int) -> Callable[[], object]:
        skus = [first.sku_id, second.sku_id] if n % 2 else [second.sku_id, first.sku_id]
        lines = [ReserveLine(sku, 1, f"SO{n}/{line}") for line, sku in enumerate(skus, 1)]
        return lambda: stock_reserve(store=store, lines=lines)

    outcomes = race([basket(n) for n in range(40)])

    assert tally(outcomes) == {WON: 40}
    assert numbers(first) == (100, 40)
    assert numbers(second) == (100, 40)
    assert Reservation.objects.count() == 80
    assert_stock_invariants()


def test_the_counter_and_online_buyers_never_both_get_the_last_unit(store):
    for round_ in range(20):
        item = stocked(store, 1, code=f"LAST-{round_:02d}")

        def counter_sale(item=item, round_=round_):
            return stock_sell_at_counter(
                store=store, lines=[StockLine(item.sku_id, 1)], idempotency_key=f"POS-{round_}"
            )

        def online(n: int, item=item, round_=round_) -> Callable[[], object]:
            line = ReserveLine(item.sku_id, 1, f"SO{round_}-{n}/1")
            return lambda: stock_reserve(store=store, lines=[line])

        outcomes = race([counter_sale, *(online(n) for n in range(3))])

        assert tally(outcomes) == {WON: 1, "insufficient_stock": 3}, f"round {round_}"
        sold_at_counter = StockMovement.objects.filter(stock_item=item, reason="counter_sale")
        reserved_online = Reservation.objects.filter(stock_item=item)
        counter_won = outcomes[0][0] == WON
        # (on_hand, reserved), counter-sale rows, reservations: the winner's trace and no other.
        expected = ((0, 0), 1, 0) if counter_won else ((1, 1), 0, 1)
        assert (numbers(item), sold_at_counter.count(), reserved_online.count()) == expected
        assert_stock_invariants()


def test_one_order_line_reserved_by_20_threads_is_held_once(store):
    item = stocked(store, 10, code="SAME-LINE")

    outcomes = race(
        [
            lambda: stock_reserve(store=store, lines=[ReserveLine(item.sku_id, 3, "SO1/1")])
            for _ in range(20)
        ]
    )

    assert tally(outcomes) == {WON: 20}
    reservation = Reservation.objects.get()
    assert (reservation.line_key, reservation.quantity) == ("SO1/1", 3)
    assert {result[0].pk for _kind, result in outcomes} == {reservation.pk}
    assert numbers(item) == (10, 3)
    assert_stock_invariants()


def test_one_delivery_note_applied_by_20_threads_is_received_once(store):
    # A new SKU's first delivery: the threads also race to create its stock row.
    sku = SKUFactory(code="NEW-ARRIVAL")

    outcomes = race(
        [
            lambda: stock_receive(store=store, lines=[StockLine(sku, 24)], idempotency_key="DN-1")
            for _ in range(20)
        ]
    )

    assert tally(outcomes) == {WON: 20}
    item = StockItem.objects.get(store=store, sku=sku)
    movement = StockMovement.objects.get()
    assert (movement.stock_item, movement.quantity, movement.on_hand_after) == (item, 24, 24)
    assert movement.idempotency_key == f"receipt:DN-1:{sku.pk}"
    assert {result[0].pk for _kind, result in outcomes} == {movement.pk}
    assert numbers(item) == (24, 0)
    assert_stock_invariants()
