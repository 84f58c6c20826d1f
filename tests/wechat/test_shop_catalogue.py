"""The shop API's browsing side: home (nearest open stores, their ratings), categories, the
catalogue with filters and cursor pages, a product with nearby stores' stock,
recommendations and the "bought together" figures behind them, and the shop's own schema."""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import patched_settings
from drf_spectacular.validation import validate_schema

from inventory.models import StockItem
from orders.models import Channel, Fulfilment, Order, OrderLine, Review
from retail.celery import app as celery_app
from retail.models import SKU, Product, Store
from tests.factories import (
    CategoryFactory,
    MemberFactory,
    OrderFactory,
    ProductFactory,
    SKUFactory,
    StockItemFactory,
    StoreFactory,
)
from wechat.api.schema import SHOP_SCHEMA_SETTINGS
from wechat.models import BoughtTogether
from wechat.services.auth import token_issue
from wechat.services.recommendations import bought_together_recompute
from wechat.tasks import recompute_bought_together

API = "/api/shop/v1/"
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
# The shopper stands here (GCJ-02).
LAT, LNG = "31.2300", "121.4500"


@pytest.fixture(autouse=True)
def noon():
    with time_machine.travel(NOON, tick=False):
        yield


class Shop:
    def __init__(self, client):
        self.client = client
        self.token = None

    def get(self, path, **params):
        headers = {"HTTP_ACCEPT_LANGUAGE": "en"}
        if self.token:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {self.token}"
        return self.client.get(API + path, params, **headers)


@pytest.fixture
def shop(client):
    return Shop(client)


@pytest.fixture
def member(db):
    return MemberFactory(name="林小美")


@pytest.fixture
def logged_in(shop, member):
    shop.token, _token = token_issue(member=member)
    return shop


def place(code, lat, lng, **fields):
    return StoreFactory(code=code, latitude=Decimal(lat), longitude=Decimal(lng), **fields)


@pytest.fixture
def stores(store_a, store_b):
    """A (821 m from the shopper) and B (683 m) open 9-22; a night store (2203 m, closed at
    noon); an inactive store (293 m); a warehouse; a store 44.8 km away."""
    store_b.latitude, store_b.longitude = Decimal("31.2335"), Decimal("121.4559")
    store_b.save()
    night = place(
        "SH003", "31.2200", "121.4700", opens_at="22:00", closes_at="06:00", name="夜猫店"
    )
    place("SH004", "31.2280", "121.4480", active=False)
    warehouse = place(
        "WH01",
        "31.2280",
        "121.4480",
        kind=Store.Kind.WAREHOUSE,
        offers_pickup=False,
        offers_counter_sales=False,
    )
    far = place("SH005", "31.5000", "121.8000")
    return {"a": store_a, "b": store_b, "night": night, "warehouse": warehouse, "far": far}


def completed(store, *, paid, member=None, refunded=0, rating=None):
    order = OrderFactory(
        store=store,
        member=member,
        status=Order.Status.COMPLETED,
        subtotal_fen=paid,
        total_fen=paid,
        paid_fen=paid,
        refunded_fen=refunded,
        paid_at=NOON - timedelta(days=1),
    )
    if rating is not None:
        Review.objects.create(
            order=order, store=store, member=member or MemberFactory(), rating=rating
        )
    return order


@pytest.fixture
def catalogue(stores):
    """Drinks (water under it), snacks; water has two SKUs. Store A sells 550ml water (10 on
    hand, 2 reserved, 3 safety: 5 online) and chips; the warehouse ships 1.5L water (50)."""
    drinks = CategoryFactory(code="DRINK", name="饮料", sort_order=1)
    water_cat = CategoryFactory(code="WATER", name="饮用水", parent=drinks, sort_order=1)
    snacks = CategoryFactory(code="SNACK", name="零食", sort_order=2)
    water = ProductFactory(code="P001", name="天然矿泉水", category=water_cat, brand="农夫山泉")
    small = SKUFactory(product=water, code="W550", attributes={"规格": "550ml"}, price_fen=200)
    large = SKUFactory(product=water, code="W1500", attributes={"规格": "1.5L"}, price_fen=450)
    juice = ProductFactory(code="P002", name="橙汁", category=drinks, brand="汇源")
    orange = SKUFactory(product=juice, code="J1", attributes={}, price_fen=800)
    chips = ProductFactory(code="P003", name="薯片", category=snacks, brand="乐事")
    crisp = SKUFactory(product=chips, code="C1", attributes={"口味": "原味"}, price_fen=650)
    # Hidden: an inactive product, one whose only SKU is inactive, one in an inactive category.
    ProductFactory(code="P004", category=snacks, active=False)
    SKUFactory(product=ProductFactory(code="P005", category=snacks), active=False)
    SKUFactory(product=ProductFactory(code="P006", category=CategoryFactory(active=False)))
    SKUFactory(product=water, code="W5000", active=False)

    StockItemFactory(store=stores["a"], sku=small, on_hand=10, reserved=2, safety_stock=3)
    StockItemFactory(store=stores["a"], sku=crisp, on_hand=4)
    StockItemFactory(store=stores["b"], sku=small, on_hand=1, safety_stock=1)
    StockItemFactory(store=stores["b"], sku=large, on_hand=6)
    StockItemFactory(store=stores["warehouse"], sku=large, on_hand=50)
    StockItemFactory(store=stores["warehouse"], sku=orange, on_hand=3, safety_stock=5)
    return {
        "drinks": drinks,
        "water_cat": water_cat,
        "snacks": snacks,
        "water": water,
        "small": small,
        "large": large,
        "juice": juice,
        "orange": orange,
        "chips": chips,
        "crisp": crisp,
    }


# --- home -----------------------------------------------------------------------------------


def store_card(store, distance, *, rating=None, reviews=0, value=None, open_now=True):
    return {
        "id": store.pk,
        "code": store.code,
        "name": store.name,
        "address": store.full_address,
        "phone": "",
        "latitude": float(store.latitude),
        "longitude": float(store.longitude),
        "distance_m": distance,
        "open_now": open_now,
        "opens_at": "09:00",
        "closes_at": "22:00",
        "offers_pickup": True,
        "offers_ship_from_store": False,
        "delivery_radius_m": 0,
        "avg_rating": rating,
        "review_count": reviews,
        "avg_order_value_fen": value,
    }


@pytest.mark.django_db
def test_home_lists_the_nearest_open_stores_with_distance_rating_and_order_value(shop, stores):
    completed(stores["a"], paid=1000, rating=5)
    completed(stores["a"], paid=2501, refunded=500, rating=4)
    completed(stores["b"], paid=900, refunded=900)

    response = shop.get("home/", lat=LAT, lng=LNG)

    assert response.status_code == 200
    assert response.json() == {
        "store_id": stores["b"].pk,
        "stores": [
            store_card(stores["b"], 683, value=0),
            store_card(stores["a"], 821, rating=4.5, reviews=2, value=1501),
        ],
        "recommendations": [],
    }


@pytest.mark.django_db
def test_home_can_list_closed_stores_too(shop, stores):
    response = shop.get("home/", lat=LAT, lng=LNG, include_closed="true")

    assert [
        (card["code"], card["distance_m"], card["open_now"]) for card in response.json()["stores"]
    ] == [
        ("SH002", 683, True),
        ("SH001", 821, True),
        ("SH003", 2203, False),
    ]
    assert response.json()["stores"][2]["opens_at"] == "22:00"


@pytest.mark.django_db
def test_home_at_night_shows_the_night_store_only(shop, stores):
    with time_machine.travel(NOON + timedelta(hours=11), tick=False):
        response = shop.get("home/", lat=LAT, lng=LNG)

    assert [card["code"] for card in response.json()["stores"]] == ["SH003"]
    assert response.json()["store_id"] == stores["night"].pk


@pytest.mark.django_db
def test_home_without_a_location_lists_open_stores_by_code(shop, stores):
    response = shop.get("home/")

    assert [(card["code"], card["distance_m"]) for card in response.json()["stores"]] == [
        ("SH001", None),
        ("SH002", None),
        ("SH005", None),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lat": LAT}, "lng"),
        ({"lng": LNG}, "lat"),
        ({"lat": "91", "lng": LNG}, "lat"),
        ({"lat": LAT, "lng": "east"}, "lng"),
        ({"store": "999999"}, "store"),
    ],
)
def test_home_refuses_a_half_or_bad_location_or_an_unknown_store(shop, stores, params, field):
    response = shop.get("home/", **params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert list(response.json()["error"]["fields"]) == [field]


@pytest.mark.django_db
def test_a_warehouse_is_not_a_store_a_shopper_may_choose(shop, stores):
    response = shop.get("home/", store=stores["warehouse"].pk)

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["store"]


@pytest.mark.django_db
def test_a_bad_token_on_a_public_page_is_still_refused(shop, stores):
    shop.token = "stale"

    response = shop.get("home/")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_invalid"


# --- categories -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_categories_are_listed_flat_in_display_order_without_inactive_branches(shop, catalogue):
    hidden = CategoryFactory(code="OLD", active=False, sort_order=0)
    CategoryFactory(code="OLDKID", parent=hidden, sort_order=0)

    response = shop.get("categories/")

    drinks, water, snacks = catalogue["drinks"], catalogue["water_cat"], catalogue["snacks"]
    assert response.json() == [
        {"id": drinks.pk, "code": "DRINK", "name": "饮料", "parent_id": None, "sort_order": 1},
        {
            "id": water.pk,
            "code": "WATER",
            "name": "饮用水",
            "parent_id": drinks.pk,
            "sort_order": 1,
        },
        {"id": snacks.pk, "code": "SNACK", "name": "零食", "parent_id": None, "sort_order": 2},
    ]


# --- catalogue ------------------------------------------------------------------------------


def sku_out(sku, at_store, online):
    return {
        "id": sku.pk,
        "code": sku.code,
        "barcode": sku.barcode,
        "spec": sku.spec_label,
        "attributes": sku.attributes,
        "price_fen": sku.price_fen,
        "available_at_store": at_store,
        "available_online": online,
    }


@pytest.mark.django_db
def test_the_catalogue_shows_each_skus_stock_at_the_chosen_store_and_online(
    shop, catalogue, stores
):
    c = catalogue

    response = shop.get("products/", store=stores["a"].pk)

    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [
            {
                "id": c["water"].pk,
                "code": "P001",
                "name": "天然矿泉水",
                "brand": "农夫山泉",
                "unit": "瓶",
                "category": {"id": c["water_cat"].pk, "name": "饮用水"},
                "price_from_fen": 200,
                "in_stock": True,
                "skus": [sku_out(c["large"], 0, 50), sku_out(c["small"], 5, 0)],
            },
            {
                "id": c["juice"].pk,
                "code": "P002",
                "name": "橙汁",
                "brand": "汇源",
                "unit": "瓶",
                "category": {"id": c["drinks"].pk, "name": "饮料"},
                "price_from_fen": 800,
                "in_stock": False,
                "skus": [sku_out(c["orange"], 0, 0)],
            },
            {
                "id": c["chips"].pk,
                "code": "P003",
                "name": "薯片",
                "brand": "乐事",
                "unit": "瓶",
                "category": {"id": c["snacks"].pk, "name": "零食"},
                "price_from_fen": 650,
                "in_stock": True,
                "skus": [sku_out(c["crisp"], 4, 0)],
            },
        ],
    }


@pytest.mark.django_db
def test_without_a_store_only_online_stock_is_shown(shop, catalogue):
    response = shop.get("products/")

    water = response.json()["results"][0]
    assert [
        (sku["code"], sku["available_at_store"], sku["available_online"]) for sku in water["skus"]
    ] == [
        ("W1500", None, 50),
        ("W550", None, 0),
    ]
    assert [product["in_stock"] for product in response.json()["results"]] == [True, False, False]


def codes(response):
    assert response.status_code == 200, response.content
    return [product["code"] for product in response.json()["results"]]


@pytest.mark.django_db
def test_catalogue_filters(shop, catalogue, stores):
    c = catalogue
    a, b = stores["a"].pk, stores["b"].pk

    assert codes(shop.get("products/", category=c["drinks"].pk)) == ["P001", "P002"]
    assert codes(shop.get("products/", category=c["water_cat"].pk)) == ["P001"]
    assert codes(shop.get("products/", q="矿泉")) == ["P001"]
    assert codes(shop.get("products/", q="乐事")) == ["P003"]
    assert codes(shop.get("products/", q="饮料")) == ["P002"]
    assert codes(shop.get("products/", q=c["orange"].barcode)) == ["P002"]
    assert codes(shop.get("products/", q="w550")) == ["P001"]
    assert codes(shop.get("products/", q="   ")) == ["P001", "P002", "P003"]
    assert codes(shop.get("products/", store=a, in_stock="true")) == ["P001", "P003"]
    # B's one 550ml is its safety stock: only the 1.5L there, which the warehouse ships too.
    assert codes(shop.get("products/", store=b, in_stock="true")) == ["P001"]
    assert codes(shop.get("products/", in_stock="true")) == ["P001"]
    assert codes(shop.get("products/", online="true")) == ["P001"]
    assert codes(shop.get("products/", store=a, in_stock="false")) == ["P001", "P002", "P003"]
    assert codes(shop.get("products/", store=a, in_stock="true", category=c["snacks"].pk)) == [
        "P003"
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"store": "999999"}, "store"),
        ({"store": "x"}, "store"),
        ({"category": "999999"}, "category"),
        ({"q": "x" * 51}, "q"),
    ],
)
def test_catalogue_refuses_bad_filters(shop, catalogue, params, field):
    response = shop.get("products/", **params)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert list(response.json()["error"]["fields"]) == [field]


@pytest.mark.django_db
def test_catalogue_pages_follow_the_cursor(shop, client, catalogue):
    first = shop.get("products/", page_size=2)

    assert codes(first) == ["P001", "P002"]
    second = client.get(first.json()["next"])
    assert codes(second) == ["P003"]
    assert second.json()["next"] is None


def many_products(count, stores):
    """``count`` products of two SKUs each, stocked at store A and the warehouse, in a few
    queries."""
    category = CategoryFactory()
    products = Product.objects.bulk_create(
        Product(code=f"Q{n:04d}", name=f"商品{n}", category=category) for n in range(count)
    )
    skus = SKU.objects.bulk_create(
        SKU(product=product, code=f"Q{product.code}-{size}", barcode=f"{n:013d}", price_fen=100 + n)
        for n, (product, size) in enumerate((p, s) for p in products for s in ("S", "L"))
    )
    StockItem.objects.bulk_create(
        StockItem(store=store, sku=sku, on_hand=5)
        for sku in skus
        for store in (stores["a"], stores["warehouse"])
    )


def count_queries(call):
    with CaptureQueriesContext(connection) as queries:
        response = call()
    assert response.status_code == 200, response.content
    return len(queries), response


@pytest.mark.django_db
def test_a_catalogue_page_of_100_costs_the_queries_of_a_page_of_20(logged_in, stores):
    many_products(120, stores)
    store = stores["a"].pk

    small, small_page = count_queries(lambda: logged_in.get("products/", store=store, page_size=20))
    large, large_page = count_queries(
        lambda: logged_in.get("products/", store=store, page_size=100)
    )
    capped, capped_page = count_queries(
        lambda: logged_in.get("products/", store=store, page_size=500)
    )

    assert (len(small_page.json()["results"]), len(large_page.json()["results"])) == (20, 100)
    assert len(capped_page.json()["results"]) == 100
    # token, store, products, their SKUs, stock at the store, stock in the warehouses
    assert (small, large, capped) == (6, 6, 6)
    assert large_page.json()["results"][99]["skus"][1]["available_at_store"] == 5


@pytest.mark.django_db
def test_catalogue_query_count_without_token_or_store(shop, stores):
    many_products(30, stores)

    queries, _response = count_queries(lambda: shop.get("products/"))

    # products, their SKUs, stock in the warehouses
    assert queries == 3


# --- product --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_product_shows_its_skus_and_what_nearby_stores_hold(shop, catalogue, stores):
    c = catalogue

    response = shop.get(f"products/{c['water'].pk}/", store=stores["a"].pk, lat=LAT, lng=LNG)

    assert response.status_code == 200
    small, large = c["small"].pk, c["large"].pk
    assert response.json() == {
        "id": c["water"].pk,
        "code": "P001",
        "name": "天然矿泉水",
        "brand": "农夫山泉",
        "unit": "瓶",
        "description": "",
        "category": {"id": c["water_cat"].pk, "name": "饮用水"},
        "skus": [sku_out(c["large"], 0, 50), sku_out(c["small"], 5, 0)],
        "stores": [
            {
                "id": stores["b"].pk,
                "code": "SH002",
                "name": stores["b"].name,
                "address": stores["b"].full_address,
                "distance_m": 683,
                "open_now": True,
                "offers_pickup": True,
                "has_every_sku": False,
                "skus": [{"sku_id": large, "available": 6}, {"sku_id": small, "available": 0}],
            },
            {
                "id": stores["a"].pk,
                "code": "SH001",
                "name": stores["a"].name,
                "address": stores["a"].full_address,
                "distance_m": 821,
                "open_now": True,
                "offers_pickup": True,
                "has_every_sku": False,
                "skus": [{"sku_id": large, "available": 0}, {"sku_id": small, "available": 5}],
            },
            {
                "id": stores["night"].pk,
                "code": "SH003",
                "name": "夜猫店",
                "address": stores["night"].full_address,
                "distance_m": 2203,
                "open_now": False,
                "offers_pickup": True,
                "has_every_sku": False,
                "skus": [{"sku_id": large, "available": 0}, {"sku_id": small, "available": 0}],
            },
        ],
        "recommendations": [],
    }


@pytest.mark.django_db
def test_a_product_without_a_location_lists_no_stores(shop, catalogue):
    response = shop.get(f"products/{catalogue['chips'].pk}/")

    assert response.json()["stores"] == []
    assert response.json()["skus"] == [sku_out(catalogue["crisp"], None, 0)]


@pytest.mark.django_db
@pytest.mark.parametrize("code", ["P004", "P005", "P006", None])
def test_a_hidden_or_unknown_product_is_404(shop, catalogue, code):
    pk = Product.objects.get(code=code).pk if code else 999999

    response = shop.get(f"products/{pk}/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_product_detail_query_count(logged_in, member, catalogue, stores):
    bought(member, catalogue["crisp"], store=stores["a"])
    BoughtTogether.objects.create(
        sku=catalogue["small"], other=catalogue["crisp"], orders=3, computed_at=NOON
    )

    queries, response = count_queries(
        lambda: logged_in.get(
            f"products/{catalogue['water'].pk}/", store=stores["a"].pk, lat=LAT, lng=LNG
        )
    )

    assert [item["sku"]["code"] for item in response.json()["recommendations"]] == ["C1"]
    # token, store, product, SKUs, stock at the store, warehouses; nearby stores and their
    # stock; recommendations: purchases, bought together, SKUs, stock at the store, warehouses
    assert queries == 13


# --- recommendations ------------------------------------------------------------------------


def bought(
    member, *skus, store, status=Order.Status.COMPLETED, channel=Channel.COUNTER, days_ago=1
):
    moment = NOON - timedelta(days=days_ago)
    order = OrderFactory(
        store=store,
        member=member,
        channel=channel,
        fulfilment=Fulfilment.COUNTER if channel == Channel.COUNTER else Fulfilment.PICKUP,
        status=status,
        subtotal_fen=sum(sku.price_fen for sku in skus),
        total_fen=sum(sku.price_fen for sku in skus),
        paid_at=None if status == Order.Status.PENDING_PAYMENT else moment,
    )
    Order.objects.filter(pk=order.pk).update(created_at=moment)
    for sku in skus:
        OrderLine.objects.create(
            order=order,
            sku=sku,
            sku_code=sku.code,
            product_name=sku.product.name,
            unit_price_fen=sku.price_fen,
            quantity=1,
            total_fen=sku.price_fen,
            line_key=f"{order.number}-{sku.pk}",
        )
    return order


def rec(item):
    return (
        item["reason"],
        item["sku"]["code"],
        item["available_at_store"],
        item["available_online"],
    )


@pytest.mark.django_db
def test_recommendations_start_from_the_members_own_purchases_in_every_channel(
    logged_in, member, catalogue, stores
):
    c = catalogue
    # At the counter of B two days ago, the 1.5L water; in the mini-shop yesterday, chips.
    bought(member, c["large"], store=stores["b"], days_ago=2)
    bought(member, c["crisp"], store=stores["a"], channel=Channel.MINI_SHOP, days_ago=1)
    # Another shopper's purchases and an unpaid or cancelled order of hers do not count.
    bought(MemberFactory(), c["small"], store=stores["a"])
    bought(member, c["orange"], store=stores["a"], status=Order.Status.PENDING_PAYMENT)
    bought(member, c["orange"], store=stores["a"], status=Order.Status.CANCELLED)
    BoughtTogether.objects.create(sku=c["crisp"], other=c["small"], orders=2, computed_at=NOON)
    BoughtTogether.objects.create(sku=c["crisp"], other=c["orange"], orders=9, computed_at=NOON)

    response = logged_in.get("recommendations/", store=stores["a"].pk)

    # Juice is nowhere to be had (the warehouse's 3 are its safety stock); the 550ml is the
    # water already recommended (one per product).
    assert [rec(item) for item in response.json()] == [
        ("bought_before", "C1", 4, 0),
        ("bought_before", "W1500", 0, 50),
    ]
    assert response.json()[0]["product"] == {
        "id": c["chips"].pk,
        "name": "薯片",
        "brand": "乐事",
        "unit": "瓶",
    }
    assert response.json()[0]["sku"] == {
        "id": c["crisp"].pk,
        "code": "C1",
        "spec": "原味",
        "price_fen": 650,
    }


@pytest.mark.django_db
def test_bought_together_follows_the_members_purchases(logged_in, member, catalogue, stores):
    c = catalogue
    bought(member, c["orange"], store=stores["a"])
    BoughtTogether.objects.create(sku=c["orange"], other=c["crisp"], orders=2, computed_at=NOON)
    BoughtTogether.objects.create(sku=c["orange"], other=c["small"], orders=5, computed_at=NOON)

    at_a = logged_in.get("recommendations/", store=stores["a"].pk)
    at_b = logged_in.get("recommendations/", store=stores["b"].pk)

    assert [rec(item) for item in at_a.json()] == [
        ("bought_together", "W550", 5, 0),
        ("bought_together", "C1", 4, 0),
    ]
    # B holds no chips and keeps its one 550ml back; nothing else ships.
    assert [rec(item) for item in at_b.json()] == []


@pytest.mark.django_db
def test_without_a_login_recommendations_are_what_is_bought_together_most(shop, catalogue, stores):
    c = catalogue
    BoughtTogether.objects.create(sku=c["small"], other=c["crisp"], orders=2, computed_at=NOON)
    BoughtTogether.objects.create(sku=c["crisp"], other=c["small"], orders=2, computed_at=NOON)
    BoughtTogether.objects.create(sku=c["large"], other=c["crisp"], orders=1, computed_at=NOON)
    BoughtTogether.objects.create(sku=c["large"], other=c["small"], orders=4, computed_at=NOON)

    response = shop.get("recommendations/")

    assert [rec(item) for item in response.json()] == [("popular", "W1500", None, 50)]
    with_store = shop.get("recommendations/", store=stores["a"].pk)
    assert [rec(item) for item in with_store.json()] == [
        ("popular", "W1500", 0, 50),
        ("popular", "C1", 4, 0),
    ]


@pytest.mark.django_db
def test_a_product_page_recommends_what_goes_with_it_then_the_members_purchases(
    logged_in, member, catalogue, stores
):
    c = catalogue
    bought(member, c["small"], c["crisp"], store=stores["a"])
    BoughtTogether.objects.create(sku=c["large"], other=c["crisp"], orders=1, computed_at=NOON)

    response = logged_in.get(f"products/{c['juice'].pk}/", store=stores["a"].pk)
    water_page = logged_in.get(f"products/{c['water'].pk}/", store=stores["a"].pk)

    # Bought in one order: the older SKU first.
    assert [rec(item) for item in response.json()["recommendations"]] == [
        ("bought_before", "W550", 5, 0),
        ("bought_before", "C1", 4, 0),
    ]
    assert [rec(item) for item in water_page.json()["recommendations"]] == [
        ("bought_together", "C1", 4, 0),
    ]


@pytest.mark.django_db
def test_home_recommends_for_the_nearest_open_store_and_its_query_count(
    logged_in, member, catalogue, stores
):
    c = catalogue
    bought(member, c["crisp"], c["small"], store=stores["a"])
    completed(stores["a"], paid=1000, rating=5)

    queries, response = count_queries(lambda: logged_in.get("home/", lat=LAT, lng=LNG))

    # The nearest open store is B: no chips there, its 550ml is safety stock.
    assert response.json()["store_id"] == stores["b"].pk
    assert [rec(item) for item in response.json()["recommendations"]] == []
    # token; stores; reviews, orders (ratings); purchases, bought together, SKUs, stock at the
    # store, warehouses
    assert queries == 9
    chosen = logged_in.get("home/", lat=LAT, lng=LNG, store=stores["a"].pk)
    assert [rec(item) for item in chosen.json()["recommendations"]] == [
        ("bought_before", "W550", 5, 0),
        ("bought_before", "C1", 4, 0),
    ]


# --- bought together ------------------------------------------------------------------------


@pytest.mark.django_db
def test_bought_together_counts_pairs_of_recent_paid_orders_in_a_fixed_number_of_queries(
    catalogue, stores, settings
):
    settings.SHOP_BOUGHT_TOGETHER_DAYS = 30
    c = catalogue
    small, large, orange, crisp = c["small"], c["large"], c["orange"], c["crisp"]
    someone = MemberFactory()
    bought(someone, small, crisp, store=stores["a"])
    bought(None, small, crisp, orange, store=stores["a"], channel=Channel.COUNTER, days_ago=29)
    bought(someone, small, store=stores["a"])  # alone: no pair
    bought(someone, large, crisp, store=stores["a"], status=Order.Status.PAID)
    # Outside the window, not paid, cancelled: not counted.
    bought(someone, large, orange, store=stores["a"], days_ago=31)
    bought(someone, large, orange, store=stores["a"], status=Order.Status.PENDING_PAYMENT)
    bought(someone, large, orange, store=stores["a"], status=Order.Status.CANCELLED)
    BoughtTogether.objects.create(sku=orange, other=large, orders=99, computed_at=NOON)

    with CaptureQueriesContext(connection) as queries:
        kept = bought_together_recompute()

    assert kept == 8
    assert sorted(BoughtTogether.objects.values_list("sku__code", "other__code", "orders")) == [
        ("C1", "J1", 1),
        ("C1", "W1500", 1),
        ("C1", "W550", 2),
        ("J1", "C1", 1),
        ("J1", "W550", 1),
        ("W1500", "C1", 1),
        ("W550", "C1", 2),
        ("W550", "J1", 1),
    ]
    assert set(BoughtTogether.objects.values_list("computed_at", flat=True)) == {NOON}
    # the pairs, (savepoint), delete, insert, (release)
    assert len([q for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]) == 3


@pytest.mark.django_db
def test_bought_together_keeps_the_strongest_pairs_of_each_sku(catalogue, stores, monkeypatch):
    from wechat.services import recommendations

    monkeypatch.setattr(recommendations, "PER_SKU", 1)
    c = catalogue
    bought(None, c["small"], c["crisp"], store=stores["a"])
    bought(None, c["small"], c["crisp"], c["orange"], store=stores["a"])

    assert recompute_bought_together() == 3

    assert sorted(BoughtTogether.objects.values_list("sku__code", "other__code", "orders")) == [
        ("C1", "W550", 2),
        ("J1", "W550", 1),  # a tie with C1, broken by SKU id
        ("W550", "C1", 2),
    ]


def test_the_recomputation_is_on_the_beat_schedule():
    entry = celery_app.conf.beat_schedule["recompute-bought-together"]

    assert entry["task"] == "wechat.recompute_bought_together"
    assert entry["task"] in celery_app.tasks


# --- the shop's schema ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_shop_schema_is_valid_and_every_operation_documents_its_errors(client):
    response = client.get(API + "schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert schema["info"]["title"] == SHOP_SCHEMA_SETTINGS["TITLE"]
    assert all(path.startswith(API) for path in schema["paths"])
    operations = {
        operation["operationId"]: operation
        for item in schema["paths"].values()
        for operation in item.values()
    }
    for name in [
        "shop_login",
        "shop_logout",
        "shop_bind_phone",
        "shop_home",
        "shop_categories",
        "shop_products",
        "shop_product",
        "shop_recommendations",
    ]:
        assert name in operations
    for name, operation in operations.items():
        errors = [status for status in operation["responses"] if status.startswith(("4", "5"))]
        assert errors, f"{name} documents no error"
    login = operations["shop_login"]["responses"]
    assert "`wechat_code_used`" in login["400"]["description"]
    assert "`wechat_unavailable`" in login["503"]["description"]
    assert "`throttled`" in login["429"]["description"]
    assert "shopperToken" in schema["components"]["securitySchemes"]


def test_the_shop_schema_is_generated_without_warnings_or_errors():
    GENERATOR_STATS.reset()
    with patched_settings(SHOP_SCHEMA_SETTINGS):
        schema = SchemaGenerator(urlconf="wechat.api.schema_urls").get_schema(public=True)

    validate_schema(schema)
    assert not GENERATOR_STATS, (
        dict(GENERATOR_STATS._warn_cache),
        dict(GENERATOR_STATS._error_cache),
    )


@pytest.mark.django_db
def test_the_main_schema_leaves_the_shop_out_and_the_docs_page_renders(client):
    main = client.get("/api/schema/", {"format": "json"}).json()
    docs = client.get(API + "docs/")

    assert not [path for path in main["paths"] if path.startswith(API)]
    assert "/api/staff/v1/skus/" in main["paths"]
    assert docs.status_code == 200
    assert b"/api/shop/v1/schema/" in docs.content
