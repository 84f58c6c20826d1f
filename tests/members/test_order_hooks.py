"""Points and spend following real orders: placed, paid and completed through the orders
services, refunded through after-sales, cancelled with points redeemed, and a friend's first
paid order crediting her referrer."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from members.models import Member, PointsEntry, SpendEntry
from members.selectors import points_drift
from members.services.points import points_adjust
from orders.aftersales import after_sale_approve, after_sale_request
from orders.models import Order
from orders.payments import refund_confirm, refund_create
from orders.services import order_cancel, pickup_handover
from tests.factories import MemberFactory
from tests.orders import conftest as orders_fixtures

pytestmark = pytest.mark.django_db

# The orders suite's fixtures: a shop with water (2.00) and milk (12.50), a member, placing
# and paying orders through a fake provider.
shop, member, water, milk = (
    orders_fixtures.shop,
    orders_fixtures.member,
    orders_fixtures.water,
    orders_fixtures.milk,
)
place, fakepay, after_commit, pay = (
    orders_fixtures.place,
    orders_fixtures.fakepay,
    orders_fixtures.after_commit,
    orders_fixtures.pay,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
S = Order.Status


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def balance(member: Member) -> int:
    return Member.objects.values_list("points_balance", flat=True).get(pk=member.pk)


def ledger(member: Member) -> list[tuple[str, str, int, int]]:
    return list(
        PointsEntry.objects.filter(member=member)
        .order_by("pk")
        .values_list("reason", "reference", "points", "balance_after")
    )


def spend(member: Member) -> list[tuple[str, int]]:
    return list(
        SpendEntry.objects.filter(member=member)
        .order_by("pk")
        .values_list("reference", "amount_fen")
    )


@pytest.fixture
def collected(place, shop, water, milk, pay, clerk_a):
    """A pickup order of 3 water (6.00) and 4 milk (50.00), paid and collected."""
    order = place((water, 3), (milk, 4))
    pay(order)
    return pickup_handover(store=shop, pickup_code=order.pickup_code, actor=clerk_a)


def test_a_collected_order_earns_points_and_counts_as_spend(collected, member):
    assert (collected.status, collected.paid_fen) == (S.COMPLETED, 5_600)
    assert ledger(member) == [("earn", collected.number, 56, 56)]
    assert spend(member) == [(collected.number, 5_600)]
    assert Member.objects.get(pk=member.pk).tier.code == "regular"
    assert list(points_drift()) == []


def test_paying_and_placing_earn_nothing_before_completion(place, pay, water, member):
    order = place((water, 2))
    pay(order)

    assert (ledger(member), spend(member)) == ([], [])


def test_a_refund_after_completion_takes_back_points_in_proportion(
    collected, member, milk, manager_a, after_commit
):
    request = after_sale_request(
        order=collected,
        kind="refund_only",
        lines=[(collected.lines.get(sku=milk).line_key, 1)],
        reason="临期",
    )
    with after_commit():
        after_sale_approve(after_sale=request, actor=manager_a, note="同意")

    # 12.50 of 56.00 back: floor(56 × 1250 / 5600) = 12 points.
    reference = f"{collected.number}:refund:1250"
    assert ledger(member) == [
        ("earn", collected.number, 56, 56),
        ("earn_reversed", reference, -12, 44),
    ]
    assert spend(member) == [(collected.number, 5_600), (reference, -1_250)]
    # The provider's notify arriving again changes nothing.
    refund_confirm(out_refund_no=request.refunds.get().out_refund_no, provider_refund_id="again")
    assert len(ledger(member)) == 2
    assert list(points_drift()) == []


def test_an_order_refunded_in_full_before_pickup_earns_nothing(
    place, pay, water, member, manager_a, after_commit
):
    order = place((water, 5))
    pay(order)
    with after_commit():
        refund_create(order=order, amount_fen=1_000, reason="不要了", actor=manager_a)

    assert Order.objects.get(pk=order.pk).status == S.CANCELLED
    assert (ledger(member), spend(member)) == ([], [])


def test_points_redeemed_at_checkout_come_back_when_the_order_is_cancelled(
    place, water, member, hq_user
):
    points_adjust(member=member, points=500, note="gift", actor=hq_user)
    member.refresh_from_db()

    order = place((water, 5), points_to_redeem=300)

    assert ledger(member)[-1] == ("redeem", order.number, -300, 200)
    order_cancel(order=order, cause="shopper")
    assert ledger(member)[-1] == ("redeem_restored", order.number, 300, 500)
    assert balance(member) == 500
    assert list(points_drift()) == []


def test_a_friends_first_paid_order_credits_her_referrer_once(place, pay, water, member):
    friend = MemberFactory(mobile="13900000002", referrer=member)

    for _ in range(2):
        pay(place((water, 1), member=friend))

    assert ledger(member) == [("referral", f"referral:{friend.pk}", 500, 500)]
