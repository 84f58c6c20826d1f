"""Identity under real concurrency: threads with connections of their own on PostgreSQL. The same
merge run twice at once makes one merge and moves the points once; logins and sign-ups racing
for the same openid or phone make one member."""

import pytest
from django.db import connection

from members.models import Coupon, Identity, Member, MemberMerge, PointsEntry
from members.services.identity import (
    member_bind_phone,
    member_login_wechat,
    member_signup_at_counter,
)
from members.services.points import points_apply
from tests.factories import StoreFactory
from tests.inventory.test_concurrency import WON, race, tally
from tests.members.factories import CouponFactory

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: set DATABASE_URL (.ci/run does)",
    ),
    pytest.mark.django_db(transaction=True),
]

R = PointsEntry.Reason


def ledger(member: Member) -> list[tuple]:
    return list(
        PointsEntry.objects.filter(member=member)
        .order_by("pk")
        .values_list("reason", "points", "balance_after", "remaining")
    )


@pytest.mark.parametrize("racers", [2, 10])
def test_the_same_merge_run_at_once_merges_once_and_counts_the_points_once(racers):
    store = StoreFactory()
    counter = member_signup_at_counter(mobile="13912345678", store=store, actor=None)
    points_apply(member=counter, points=300, reason=R.EARN, reference="2611250000000001")
    wechat = member_login_wechat(app_id="wx-app", openid="o-1")
    points_apply(member=wechat, points=120, reason=R.EARN, reference="2611250000000002")
    CouponFactory(member=wechat, code="CPNWECHAT001")

    outcomes = race([lambda: member_bind_phone(member=wechat, mobile="13912345678")] * racers)

    assert tally(outcomes) == {WON: racers}
    assert {result.pk for _kind, result in outcomes} == {counter.pk}
    merge = MemberMerge.objects.get()
    assert (merge.source_id, merge.target_id, merge.moved["points"], merge.moved["coupons"]) == (
        wechat.pk,
        counter.pk,
        120,
        1,
    )
    assert Member.objects.get(pk=counter.pk).points_balance == 420
    assert Member.objects.get(pk=wechat.pk).points_balance == 0
    assert ledger(counter) == [(R.EARN, 300, 300, 300), (R.MERGE_IN, 120, 420, 120)]
    assert ledger(wechat) == [(R.EARN, 120, 120, 0), (R.MERGE_OUT, -120, 0, 0)]
    assert Coupon.objects.get().member_id == counter.pk
    assert Identity.objects.filter(member=counter).count() == 2


def test_two_wechat_members_binding_one_new_phone_at_once_become_one():
    first = member_login_wechat(app_id="wx-app", openid="o-1")
    second = member_login_wechat(app_id="wx-app", openid="o-2")
    points_apply(member=first, points=50, reason=R.EARN, reference="2611250000000001")
    points_apply(member=second, points=70, reason=R.EARN, reference="2611250000000002")

    outcomes = race(
        [
            lambda: member_bind_phone(member=first, mobile="13912345678"),
            lambda: member_bind_phone(member=second, mobile="13912345678"),
        ]
    )

    assert tally(outcomes) == {WON: 2}
    holder = Member.objects.get(mobile="13912345678")
    assert {result.pk for _kind, result in outcomes} == {holder.pk}
    merge = MemberMerge.objects.get()
    assert (merge.target_id, {merge.source_id, merge.target_id}) == (
        holder.pk,
        {first.pk, second.pk},
    )
    assert Member.objects.get(pk=holder.pk).points_balance == 120
    assert Identity.objects.filter(member=holder, kind="phone").count() == 1


def test_logins_racing_with_one_openid_make_one_member():
    outcomes = race([lambda: member_login_wechat(app_id="wx-app", openid="o-1")] * 20)

    assert tally(outcomes) == {WON: 20}
    assert len({result.pk for _kind, result in outcomes}) == 1
    assert (Member.objects.count(), Identity.objects.count()) == (1, 1)


def test_sign_ups_racing_with_one_phone_make_one_member():
    store = StoreFactory()

    outcomes = race(
        [lambda: member_signup_at_counter(mobile="13912345678", store=store, actor=None)] * 20
    )

    assert tally(outcomes) == {WON: 20}
    assert len({result.pk for _kind, result in outcomes}) == 1
    assert (Member.objects.count(), Identity.objects.count()) == (1, 1)
