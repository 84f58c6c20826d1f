"""The inventory audit: a clean history audits clean, drift is reported exactly, the command
fails for cron, the query count does not grow with the stock, and random histories written
through the services never drift and end where a model of the rules says they must."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from inventory.audit import Drift, DriftCheck, inventory_drift, stock_item_count
from inventory.models import Reservation, StockItem, StockMovement, Transfer
from inventory.operations import (
    stock_count_apply,
    stock_count_create,
    stock_count_set_line,
    stock_item_update_settings,
    transfer_create,
    transfer_receive,
    transfer_send,
)
from inventory.services import (
    ReserveLine,
    StockLine,
    stock_commit,
    stock_consume,
    stock_item_for,
    stock_receive,
    stock_release,
    stock_release_expired,
    stock_reserve,
    stock_return,
    stock_sell_at_counter,
    stock_write_off,
)
from retail.errors import BusinessError
from tests.factories import SKUFactory, StockItemFactory

pytestmark = pytest.mark.django_db

TABLE_HEAD = [
    "Inventory drift. Expected: what the ledger or the held and committed reservations add up "
    "to. Found: what the stock row says.",
    "store        SKU                     expected     found difference  check",
]


@pytest.fixture
def water():
    return SKUFactory(code="P0001-01")


@pytest.fixture
def tea():
    return SKUFactory(code="P0001-02")


@pytest.fixture
def history(store_a, store_b, water, tea):
    """Every kind of write the services know, in two stores."""
    stock_receive(
        store=store_a, lines=[StockLine(water, 24), StockLine(tea, 10)], idempotency_key="DN-1"
    )
    stock_receive(store=store_b, lines=[StockLine(water, 5)], idempotency_key="DN-2")
    stock_sell_at_counter(store=store_a, lines=[StockLine(water, 3)], idempotency_key="POS-1")
    stock_reserve(
        store=store_a, lines=[ReserveLine(water, 4, "SO1/1"), ReserveLine(tea, 2, "SO1/2")]
    )
    stock_commit(line_key="SO1/1")
    stock_consume(line_key="SO1/1")
    stock_release(line_key="SO1/2")
    stock_reserve(store=store_a, lines=[ReserveLine(tea, 1, "SO2/1")])
    stock_write_off(store=store_a, lines=[StockLine(tea, 1)], idempotency_key="D-1")
    stock_return(store=store_a, lines=[StockLine(water, 1)], idempotency_key="R-1")


def item(store, sku) -> StockItem:
    return StockItem.objects.get(store=store, sku=sku)


def audit(*args: str) -> tuple[str, CommandError | None]:
    """Run the command; return what it printed and the error it failed with, if it did."""
    out = StringIO()
    try:
        call_command("inventory_audit", *args, stdout=out)
    except CommandError as failed:
        return out.getvalue(), failed
    return out.getvalue(), None


# --- A clean history -------------------------------------------------------------------------


def test_a_history_written_through_the_services_audits_clean(history, store_a, store_b, water, tea):
    drifts = list(inventory_drift())

    assert drifts == []
    assert stock_item_count() == 3
    assert {
        (row.store.code, row.sku.code): (row.on_hand, row.reserved)
        for row in StockItem.objects.select_related("store", "sku")
    } == {
        ("SH001", "P0001-01"): (18, 0),
        ("SH001", "P0001-02"): (9, 1),
        ("SH002", "P0001-01"): (5, 0),
    }


def test_the_command_says_so_and_succeeds(history, english):
    printed, failed = audit()

    assert failed is None
    assert printed == "checked 3 stock items, no drift\n"


def test_an_audit_of_no_stock_at_all_is_clean(store_a, english):
    printed, failed = audit("--store", "SH001")

    assert failed is None
    assert printed == "checked 0 stock items, no drift\n"


# --- Drift -----------------------------------------------------------------------------------


def test_stock_rows_changed_behind_the_ledger_drift(history, store_a, water, tea):
    StockItem.objects.filter(store=store_a, sku=water).update(on_hand=F("on_hand") + 3)
    StockItem.objects.filter(store=store_a, sku=tea).update(reserved=0)

    drifts = list(inventory_drift())

    assert drifts == [
        Drift(item(store_a, water).pk, "SH001", "P0001-01", DriftCheck.ON_HAND, 18, 21),
        Drift(item(store_a, tea).pk, "SH001", "P0001-02", DriftCheck.RESERVED, 1, 0),
    ]
    assert [drift.difference for drift in drifts] == [3, -1]


def test_one_row_can_drift_both_ways(history, store_a, tea):
    StockItem.objects.filter(store=store_a, sku=tea).update(on_hand=20, reserved=7)

    drifts = list(inventory_drift())

    tea_a = item(store_a, tea).pk
    assert drifts == [
        Drift(tea_a, "SH001", "P0001-02", DriftCheck.ON_HAND, 9, 20),
        Drift(tea_a, "SH001", "P0001-02", DriftCheck.RESERVED, 1, 7),
    ]


def test_records_written_behind_the_stock_row_drift(history, store_a, store_b, water, tea):
    # A ledger row nobody applied, a reservation nobody counted, a row with no ledger at all.
    StockMovement.objects.create(
        stock_item=item(store_b, water),
        quantity=6,
        on_hand_after=11,
        reason="receipt",
        idempotency_key="typed-in-by-hand",
    )
    Reservation.objects.create(
        stock_item=item(store_a, water),
        line_key="SO9/1",
        quantity=2,
        expires_at=timezone.now() + timedelta(minutes=30),
    )
    no_ledger = StockItemFactory(store=store_b, sku=tea, on_hand=4)

    drifts = list(inventory_drift())

    assert drifts == [
        Drift(item(store_a, water).pk, "SH001", "P0001-01", DriftCheck.RESERVED, 2, 0),
        Drift(item(store_b, water).pk, "SH002", "P0001-01", DriftCheck.ON_HAND, 11, 5),
        Drift(no_ledger.pk, "SH002", "P0001-02", DriftCheck.ON_HAND, 0, 4),
    ]


def test_the_command_prints_each_drift_and_exits_with_status_1(
    history, store_a, water, tea, english
):
    StockItem.objects.filter(store=store_a, sku=water).update(on_hand=F("on_hand") + 3)
    StockItem.objects.filter(store=store_a, sku=tea).update(reserved=0)

    printed, failed = audit()

    assert failed is not None
    assert failed.returncode == 1
    assert str(failed) == "checked 3 stock items, found 2 drifts"
    assert printed.splitlines() == [
        *TABLE_HEAD,
        "SH001        P0001-01                      18        21         +3  "
        "on hand vs ledger total",
        "SH001        P0001-02                       1         0         -1  "
        "reserved vs active reservations",
    ]


def test_the_store_option_audits_that_store_only(history, store_a, water, english):
    StockItem.objects.filter(store=store_a, sku=water).update(on_hand=F("on_hand") - 1)

    printed_b, failed_b = audit("--store", "SH002")
    printed_a, failed_a = audit("--store", "SH001")

    assert (printed_b, failed_b) == ("checked 1 stock item, no drift\n", None)
    assert failed_a is not None
    assert str(failed_a) == "checked 2 stock items, found 1 drift"
    assert printed_a.splitlines()[2:] == [
        "SH001        P0001-01                      18        17         -1  "
        "on hand vs ledger total"
    ]
    assert list(inventory_drift(store=store_a.pk)) == list(inventory_drift())


def test_an_unknown_store_code_is_an_error_not_a_clean_audit(history, english):
    printed, failed = audit("--store", "SH999")

    assert failed is not None
    assert (failed.returncode, str(failed)) == (1, "No store has the code SH999.")
    assert printed == ""


# --- Query count -----------------------------------------------------------------------------


def stock_in_one_store(store, count: int) -> None:
    """``count`` stock rows, each with a receipt and an active reservation."""
    skus = SKUFactory.create_batch(count)
    stock_receive(store=store, lines=[StockLine(sku, 5) for sku in skus], idempotency_key="DN-bulk")
    stock_reserve(store=store, lines=[ReserveLine(sku, 1, f"SO-{sku.code}/1") for sku in skus])


@pytest.mark.parametrize("count", [3, 30])
def test_a_clean_audit_takes_two_queries_however_many_rows(store_a, count, english):
    stock_in_one_store(store_a, count)

    with CaptureQueriesContext(connection) as all_stores:
        printed_all, failed_all = audit()
    with CaptureQueriesContext(connection) as one_store:
        printed_one, failed_one = audit("--store", "SH001")

    assert (failed_all, failed_one) == (None, None)
    assert printed_all == printed_one == f"checked {count} stock items, no drift\n"
    # The count, then the drift query; naming a store adds the look-up of its code.
    assert (len(all_stores), len(one_store)) == (2, 3)


@pytest.mark.parametrize("count", [3, 30])
def test_reporting_drift_on_every_row_takes_two_queries_too(store_a, count):
    stock_in_one_store(store_a, count)
    StockItem.objects.update(on_hand=F("on_hand") + 1, reserved=0)

    with CaptureQueriesContext(connection) as queries:
        printed, failed = audit()

    assert failed is not None
    assert len(printed.splitlines()) == len(TABLE_HEAD) + 2 * count
    assert len(queries) == 2


def test_drift_streams_in_chunks(store_a):
    stock_in_one_store(store_a, 5)
    StockItem.objects.update(reserved=0)

    drifts = list(inventory_drift(chunk_size=2))

    assert [(drift.check, drift.expected, drift.found) for drift in drifts] == [
        (DriftCheck.RESERVED, 1, 0)
    ] * 5


# --- Random histories --------------------------------------------------------------------------
#
# A step is a tuple, so Hypothesis prints a failing history as plain data. Store and SKU are
# indexes into the test's two stores and three SKUs; a transfer is picked by its position among
# the transfers created so far.

STORES = 2
SKUS = 3
ITEMS = [(store, sku) for store in range(STORES) for sku in range(SKUS)]
SAFETY_STOCK = 2  # in the first store only, so online and counter rules differ there

LEDGER_SERVICES = {
    "receive": stock_receive,
    "sell": stock_sell_at_counter,
    "return": stock_return,
    "write_off": stock_write_off,
}
OUTBOUND = {"sell", "write_off"}

_store = st.integers(0, STORES - 1)
_sku = st.integers(0, SKUS - 1)
_quantity = st.integers(1, 6)
_lines = st.lists(st.tuples(_sku, _quantity), min_size=1, max_size=3, unique_by=lambda x: x[0])
# Few keys, so that repeated calls exercise idempotency; repeats within a call are refused.
_idempotency_key = st.sampled_from(["K1", "K2", "K3"])
_line_key = st.sampled_from([f"SO{order}/{line}" for order in range(1, 5) for line in (1, 2)])
_transfer = st.integers(0, 3)

history_steps = st.one_of(
    st.tuples(st.just("receive"), _store, _lines, _idempotency_key),
    st.tuples(st.sampled_from(["sell", "return", "write_off"]), _store, _lines, _idempotency_key),
    # (store, [(sku, quantity, line key)], online, already expired)
    st.tuples(
        st.just("reserve"),
        _store,
        st.lists(st.tuples(_sku, _quantity, _line_key), min_size=1, max_size=3),
        st.booleans(),
        st.booleans(),
    ),
    st.tuples(st.sampled_from(["commit", "consume", "release"]), _line_key),
    st.tuples(st.just("release_expired")),
    st.tuples(st.just("transfer_create"), _store, _store, _lines),
    st.tuples(st.just("transfer_send"), _transfer),
    # (transfer, everything arrived; else half of each line, rounded down)
    st.tuples(st.just("transfer_receive"), _transfer, st.booleans()),
    st.tuples(
        st.just("count"),
        _store,
        st.lists(
            st.tuples(_sku, st.integers(0, 12)), min_size=1, max_size=3, unique_by=lambda x: x[0]
        ),
    ),
)


@dataclass
class ModelReservation:
    item: tuple[int, int]
    quantity: int
    status: str
    expired: bool


@dataclass
class ModelTransfer:
    from_store: int
    to_store: int
    lines: list[tuple[int, int]]
    status: str = "draft"

    def arriving(self, complete: bool) -> list[tuple[int, int]]:
        return [(sku, quantity if complete else quantity // 2) for sku, quantity in self.lines]


@dataclass
class StockModel:
    """The stock rules restated without a database: each step returns the refusal code it
    expects (None when the step goes through) and changes the numbers only when it goes
    through."""

    on_hand: dict[tuple[int, int], int] = field(default_factory=lambda: dict.fromkeys(ITEMS, 0))
    reserved: dict[tuple[int, int], int] = field(default_factory=lambda: dict.fromkeys(ITEMS, 0))
    ledger_keys: set[tuple[str, str, int]] = field(default_factory=set)
    reservations: dict[str, ModelReservation] = field(default_factory=dict)
    transfers: list[ModelTransfer] = field(default_factory=list)

    def safety_stock(self, item: tuple[int, int]) -> int:
        return SAFETY_STOCK if item[0] == 0 else 0

    def available(self, item: tuple[int, int]) -> int:
        return self.on_hand[item] - self.reserved[item]

    def numbers(self) -> dict[tuple[int, int], tuple[int, int]]:
        return {item: (self.on_hand[item], self.reserved[item]) for item in ITEMS}

    def apply(self, step: tuple) -> str | None:
        name, *args = step
        if name in LEDGER_SERVICES:
            return self.ledger(name, *args)
        return getattr(self, name)(*args)

    def ledger(self, kind: str, store: int, lines: list, key: str) -> str | None:
        # A line whose key was used before returns the first movement, in whatever store.
        new = [
            (sku, quantity) for sku, quantity in lines if (kind, key, sku) not in self.ledger_keys
        ]
        sign = -1 if kind in OUTBOUND else 1
        if sign < 0 and any(self.available((store, sku)) < quantity for sku, quantity in new):
            return "insufficient_stock"
        for sku, quantity in new:
            self.on_hand[(store, sku)] += sign * quantity
            self.ledger_keys.add((kind, key, sku))
        return None

    def reserve(self, store: int, lines: list, online: bool, expired: bool) -> str | None:
        keys = [line_key for _sku, _quantity, line_key in lines]
        if len(set(keys)) != len(keys):
            return "duplicate_line"
        new = [line for line in lines if line[2] not in self.reservations]
        wanted = Counter[tuple[int, int]]()
        for sku, quantity, _line_key in new:
            wanted[(store, sku)] += quantity
        for item, quantity in wanted.items():
            kept_back = self.safety_stock(item) if online else 0
            if self.available(item) - kept_back < quantity:
                return "insufficient_stock"
        for sku, quantity, line_key in new:
            self.reserved[(store, sku)] += quantity
            self.reservations[line_key] = ModelReservation((store, sku), quantity, "held", expired)
        return None

    def commit(self, line_key: str) -> str | None:
        reservation = self.reservations.get(line_key)
        if reservation is None:
            return "reservation_not_found"
        if reservation.status == "released":
            return "reservation_released"
        if reservation.status == "held":
            reservation.status, reservation.expired = "committed", False
        return None

    def consume(self, line_key: str) -> str | None:
        reservation = self.reservations.get(line_key)
        if reservation is None:
            return "reservation_not_found"
        if reservation.status == "released":
            return "reservation_released"
        if reservation.status != "consumed":
            self.on_hand[reservation.item] -= reservation.quantity
            self.reserved[reservation.item] -= reservation.quantity
            reservation.status = "consumed"
        return None

    def release(self, line_key: str) -> str | None:
        reservation = self.reservations.get(line_key)
        if reservation is None:
            return "reservation_not_found"
        if reservation.status == "consumed":
            return "reservation_consumed"
        if reservation.status != "released":
            self.reserved[reservation.item] -= reservation.quantity
            reservation.status = "released"
        return None

    def release_expired(self) -> None:
        for reservation in self.reservations.values():
            if reservation.status == "held" and reservation.expired:
                self.reserved[reservation.item] -= reservation.quantity
                reservation.status = "released"

    def transfer_create(self, from_store: int, to_store: int, lines: list) -> str | None:
        if from_store == to_store:
            return "transfer_same_store"
        self.transfers.append(ModelTransfer(from_store, to_store, lines))
        return None

    def transfer_send(self, pick: int) -> str | None:
        if not self.transfers:
            return None
        transfer = self.transfers[pick % len(self.transfers)]
        if transfer.status == "received":
            return "transfer_already_received"
        if transfer.status == "draft":
            sending = [((transfer.from_store, sku), quantity) for sku, quantity in transfer.lines]
            if any(self.available(item) < quantity for item, quantity in sending):
                return "insufficient_stock"
            for item, quantity in sending:
                self.on_hand[item] -= quantity
            transfer.status = "in_transit"
        return None

    def transfer_receive(self, pick: int, complete: bool) -> str | None:
        if not self.transfers:
            return None
        transfer = self.transfers[pick % len(self.transfers)]
        if transfer.status == "draft":
            return "transfer_not_sent"
        if transfer.status == "in_transit":
            for sku, quantity in transfer.arriving(complete):
                self.on_hand[(transfer.to_store, sku)] += quantity
            transfer.status = "received"
        return None

    def count(self, store: int, lines: list) -> str | None:
        if any(counted < self.reserved[(store, sku)] for sku, counted in lines):
            return "count_below_reserved"
        for sku, counted in lines:
            self.on_hand[(store, sku)] = counted
        return None


class Shop:
    """Runs the same steps through the services, in the database."""

    def __init__(self, stores: list, skus: list) -> None:
        self.stores = stores
        self.skus = skus
        self.transfers: list[Transfer] = []
        for store_index, sku_index in ITEMS:
            row = stock_item_for(store=stores[store_index], sku=skus[sku_index])
            stock_item_update_settings(
                item=row,
                safety_stock=SAFETY_STOCK if store_index == 0 else 0,
                lead_time_days=row.lead_time_days,
                review_days=row.review_days,
                pack_size=row.pack_size,
            )

    def apply(self, step: tuple) -> str | None:
        name, *args = step
        try:
            if name in LEDGER_SERVICES:
                self.ledger(name, *args)
            else:
                getattr(self, name)(*args)
        except BusinessError as refused:
            return refused.code
        return None

    def numbers(self) -> dict[tuple[int, int], tuple[int, int]]:
        store_index = {store.pk: index for index, store in enumerate(self.stores)}
        sku_index = {sku.pk: index for index, sku in enumerate(self.skus)}
        return {
            (store_index[store_id], sku_index[sku_id]): (on_hand, reserved)
            for store_id, sku_id, on_hand, reserved in StockItem.objects.values_list(
                "store_id", "sku_id", "on_hand", "reserved"
            )
        }

    def ledger(self, kind: str, store: int, lines: list, key: str) -> None:
        LEDGER_SERVICES[kind](
            store=self.stores[store],
            lines=[StockLine(self.skus[sku], quantity) for sku, quantity in lines],
            idempotency_key=key,
        )

    def reserve(self, store: int, lines: list, online: bool, expired: bool) -> None:
        stock_reserve(
            store=self.stores[store],
            lines=[ReserveLine(self.skus[sku], quantity, key) for sku, quantity, key in lines],
            online=online,
            expires_at=timezone.now() - timedelta(minutes=1) if expired else None,
        )

    def commit(self, line_key: str) -> None:
        stock_commit(line_key=line_key)

    def consume(self, line_key: str) -> None:
        stock_consume(line_key=line_key)

    def release(self, line_key: str) -> None:
        stock_release(line_key=line_key)

    def release_expired(self) -> None:
        stock_release_expired()

    def transfer_create(self, from_store: int, to_store: int, lines: list) -> None:
        transfer = transfer_create(
            from_store=self.stores[from_store],
            to_store=self.stores[to_store],
            lines=[StockLine(self.skus[sku], quantity) for sku, quantity in lines],
            actor=None,
        )
        self.transfers.append(transfer)

    def transfer_send(self, pick: int) -> None:
        if self.transfers:
            transfer_send(transfer=self.transfers[pick % len(self.transfers)], actor=None)

    def transfer_receive(self, pick: int, complete: bool) -> None:
        if not self.transfers:
            return
        transfer = self.transfers[pick % len(self.transfers)]
        received = {
            line.sku_id: line.quantity_sent if complete else line.quantity_sent // 2
            for line in transfer.lines.all()
        }
        transfer_receive(transfer=transfer, received=received, actor=None)

    def count(self, store: int, lines: list) -> None:
        sheet = stock_count_create(store=self.stores[store], actor=None)
        for sku, counted in lines:
            stock_count_set_line(count=sheet, sku=self.skus[sku], counted=counted)
        stock_count_apply(count=sheet, actor=None)


@pytest.fixture
def three_skus():
    # Made once for all examples: each example rolls back only what it wrote itself.
    return SKUFactory.create_batch(SKUS)


class _RollBack(Exception):
    """Ends an example's transaction, so the next example starts from the same database."""


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    # No example database in the working tree; a failure prints its history in full.
    database=None,
)
@given(steps=st.lists(history_steps, max_size=30))
def test_random_histories_never_drift_and_end_where_the_rules_say(
    store_a, store_b, three_skus, steps
):
    with pytest.raises(_RollBack), transaction.atomic():
        shop = Shop([store_a, store_b], three_skus)
        model = StockModel()
        for step in steps:
            outcome = shop.apply(step)
            event(f"{step[0]}: {outcome or 'done'}")
            assert outcome == model.apply(step), step
            assert list(inventory_drift()) == []
            assert shop.numbers() == model.numbers()
        assert dict(Reservation.objects.values_list("line_key", "status")) == {
            line_key: reservation.status for line_key, reservation in model.reservations.items()
        }
        assert [transfer.status for transfer in Transfer.objects.order_by("pk")] == [
            transfer.status for transfer in model.transfers
        ]
        raise _RollBack
