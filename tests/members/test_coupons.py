"""Coupons: issued by claim, staff grant, birthday and referral, within window, per-member limit
and total quantity; spent once at checkout with the order; given back (or void) when the order
is cancelled, with the points redeemed on it. Refused coupons say why and change nothing."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from inventory.models import Reservation, StockItem
from members.models import Coupon, CouponGrant, CouponTemplate, Member, PointsEntry
from members.selectors import coupon_templates_claimable, member_coupons
from members.services.coupons import (
    coupon_claim,
    coupon_grant,
    coupon_issue_referral,
    coupon_redeem,
    coupons_issue_birthday,
)
from members.tasks import issue_birthday_coupons
from orders.models import Channel, Fulfilment, Order
from orders.pricing import BasketLine
from orders.services import checkout_place, order_cancel, orders_expire_unpaid
from orders.transitions import Cause
from retail.errors import BusinessError
from tests import factories
from tests.members.factories import CouponFactory, CouponTemplateFactory, PromotionPriceFactory

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=SHANGHAI)
IssuedBy = CouponTemplate.IssuedBy


@pytest.fixture(autouse=True)
def _noon():
    with time_machine.travel(NOON, tick=False):
        yield


def _issued(template: CouponTemplate) -> int:
    return CouponTemplate.objects.values_list("issued_count", flat=True).get(pk=template.pk)


def _references(template: CouponTemplate) -> list[tuple[int, str]]:
    return list(
        Coupon.objects.filter(template=template)
        .order_by("member_id", "issue_reference")
        .values_list("member_id", "issue_reference")
    )


# --- Claim -------------------------------------------------------------------------------------


def test_a_claim_issues_one_coupon_valid_for_its_days(shopper):
    template = CouponTemplateFactory(valid_days=7, total_quantity=5)

    coupon = coupon_claim(member=shopper, template=template)

    assert (coupon.member, coupon.status, coupon.issue_reference) == (
        shopper,
        "available",
        "claim:1",
    )
    assert (coupon.valid_from, coupon.valid_until) == (NOON, NOON + timedelta(days=7))
    assert len(coupon.code) == 12
    assert set(coupon.code) <= set("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
    assert _issued(template) == 1


def test_valid_days_end_with_the_template(shopper):
    template = CouponTemplateFactory(valid_days=30, valid_until=NOON + timedelta(days=3))

    coupon = coupon_claim(member=shopper, template=template.pk)

    assert coupon.valid_until == NOON + timedelta(days=3)


def test_the_per_member_limit_counts_every_claim(shopper):
    template = CouponTemplateFactory(per_member_limit=2)
    coupon_claim(member=shopper, template=template)
    coupon_claim(member=shopper, template=template)

    with pytest.raises(BusinessError) as refused:
        coupon_claim(member=shopper, template=template)

    assert (refused.value.code, refused.value.fields) == (
        "coupon_limit_reached",
        {"template": [str(template.pk)]},
    )
    assert _references(template) == [(shopper.pk, "claim:1"), (shopper.pk, "claim:2")]
    assert _issued(template) == 2


def test_the_last_coupon_goes_to_one_member_only(shopper):
    template = CouponTemplateFactory(total_quantity=3, issued_count=2)
    other = factories.MemberFactory()
    coupon_claim(member=other, template=template)

    with pytest.raises(BusinessError) as refused:
        coupon_claim(member=shopper, template=template)

    assert refused.value.code == "coupon_sold_out"
    assert _references(template) == [(other.pk, "claim:1")]
    assert _issued(template) == 3


@pytest.mark.parametrize(
    ("template", "code"),
    [
        ({"issued_by": IssuedBy.GRANT}, "coupon_not_claimable"),
        ({"issued_by": IssuedBy.BIRTHDAY}, "coupon_not_claimable"),
        ({"active": False}, "coupon_not_claimable"),
        ({"valid_from": NOON + timedelta(seconds=1)}, "coupon_not_started"),
        ({"valid_until": NOON}, "coupon_expired"),
    ],
)
def test_a_claim_outside_the_rules_is_refused_and_issues_nothing(shopper, template, code):
    template = CouponTemplateFactory(
        **{"valid_from": NOON - timedelta(days=1), "valid_until": NOON + timedelta(days=1)}
        | template
    )

    with pytest.raises(BusinessError) as refused:
        coupon_claim(member=shopper, template=template)

    assert refused.value.code == code
    assert Coupon.objects.count() == 0
    assert _issued(template) == 0


# --- Grant -------------------------------------------------------------------------------------


@pytest.fixture
def grantable():
    return CouponTemplateFactory(issued_by=IssuedBy.GRANT, total_quantity=10)


def test_a_grant_gives_one_coupon_to_each_member_of_a_tier_once(grantable, tier10, hq_user):
    gold = factories.MemberFactory.create_batch(2, tier=tier10)
    factories.MemberFactory()
    merged = factories.MemberFactory(tier=tier10, merged_into=gold[0])
    factories.MemberFactory(tier=tier10, erased_at=NOON)

    grant = coupon_grant(template=grantable, reference="双11", actor=hq_user, tier=tier10)
    again = coupon_grant(template=grantable, reference=" 双11 ", actor=hq_user, tier=tier10)

    assert again.pk == grant.pk
    assert (grant.segment, grant.issued, grant.actor) == ({"tier": "test10"}, 2, hq_user)
    assert _references(grantable) == [(gold[0].pk, "grant:双11"), (gold[1].pk, "grant:双11")]
    assert _issued(grantable) == 2
    assert not Coupon.objects.filter(member=merged).exists()


def test_a_grant_chooses_by_list_store_and_channel_together(grantable, shop, store_b, hq_user):
    chosen = factories.MemberFactory(home_store=shop, joined_channel="mini_shop")
    factories.MemberFactory(home_store=shop, joined_channel="counter")
    elsewhere = factories.MemberFactory(home_store=store_b, joined_channel="mini_shop")

    by_store = coupon_grant(
        template=grantable,
        reference="b1",
        actor=hq_user,
        home_store=shop,
        joined_channel="mini_shop",
    )
    by_list = coupon_grant(
        template=grantable, reference="b2", actor=hq_user, members=[elsewhere, chosen]
    )

    assert by_store.segment == {"home_store": "SH001", "joined_channel": "mini_shop"}
    assert by_list.segment == {"members": sorted([chosen.pk, elsewhere.pk])}
    assert _references(grantable) == [
        (chosen.pk, "grant:b1"),
        (chosen.pk, "grant:b2"),
        (elsewhere.pk, "grant:b2"),
    ]
    assert _issued(grantable) == 3


def test_a_grant_larger_than_what_is_left_issues_nothing(tier10, hq_user):
    template = CouponTemplateFactory(issued_by=IssuedBy.GRANT, total_quantity=2)
    factories.MemberFactory.create_batch(3, tier=tier10)

    with pytest.raises(BusinessError) as refused:
        coupon_grant(template=template, reference="b1", actor=hq_user, tier=tier10)

    assert refused.value.code == "coupon_sold_out"
    assert Coupon.objects.count() == CouponGrant.objects.count() == 0
    assert _issued(template) == 0


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"reference": "b1"}, "grant_needs_segment"),
        ({"reference": "", "joined_channel": "h5"}, "invalid_grant_reference"),
        ({"reference": "b1", "joined_channel": "partner"}, "grant_nobody"),
        ({"reference": "b1", "joined_channel": "h5", "claim": True}, "coupon_not_grantable"),
        ({"reference": "b1", "joined_channel": "h5", "ended": True}, "coupon_expired"),
    ],
)
def test_a_bad_grant_is_refused_and_issues_nothing(hq_user, kwargs, code):
    factories.MemberFactory(joined_channel="h5")
    template = CouponTemplateFactory(
        issued_by=IssuedBy.CLAIM if kwargs.pop("claim", False) else IssuedBy.GRANT,
        valid_until=NOON if kwargs.pop("ended", False) else NOON + timedelta(days=30),
    )

    with pytest.raises(BusinessError) as refused:
        coupon_grant(template=template, actor=hq_user, **kwargs)

    assert refused.value.code == code
    assert Coupon.objects.count() == CouponGrant.objects.count() == 0
    assert _issued(template) == 0


# --- Birthday and referral ---------------------------------------------------------------------


def test_birthday_coupons_once_a_year_to_the_members_born_today():
    template = CouponTemplateFactory(issued_by=IssuedBy.BIRTHDAY, valid_days=30)
    other = CouponTemplateFactory(issued_by=IssuedBy.BIRTHDAY, total_quantity=1)
    CouponTemplateFactory(issued_by=IssuedBy.BIRTHDAY, active=False)
    CouponTemplateFactory(issued_by=IssuedBy.CLAIM)
    born = [factories.MemberFactory(birthday=date(1990, 11, 25)) for _ in range(2)]
    factories.MemberFactory(birthday=date(1990, 11, 26))
    factories.MemberFactory(birthday=None)

    assert coupons_issue_birthday(today=date(2026, 11, 25)) == 3
    assert coupons_issue_birthday(today=date(2026, 11, 25)) == 0
    assert issue_birthday_coupons.delay().get() == 0

    assert _references(template) == [(born[0].pk, "birthday:2026"), (born[1].pk, "birthday:2026")]
    # The second template had one coupon left: the lowest member id got it.
    assert _references(other) == [(born[0].pk, "birthday:2026")]
    coupon = Coupon.objects.get(template=template, member=born[0])
    assert (coupon.valid_from, coupon.valid_until) == (NOON, NOON + timedelta(days=30))

    with time_machine.travel(NOON + timedelta(days=365), tick=False):
        assert coupons_issue_birthday(today=date(2027, 11, 25)) == 2
    assert _issued(template) == 4


def test_a_29_february_birthday_is_kept_on_the_28th_in_other_years():
    template = CouponTemplateFactory(
        issued_by=IssuedBy.BIRTHDAY, valid_from=datetime(2027, 1, 1, tzinfo=SHANGHAI)
    )
    leapling = factories.MemberFactory(birthday=date(2000, 2, 29))

    with time_machine.travel(datetime(2027, 2, 28, 9, tzinfo=SHANGHAI), tick=False):
        assert coupons_issue_birthday(today=date(2027, 2, 27)) == 0
        assert coupons_issue_birthday(today=date(2027, 2, 28)) == 1

    assert _references(template) == [(leapling.pk, "birthday:2027")]


def test_a_referral_reward_is_given_once_per_friend(shopper):
    template = CouponTemplateFactory(issued_by=IssuedBy.REFERRAL, amount_fen=1500)
    CouponTemplateFactory(issued_by=IssuedBy.REFERRAL, total_quantity=1, issued_count=1)
    friend, second_friend = factories.MemberFactory.create_batch(2)

    first = coupon_issue_referral(member=shopper, friend_id=friend.pk)
    again = coupon_issue_referral(member=shopper, friend_id=friend.pk)
    coupon_issue_referral(member=shopper, friend_id=second_friend.pk)

    assert [coupon.pk for coupon in again] == [coupon.pk for coupon in first]
    assert _references(template) == [
        (shopper.pk, f"referral:{friend.pk}"),
        (shopper.pk, f"referral:{second_friend.pk}"),
    ]
    assert Coupon.objects.count() == 2


# --- Selectors ---------------------------------------------------------------------------------


def test_a_members_usable_coupons(shopper, django_assert_num_queries):
    template = CouponTemplateFactory()
    usable, later, _used, _expired = (
        CouponFactory(template=template, member=shopper, issue_reference=f"claim:{n}", **fields)
        for n, fields in enumerate(
            [
                {"valid_until": NOON + timedelta(days=2)},
                {"valid_from": NOON + timedelta(hours=1)},
                {"status": "used"},
                {"valid_until": NOON},
            ]
        )
    )
    CouponFactory(template=template, member=factories.MemberFactory())

    with django_assert_num_queries(1):
        names = [(coupon.pk, coupon.template.name) for coupon in member_coupons(member=shopper)]
    usable_now = list(member_coupons(member=shopper, usable_at=NOON))

    assert len(names) == 4
    assert usable_now == [usable]
    assert later not in usable_now


def test_claimable_templates():
    open_one = CouponTemplateFactory()
    CouponTemplateFactory(total_quantity=5, issued_count=5)
    CouponTemplateFactory(active=False)
    CouponTemplateFactory(issued_by=IssuedBy.GRANT)
    CouponTemplateFactory(valid_from=NOON + timedelta(days=1))

    assert list(coupon_templates_claimable(now=NOON)) == [open_one]


# --- Checkout: spend, cancel, refuse -----------------------------------------------------------


@pytest.fixture
def place(shop, shopper, water, milk):
    """Pick up 3 × water and 2 × milk (31.00 yuan) at store A."""
    counter = iter(range(1, 1000))

    def _place(**kwargs) -> Order:
        kwargs.setdefault("member", shopper)
        kwargs.setdefault("channel", Channel.MINI_SHOP)
        kwargs.setdefault(
            "fulfilment",
            Fulfilment.COUNTER if kwargs["channel"] == Channel.COUNTER else Fulfilment.PICKUP,
        )
        kwargs.setdefault("client_reference", f"cart-{next(counter)}")
        return checkout_place(
            store=shop, lines=[BasketLine(water.pk, 3), BasketLine(milk.pk, 2)], **kwargs
        )

    return _place


def _balance(member: Member) -> int:
    return Member.objects.values_list("points_balance", flat=True).get(pk=member.pk)


def _coupon_state(coupon: Coupon) -> tuple:
    coupon.refresh_from_db()
    return coupon.status, coupon.order_reference, coupon.used_at


@pytest.fixture
def five_off(shopper):
    """5.00 off from 20.00, the shopper's."""
    template = CouponTemplateFactory(kind="threshold", threshold_fen=2000, amount_fen=500)
    return CouponFactory(template=template, member=shopper, code="FIVEOFF")


def test_checkout_spends_the_coupon_and_the_points_with_the_order(
    place, shop, water, shopper, five_off, give_points
):
    give_points(shopper, 2000)

    order = place(coupon_code=" fiveoff ", points_to_redeem=900)

    # 3100 - 500 (coupon: 97 on water, 403 on milk) = 2600; 900 points (≤ 1300) on 2600.
    assert (order.subtotal_fen, order.discount_fen, order.total_fen) == (3100, 1400, 1700)
    assert (order.coupon_code, order.points_redeemed) == ("FIVEOFF", 900)
    assert order.pricing == {
        "promotion_fen": 0,
        "tier_fen": 0,
        "coupon_fen": 500,
        "points_fen": 900,
        "shipping_discount_fen": 0,
    }
    assert list(order.lines.values_list("discount_fen", "total_fen")) == [
        (97 + 174, 600 - 271),
        (403 + 726, 2500 - 1129),
    ]
    assert _coupon_state(five_off) == ("used", order.number, NOON)
    assert _balance(shopper) == 1100
    assert PointsEntry.objects.filter(reason="redeem").values_list("reference", "points").get() == (
        order.number,
        -900,
    )


def test_cancelling_the_unpaid_order_gives_the_coupon_and_the_points_back(
    place, shop, water, shopper, five_off, give_points
):
    give_points(shopper, 2000)
    order = place(coupon_code="FIVEOFF", points_to_redeem=900)

    order_cancel(order=order, cause=Cause.SHOPPER)
    order_cancel(order=order, cause=Cause.SHOPPER)

    assert _coupon_state(five_off) == ("available", "", None)
    assert _balance(shopper) == 2000
    assert list(
        PointsEntry.objects.filter(reference=order.number)
        .order_by("pk")
        .values_list("reason", "points")
    ) == [("redeem", -900), ("redeem_restored", 900)]
    assert StockItem.objects.get(store=shop, sku=water).reserved == 0

    again = place(coupon_code="FIVEOFF")
    assert _coupon_state(five_off) == ("used", again.number, NOON)


def test_a_coupon_that_ran_out_while_its_order_waited_becomes_void(place, shopper):
    template = CouponTemplateFactory(valid_until=NOON + timedelta(minutes=10))
    coupon = CouponFactory(template=template, member=shopper)
    order = place(coupon_code=coupon.code)

    with time_machine.travel(NOON + timedelta(minutes=30), tick=False):
        assert orders_expire_unpaid() == 1

    assert _coupon_state(coupon) == ("void", order.number, NOON)
    order.refresh_from_db()
    assert order.status == "cancelled"


def test_a_repeated_checkout_spends_the_coupon_once(place, five_off):
    first = place(coupon_code="FIVEOFF", client_reference="tap")
    again = place(coupon_code="FIVEOFF", client_reference="tap")

    assert again.pk == first.pk
    assert _coupon_state(five_off) == ("used", first.number, NOON)


def test_a_counter_sale_uses_a_counter_coupon(place, shopper):
    template = CouponTemplateFactory(scope="counter", amount_fen=300)
    coupon = CouponFactory(template=template, member=shopper)

    order = place(channel=Channel.COUNTER, coupon_code=coupon.code)

    assert (order.channel, order.discount_fen, order.total_fen) == ("counter", 300, 2800)
    assert _coupon_state(coupon) == ("used", order.number, NOON)


def _refusal_setup(case: str, shopper, shop, store_b, water, milk):
    """A coupon of the shopper's that this pickup order (3 × water, 2 × milk, 31.00 at store A,
    in the mini-shop) may not use, and the code it is refused with."""
    window = {"valid_from": NOON - timedelta(days=1), "valid_until": NOON + timedelta(days=1)}
    template = CouponTemplateFactory(**window)
    coupon = {"template": template, "member": shopper, **window}
    if case == "coupon_not_found":
        return "NOSUCHCODE"
    if case == "coupon_not_yours":
        coupon["member"] = factories.MemberFactory()
    elif case == "coupon_used":
        coupon |= {"status": "used", "order_reference": "2611250000000001"}
    elif case == "coupon_expired":
        coupon["valid_until"] = NOON
    elif case == "coupon_expired_void":
        coupon["status"] = "void"
    elif case == "coupon_not_started":
        coupon["valid_from"] = NOON + timedelta(minutes=1)
    elif case == "coupon_wrong_channel":
        template.scope = "counter"
    elif case == "coupon_wrong_store":
        template.stores.set([store_b])
    elif case == "coupon_below_threshold":
        template.kind, template.threshold_fen = "threshold", 3101
    elif case == "coupon_no_eligible_items":
        template.skus.set([factories.SKUFactory()])
    elif case == "coupon_no_delivery_fee":
        template.kind = "free_shipping"
    template.save()
    return CouponFactory(**coupon).code


REFUSALS = [
    ("coupon_not_found", 404),
    ("coupon_not_yours", 409),
    ("coupon_used", 409),
    ("coupon_expired", 409),
    ("coupon_expired_void", 409),
    ("coupon_not_started", 409),
    ("coupon_wrong_channel", 409),
    ("coupon_wrong_store", 409),
    ("coupon_below_threshold", 409),
    ("coupon_no_eligible_items", 409),
    ("coupon_no_delivery_fee", 409),
]


@pytest.mark.parametrize(("case", "status_code"), REFUSALS, ids=[case for case, _ in REFUSALS])
def test_a_coupon_that_does_not_apply_is_refused_and_nothing_changes(
    place, shop, store_b, water, milk, shopper, give_points, case, status_code
):
    give_points(shopper, 1000)
    code = _refusal_setup(case, shopper, shop, store_b, water, milk)
    coupons_before = list(Coupon.objects.order_by("pk").values_list("status", "order_reference"))

    with pytest.raises(BusinessError) as refused:
        place(coupon_code=code, points_to_redeem=500)

    expected = case.removesuffix("_void")
    assert (refused.value.code, refused.value.status_code) == (expected, status_code)
    assert refused.value.fields == {"coupon_code": [code]}
    assert Order.objects.count() == Reservation.objects.count() == 0
    assert StockItem.objects.get(store=shop, sku=water).reserved == 0
    assert list(Coupon.objects.order_by("pk").values_list("status", "order_reference")) == (
        coupons_before
    )
    assert _balance(shopper) == 1000
    assert PointsEntry.objects.filter(member=shopper).count() == 1


def test_a_coupon_spent_between_pricing_and_placing_is_refused(five_off, shopper):
    """Two orders racing for one coupon: the guarded UPDATE lets the first through only."""
    coupon_redeem(coupon=five_off, member=shopper, order_reference="first", now=NOON)

    with pytest.raises(BusinessError) as refused:
        coupon_redeem(coupon=five_off, member=shopper, order_reference="second", now=NOON)

    assert refused.value.code == "coupon_used"
    assert _coupon_state(five_off) == ("used", "first", NOON)


# --- Admin -------------------------------------------------------------------------------------


def _browser(user) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def test_hq_reads_templates_coupons_and_promotions(hq_user, shopper, five_off):
    PromotionPriceFactory(price_fen=999)
    client = _browser(hq_user)

    pages = {
        name: client.get(reverse(f"admin:members_{name}_changelist"))
        for name in ["coupontemplate", "coupon", "coupongrant", "promotion"]
    }
    template_page = client.get(
        reverse("admin:members_coupontemplate_change", args=[five_off.template_id])
    )
    coupon_page = client.get(reverse("admin:members_coupon_change", args=[five_off.pk]))

    assert {name: page.status_code for name, page in pages.items()} == dict.fromkeys(pages, 200)
    assert [str(row) for row in pages["coupon"].context["cl"].result_list] == [str(five_off)]
    assert "¥20.00 → ¥5.00" in pages["coupontemplate"].content.decode()
    assert "0 / 100" in pages["coupontemplate"].content.decode()
    assert template_page.status_code == coupon_page.status_code == 200
    assert coupon_page.context["has_change_permission"] is False


def test_clerks_see_no_coupons(clerk_a):
    client = _browser(clerk_a)

    assert client.get(reverse("admin:members_coupontemplate_changelist")).status_code == 403
    assert client.get(reverse("admin:members_coupon_changelist")).status_code == 403


def test_staff_grant_a_template_from_its_page(hq_user, tier10):
    template = CouponTemplateFactory(issued_by=IssuedBy.GRANT, total_quantity=3)
    listed = factories.MemberFactory(mobile="13900000011")
    factories.MemberFactory.create_batch(2, tier=tier10)
    client = _browser(hq_user)
    grant_url = reverse("admin:members_coupontemplate_grant", args=[template.pk])

    unknown = client.post(grant_url, {"reference": "b1", "mobiles": "13900000099"})
    too_many = client.post(
        grant_url, {"reference": "b1", "mobiles": "13900000011", "tier": tier10.pk}
    )
    by_tier = client.post(grant_url, {"reference": "b2", "tier": tier10.pk}, follow=True)
    by_list = client.post(grant_url, {"reference": "b3", "mobiles": " 13900000011 \n"})

    assert unknown.status_code == too_many.status_code == 200
    assert unknown.context["form"].errors == {
        "mobiles": ["No member has these numbers: 13900000099"]
    }
    # The list and the tier together choose nobody: the grant is refused, the page stays.
    assert [str(m) for m in get_messages(too_many.wsgi_request)] == [
        "No member matches this choice."
    ]
    assert [str(m) for m in by_tier.context["messages"]] == ["Grant “b2”: 2 coupons issued."]
    assert by_list.status_code == 302
    grants = CouponGrant.objects.order_by("pk").values_list("reference", "issued", "actor")
    assert list(grants) == [("b2", 2, hq_user.pk), ("b3", 1, hq_user.pk)]
    assert _issued(template) == 3
    assert Coupon.objects.filter(member=listed).count() == 1


def test_the_grant_page_is_for_grant_templates_and_hq(hq_user, clerk_a, five_off):
    change = reverse("admin:members_coupontemplate_change", args=[five_off.template_id])
    grant_url = reverse("admin:members_coupontemplate_grant", args=[five_off.template_id])

    refused = _browser(hq_user).post(grant_url, {"reference": "b1", "mobiles": ""}, follow=True)
    clerk = _browser(clerk_a).get(grant_url)

    assert "Grant to members" not in _browser(hq_user).get(change).content.decode()
    assert [str(m) for m in refused.context["messages"]] == [
        "Choose the members: a list, a tier, a home store or a channel."
    ]
    assert clerk.status_code == 403
    assert CouponGrant.objects.count() == 0
