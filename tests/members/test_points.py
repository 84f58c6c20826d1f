"""The points ledger: earning on completed orders, redeeming and restoring at checkout, taking
back on refunds, staff adjustments, expiry, referrals and merges. Tiers are in test_tiers.py,
the audit and its randomised proof in test_points_audit.py, races in
test_points_concurrency.py, the hooks driven by real orders in test_order_hooks.py."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import IntegrityError, transaction

from members.models import Member, PointsEntry, SpendEntry, Tier
from members.selectors import member_points_entries, member_points_expiring, points_drift
from members.services.points import (
    member_order_completed,
    member_order_paid,
    member_order_refunded,
    points_adjust,
    points_apply,
    points_expire,
    points_merge_move,
    points_redeem,
    points_restore_redeem,
)
from members.tasks import expire_points
from retail.errors import BusinessError
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=SHANGHAI)
YEAR = timedelta(days=365)
R = PointsEntry.Reason


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def member():
    return MemberFactory(mobile="13900000001", name="李娜")


def tier(code: str) -> Tier:
    return Tier.objects.get(code=code)


def balance(member: Member) -> int:
    return Member.objects.values_list("points_balance", flat=True).get(pk=member.pk)


def ledger(member: Member) -> list[tuple]:
    """(reason, reference, points, balance_after, remaining) of each entry, oldest first."""
    return list(
        PointsEntry.objects.filter(member=member)
        .order_by("pk")
        .values_list("reason", "reference", "points", "balance_after", "remaining")
    )


def lots(member: Member) -> list[tuple[str, int, int, datetime]]:
    """(reference, points, remaining, expires_at) of each credited lot, oldest first."""
    return list(
        PointsEntry.objects.filter(member=member, points__gt=0, expires_at__isnull=False)
        .order_by("pk")
        .values_list("reference", "points", "remaining", "expires_at")
    )


def spend(member: Member) -> list[tuple[str, int, datetime]]:
    return list(
        SpendEntry.objects.filter(member=member)
        .order_by("pk")
        .values_list("reference", "amount_fen", "at")
    )


def earn(member: Member, order: str, fen: int, at: datetime = NOW) -> None:
    member_order_completed(member_id=member.pk, order_reference=order, amount_fen=fen, at=at)


def gift(member: Member, points: int, note: str, *, expires_in: timedelta = YEAR) -> PointsEntry:
    """Credit a lot with its own expiry (as a merge would)."""
    return points_apply(
        member=member,
        points=points,
        reason=R.MERGE_IN,
        reference=note,
        expires_at=NOW + expires_in,
    )


# --- Earning on completed orders -------------------------------------------------------------


def test_a_completed_order_earns_a_point_per_yuan_rounded_down_and_records_the_spend(member):
    earn(member, "SO1", 12_399)

    assert ledger(member) == [("earn", "SO1", 123, 123, 123)]
    assert lots(member) == [("SO1", 123, 123, NOW + YEAR)]
    assert spend(member) == [("SO1", 12_399, NOW)]
    assert balance(member) == 123


@pytest.mark.parametrize(
    ("code", "earned"),
    [("regular", 123), ("silver", 148), ("gold", 185), ("diamond", 246)],
)
def test_the_tier_multiplies_what_an_order_earns(member, code, earned):
    Member.objects.filter(pk=member.pk).update(tier=tier(code))

    earn(member, "SO1", 12_345)

    # 123.45 yuan × 1, 1.2, 1.5, 2: 123.45, 148.14, 185.175, 246.9 -> rounded down
    assert ledger(member) == [("earn", "SO1", earned, earned, earned)]


def test_points_per_yuan_is_a_setting(member, settings):
    settings.MEMBER_POINTS_PER_YUAN = 3
    Member.objects.filter(pk=member.pk).update(tier=tier("gold"))

    earn(member, "SO1", 1_001)

    # 10.01 yuan × 3 × 1.5 = 45.045
    assert balance(member) == 45


def test_completing_the_same_order_twice_earns_once(member):
    earn(member, "SO1", 5_000)
    earn(member, "SO1", 5_000)

    assert ledger(member) == [("earn", "SO1", 50, 50, 50)]
    assert spend(member) == [("SO1", 5_000, NOW)]


def test_an_order_worth_less_than_a_yuan_records_its_spend_and_earns_nothing(member):
    earn(member, "SO1", 99)

    assert ledger(member) == []
    assert spend(member) == [("SO1", 99, NOW)]
    assert balance(member) == 0


def test_earned_points_carry_the_completion_time_into_their_expiry(member, settings):
    settings.MEMBER_POINTS_EXPIRE_DAYS = 30
    completed = NOW - timedelta(days=2)

    earn(member, "SO1", 1_000, at=completed)

    assert lots(member) == [("SO1", 10, 10, completed + timedelta(days=30))]


def test_a_completion_costs_ten_queries(member, django_assert_num_queries):
    Member.objects.filter(pk=member.pk).update(tier=tier("silver"))

    # savepoint; member locked with its tier; spend seen before; spend written; earn seen
    # before; balance moved; entry written; window spend; tier for that spend; release
    with django_assert_num_queries(10):
        earn(member, "SO1", 10_000)

    assert balance(member) == 120


# --- Redeeming at checkout ---------------------------------------------------------------------


def test_redeeming_spends_points_and_the_member_object_sees_its_new_balance(member):
    earn(member, "SO1", 100_000)

    entry = points_redeem(member=member, points=300, order_reference="SO2")

    assert (entry.reason, entry.reference, entry.points, entry.balance_after) == (
        "redeem",
        "SO2",
        -300,
        700,
    )
    assert member.points_balance == 700
    assert balance(member) == 700
    assert lots(member) == [("SO1", 1_000, 700, NOW + YEAR)]


def test_redeeming_more_than_the_balance_is_refused_and_changes_nothing(member, english):
    earn(member, "SO1", 10_000)

    with pytest.raises(BusinessError) as refused:
        points_redeem(member=member, points=101, order_reference="SO2")

    assert (refused.value.code, refused.value.message) == (
        "insufficient_points",
        "Not enough points: 100 available, 101 needed.",
    )
    assert refused.value.fields == {"points": ["101"]}
    assert ledger(member) == [("earn", "SO1", 100, 100, 100)]
    assert balance(member) == 100


@pytest.mark.parametrize("points", [0, -5])
def test_redeeming_no_points_or_negative_points_is_refused(member, points):
    earn(member, "SO1", 10_000)

    with pytest.raises(BusinessError) as refused:
        points_redeem(member=member, points=points, order_reference="SO2")

    assert refused.value.code == "points_not_positive"
    assert ledger(member) == [("earn", "SO1", 100, 100, 100)]


def test_redeeming_for_the_same_order_twice_returns_the_first_redemption(member):
    earn(member, "SO1", 10_000)
    first = points_redeem(member=member, points=30, order_reference="SO2")

    again = points_redeem(member=member, points=50, order_reference="SO2")

    assert again.pk == first.pk
    assert (again.points, balance(member), member.points_balance) == (-30, 70, 70)
    assert PointsEntry.objects.count() == 2


def test_redeeming_takes_from_the_lots_that_expire_first(member):
    gift(member, 100, "late", expires_in=timedelta(days=300))
    gift(member, 100, "soon", expires_in=timedelta(days=10))
    gift(member, 100, "middle", expires_in=timedelta(days=100))

    points_redeem(member=member, points=150, order_reference="SO1")

    assert [(reference, remaining) for reference, _p, remaining, _e in lots(member)] == [
        ("late", 100),
        ("soon", 0),
        ("middle", 50),
    ]


def test_a_redemption_costs_eight_queries(member, django_assert_num_queries):
    for n in range(5):
        gift(member, 100, f"lot{n}", expires_in=timedelta(days=10 + n))

    # savepoint; member locked; repeat looked for; balance moved; the lots needed (two of
    # five); their remaining written; entry written; release
    with django_assert_num_queries(8):
        points_redeem(member=member.pk, points=150, order_reference="SO1")

    assert [remaining for _r, _p, remaining, _e in lots(member)] == [0, 50, 100, 100, 100]


# --- Restoring a redemption when the order is cancelled ----------------------------------------


def test_a_cancelled_order_gives_its_points_back_to_the_lots_they_came_from(member):
    gift(member, 100, "A", expires_in=timedelta(days=10))
    gift(member, 100, "B", expires_in=timedelta(days=100))
    points_redeem(member=member, points=150, order_reference="SO1")
    points_redeem(member=member, points=30, order_reference="SO2")
    assert [remaining for _r, _p, remaining, _e in lots(member)] == [0, 20]

    entry = points_restore_redeem(member=member, order_reference="SO1")

    # As if SO1 had never redeemed: SO2's 30 points come out of A, the earliest to expire.
    assert (entry.reason, entry.reference, entry.points, entry.balance_after) == (
        "redeem_restored",
        "SO1",
        150,
        170,
    )
    assert entry.remaining == 0
    assert [remaining for _r, _p, remaining, _e in lots(member)] == [70, 100]
    assert balance(member) == member.points_balance == 170
    assert list(points_drift()) == []


def test_restoring_twice_gives_the_points_back_once(member):
    gift(member, 100, "A")
    points_redeem(member=member, points=60, order_reference="SO1")

    first = points_restore_redeem(member=member, order_reference="SO1")
    again = points_restore_redeem(member=member, order_reference="SO1")

    assert again.pk == first.pk
    assert balance(member) == 100
    assert PointsEntry.objects.count() == 3


def test_restoring_an_order_that_redeemed_nothing_does_nothing(member):
    gift(member, 100, "A")

    assert points_restore_redeem(member=member, order_reference="SO9") is None
    assert PointsEntry.objects.count() == 1


def test_points_redeemed_by_a_merged_member_come_back_to_the_survivor_as_a_new_lot(member):
    counter = MemberFactory(mobile="13900000002")
    gift(counter, 100, "A", expires_in=timedelta(days=50))
    points_redeem(member=counter, points=40, order_reference="SO1")
    points_merge_move(source=counter, target=member, reference="merge:1")
    Member.objects.filter(pk=counter.pk).update(merged_into=member)

    # The cancel arrives for the merged member; the survivor gets the points.
    points_restore_redeem(member=counter.pk, order_reference="SO1")

    assert ledger(member) == [
        ("merge_in", f"merge:1:{PointsEntry.objects.get(reference='A').pk}", 60, 60, 60),
        ("redeem_restored", "SO1", 40, 100, 40),
    ]
    assert lots(member)[1] == ("SO1", 40, 40, NOW + YEAR)
    assert (balance(counter), balance(member)) == (0, 100)
    assert list(points_drift()) == []


# --- Refunds ------------------------------------------------------------------------------------


def test_a_refund_takes_back_the_points_in_proportion_and_reduces_the_spend(member):
    completed = NOW - timedelta(days=3)
    earn(member, "SO1", 100_000, at=completed)

    member_order_refunded(
        member_id=member.pk, order_reference="SO1", refunded_fen=25_000, paid_fen=100_000
    )

    assert ledger(member) == [
        ("earn", "SO1", 1_000, 1_000, 750),
        ("earn_reversed", "SO1:refund:25000", -250, 750, 0),
    ]
    # Dated like the order, so the refund leaves the tier window together with it.
    assert spend(member) == [("SO1", 100_000, completed), ("SO1:refund:25000", -25_000, completed)]


def test_partial_refunds_add_up_to_exactly_the_points_earned(member):
    earn(member, "SO1", 100_000)

    for refund in (33_333, 33_333, 33_334):
        member_order_refunded(
            member_id=member.pk, order_reference="SO1", refunded_fen=refund, paid_fen=100_000
        )

    assert ledger(member)[1:] == [
        ("earn_reversed", "SO1:refund:33333", -333, 667, 0),
        ("earn_reversed", "SO1:refund:66666", -333, 334, 0),
        ("earn_reversed", "SO1:refund:100000", -334, 0, 0),
    ]
    assert [amount for _r, amount, _at in spend(member)] == [100_000, -33_333, -33_333, -33_334]


def test_a_refund_of_points_already_spent_takes_what_is_left_and_forgives_the_rest(member):
    earn(member, "SO1", 100_000)
    points_redeem(member=member, points=900, order_reference="SO2")

    member_order_refunded(
        member_id=member.pk, order_reference="SO1", refunded_fen=50_000, paid_fen=100_000
    )

    assert ledger(member)[2:] == [("earn_reversed", "SO1:refund:50000", -100, 0, 0)]
    assert balance(member) == 0


def test_a_refund_with_no_points_left_records_the_spend_only(member):
    earn(member, "SO1", 100_000)
    points_redeem(member=member, points=1_000, order_reference="SO2")

    member_order_refunded(
        member_id=member.pk, order_reference="SO1", refunded_fen=50_000, paid_fen=100_000
    )

    assert [reason for reason, *_rest in ledger(member)] == ["earn", "redeem"]
    assert [amount for _r, amount, _at in spend(member)] == [100_000, -50_000]


def test_a_refund_before_completion_changes_nothing_here(member):
    member_order_refunded(
        member_id=member.pk, order_reference="SO1", refunded_fen=3_000, paid_fen=10_000
    )

    assert (ledger(member), spend(member)) == ([], [])

    # The completed amount is already net of it.
    earn(member, "SO1", 7_000)
    assert ledger(member) == [("earn", "SO1", 70, 70, 70)]


def test_refunds_beyond_what_was_spent_take_back_no_more(member):
    earn(member, "SO1", 7_000)

    member_order_refunded(
        member_id=member.pk, order_reference="SO1", refunded_fen=10_000, paid_fen=10_000
    )
    member_order_refunded(
        member_id=member.pk, order_reference="SO1", refunded_fen=1, paid_fen=10_000
    )

    assert ledger(member)[1:] == [("earn_reversed", "SO1:refund:7000", -70, 0, 0)]
    assert [amount for _r, amount, _at in spend(member)] == [7_000, -7_000]


def test_a_refund_of_an_order_that_earned_nothing_reduces_the_spend_only(member):
    earn(member, "SO1", 80)

    member_order_refunded(member_id=member.pk, order_reference="SO1", refunded_fen=80, paid_fen=80)

    assert ledger(member) == []
    assert spend(member) == [("SO1", 80, NOW), ("SO1:refund:80", -80, NOW)]


# --- Staff adjustments -------------------------------------------------------------------------


def test_staff_give_points_that_expire_like_earned_ones(member, hq_user):
    entry = points_adjust(member=member, points=200, note=" 工单 T-1 ", actor=hq_user)

    assert (entry.reason, entry.reference, entry.actor, entry.remaining) == (
        "adjust",
        "工单 T-1",
        hq_user,
        200,
    )
    assert entry.expires_at == NOW + YEAR
    assert member.points_balance == 200


def test_staff_take_points_oldest_first(member, hq_user):
    gift(member, 100, "A", expires_in=timedelta(days=200))
    gift(member, 100, "B", expires_in=timedelta(days=20))

    points_adjust(member=member, points=-120, note="T-2", actor=hq_user)

    assert [remaining for _r, _p, remaining, _e in lots(member)] == [80, 0]
    assert balance(member) == 80


def test_the_same_note_twice_is_recorded_once(member, hq_user):
    first = points_adjust(member=member, points=50, note="T-3", actor=hq_user)

    assert points_adjust(member=member, points=50, note="T-3", actor=hq_user).pk == first.pk
    assert balance(member) == 50


def test_the_same_note_with_other_points_is_refused(member, hq_user):
    points_adjust(member=member, points=50, note="T-3", actor=hq_user)

    with pytest.raises(BusinessError) as refused:
        points_adjust(member=member, points=80, note="T-3", actor=hq_user)

    assert (refused.value.code, refused.value.fields) == (
        "points_adjust_note_used",
        {"note": ["T-3"]},
    )
    assert (balance(member), PointsEntry.objects.count()) == (50, 1)


@pytest.mark.parametrize("note", ["", "   ", "x" * 65])
def test_an_adjustment_without_a_short_note_is_refused(member, hq_user, note):
    with pytest.raises(BusinessError) as refused:
        points_adjust(member=member, points=50, note=note, actor=hq_user)

    assert (refused.value.code, refused.value.status_code) == ("points_adjust_note_invalid", 400)
    assert (balance(member), PointsEntry.objects.count()) == (0, 0)


def test_an_adjustment_of_no_points_is_refused(member, hq_user):
    with pytest.raises(BusinessError) as refused:
        points_adjust(member=member, points=0, note="T-5", actor=hq_user)

    assert refused.value.code == "points_zero"
    assert (balance(member), PointsEntry.objects.count()) == (0, 0)


def test_taking_more_than_the_balance_is_refused(member, hq_user):
    gift(member, 100, "A")

    with pytest.raises(BusinessError) as refused:
        points_adjust(member=member, points=-101, note="T-4", actor=hq_user)

    assert refused.value.code == "insufficient_points"
    assert (balance(member), PointsEntry.objects.count(), lots(member)[0][2]) == (100, 1, 100)


# --- Expiry -------------------------------------------------------------------------------------


def test_what_is_left_of_expired_lots_expires_in_one_entry_per_member(member):
    other = MemberFactory(mobile="13900000002")
    gift(member, 100, "A", expires_in=timedelta(days=1))
    gift(member, 100, "B", expires_in=timedelta(days=2))
    gift(member, 100, "C", expires_in=timedelta(days=30))
    gift(other, 70, "D", expires_in=timedelta(days=1))
    points_redeem(member=member, points=60, order_reference="SO1")

    expired = points_expire(now=NOW + timedelta(days=2))

    assert expired == 140 + 70
    assert ledger(member)[-1] == ("expire", "expire:2026-03-03", -140, 100, 0)
    assert [remaining for _r, _p, remaining, _e in lots(member)] == [0, 0, 100]
    assert ledger(other)[-1] == ("expire", "expire:2026-03-03", -70, 0, 0)
    assert list(points_drift()) == []


def test_nothing_expires_before_its_time(member):
    gift(member, 100, "A", expires_in=timedelta(days=1))

    assert points_expire(now=NOW + timedelta(hours=23, minutes=59)) == 0
    assert balance(member) == 100


def test_expiring_twice_on_one_day_expires_once(member):
    gift(member, 100, "A", expires_in=timedelta(hours=1))
    gift(member, 100, "B", expires_in=timedelta(hours=2))

    assert points_expire(now=NOW + timedelta(hours=1)) == 100
    # B's time came later the same day: it waits for tomorrow's entry.
    assert points_expire(now=NOW + timedelta(hours=3)) == 0
    assert balance(member) == 100
    assert points_expire(now=NOW + timedelta(days=1)) == 100
    assert [reference for _r, reference, *_rest in ledger(member)][-2:] == [
        "expire:2026-03-01",
        "expire:2026-03-02",
    ]


def test_the_beat_task_expires_as_of_now(member):
    gift(member, 100, "A", expires_in=timedelta(seconds=-1))

    assert expire_points.delay().get() == 100
    assert balance(member) == 0


def test_points_expiring_soon_are_told(member):
    gift(member, 100, "A", expires_in=timedelta(days=10))
    gift(member, 50, "B", expires_in=timedelta(days=40))
    points_redeem(member=member, points=30, order_reference="SO1")

    assert member_points_expiring(member=member, before=NOW + timedelta(days=30)) == 70
    assert member_points_expiring(member=member, before=NOW + timedelta(days=41)) == 120


# --- Referrals ----------------------------------------------------------------------------------


def test_a_friends_first_paid_order_credits_the_referrer_once(member, settings):
    settings.MEMBER_REFERRAL_POINTS = 500
    friend = MemberFactory(mobile="13900000002", referrer=member)

    member_order_paid(member_id=friend.pk, order_reference="SO1")
    member_order_paid(member_id=friend.pk, order_reference="SO2")

    assert ledger(member) == [("referral", f"referral:{friend.pk}", 500, 500, 500)]
    assert ledger(friend) == []


def test_a_member_nobody_referred_credits_nobody(member, django_assert_num_queries):
    with django_assert_num_queries(1):
        member_order_paid(member_id=member.pk, order_reference="SO1")

    assert PointsEntry.objects.count() == 0


def test_a_referrer_merged_into_another_member_is_credited_as_the_survivor(member):
    old = MemberFactory(mobile="13900000003", merged_into=member)
    friend = MemberFactory(mobile="13900000002", referrer=old)

    member_order_paid(member_id=friend.pk, order_reference="SO1")

    assert ledger(member) == [("referral", f"referral:{friend.pk}", 500, 500, 500)]
    assert ledger(old) == []


# --- Merges -------------------------------------------------------------------------------------


def test_a_merge_moves_each_lot_with_its_expiry(member):
    counter = MemberFactory(mobile="13900000002")
    soon = gift(counter, 100, "A", expires_in=timedelta(days=5))
    late = gift(counter, 80, "B", expires_in=timedelta(days=90))
    points_redeem(member=counter, points=30, order_reference="SO1")
    gift(member, 10, "C")

    moved = points_merge_move(source=counter, target=member, reference="merge:7")

    assert moved == 150
    assert ledger(counter)[-1] == ("merge_out", "merge:7", -150, 0, 0)
    assert lots(member) == [
        ("C", 10, 10, NOW + YEAR),
        (f"merge:7:{soon.pk}", 70, 70, NOW + timedelta(days=5)),
        (f"merge:7:{late.pk}", 80, 80, NOW + timedelta(days=90)),
    ]
    assert [balance_after for _r, _ref, _p, balance_after, _rem in ledger(member)] == [10, 80, 160]
    assert (counter.points_balance, member.points_balance, balance(member)) == (0, 160, 160)
    assert points_merge_move(source=counter, target=member, reference="merge:7") == 0
    assert list(points_drift()) == []


def test_merging_a_member_without_points_writes_nothing(member):
    counter = MemberFactory(mobile="13900000002")

    assert points_merge_move(source=counter, target=member, reference="merge:8") == 0
    assert PointsEntry.objects.count() == 0


# --- The database backs the rules ---------------------------------------------------------------


def test_the_database_refuses_a_negative_balance(member):
    with pytest.raises(IntegrityError), transaction.atomic():
        Member.objects.filter(pk=member.pk).update(points_balance=-1)


def test_the_database_refuses_a_second_entry_for_one_reason_and_reference(member):
    gift(member, 10, "A")

    with pytest.raises(IntegrityError), transaction.atomic():
        PointsEntry.objects.create(
            member=member, reason=R.MERGE_IN, reference="A", points=5, balance_after=15
        )


def test_the_history_reads_newest_first_with_the_staff_in_one_query(
    member, hq_user, django_assert_num_queries
):
    points_adjust(member=member, points=50, note="T-1", actor=hq_user)
    points_redeem(member=member, points=20, order_reference="SO1")

    with django_assert_num_queries(1):
        rows = [(entry.reason, entry.actor) for entry in member_points_entries(member=member)]

    assert rows == [("redeem", None), ("adjust", hq_user)]


def test_the_database_refuses_an_unknown_reason(db):
    member = MemberFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        points_apply(member=member, points=10, reason="adjustment", reference="typo")

    member.refresh_from_db()
    assert (member.points_balance, PointsEntry.objects.filter(member=member).count()) == (0, 0)
    assert Member.objects.filter(pk=member.pk).exists()
