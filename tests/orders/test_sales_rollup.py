"""The daily sales roll-up (orders.sales_rollup): the dashboard shows the same figures with and
without it, only closed days are stored, changed orders are recomputed through the watermark
and its margin, runs are idempotent with a fixed number of queries; the beat task, the
command and the admin."""

import random
from datetime import date, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import F
from django.test import Client

from orders.console.dashboard_data import dashboard_data
from orders.models import Channel, DailySales, Order, OrderStatus, SalesRollupState
from orders.payments import refund_create
from orders.sales_rollup import MARGIN, sales_rollup
from orders.tasks import roll_up_sales
from retail.celery import app as celery_app
from tests import factories
from tests.inventory.test_concurrency import WON, race, tally

pytestmark = pytest.mark.django_db

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 11, 25, 15, 30, tzinfo=SH)
TODAY = NOW.date()
YESTERDAY = TODAY - timedelta(days=1)
S = OrderStatus


def at(days_ago: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    day = TODAY - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=SH)


def order(store, paid_at, total=1000, refunded=0, channel=Channel.MINI_SHOP) -> Order:
    return factories.OrderFactory(
        store=store,
        channel=channel,
        status=S.COMPLETED if paid_at else S.PENDING_PAYMENT,
        subtotal_fen=total,
        total_fen=total,
        paid_fen=total if paid_at else 0,
        refunded_fen=refunded,
        paid_at=paid_at,
    )


def stored() -> list[tuple]:
    return list(
        DailySales.objects.order_by("day", "store__code", "channel").values_list(
            "day", "store__code", "channel", "orders", "paid_fen", "refunded_fen"
        )
    )


def refund_now(order_row: Order, amount: int) -> None:
    """What ``orders.payments.refund_confirm`` writes: the amount and ``updated_at``."""
    from django.utils import timezone

    Order.objects.filter(pk=order_row.pk).update(
        refunded_fen=F("refunded_fen") + amount, updated_at=timezone.now()
    )


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as clock:
        yield clock


@pytest.fixture
def forty_days(frozen, store_a, store_b):
    """Orders over 40 days in three stores and every channel, some refunded in part or whole,
    some at a day's first and last second, some never paid; written an hour ago."""
    frozen.move_to(NOW - timedelta(hours=1))
    store_c = factories.StoreFactory(code="SH003", name="徐家汇店")
    stores = [store_a, store_b, store_c]
    draw = random.Random(20251125)  # noqa: S311 - repeatable test data
    made = []
    for days_ago in range(40):
        for n in range(draw.randint(0, 6)):
            store = draw.choice(stores)
            total = draw.randint(1, 50_000)
            refunded = draw.choice([0, 0, 0, total, draw.randint(0, total)])
            hour, minute, second = draw.choice([(0, 0, 0), (23, 59, 59), (n + 8, 15, 0)])
            if days_ago == 0 and hour > 15:
                hour = 15
            made.append(
                order(
                    store,
                    at(days_ago, hour, minute, second),
                    total=total,
                    refunded=refunded,
                    channel=draw.choice(Channel.values),
                )
            )
    order(store_a, None)
    past = order(store_b, at(3, 11), total=4321, refunded=321, channel=Channel.H5)
    frozen.move_to(NOW)
    return {"stores": stores, "orders": made, "past": past}


def every_dashboards_days(stores, now=None) -> dict:
    return {
        code: dashboard_data(store=store, now=now).days
        for code, store in [("all", None), *((store.code, store) for store in stores)]
    }


def never_rolled_up_days(stores, now=None) -> dict:
    """The same dashboards computed from the orders alone, as before any roll-up."""
    with transaction.atomic():
        SalesRollupState.objects.all().delete()
        days = every_dashboards_days(stores, now)
        transaction.set_rollback(True)
    return days


def test_the_dashboard_shows_the_same_days_with_and_without_the_roll_up(forty_days, frozen):
    stores = forty_days["stores"]
    live = every_dashboards_days(stores)
    assert SalesRollupState.objects.exists() is False

    result = sales_rollup()

    assert (result.new_days[0], result.new_days[-1], len(result.new_days)) == (
        TODAY - timedelta(days=29),
        YESTERDAY,
        29,
    )
    assert SalesRollupState.objects.get().complete_through == YESTERDAY
    assert DailySales.objects.filter(day=TODAY).exists() is False
    assert DailySales.objects.count() > 50
    assert every_dashboards_days(stores) == live

    # Given a refund, a minute after the roll-up, of what is left of a past day's order
    past = forty_days["past"]
    amount = 4000
    frozen.shift(timedelta(minutes=1))
    refund_now(past, amount)

    # Then until the next run (at most five minutes) the past day shows the old figure ...
    assert every_dashboards_days(stores) == live
    frozen.shift(timedelta(minutes=4))
    result = sales_rollup()

    # ... and the new one after it, as computed from the orders alone.
    assert (result.new_days, result.changed_pairs) == ([], 1)
    after = every_dashboards_days(stores)
    assert after == never_rolled_up_days(stores)
    day, orders, net = live["all"][-4]
    assert day == TODAY - timedelta(days=3)
    assert after["all"][-4] == (day, orders, net - amount)
    assert after[past.store.code][-4][2] == live[past.store.code][-4][2] - amount
    assert after["all"][:-4] == live["all"][:-4]


def test_a_new_day_is_rolled_up_and_today_stays_live(forty_days, frozen):
    stores = forty_days["stores"]
    sales_rollup()
    frozen.move_to(NOW + timedelta(days=1))
    tomorrow_now = NOW + timedelta(days=1)
    order(stores[0], tomorrow_now - timedelta(hours=1), total=777)
    # The roll-up lags a day: the 25th, closed now, is read from the orders until the run.
    live = every_dashboards_days(stores, tomorrow_now)

    result = sales_rollup()

    assert (result.new_days, result.complete_through) == ([TODAY], TODAY)
    assert every_dashboards_days(stores, tomorrow_now) == live
    assert live == never_rolled_up_days(stores, tomorrow_now)
    assert live["all"][-1] == (TODAY + timedelta(days=1), 1, 777)
    assert DailySales.objects.filter(day=TODAY + timedelta(days=1)).exists() is False


def test_only_closed_days_of_the_window_on_a_first_run_all_of_them_on_rebuild(frozen, store_a):
    order(store_a, at(35, 12), total=500, channel=Channel.H5)
    order(store_a, at(29, 0), total=300)
    order(store_a, at(1, 23, 59, 59), total=200, refunded=50)
    order(store_a, at(0, 0), total=100)

    sales_rollup()

    assert stored() == [
        (TODAY - timedelta(days=29), "SH001", "mini_shop", 1, 300, 0),
        (YESTERDAY, "SH001", "mini_shop", 1, 200, 50),
    ]

    result = sales_rollup(rebuild=True)

    assert (result.rebuilt, result.rows_written, result.complete_through) == (True, 3, YESTERDAY)
    assert stored() == [
        (TODAY - timedelta(days=35), "SH001", "h5", 1, 500, 0),
        (TODAY - timedelta(days=29), "SH001", "mini_shop", 1, 300, 0),
        (YESTERDAY, "SH001", "mini_shop", 1, 200, 50),
    ]


def test_a_second_run_changes_nothing(forty_days, frozen):
    sales_rollup()
    before = list(DailySales.objects.order_by("pk").values())
    state = SalesRollupState.objects.values().get()

    at_once = sales_rollup()
    frozen.shift(timedelta(hours=1))
    later = sales_rollup()

    for result in (at_once, later):
        assert (result.new_days, result.changed_pairs, result.rows_written) == ([], 0, 0)
    assert list(DailySales.objects.order_by("pk").values()) == before
    assert SalesRollupState.objects.values().get() == {
        **state,
        "watermark": NOW + timedelta(hours=1),
    }


def test_changes_stamped_within_the_margin_before_the_last_run_are_recomputed(frozen, store_a):
    """A transaction stamps ``updated_at`` before it commits: a run may not see a change
    stamped just before it started. The next run looks back ``MARGIN`` further."""
    early = order(store_a, at(3, 10), total=1000)
    late = order(store_a, at(2, 10), total=2000)
    frozen.shift(timedelta(hours=1))
    sales_rollup()
    run = NOW + timedelta(hours=1)
    # Committed after that run, stamped before it started: within the margin, and beyond it.
    Order.objects.filter(pk=early.pk).update(
        refunded_fen=400, updated_at=run - MARGIN + timedelta(seconds=1)
    )
    Order.objects.filter(pk=late.pk).update(
        refunded_fen=500, updated_at=run - MARGIN - timedelta(seconds=1)
    )
    frozen.shift(timedelta(minutes=5))

    result = sales_rollup()

    assert (result.changed_pairs, result.changed_since) == (1, run - MARGIN)
    assert stored() == [
        (TODAY - timedelta(days=3), "SH001", "mini_shop", 1, 1000, 400),
        # Older than the margin: the limit of the watermark (no transaction lasts that long).
        (TODAY - timedelta(days=2), "SH001", "mini_shop", 1, 2000, 0),
    ]


def test_a_refund_through_the_payments_reaches_its_past_day(
    frozen, place, pay, water, after_commit, manager_a
):
    """``refund_confirm`` stamps ``updated_at``: the next run finds the order."""
    with time_machine.travel(at(2, 11), tick=False):
        placed = place((water, 3))
        pay(placed)
    sales_rollup()
    assert stored() == [(TODAY - timedelta(days=2), "SH001", "mini_shop", 1, 600, 0)]
    frozen.shift(timedelta(minutes=1))
    with after_commit():
        refund_create(order=placed, amount_fen=200, reason="破损", actor=manager_a)
    assert Order.objects.get(pk=placed.pk).refunded_fen == 200
    frozen.shift(timedelta(minutes=4))

    assert sales_rollup().changed_pairs == 1
    assert stored() == [(TODAY - timedelta(days=2), "SH001", "mini_shop", 1, 600, 200)]


def test_a_run_costs_the_same_queries_whatever_the_days_and_stores(
    forty_days, frozen, django_assert_num_queries
):
    # Each run's transaction is a savepoint inside the test's: 2 of the figures (BEGIN and
    # COMMIT outside a test, not counted).
    # The first: lock the state (none yet: look, insert it with get_or_create's savepoint,
    # lock it), the window grouped by store, day and channel, delete, insert, the state.
    with django_assert_num_queries(12):
        sales_rollup()
    # Nothing to do: lock, the changed (store, day) pairs, the state.
    frozen.shift(timedelta(hours=1))
    with django_assert_num_queries(5):
        sales_rollup()
    # A new day and changed orders on many days of every store: lock, the changed pairs, one
    # grouped query, one delete, one insert, the state.
    Order.objects.update(refunded_fen=0, updated_at=NOW + timedelta(hours=2))
    frozen.shift(timedelta(days=1))
    with django_assert_num_queries(8):
        result = sales_rollup()
    assert (len(result.new_days), result.changed_pairs > 20) == (1, True)


def test_the_dashboard_costs_the_same_queries_after_a_roll_up(
    forty_days, store_a, django_assert_num_queries
):
    sales_rollup()

    # Today by hour, how far the roll-up has got, the days (one UNION), waiting counts, oldest
    # waiting, low stock, outbox counts, latest troubled deliveries.
    with django_assert_num_queries(8):
        dashboard_data(store=store_a)
    with django_assert_num_queries(7):
        dashboard_data(store=None)


def test_the_beat_task_runs_the_roll_up_every_five_minutes(frozen, store_a):
    order(store_a, at(1, 9), total=1200)

    assert roll_up_sales.apply().get() == 1
    assert stored() == [(YESTERDAY, "SH001", "mini_shop", 1, 1200, 0)]
    assert celery_app.conf.beat_schedule["sales-rollup"] == {
        "task": "orders.sales_rollup",
        "schedule": 300.0,
        "options": {"expires": 290},
    }
    assert roll_up_sales.name in celery_app.tasks


def test_the_command_says_what_it_did(frozen, store_a):
    with time_machine.travel(NOW - timedelta(hours=1), tick=False):
        order(store_a, at(1, 9), total=1200)
        order(store_a, at(2, 9), total=800)
    out = StringIO()

    call_command("sales_rollup", stdout=out)
    frozen.shift(timedelta(hours=1))
    call_command("sales_rollup", stdout=out)
    call_command("sales_rollup", "--rebuild", stdout=out)

    assert out.getvalue().splitlines() == [
        "Rolled up 29 new day(s) (2025-10-27 to 2025-11-24); 2 row(s) written; complete "
        "through 2025-11-24.",
        "No new closed day; recomputed 0 store-day(s) whose orders changed since "
        "2025-11-25T15:20:00+08:00; 0 row(s) written; complete through 2025-11-24.",
        "Rebuilt every closed day; 2 row(s) written; complete through 2025-11-24.",
    ]


def test_daily_sales_are_hqs_to_read_and_nobody_writes_them(frozen, store_a, hq_user):
    order(store_a, at(1, 9), total=1200)
    sales_rollup()
    manager = factories.StaffRoleFactory(role="store_manager", store=store_a).user
    hq, store = Client(), Client()
    hq.force_login(hq_user)
    store.force_login(manager)
    row = DailySales.objects.get()

    listing = hq.get("/admin/orders/dailysales/", HTTP_ACCEPT_LANGUAGE="en")
    detail = hq.get(f"/admin/orders/dailysales/{row.pk}/change/", HTTP_ACCEPT_LANGUAGE="en")

    assert (listing.status_code, detail.status_code) == (200, 200)
    assert "12.00" in listing.content.decode()
    assert hq.get("/admin/orders/dailysales/add/").status_code == 403
    assert hq.post(f"/admin/orders/dailysales/{row.pk}/delete/").status_code == 403
    assert store.get("/admin/orders/dailysales/").status_code == 403
    assert stored() == [(YESTERDAY, "SH001", "mini_shop", 1, 1200, 0)]


def test_the_database_refuses_impossible_rows(store_a):
    from django.db import IntegrityError, transaction

    base = {"store": store_a, "day": date(2025, 11, 24), "channel": "h5", "computed_at": NOW}
    for figures in (
        {"orders": 1, "paid_fen": 100, "refunded_fen": 101},
        {
            "orders": -1,
            "paid_fen": 0,
            "refunded_fen": 0,
        },
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            DailySales.objects.create(**base, **figures)
    DailySales.objects.create(**base, orders=1, paid_fen=100, refunded_fen=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        DailySales.objects.create(**base, orders=1, paid_fen=100, refunded_fen=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        SalesRollupState.objects.create(pk=2)
    assert DailySales.objects.count() == 1


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL: set DATABASE_URL (.ci/run does)"
)
@pytest.mark.django_db(transaction=True)
def test_runs_overlapping_wait_for_each_other_and_agree(store_a, store_b):
    """The first runs ever, at once: one inserts the state row, each then takes its lock in
    turn; every run succeeds and the rows are those of a single run."""
    with time_machine.travel(NOW - timedelta(hours=1), tick=False):
        for days_ago, store, total in ((1, store_a, 1200), (2, store_b, 800), (5, store_a, 300)):
            order(store, at(days_ago, 9), total=total, refunded=total // 3)

    outcomes = race([lambda: sales_rollup(now=NOW).complete_through] * 6)

    assert tally(outcomes) == {WON: 6}
    assert {result for _kind, result in outcomes} == {YESTERDAY}
    assert SalesRollupState.objects.count() == 1
    assert stored() == [
        (TODAY - timedelta(days=5), "SH001", "mini_shop", 1, 300, 100),
        (TODAY - timedelta(days=2), "SH002", "mini_shop", 1, 800, 266),
        (YESTERDAY, "SH001", "mini_shop", 1, 1200, 400),
    ]
