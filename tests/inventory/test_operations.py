"""Store stock operations: transfers (create, revise, send, receive), stock counts (sheet,
apply) and a stock row's settings. Every refusal leaves the books exactly as they were, and every
history ends with an audit that finds no drift."""

from datetime import UTC, datetime

import pytest
import time_machine

from inventory.audit import inventory_drift
from inventory.models import (
    StockCount,
    StockCountLine,
    StockItem,
    StockMovement,
    Transfer,
    TransferLine,
)
from inventory.operations import (
    stock_count_apply,
    stock_count_create,
    stock_count_remove_line,
    stock_count_set_line,
    stock_count_set_lines,
    stock_count_start,
    stock_item_update_settings,
    transfer_create,
    transfer_receive,
    transfer_revise,
    transfer_send,
)
from inventory.services import (
    ReserveLine,
    StockLine,
    stock_receive,
    stock_reserve,
    stock_sell_at_counter,
)
from retail.errors import BusinessError
from tests.factories import SKUFactory, StoreFactory

pytestmark = pytest.mark.django_db

CREATED = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
SENT = datetime(2025, 3, 1, 2, 30, tzinfo=UTC)
RECEIVED = datetime(2025, 3, 2, 6, 15, tzinfo=UTC)
APPLIED = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def water():
    return SKUFactory(code="P0001-01")


@pytest.fixture
def tea():
    return SKUFactory(code="P0001-02")


@pytest.fixture
def juice():
    return SKUFactory(code="P0001-03")


def stocked(store, sku, on_hand: int) -> StockItem:
    """A stock row filled through the ledger, as a supplier delivery would."""
    stock_receive(
        store=store, lines=[StockLine(sku, on_hand)], idempotency_key=f"seed-{store.pk}-{sku.pk}"
    )
    return StockItem.objects.get(store=store, sku=sku)


def stock(store, sku) -> tuple[int, int] | None:
    """(on_hand, reserved) of a SKU in a store; None when the store has no row for it."""
    row = StockItem.objects.filter(store=store, sku=sku).values_list("on_hand", "reserved")
    return row.first()


def books() -> dict[str, list]:
    """Everything an operation may write, to prove that a refused one wrote nothing."""
    return {
        "stock": list(
            StockItem.objects.order_by("pk").values_list(
                "pk", "store_id", "sku_id", "on_hand", "reserved", "safety_stock", "pack_size"
            )
        ),
        "ledger": list(
            StockMovement.objects.order_by("pk").values_list(
                "stock_item_id", "quantity", "reason", "idempotency_key"
            )
        ),
        "transfers": list(
            Transfer.objects.order_by("pk").values_list(
                "pk", "from_store_id", "to_store_id", "status", "note", "sent_at", "received_at"
            )
        ),
        "transfer_lines": list(
            TransferLine.objects.order_by("transfer_id", "sku_id").values_list(
                "transfer_id", "sku_id", "quantity_sent", "quantity_received"
            )
        ),
        "counts": list(StockCount.objects.order_by("pk").values_list("pk", "status", "applied_at")),
        "count_lines": list(
            StockCountLine.objects.order_by("count_id", "sku_id").values_list(
                "count_id", "sku_id", "counted", "expected"
            )
        ),
    }


def ledger_rows(**filters) -> list[tuple]:
    return list(
        StockMovement.objects.filter(**filters)
        .order_by("pk")
        .values_list(
            "stock_item__store__code",
            "stock_item__sku__code",
            "quantity",
            "on_hand_after",
            "reason",
            "reference",
            "idempotency_key",
            "actor",
        )
    )


def transfer_lines(transfer: Transfer) -> list[tuple]:
    return [
        (line.sku.code, line.quantity_sent, line.quantity_received, line.discrepancy)
        for line in transfer.lines.select_related("sku").order_by("sku__code")
    ]


def count_lines(count: StockCount) -> list[tuple]:
    return [
        (line.sku.code, line.counted, line.expected, line.difference)
        for line in count.lines.select_related("sku").order_by("sku__code")
    ]


def refusal(call) -> BusinessError:
    with pytest.raises(BusinessError) as refused:
        call()
    return refused.value


def assert_no_drift() -> None:
    assert list(inventory_drift()) == []


# --- Transfers: the draft ----------------------------------------------------------------------


def test_create_writes_a_draft_and_moves_nothing(store_a, store_b, water, tea, manager_a):
    stocked(store_a, water, 10)
    before = books()["ledger"]

    with time_machine.travel(CREATED, tick=False):
        transfer = transfer_create(
            from_store=store_a,
            to_store=store_b,
            lines=[StockLine(water, 4), StockLine(tea.pk, 2)],
            actor=manager_a,
            note="补货",
        )

    transfer.refresh_from_db()
    assert (transfer.from_store, transfer.to_store, transfer.status) == (store_a, store_b, "draft")
    assert (transfer.note, transfer.created_by, transfer.created_at) == ("补货", manager_a, CREATED)
    assert (transfer.sent_at, transfer.received_at) == (None, None)
    assert transfer_lines(transfer) == [("P0001-01", 4, None, None), ("P0001-02", 2, None, None)]
    assert books()["ledger"] == before
    assert (stock(store_a, water), stock(store_b, water), stock(store_a, tea)) == (
        (10, 0),
        None,
        None,
    )


def test_create_query_count(store_a, store_b, water, tea, juice, django_assert_num_queries):
    # SAVEPOINT, INSERT transfer, one INSERT for all lines, RELEASE
    with django_assert_num_queries(4):
        transfer_create(
            from_store=store_a,
            to_store=store_b,
            lines=[StockLine(water, 1), StockLine(tea, 2), StockLine(juice, 3)],
            actor=None,
        )

    assert TransferLine.objects.count() == 3


@pytest.mark.parametrize(
    ("case", "code", "fields"),
    [
        ("same_store", "transfer_same_store", {"to_store": ["{store_a}"]}),
        ("inactive_receiver", "store_inactive", {"to_store": ["{closed}"]}),
        ("no_lines", "transfer_empty", {}),
        ("duplicate_sku", "duplicate_line", {"sku": ["{water}"]}),
        ("zero_quantity", "invalid_quantity", {"sku": ["{tea}"], "quantity": ["0"]}),
        ("negative_quantity", "invalid_quantity", {"sku": ["{tea}"], "quantity": ["-3"]}),
    ],
)
def test_create_refuses_a_bad_transfer_and_writes_nothing(
    case, code, fields, store_a, store_b, water, tea, manager_a
):
    closed = StoreFactory(code="SH009", active=False)
    stocked(store_a, water, 10)
    to_store, lines = {
        "same_store": (store_a, [StockLine(water, 1)]),
        "inactive_receiver": (closed, [StockLine(water, 1)]),
        "no_lines": (store_b, []),
        "duplicate_sku": (store_b, [StockLine(water, 1), StockLine(water.pk, 2)]),
        "zero_quantity": (store_b, [StockLine(water, 1), StockLine(tea, 0)]),
        "negative_quantity": (store_b, [StockLine(water, 1), StockLine(tea, -3)]),
    }[case]
    ids = {"store_a": store_a.pk, "closed": closed.pk, "water": water.pk, "tea": tea.pk}
    before = books()

    error = refusal(
        lambda: transfer_create(from_store=store_a, to_store=to_store, lines=lines, actor=manager_a)
    )

    assert error.code == code
    assert error.fields == {
        name: [value.format(**ids) for value in values] for name, values in fields.items()
    }
    assert books() == before


def test_create_refusal_speaks_the_users_language(store_a, water, english):
    error = refusal(
        lambda: transfer_create(
            from_store=store_a, to_store=store_a, lines=[StockLine(water, 1)], actor=None
        )
    )

    assert (error.code, error.message) == (
        "transfer_same_store",
        "A transfer needs two different stores.",
    )


def test_revise_replaces_the_stores_the_note_and_every_line(store_a, store_b, water, tea, juice):
    store_c = StoreFactory(code="SH003")
    transfer = transfer_create(
        from_store=store_a,
        to_store=store_b,
        lines=[StockLine(water, 4), StockLine(tea, 2)],
        actor=None,
        note="first",
    )

    revised = transfer_revise(
        transfer=transfer,
        from_store=store_b,
        to_store=store_c,
        lines=[StockLine(tea, 7), StockLine(juice, 1)],
        note="second",
    )

    transfer.refresh_from_db()
    assert revised.pk == transfer.pk
    assert (transfer.from_store, transfer.to_store, transfer.note, transfer.status) == (
        store_b,
        store_c,
        "second",
        "draft",
    )
    assert transfer_lines(transfer) == [("P0001-02", 7, None, None), ("P0001-03", 1, None, None)]
    assert StockMovement.objects.count() == 0


def test_revise_refuses_bad_lines_and_keeps_the_draft_as_it_was(store_a, store_b, water, tea):
    transfer = transfer_create(
        from_store=store_a, to_store=store_b, lines=[StockLine(water, 4)], actor=None, note="n"
    )
    before = books()

    error = refusal(
        lambda: transfer_revise(
            transfer=transfer,
            from_store=store_a,
            to_store=store_b,
            lines=[StockLine(tea, 2), StockLine(tea, 3)],
            note="changed",
        )
    )

    assert (error.code, error.fields) == ("duplicate_line", {"sku": [str(tea.pk)]})
    assert books() == before


@pytest.mark.parametrize("status_after", ["in_transit", "received"])
def test_only_a_draft_can_be_revised(status_after, store_a, store_b, water, tea):
    stocked(store_a, water, 10)
    transfer = transfer_create(
        from_store=store_a, to_store=store_b, lines=[StockLine(water, 4)], actor=None
    )
    transfer_send(transfer=transfer, actor=None)
    if status_after == "received":
        transfer_receive(transfer=transfer, actor=None)
    before = books()

    error = refusal(
        lambda: transfer_revise(
            transfer=transfer, from_store=store_a, to_store=store_b, lines=[StockLine(tea, 1)]
        )
    )

    assert error.code == "transfer_not_draft"
    assert books() == before
    assert Transfer.objects.get(pk=transfer.pk).status == status_after
    assert_no_drift()


# --- Transfers: sending ------------------------------------------------------------------------


def test_send_takes_every_line_out_of_the_sending_store(store_a, store_b, water, tea, manager_a):
    stocked(store_a, water, 10)
    stocked(store_a, tea, 3)
    transfer = transfer_create(
        from_store=store_a,
        to_store=store_b,
        lines=[StockLine(water, 4), StockLine(tea, 3)],
        actor=manager_a,
    )
    reference = f"TR{transfer.pk:06d}"

    with time_machine.travel(SENT, tick=False):
        sent = transfer_send(transfer=transfer, actor=manager_a)

    assert (sent.status, sent.sent_at, sent.received_at) == ("in_transit", SENT, None)
    transfer.refresh_from_db()
    assert (transfer.status, transfer.sent_at) == ("in_transit", SENT)
    assert ledger_rows(reason="transfer_out") == [
        ("SH001", "P0001-01", -4, 6, "transfer_out", reference,
         f"transfer:{transfer.pk}:out:{water.pk}", manager_a.pk),
        ("SH001", "P0001-02", -3, 0, "transfer_out", reference,
         f"transfer:{transfer.pk}:out:{tea.pk}", manager_a.pk),
    ]  # fmt: skip
    assert (stock(store_a, water), stock(store_a, tea)) == ((6, 0), (0, 0))
    # In transit the goods are in neither store.
    assert (stock(store_b, water), stock(store_b, tea)) == (None, None)
    assert transfer_lines(transfer) == [("P0001-01", 4, None, None), ("P0001-02", 3, None, None)]
    assert_no_drift()


def test_sending_again_changes_nothing(store_a, store_b, water):
    stocked(store_a, water, 10)
    transfer = transfer_create(
        from_store=store_a, to_store=store_b, lines=[StockLine(water, 4)], actor=None
    )
    with time_machine.travel(SENT, tick=False):
        transfer_send(transfer=transfer, actor=None)
    before = books()

    again = transfer_send(transfer=transfer, actor=None)

    assert (again.pk, again.status, again.sent_at) == (transfer.pk, "in_transit", SENT)
    assert books() == before
    assert stock(store_a, water) == (6, 0)
    assert StockMovement.objects.filter(reason="transfer_out").count() == 1
    assert_no_drift()


def test_send_short_of_stock_is_refused_and_no_line_leaves(store_a, store_b, water, tea, juice):
    # water is enough and comes first in lock order; juice has no stock row in the store at all.
    stocked(store_a, water, 10)
    stocked(store_a, tea, 2)
    transfer = transfer_create(
        from_store=store_a,
        to_store=store_b,
        lines=[StockLine(water, 4), StockLine(tea, 3), StockLine(juice, 1)],
        actor=None,
    )
    before = books()

    error = refusal(lambda: transfer_send(transfer=transfer, actor=None))

    assert (error.code, error.fields) == (
        "insufficient_stock",
        {"sku": [str(tea.pk)], "quantity": ["3"]},
    )
    assert books() == before
    assert (stock(store_a, water), stock(store_a, tea), stock(store_a, juice)) == (
        (10, 0),
        (2, 0),
        None,
    )
    transfer.refresh_from_db()
    assert (transfer.status, transfer.sent_at) == ("draft", None)
    assert_no_drift()


def test_send_cannot_take_units_reserved_for_orders(store_a, store_b, water):
    stocked(store_a, water, 10)
    stock_reserve(store=store_a, lines=[ReserveLine(water, 8, "SO1/1")])
    transfer = transfer_create(
        from_store=store_a, to_store=store_b, lines=[StockLine(water, 3)], actor=None
    )
    before = books()

    error = refusal(lambda: transfer_send(transfer=transfer, actor=None))

    assert (error.code, error.fields) == (
        "insufficient_stock",
        {"sku": [str(water.pk)], "quantity": ["3"]},
    )
    assert books() == before
    assert stock(store_a, water) == (10, 8)
    assert_no_drift()


def test_a_received_transfer_cannot_be_sent_again(store_a, store_b, water):
    stocked(store_a, water, 10)
    transfer = transfer_create(
        from_store=store_a, to_store=store_b, lines=[StockLine(water, 4)], actor=None
    )
    transfer_send(transfer=transfer, actor=None)
    transfer_receive(transfer=transfer, actor=None)
    before = books()

    error = refusal(lambda: transfer_send(transfer=transfer, actor=None))

    assert error.code == "transfer_already_received"
    assert books() == before
    assert (stock(store_a, water), stock(store_b, water)) == ((6, 0), (4, 0))
    assert_no_drift()


def test_send_query_count(store_a, store_b, water, tea, django_assert_num_queries):
    stocked(store_a, water, 10)
    stocked(store_a, tea, 10)
    transfer = transfer_create(
        from_store=store_a,
        to_store=store_b,
        lines=[StockLine(water, 1), StockLine(tea, 1)],
        actor=None,
    )

    # SAVEPOINT, lock transfer, its lines, the stock rows, 6 per line
    # (key lookup, SAVEPOINT, UPDATE, read on_hand, INSERT movement, RELEASE), UPDATE transfer,
    # RELEASE.
    with django_assert_num_queries(18):
        transfer_send(transfer=transfer, actor=None)


# --- Transfers: receiving ----------------------------------------------------------------------


@pytest.fixture
def in_transit(store_a, store_b, water, tea, manager_a):
    """4 water and 3 tea sent from SH001 (10 and 5 before) to SH002 (2 water before)."""
    stocked(store_a, water, 10)
    stocked(store_a, tea, 5)
    stocked(store_b, water, 2)
    transfer = transfer_create(
        from_store=store_a,
        to_store=store_b,
        lines=[StockLine(water, 4), StockLine(tea, 3)],
        actor=manager_a,
    )
    with time_machine.travel(SENT, tick=False):
        return transfer_send(transfer=transfer, actor=manager_a)


def test_receive_everything_sent(in_transit, store_a, store_b, water, tea, clerk_a):
    reference = f"TR{in_transit.pk:06d}"

    with time_machine.travel(RECEIVED, tick=False):
        received = transfer_receive(transfer=in_transit, actor=clerk_a)

    assert (received.status, received.sent_at, received.received_at) == (
        "received",
        SENT,
        RECEIVED,
    )
    in_transit.refresh_from_db()
    assert (in_transit.status, in_transit.received_at) == ("received", RECEIVED)
    assert transfer_lines(in_transit) == [("P0001-01", 4, 4, 0), ("P0001-02", 3, 3, 0)]
    assert ledger_rows(reason="transfer_in") == [
        ("SH002", "P0001-01", 4, 6, "transfer_in", reference,
         f"transfer:{in_transit.pk}:in:{water.pk}", clerk_a.pk),
        ("SH002", "P0001-02", 3, 3, "transfer_in", reference,
         f"transfer:{in_transit.pk}:in:{tea.pk}", clerk_a.pk),
    ]  # fmt: skip
    assert (stock(store_a, water), stock(store_a, tea)) == ((6, 0), (2, 0))
    assert (stock(store_b, water), stock(store_b, tea)) == ((6, 0), (3, 0))
    assert_no_drift()


def test_receive_with_a_shortage_books_what_arrived_and_keeps_the_discrepancy(
    in_transit, store_a, store_b, water, tea, clerk_a
):
    with time_machine.travel(RECEIVED, tick=False):
        transfer_receive(transfer=in_transit, received={water.pk: 3, tea.pk: 0}, actor=clerk_a)

    in_transit.refresh_from_db()
    assert (in_transit.status, in_transit.received_at) == ("received", RECEIVED)
    assert transfer_lines(in_transit) == [("P0001-01", 4, 3, 1), ("P0001-02", 3, 0, 3)]
    # Nothing arrived of tea: no ledger row, and no stock row is opened for it.
    assert ledger_rows(reason="transfer_in") == [
        ("SH002", "P0001-01", 3, 5, "transfer_in", f"TR{in_transit.pk:06d}",
         f"transfer:{in_transit.pk}:in:{water.pk}", clerk_a.pk),
    ]  # fmt: skip
    assert (stock(store_a, water), stock(store_a, tea)) == ((6, 0), (2, 0))
    assert (stock(store_b, water), stock(store_b, tea)) == ((5, 0), None)
    assert_no_drift()


@pytest.mark.parametrize(
    ("received", "fields"),
    [
        # More than was sent: over-receipt is not allowed.
        ({"water": 5, "tea": 3}, {"sku": ["{water}"], "quantity": ["5"]}),
        ({"water": 4, "tea": -1}, {"sku": ["{tea}"], "quantity": ["-1"]}),
        # A line left out is refused, not read as zero.
        ({"water": 4}, {"sku": ["{tea}"], "quantity": ["None"]}),
        ({"water": 4, "tea": 3, "juice": 1}, {"sku": ["{juice}"]}),
    ],
    ids=["over_receipt", "negative", "line_left_out", "sku_not_on_transfer"],
)
def test_receive_refuses_impossible_quantities_and_changes_nothing(
    received, fields, in_transit, store_b, water, tea, juice
):
    ids = {"water": water.pk, "tea": tea.pk, "juice": juice.pk}
    before = books()

    error = refusal(
        lambda: transfer_receive(
            transfer=in_transit,
            received={ids[name]: quantity for name, quantity in received.items()},
            actor=None,
        )
    )

    assert error.code == "invalid_received_quantity"
    assert error.fields == {
        name: [value.format(**ids) for value in values] for name, values in fields.items()
    }
    assert books() == before
    in_transit.refresh_from_db()
    assert (in_transit.status, in_transit.received_at) == ("in_transit", None)
    assert transfer_lines(in_transit) == [("P0001-01", 4, None, None), ("P0001-02", 3, None, None)]
    assert (stock(store_b, water), stock(store_b, tea), stock(store_b, juice)) == (
        (2, 0),
        None,
        None,
    )
    assert_no_drift()


def test_receiving_again_changes_nothing_whatever_is_stated(in_transit, store_b, water, tea):
    with time_machine.travel(RECEIVED, tick=False):
        transfer_receive(transfer=in_transit, received={water.pk: 3, tea.pk: 3}, actor=None)
    before = books()

    again = transfer_receive(transfer=in_transit, received=None, actor=None)

    assert (again.pk, again.status, again.received_at) == (in_transit.pk, "received", RECEIVED)
    assert books() == before
    assert transfer_lines(in_transit) == [("P0001-01", 4, 3, 1), ("P0001-02", 3, 3, 0)]
    assert (stock(store_b, water), stock(store_b, tea)) == ((5, 0), (3, 0))
    assert_no_drift()


def test_a_draft_cannot_be_received(store_a, store_b, water):
    stocked(store_a, water, 10)
    transfer = transfer_create(
        from_store=store_a, to_store=store_b, lines=[StockLine(water, 4)], actor=None
    )
    before = books()

    error = refusal(lambda: transfer_receive(transfer=transfer, actor=None))

    assert error.code == "transfer_not_sent"
    assert books() == before
    assert (stock(store_a, water), stock(store_b, water)) == ((10, 0), None)
    assert_no_drift()


def test_receive_query_count(in_transit, django_assert_num_queries):
    # SAVEPOINT, lock transfer, its lines, the receiving store's stock rows, 6 to open the
    # missing tea row (get_or_create's SELECT and INSERT, each in a savepoint), 6 per line,
    # one UPDATE for all lines, UPDATE transfer, RELEASE.
    with django_assert_num_queries(25):
        transfer_receive(transfer=in_transit, actor=None)


# --- Stock counts ------------------------------------------------------------------------------


def test_create_an_empty_count_sheet(store_a, manager_a):
    with time_machine.travel(CREATED, tick=False):
        count = stock_count_create(store=store_a, actor=manager_a, note="月末盘点")

    count.refresh_from_db()
    assert (count.store, count.status, count.note) == (store_a, "open", "月末盘点")
    assert (count.created_by, count.created_at, count.applied_at) == (manager_a, CREATED, None)
    assert count_lines(count) == []


def test_start_writes_each_line_at_the_books_and_books_nothing(store_a, water, tea):
    stocked(store_a, water, 10)
    stocked(store_a, tea, 3)

    every, every_skus = stock_count_start(store=store_a, actor=None)
    chosen, chosen_skus = stock_count_start(store=store_a, actor=None, sku_ids=[tea.pk])
    typed = stock_count_set_lines(count=chosen, lines=[(tea.pk, 2)])

    assert (sorted(every_skus), chosen_skus) == (sorted([water.pk, tea.pk]), [tea.pk])
    assert count_lines(every) == [("P0001-01", 10, 10, 0), ("P0001-02", 3, 3, 0)]
    assert [(line.counted, line.expected) for line in typed] == [(2, 3)]
    assert StockMovement.objects.filter(reason="count_adjustment").count() == 0


def test_starting_a_count_of_everything_in_an_empty_store_is_refused(store_a):
    with pytest.raises(BusinessError) as refused:
        stock_count_start(store=store_a, actor=None)

    assert (refused.value.code, refused.value.status_code) == ("count_empty", 409)
    assert StockCount.objects.count() == 0


def test_set_line_writes_the_count_with_the_books_and_a_recount_reads_them_again(
    store_a, water, tea
):
    stocked(store_a, water, 10)
    count = stock_count_create(store=store_a, actor=None)

    first = stock_count_set_line(count=count, sku=water, counted=7)
    stock_sell_at_counter(store=store_a, lines=[StockLine(water, 2)], idempotency_key="POS-1")
    stock_count_set_line(count=count, sku=tea.pk, counted=0)  # no stock row: the books say 0
    line = stock_count_set_line(count=count, sku=water.pk, counted=9)

    assert (first.sku_id, first.counted, first.expected) == (water.pk, 7, 10)
    assert (line.pk, line.sku_id, line.counted, line.expected) == (first.pk, water.pk, 9, 8)
    assert count_lines(count) == [("P0001-01", 9, 8, 1), ("P0001-02", 0, 0, 0)]
    # Writing down a count moves nothing and opens no stock row.
    assert (stock(store_a, water), stock(store_a, tea)) == ((8, 0), None)
    assert StockMovement.objects.filter(reason="count_adjustment").count() == 0


def test_set_line_query_count(store_a, water, django_assert_num_queries):
    stocked(store_a, water, 10)
    count = stock_count_create(store=store_a, actor=None)

    # SAVEPOINT, lock count, read on_hand, update_or_create (SAVEPOINT, lock the line,
    # SAVEPOINT, INSERT, RELEASE, RELEASE), RELEASE.
    with django_assert_num_queries(10):
        stock_count_set_line(count=count, sku=water, counted=8)
    # A recount finds the line and updates it in place: no inner SAVEPOINT and INSERT.
    with django_assert_num_queries(8):
        stock_count_set_line(count=count, sku=water, counted=9)

    assert count_lines(count) == [("P0001-01", 9, 10, -1)]


def test_a_negative_count_is_refused_and_the_line_kept(store_a, water):
    count = stock_count_create(store=store_a, actor=None)
    stock_count_set_line(count=count, sku=water, counted=5)
    before = books()

    error = refusal(lambda: stock_count_set_line(count=count, sku=water, counted=-1))

    assert (error.code, error.fields) == (
        "invalid_count",
        {"sku": [str(water.pk)], "counted": ["-1"]},
    )
    assert books() == before
    assert count_lines(count) == [("P0001-01", 5, 0, 5)]


def test_remove_line_takes_a_sku_off_the_sheet(store_a, water, tea):
    count = stock_count_create(store=store_a, actor=None)
    stock_count_set_line(count=count, sku=water, counted=5)
    stock_count_set_line(count=count, sku=tea, counted=2)

    stock_count_remove_line(count=count, sku=water)
    stock_count_remove_line(count=count, sku=water.pk)

    assert count_lines(count) == [("P0001-02", 2, 0, 2)]


@pytest.fixture
def shelf(store_a, water, tea, juice):
    """SH001's books: 10 water, 10 tea, 10 juice."""
    for sku in (water, tea, juice):
        stocked(store_a, sku, 10)


def test_apply_turns_each_difference_into_one_adjustment(
    shelf, store_a, store_b, water, tea, juice, manager_a
):
    cola = SKUFactory(code="P0002-01")  # on the shelf, not on the books: no stock row yet
    stocked(store_b, water, 10)  # another store's row is not touched
    count = stock_count_create(store=store_a, actor=manager_a)
    stock_count_set_line(count=count, sku=water, counted=8)
    stock_count_set_line(count=count, sku=tea, counted=12)
    stock_count_set_line(count=count, sku=juice, counted=10)
    stock_count_set_line(count=count, sku=cola, counted=4)
    reference = f"SC{count.pk:06d}"

    with time_machine.travel(APPLIED, tick=False):
        applied = stock_count_apply(count=count, actor=manager_a)

    assert (applied.status, applied.applied_at) == ("applied", APPLIED)
    count.refresh_from_db()
    assert (count.status, count.applied_at) == ("applied", APPLIED)
    assert applied.pk == count.pk
    assert count_lines(count) == [
        ("P0001-01", 8, 10, -2),
        ("P0001-02", 12, 10, 2),
        ("P0001-03", 10, 10, 0),
        ("P0002-01", 4, 0, 4),
    ]
    assert ledger_rows(reason="count_adjustment") == [
        ("SH001", "P0001-01", -2, 8, "count_adjustment", reference,
         f"count:{count.pk}:{water.pk}", manager_a.pk),
        ("SH001", "P0001-02", 2, 12, "count_adjustment", reference,
         f"count:{count.pk}:{tea.pk}", manager_a.pk),
        ("SH001", "P0002-01", 4, 4, "count_adjustment", reference,
         f"count:{count.pk}:{cola.pk}", manager_a.pk),
    ]  # fmt: skip
    assert [stock(store_a, sku) for sku in (water, tea, juice, cola)] == [
        (8, 0),
        (12, 0),
        (10, 0),
        (4, 0),
    ]
    assert stock(store_b, water) == (10, 0)
    assert_no_drift()


def test_applying_again_changes_nothing(shelf, store_a, water):
    count = stock_count_create(store=store_a, actor=None)
    stock_count_set_line(count=count, sku=water, counted=7)
    with time_machine.travel(APPLIED, tick=False):
        stock_count_apply(count=count, actor=None)
    before = books()

    again = stock_count_apply(count=count, actor=None)

    assert (again.pk, again.status, again.applied_at) == (count.pk, "applied", APPLIED)
    assert books() == before
    assert stock(store_a, water) == (7, 0)
    assert StockMovement.objects.filter(reason="count_adjustment").count() == 1
    assert_no_drift()


@pytest.mark.parametrize("change", ["set_line", "remove_line"])
def test_an_applied_sheet_is_closed(change, shelf, store_a, water, tea):
    count = stock_count_create(store=store_a, actor=None)
    stock_count_set_line(count=count, sku=water, counted=7)
    stock_count_apply(count=count, actor=None)
    before = books()

    if change == "set_line":
        error = refusal(lambda: stock_count_set_line(count=count, sku=tea, counted=3))
    else:
        error = refusal(lambda: stock_count_remove_line(count=count, sku=water))

    assert error.code == "count_not_open"
    assert books() == before
    assert count_lines(count) == [("P0001-01", 7, 10, -3)]


def test_an_empty_sheet_cannot_be_applied(shelf, store_a):
    count = stock_count_create(store=store_a, actor=None)
    before = books()

    error = refusal(lambda: stock_count_apply(count=count, actor=None))

    assert error.code == "count_empty"
    assert books() == before
    count.refresh_from_db()
    assert (count.status, count.applied_at) == ("open", None)


def test_a_sale_between_counting_and_applying_stays_booked(shelf, store_a, water, manager_a):
    """Books 10, staff count 8 (2 missing), 3 sell at the counter, then the sheet is applied:
    the shelf holds 5 and so must the books. Setting on_hand to 8 would undo the sale."""
    count = stock_count_create(store=store_a, actor=manager_a)
    stock_count_set_line(count=count, sku=water, counted=8)
    stock_sell_at_counter(store=store_a, lines=[StockLine(water, 3)], idempotency_key="POS-1")

    stock_count_apply(count=count, actor=manager_a)

    assert stock(store_a, water) == (5, 0)
    assert count_lines(count) == [("P0001-01", 8, 10, -2)]
    assert ledger_rows(reason="count_adjustment") == [
        ("SH001", "P0001-01", -2, 5, "count_adjustment", f"SC{count.pk:06d}",
         f"count:{count.pk}:{water.pk}", manager_a.pk),
    ]  # fmt: skip
    assert ledger_rows(reason="counter_sale")[0][2:4] == (-3, 7)
    assert_no_drift()


def test_a_receipt_between_counting_and_applying_stays_booked(shelf, store_a, water):
    # cola has no stock row when it is counted; its first delivery arrives before applying.
    cola = SKUFactory(code="P0002-01")
    count = stock_count_create(store=store_a, actor=None)
    stock_count_set_line(count=count, sku=water, counted=8)
    stock_count_set_line(count=count, sku=cola, counted=4)
    stock_receive(
        store=store_a,
        lines=[StockLine(water, 5), StockLine(cola, 6)],
        idempotency_key="DN-1",
    )

    stock_count_apply(count=count, actor=None)

    assert (stock(store_a, water), stock(store_a, cola)) == ((13, 0), (10, 0))
    assert count_lines(count) == [("P0001-01", 8, 10, -2), ("P0002-01", 4, 0, 4)]
    assert [row[1:4] for row in ledger_rows(reason="count_adjustment")] == [
        ("P0001-01", -2, 13),
        ("P0002-01", 4, 10),
    ]
    assert_no_drift()


def test_a_count_below_the_reserved_units_refuses_the_whole_sheet(shelf, store_a, water, tea):
    # water comes first in lock order and would be adjusted; tea is short of its reservations.
    stock_reserve(store=store_a, lines=[ReserveLine(tea, 4, "SO1/1")])
    count = stock_count_create(store=store_a, actor=None)
    stock_count_set_line(count=count, sku=water, counted=6)
    stock_count_set_line(count=count, sku=tea, counted=3)
    before = books()

    error = refusal(lambda: stock_count_apply(count=count, actor=None))

    assert (error.code, error.fields) == (
        "count_below_reserved",
        {
            "sku": [str(tea.pk)],
            "counted": ["3"],
            "expected": ["10"],
            "on_hand": ["10"],
            "reserved": ["4"],
        },
    )
    assert books() == before
    assert (stock(store_a, water), stock(store_a, tea)) == ((10, 0), (10, 4))
    assert count_lines(count) == [("P0001-01", 6, 10, -4), ("P0001-02", 3, 10, -7)]
    assert_no_drift()


def test_a_sale_after_counting_can_push_the_result_below_the_reserved_units(shelf, store_a, tea):
    # Counted 5 of 10 with 4 reserved is fine; 3 more sold at the counter leave 7 on the books,
    # and 7 - 5 missing = 2 would be short of the 4 promised to an order.
    stock_reserve(store=store_a, lines=[ReserveLine(tea, 4, "SO1/1")])
    count = stock_count_create(store=store_a, actor=None)
    stock_count_set_line(count=count, sku=tea, counted=5)
    stock_sell_at_counter(store=store_a, lines=[StockLine(tea, 3)], idempotency_key="POS-1")
    before = books()

    error = refusal(lambda: stock_count_apply(count=count, actor=None))

    assert (error.code, error.fields) == (
        "count_below_reserved",
        {
            "sku": [str(tea.pk)],
            "counted": ["5"],
            "expected": ["10"],
            "on_hand": ["7"],
            "reserved": ["4"],
        },
    )
    assert books() == before
    assert stock(store_a, tea) == (7, 4)
    assert count_lines(count) == [("P0001-02", 5, 10, -5)]
    assert_no_drift()


def test_a_count_that_would_leave_less_than_nothing_refuses_the_whole_sheet(
    shelf, store_a, water, tea, english
):
    # water is fine and first in lock order; tea was counted 8 of 10, then 9 left the books.
    count = stock_count_create(store=store_a, actor=None)
    stock_count_set_line(count=count, sku=water, counted=12)
    stock_count_set_line(count=count, sku=tea, counted=8)
    stock_sell_at_counter(store=store_a, lines=[StockLine(tea, 9)], idempotency_key="POS-1")
    before = books()

    error = refusal(lambda: stock_count_apply(count=count, actor=None))

    assert (error.code, error.message) == (
        "count_negative_result",
        "This count would leave less than nothing on hand; count again.",
    )
    assert error.fields == {
        "sku": [str(tea.pk)],
        "counted": ["8"],
        "expected": ["10"],
        "on_hand": ["1"],
    }
    assert books() == before
    assert (stock(store_a, water), stock(store_a, tea)) == ((10, 0), (1, 0))
    count.refresh_from_db()
    assert (count.status, count.applied_at) == ("open", None)
    assert_no_drift()


def test_a_count_at_or_above_the_reserved_units_keeps_the_reservations(shelf, store_a, tea):
    stock_reserve(store=store_a, lines=[ReserveLine(tea, 4, "SO1/1")])
    count = stock_count_create(store=store_a, actor=None)
    stock_count_set_line(count=count, sku=tea, counted=4)

    stock_count_apply(count=count, actor=None)

    assert stock(store_a, tea) == (4, 4)
    assert count_lines(count) == [("P0001-02", 4, 10, -6)]
    assert_no_drift()


def test_apply_query_count(shelf, store_a, water, tea, django_assert_num_queries):
    count = stock_count_create(store=store_a, actor=None)
    stock_count_set_line(count=count, sku=water, counted=8)
    stock_count_set_line(count=count, sku=tea, counted=10)

    # SAVEPOINT, lock count, its lines, the stock rows, lock them, 6 for the one adjustment,
    # UPDATE count, RELEASE.
    with django_assert_num_queries(13):
        stock_count_apply(count=count, actor=None)


# --- Stock row settings ------------------------------------------------------------------------


def test_update_settings_writes_only_the_settings(store_a, water):
    item = stocked(store_a, water, 10)
    stale = StockItem.objects.get(pk=item.pk)
    # A sale and a reservation committed after the row was read for the form.
    stock_sell_at_counter(store=store_a, lines=[StockLine(water, 3)], idempotency_key="POS-1")
    stock_reserve(store=store_a, lines=[ReserveLine(water, 2, "SO1/1")])
    ledger = books()["ledger"]

    updated = stock_item_update_settings(
        item=stale, safety_stock=2, lead_time_days=5, review_days=14, pack_size=6
    )

    fresh = StockItem.objects.get(pk=item.pk)
    for row in (updated, fresh):
        assert (row.on_hand, row.reserved) == (7, 2)
        assert (row.safety_stock, row.lead_time_days, row.review_days, row.pack_size) == (
            2,
            5,
            14,
            6,
        )
    assert fresh.available_online == 3
    assert books()["ledger"] == ledger
    assert_no_drift()


def test_update_settings_query_count(store_a, water, django_assert_num_queries):
    item = stocked(store_a, water, 10)

    # SAVEPOINT, UPDATE, read back, RELEASE
    with django_assert_num_queries(4):
        stock_item_update_settings(
            item=item, safety_stock=1, lead_time_days=2, review_days=7, pack_size=1
        )


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"safety_stock": -1}, {"safety_stock": ["-1"]}),
        ({"pack_size": 0}, {"pack_size": ["0"]}),
        ({"lead_time_days": -1}, {"lead_time_days": ["-1"]}),
        ({"review_days": -2}, {"review_days": ["-2"]}),
    ],
)
def test_update_settings_refuses_impossible_settings(change, fields, store_a, water):
    item = stocked(store_a, water, 10)
    before = books()

    error = refusal(
        lambda: stock_item_update_settings(
            item=item,
            **{"safety_stock": 1, "lead_time_days": 3, "review_days": 7, "pack_size": 6, **change},
        )
    )

    assert (error.code, error.fields) == ("invalid_stock_setting", fields)
    assert books() == before
    item.refresh_from_db()
    assert (item.safety_stock, item.lead_time_days, item.review_days, item.pack_size) == (
        0,
        2,
        7,
        1,
    )


# --- One history, audited ----------------------------------------------------------------------


def test_a_day_of_operations_leaves_no_drift(store_a, store_b, water, tea, manager_a):
    stocked(store_a, water, 20)
    stocked(store_a, tea, 8)
    stock_reserve(store=store_a, lines=[ReserveLine(water, 5, "SO1/1")])
    first = transfer_create(
        from_store=store_a,
        to_store=store_b,
        lines=[StockLine(water, 6), StockLine(tea, 8)],
        actor=manager_a,
    )
    transfer_send(transfer=first, actor=manager_a)
    transfer_receive(transfer=first, received={water.pk: 6, tea.pk: 7}, actor=manager_a)
    back = transfer_create(
        from_store=store_b, to_store=store_a, lines=[StockLine(water, 2)], actor=manager_a
    )
    transfer_send(transfer=back, actor=manager_a)
    transfer_receive(transfer=back, actor=manager_a)
    count = stock_count_create(store=store_b, actor=manager_a)
    stock_count_set_line(count=count, sku=water, counted=3)
    stock_count_set_line(count=count, sku=tea, counted=7)
    stock_count_apply(count=count, actor=manager_a)

    assert [stock(store, sku) for store in (store_a, store_b) for sku in (water, tea)] == [
        (16, 5),
        (0, 0),
        (3, 0),
        (7, 0),
    ]
    # 2 receipts, 2 out and 2 in, 1 out and 1 in back, 1 adjustment (tea counted as booked)
    assert StockMovement.objects.count() == 9
    assert_no_drift()
