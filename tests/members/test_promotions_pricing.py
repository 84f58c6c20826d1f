"""The stacking rule, priced by the one pricing function: promotions, then the tier discount,
then one coupon, then points (docs/architecture.md, "Members and pricing").

Every case prices the same basket at store A: 3 × 矿泉水 (2.00), 2 × 鲜牛奶 (12.50) and
1 × 薯片 (8.90), 39.90 yuan in all, and states what each step takes off each line, in fen."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from members.models import CouponTemplate, Member
from orders.models import Channel, Fulfilment
from orders.pricing import BasketLine, Quote, price_basket
from retail.errors import BusinessError
from tests import factories
from tests.members.factories import (
    CouponFactory,
    CouponTemplateFactory,
    PromotionFactory,
    PromotionPriceFactory,
)

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
BASKET = (("water", 3), ("milk", 2), ("chips", 1))


@pytest.fixture(autouse=True)
def _noon():
    with time_machine.travel(NOON, tick=False):
        yield


# Promotions by name: each sets itself up on the basket's SKUs.
def _percent(percent: int, *names: str):
    def make(skus, store):
        promotion = PromotionFactory(percent_off=percent)
        promotion.products.set([skus[name].product for name in names])

    return make


def _member_price(name: str, price_fen: int):
    def make(skus, store):
        PromotionPriceFactory(sku=skus[name], price_fen=price_fen)

    return make


PROMOTIONS = {
    "milk 15% off": _percent(15, "milk"),
    "milk 10% off": _percent(10, "milk"),
    "milk member price 11.00": _member_price("milk", 1100),
    "water member price 1.50": _member_price("water", 150),
    "chips member price 9.00": _member_price("chips", 900),
}

COUPONS = {
    "spend 30 save 5": {"kind": "threshold", "threshold_fen": 3000, "amount_fen": 500},
    "spend 38 save 5": {"kind": "threshold", "threshold_fen": 3800, "amount_fen": 500},
    "20% off, at most 3.00": {"kind": "percent", "percent_off": 20, "cap_fen": 300},
    "20% off drinks, at most 3.00": {
        "kind": "percent",
        "percent_off": 20,
        "cap_fen": 300,
        "categories": ["drinks"],
    },
    "free delivery": {"kind": "free_shipping"},
}


@dataclass
class Case:
    name: str
    # What each line loses to (promotion, tier, coupon, points), then what it costs.
    water: tuple[int, int, int, int, int] = (0, 0, 0, 0, 600)
    milk: tuple[int, int, int, int, int] = (0, 0, 0, 0, 2500)
    chips: tuple[int, int, int, int, int] = (0, 0, 0, 0, 890)
    # Delivery fee paid, and what a coupon took off it.
    shipping: tuple[int, int] = (0, 0)
    total: int = 3990
    points_redeemed: int = 0
    promotions: list[str] = field(default_factory=list)
    tier: bool = False
    coupon: str = ""
    balance: int = 0
    points: int = 0
    fulfilment: str = Fulfilment.PICKUP
    refused: str = ""


CASES = [
    Case("nothing applies", total=3990),
    Case(
        "promotion only: 15% off milk, 187 fen a bottle",
        promotions=["milk 15% off"],
        milk=(374, 0, 0, 0, 2126),
        total=3616,
    ),
    Case(
        "the best promotion wins; a member price above the list price is none",
        promotions=[
            "milk 15% off",
            "milk 10% off",
            "milk member price 11.00",
            "water member price 1.50",
            "chips member price 9.00",
        ],
        water=(150, 0, 0, 0, 450),
        milk=(374, 0, 0, 0, 2126),
        total=3466,
    ),
    Case(
        "tier only: 10% off every line",
        tier=True,
        water=(0, 60, 0, 0, 540),
        milk=(0, 250, 0, 0, 2250),
        chips=(0, 89, 0, 0, 801),
        total=3591,
    ),
    Case(
        "promotion and tier on different lines: the promoted line gets no tier discount",
        promotions=["milk 15% off"],
        tier=True,
        water=(0, 60, 0, 0, 540),
        milk=(374, 0, 0, 0, 2126),
        chips=(0, 89, 0, 0, 801),
        total=3467,
    ),
    Case(
        "threshold coupon met (35.91 after the tier): 5.00 split by what each line costs",
        tier=True,
        coupon="spend 30 save 5",
        water=(0, 60, 75, 0, 465),
        milk=(0, 250, 313, 0, 1937),
        chips=(0, 89, 112, 0, 689),
        total=3091,
    ),
    Case(
        "threshold coupon not met: 39.90 before the tier, 35.91 after it, 38.00 needed",
        tier=True,
        coupon="spend 38 save 5",
        refused="coupon_below_threshold",
    ),
    Case(
        "percentage coupon: 20% of 39.90 is 7.98, capped at 3.00",
        coupon="20% off, at most 3.00",
        water=(0, 0, 45, 0, 555),
        milk=(0, 0, 188, 0, 2312),
        chips=(0, 0, 67, 0, 823),
        total=3690,
    ),
    Case(
        "coupon scoped to a parent category covers the products below it only",
        coupon="20% off drinks, at most 3.00",
        water=(0, 0, 120, 0, 480),
        total=3870,
    ),
    Case(
        "free delivery coupon: the tier brings the goods under 39.00, so delivery costs 6.00",
        tier=True,
        coupon="free delivery",
        fulfilment=Fulfilment.DELIVERY,
        water=(0, 60, 0, 0, 540),
        milk=(0, 250, 0, 0, 2250),
        chips=(0, 89, 0, 0, 801),
        shipping=(0, 600),
        total=3591,
    ),
    Case(
        "no coupon: the same basket pays the delivery fee",
        tier=True,
        fulfilment=Fulfilment.DELIVERY,
        water=(0, 60, 0, 0, 540),
        milk=(0, 250, 0, 0, 2250),
        chips=(0, 89, 0, 0, 801),
        shipping=(600, 0),
        total=4191,
    ),
    Case(
        "points capped at 50% of the goods: 5000 asked, 1995 used",
        balance=5000,
        points=5000,
        water=(0, 0, 0, 300, 300),
        milk=(0, 0, 0, 1250, 1250),
        chips=(0, 0, 0, 445, 445),
        points_redeemed=1995,
        total=1995,
    ),
    Case(
        "points limited by the balance, never by delivery",
        balance=800,
        points=5000,
        fulfilment=Fulfilment.DELIVERY,
        water=(0, 0, 0, 120, 480),
        milk=(0, 0, 0, 501, 1999),
        chips=(0, 0, 0, 179, 711),
        points_redeemed=800,
        total=3190,
    ),
    Case(
        "all four: promotion, tier, coupon on 34.67, points on half of 29.67",
        promotions=["milk 15% off"],
        tier=True,
        coupon="spend 30 save 5",
        balance=5000,
        points=2000,
        water=(0, 60, 78, 231, 231),
        milk=(374, 0, 307, 909, 910),
        chips=(0, 89, 115, 343, 343),
        points_redeemed=1483,
        total=1484,
    ),
]


@pytest.fixture
def skus(water, milk, chips):
    return {"water": water, "milk": milk, "chips": chips}


def _basket(skus) -> list[BasketLine]:
    return [BasketLine(skus[name].pk, quantity) for name, quantity in BASKET]


def _coupon(name: str, member: Member, *, drinks) -> str:
    spec = {"amount_fen": 0, **COUPONS[name]}
    categories = spec.pop("categories", [])
    template = CouponTemplateFactory(name=name, **spec)
    if categories:
        template.categories.set([drinks])
    return CouponFactory(template=template, member=member, code="STACK").code


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_stacking_table(case, shop, skus, drinks, shopper, tier10, give_points):
    for name in case.promotions:
        PROMOTIONS[name](skus, shop)
    if case.tier:
        shopper.tier = tier10
        shopper.save(update_fields=["tier"])
    if case.balance:
        give_points(shopper, case.balance)
    code = _coupon(case.coupon, shopper, drinks=drinks) if case.coupon else ""

    def price() -> Quote:
        return price_basket(
            store=shop,
            lines=_basket(skus),
            fulfilment=case.fulfilment,
            channel=Channel.MINI_SHOP,
            member=shopper,
            coupon_code=code,
            points_to_redeem=case.points,
        )

    if case.refused:
        with pytest.raises(BusinessError) as refused:
            price()
        assert (refused.value.code, refused.value.fields) == (case.refused, {"coupon_code": [code]})
        return
    quote = price()

    by_line = [
        (line.promotion_fen, line.tier_fen, line.coupon_fen, line.points_fen, line.total_fen)
        for line in quote.lines
    ]
    assert by_line == [case.water, case.milk, case.chips]
    assert (quote.shipping_fen, quote.shipping_discount_fen) == case.shipping
    assert (quote.subtotal_fen, quote.total_fen, quote.points_redeemed) == (
        3990,
        case.total,
        case.points_redeemed,
    )
    columns = list(zip(case.water, case.milk, case.chips, strict=True))
    assert quote.breakdown == {
        "promotion_fen": sum(columns[0]),
        "tier_fen": sum(columns[1]),
        "coupon_fen": sum(columns[2]),
        "points_fen": sum(columns[3]),
        "shipping_discount_fen": case.shipping[1],
    }
    assert quote.discount_fen == 3990 - sum(columns[4])
    assert quote.total_fen == sum(columns[4]) + case.shipping[0]
    assert (quote.coupon.code if quote.coupon else "") == code


# --- Promotions: channel, store, time -----------------------------------------------------------


def _milk_price(shop, milk, *, channel=Channel.MINI_SHOP, member=None) -> int:
    quote = price_basket(
        store=shop,
        lines=[BasketLine(milk.pk, 1)],
        fulfilment=Fulfilment.COUNTER if channel == Channel.COUNTER else Fulfilment.PICKUP,
        channel=channel,
        member=member,
    )
    return quote.lines[0].total_fen


@pytest.mark.parametrize(
    ("promotion", "online", "counter"),
    [
        ({"scope": "all"}, 1000, 1000),
        ({"scope": "online"}, 1000, 1250),
        ({"scope": "counter"}, 1250, 1000),
        ({"active": False}, 1250, 1250),
        ({"starts_at": NOON + timedelta(seconds=1)}, 1250, 1250),
        ({"ends_at": NOON}, 1250, 1250),
        ({"starts_at": NOON, "ends_at": NOON + timedelta(seconds=1)}, 1000, 1000),
    ],
    ids=["all", "online", "counter", "inactive", "not started", "ended", "just started"],
)
def test_a_promotion_applies_in_its_channels_and_time_only(
    shop, milk, shopper, promotion, online, counter
):
    PromotionFactory(percent_off=20, **promotion).products.set([milk.product])

    assert _milk_price(shop, milk, member=shopper) == online
    assert _milk_price(shop, milk, channel=Channel.COUNTER) == counter
    assert _milk_price(shop, milk, channel=Channel.H5, member=shopper) == online


def test_a_promotion_for_some_stores_applies_there_only(shop, store_b, milk, shopper):
    PromotionFactory(percent_off=20).products.set([milk.product])
    elsewhere = PromotionFactory(percent_off=40)
    elsewhere.products.set([milk.product])
    elsewhere.stores.set([store_b])

    assert _milk_price(shop, milk, member=shopper) == 1000

    elsewhere.stores.add(shop)
    assert _milk_price(shop, milk, member=shopper) == 750


def test_member_prices_need_a_member(shop, milk, shopper):
    PromotionPriceFactory(sku=milk, price_fen=999)

    assert _milk_price(shop, milk, member=shopper) == 999
    assert _milk_price(shop, milk, channel=Channel.COUNTER, member=shopper) == 999
    assert _milk_price(shop, milk, channel=Channel.COUNTER, member=None) == 1250


def test_the_counter_prices_by_the_same_rule(shop, skus, shopper, tier10):
    """A counter sale to a member: promotion, tier and a counter coupon, as online."""
    PROMOTIONS["milk 15% off"](skus, shop)
    shopper.tier = tier10
    shopper.save(update_fields=["tier"])
    template = CouponTemplateFactory(scope="counter", amount_fen=300)
    code = CouponFactory(template=template, member=shopper).code

    quote = price_basket(
        store=shop,
        lines=_basket(skus),
        fulfilment=Fulfilment.COUNTER,
        channel=Channel.COUNTER,
        member=shopper,
        coupon_code=code,
    )

    # 540 + 2126 + 801 = 3467 before the coupon; 300 split 47 / 184 / 69.
    assert [(line.tier_fen, line.promotion_fen, line.coupon_fen) for line in quote.lines] == [
        (60, 0, 47),
        (0, 374, 184),
        (89, 0, 69),
    ]
    assert (quote.discount_fen, quote.total_fen) == (823, 3167)


# --- Points input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "points", "code"),
    [(True, -1, "invalid_points"), (False, 100, "member_required")],
)
def test_bad_points_are_refused(shop, water, shopper, member, points, code):
    with pytest.raises(BusinessError) as refused:
        price_basket(
            store=shop,
            lines=[BasketLine(water.pk, 1)],
            fulfilment=Fulfilment.PICKUP,
            channel=Channel.MINI_SHOP,
            member=shopper if member else None,
            points_to_redeem=points,
        )

    assert (refused.value.code, refused.value.status_code) == (code, 400)


# --- Query count -------------------------------------------------------------------------------


def test_pricing_costs_the_same_queries_for_two_lines_and_ten(
    shop, drinks, shopper, tier10, give_points
):
    """A member with a tier and points, a coupon scoped by category, a percentage and a member
    price promotion, delivery: seven queries whatever the basket."""
    skus = factories.SKUFactory.create_batch(10, price_fen=1000, product__category=drinks)
    PromotionFactory(percent_off=10).products.set([skus[0].product, skus[5].product])
    PromotionPriceFactory(sku=skus[1], price_fen=800)
    PromotionPriceFactory(sku=skus[9], price_fen=700)
    shopper.tier = tier10
    shopper.save(update_fields=["tier"])
    give_points(shopper, 1000)
    template = CouponTemplateFactory(kind=CouponTemplate.Kind.PERCENT, percent_off=10)
    template.categories.set([drinks])
    code = CouponFactory(template=template, member=shopper).code

    def price(count: int, store, member) -> Quote:
        return price_basket(
            store=store,
            lines=[BasketLine(sku.pk, 1) for sku in skus[:count]],
            fulfilment=Fulfilment.DELIVERY,
            channel=Channel.MINI_SHOP,
            member=member,
            coupon_code=code,
            points_to_redeem=200,
        )

    # As requests would: the member and the store read afresh, nothing cached on them.
    stores = [type(shop).objects.get(pk=shop.pk) for _ in range(2)]
    members = [Member.objects.get(pk=shopper.pk) for _ in range(2)]
    with CaptureQueriesContext(connection) as two:
        quote_two = price(2, stores[0], members[0])
    with CaptureQueriesContext(connection) as ten:
        quote_ten = price(10, stores[1], members[1])

    # SKUs with products; the coupon with its template; its scope (stores, categories, SKUs in
    # one UNION); the category tree; promotions (percentages and member prices in one UNION);
    # the member's tier; the store's shipping rule.
    assert len(two) == len(ten) == 7
    # Two lines: 900 (promotion) + 800 (member price) = 1700; coupon 170; 200 points.
    assert (quote_two.subtotal_fen, quote_two.discount_fen, quote_two.shipping_fen) == (
        2000,
        300 + 170 + 200,
        600,
    )
    # Ten: 900 + 800 + 900 + 700 + 6 × 900 (tier) = 8700; coupon 870; 200 points.
    assert (quote_ten.discount_fen, quote_ten.total_fen) == (1300 + 870 + 200, 7630)


# --- What the order keeps ----------------------------------------------------------------------

BREAKDOWN = {
    "promotion_fen": 100,
    "tier_fen": 50,
    "coupon_fen": 30,
    "points_fen": 20,
    "shipping_discount_fen": 600,
}


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"discount_fen": 199, "total_fen": 801}, "order_discount_is_its_breakdown"),
        ({"points_redeemed": -1}, "order_points_redeemed_gte_0"),
        (
            {"subtotal_fen": 150, "total_fen": 550, "shipping_fen": 600},
            "order_discount_lte_goods",
        ),
    ],
)
def test_the_database_keeps_the_discount_equal_to_its_breakdown(shop, fields, constraint):
    order = {"store": shop, "subtotal_fen": 1000, "discount_fen": 200, "total_fen": 800}
    factories.OrderFactory(pricing=BREAKDOWN, **order)

    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        factories.OrderFactory(pricing=BREAKDOWN, **(order | fields))

    assert constraint in str(refused.value)
    # Orders priced before the breakdown existed have none, and pass.
    factories.OrderFactory(pricing={}, **order)
