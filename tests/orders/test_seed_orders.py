"""``manage.py seed_demo_orders``: members, delivery fees and 30 demo orders in every state,
placed and moved along by the real services at the moments they happened, with stock that
audits clean; a re-run writes nothing."""

import io
import re
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from inventory.audit import inventory_drift
from inventory.models import Reservation, StockItem, StockMovement
from members.models import Member
from orders.models import (
    AfterSale,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    Refund,
    Shipment,
    ShippingRule,
)

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 18, 10, 30, tzinfo=SHANGHAI)
S = Order.Status
SUMMARY = (
    "邻鲜超市 demo orders: 30 orders (3 pending payment, 4 paid, 4 ready for pickup, 4 shipped, "
    "1 delivered, 10 completed, 4 cancelled), 8 members, 2 delivery fees"
)


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def stocked_chain() -> None:
    call_command("seed_demo", "--quiet", stdout=io.StringIO())
    call_command("seed_demo_stock", stdout=io.StringIO())


def seed_orders() -> str:
    out = io.StringIO()
    call_command("seed_demo_orders", stdout=out)
    return out.getvalue()


def row_counts() -> dict[str, int]:
    return {model.__name__: model._default_manager.count() for model in apps.get_models()}


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    return {
        model.__name__: list(model._default_manager.order_by("pk").values_list())
        for model in (Order, OrderLine, Payment, Refund, AfterSale, Shipment, Reservation)
    }


def local(moment: datetime) -> datetime:
    return timezone.localtime(moment, SHANGHAI)


def order(reference: str) -> Order:
    return Order.objects.get(client_reference=reference)


def test_thirty_orders_in_every_state_and_a_rerun_writes_nothing(stocked_chain) -> None:
    ledger_before = Counter(StockMovement.objects.values_list("reason", flat=True))

    output = seed_orders()

    assert output.startswith(f"{SUMMARY} (")
    assert dict(Counter(Order.objects.values_list("status", flat=True))) == {
        S.PENDING_PAYMENT: 3,
        S.PAID: 4,
        S.READY_FOR_PICKUP: 4,
        S.SHIPPED: 4,
        S.DELIVERED: 1,
        S.COMPLETED: 10,
        S.CANCELLED: 4,
    }
    assert dict(Counter(Order.objects.values_list("channel", "fulfilment"))) == {
        ("mini_shop", "pickup"): 8,
        ("mini_shop", "delivery"): 9,
        ("h5", "pickup"): 3,
        ("h5", "delivery"): 3,
        ("partner", "pickup"): 1,
        ("partner", "delivery"): 1,
        ("counter", "counter"): 5,
    }
    assert OrderLine.objects.count() == 71
    assert dict(Counter(OrderEvent.objects.values_list("kind", flat=True))) == {
        "order.created": 30,
        "order.paid": 24,
        "order.ready_for_pickup": 7,
        "order.shipped": 8,
        "order.delivered": 4,
        "order.completed": 10,
        "order.cancelled": 4,
        "refund.requested": 1,
        "refund.succeeded": 1,
        "after_sale.requested": 1,
    }
    # Cash through payment_start and payment_confirm; one shopper is still at the till.
    assert dict(Counter(Payment.objects.values_list("provider", "status"))) == {
        ("cash", Payment.Status.SUCCEEDED): 24,
        ("cash", Payment.Status.PENDING): 1,
    }
    assert Shipment.objects.count() == 8
    assert Refund.objects.get().status == Refund.Status.SUCCEEDED
    assert AfterSale.objects.get().status == AfterSale.Status.REQUESTED
    assert ShippingRule.objects.count() == 2
    assert Member.objects.count() == 8

    # Unpaid orders hold their stock, paid ones keep it committed, gone goods left the ledger,
    # cancelled orders gave theirs back; and the books still add up.
    assert dict(Counter(Reservation.objects.values_list("status", flat=True))) == {
        Reservation.Status.HELD: 8,
        Reservation.Status.COMMITTED: 20,
        Reservation.Status.CONSUMED: 34,
        Reservation.Status.RELEASED: 9,
    }
    ledger = Counter(StockMovement.objects.values_list("reason", flat=True)) - ledger_before
    assert dict(ledger) == {"online_fulfilment": 26, "counter_sale": 8}
    active = Reservation.objects.filter(status__in=Reservation.ACTIVE)
    assert sum(StockItem.objects.values_list("reserved", flat=True)) == sum(
        active.values_list("quantity", flat=True)
    )
    assert list(inventory_drift()) == []

    counts, rows = row_counts(), snapshot()
    rerun = seed_orders()

    assert row_counts() == counts
    assert snapshot() == rows
    assert rerun.strip() == f"{SUMMARY}. Nothing new: all there already."


def test_each_order_went_where_its_story_says_when_it_says(stocked_chain) -> None:
    seed_orders()

    # Placed at a time of its day (older ones) or minutes before the seed ran (today's); every
    # step after the one before, none after now, and the number dated the day it was placed.
    assert local(order("demo-024").created_at) == datetime(2026, 3, 13, 9, 20, tzinfo=SHANGHAI)
    assert local(order("demo-001").created_at) == NOW - timedelta(minutes=4)
    for placed in Order.objects.all():
        times = list(placed.events.order_by("pk").values_list("created_at", flat=True))
        assert times == sorted(times)
        assert times[0] == placed.created_at
        assert times[-1] <= NOW
        assert placed.number.startswith(f"{local(placed.created_at):%y%m%d}")

    # Delivery fees: 湖滨 HZ002 and 陆家嘴 SH003 have their own; baskets over the line ship free.
    assert (order("demo-003").subtotal_fen, order("demo-003").shipping_fen) == (3180, 500)
    assert (order("demo-013").subtotal_fen, order("demo-013").shipping_fen) == (5380, 800)
    assert order("demo-024").shipping_fen == 0

    # Parcels went with SF, YTO and ZTO under numbers shaped like theirs.
    patterns = {"SF": r"SF\d{13}", "YTO": r"YT\d{13}", "ZTO": r"\d{14}"}
    assert Counter(Shipment.objects.values_list("carrier_code", flat=True)) == {
        "SF": 4,
        "YTO": 2,
        "ZTO": 2,
    }
    for shipment in Shipment.objects.all():
        assert re.fullmatch(patterns[shipment.carrier_code], shipment.tracking_number)
        assert shipment.order.lines.filter(shipped=False).count() == 0

    # Pickup orders waiting at the store show their code; handed-over ones consumed their stock.
    for ready in Order.objects.filter(status=S.READY_FOR_PICKUP):
        assert re.fullmatch(r"\d{6}", ready.pickup_code)
    picked_up = order("demo-023")
    assert picked_up.status == S.COMPLETED
    assert set(
        Reservation.objects.filter(line_key__in=picked_up.lines.values("line_key")).values_list(
            "status", flat=True
        )
    ) == {Reservation.Status.CONSUMED}

    # Refunded in full before pickup: cancelled, money back, stock free again.
    refunded = order("demo-030")
    assert (refunded.status, refunded.paid_fen, refunded.refunded_fen) == (S.CANCELLED, 3689, 3689)
    assert set(
        Reservation.objects.filter(line_key__in=refunded.lines.values("line_key")).values_list(
            "status", flat=True
        )
    ) == {Reservation.Status.RELEASED}

    # Not paid in time: cancelled by the clock 30 minutes after it was placed.
    expired = order("demo-029").events.get(kind="order.cancelled")
    assert expired.data == {"cause": "expiry"}
    assert local(expired.created_at) == datetime(2026, 3, 16, 21, 45, tzinfo=SHANGHAI)

    # A completed delivery with a damaged item: the refund waits for staff.
    complaint = AfterSale.objects.get()
    first_line = complaint.order.lines.order_by("pk").first()
    assert complaint.order.client_reference == "demo-026"
    assert complaint.order.status == S.COMPLETED
    assert complaint.amount_fen == first_line.total_fen // first_line.quantity == 590
    assert complaint.order.refunds.count() == 0

    # Members signed up at their home stores' counters, with a phone identity.
    assert sorted(Member.objects.values_list("name", flat=True)) == sorted(
        ["王秀英", "李明轩", "张雨涵", "刘志强", "陈静怡", "杨浩然", "赵丽华", "黄子涵"]
    )
    for member in Member.objects.all():
        member.full_clean()
        assert member.identities.filter(kind="phone", phone=member.mobile).count() == 1
    assert Member.objects.get(name="黄子涵").home_store.code == "HZ001"
    assert local(Member.objects.get(name="黄子涵").created_at) == NOW - timedelta(days=12)


def test_refused_before_the_stores_hold_stock() -> None:
    call_command("seed_demo", "--quiet", stdout=io.StringIO())

    with pytest.raises(CommandError, match=r"run `manage.py seed_demo_stock`"):
        seed_orders()

    assert Order.objects.count() == 0
    assert Member.objects.count() == 0
