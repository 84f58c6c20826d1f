"""Points under real concurrency: threads with connections of their own racing for one member
on PostgreSQL. SQLite serialises every writer on one file lock, so a race there proves
nothing; these tests run where the row lock and the guarded UPDATE have to do the work."""

import pytest
from django.db import connection, transaction

from members.models import Member, PointsEntry, SpendEntry
from members.selectors import points_drift
from members.services.points import (
    member_order_completed,
    member_order_paid,
    points_adjust,
    points_redeem,
    points_restore_redeem,
)
from tests.factories import MemberFactory, UserFactory
from tests.inventory.test_concurrency import WON, race, tally

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: set DATABASE_URL (.ci/run does)",
    ),
    pytest.mark.django_db(transaction=True),
]


def balance(member: Member) -> int:
    return Member.objects.values_list("points_balance", flat=True).get(pk=member.pk)


@pytest.fixture
def member():
    member = MemberFactory(mobile="13900000001")
    points_adjust(member=member, points=1_000, note="seed", actor=UserFactory())
    return member


def test_twenty_redemptions_of_100_against_1000_points_exactly_ten_win(member):
    def redeem(n: int):
        def call():
            # As checkout does: inside the order's transaction.
            with transaction.atomic():
                return points_redeem(member=member.pk, points=100, order_reference=f"SO{n}").pk

        return call

    outcomes = race([redeem(n) for n in range(20)], workers=20)

    assert tally(outcomes) == {WON: 10, "insufficient_points": 10}
    assert balance(member) == 0
    redeemed = PointsEntry.objects.filter(member=member, reason="redeem")
    assert redeemed.count() == 10
    # Each winner saw the balance the one before it left.
    assert sorted(redeemed.values_list("balance_after", flat=True)) == list(range(0, 1_000, 100))
    assert list(points_drift()) == []


def test_the_same_order_completed_by_racing_callers_earns_once(member):
    def complete():
        member_order_completed(
            member_id=member.pk,
            order_reference="SO1",
            amount_fen=50_000,
            at=Member.objects.get(pk=member.pk).created_at,
        )

    outcomes = race([complete for _ in range(10)], workers=10)

    assert tally(outcomes) == {WON: 10}
    assert SpendEntry.objects.filter(reference="SO1").count() == 1
    assert list(PointsEntry.objects.filter(reason="earn").values_list("reference", "points")) == [
        ("SO1", 500)
    ]
    assert balance(member) == 1_500
    assert list(points_drift()) == []


def test_redemptions_restores_and_adjustments_racing_never_drift(member):
    staff = UserFactory()
    for n in range(5):
        points_redeem(member=member.pk, points=50, order_reference=f"OLD{n}")

    calls = []
    for n in range(10):
        calls.append(
            lambda n=n: points_redeem(member=member.pk, points=80, order_reference=f"SO{n}")
        )
    for n in range(5):
        calls.append(lambda n=n: points_restore_redeem(member=member.pk, order_reference=f"OLD{n}"))
    for n in range(5):
        calls.append(
            lambda n=n: points_adjust(member=member.pk, points=-40, note=f"T{n}", actor=staff)
        )

    outcomes = race(calls)

    won = [kind == WON for kind, _result in outcomes]
    assert all(won[10:15])  # restores always succeed
    spent = 80 * sum(won[:10]) + 40 * sum(won[15:])
    assert balance(member) == 1_000 - spent >= 0
    assert set(tally(outcomes)) <= {WON, "insufficient_points"}
    assert list(points_drift()) == []


def test_a_friends_racing_payments_credit_the_referrer_once(member):
    friend = MemberFactory(mobile="13900000002", referrer=member)

    outcomes = race(
        [
            lambda n=n: member_order_paid(member_id=friend.pk, order_reference=f"SO{n}")
            for n in range(10)
        ],
        workers=10,
    )

    assert tally(outcomes) == {WON: 10}
    assert list(
        PointsEntry.objects.filter(reason="referral").values_list("member_id", "points")
    ) == [(member.pk, 500)]
    assert balance(member) == 1_500
