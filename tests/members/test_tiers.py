"""Tiers: the default ladder, the tier a spend reaches, the upgrade a completed order brings at
once, and the nightly recalculation from the rolling window (up and down), in batches of a
fixed number of queries."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from members.models import Member, SpendEntry, Tier
from members.selectors import member_window_spend, tier_for_spend
from members.services.points import (
    member_order_completed,
    member_order_refunded,
    tiers_recalculate,
)
from members.tasks import recalculate_tiers
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=SHANGHAI)
DAY = timedelta(days=1)


@pytest.fixture
def member():
    return MemberFactory(mobile="13900000001")


def tier_of(member: Member) -> str | None:
    return Member.objects.filter(pk=member.pk).values_list("tier__code", flat=True).get()


def set_tier(member: Member, code: str | None) -> None:
    Member.objects.filter(pk=member.pk).update(tier=Tier.objects.get(code=code) if code else None)


def spent(member: Member, fen: int, at: datetime, reference: str) -> None:
    SpendEntry.objects.create(member=member, reference=reference, amount_fen=fen, at=at)


def complete(member: Member, order: str, fen: int, at: datetime = NOW) -> None:
    member_order_completed(member_id=member.pk, order_reference=order, amount_fen=fen, at=at)


# --- The ladder ---------------------------------------------------------------------------------


def test_the_default_ladder_is_there_from_the_migration():
    assert list(
        Tier.objects.order_by("threshold_fen").values_list(
            "code", "name", "threshold_fen", "discount_percent", "points_multiplier"
        )
    ) == [
        ("regular", "普通会员", 0, 0, 100),
        ("silver", "银卡", 100_000, 5, 120),
        ("gold", "金卡", 500_000, 8, 150),
        ("diamond", "钻石", 2_000_000, 10, 200),
    ]


@pytest.mark.parametrize(
    ("spend", "code"),
    [
        (-500, None),
        (0, "regular"),
        (99_999, "regular"),
        (100_000, "silver"),
        (499_999, "silver"),
        (500_000, "gold"),
        (1_999_999, "gold"),
        (2_000_000, "diamond"),
        (90_000_000, "diamond"),
    ],
)
def test_a_spend_reaches_the_highest_tier_whose_threshold_it_meets(spend, code):
    reached = tier_for_spend(spend)

    assert (reached.code if reached else None) == code


def test_the_window_spend_counts_the_last_365_days_net_of_refunds(member):
    spent(member, 70_000, NOW - timedelta(days=365), "SO1")  # just outside
    spent(member, 50_000, NOW - timedelta(days=364, hours=23), "SO2")
    spent(member, -10_000, NOW - timedelta(days=364, hours=23), "SO2:refund:10000")
    spent(member, 30_000, NOW, "SO3")
    spent(member, 99_000, NOW + timedelta(seconds=1), "SO4")  # not yet

    assert member_window_spend(member=member, now=NOW) == 70_000


# --- Upgrades at once ---------------------------------------------------------------------------


def test_the_order_that_reaches_a_threshold_upgrades_at_once_and_earns_at_the_old_tier(member):
    set_tier(member, "regular")
    spent(member, 90_000, NOW - timedelta(days=100), "SO1")

    complete(member, "SO2", 10_000)

    assert tier_of(member) == "silver"
    # 100 yuan at 1× (the tier held when the order was placed); the next order earns 1.2×.
    assert Member.objects.get(pk=member.pk).points_balance == 100
    complete(member, "SO3", 10_000)
    assert Member.objects.get(pk=member.pk).points_balance == 220


def test_one_big_order_can_skip_tiers(member):
    complete(member, "SO1", 2_000_000)

    assert tier_of(member) == "diamond"


def test_a_new_member_gets_the_first_tier_with_her_first_order(member):
    assert tier_of(member) is None

    complete(member, "SO1", 100)

    assert tier_of(member) == "regular"


def test_spend_that_left_the_window_does_not_count_towards_an_upgrade(member):
    set_tier(member, "regular")
    spent(member, 95_000, NOW - timedelta(days=366), "SO1")

    complete(member, "SO2", 10_000)

    assert tier_of(member) == "regular"


def test_a_completed_order_never_downgrades(member):
    set_tier(member, "gold")

    complete(member, "SO1", 100)

    assert tier_of(member) == "gold"


def test_a_refund_does_not_downgrade_at_once(member):
    complete(member, "SO1", 150_000)
    assert tier_of(member) == "silver"

    member_order_refunded(
        member_id=member.pk, order_reference="SO1", refunded_fen=150_000, paid_fen=150_000
    )

    assert tier_of(member) == "silver"
    tiers_recalculate(now=NOW)
    assert tier_of(member) == "regular"


# --- The nightly recalculation ------------------------------------------------------------------


def test_the_recalculation_moves_members_up_and_down_by_the_window(member):
    up = MemberFactory(mobile="13900000002")
    down = MemberFactory(mobile="13900000003")
    same = MemberFactory(mobile="13900000004")
    set_tier(up, "regular")
    set_tier(down, "diamond")
    set_tier(same, "gold")
    spent(up, 600_000, NOW - 10 * DAY, "SO1")
    spent(down, 2_500_000, NOW - 400 * DAY, "SO2")
    spent(down, 120_000, NOW - 200 * DAY, "SO3")
    spent(same, 500_000, NOW - 364 * DAY, "SO4")

    changed = tiers_recalculate(now=NOW)

    assert changed == 3  # up, down and the member without a tier
    assert [tier_of(m) for m in (up, down, same, member)] == [
        "gold",
        "silver",
        "gold",
        "regular",
    ]
    assert tiers_recalculate(now=NOW) == 0


def test_a_day_later_spend_leaves_the_window_and_the_tier_drops(member):
    set_tier(member, "gold")
    spent(member, 500_000, NOW - 364 * DAY, "SO1")

    assert tiers_recalculate(now=NOW) == 0
    assert tiers_recalculate(now=NOW + DAY) == 1
    assert tier_of(member) == "regular"


def test_merged_members_are_left_alone(member):
    merged = MemberFactory(mobile="13900000002", merged_into=member)
    set_tier(merged, "gold")

    tiers_recalculate(now=NOW)

    assert tier_of(merged) == "gold"


def test_each_batch_costs_the_same_queries_however_many_members_change(
    django_assert_num_queries,
):
    members = MemberFactory.create_batch(7)
    for n, m in enumerate(members):
        spent(m, 300_000 * n, NOW - DAY, f"SO{n}")

    # tiers; per batch of 3: savepoint, members with their spend, one update, release; then
    # the empty batch: savepoint, members, release
    with django_assert_num_queries(1 + 3 * 4 + 3):
        assert tiers_recalculate(now=NOW, batch_size=3) == 7

    assert [tier_of(m) for m in members] == [
        "regular",
        "silver",
        "gold",
        "gold",
        "gold",
        "gold",
        "gold",
    ]
    assert Member.objects.filter(tier__code="gold").count() == 5

    # Nothing to change: no update in any batch.
    with django_assert_num_queries(1 + 3 * 3 + 3):
        assert tiers_recalculate(now=NOW, batch_size=3) == 0


def test_the_beat_task_recalculates_as_of_now(member):
    spent(member, 600_000, NOW - DAY, "SO1")

    with time_machine.travel(NOW, tick=False):
        assert recalculate_tiers.delay().get() == 1

    assert tier_of(member) == "gold"


def test_without_tiers_nothing_is_recalculated(member, django_assert_num_queries):
    Tier.objects.all().delete()

    with django_assert_num_queries(1):
        assert tiers_recalculate(now=NOW) == 0
