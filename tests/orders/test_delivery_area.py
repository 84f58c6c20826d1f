"""The delivery area at checkout: a store delivering in the city only with its own riders
refuses an address farther than its radius; a warehouse or a store shipping from the store
sends parcels by courier and takes any address; an address without coordinates passes.

The store (测试门店, 静安区) stands at 31.2235, 121.4459 (GCJ-02). 常德路 (31.228900,
121.440100) is 815 m away, 人民广场 (31.233120, 121.476930) 3,138.4 m."""

import pytest
from django.utils import translation

from inventory.models import Reservation, StockItem
from orders.models import Channel, Fulfilment, Order, OrderEvent, OrderLine
from orders.pricing import BasketLine
from orders.services import checkout_place
from retail.errors import BusinessError
from retail.geo import haversine_m
from retail.models import Store
from tests import factories
from tests.orders.conftest import ADDRESS

NEAR = {"latitude": "31.228900", "longitude": "121.440100"}
FAR = {"latitude": "31.233120", "longitude": "121.476930"}


@pytest.fixture
def riders(db):
    """A store delivering within 3 km with its own riders only, 10 矿泉水 on hand."""
    return factories.StoreFactory(code="SH010", name="静安寺店", delivery_radius_m=3000)


@pytest.fixture
def water(riders):
    from inventory.services import StockLine, stock_receive

    sku = factories.SKUFactory(price_fen=200, product__name="矿泉水")
    stock_receive(store=riders, lines=[StockLine(sku, 10)], idempotency_key="seed-water")
    return sku


def deliver(store, water, member, address, reference="ref-1") -> Order:
    return checkout_place(
        channel=Channel.MINI_SHOP,
        store=store,
        fulfilment=Fulfilment.DELIVERY,
        lines=[BasketLine(water.pk, 2)],
        client_reference=reference,
        member=member,
        address=address,
    )


def books(store, water) -> tuple:
    item = StockItem.objects.get(store=store, sku=water)
    return (
        Order.objects.count(),
        OrderLine.objects.count(),
        OrderEvent.objects.count(),
        Reservation.objects.count(),
        item.on_hand,
        item.reserved,
    )


def test_the_distances_of_the_tests_are_what_the_docstring_says(riders):
    here = float(riders.latitude), float(riders.longitude)

    assert round(haversine_m(31.2289, 121.4401, *here), 1) == 815.3
    assert round(haversine_m(31.23312, 121.47693, *here), 1) == 3138.4


def test_an_address_inside_the_radius_is_delivered_to(riders, water, member):
    order = deliver(riders, water, member, {**ADDRESS, **NEAR})

    assert (order.status, order.fulfilment, order.store) == ("pending_payment", "delivery", riders)
    assert order.address == {**ADDRESS, **NEAR}
    assert books(riders, water) == (1, 1, 1, 1, 10, 2)


def test_an_address_beyond_the_radius_is_refused_and_nothing_changes(riders, water, member):
    before = books(riders, water)

    with pytest.raises(BusinessError) as refused:
        deliver(riders, water, member, {**ADDRESS, **FAR})

    error = refused.value
    assert (error.status_code, error.code, error.fields) == (
        422,
        "address_out_of_range",
        {"address": [""]},
    )
    assert error.message == "静安寺店只配送 3000 米以内的地址，该地址距门店 3139 米。"
    assert books(riders, water) == before == (0, 0, 0, 0, 10, 0)


def test_the_refusal_reads_in_english_too(riders, water, member):
    with translation.override("en"), pytest.raises(BusinessError) as refused:
        deliver(riders, water, member, {**ADDRESS, **FAR})

    assert refused.value.message == "静安寺店 delivers within 3000 m; this address is 3139 m away."


@pytest.mark.parametrize(
    ("radius_m", "placed"),
    [(3138, False), (3139, True)],
    ids=["a metre short", "just in reach"],
)
def test_the_radius_itself_is_in_reach(riders, water, member, radius_m, placed):
    """3,138.4 m away: beyond a 3,138 m radius, inside 3,139 m (the distance equal to the
    radius counts as in reach, as in the nearest-stores search)."""
    Store.objects.filter(pk=riders.pk).update(delivery_radius_m=radius_m)
    riders.refresh_from_db()

    if placed:
        assert deliver(riders, water, member, {**ADDRESS, **FAR}).store == riders
    else:
        with pytest.raises(BusinessError) as refused:
            deliver(riders, water, member, {**ADDRESS, **FAR})
        assert refused.value.code == "address_out_of_range"
        assert refused.value.message == "静安寺店只配送 3138 米以内的地址，该地址距门店 3139 米。"
    assert Order.objects.count() == int(placed)


def test_a_store_shipping_from_the_store_takes_a_far_address(riders, water, member):
    Store.objects.filter(pk=riders.pk).update(offers_ship_from_store=True)
    riders.refresh_from_db()

    order = deliver(riders, water, member, {**ADDRESS, **FAR})

    assert (order.store, order.address) == (riders, {**ADDRESS, **FAR})


def test_a_warehouse_takes_a_far_address(member):
    from inventory.services import StockLine, stock_receive

    warehouse = factories.StoreFactory(
        code="WH-SH01",
        kind=Store.Kind.WAREHOUSE,
        offers_pickup=False,
        offers_counter_sales=False,
        offers_ship_from_store=True,
    )
    sku = factories.SKUFactory(price_fen=200)
    stock_receive(store=warehouse, lines=[StockLine(sku, 10)], idempotency_key="seed-wh")
    far = {"latitude": "39.908700", "longitude": "116.397500"}  # Beijing, 1,000 km away

    order = deliver(warehouse, sku, member, {**ADDRESS, **far})

    assert (order.store, order.address) == (warehouse, {**ADDRESS, **far})


def test_an_address_without_coordinates_is_delivered_to(riders, water, member):
    """The H5 address form, the partner API and the staff API give no coordinates: the
    riders' store takes the address on its city and district, as before the rule."""
    order = deliver(riders, water, member, ADDRESS)

    assert order.address == ADDRESS


def test_a_partner_order_carries_no_coordinates_and_is_placed(riders, water):
    order = checkout_place(
        channel=Channel.PARTNER,
        store=riders,
        fulfilment=Fulfilment.DELIVERY,
        lines=[BasketLine(water.pk, 1)],
        client_reference="partner-1",
        address=ADDRESS,
    )

    assert (order.channel, order.address) == ("partner", ADDRESS)


@pytest.mark.parametrize(
    ("coordinates", "field", "value"),
    [
        ({"latitude": "31.228900"}, "address.longitude", ""),
        ({"longitude": "121.440100"}, "address.latitude", ""),
        ({"latitude": "north", "longitude": "121.440100"}, "address.latitude", "north"),
        ({"latitude": "31.228900", "longitude": "181"}, "address.longitude", "181"),
        ({"latitude": "nan", "longitude": "121.440100"}, "address.latitude", "nan"),
        ({"latitude": True, "longitude": "121.440100"}, "address.latitude", "True"),
    ],
    ids=["no longitude", "no latitude", "not a number", "off the globe", "NaN", "a boolean"],
)
def test_broken_coordinates_are_refused_and_nothing_changes(
    riders, water, member, coordinates, field, value
):
    before = books(riders, water)

    with pytest.raises(BusinessError) as refused:
        deliver(riders, water, member, {**ADDRESS, **coordinates})

    error = refused.value
    assert (error.status_code, error.code, error.fields) == (
        400,
        "invalid_address",
        {field: [value]},
    )
    assert books(riders, water) == before


def test_a_repeated_reference_answers_the_first_order_before_any_address_check(
    riders, water, member
):
    first = deliver(riders, water, member, {**ADDRESS, **NEAR}, reference="again")

    assert deliver(riders, water, member, {**ADDRESS, **FAR}, reference="again") == first
    assert Order.objects.count() == 1
