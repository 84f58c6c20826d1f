"""``manage.py seed_demo_stock``: the demo chain's stock, four weeks of counter sales, reorder
suggestions, a transfer in transit and an open count, all through the services, with a ledger
that audits clean; a re-run writes nothing."""

import io
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from inventory.audit import inventory_drift
from inventory.models import (
    StockCount,
    StockCountLine,
    StockItem,
    StockMovement,
    Transfer,
    TransferLine,
)
from inventory.operations import stock_item_update_settings
from inventory.selectors import low_stock
from retail.models import Store

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 18, 10, 30, tzinfo=SHANGHAI)
SEEDED_MODELS = (StockItem, StockMovement, Transfer, TransferLine, StockCount, StockCountLine)
Reason = StockMovement.Reason


@pytest.fixture
def chain() -> None:
    """The stores, catalogue and logins of ``seed_demo``."""
    call_command("seed_demo", "--quiet", stdout=io.StringIO())


@pytest.fixture(autouse=True)
def _frozen_clock():
    # Sales fall in the 28-day window relative to now: a fixed now keeps the figures fixed.
    with time_machine.travel(NOW, tick=False):
        yield


def seed_stock(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo_stock", *args, stdout=out)
    return out.getvalue()


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every column of every table the command writes, timestamps included."""
    return {
        model.__name__: list(model._default_manager.order_by("pk").values_list())
        for model in SEEDED_MODELS
    }


def local(moment: datetime) -> datetime:
    return timezone.localtime(moment, SHANGHAI)


def test_the_whole_chain_is_stocked_audits_clean_and_a_rerun_writes_nothing(chain) -> None:
    output = seed_stock()

    assert output.strip() == (
        "邻鲜超市 demo stock: 1612 stock items in 10 locations, 486 counter sales (1376 units) "
        "over 28 days, 31 reorder suggestions (2265 ledger rows, 1612 stock items, 1 transfer, "
        "1 count created; 628 stock settings set)."
    )
    # Every store carries part of the range (the corner shop HZ004 least), the warehouse all.
    assert dict(Counter(StockItem.objects.values_list("store__code", flat=True))) == {
        "HZ001": 150,
        "HZ002": 189,
        "HZ003": 152,
        "HZ004": 93,
        "SH001": 181,
        "SH002": 149,
        "SH003": 177,
        "SH004": 149,
        "SH005": 158,
        "WH-SH01": 214,
    }
    assert dict(Counter(StockMovement.objects.values_list("reason", flat=True))) == {
        Reason.RECEIPT: 1612,
        Reason.COUNTER_SALE: 649,
        Reason.TRANSFER_OUT: 4,
    }
    assert list(inventory_drift()) == []
    assert StockItem.objects.filter(reserved__gt=0).count() == 0

    # Replenishment settings on fresh goods, milk, bread, drinks and formula in the stores.
    assert StockItem.objects.exclude(safety_stock=0).count() == 628
    assert StockItem.objects.filter(pack_size__gt=1).count() == 237
    assert StockItem.objects.filter(store__code="WH-SH01", safety_stock__gt=0).count() == 0
    water = StockItem.objects.get(store__code="SH002", sku__code="P0087-01")
    assert (water.safety_stock, water.lead_time_days, water.review_days, water.pack_size) == (
        12,
        2,
        7,
        24,
    )

    # One best seller sold out in every store that sells at the counter; the warehouse none.
    sold_out_stores = StockItem.objects.filter(on_hand=0).values_list("store__code", flat=True)
    assert sorted(sold_out_stores) == [
        "HZ001", "HZ002", "HZ003", "HZ004", "SH001", "SH002", "SH003", "SH004", "SH005"
    ]  # fmt: skip
    assert {store.code: len(low_stock(store=store)) for store in Store.objects.all()} == {
        "HZ001": 3,
        "HZ002": 3,
        "HZ003": 3,
        "HZ004": 4,
        "SH001": 2,
        "SH002": 4,
        "SH003": 4,
        "SH004": 4,
        "SH005": 4,
        "WH-SH01": 0,
    }
    [sold_out, *_rest] = low_stock(store=Store.objects.get(code="SH003"))
    assert (sold_out.stock_item.sku.code, sold_out.available, sold_out.units_sold) == (
        "P0095-01",
        0,
        12,
    )
    assert (sold_out.reorder_point, sold_out.suggested_quantity) == (7, 24)

    # The warehouse's delivery to 陆家嘴店 left 3 hours ago and has not arrived.
    transfer = Transfer.objects.get()
    assert (transfer.from_store.code, transfer.to_store.code, transfer.status) == (
        "WH-SH01",
        "SH003",
        Transfer.Status.IN_TRANSIT,
    )
    assert (local(transfer.created_at), local(transfer.sent_at)) == (
        NOW - timedelta(hours=4),
        NOW - timedelta(hours=3),
    )
    assert {line.sku.code: line.quantity_sent for line in transfer.lines.all()} == {
        "P0095-01": 24,
        "P0017-01": 12,
        "P0092-02": 15,
        "P0102-02": 12,
    }
    assert StockMovement.objects.filter(reason=Reason.TRANSFER_IN).count() == 0

    # 人民广场店 counted 8 drinks an hour ago: two short, one over; nothing applied yet.
    count = StockCount.objects.get()
    assert (count.store.code, count.status, local(count.created_at)) == (
        "SH002",
        StockCount.Status.OPEN,
        NOW - timedelta(hours=1),
    )
    assert [
        (line.sku.code, line.counted, line.expected) for line in count.lines.order_by("sku__code")
    ] == [
        ("P0087-01", 55, 55),
        ("P0087-03", 52, 52),
        ("P0087-04", 31, 32),
        ("P0088-01", 56, 56),
        ("P0088-02", 23, 25),
        ("P0089-02", 13, 13),
        ("P0090-01", 39, 38),
        ("P0091-02", 24, 24),
    ]
    for line in count.lines.all():
        assert line.expected == StockItem.objects.get(store=count.store, sku=line.sku).on_hand

    before = snapshot()
    rerun = seed_stock()

    assert snapshot() == before
    assert rerun.strip() == (
        "邻鲜超市 demo stock: 1612 stock items in 10 locations, 486 counter sales (1376 units) "
        "over 28 days, 31 reorder suggestions. Nothing new: all there already."
    )


def test_history_is_dated_receipt_first_then_four_weeks_of_sales(chain) -> None:
    seed_stock("--stores", "HZ004")

    receipts = StockMovement.objects.filter(reason=Reason.RECEIPT)
    sales = StockMovement.objects.filter(reason=Reason.COUNTER_SALE).order_by("created_at", "pk")
    assert receipts.count() == 93
    assert {local(movement.created_at) for movement in receipts} == {
        datetime(2026, 2, 17, 6, 30, tzinfo=SHANGHAI)
    }
    assert {movement.actor.username for movement in receipts} == {"mgr_hz004"}
    assert {movement.reference for movement in receipts} == {"期初入库 HZ004"}
    assert sales.count() == 71
    assert local(sales.first().created_at) == datetime(2026, 2, 18, 14, 52, tzinfo=SHANGHAI)
    assert local(sales.last().created_at) == datetime(2026, 3, 17, 18, 8, tzinfo=SHANGHAI)
    assert {movement.actor.username for movement in sales} == {"clerk_hz004"}
    # Every sale inside the velocity window and within the store's opening hours (09:00-21:30).
    for movement in sales:
        at = local(movement.created_at)
        assert NOW - timedelta(days=28) < at < NOW
        assert 9 <= at.hour <= 20
    # Each item's ledger reads in time order: its running balance never goes below zero.
    for item in StockItem.objects.all():
        running = 0
        for movement in item.movements.order_by("created_at", "pk"):
            running += movement.quantity
            assert movement.on_hand_after == running
        assert running == item.on_hand


def test_one_store_gets_the_plan_it_has_in_the_whole_chain(chain) -> None:
    output = seed_stock("--stores", "SH002")

    assert output.strip() == (
        "邻鲜超市 demo stock: 149 stock items in 1 location, 57 counter sales (152 units) over "
        "28 days, 4 reorder suggestions (225 ledger rows, 149 stock items, 0 transfer, 1 count "
        "created; 74 stock settings set)."
    )
    assert set(StockItem.objects.values_list("store__code", flat=True)) == {"SH002"}
    assert StockCount.objects.get().lines.count() == 8
    # The transfer needs the warehouse and 陆家嘴店.
    assert Transfer.objects.count() == 0
    assert list(inventory_drift()) == []


def test_a_rerun_puts_edited_settings_back_and_books_nothing(chain) -> None:
    seed_stock("--stores", "HZ004")
    item = StockItem.objects.get(store__code="HZ004", sku__code="P0087-01")
    stock_item_update_settings(
        item=item, safety_stock=0, lead_time_days=9, review_days=1, pack_size=1
    )
    ledger = StockMovement.objects.count()

    output = seed_stock("--stores", "HZ004")

    item.refresh_from_db()
    assert (item.safety_stock, item.lead_time_days, item.review_days, item.pack_size) == (
        12,
        2,
        7,
        24,
    )
    assert StockMovement.objects.count() == ledger
    assert output.strip().endswith(
        "(0 ledger rows, 0 stock items, 0 transfer, 0 count created; 1 stock settings set)."
    )


def test_refused_before_seed_demo_and_for_unknown_stores() -> None:
    with pytest.raises(
        CommandError,
        match=r"^No store SH001, SH002, .*, WH-SH01: run `manage.py seed_demo` first\.$",
    ):
        seed_stock()
    with pytest.raises(CommandError, match=r"^Not a demo store: XX9\.$"):
        seed_stock("--stores", "SH001,XX9")

    assert StockItem.objects.count() == 0
    assert StockMovement.objects.count() == 0
