"""Reads of stock: a store's rows, availability per (store, SKU), the nearest stores able to
serve a basket (exact distances, filters, refusals, fixed query counts) and reorder
suggestions (the velocity window, the arithmetic, the order, one query)."""

import math
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count
from zoneinfo import ZoneInfo

import pytest
import time_machine

from inventory.models import StockItem, StockMovement
from inventory.selectors import (
    LineAvailability,
    Service,
    availability_for_skus,
    low_stock,
    nearest_stores_for_basket,
    stock_at_store,
)
from inventory.services import (
    ReserveLine,
    StockLine,
    stock_consume,
    stock_receive,
    stock_reserve,
    stock_return,
    stock_sell_at_counter,
)
from retail.errors import BusinessError
from retail.geo import EARTH_RADIUS_M, haversine_m
from retail.models import Store
from tests.factories import SKUFactory, StockItemFactory, StoreFactory

pytestmark = pytest.mark.django_db

Reason = StockMovement.Reason


def codes(items) -> list[str]:
    return [item.sku.code for item in items]


# --- stock_at_store ----------------------------------------------------------------------------


@pytest.fixture
def shelf(store_a, store_b):
    """Four rows in store_a, created out of code order, and one in store_b.

    available = on_hand - reserved; available_online also keeps the safety stock back, never
    below 0 (P0004 would be -2).
    """
    rows = {
        "P0003": dict(on_hand=4, reserved=4, safety_stock=0),  # 0 / 0
        "P0001": dict(on_hand=10, reserved=2, safety_stock=3),  # 8 / 5
        "P0004": dict(on_hand=3, reserved=1, safety_stock=4),  # 2 / 0
        "P0002": dict(on_hand=5, reserved=0, safety_stock=5),  # 5 / 0
    }
    skus = {}
    for code, numbers in rows.items():
        skus[code] = SKUFactory(code=code)
        StockItemFactory(store=store_a, sku=skus[code], **numbers)
    StockItemFactory(store=store_b, sku=skus["P0001"], on_hand=99)
    return skus


def test_stock_at_store_lists_only_that_stores_rows_by_sku_code(store_a, store_b, shelf):
    items = list(stock_at_store(store=store_a))

    assert codes(items) == ["P0001", "P0002", "P0003", "P0004"]
    assert {item.store_id for item in items} == {store_a.pk}
    assert [(item.available, item.available_online) for item in items] == [
        (8, 5),
        (5, 0),
        (0, 0),
        (2, 0),
    ]
    assert codes(stock_at_store(store=store_b.pk)) == ["P0001"]


def test_stock_at_store_keeps_the_skus_asked_for_given_as_objects_or_ids(store_a, shelf):
    asked = [shelf["P0004"], shelf["P0002"].pk]

    assert codes(stock_at_store(store=store_a, skus=asked)) == ["P0002", "P0004"]
    assert codes(stock_at_store(store=store_a, skus=(s for s in [shelf["P0003"]]))) == ["P0003"]
    assert codes(stock_at_store(store=store_a, skus=[])) == []


def test_available_and_available_online_can_be_filtered_and_ordered_on(store_a, shelf):
    items = stock_at_store(store=store_a)

    assert codes(items.filter(available__gt=0)) == ["P0001", "P0002", "P0004"]
    assert codes(items.filter(available=0)) == ["P0003"]
    assert codes(items.filter(available_online__gt=0)) == ["P0001"]
    # P0004's on_hand - reserved - safety_stock is -2: the alias floors it at 0 like the property.
    assert codes(items.filter(available_online=0)) == ["P0002", "P0003", "P0004"]
    assert codes(items.order_by("-available", "sku__code")) == ["P0001", "P0002", "P0004", "P0003"]
    assert codes(items.order_by("available_online", "-sku__code")) == [
        "P0004",
        "P0003",
        "P0002",
        "P0001",
    ]


def test_stock_at_store_reads_rows_skus_and_products_in_one_query(
    store_a, shelf, django_assert_num_queries
):
    with django_assert_num_queries(1):
        names = [(item.sku.code, item.sku.product.name) for item in stock_at_store(store=store_a)]

    assert names == [(code, shelf[code].product.name) for code in sorted(shelf)]


# --- availability_for_skus ---------------------------------------------------------------------


def test_availability_counts_every_pair_asked_and_missing_pairs_are_zero(
    store_a, store_b, django_assert_num_queries
):
    water, tea, juice = SKUFactory(), SKUFactory(), SKUFactory()
    StockItemFactory(store=store_a, sku=water, on_hand=10, reserved=3, safety_stock=4)
    StockItemFactory(store=store_b, sku=tea, on_hand=2, reserved=0, safety_stock=5)
    StockItemFactory(store=store_b, sku=water, on_hand=6, reserved=6, safety_stock=0)
    StockItemFactory(store=store_a, sku=juice, on_hand=50)  # not asked for
    asked = dict(sku_ids=[water.pk, tea.pk], store_ids=[store_a.pk, store_b.pk])

    with django_assert_num_queries(1):
        at_counter = availability_for_skus(**asked, online=False)
    with django_assert_num_queries(1):
        online = availability_for_skus(**asked, online=True)

    assert at_counter == {
        (store_a.pk, water.pk): 7,
        (store_a.pk, tea.pk): 0,
        (store_b.pk, water.pk): 0,
        (store_b.pk, tea.pk): 2,
    }
    # Online keeps the safety stock back and never goes below 0 (tea at store_b: 2 - 5).
    assert online == {
        (store_a.pk, water.pk): 3,
        (store_a.pk, tea.pk): 0,
        (store_b.pk, water.pk): 0,
        (store_b.pk, tea.pk): 0,
    }


def test_availability_of_nothing_asks_nothing(store_a, django_assert_num_queries):
    sku = SKUFactory()
    StockItemFactory(store=store_a, sku=sku, on_hand=5)

    with django_assert_num_queries(0):
        assert availability_for_skus(sku_ids=[], store_ids=[store_a.pk], online=True) == {}
        assert availability_for_skus(sku_ids=[sku.pk], store_ids=[], online=False) == {}


# --- nearest_stores_for_basket: distances ------------------------------------------------------

# The shopper stands by People's Square; coordinates are GCJ-02, to 6 decimals as stored.
SHOPPER = (31.230000, 121.470000)


def chord_distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """The great-circle distance through the straight chord between the two points as unit
    vectors: another formula than the haversine the code uses, on the same sphere."""

    def unit(lat: float, lng: float) -> tuple[float, float, float]:
        phi, lam = math.radians(lat), math.radians(lng)
        return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))

    return 2 * EARTH_RADIUS_M * math.asin(math.dist(unit(lat1, lng1), unit(lat2, lng2)) / 2)


def test_haversine_matches_a_known_distance_and_an_independent_formula():
    # Along a meridian the distance is exactly R * Δφ: 0.01° of latitude is 1111.95 m.
    assert EARTH_RADIUS_M * math.radians(0.01) == pytest.approx(1111.9508, abs=1e-4)
    assert haversine_m(31.23, 121.47, 31.24, 121.47) == pytest.approx(1111.9508, abs=1e-4)
    # 静安寺 to 陆家嘴, 5.37 km across the river.
    assert haversine_m(31.2235, 121.4459, 31.238, 121.4998) == pytest.approx(
        chord_distance_m(31.2235, 121.4459, 31.238, 121.4998), abs=1e-6
    )


# (code, name, latitude, longitude, metres from SHOPPER rounded, services)
SHANGHAI = [
    ("SH001", "静安寺店", "31.223500", "121.445900", 2403, dict(ship=True, delivery=3000)),
    ("SH002", "人民广场店", "31.232400", "121.475800", 613, dict(ship=False, delivery=500)),
    ("SH003", "陆家嘴店", "31.238000", "121.499800", 2970, dict(ship=True, pickup=False)),
    ("SH004", "徐家汇店", "31.195700", "121.437000", 4939, dict(ship=True, delivery=5000)),
    ("SH005", "虹桥店", "31.197000", "121.320000", 14729, dict(ship=True, delivery=20000)),
]


def test_expected_distances_are_right():
    for _code, _name, lat, lng, metres, _services in SHANGHAI:
        assert round(chord_distance_m(*SHOPPER, float(lat), float(lng))) == metres


@pytest.fixture
def basket_skus():
    return SKUFactory(code="WATER-550"), SKUFactory(code="TEA-500")


@pytest.fixture
def shanghai(basket_skus):
    """Five stores around the shopper, plus a warehouse and a closed store nearer than any,
    both full of stock. Per store, (water, tea) as (on_hand, reserved, safety_stock)."""
    water, tea = basket_skus
    stock = {
        "SH001": [(5, 1, 0), (3, 0, 0)],  # online 4, 3
        "SH002": [(10, 4, 5), None],  # online 1 (at the counter 6); no tea row
        "SH003": [(20, 0, 0), (20, 0, 0)],
        "SH004": [(1, 0, 0), (0, 0, 0)],
        "SH005": [(9, 0, 0), (9, 0, 0)],
    }
    stores = {}
    for code, name, lat, lng, _metres, services in SHANGHAI:
        stores[code] = StoreFactory(
            code=code,
            name=name,
            latitude=Decimal(lat),
            longitude=Decimal(lng),
            offers_pickup=services.get("pickup", True),
            offers_ship_from_store=services["ship"],
            delivery_radius_m=services.get("delivery", 0),
        )
    stores["WH01"] = StoreFactory(
        code="WH01",
        kind=Store.Kind.WAREHOUSE,
        latitude=Decimal("31.230100"),
        longitude=Decimal("121.470100"),
        offers_pickup=False,
        offers_counter_sales=False,
        offers_ship_from_store=True,
    )
    stores["SH009"] = StoreFactory(
        code="SH009",
        active=False,
        latitude=Decimal("31.230200"),
        longitude=Decimal("121.470200"),
        offers_ship_from_store=True,
        delivery_radius_m=5000,
    )
    stock["WH01"] = stock["SH009"] = [(500, 0, 0), (500, 0, 0)]
    for code, rows in stock.items():
        for sku, row in zip((water, tea), rows, strict=True):
            if row is not None:
                on_hand, reserved, safety_stock = row
                StockItemFactory(
                    store=stores[code],
                    sku=sku,
                    on_hand=on_hand,
                    reserved=reserved,
                    safety_stock=safety_stock,
                )
    return stores


def summary(options) -> list[tuple[str, int, bool]]:
    return [(option.store.code, option.distance_m, option.can_serve_all) for option in options]


def find(lines=None, **kwargs):
    latitude, longitude = kwargs.pop("at", SHOPPER)
    return nearest_stores_for_basket(
        latitude=latitude, longitude=longitude, lines=lines or [], **kwargs
    )


def test_nearest_stores_sorted_by_exact_distance_with_each_lines_availability(
    shanghai, basket_skus
):
    water, tea = basket_skus

    options = find(lines=[(water.pk, 3), (tea.pk, 3)])

    # Within the default 10 km; SH005 (14.7 km), the warehouse and the closed store are not.
    assert summary(options) == [
        ("SH002", 613, False),
        ("SH001", 2403, True),
        ("SH003", 2970, True),
        ("SH004", 4939, False),
    ]
    assert [option.lines for option in options] == [
        [LineAvailability(water.pk, 3, 1, False), LineAvailability(tea.pk, 3, 0, False)],
        [LineAvailability(water.pk, 3, 4, True), LineAvailability(tea.pk, 3, 3, True)],
        [LineAvailability(water.pk, 3, 20, True), LineAvailability(tea.pk, 3, 20, True)],
        [LineAvailability(water.pk, 3, 1, False), LineAvailability(tea.pk, 3, 0, False)],
    ]
    assert options[0].store == shanghai["SH002"]


def test_at_the_counter_the_safety_stock_counts(shanghai, basket_skus):
    water, _tea = basket_skus

    [nearest, *_rest] = find(lines=[(water.pk, 3)], online=False)

    assert nearest.store.code == "SH002"
    assert nearest.lines == [LineAvailability(water.pk, 3, 6, True)]
    assert nearest.can_serve_all is True


def test_the_radius_cuts_on_the_exact_distance(shanghai, basket_skus):
    near = [("SH002", 613, True), ("SH001", 2403, True)]
    # SH003 is 2969.69 m away.
    assert summary(find(radius_m=2969)) == near
    assert summary(find(radius_m=2970)) == [*near, ("SH003", 2970, True)]
    # SH004 is 4939.16 m away: shown as 4939 m, but outside a 4939 m radius.
    assert summary(find(radius_m=4939)) == [*near, ("SH003", 2970, True)]
    assert summary(find(radius_m=4940)) == [*near, ("SH003", 2970, True), ("SH004", 4939, True)]
    assert summary(find(radius_m=15_000)) == [
        *near,
        ("SH003", 2970, True),
        ("SH004", 4939, True),
        ("SH005", 14729, True),
    ]


def test_a_store_due_north_at_the_edge_of_the_radius(store_a):
    # 0.01° of latitude due north: 1111.95 m, on the bounding box's own edge.
    Store.objects.filter(pk=store_a.pk).update(
        latitude=Decimal("31.240000"), longitude=Decimal("121.470000")
    )

    assert summary(find(radius_m=1111)) == []
    assert summary(find(radius_m=1112)) == [("SH001", 1112, True)]


def test_equally_distant_stores_are_ordered_by_code():
    for code in ["SH012", "SH010", "SH011"]:
        StoreFactory(code=code, latitude=Decimal("31.240000"), longitude=Decimal("121.470000"))

    assert summary(find()) == [("SH010", 1112, True), ("SH011", 1112, True), ("SH012", 1112, True)]


@pytest.mark.parametrize(
    "service, expected",
    [
        (None, ["SH002", "SH001", "SH003", "SH004"]),
        ("pickup", ["SH002", "SH001", "SH004"]),
        ("ship_from_store", ["SH001", "SH003", "SH004"]),
        # SH002 delivers only 500 m (the shopper is 613 m away), SH003 not at all.
        ("delivery", ["SH001", "SH004"]),
        (Service.DELIVERY, ["SH001", "SH004"]),
    ],
)
def test_a_service_keeps_the_stores_offering_it(shanghai, service, expected):
    assert [option.store.code for option in find(service=service)] == expected


def test_delivery_needs_the_shopper_within_the_stores_own_radius(shanghai):
    # SH004 is 4939.16 m away.
    Store.objects.filter(code="SH004").update(delivery_radius_m=4939)
    assert summary(find(service="delivery")) == [("SH001", 2403, True)]

    Store.objects.filter(code="SH004").update(delivery_radius_m=4940)
    assert summary(find(service="delivery")) == [("SH001", 2403, True), ("SH004", 4939, True)]

    # A delivery radius reaching further than the search radius does not widen it.
    assert summary(find(service="delivery", radius_m=4000)) == [("SH001", 2403, True)]


def test_only_complete_and_limit(shanghai, basket_skus):
    water, tea = basket_skus
    lines = [(water.pk, 3), (tea.pk, 3)]

    assert summary(find(lines=lines, only_complete=True)) == [
        ("SH001", 2403, True),
        ("SH003", 2970, True),
    ]
    # The limit counts complete stores, not the incomplete nearer ones.
    assert summary(find(lines=lines, only_complete=True, limit=1)) == [("SH001", 2403, True)]
    assert summary(find(lines=lines, limit=2)) == [("SH002", 613, False), ("SH001", 2403, True)]
    assert summary(find(lines=lines, only_complete=True, radius_m=2500)) == [("SH001", 2403, True)]
    assert find(lines=[(water.pk, 21)], only_complete=True) == []


def test_an_empty_basket_lists_the_stores_in_reach(shanghai):
    options = find()

    assert summary(options) == [
        ("SH002", 613, True),
        ("SH001", 2403, True),
        ("SH003", 2970, True),
        ("SH004", 4939, True),
    ]
    assert [option.lines for option in options] == [[], [], [], []]


@pytest.mark.parametrize(
    "at, field, message",
    [
        ((90.5, 121.47), "latitude", "Latitude must be between -90 and 90."),
        ((-90.000001, 121.47), "latitude", "Latitude must be between -90 and 90."),
        ((math.nan, 121.47), "latitude", "Latitude must be between -90 and 90."),
        ((math.inf, 121.47), "latitude", "Latitude must be between -90 and 90."),
        ((31.23, 180.5), "longitude", "Longitude must be between -180 and 180."),
        ((31.23, -181), "longitude", "Longitude must be between -180 and 180."),
        ((31.23, math.nan), "longitude", "Longitude must be between -180 and 180."),
    ],
)
def test_a_location_off_the_globe_is_refused(
    english, shanghai, at, field, message, django_assert_num_queries
):
    with django_assert_num_queries(0), pytest.raises(BusinessError) as refused:
        find(at=at)

    error = refused.value
    assert (error.code, error.status_code, error.message) == ("invalid_location", 400, message)
    assert error.fields == {field: [message]}


@pytest.mark.parametrize("at", [(90, 180), (-90, -180), (0.0, 0.0)])
def test_the_globes_edges_are_valid_locations(shanghai, at):
    assert find(at=at) == []


NOT_POSITIVE = "Quantity must be a positive whole number."


@pytest.mark.parametrize(
    "quantities, code, message",
    [
        ([("water", 1), ("water", 2)], "duplicate_line", "Each SKU may appear only once."),
        ([("water", 1), ("tea", 0)], "invalid_quantity", NOT_POSITIVE),
        ([("water", -1)], "invalid_quantity", NOT_POSITIVE),
    ],
)
def test_a_bad_basket_is_refused(
    english, shanghai, basket_skus, quantities, code, message, django_assert_num_queries
):
    skus = dict(zip(("water", "tea"), basket_skus, strict=True))
    lines = [(skus[name].pk, quantity) for name, quantity in quantities]

    with django_assert_num_queries(0), pytest.raises(BusinessError) as refused:
        find(lines=lines)

    error = refused.value
    assert (error.code, error.status_code, error.message) == (code, 400, message)
    assert error.fields == {"lines": [message]}


def test_an_unknown_service_is_refused(english, shanghai, django_assert_num_queries):
    with django_assert_num_queries(0), pytest.raises(BusinessError) as refused:
        find(service="drone")

    error = refused.value
    assert (error.code, error.status_code, error.message) == (
        "invalid_service",
        400,
        "Unknown service.",
    )
    assert error.fields == {"service": ["Unknown service."]}


# --- nearest_stores_for_basket: queries --------------------------------------------------------


@pytest.mark.parametrize("store_count, line_count", [(2, 1), (30, 10)])
@pytest.mark.parametrize("only_complete", [False, True])
def test_two_queries_whatever_the_number_of_stores_and_lines(
    store_count, line_count, only_complete, django_assert_num_queries
):
    # Stores on a 6 × 5 grid 0.001° apart, north-east of the shopper; every store holds
    # every SKU except store 0, which lacks the last one.
    stores = [
        StoreFactory(
            code=f"SH{n:03d}",
            latitude=Decimal("31.230000") + Decimal("0.001") * (n // 5),
            longitude=Decimal("121.470000") + Decimal("0.001") * (n % 5),
        )
        for n in range(store_count)
    ]
    skus = [SKUFactory() for _ in range(line_count)]
    StockItem.objects.bulk_create(
        StockItem(store=store, sku=sku, on_hand=5)
        for store in stores
        for sku in skus
        if (store.code, sku) != ("SH000", skus[-1])
    )
    lines = [(sku.pk, 2) for sku in skus]

    with django_assert_num_queries(2):
        options = find(lines=lines, limit=50, only_complete=only_complete)
        listed = [
            (option.store.code, option.distance_m, option.can_serve_all, len(option.lines))
            for option in options
        ]

    expected = sorted(
        (round(chord_distance_m(*SHOPPER, float(s.latitude), float(s.longitude))), s.code)
        for s in stores
    )
    assert listed == [
        (code, metres, code != "SH000", line_count)
        for metres, code in expected
        if code != "SH000" or not only_complete
    ]


def test_one_query_without_a_basket_or_without_a_store_in_reach(
    shanghai, basket_skus, django_assert_num_queries
):
    water, _tea = basket_skus

    with django_assert_num_queries(1):
        assert len(find()) == 4
    with django_assert_num_queries(1):
        assert find(lines=[(water.pk, 1)], radius_m=500) == []


# --- low_stock ---------------------------------------------------------------------------------

NOW = datetime(2025, 3, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
_keys = count()


@pytest.fixture(autouse=True)
def _velocity_window(settings):
    settings.STOCK_VELOCITY_DAYS = 28


def moved(item: StockItem, quantity: int, *, at: datetime, reason: str = Reason.COUNTER_SALE):
    """A ledger row written at ``at``: ``created_at`` is ``auto_now_add``, so only the clock
    sets it (the append-only trigger allows the INSERT; a value passed in would be ignored)."""
    with time_machine.travel(at, tick=False):
        StockMovement.objects.create(
            stock_item=item,
            quantity=quantity,
            on_hand_after=item.on_hand,
            reason=reason,
            idempotency_key=f"test:{next(_keys)}",
        )


def item_at(store, code: str, **numbers) -> StockItem:
    return StockItemFactory(store=store, sku=SKUFactory(code=code), **numbers)


def figures(suggestions) -> list[tuple]:
    return [
        (
            s.stock_item.sku.code,
            s.available,
            s.units_sold,
            s.velocity_per_day,
            s.reorder_point,
            s.suggested_quantity,
        )
        for s in suggestions
    ]


def test_reorder_point_and_suggestion_rounded_up_to_whole_packs(store_a, store_b):
    # 56 sold in 28 days: 2 a day. Reorder point 4 + 2 × 2 = 8; available 10 - 3 = 7.
    # Cover lead + review (9 days): 18 + 4 = 22; 22 - 7 = 15, in packs of 6: 18.
    water = item_at(
        store_a, "WATER", on_hand=10, reserved=3, safety_stock=4, lead_time_days=2, pack_size=6
    )
    moved(water, -50, at=NOW - timedelta(days=20))
    moved(water, -6, at=NOW - timedelta(days=1), reason=Reason.ONLINE_FULFILMENT)
    # Another store's sales of the same SKU are that store's.
    elsewhere = StockItemFactory(store=store_b, sku=water.sku, on_hand=0)
    moved(elsewhere, -500, at=NOW - timedelta(days=1))

    assert figures(low_stock(store=store_a, now=NOW)) == [("WATER", 7, 56, 2.0, 8, 18)]


def test_the_arithmetic_stays_in_integers(store_a):
    # 116 sold: over 7 days of cover that is exactly 29 units, which floats make 29.000000000000004
    # and would round up to 30. Reorder point ceil(116 × 3 / 28) = ceil(12.43) = 13.
    tea = item_at(store_a, "TEA", on_hand=5, lead_time_days=3, review_days=4)
    moved(tea, -116, at=NOW - timedelta(days=3))

    assert figures(low_stock(store=store_a, now=NOW)) == [("TEA", 5, 116, 116 / 28, 13, 24)]


def test_an_item_at_its_reorder_point_is_low_one_above_is_not(store_a):
    numbers = dict(safety_stock=4, lead_time_days=2, review_days=7, pack_size=6)
    at_point = item_at(store_a, "AT-POINT", on_hand=8, **numbers)
    above = item_at(store_a, "ABOVE", on_hand=9, **numbers)
    for item in (at_point, above):
        moved(item, -56, at=NOW - timedelta(days=10))

    # 22 - 8 = 14, in packs of 6: 18.
    assert figures(low_stock(store=store_a, now=NOW)) == [("AT-POINT", 8, 56, 2.0, 8, 18)]


def test_the_velocity_window_is_the_days_before_now_ending_at_now(store_a):
    item = item_at(store_a, "EDGE", on_hand=2, lead_time_days=2, review_days=7)
    start = NOW - timedelta(days=28)
    moved(item, -100, at=start)  # exactly 28 days ago: outside
    moved(item, -13, at=start + timedelta(microseconds=1))
    moved(item, -15, at=NOW)  # at now: inside
    moved(item, -200, at=NOW + timedelta(microseconds=1))  # after now: outside
    # Returns are not netted off; other outflows are not sales.
    moved(item, 10, at=NOW - timedelta(days=1), reason=Reason.RETURN)
    moved(item, -40, at=NOW - timedelta(days=1), reason=Reason.DAMAGE)
    moved(item, -30, at=NOW - timedelta(days=1), reason=Reason.TRANSFER_OUT)
    moved(item, -20, at=NOW - timedelta(days=1), reason=Reason.COUNT_ADJUSTMENT)

    # 28 sold: 1 a day. Reorder point 2; cover 9 days: 9 - 2 = 7.
    assert figures(low_stock(store=store_a, now=NOW)) == [("EDGE", 2, 28, 1.0, 2, 7)]


def test_sales_through_the_services_count_and_returns_do_not_net_them(store_a):
    sku = SKUFactory(code="JUICE")
    with time_machine.travel(NOW - timedelta(days=10), tick=False):
        stock_receive(store=store_a, lines=[StockLine(sku, 100)], idempotency_key="DN-1")
    with time_machine.travel(NOW - timedelta(days=5), tick=False):
        stock_sell_at_counter(store=store_a, lines=[StockLine(sku, 30)], idempotency_key="POS-1")
    with time_machine.travel(NOW - timedelta(days=2), tick=False):
        stock_reserve(store=store_a, lines=[ReserveLine(sku, 10, "SO1/1")])
        stock_consume(line_key="SO1/1")
    with time_machine.travel(NOW - timedelta(days=1), tick=False):
        stock_return(store=store_a, lines=[StockLine(sku, 20)], idempotency_key="RMA-1")
    StockItem.objects.filter(store=store_a, sku=sku).update(safety_stock=78)

    # on_hand 80; 40 sold. Reorder point 78 + ceil(80 / 28) = 81; 78 + ceil(360 / 28) - 80 = 11.
    assert figures(low_stock(store=store_a, now=NOW)) == [("JUICE", 80, 40, 40 / 28, 81, 11)]


def test_what_does_not_sell_is_listed_only_for_its_safety_stock(store_a):
    item_at(store_a, "EMPTY-UNSOLD", on_hand=0)
    old = item_at(store_a, "SOLD-LONG-AGO", on_hand=0)
    moved(old, -5, at=NOW - timedelta(days=40))
    damaged = item_at(store_a, "ONLY-DAMAGED", on_hand=0)
    moved(damaged, -5, at=NOW - timedelta(days=1), reason=Reason.DAMAGE)
    item_at(store_a, "KEPT-SAFE", on_hand=3, safety_stock=5, pack_size=4)
    item_at(store_a, "SAFE-ENOUGH", on_hand=6, safety_stock=5)

    # 5 - 3 = 2, in packs of 4: 4.
    assert figures(low_stock(store=store_a, now=NOW)) == [("KEPT-SAFE", 3, 0, 0.0, 5, 4)]


def test_the_most_urgent_come_first_then_by_sku_code(store_a):
    item_at(store_a, "D-AT-POINT", on_hand=5, safety_stock=5)  # 0 from its point
    item_at(store_a, "C-SHORT", on_hand=0, safety_stock=3)  # -3
    item_at(store_a, "A-EMPTY", on_hand=0, safety_stock=10)  # -10
    item_at(store_a, "B-SHORT", on_hand=1, reserved=1, safety_stock=3)  # -3
    selling = item_at(store_a, "E-SELLING", on_hand=3)  # reorder point 4: -1
    moved(selling, -56, at=NOW - timedelta(days=1))

    assert codes(s.stock_item for s in low_stock(store=store_a, now=NOW)) == [
        "A-EMPTY",
        "B-SHORT",
        "C-SHORT",
        "E-SELLING",
        "D-AT-POINT",
    ]


def test_now_defaults_to_the_clock(store_a):
    item = item_at(store_a, "CLOCK", on_hand=0)
    moved(item, -28, at=NOW)
    moved(item, -100, at=NOW - timedelta(days=28))

    with time_machine.travel(NOW, tick=False):
        assert figures(low_stock(store=store_a)) == [("CLOCK", 0, 28, 1.0, 2, 9)]


@pytest.mark.parametrize("item_count", [1, 20])
def test_low_stock_is_one_query_whatever_the_number_of_items(
    store_a, store_b, item_count, django_assert_num_queries
):
    for n in range(item_count):
        item = item_at(store_a, f"SKU{n:03d}", on_hand=1)
        moved(item, -14, at=NOW - timedelta(days=3))
        moved(item, -14, at=NOW - timedelta(days=2), reason=Reason.ONLINE_FULFILMENT)
        StockItemFactory(store=store_b, sku=item.sku, on_hand=0, safety_stock=1)

    with django_assert_num_queries(1):
        suggestions = low_stock(store=store_a.pk, now=NOW)
        products = [s.stock_item.sku.product.name for s in suggestions]

    assert len(products) == item_count
    assert set(figures(suggestions)) == {
        (f"SKU{n:03d}", 1, 28, 1.0, 2, 8) for n in range(item_count)
    }


@pytest.mark.parametrize(
    ("kwargs", "code", "field"),
    [
        ({"radius_m": 0}, "invalid_radius", "radius_m"),
        ({"radius_m": -5}, "invalid_radius", "radius_m"),
        ({"radius_m": 100_001}, "invalid_radius", "radius_m"),
        ({"limit": 0}, "invalid_limit", "limit"),
        ({"limit": -1}, "invalid_limit", "limit"),
        ({"limit": 101}, "invalid_limit", "limit"),
    ],
)
def test_nearest_stores_refuses_a_bad_radius_or_limit(
    db, kwargs, code, field, django_assert_num_queries
):
    with django_assert_num_queries(0), pytest.raises(BusinessError) as refused:
        nearest_stores_for_basket(latitude=31.2235, longitude=121.4459, lines=[], **kwargs)

    assert (refused.value.code, refused.value.status_code, list(refused.value.fields)) == (
        code,
        400,
        [field],
    )


def test_nearest_stores_takes_decimal_coordinates_and_refuses_a_decimal_nan(db):
    with pytest.raises(BusinessError) as refused:
        nearest_stores_for_basket(latitude=Decimal("NaN"), longitude=Decimal("121.4459"), lines=[])

    assert refused.value.code == "invalid_location"
    assert (
        nearest_stores_for_basket(
            latitude=Decimal("31.2235"), longitude=Decimal("121.4459"), lines=[]
        )
        == []
    )
