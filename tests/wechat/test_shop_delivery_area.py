"""The delivery area through the shop API: a store delivering with its own riders only
refuses, at preview and at checkout, an address of the shopper's book farther than its
radius (422 ``address_out_of_range``, the address named), holding, spending and removing
nothing; an address in reach or without coordinates is delivered to.

Store A (SH001 静安寺店, 31.2235, 121.4459) delivers within 3 km and does not ship: 林小美's
home on 常德路 is 815 m away, her office at 人民广场 3,138.4 m."""

import pytest

from inventory.models import Reservation, StockItem
from orders.models import Order, OrderEvent
from retail.models import Store
from wechat.models import Address, CartLine

pytestmark = pytest.mark.django_db

ADDRESS = {
    "name": "林小美",
    "mobile": "13800138001",
    "province": "上海市",
    "city": "上海市",
    "district": "静安区",
}


@pytest.fixture
def riders(store_a):
    Store.objects.filter(pk=store_a.pk).update(delivery_radius_m=3000)
    store_a.refresh_from_db()
    return store_a


@pytest.fixture
def water(riders):
    from inventory.services import StockLine, stock_receive
    from tests import factories

    sku = factories.SKUFactory(price_fen=200, product__name="矿泉水")
    stock_receive(store=riders, lines=[StockLine(sku, 10)], idempotency_key="seed-water")
    return sku


@pytest.fixture
def me(shop_api, lina, riders, water):
    """林小美 with 3 × 矿泉水 in her cart at store A."""
    me = shop_api(lina)
    assert me.put("cart/store/", {"store": riders.pk}).status_code == 200
    assert me.put(f"cart/lines/{water.pk}/", {"quantity": 3}).status_code == 200
    return me


@pytest.fixture
def home(lina):
    return Address.objects.create(
        member=lina,
        detail="常德路800号",
        latitude="31.228900",
        longitude="121.440100",
        is_default=True,
        **ADDRESS,
    )


@pytest.fixture
def office(lina):
    return Address.objects.create(
        member=lina, detail="西藏中路336号", latitude="31.233120", longitude="121.476930", **ADDRESS
    )


def books(member, store) -> tuple:
    return (
        Order.objects.count(),
        OrderEvent.objects.count(),
        Reservation.objects.count(),
        list(StockItem.objects.filter(store=store).values_list("on_hand", "reserved")),
        list(CartLine.objects.filter(cart__member=member).values_list("sku_id", "quantity")),
    )


@pytest.mark.parametrize("endpoint", ["checkout/preview/", "checkout/"])
def test_an_address_beyond_the_radius_is_refused_and_nothing_changes(
    me, lina, riders, water, office, endpoint
):
    before = books(lina, riders)
    asked = {"fulfilment": "delivery", "address_id": office.pk, "client_reference": "wx-far"}

    response = me.post(endpoint, asked)

    assert response.status_code == 422
    assert response.json() == {
        "error": {
            "code": "address_out_of_range",
            "message": "静安寺店 delivers within 3000 m; this address is 3139 m away.",
            "fields": {"address_id": [str(office.pk)]},
        }
    }
    assert books(lina, riders) == before == (0, 0, 0, [(10, 0)], [(water.pk, 3)])


def test_the_refusal_follows_the_shoppers_language(me, lina, office):
    me.headers["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"

    response = me.post(
        "checkout/", {"fulfilment": "delivery", "address_id": office.pk, "client_reference": "w"}
    )

    assert (response.status_code, response.json()["error"]["message"]) == (
        422,
        "静安寺店只配送 3000 米以内的地址，该地址距门店 3139 米。",
    )


def test_an_address_in_reach_is_delivered_to_and_leaves_the_cart(me, lina, riders, water, home):
    response = me.post(
        "checkout/", {"fulfilment": "delivery", "address_id": home.pk, "client_reference": "wx-1"}
    )

    assert response.status_code == 201
    assert response.json()["address"] == {
        **ADDRESS,
        "detail": "常德路800号",
        "latitude": "31.228900",
        "longitude": "121.440100",
    }
    assert books(lina, riders) == (1, 1, 1, [(10, 3)], [])


def test_an_address_without_coordinates_is_delivered_to(me, lina, riders):
    """The H5 address form gives none, and the mini-program's address book may not."""
    somewhere = Address.objects.create(member=lina, detail="愚园路168号", **ADDRESS)

    response = me.post(
        "checkout/",
        {"fulfilment": "delivery", "address_id": somewhere.pk, "client_reference": "wx-2"},
    )

    assert (response.status_code, response.json()["address"]) == (
        201,
        {**ADDRESS, "detail": "愚园路168号"},
    )


def test_a_store_shipping_from_the_store_takes_the_far_address(me, lina, riders, office):
    Store.objects.filter(pk=riders.pk).update(offers_ship_from_store=True)

    response = me.post(
        "checkout/", {"fulfilment": "delivery", "address_id": office.pk, "client_reference": "wx"}
    )

    assert (response.status_code, response.json()["address"]["detail"]) == (201, "西藏中路336号")


def test_pickup_ignores_the_delivery_area(me, lina, riders, office):
    response = me.post("checkout/", {"fulfilment": "pickup", "client_reference": "wx-pickup"})

    assert (response.status_code, response.json()["fulfilment"]) == (201, "pickup")
