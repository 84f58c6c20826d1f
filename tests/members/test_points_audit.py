"""points_audit: every member's balance against the sum of her entries, the unspent points of
her lots and her last entry's balance_after; and the randomised proof that any sequence of
earning, redeeming, restoring, refunding, expiring and adjusting keeps all three true, never
goes below zero and ends where a model of the rules says."""

from datetime import datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import CommandError, call_command, execute_from_command_line
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from members.models import Member, PointsEntry, Tier
from members.selectors import PointsDrift, points_drift
from members.services.points import (
    member_order_completed,
    member_order_refunded,
    points_adjust,
    points_expire,
    points_redeem,
    points_restore_redeem,
)
from retail.errors import BusinessError
from tests.factories import MemberFactory, UserFactory

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=SHANGHAI)
YEAR = timedelta(days=365)


@pytest.fixture
def history(hq_user):
    """Two members with a bit of everything, written through the services."""
    first = MemberFactory(mobile="13900000001")
    second = MemberFactory(mobile="13900000002")
    with time_machine.travel(NOW, tick=False):
        member_order_completed(member_id=first.pk, order_reference="SO1", amount_fen=80_000, at=NOW)
        points_redeem(member=first, points=300, order_reference="SO2")
        points_restore_redeem(member=first, order_reference="SO2")
        points_redeem(member=first, points=100, order_reference="SO3")
        member_order_refunded(
            member_id=first.pk, order_reference="SO1", refunded_fen=20_000, paid_fen=80_000
        )
        points_expire(now=NOW + YEAR)
        points_adjust(member=second, points=90, note="T-1", actor=hq_user)
    return first, second


def audit() -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("points_audit", stdout=out)
    except CommandError as failed:
        return out.getvalue(), failed
    return out.getvalue(), None


# --- Clean ----------------------------------------------------------------------------------------


def test_a_history_written_through_the_services_audits_clean(history, english):
    first, _second = history

    printed, failed = audit()

    assert (printed, failed) == ("Points: no drift.\n", None)
    assert list(Member.objects.order_by("pk").values_list("points_balance", flat=True)) == [0, 90]
    assert list(
        PointsEntry.objects.filter(member=first)
        .order_by("pk")
        .values_list("reason", "points", "balance_after")
    ) == [
        ("earn", 800, 800),
        ("redeem", -300, 500),
        ("redeem_restored", 300, 800),
        ("redeem", -100, 700),
        ("earn_reversed", -200, 500),
        ("expire", -500, 0),
    ]


def test_no_members_at_all_is_clean(db, english):
    assert audit() == ("Points: no drift.\n", None)


# --- Drift ---------------------------------------------------------------------------------------


def test_a_balance_changed_behind_the_ledger_drifts_on_all_three_sums(history):
    first, _second = history
    Member.objects.filter(pk=first.pk).update(points_balance=25)

    assert list(points_drift()) == [
        PointsDrift(member_id=first.pk, balance=25, ledger=0, lots=0, last_balance_after=0)
    ]


def test_an_entry_written_behind_the_balance_drifts(history):
    _first, second = history
    PointsEntry.objects.create(
        member=second, reason="adjust", reference="behind", points=10, balance_after=100
    )

    assert list(points_drift()) == [
        PointsDrift(member_id=second.pk, balance=90, ledger=100, lots=90, last_balance_after=100)
    ]


def test_lots_changed_behind_the_ledger_drift(history):
    _first, second = history
    PointsEntry.objects.filter(member=second, reason="adjust").update(remaining=40)

    assert list(points_drift()) == [
        PointsDrift(member_id=second.pk, balance=90, ledger=90, lots=40, last_balance_after=90)
    ]


def test_the_command_prints_each_drift_and_exits_with_status_1(history, english, capsys):
    first, second = history
    Member.objects.filter(pk=first.pk).update(points_balance=25)
    PointsEntry.objects.filter(member=second, reason="adjust").update(remaining=40)

    printed, failed = audit()

    assert str(failed) == "Points: 2 members drift."
    assert printed.splitlines() == [
        "Points drift: the balance should equal each of the three sums after it.",
        "    member      balance       ledger      unspent   last entry",
        f"{first.pk:>10}           25            0            0            0",
        f"{second.pk:>10}           90           90           40           90",
    ]
    # From the command line, the error is exit status 1.
    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(["manage.py", "points_audit"])
    assert exited.value.code == 1
    assert capsys.readouterr().err == "CommandError: Points: 2 members drift.\n"


@pytest.mark.parametrize("count", [1, 30])
def test_the_audit_takes_one_query_however_many_members(count, hq_user, django_assert_num_queries):
    for n in range(count):
        member = MemberFactory()
        points_adjust(member=member, points=n + 1, note="T", actor=hq_user)
    Member.objects.update(points_balance=999)

    with django_assert_num_queries(1):
        assert len(list(points_drift())) == count


# --- Randomised histories ------------------------------------------------------------------------

ORDERS = 2
steps = st.one_of(
    st.tuples(st.just("complete"), st.integers(0, ORDERS), st.integers(0, 300_000)),
    st.tuples(st.just("redeem"), st.integers(0, ORDERS), st.integers(1, 400)),
    st.tuples(st.just("restore"), st.integers(0, ORDERS)),
    st.tuples(st.just("refund"), st.integers(0, ORDERS), st.integers(1, 200_000)),
    st.tuples(st.just("expire"), st.sampled_from([0, 1, 100, 200, 366])),
    st.tuples(
        st.just("adjust"),
        st.one_of(st.integers(-500, -1), st.integers(1, 2_000)),
        st.integers(0, 3),
    ),
)


class PointsModel:
    """The rules in plain Python: lots spent oldest expiry first, restored latest first."""

    def __init__(self) -> None:
        self.lots: list[list] = []  # [expires_at, seq, points, remaining]
        self.balance = 0
        self.spent: dict[str, int] = {}
        self.earned: dict[str, int] = {}
        self.refunded: dict[str, int] = {}
        self.redeemed: dict[str, int] = {}
        self.restored: set[str] = set()
        self.adjusted: dict[str, int] = {}
        self.expired_days: set[str] = set()

    def credit(self, points: int, now: datetime) -> None:
        self.lots.append([now + YEAR, len(self.lots), points, points])
        self.balance += points

    def debit(self, points: int) -> None:
        self.balance -= points
        for lot in sorted(self.lots, key=lambda lot: (lot[0], lot[1])):
            taken = min(lot[3], points)
            lot[3] -= taken
            points -= taken
        assert points == 0

    def refill(self, points: int, now: datetime) -> None:
        self.balance += points
        for lot in sorted(self.lots, key=lambda lot: (lot[0], lot[1]), reverse=True):
            given = min(lot[2] - lot[3], points)
            lot[3] += given
            points -= given
        if points:
            self.lots.append([now + YEAR, len(self.lots), points, points])

    def apply(self, step: tuple, now: datetime) -> str | None:
        kind, *args = step
        if kind == "complete":
            order, fen = f"SO{args[0]}", args[1]
            if order in self.spent:
                return "repeat"
            self.spent[order] = fen
            if fen // 100:
                self.earned[order] = fen // 100
                self.credit(fen // 100, now)
            return None
        if kind == "redeem":
            order, points = f"SO{args[0]}", args[1]
            if order in self.redeemed:
                return "repeat"
            if points > self.balance:
                return "insufficient_points"
            self.redeemed[order] = points
            self.debit(points)
            return None
        if kind == "restore":
            order = f"SO{args[0]}"
            if order not in self.redeemed or order in self.restored:
                return "nothing"
            self.restored.add(order)
            self.refill(self.redeemed[order], now)
            return None
        if kind == "refund":
            order, fen = f"SO{args[0]}", args[1]
            if order not in self.spent:
                return "nothing"
            spent, before = self.spent[order], self.refunded.get(order, 0)
            after = min(before + fen, spent)
            if after <= before:
                return "nothing"
            self.refunded[order] = after
            earned = self.earned.get(order, 0)
            due = earned * after // spent - earned * before // spent
            if min(due, self.balance) > 0:
                self.debit(min(due, self.balance))
            return None
        if kind == "expire":
            day = timezone.localdate(now).isoformat()
            due = sum(lot[3] for lot in self.lots if lot[0] <= now)
            if not due or day in self.expired_days:
                return "nothing"
            self.expired_days.add(day)
            self.debit(due)
            return None
        points, note = args[0], f"T{args[1]}"
        if note in self.adjusted:
            return "repeat" if self.adjusted[note] == points else "points_adjust_note_used"
        if -points > self.balance:
            return "insufficient_points"
        self.adjusted[note] = points
        if points > 0:
            self.credit(points, now)
        else:
            self.debit(-points)
        return None


class Shop:
    def __init__(self, member: Member, staff) -> None:
        self.member, self.staff = member, staff

    def apply(self, step: tuple, now: datetime) -> str | None:
        kind, *args = step
        member_id = self.member.pk
        try:
            if kind == "complete":
                member_order_completed(
                    member_id=member_id, order_reference=f"SO{args[0]}", amount_fen=args[1], at=now
                )
            elif kind == "redeem":
                points_redeem(member=member_id, points=args[1], order_reference=f"SO{args[0]}")
            elif kind == "restore":
                points_restore_redeem(member=member_id, order_reference=f"SO{args[0]}")
            elif kind == "refund":
                member_order_refunded(
                    member_id=member_id,
                    order_reference=f"SO{args[0]}",
                    refunded_fen=args[1],
                    paid_fen=args[1],
                )
            elif kind == "expire":
                points_expire(now=now)
            else:
                points_adjust(
                    member=member_id, points=args[0], note=f"T{args[1]}", actor=self.staff
                )
        except BusinessError as refused:
            return refused.code
        return None

    def numbers(self) -> tuple[int, list[int]]:
        balance = Member.objects.values_list("points_balance", flat=True).get(pk=self.member.pk)
        lots = PointsEntry.objects.filter(
            member=self.member, points__gt=0, expires_at__isnull=False
        ).order_by("pk")
        return balance, list(lots.values_list("remaining", flat=True))


class _RollBack(Exception):
    """Ends an example's transaction, so the next example starts from the same database."""


@pytest.fixture
def staff():
    return UserFactory()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
)
# Each history starts with a gift, so redemptions (and their restores) get a chance.
@given(steps=st.lists(steps, max_size=30).map(lambda drawn: [("adjust", 1_000, 9), *drawn]))
def test_random_histories_never_drift_never_go_negative_and_end_where_the_rules_say(staff, steps):
    with pytest.raises(_RollBack), transaction.atomic():
        # One multiplier for everyone: the model need not follow tiers.
        Tier.objects.exclude(code="regular").delete()
        shop, model = Shop(MemberFactory(mobile="13900000001"), staff), PointsModel()
        with time_machine.travel(NOW, tick=False) as clock:
            for step in steps:
                if step[0] == "expire":
                    clock.shift(timedelta(days=step[1]))
                now = timezone.now()
                entries_before = PointsEntry.objects.count()
                expected = model.apply(step, now)
                outcome = shop.apply(step, now)
                event(f"{step[0]}: {expected or 'done'}")
                if expected in ("insufficient_points", "points_adjust_note_used"):
                    assert outcome == expected, step
                else:
                    assert outcome is None, step
                if expected is not None:
                    assert PointsEntry.objects.count() == entries_before, step
                balance, lots = shop.numbers()
                assert balance >= 0
                assert (balance, lots) == (
                    model.balance,
                    [lot[3] for lot in sorted(model.lots, key=lambda lot: lot[1])],
                ), step
                assert list(points_drift()) == []
        raise _RollBack
