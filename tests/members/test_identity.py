"""Who a member is: counter sign-up, WeChat login, binding a phone and the merge it causes, the
member code, export and erasure, and the staff reads of members. Races on PostgreSQL are in
test_merge_concurrency.py."""

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import signing
from django.http import Http404

from members.models import (
    Coupon,
    Identity,
    JoinedChannel,
    Member,
    MemberMerge,
    PointsEntry,
    SpendEntry,
    Tier,
)
from members.selectors import member_detail, member_list
from members.services import identity
from members.services.identity import (
    member_bind_phone,
    member_code_issue,
    member_code_resolve,
    member_erase,
    member_export,
    member_login_wechat,
    member_signup_at_counter,
)
from members.services.points import points_apply
from orders.models import Order, Review
from retail.errors import BusinessError
from tests import factories
from tests.members.factories import CouponFactory

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)
YEAR = timedelta(days=365)
APP = "wx-miniapp-1"
OTHER_APP = "wx-officialaccount"
R = PointsEntry.Reason


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(T0, tick=False):
        yield


def refused(call) -> BusinessError:
    with pytest.raises(BusinessError) as caught:
        call()
    return caught.value


def identities(member: Member) -> list[tuple]:
    return list(
        Identity.objects.filter(member=member)
        .order_by("pk")
        .values_list("kind", "app_id", "openid", "unionid", "phone")
    )


def ledger(member: Member) -> list[tuple]:
    """(reason, reference, points, balance_after, remaining, expires_at), oldest first."""
    return list(
        PointsEntry.objects.filter(member=member)
        .order_by("pk")
        .values_list("reason", "reference", "points", "balance_after", "remaining", "expires_at")
    )


def earn(member: Member, points: int, reference: str) -> PointsEntry:
    return points_apply(member=member, points=points, reason=R.EARN, reference=reference)


def counts() -> tuple[int, int, int, int]:
    return (
        Member.objects.count(),
        Identity.objects.count(),
        MemberMerge.objects.count(),
        PointsEntry.objects.count(),
    )


# --- Counter sign-up ----------------------------------------------------------------------


def test_counter_signup_creates_a_member_with_her_phone_and_a_referral_code(store_a, clerk_a):
    member = member_signup_at_counter(
        mobile=" 13912345678 ", name=" 王芳 ", store=store_a, actor=clerk_a
    )

    member.refresh_from_db()
    assert (
        member.mobile,
        member.name,
        member.home_store_id,
        member.joined_channel,
        member.points_balance,
        member.created_at,
    ) == ("13912345678", "王芳", store_a.pk, JoinedChannel.COUNTER, 0, T0)
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{8}", member.referral_code)
    assert identities(member) == [("phone", "", "", "", "13912345678")]


def test_signing_up_a_known_phone_returns_her_member_and_changes_nothing(store_a, store_b):
    first = member_signup_at_counter(mobile="13912345678", name="王芳", store=store_a, actor=None)

    again = member_signup_at_counter(
        mobile="13912345678", name="别的名字", store=store_b, actor=None
    )

    again.refresh_from_db()
    assert (again.pk, again.name, again.home_store_id) == (first.pk, "王芳", store_a.pk)
    assert counts() == (1, 1, 0, 0)


def test_a_member_who_joined_online_gets_the_counters_store_as_home(store_a):
    online = member_login_wechat(app_id=APP, openid="o-1")
    member_bind_phone(member=online, mobile="13912345678")

    found = member_signup_at_counter(mobile="13912345678", store=store_a, actor=None)

    assert (found.pk, Member.objects.get(pk=online.pk).home_store_id) == (online.pk, store_a.pk)
    assert counts() == (1, 2, 0, 0)


@pytest.mark.parametrize(
    ("mobile", "name", "code", "fields"),
    [
        ("1391234567", "王芳", "mobile_invalid", {"mobile": ["1391234567"]}),
        ("23912345678", "王芳", "mobile_invalid", {"mobile": ["23912345678"]}),
        ("", "王芳", "mobile_invalid", {"mobile": [""]}),
        ("13912345678", "芳" * 51, "name_invalid", {"name": ["芳" * 51]}),
    ],
)
def test_a_bad_mobile_or_name_is_refused_and_creates_nobody(store_a, mobile, name, code, fields):
    error = refused(
        lambda: member_signup_at_counter(mobile=mobile, name=name, store=store_a, actor=None)
    )

    assert (error.code, error.status_code, error.fields) == (code, 400, fields)
    assert counts() == (0, 0, 0, 0)


def test_a_clerk_signs_up_members_only_in_her_own_store(store_a, store_b, clerk_a):
    error = refused(
        lambda: member_signup_at_counter(mobile="13912345678", store=store_b, actor=clerk_a)
    )

    assert (error.code, error.status_code) == ("permission_denied", 403)
    assert counts() == (0, 0, 0, 0)


def test_a_referral_code_drawn_twice_is_drawn_again(store_a, monkeypatch):
    drawn = iter("AAAAAAAA" + "AAAAAAAA" + "BBBBBBBB")

    class Secrets:
        @staticmethod
        def choice(_alphabet):
            return next(drawn)

    monkeypatch.setattr(identity, "secrets", Secrets)
    first = member_signup_at_counter(mobile="13900000001", store=store_a, actor=None)

    second = member_signup_at_counter(mobile="13900000002", store=store_a, actor=None)

    assert (first.referral_code, second.referral_code) == ("AAAAAAAA", "BBBBBBBB")
    assert counts() == (2, 2, 0, 0)


# --- WeChat login -------------------------------------------------------------------------


def test_a_first_wechat_login_creates_a_mini_shop_member():
    member = member_login_wechat(app_id=APP, openid="o-1", unionid="u-1")

    member.refresh_from_db()
    assert (member.mobile, member.name, member.home_store_id, member.joined_channel) == (
        None,
        "",
        None,
        JoinedChannel.MINI_SHOP,
    )
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{8}", member.referral_code)
    assert identities(member) == [("wechat", APP, "o-1", "u-1", "")]


def test_logging_in_again_finds_the_member_in_one_query(django_assert_num_queries):
    first = member_login_wechat(app_id=APP, openid="o-1", unionid="u-1")

    with django_assert_num_queries(1):
        again = member_login_wechat(app_id=APP, openid="o-1", unionid="u-1")

    assert again.pk == first.pk
    assert counts() == (1, 1, 0, 0)


def test_another_app_of_ours_finds_the_member_by_unionid():
    first = member_login_wechat(app_id=APP, openid="o-1", unionid="u-1")

    other = member_login_wechat(app_id=OTHER_APP, openid="o-2", unionid="u-1")

    assert other.pk == first.pk
    assert identities(first) == [
        ("wechat", APP, "o-1", "u-1", ""),
        ("wechat", OTHER_APP, "o-2", "u-1", ""),
    ]
    assert Member.objects.count() == 1


def test_a_unionid_learnt_later_is_kept():
    first = member_login_wechat(app_id=APP, openid="o-1")

    member_login_wechat(app_id=APP, openid="o-1", unionid="u-1")

    assert identities(first) == [("wechat", APP, "o-1", "u-1", "")]


def test_the_same_openid_in_another_app_without_a_unionid_is_someone_else():
    first = member_login_wechat(app_id=APP, openid="o-1")

    other = member_login_wechat(app_id=OTHER_APP, openid="o-1")

    assert other.pk != first.pk
    assert counts() == (2, 2, 0, 0)


@pytest.mark.parametrize(("app_id", "openid"), [("", "o-1"), (APP, "")])
def test_a_login_without_app_or_openid_is_refused(app_id, openid):
    error = refused(lambda: member_login_wechat(app_id=app_id, openid=openid))

    assert (error.code, error.status_code) == ("wechat_identity_invalid", 400)
    assert counts() == (0, 0, 0, 0)


# --- Binding a phone ----------------------------------------------------------------------


def test_binding_a_new_phone_gives_it_to_the_member():
    member = member_login_wechat(app_id=APP, openid="o-1")

    bound = member_bind_phone(member=member, mobile="13912345678")

    assert (bound.pk, Member.objects.get(pk=member.pk).mobile) == (member.pk, "13912345678")
    assert identities(member) == [
        ("wechat", APP, "o-1", "", ""),
        ("phone", "", "", "", "13912345678"),
    ]


def test_binding_her_own_phone_again_changes_nothing():
    member = member_login_wechat(app_id=APP, openid="o-1")
    member_bind_phone(member=member, mobile="13912345678")

    again = member_bind_phone(member=member, mobile="13912345678")

    assert again.pk == member.pk
    assert counts() == (1, 2, 0, 0)


def test_a_member_with_another_phone_is_refused(store_a):
    member = member_signup_at_counter(mobile="13912345678", store=store_a, actor=None)

    error = refused(lambda: member_bind_phone(member=member, mobile="13800000000"))

    assert (error.code, error.status_code, error.fields) == (
        "mobile_already_bound",
        409,
        {"mobile": ["13800000000"]},
    )
    assert Member.objects.get(pk=member.pk).mobile == "13912345678"
    assert counts() == (1, 1, 0, 0)


def test_a_bad_phone_is_refused_when_binding():
    member = member_login_wechat(app_id=APP, openid="o-1")

    error = refused(lambda: member_bind_phone(member=member, mobile="139-1234-5678"))

    assert (error.code, error.status_code) == ("mobile_invalid", 400)
    assert Member.objects.get(pk=member.pk).mobile is None


# --- Merge --------------------------------------------------------------------------------


@pytest.fixture
def counter_member(store_a):
    """Signed up at store A's counter, 300 points earned on an order."""
    member = member_signup_at_counter(mobile="13912345678", name="王芳", store=store_a, actor=None)
    earn(member, 300, "2611250000000001")
    return member


@pytest.fixture
def wechat_member():
    """Logged in to the mini-shop, holding a 10-yuan coupon."""
    member = member_login_wechat(app_id=APP, openid="o-1", unionid="u-1")
    CouponFactory(member=member, code="CPNWECHAT001")
    return member


def test_a_counter_member_and_a_wechat_member_with_the_same_phone_become_one(
    counter_member, wechat_member
):
    survivor = member_bind_phone(member=wechat_member, mobile="13912345678")

    survivor.refresh_from_db()
    wechat_member.refresh_from_db()
    assert (survivor.pk, survivor.mobile, survivor.points_balance) == (
        counter_member.pk,
        "13912345678",
        300,
    )
    assert list(Coupon.objects.filter(member=survivor).values_list("code", "issue_reference")) == [
        ("CPNWECHAT001", "claim")
    ]
    assert identities(survivor) == [
        ("phone", "", "", "", "13912345678"),
        ("wechat", APP, "o-1", "u-1", ""),
    ]
    assert (wechat_member.merged_into_id, wechat_member.mobile, wechat_member.points_balance) == (
        counter_member.pk,
        None,
        0,
    )
    merge = MemberMerge.objects.get()
    assert (merge.source_id, merge.target_id, merge.reason, merge.moved) == (
        wechat_member.pk,
        counter_member.pk,
        "phone_bound",
        {
            "points": 0,
            "coupons": 1,
            "spend": 0,
            "identities": 1,
            "referrals": 0,
            "orders": 0,
            "reviews": 0,
            "shop_tokens": 0,
            "addresses": 0,
            "cart": 0,
        },
    )
    assert ledger(survivor) == [(R.EARN, "2611250000000001", 300, 300, 300, T0 + YEAR)]
    assert ledger(wechat_member) == []


def test_after_the_merge_her_wechat_login_and_a_second_bind_find_the_survivor(
    counter_member, wechat_member
):
    member_bind_phone(member=wechat_member, mobile="13912345678")
    before = counts()

    assert member_login_wechat(app_id=APP, openid="o-1").pk == counter_member.pk
    assert member_login_wechat(app_id=OTHER_APP, openid="o-9", unionid="u-1").pk == (
        counter_member.pk
    )
    assert member_bind_phone(member=wechat_member, mobile="13912345678").pk == counter_member.pk
    assert counts() == (before[0], before[1] + 1, 1, before[3])


def test_points_of_both_move_lot_by_lot_and_keep_their_expiry(counter_member, wechat_member):
    with time_machine.travel(T0 + timedelta(days=30), tick=False):
        lot = earn(wechat_member, 120, "2612250000000002")
        points_apply(
            member=wechat_member, points=-20, reason=R.REDEEM, reference="2612250000000003"
        )

    survivor = member_bind_phone(member=wechat_member, mobile="13912345678")

    merge = MemberMerge.objects.get()
    assert (Member.objects.get(pk=survivor.pk).points_balance, merge.moved["points"]) == (400, 100)
    assert ledger(survivor) == [
        (R.EARN, "2611250000000001", 300, 300, 300, T0 + YEAR),
        (R.MERGE_IN, f"merge:{merge.pk}:{lot.pk}", 100, 400, 100, T0 + timedelta(days=30) + YEAR),
    ]
    assert ledger(wechat_member) == [
        (R.EARN, "2612250000000002", 120, 120, 0, T0 + timedelta(days=30) + YEAR),
        (R.REDEEM, "2612250000000003", -20, 100, 0, None),
        (R.MERGE_OUT, f"merge:{merge.pk}", -100, 0, 0, None),
    ]
    assert Member.objects.get(pk=wechat_member.pk).points_balance == 0


def test_orders_reviews_spend_referrals_and_profile_follow_the_survivor(
    counter_member, wechat_member, store_a
):
    order = factories.OrderFactory(
        store=store_a, member=wechat_member, status=Order.Status.COMPLETED, paid_fen=1000
    )
    Review.objects.create(order=order, store=store_a, member=wechat_member, rating=5)
    SpendEntry.objects.create(
        member=wechat_member, reference=order.number, amount_fen=600_000, at=T0
    )
    friend = factories.MemberFactory(referrer=wechat_member)
    Member.objects.filter(pk=wechat_member.pk).update(
        name="微信小芳", birthday=date(1990, 5, 1), tier=Tier.objects.get(code="gold")
    )
    Member.objects.filter(pk=counter_member.pk).update(
        name="", tier=Tier.objects.get(code="silver")
    )

    survivor = member_bind_phone(member=wechat_member, mobile="13912345678")

    survivor.refresh_from_db()
    assert MemberMerge.objects.get().moved == {
        "points": 0,
        "coupons": 1,
        "spend": 1,
        "identities": 1,
        "referrals": 1,
        "orders": 1,
        "reviews": 1,
        "shop_tokens": 0,
        "addresses": 0,
        "cart": 0,
    }
    assert (
        Order.objects.get(pk=order.pk).member_id,
        Review.objects.get(order=order).member_id,
        SpendEntry.objects.get().member_id,
        Member.objects.get(pk=friend.pk).referrer_id,
    ) == (survivor.pk, survivor.pk, survivor.pk, survivor.pk)
    # What she lacked comes from the merged member; her home store stays; the higher tier wins.
    assert (survivor.name, survivor.birthday, survivor.home_store_id, survivor.tier.code) == (
        "微信小芳",
        date(1990, 5, 1),
        store_a.pk,
        "gold",
    )


def test_a_coupon_both_claimed_is_kept_twice(counter_member, wechat_member):
    template = Coupon.objects.get(member=wechat_member).template
    CouponFactory(member=counter_member, template=template, code="CPNCOUNTER01")
    other = CouponFactory(member=wechat_member, code="CPNWECHAT002")
    clashing = Coupon.objects.get(code="CPNWECHAT001")

    member_bind_phone(member=wechat_member, mobile="13912345678")

    merge = MemberMerge.objects.get()
    assert list(
        Coupon.objects.filter(member=counter_member)
        .order_by("code")
        .values_list("code", "template_id", "issue_reference")
    ) == [
        ("CPNCOUNTER01", template.pk, "claim"),
        ("CPNWECHAT001", template.pk, f"merge:{merge.pk}:{clashing.pk}"),
        ("CPNWECHAT002", other.template_id, "claim"),
    ]
    assert merge.moved["coupons"] == 2


def test_two_wechat_members_binding_the_same_phone_in_turn_become_one():
    first = member_login_wechat(app_id=APP, openid="o-1")
    second = member_login_wechat(app_id=APP, openid="o-2")
    member_bind_phone(member=first, mobile="13912345678")

    survivor = member_bind_phone(member=second, mobile="13912345678")

    assert survivor.pk == first.pk
    assert (
        MemberMerge.objects.get().source_id,
        Member.objects.get(pk=second.pk).merged_into_id,
    ) == (
        second.pk,
        first.pk,
    )


def test_an_erased_member_cannot_bind_a_phone(hq_user):
    member = member_login_wechat(app_id=APP, openid="o-1")
    member_erase(member=member, actor=hq_user)

    error = refused(lambda: member_bind_phone(member=member, mobile="13912345678"))

    assert (error.code, error.status_code) == ("member_erased", 410)
    assert Member.objects.get(pk=member.pk).mobile is None


# --- Member code --------------------------------------------------------------------------


def test_a_member_code_names_its_member_and_fits_a_small_qr_code(counter_member):
    code = member_code_issue(member=counter_member)

    assert len(code) <= 56
    assert re.fullmatch(r"[0-9A-Za-z]+:[0-9A-Za-z]+:[0-9A-Za-z_-]{43}", code)
    assert member_code_resolve(code=code).pk == counter_member.pk


def test_a_member_code_is_resolved_in_one_query(counter_member, django_assert_num_queries):
    code = member_code_issue(member=counter_member)

    with django_assert_num_queries(1):
        member_code_resolve(code=code)


def test_a_member_code_is_good_for_sixty_seconds_and_no_more(counter_member):
    code = member_code_issue(member=counter_member)

    with time_machine.travel(T0 + timedelta(seconds=60), tick=False):
        assert member_code_resolve(code=code).pk == counter_member.pk
    with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
        error = refused(lambda: member_code_resolve(code=code))

    assert (error.code, error.status_code, error.fields) == (
        "member_code_expired",
        400,
        {"code": [code]},
    )


def test_the_code_changes_as_time_passes(counter_member):
    first = member_code_issue(member=counter_member)

    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        second = member_code_issue(member=counter_member)

    assert first != second


def _forged(code: str) -> str:
    value, timestamp, signature = code.split(":")
    return f"{value}:{timestamp}:{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


@pytest.mark.parametrize(
    "forge",
    [
        _forged,
        # Another member's id under the first member's signature.
        lambda code: f"{signing.b62_encode(10**6)}:{code.split(':', 1)[1]}",
        # Signed with our key, but for another purpose.
        lambda code: signing.TimestampSigner(salt="other").sign(code.split(":")[0]),
        lambda code: "hello",
        lambda code: "",
    ],
)
def test_a_forged_code_is_refused(counter_member, forge):
    code = forge(member_code_issue(member=counter_member))

    error = refused(lambda: member_code_resolve(code=code))

    assert (error.code, error.status_code) == ("member_code_invalid", 400)


def test_a_code_of_a_member_who_no_longer_exists_is_refused(counter_member):
    code = signing.TimestampSigner(salt=identity.MEMBER_CODE_SALT).sign(signing.b62_encode(10**6))

    error = refused(lambda: member_code_resolve(code=code))

    assert error.code == "member_code_invalid"


def test_the_code_of_a_merged_member_resolves_to_the_survivor(counter_member, wechat_member):
    code = member_code_issue(member=wechat_member)
    member_bind_phone(member=wechat_member, mobile="13912345678")

    assert member_code_resolve(code=code).pk == counter_member.pk
    assert member_code_resolve(code=member_code_issue(member=wechat_member)).pk == (
        counter_member.pk
    )


def test_the_code_of_an_erased_member_is_refused(counter_member, hq_user):
    code = member_code_issue(member=counter_member)
    member_erase(member=counter_member, actor=hq_user)

    error = refused(lambda: member_code_resolve(code=code))

    assert error.code == "member_code_invalid"
    assert refused(lambda: member_code_issue(member=counter_member)).code == "member_erased"


# --- Export and erasure -------------------------------------------------------------------


def test_the_export_holds_everything_about_her_unmasked(
    counter_member, wechat_member, store_a, django_assert_num_queries
):
    member_bind_phone(member=wechat_member, mobile="13912345678")
    Member.objects.filter(pk=counter_member.pk).update(
        birthday=date(1990, 5, 1), tier=Tier.objects.get(code="silver")
    )
    merge = MemberMerge.objects.get()

    with django_assert_num_queries(5):
        exported = member_export(member=counter_member)

    counter_member.refresh_from_db()
    assert exported == {
        "member": {
            "id": counter_member.pk,
            "mobile": "13912345678",
            "name": "王芳",
            "birthday": "1990-05-01",
            "tier": "银卡",
            "home_store": "静安寺店",
            "joined_channel": "counter",
            "referral_code": counter_member.referral_code,
            "referrer_id": None,
            "points_balance": 300,
            "joined_at": "2026-11-25T10:00:00+08:00",
            "erased_at": None,
        },
        "identities": [
            {
                "kind": "phone",
                "app_id": "",
                "openid": "",
                "unionid": "",
                "phone": "13912345678",
                "added_at": "2026-11-25T10:00:00+08:00",
            },
            {
                "kind": "wechat",
                "app_id": APP,
                "openid": "o-1",
                "unionid": "u-1",
                "phone": "",
                "added_at": "2026-11-25T10:00:00+08:00",
            },
        ],
        "points": [
            {
                "at": "2026-11-25T10:00:00+08:00",
                "reason": "earn",
                "reference": "2611250000000001",
                "points": 300,
                "balance_after": 300,
                "expires_at": "2027-11-25T10:00:00+08:00",
                "unspent": 300,
            }
        ],
        "coupons": [
            {
                "code": "CPNWECHAT001",
                "name": Coupon.objects.get().template.name,
                "status": "available",
                "valid_from": "2026-01-01T00:00:00+08:00",
                "valid_until": "2028-01-01T00:00:00+08:00",
                "order": "",
                "issued_at": "2026-11-25T10:00:00+08:00",
                "used_at": None,
            }
        ],
        "merged_from": [
            {
                "member_id": wechat_member.pk,
                "at": "2026-11-25T10:00:00+08:00",
                "moved": merge.moved,
            }
        ],
    }


def test_erasing_removes_her_personal_data_and_keeps_her_records(
    counter_member, wechat_member, store_a, hq_user
):
    order = factories.OrderFactory(
        store=store_a,
        member=counter_member,
        address={
            "name": "王芳",
            "mobile": "13912345678",
            "province": "上海市",
            "city": "上海市",
            "district": "静安区",
            "detail": "愚园路168号",
        },
    )
    member_bind_phone(member=wechat_member, mobile="13912345678")
    Member.objects.filter(pk=wechat_member.pk).update(name="微信小芳")
    Member.objects.filter(pk=counter_member.pk).update(birthday=date(1990, 5, 1))
    entries = ledger(counter_member)

    erased = member_erase(member=counter_member, actor=hq_user)

    assert (
        erased.name,
        erased.mobile,
        erased.birthday,
        erased.referral_code,
        erased.erased_at,
        erased.erased_by_id,
        erased.points_balance,
        str(erased),
    ) == ("", None, None, None, T0, hq_user.pk, 300, f"#{counter_member.pk}")
    merged = Member.objects.get(pk=wechat_member.pk)
    assert (merged.name, merged.erased_at) == ("", T0)
    assert Identity.objects.count() == 0
    assert ledger(counter_member) == entries
    assert Coupon.objects.get().member_id == counter_member.pk
    kept = Order.objects.get(pk=order.pk)
    assert (kept.member_id, kept.number, kept.total_fen) == (counter_member.pk, order.number, 1000)
    assert kept.address == {"province": "上海市", "city": "上海市", "district": "静安区"}
    # Nothing finds her again: her phone and her WeChat make new members.
    assert member_login_wechat(app_id=APP, openid="o-1").pk not in (
        counter_member.pk,
        wechat_member.pk,
    )
    assert member_signup_at_counter(mobile="13912345678", store=store_a, actor=None).pk not in (
        counter_member.pk,
        wechat_member.pk,
    )


def test_erasing_again_changes_nothing(counter_member, hq_user, manager_a):
    member_erase(member=counter_member, actor=hq_user)

    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        again = member_erase(member=counter_member, actor=manager_a)

    assert (again.erased_at, again.erased_by_id, again.updated_at) == (T0, hq_user.pk, T0)


# --- Staff reads --------------------------------------------------------------------------


def test_staff_list_the_members_of_their_stores_and_hq_all(store_a, store_b, clerk_a, hq_user):
    here = member_signup_at_counter(mobile="13900000001", store=store_a, actor=None)
    member_signup_at_counter(mobile="13900000002", store=store_b, actor=None)
    online = member_login_wechat(app_id=APP, openid="o-1")

    assert [member.pk for member in member_list(user=clerk_a)] == [here.pk]
    assert {member.pk for member in member_list(user=hq_user)} == {
        here.pk,
        online.pk,
        Member.objects.get(mobile="13900000002").pk,
    }


def test_member_detail_takes_six_queries_and_shows_the_latest_fifty_entries(
    counter_member, wechat_member, clerk_a, django_assert_num_queries
):
    for number in range(2, 62):
        with time_machine.travel(T0 + timedelta(minutes=number), tick=False):
            earn(counter_member, number, f"26112500000000{number:02d}")
    member_bind_phone(member=wechat_member, mobile="13912345678")

    with django_assert_num_queries(6):
        member = member_detail(user=clerk_a, member_id=counter_member.pk)
        shown = (
            [entry.reference for entry in member.latest_points],
            [identity.kind for identity in member.identities.all()],
            [coupon.template.name for coupon in member.coupons.all()],
            [merge.source_id for merge in member.merges.all()],
            (member.tier, member.home_store.code, member.referrer, member.merged_into),
        )

    assert shown[0] == [f"26112500000000{number:02d}" for number in range(61, 11, -1)]
    assert shown[1:4] == (
        ["phone", "wechat"],
        [Coupon.objects.get().template.name],
        [wechat_member.pk],
    )
    assert shown[4] == (None, "SH001", None, None)


def test_a_member_of_another_store_is_not_found(store_b, clerk_a):
    member = member_signup_at_counter(mobile="13900000002", store=store_b, actor=None)

    with pytest.raises(Http404):
        member_detail(user=clerk_a, member_id=member.pk)


def test_a_referrer_is_named_once_and_never_oneself(counter_member, wechat_member):
    from members.services.identity import member_referrer_set

    first = member_referrer_set(member=wechat_member, referrer=counter_member)
    second = member_referrer_set(member=wechat_member, referrer=factories.MemberFactory())
    with pytest.raises(BusinessError) as own:
        member_referrer_set(member=counter_member, referrer=counter_member)

    assert (first, second, own.value.code) == (True, False, "referral_self")
    assert Member.objects.get(pk=wechat_member.pk).referrer_id == counter_member.pk
    assert Member.objects.get(pk=counter_member.pk).referrer_id is None
