"""Coupons under real concurrency on PostgreSQL: threads with connections of their own claim
the last coupons of a template, one member claims past her limit, two grants of one batch
arrive together, and checkouts race for one coupon. SQLite serialises every writer on one file
lock, so a race there proves nothing."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from inventory.models import StockItem
from inventory.services import StockLine, stock_receive
from members.models import Coupon, CouponGrant, CouponTemplate
from members.services.coupons import coupon_claim, coupon_grant
from orders.models import Channel, Fulfilment, Order
from orders.pricing import BasketLine
from orders.services import checkout_place
from tests.factories import MemberFactory, SKUFactory, UserFactory
from tests.inventory.test_concurrency import WON, race, tally
from tests.members.factories import CouponFactory, CouponTemplateFactory

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: set DATABASE_URL (.ci/run does)",
    ),
    pytest.mark.django_db(transaction=True),
]

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def _template(**fields) -> CouponTemplate:
    return CouponTemplateFactory(valid_from=NOW.replace(month=1), **fields)


def test_a_hundred_claims_for_the_last_ten_coupons_issue_exactly_ten():
    template = _template(total_quantity=110, issued_count=100)
    members = MemberFactory.create_batch(100)

    outcomes = race(
        [
            lambda member=member: coupon_claim(member=member, template=template.pk, now=NOW).pk
            for member in members
        ]
    )

    assert tally(outcomes) == {WON: 10, "coupon_sold_out": 90}
    template.refresh_from_db()
    assert template.issued_count == template.total_quantity == 110
    assert Coupon.objects.filter(template=template).count() == 10
    winners = {members[index].pk for index, (kind, _id) in enumerate(outcomes) if kind == WON}
    assert set(Coupon.objects.values_list("member_id", flat=True)) == winners


def test_one_member_claiming_twenty_times_at_once_gets_her_limit():
    template = _template(total_quantity=100, per_member_limit=3)
    member = MemberFactory()

    outcomes = race([lambda: coupon_claim(member=member, template=template.pk, now=NOW).pk] * 20)

    assert tally(outcomes) == {WON: 3, "coupon_limit_reached": 17}
    assert sorted(Coupon.objects.values_list("issue_reference", flat=True)) == [
        "claim:1",
        "claim:2",
        "claim:3",
    ]
    template.refresh_from_db()
    assert template.issued_count == 3


def test_the_same_grant_submitted_ten_times_at_once_issues_once():
    template = _template(issued_by=CouponTemplate.IssuedBy.GRANT, total_quantity=100)
    MemberFactory.create_batch(5, joined_channel="h5")
    staff = UserFactory()

    def grant():
        return coupon_grant(
            template=template.pk, reference="双12", actor=staff, joined_channel="h5", now=NOW
        ).pk

    outcomes = race([grant] * 10)

    assert tally(outcomes) == {WON: 10}
    assert len({grant_id for _kind, grant_id in outcomes}) == 1
    assert CouponGrant.objects.count() == 1
    assert Coupon.objects.count() == 5
    template.refresh_from_db()
    assert template.issued_count == 5


def test_checkouts_racing_for_one_coupon_place_one_order(store_a):
    water = SKUFactory(price_fen=500)
    stock_receive(store=store_a, lines=[StockLine(water, 100)], idempotency_key="seed")
    member = MemberFactory()
    coupon = CouponFactory(template=_template(amount_fen=100), member=member)

    def checkout(reference: str):
        return lambda: (
            checkout_place(
                channel=Channel.MINI_SHOP,
                store=store_a,
                fulfilment=Fulfilment.PICKUP,
                lines=[BasketLine(water.pk, 2)],
                client_reference=reference,
                member=member,
                coupon_code=coupon.code,
            ).number
        )

    outcomes = race([checkout(f"cart-{n}") for n in range(10)])

    assert tally(outcomes) == {WON: 1, "coupon_used": 9}
    [number] = [number for kind, number in outcomes if kind == WON]
    assert list(Order.objects.values_list("number", "total_fen")) == [(number, 900)]
    coupon.refresh_from_db()
    assert (coupon.status, coupon.order_reference) == ("used", number)
    assert StockItem.objects.get(sku=water).reserved == 2
