"""The member centre through the shop API: tier, points and masked mobile; the points history
(cursor pages); her coupons by state; a member code the counter can resolve; the coupons she
can claim and claiming one; the share link and naming a referrer (new members only, once).
Every refusal changes nothing."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from members.models import Coupon, CouponTemplate, Member, PointsEntry, Tier
from members.services.coupons import coupon_claim
from members.services.identity import member_code_resolve, member_erase
from members.services.points import points_apply
from orders.models import Channel, Fulfilment
from orders.pricing import BasketLine
from orders.services import checkout_place
from retail.errors import BusinessError
from tests import factories
from tests.members.factories import CouponFactory, CouponTemplateFactory
from wechat.services.referrals import referral_apply

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)
AT = "2026-11-25T10:00:00+08:00"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def gold(lina):
    lina.tier = Tier.objects.get(code="gold")
    lina.referral_code = "LINA2345"
    lina.save(update_fields=["tier", "referral_code"])
    return lina


@pytest.fixture
def me(shop_api, gold):
    return shop_api(gold)


def error(response) -> tuple:
    body = response.json()["error"]
    return response.status_code, body["code"], body["fields"]


def at(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).isoformat()


# --- The member centre --------------------------------------------------------------------------


def test_the_member_centre_shows_tier_points_masked_mobile_and_referral_code(
    me, gold, django_assert_num_queries
):
    points_apply(member=gold, points=880, reason="adjust", reference="gift")
    template = CouponTemplateFactory()
    coupon_claim(member=gold, template=template)
    CouponFactory(member=gold, template=template, status="used", issue_reference="claim:used")
    CouponFactory(member=gold, template=template, valid_until=T0, issue_reference="claim:expired")

    # The token (with member and tier), her coupons still available.
    with django_assert_num_queries(2):
        response = me.get("me/")

    assert response.status_code == 200
    assert response.json() == {
        "id": gold.pk,
        "name": "林小美",
        "mobile": "138****8001",
        "has_mobile": True,
        "tier": {"code": "gold", "name": "金卡", "discount_percent": 8},
        "points_balance": 880,
        "referral_code": "LINA2345",
        "has_referrer": False,
        "coupons_available": 1,
        "created_at": AT,
    }


def test_a_member_without_a_phone_has_an_empty_mobile(shop_api):
    response = shop_api(factories.MemberFactory(mobile=None)).get("me/")

    assert (response.json()["mobile"], response.json()["has_mobile"]) == ("", False)


def test_the_member_centre_needs_a_login(client):
    response = client.get("/api/shop/v1/me/", HTTP_ACCEPT_LANGUAGE="en")

    assert error(response)[:2] == (401, "not_authenticated")


def test_the_points_history_is_hers_newest_first_by_cursor(me, gold, clock):
    for number in range(3):
        points_apply(
            member=gold, points=100 * (number + 1), reason="adjust", reference=f"r{number}"
        )
        clock.shift(timedelta(minutes=1))
    points_apply(member=factories.MemberFactory(), points=5, reason="adjust", reference="other")

    first = me.get("me/points/", {"page_size": 2}).json()
    second = me.get(first["next"].split("/api/shop/v1/")[1]).json()

    assert first["results"][0] == {
        "id": PointsEntry.objects.get(reference="r2").pk,
        "reason": "adjust",
        "reason_label": "adjusted by staff",
        "reference": "r2",
        "points": 300,
        "balance_after": 600,
        "expires_at": at(T0 + timedelta(minutes=2, days=365)),
        "at": at(T0 + timedelta(minutes=2)),
    }
    assert [row["reference"] for row in first["results"]] == ["r2", "r1"]
    assert [row["reference"] for row in second["results"]] == ["r0"]
    assert second["next"] is None


# --- Her coupons --------------------------------------------------------------------------------


@pytest.fixture
def wallet(gold):
    """One coupon in each state, and one of someone else."""
    template = CouponTemplateFactory(name="满30减10", threshold_fen=3000, kind="threshold")
    return {
        "available": CouponFactory(
            member=gold, template=template, code="AVAILABLE0001", issue_reference="a"
        ),
        "later": CouponFactory(
            member=gold,
            template=template,
            code="LATER0000001",
            valid_from=T0 + timedelta(days=1),
            issue_reference="b",
        ),
        "used": CouponFactory(
            member=gold,
            template=template,
            code="USED00000001",
            status="used",
            order_reference="2611250000000001",
            used_at=T0 - timedelta(days=1),
            issue_reference="c",
        ),
        "over": CouponFactory(
            member=gold, template=template, code="OVER00000001", valid_until=T0, issue_reference="d"
        ),
        "void": CouponFactory(
            member=gold, template=template, code="VOID00000001", status="void", issue_reference="e"
        ),
        "theirs": CouponFactory(
            member=factories.MemberFactory(), template=template, code="THEIRS000001"
        ),
    }


def test_her_available_coupons_are_the_unused_ones_not_yet_over(me, wallet):
    response = me.get("me/coupons/")

    assert response.status_code == 200
    assert response.json()[0] == {
        "code": "AVAILABLE0001",
        "name": "满30减10",
        "kind": "threshold",
        "amount_fen": 1000,
        "threshold_fen": 3000,
        "percent_off": 0,
        "cap_fen": None,
        "scope": "all",
        "status": "available",
        "valid_from": "2026-01-01T00:00:00+08:00",
        "valid_until": "2028-01-01T00:00:00+08:00",
        "order_number": "",
        "used_at": None,
    }
    assert [row["code"] for row in response.json()] == ["AVAILABLE0001", "LATER0000001"]


def test_her_used_and_expired_coupons(me, wallet):
    used = me.get("me/coupons/", {"status": "used"}).json()
    expired = me.get("me/coupons/", {"status": "expired"}).json()

    assert [(row["code"], row["order_number"]) for row in used] == [
        ("USED00000001", "2611250000000001")
    ]
    assert [row["code"] for row in expired] == ["VOID00000001", "OVER00000001"]


def test_an_unknown_coupon_state_is_refused(me):
    response = me.get("me/coupons/", {"status": "lost"})

    assert error(response) == (
        400,
        "validation_error",
        {"status": ['"lost" is not a valid choice.']},
    )


# --- Member code --------------------------------------------------------------------------------


def test_the_member_code_resolves_to_her_at_the_counter(me, gold):
    response = me.get("me/member-code/")

    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 60
    assert member_code_resolve(code=body["code"]) == gold


def test_an_erased_member_gets_no_code(shop_api, gold, hq_user):
    client = shop_api(gold)
    member_erase(member=gold, actor=hq_user)

    response = client.get("me/member-code/")

    # Her token no longer works once her data is erased.
    assert error(response)[:2] == (401, "token_invalid")


# --- Claiming coupons ---------------------------------------------------------------------------


@pytest.fixture
def templates(db):
    return {
        "twice": CouponTemplateFactory(name="新人券", per_member_limit=2),
        "once": CouponTemplateFactory(name="周末券", valid_until=T0 + timedelta(days=3)),
        "granted": CouponTemplateFactory(name="补偿券", issued_by=CouponTemplate.IssuedBy.GRANT),
        "over": CouponTemplateFactory(
            name="过期券", valid_from=T0 - timedelta(days=30), valid_until=T0 - timedelta(days=1)
        ),
        "gone": CouponTemplateFactory(name="抢光券", total_quantity=1, issued_count=1),
    }


def test_the_claimable_coupons_say_how_many_she_holds(
    me, gold, templates, django_assert_num_queries
):
    coupon_claim(member=gold, template=templates["twice"])
    coupon_claim(member=gold, template=templates["once"])

    with django_assert_num_queries(2):
        response = me.get("coupons/claimable/")

    assert response.status_code == 200
    assert response.json() == [
        {
            "id": templates["once"].pk,
            "name": "周末券",
            "kind": "fixed",
            "amount_fen": 1000,
            "threshold_fen": 0,
            "percent_off": 0,
            "cap_fen": None,
            "scope": "all",
            "valid_from": "2026-01-01T00:00:00+08:00",
            "valid_until": at(T0 + timedelta(days=3)),
            "valid_days": None,
            "per_member_limit": 1,
            "claimed": 1,
            "can_claim": False,
        },
        {
            "id": templates["twice"].pk,
            "name": "新人券",
            "kind": "fixed",
            "amount_fen": 1000,
            "threshold_fen": 0,
            "percent_off": 0,
            "cap_fen": None,
            "scope": "all",
            "valid_from": "2026-01-01T00:00:00+08:00",
            "valid_until": "2028-01-01T00:00:00+08:00",
            "valid_days": None,
            "per_member_limit": 2,
            "claimed": 1,
            "can_claim": True,
        },
    ]


def test_she_claims_a_coupon(me, gold, templates):
    response = me.post(f"coupons/{templates['twice'].pk}/claim/")

    assert response.status_code == 201
    coupon = Coupon.objects.get(member=gold)
    assert response.json() == {
        "code": coupon.code,
        "name": "新人券",
        "kind": "fixed",
        "amount_fen": 1000,
        "threshold_fen": 0,
        "percent_off": 0,
        "cap_fen": None,
        "scope": "all",
        "status": "available",
        "valid_from": AT,
        "valid_until": "2028-01-01T00:00:00+08:00",
        "order_number": "",
        "used_at": None,
    }


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("once", "coupon_limit_reached"),
        ("granted", "coupon_not_claimable"),
        ("over", "coupon_expired"),
        ("gone", "coupon_sold_out"),
    ],
)
def test_a_refused_claim_issues_nothing(me, gold, templates, name, code):
    coupon_claim(member=gold, template=templates["once"])
    template = templates[name]
    before = (Coupon.objects.count(), CouponTemplate.objects.get(pk=template.pk).issued_count)

    response = me.post(f"coupons/{template.pk}/claim/")

    assert error(response) == (409, code, {"template": [str(template.pk)]})
    after = (Coupon.objects.count(), CouponTemplate.objects.get(pk=template.pk).issued_count)
    assert after == before


def test_claiming_an_unknown_template_is_a_404(me):
    response = me.post("coupons/999999/claim/")

    assert error(response) == (404, "not_found", {})
    assert Coupon.objects.count() == 0


# --- Share link and referrer --------------------------------------------------------------------


def test_the_share_link_carries_her_referral_code(me):
    response = me.get("me/share/")

    assert response.status_code == 200
    assert response.json() == {
        "referral_code": "LINA2345",
        "url": "http://testserver/shop/?ref=LINA2345",
        "path": "pages/index/index?ref=LINA2345",
    }


def test_a_member_without_a_referral_code_has_no_share_link(shop_api):
    response = shop_api(factories.MemberFactory(referral_code=None)).get("me/share/")

    assert error(response) == (404, "referral_code_missing", {})


@pytest.fixture
def friend(shop_api):
    """A member who just joined through the mini-shop."""
    member = factories.MemberFactory(mobile=None, name="", joined_channel="mini_shop")
    return member, shop_api(member)


def test_a_new_member_names_her_referrer_and_the_referrer_is_credited_on_her_first_paid_order(
    gold, friend, shop_store, stocked, pay_order
):
    member, client = friend

    response = client.post("me/referrer/", {"code": "lina2345"})

    assert response.status_code == 200
    assert response.json()["has_referrer"] is True
    member.refresh_from_db()
    assert member.referrer == gold
    water = stocked(name="矿泉水", price_fen=200, on_hand=5)
    order = checkout_place(
        channel=Channel.MINI_SHOP,
        store=shop_store,
        fulfilment=Fulfilment.PICKUP,
        lines=[BasketLine(water.pk, 1)],
        client_reference="first",
        member=member,
    )
    pay_order(order)
    gold.refresh_from_db()
    assert gold.points_balance == 500


def referrers() -> list:
    return list(Member.objects.order_by("pk").values_list("pk", "referrer_id"))


def test_a_referrer_is_named_once(gold, friend):
    _member, client = friend
    client.post("me/referrer/", {"code": "LINA2345"})
    other = factories.MemberFactory(referral_code="OTHER234")
    before = referrers()

    response = client.post("me/referrer/", {"code": other.referral_code})

    assert error(response) == (409, "referrer_already_set", {"code": ["OTHER234"]})
    assert referrers() == before


def test_her_own_code_an_unknown_code_and_a_circle_are_refused(gold, friend, me):
    member, client = friend
    member.referral_code = "FRIEND23"
    member.save(update_fields=["referral_code"])
    Member.objects.filter(pk=gold.pk).update(referrer=member)
    before = referrers()

    own = client.post("me/referrer/", {"code": "FRIEND23"})
    unknown = client.post("me/referrer/", {"code": "NOBODY99"})
    circular = client.post("me/referrer/", {"code": "LINA2345"})

    assert error(own) == (409, "referral_self", {"code": ["FRIEND23"]})
    assert error(unknown) == (404, "referral_code_unknown", {"code": ["NOBODY99"]})
    assert error(circular) == (409, "referral_circular", {"code": ["LINA2345"]})
    assert referrers() == before


def test_a_member_who_has_ordered_cannot_name_a_referrer(gold, friend, shop_store):
    member, client = friend
    factories.OrderFactory(member=member, store=shop_store)
    before = referrers()

    response = client.post("me/referrer/", {"code": "LINA2345"})

    assert error(response) == (409, "referral_too_late", {"code": ["LINA2345"]})
    assert referrers() == before


def test_a_merged_members_code_is_unknown(gold, friend):
    member, _client = friend
    survivor = factories.MemberFactory()
    Member.objects.filter(pk=gold.pk).update(merged_into=survivor)

    with pytest.raises(BusinessError) as refused:
        referral_apply(member=member, code="LINA2345")

    assert refused.value.code == "referral_code_unknown"
    member.refresh_from_db()
    assert member.referrer is None


def test_referral_apply_returns_the_referrer_and_sets_it_on_the_member_passed(gold, friend):
    member, _client = friend

    referrer = referral_apply(member=member, code=" lina2345 ")

    assert (referrer, member.referrer) == (gold, gold)
    assert Member.objects.get(pk=member.pk).referrer_id == gold.pk
