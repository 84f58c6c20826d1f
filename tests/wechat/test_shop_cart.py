"""The shopper's cart and checkout through the shop API: the server-side cart with stock at the
chosen store and a price preview (an exact query count, however many lines), the checkout
preview's full breakdown with nothing held, and placing an order from the cart, whose every
refusal (stock, coupon, points, store, address) holds, spends and removes nothing.

Store A (SH001 静安寺店) sells 矿泉水 at 2.00 (10 on hand) and 鲜牛奶 at 12.50 (4 on hand);
鲜牛奶 is 10% off. 林小美 is a silver member (5% off lines without a promotion)."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from inventory.models import Reservation, StockItem
from members.models import Coupon, PointsEntry, Tier
from members.services.coupons import coupon_claim
from members.services.points import points_apply
from orders.models import Order, OrderEvent
from retail.models import Store
from tests import factories
from tests.members.factories import CouponTemplateFactory, PromotionFactory
from wechat.models import Address, Cart, CartLine

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)
AT = "2026-11-25T10:00:00+08:00"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def silver(lina):
    lina.tier = Tier.objects.get(code="silver")
    lina.save(update_fields=["tier"])
    return lina


@pytest.fixture
def water(stocked):
    return stocked(name="矿泉水", price_fen=200, on_hand=10)


@pytest.fixture
def milk(stocked):
    milk = stocked(name="鲜牛奶", price_fen=1250, on_hand=4)
    PromotionFactory(percent_off=10).products.set([milk.product])
    return milk


@pytest.fixture
def me(shop_api, silver):
    return shop_api(silver)


@pytest.fixture
def filled(me, shop_store, water, milk):
    """The cart at store A with 3 × 矿泉水 and 2 × 鲜牛奶."""
    assert me.put("cart/store/", {"store": shop_store.pk}).status_code == 200
    assert me.put(f"cart/lines/{water.pk}/", {"quantity": 3}).status_code == 200
    assert me.put(f"cart/lines/{milk.pk}/", {"quantity": 2}).status_code == 200
    return me


def error(response) -> tuple:
    body = response.json()["error"]
    return response.status_code, body["code"], body["fields"]


def cart_rows(member) -> list[tuple[int, int]]:
    return list(
        CartLine.objects.filter(cart__member=member)
        .order_by("pk")
        .values_list("sku_id", "quantity")
    )


def held(store) -> list[tuple[int, int, int]]:
    return list(
        StockItem.objects.filter(store=store)
        .order_by("sku_id")
        .values_list("sku_id", "on_hand", "reserved")
    )


def sku_json(sku, name: str, sellable: bool = True) -> dict:
    return {
        "id": sku.pk,
        "code": sku.code,
        "product_name": name,
        "attributes": {"规格": "550ml"},
        "unit": "瓶",
        "price_fen": sku.price_fen,
        "sellable": sellable,
    }


STORE_A = {
    "code": "SH001",
    "name": "静安寺店",
    "address": "上海市上海市静安区南京西路1618号",
    "phone": "",
}


def quote_line(sku, name, quantity, unit, promotion=0, tier=0, coupon=0, points=0) -> dict:
    discount = promotion + tier + coupon + points
    return {
        "sku_id": sku.pk,
        "sku_code": sku.code,
        "product_name": name,
        "attributes": {"规格": "550ml"},
        "quantity": quantity,
        "unit_price_fen": unit,
        "promotion_fen": promotion,
        "tier_fen": tier,
        "coupon_fen": coupon,
        "points_fen": points,
        "discount_fen": discount,
        "total_fen": unit * quantity - discount,
    }


# --- The cart -------------------------------------------------------------------------------


def test_a_shopper_without_a_cart_sees_an_empty_one_and_nothing_is_created(me, silver):
    response = me.get("cart/")

    assert response.status_code == 200
    assert response.json() == {
        "store": None,
        "fulfilment": "pickup",
        "lines": [],
        "units": 0,
        "price": None,
    }
    assert Cart.objects.count() == 0


def test_the_cart_shows_stock_at_the_chosen_store_and_prices_by_the_stacking_rule(
    filled, shop_store, water, milk
):
    response = filled.get("cart/")

    assert response.status_code == 200
    assert response.json() == {
        "store": {"id": shop_store.pk, **STORE_A},
        "fulfilment": "pickup",
        "lines": [
            {
                "sku": sku_json(water, "矿泉水"),
                "quantity": 3,
                "available": 10,
                "enough": True,
                "added_at": AT,
            },
            {
                "sku": sku_json(milk, "鲜牛奶"),
                "quantity": 2,
                "available": 4,
                "enough": True,
                "added_at": AT,
            },
        ],
        "units": 5,
        # 矿泉水 6.00 less 5% (silver) = 5.70; 鲜牛奶 25.00 less 10% (promotion) = 22.50.
        "price": {
            "subtotal_fen": 3100,
            "promotion_fen": 250,
            "tier_fen": 30,
            "coupon_fen": 0,
            "points_fen": 0,
            "discount_fen": 280,
            "shipping_fen": 0,
            "shipping_discount_fen": 0,
            "total_fen": 2820,
            "coupon_code": "",
            "points_redeemed": 0,
            "lines": [
                quote_line(water, "矿泉水", 3, 200, tier=30),
                quote_line(milk, "鲜牛奶", 2, 1250, promotion=250),
            ],
        },
    }


def test_the_cart_priced_for_delivery_adds_the_fee_below_the_free_delivery_amount(filled):
    response = filled.get("cart/", {"fulfilment": "delivery"})

    price = response.json()["price"]
    assert (price["subtotal_fen"], price["discount_fen"], price["shipping_fen"]) == (3100, 280, 600)
    assert price["total_fen"] == 3420


def test_a_line_beyond_the_stores_stock_is_shown_short(me, shop_store, milk):
    me.put("cart/store/", {"store": shop_store.pk})

    response = me.put(f"cart/lines/{milk.pk}/", {"quantity": 5})

    assert response.status_code == 200
    [line] = response.json()["lines"]
    assert (line["quantity"], line["available"], line["enough"]) == (5, 4, False)


def test_without_a_store_the_cart_has_lines_but_no_stock_or_price(me, silver, water):
    response = me.put(f"cart/lines/{water.pk}/", {"quantity": 2})

    assert response.status_code == 200
    body = response.json()
    assert body["store"] is None and body["price"] is None
    assert [(line["quantity"], line["available"], line["enough"]) for line in body["lines"]] == [
        (2, None, None)
    ]


def test_setting_a_quantity_replaces_it_and_zero_removes_the_line(filled, silver, water, milk):
    filled.put(f"cart/lines/{water.pk}/", {"quantity": 7})
    assert cart_rows(silver) == [(water.pk, 7), (milk.pk, 2)]

    response = filled.put(f"cart/lines/{water.pk}/", {"quantity": 0})

    assert response.status_code == 200
    assert cart_rows(silver) == [(milk.pk, 2)]
    assert [line["sku"]["id"] for line in response.json()["lines"]] == [milk.pk]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (1000, (400, "invalid_quantity", {"quantity": ["1000"]})),
        (-1, (400, "invalid_quantity", {"quantity": ["-1"]})),
        ("two", (400, "validation_error", {"quantity": ["A valid integer is required."]})),
    ],
)
def test_a_bad_quantity_is_refused_and_the_cart_stays(
    filled, silver, water, milk, quantity, expected
):
    response = filled.put(f"cart/lines/{water.pk}/", {"quantity": quantity})

    assert error(response) == expected
    assert cart_rows(silver) == [(water.pk, 3), (milk.pk, 2)]


def test_an_unknown_sku_is_a_404(filled, silver, water, milk):
    response = filled.put("cart/lines/999999/", {"quantity": 1})

    assert error(response) == (404, "sku_not_found", {"sku": ["999999"]})
    assert cart_rows(silver) == [(water.pk, 3), (milk.pk, 2)]


def test_a_sku_no_longer_sold_cannot_be_added_or_raised_but_can_be_lowered(filled, silver, milk):
    milk.product.active = False
    milk.product.save(update_fields=["active"])

    raised = filled.put(f"cart/lines/{milk.pk}/", {"quantity": 3})
    lowered = filled.put(f"cart/lines/{milk.pk}/", {"quantity": 1})

    assert error(raised) == (409, "sku_unavailable", {"sku": [str(milk.pk)]})
    assert lowered.status_code == 200
    [_water, line] = lowered.json()["lines"]
    assert (line["quantity"], line["sku"]["sellable"]) == (1, False)
    # Priced without it: only the water is left to sell.
    assert lowered.json()["price"]["subtotal_fen"] == 600


def test_a_cart_holds_at_most_the_order_line_limit(filled, silver, water, milk, stocked, settings):
    settings.ORDER_MAX_LINES = 2
    chips = stocked(name="薯片", price_fen=890, on_hand=5)

    response = filled.put(f"cart/lines/{chips.pk}/", {"quantity": 1})

    assert error(response) == (409, "cart_full", {"sku": [str(chips.pk)]})
    assert cart_rows(silver) == [(water.pk, 3), (milk.pk, 2)]


def test_choosing_a_store_that_does_not_exist_or_is_a_warehouse_is_a_404(
    filled, silver, shop_store
):
    warehouse = factories.StoreFactory(
        kind=Store.Kind.WAREHOUSE, offers_pickup=False, offers_counter_sales=False
    )
    closed = factories.StoreFactory(active=False)

    answers = [
        filled.put("cart/store/", {"store": store}) for store in (999999, warehouse.pk, closed.pk)
    ]

    assert [error(answer) for answer in answers] == [
        (404, "store_not_found", {"store": ["999999"]}),
        (404, "store_not_found", {"store": [str(warehouse.pk)]}),
        (404, "store_not_found", {"store": [str(closed.pk)]}),
    ]
    assert Cart.objects.get(member=silver).store == shop_store


def test_emptying_the_cart_keeps_the_store(filled, silver, shop_store):
    response = filled.delete("cart/")

    assert response.status_code == 200
    assert response.json()["lines"] == [] and response.json()["store"]["id"] == shop_store.pk
    assert cart_rows(silver) == []


def test_the_cart_needs_a_valid_token(client, filled):
    anonymous = client.get("/api/shop/v1/cart/", HTTP_ACCEPT_LANGUAGE="en")
    forged = client.get(
        "/api/shop/v1/cart/", HTTP_AUTHORIZATION="Bearer forged", HTTP_ACCEPT_LANGUAGE="en"
    )

    assert error(anonymous)[:2] == (401, "not_authenticated")
    assert error(forged)[:2] == (401, "token_invalid")


def test_one_shoppers_cart_is_not_anothers(filled, shop_api):
    other = shop_api(factories.MemberFactory())

    assert other.get("cart/").json()["lines"] == []


def test_the_cart_costs_the_same_queries_for_two_lines_and_twelve(
    filled, silver, stocked, django_assert_num_queries
):
    # The token, the cart and its store, its lines with SKUs and products, the store's stock
    # of them, then pricing: SKUs and promotions.
    with django_assert_num_queries(6):
        assert len(filled.get("cart/").json()["lines"]) == 2
    for number in range(10):
        sku = stocked(name=f"商品{number}", price_fen=100 + number, on_hand=3)
        filled.put(f"cart/lines/{sku.pk}/", {"quantity": 1})

    with django_assert_num_queries(6):
        assert len(filled.get("cart/").json()["lines"]) == 12


# --- Checkout: preview and place ------------------------------------------------------------

ADDRESS = {
    "name": "林小美",
    "mobile": "13800138001",
    "province": "上海市",
    "city": "上海市",
    "district": "静安区",
    "detail": "愚园路168号5楼",
}


@pytest.fixture
def home(silver):
    return Address.objects.create(member=silver, is_default=True, **ADDRESS)


@pytest.fixture
def ten_off(silver):
    """Her 10-yuan-off coupon, claimed."""
    return coupon_claim(member=silver, template=CouponTemplateFactory(amount_fen=1000))


@pytest.fixture
def points(silver):
    points_apply(member=silver, points=1000, reason="adjust", reference="seed")
    silver.refresh_from_db()
    return 1000


def books(member, store) -> tuple:
    """Everything checkout could change, to show that a refused one changed nothing."""
    member.refresh_from_db()
    return (
        Order.objects.count(),
        OrderEvent.objects.count(),
        Reservation.objects.count(),
        held(store),
        cart_rows(member),
        list(Coupon.objects.order_by("pk").values_list("status", flat=True)),
        member.points_balance,
        PointsEntry.objects.count(),
    )


def test_the_preview_gives_the_full_breakdown_and_holds_and_spends_nothing(
    filled, silver, shop_store, water, milk, home, ten_off, points
):
    before = books(silver, shop_store)
    asked = {
        "fulfilment": "delivery",
        "address_id": home.pk,
        "coupon_code": ten_off.code,
        "points": 500,
    }

    response = filled.post("checkout/preview/", asked)

    assert response.status_code == 200
    assert response.json() == {
        "fulfilment": "delivery",
        "store": {"id": shop_store.pk, **STORE_A},
        "address": {
            "id": home.pk,
            **ADDRESS,
            "latitude": None,
            "longitude": None,
            "is_default": True,
            "updated_at": AT,
        },
        "points_requested": 500,
        # After promotion and tier (28.20), the coupon's 10.00 is split 2.02 / 7.98 by what
        # each line costs, then 500 points (5.00, under half of 18.20) 1.01 / 3.99. Goods
        # after the coupon (18.20) stay under 39.00: delivery costs 6.00.
        "price": {
            "subtotal_fen": 3100,
            "promotion_fen": 250,
            "tier_fen": 30,
            "coupon_fen": 1000,
            "points_fen": 500,
            "discount_fen": 1780,
            "shipping_fen": 600,
            "shipping_discount_fen": 0,
            "total_fen": 1920,
            "coupon_code": ten_off.code,
            "points_redeemed": 500,
            "lines": [
                quote_line(water, "矿泉水", 3, 200, tier=30, coupon=202, points=101),
                quote_line(milk, "鲜牛奶", 2, 1250, promotion=250, coupon=798, points=399),
            ],
        },
        "availability": [
            {"sku_id": water.pk, "quantity": 3, "available": 10, "enough": True},
            {"sku_id": milk.pk, "quantity": 2, "available": 4, "enough": True},
        ],
        "all_available": True,
    }
    assert books(silver, shop_store) == before


def test_the_preview_uses_no_more_points_than_the_rules_allow_and_says_so(filled, milk, points):
    filled.put(f"cart/lines/{milk.pk}/", {"quantity": 0})

    response = filled.post("checkout/preview/", {"fulfilment": "pickup", "points": 1000})

    # Points pay at most half of the goods after discounts: 3 × 矿泉水 at 5.70 takes 285.
    body = response.json()
    assert (body["points_requested"], body["price"]["points_redeemed"]) == (1000, 285)
    assert body["price"]["total_fen"] == 570 - 285


def test_the_preview_shows_a_short_line_rather_than_refusing(me, shop_store, milk):
    me.put("cart/store/", {"store": shop_store.pk})
    me.put(f"cart/lines/{milk.pk}/", {"quantity": 5})

    response = me.post("checkout/preview/", {"fulfilment": "pickup"})

    assert response.status_code == 200
    assert response.json()["availability"] == [
        {"sku_id": milk.pk, "quantity": 5, "available": 4, "enough": False}
    ]
    assert response.json()["all_available"] is False


def test_placing_the_order_holds_the_stock_spends_coupon_and_points_and_empties_the_cart(
    filled, silver, shop_store, water, milk, home, ten_off, points
):
    asked = {
        "fulfilment": "delivery",
        "address_id": home.pk,
        "coupon_code": ten_off.code,
        "points": 500,
        "client_reference": "wx-7f3a",
        "note": "放门口",
    }

    response = filled.post("checkout/", asked)

    assert response.status_code == 201
    body = response.json()
    order = Order.objects.get()
    assert (body["number"], body["status"], body["channel"], body["fulfilment"]) == (
        order.number,
        "pending_payment",
        "mini_shop",
        "delivery",
    )
    assert (
        body["subtotal_fen"],
        body["discount_fen"],
        body["shipping_fen"],
        body["total_fen"],
    ) == (
        3100,
        1780,
        600,
        1920,
    )
    assert body["pricing"] == {
        "promotion_fen": 250,
        "tier_fen": 30,
        "coupon_fen": 1000,
        "points_fen": 500,
        "shipping_discount_fen": 0,
    }
    assert (body["coupon_code"], body["points_redeemed"], body["note"]) == (
        ten_off.code,
        500,
        "放门口",
    )
    assert body["address"] == ADDRESS
    assert [(line["sku_id"], line["quantity"], line["total_fen"]) for line in body["lines"]] == [
        (water.pk, 3, 600 - 30 - 202 - 101),
        (milk.pk, 2, 2500 - 250 - 798 - 399),
    ]
    assert [event["kind"] for event in body["timeline"]] == ["order.created"]
    assert held(shop_store) == [(water.pk, 10, 3), (milk.pk, 4, 2)]
    assert cart_rows(silver) == []
    ten_off.refresh_from_db()
    assert (ten_off.status, ten_off.order_reference) == ("used", order.number)
    silver.refresh_from_db()
    assert silver.points_balance == 500
    assert (order.member, order.client_reference, order.store) == (silver, "wx-7f3a", shop_store)


def test_placing_again_with_the_same_reference_returns_the_first_order_and_changes_nothing(
    filled, silver, shop_store
):
    asked = {"fulfilment": "pickup", "client_reference": "wx-1"}
    first = filled.post("checkout/", asked)
    before = books(silver, shop_store)

    again = filled.post("checkout/", asked)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["number"] == first.json()["number"]
    assert books(silver, shop_store) == before


def test_another_shoppers_reference_is_refused_and_nothing_is_placed(
    filled, silver, shop_store, shop_api, water
):
    other = shop_api(factories.MemberFactory())
    other.put("cart/store/", {"store": shop_store.pk})
    other.put(f"cart/lines/{water.pk}/", {"quantity": 1})
    assert (
        other.post("checkout/", {"fulfilment": "pickup", "client_reference": "dup"}).status_code
        == 201
    )
    before = books(silver, shop_store)

    response = filled.post("checkout/", {"fulfilment": "pickup", "client_reference": "dup"})

    assert error(response) == (409, "client_reference_taken", {"client_reference": ["dup"]})
    assert books(silver, shop_store) == before


def test_ordering_the_ticked_lines_leaves_the_others_in_the_cart(
    filled, silver, shop_store, water, milk
):
    response = filled.post(
        "checkout/", {"fulfilment": "pickup", "skus": [milk.pk], "client_reference": "wx-2"}
    )

    assert response.status_code == 201
    assert [line["sku_id"] for line in response.json()["lines"]] == [milk.pk]
    assert cart_rows(silver) == [(water.pk, 3)]
    assert held(shop_store) == [(water.pk, 10, 0), (milk.pk, 4, 2)]
    # A pickup order shows its pickup code only once it is paid.
    assert response.json()["pickup_code"] == ""


def test_an_h5_order_is_placed_in_the_h5_channel(filled):
    response = filled.post(
        "checkout/", {"fulfilment": "pickup", "client_reference": "h5-1", "channel": "h5"}
    )

    assert (response.status_code, response.json()["channel"]) == (201, "h5")


# What each refused checkout changes in the request, and the refusal it gets; OTHER names the
# stranger's coupon or address, NO_PICKUP a store without pickup.
REFUSALS = {
    "unknown coupon": ({"coupon_code": "NOPE"}, (404, "coupon_not_found", "coupon_code", "NOPE")),
    "someone else's coupon": (
        {"coupon_code": "OTHER"},
        (409, "coupon_not_yours", "coupon_code", "OTHER"),
    ),
    "more points than owned": ({"points": 1001}, (409, "points_exceed_balance", "points", "1001")),
    "a store without pickup": (
        {"store": "NO_PICKUP"},
        (409, "store_does_not_serve", "store", "NO_PICKUP"),
    ),
    "delivery without an address": (
        {"fulfilment": "delivery"},
        (400, "address_required", "address_id", ""),
    ),
    "someone else's address": (
        {"fulfilment": "delivery", "address_id": "OTHER"},
        (404, "address_not_found", "address_id", "OTHER"),
    ),
    "a line not in the cart": ({"skus": [999999]}, (400, "not_in_cart", "skus", "999999")),
}


@pytest.mark.parametrize("endpoint", ["checkout/preview/", "checkout/"])
@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_checkout_holds_spends_and_removes_nothing(
    filled, silver, shop_store, points, ten_off, endpoint, case
):
    changes, (status_code, code, field, value) = REFUSALS[case]
    stranger = factories.MemberFactory()
    names = {
        ("coupon_code", "OTHER"): coupon_claim(member=stranger, template=ten_off.template).code,
        ("address_id", "OTHER"): Address.objects.create(member=stranger, **ADDRESS).pk,
        ("store", "NO_PICKUP"): factories.StoreFactory(code="SH009", offers_pickup=False).pk,
    }
    asked = {"fulfilment": "pickup", "client_reference": "wx-refused"}
    for key, given in changes.items():
        asked[key] = names.get((key, given), given) if isinstance(given, str) else given
    expected_fields = {field: [str(names.get((field, value), value))]}
    if code == "store_does_not_serve":
        expected_fields["fulfilment"] = ["pickup"]
    before = books(silver, shop_store)

    response = filled.post(endpoint, asked)

    assert error(response) == (status_code, code, expected_fields)
    assert books(silver, shop_store) == before


def test_placing_more_than_the_store_holds_is_refused_and_nothing_is_held(
    filled, silver, shop_store, milk, ten_off, points
):
    filled.put(f"cart/lines/{milk.pk}/", {"quantity": 5})
    before = books(silver, shop_store)

    response = filled.post(
        "checkout/",
        {
            "fulfilment": "pickup",
            "coupon_code": ten_off.code,
            "points": 100,
            "client_reference": "wx-short",
        },
    )

    assert error(response) == (
        409,
        "insufficient_stock",
        {"sku": [str(milk.pk)], "quantity": ["5"]},
    )
    assert books(silver, shop_store) == before


def test_an_empty_cart_and_a_missing_reference_are_refused(me, silver, shop_store):
    me.put("cart/store/", {"store": shop_store.pk})

    empty = me.post("checkout/", {"fulfilment": "pickup", "client_reference": "wx-3"})
    unreferenced = me.post("checkout/", {"fulfilment": "pickup"})
    no_store = me.post("checkout/preview/", {"fulfilment": "pickup", "store": None})

    assert error(empty) == (400, "empty_basket", {"lines": [""]})
    assert error(unreferenced) == (
        400,
        "validation_error",
        {"client_reference": ["This field is required."]},
    )
    assert error(no_store)[:2] == (400, "empty_basket")
    assert Order.objects.count() == 0


def test_a_checkout_without_a_chosen_store_asks_for_one(me, water):
    me.put(f"cart/lines/{water.pk}/", {"quantity": 1})

    response = me.post("checkout/preview/", {"fulfilment": "pickup"})

    assert error(response) == (400, "store_required", {"store": [""]})


def test_refusals_follow_the_shoppers_language(filled, silver, shop_store, milk):
    filled.put(f"cart/lines/{milk.pk}/", {"quantity": 5})
    filled.headers["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"

    response = filled.post("checkout/", {"fulfilment": "pickup", "client_reference": "wx-zh"})

    assert response.json()["error"]["message"] == "该商品库存不足。"


def test_checkout_is_throttled_per_shopper(filled, settings):
    settings.SHOP_THROTTLE_RATES = {
        **settings.SHOP_THROTTLE_RATES,
        "shop_checkout_shopper": "2/min",
    }
    asked = {"fulfilment": "pickup"}

    answers = [filled.post("checkout/", asked) for _attempt in range(3)]

    assert [answer.status_code for answer in answers] == [400, 400, 429]
    assert error(answers[2])[1] == "throttled"
    assert Order.objects.count() == 0
