"""The console's ship-from-store desk: the queue, the pick list, pack and ship (split parcels
too); the service's refusals shown and changing nothing; who may open what."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings as django_settings

from inventory.models import StockItem, StockMovement
from orders.console.fulfilment import CARRIERS
from orders.models import ActorKind, Order, OrderEvent, OrderLine, Shipment
from orders.services import shipment_create
from orders.transitions import order_event_record
from retail.access import ROLE_PERMISSIONS, Role
from retail.models import OutboxEvent
from tests import factories

pytestmark = pytest.mark.django_db

S = Order.Status
SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2025, 11, 25, 10, 30, tzinfo=SHANGHAI)
QUEUE = "/console/SH001/fulfilment/"
PICK_LIST = "/console/SH001/fulfilment/pick-list/"


@pytest.fixture(autouse=True)
def _english(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def clerk(client, clerk_a):
    client.force_login(clerk_a)
    return clerk_a


def order_url(order: Order, store_code: str = "SH001") -> str:
    return f"/console/{store_code}/fulfilment/{order.pk}/"


def ship_url(order: Order, store_code: str = "SH001") -> str:
    return f"{order_url(order, store_code)}ship/"


def line_keys(order: Order) -> list[str]:
    return list(order.lines.order_by("pk").values_list("line_key", flat=True))


@pytest.fixture
def orders(desk_place, desk_goods, clock, clerk_a):
    """At store A, three paid delivery orders to ship, paid 10:30, 10:35 (its water shipped
    already) and 10:40; besides, none of which the queue shows: a paid order routed to a
    partner, a shipped one, a paid pickup order, an unpaid delivery order, and a paid delivery
    order of store B."""
    water, milk = desk_goods
    first = desk_place((water, 2), (milk, 1), fulfilment="delivery")
    clock.shift(timedelta(minutes=5))
    partly = desk_place((water, 1), (milk, 1), fulfilment="delivery")
    shipment_create(
        order=partly,
        carrier_code="ZTO",
        tracking_number="ZT0001",
        line_keys=line_keys(partly)[:1],
        actor=clerk_a,
    )
    clock.shift(timedelta(minutes=5))
    third = desk_place((water, 3), fulfilment="delivery")
    clock.shift(timedelta(minutes=5))
    routed = desk_place((milk, 1), fulfilment="delivery")
    # What partners.routing records when a rule gives the order to a partner.
    order_event_record(
        order=routed,
        kind="order.routed",
        actor=None,
        actor_kind=ActorKind.SYSTEM,
        note="顺丰同城",
        data={"partner": "顺丰同城"},
    )
    shipped = desk_place((water, 1), fulfilment="delivery")
    shipment_create(order=shipped, carrier_code="SF", tracking_number="SF0001", actor=clerk_a)
    pickup = desk_place((water, 1))
    unpaid = desk_place((water, 1), fulfilment="delivery", paid=False)
    store_b = factories.StoreFactory(code="SH002", name="人民广场店", offers_ship_from_store=True)
    factories.StockItemFactory(store=store_b, sku=water, on_hand=5)
    elsewhere = desk_place((water, 1), fulfilment="delivery", store=store_b)
    named = {
        "first": first,
        "partly": partly,
        "third": third,
        "routed": routed,
        "shipped": shipped,
        "pickup": pickup,
        "unpaid": unpaid,
        "elsewhere": elsewhere,
    }
    for order in named.values():
        order.refresh_from_db()
    return {**named, "water": water, "milk": milk}


def stock(store, sku) -> tuple[int, int]:
    item = StockItem.objects.get(store=store, sku=sku)
    return item.on_hand, item.reserved


def snapshot() -> dict:
    """Everything a refused action must leave as it was."""
    return {
        "orders": sorted(Order.objects.values_list("number", "status", "updated_at")),
        "lines": sorted(OrderLine.objects.values_list("line_key", "shipped")),
        "shipments": sorted(
            Shipment.objects.values_list("order_id", "carrier_code", "tracking_number")
        ),
        "parcel_lines": Shipment.lines.through.objects.count(),
        "stock": sorted(StockItem.objects.values_list("store_id", "sku_id", "on_hand", "reserved")),
        "movements": StockMovement.objects.count(),
        "events": OrderEvent.objects.count(),
        "outbox": OutboxEvent.objects.count(),
    }


# --- The queue ----------------------------------------------------------------------------------


def test_the_queue_lists_the_stores_paid_delivery_orders_to_ship_oldest_first(
    client, clerk, orders, desk_html
):
    first, partly, third = orders["first"], orders["partly"], orders["third"]

    page = desk_html(client.get(QUEUE))

    assert page.by_id("orders-to-ship").text == "3"
    assert page.by_id("units-to-ship").text == "7"
    assert page.by_id("queue").rows() == [
        ["", first.number, "11-25 10:30", "王小明 · 静安区", "矿泉水 ×2, 鲜牛奶 ×1", "3", "¥22.50"],
        [
            "",
            f"{partly.number} 1 line shipped",
            "11-25 10:35",
            "王小明 · 静安区",
            "鲜牛奶 ×1",
            "1",
            "¥20.50",
        ],
        ["", third.number, "11-25 10:40", "王小明 · 静安区", "矿泉水 ×3", "3", "¥12.00"],
    ]
    queue = page.by_id("queue")
    assert [box.attrs["value"] for box in queue.all("input", name="order")] == [
        str(first.pk),
        str(partly.pk),
        str(third.pk),
    ]
    assert [link.attrs["href"] for link in queue.all("a")] == [
        order_url(first),
        order_url(partly),
        order_url(third),
    ]
    assert page.by_id("queue-form").attrs["action"] == PICK_LIST


def test_an_empty_queue_says_so(client, clerk, desk_store, desk_html):
    page = desk_html(client.get(QUEUE))

    assert page.by_id("queue-empty").text == "No orders waiting to be shipped."
    assert (page.by_id("orders-to-ship").text, page.by_id("units-to-ship").text) == ("0", "0")


def _paid_delivery_orders(desk_place, desk_goods, count: int) -> None:
    water, milk = desk_goods
    for _index in range(count):
        desk_place((water, 1), (milk, 1), fulfilment="delivery")


@pytest.mark.parametrize("count", [3, 20])
def test_the_queue_costs_the_same_queries_for_3_or_20_orders(
    client, clerk, desk_place, desk_goods, django_assert_num_queries, count
):
    _paid_delivery_orders(desk_place, desk_goods, count)

    # Session, user, roles, store, the switcher's stores; the orders; their lines.
    with django_assert_num_queries(7):
        response = client.get(QUEUE)

    assert len(response.context["orders"]) == count


@pytest.mark.parametrize("count", [3, 20])
def test_the_pick_list_costs_the_same_queries_for_3_or_20_orders(
    client, clerk, desk_place, desk_goods, django_assert_num_queries, count
):
    _paid_delivery_orders(desk_place, desk_goods, count)

    # The frame's five; the orders; the lines summed by SKU.
    with django_assert_num_queries(7):
        response = client.get(PICK_LIST)

    assert [row["quantity"] for row in response.context["rows"]] == [count, count]


# --- The pick list ------------------------------------------------------------------------------


def test_the_pick_list_sums_the_unshipped_lines_of_the_whole_queue_by_sku(
    client, clerk, orders, desk_html
):
    page = desk_html(client.get(PICK_LIST))

    assert page.by_id("pick-list").rows() == [
        ["矿泉水 550ml", "WATER-550", "6901234567892", "5", "2", "☐"],
        ["鲜牛奶 1L", "MILK-1L", "6909876543212", "2", "2", "☐"],
    ]
    assert page.by_id("pick-units").text == "7"
    assert page.by_id("pick-orders").text == " ".join(
        orders[key].number for key in ("first", "partly", "third")
    )
    assert page.one("h2").text == "For 3 orders"
    assert page.by_id("pick-meta").text.startswith("SH001 · 静安寺店 · ")
    assert page.by_id("print").attrs["data-print"] == ""


def test_the_pick_list_of_chosen_orders_ignores_orders_not_in_the_queue(
    client, clerk, orders, desk_html
):
    chosen = [orders[key].pk for key in ("first", "partly", "routed", "shipped", "elsewhere")]

    page = desk_html(client.get(PICK_LIST, {"order": [*chosen, "nonsense", "9" * 30]}))

    assert page.by_id("pick-list").rows() == [
        ["矿泉水 550ml", "WATER-550", "6901234567892", "2", "1", "☐"],
        ["鲜牛奶 1L", "MILK-1L", "6909876543212", "2", "2", "☐"],
    ]
    assert page.by_id("pick-orders").text == f"{orders['first'].number} {orders['partly'].number}"
    assert page.by_id("pick-units").text == "4"


def test_a_pick_list_of_orders_none_of_which_waits_says_so(client, clerk, orders, desk_html):
    page = desk_html(client.get(PICK_LIST, {"order": [orders["elsewhere"].pk]}))

    assert page.by_id("pick-list") is None
    assert page.by_id("pick-empty").text == ("None of the chosen orders is waiting to be shipped.")


# --- The order and its parcels ------------------------------------------------------------------


def test_the_order_page_shows_the_address_the_lines_and_the_ship_form(
    client, clerk, orders, desk_html
):
    partly = orders["partly"]
    water_key, milk_key = line_keys(partly)

    page = desk_html(client.get(order_url(partly)))

    assert page.one("h1").text == f"Order {partly.number} paid"
    assert page.by_id("ship-to").one("p", class_="address").text == (
        "王小明 13912345678 上海市静安区愚园路168号5楼"
    )
    assert page.by_id("order-lines").rows() == [
        ["", "矿泉水 550ml", "WATER-550", "6901234567892", "1", "shipped"],
        ["", "鲜牛奶 1L", "MILK-1L", "6909876543212", "1", "—"],
    ]
    # Only the unshipped line can go in the parcel, ticked.
    boxes = page.by_id("order-lines").all("input", name="lines")
    assert [(box.attrs["value"], "checked" in box.attrs) for box in boxes] == [(milk_key, True)]
    assert water_key not in [box.attrs["value"] for box in boxes]
    form = page.by_id("ship-form")
    assert form.attrs["action"] == ship_url(partly)
    assert [
        (option.attrs["value"], option.text) for option in form.one("select").all("option")
    ] == [
        ("SF", "SF Express (SF)"),
        ("ZTO", "ZTO Express (ZTO)"),
        ("YTO", "YTO Express (YTO)"),
        ("STO", "STO Express (STO)"),
        ("YD", "Yunda Express (YD)"),
        ("JTSD", "J&T Express (JTSD)"),
        ("EMS", "EMS (China Post) (EMS)"),
        ("JD", "JD Logistics (JD)"),
        ("STORE", "Same-city delivery by the store (STORE)"),
    ]
    assert page.by_id("shipments").rows() == [
        ["ZTO Express", "ZT0001", "矿泉水 ×1", "2025-11-25 10:35", clerk.username]
    ]


def test_every_carrier_offered_is_one_the_wechat_upload_understands():
    delivery_ids = set(django_settings.WECHAT_DELIVERY_IDS)
    riders = {code.upper() for code in django_settings.WECHAT_SAME_CITY_CARRIERS}

    assert [code for code, _name in CARRIERS if code not in delivery_ids | riders] == []
    assert [code for code, _name in CARRIERS if code in riders] == ["STORE"]


def test_shipping_every_line_ships_the_order_and_consumes_its_stock(
    client, clerk, orders, desk_html, desk_store
):
    first, water, milk = orders["first"], orders["water"], orders["milk"]
    water_before, milk_before = stock(desk_store, water), stock(desk_store, milk)

    response = client.post(
        ship_url(first),
        {"carrier_code": "SF", "tracking_number": " SF1234567890 ", "lines": line_keys(first)},
    )

    assert (response.status_code, response["Location"]) == (302, QUEUE)
    page = desk_html(client.get(QUEUE))
    assert page.messages == [("success", f"Order {first.number} shipped: SF Express SF1234567890.")]
    assert [row[1].split()[0] for row in page.by_id("queue").rows()] == [
        orders["partly"].number,
        orders["third"].number,
    ]
    first.refresh_from_db()
    assert first.status == S.SHIPPED
    shipment = Shipment.objects.get(order=first)
    assert (shipment.carrier_code, shipment.tracking_number, shipment.created_by) == (
        "SF",
        "SF1234567890",
        clerk,
    )
    assert sorted(shipment.lines.values_list("line_key", flat=True)) == sorted(line_keys(first))
    assert list(first.lines.values_list("shipped", flat=True)) == [True, True]
    assert stock(desk_store, water) == (water_before[0] - 2, water_before[1] - 2)
    assert stock(desk_store, milk) == (milk_before[0] - 1, milk_before[1] - 1)
    assert sorted(
        StockMovement.objects.filter(reference=first.number).values_list(
            "stock_item__sku__code", "quantity", "reason", "actor"
        )
    ) == [
        ("MILK-1L", -1, "online_fulfilment", clerk.pk),
        ("WATER-550", -2, "online_fulfilment", clerk.pk),
    ]
    event = first.events.order_by("pk").last()
    assert (event.kind, event.actor, event.data) == (
        "order.shipped",
        clerk,
        {"cause": "shipment", "carrier_code": "SF", "tracking_number": "SF1234567890"},
    )
    shipped = OutboxEvent.objects.get(event_type="order.shipped", aggregate_id=str(first.pk))
    assert shipped.payload["order"]["shipments"][0]["tracking_number"] == "SF1234567890"


def test_a_split_parcel_leaves_the_order_paid_until_its_last_line_ships(
    client, clerk, orders, desk_html, desk_store
):
    first = orders["first"]
    water_key, milk_key = line_keys(first)

    split = client.post(
        ship_url(first), {"carrier_code": "JD", "tracking_number": "JD0001", "lines": [milk_key]}
    )
    split_page = desk_html(client.get(split["Location"]))
    first.refresh_from_db()
    status_after_split = first.status
    last = client.post(
        ship_url(first), {"carrier_code": "STORE", "tracking_number": "R-778", "lines": [water_key]}
    )

    assert (split.status_code, split["Location"]) == (302, order_url(first))
    assert split_page.messages == [
        (
            "success",
            f"Parcel JD Logistics JD0001 of order {first.number} recorded; 1 line still to ship.",
        )
    ]
    assert [
        box.attrs["value"] for box in split_page.by_id("order-lines").all("input", name="lines")
    ] == [water_key]
    assert status_after_split == S.PAID
    assert (last.status_code, last["Location"]) == (302, QUEUE)
    first.refresh_from_db()
    assert first.status == S.SHIPPED
    assert [
        (
            shipment.carrier_code,
            shipment.tracking_number,
            [line.line_key for line in shipment.lines.all()],
        )
        for shipment in Shipment.objects.filter(order=first).order_by("pk")
    ] == [("JD", "JD0001", [milk_key]), ("STORE", "R-778", [water_key])]
    assert list(first.events.values_list("kind", flat=True))[-2:] == [
        "order.partially_shipped",
        "order.shipped",
    ]


def test_sending_the_same_parcel_twice_records_it_once(client, clerk, orders, desk_html):
    partly = orders["partly"]
    milk_key = line_keys(partly)[1]
    first = client.post(
        ship_url(partly), {"carrier_code": "SF", "tracking_number": "SF777", "lines": [milk_key]}
    )
    client.get(first["Location"])  # where its message is shown
    before = snapshot()

    again = client.post(
        ship_url(partly), {"carrier_code": "SF", "tracking_number": "SF777", "lines": [milk_key]}
    )

    assert (again.status_code, again["Location"]) == (302, order_url(partly))
    assert desk_html(client.get(again["Location"])).messages == [
        ("info", "Parcel SF Express SF777 was recorded already.")
    ]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("tracking_taken", "This tracking number belongs to another order."),
        ("another_orders_line", "The parcel must hold lines of this order not shipped yet."),
        ("shipped_line", "The parcel must hold lines of this order not shipped yet."),
        ("no_line", "The parcel must hold lines of this order not shipped yet."),
        ("routed", "This order is fulfilled by a partner: it is not shipped from the store."),
        ("shipped_order", "Only paid delivery orders can be shipped."),
        ("pickup_order", "Only paid delivery orders can be shipped."),
        ("unpaid_order", "Only paid delivery orders can be shipped."),
    ],
)
def test_a_refused_parcel_is_explained_on_the_page_and_changes_nothing(
    client, clerk, orders, desk_html, case, message
):
    partly = orders["partly"]
    water_key, milk_key = line_keys(partly)
    target, data = partly, {"carrier_code": "SF", "tracking_number": "SF9000", "lines": [milk_key]}
    if case == "tracking_taken":
        data["tracking_number"] = "SF0001"  # the shipped order's parcel
    elif case == "another_orders_line":
        data["lines"] = [line_keys(orders["third"])[0]]
    elif case == "shipped_line":
        data["lines"] = [water_key, milk_key]
    elif case == "no_line":
        data["lines"] = []
    else:
        target = orders[case.removesuffix("_order")]
        data["lines"] = line_keys(target)
    before = snapshot()

    response = client.post(ship_url(target), data)

    assert response.status_code == 200
    page = desk_html(response)
    assert page.by_id("refusal").text == message
    assert page.messages == []
    if page.by_id("ship-form").one("select") is not None:
        # The form comes back as it was sent.
        assert page.by_id("id_tracking_number").attrs["value"] == data["tracking_number"]
        assert page.by_id("id_carrier_code").one("option", selected="").attrs["value"] == "SF"
    assert snapshot() == before
    # Nothing waits to show up on the next page either.
    assert desk_html(client.get(QUEUE)).messages == []


def test_the_routed_order_page_says_a_partner_ships_it_and_offers_no_form(
    client, clerk, orders, desk_html
):
    page = desk_html(client.get(order_url(orders["routed"])))

    assert page.by_id("routed").text == (
        "This order was routed to 顺丰同城: the partner ships it, not the store."
    )
    assert page.by_id("pack") is None
    assert page.by_id("order-lines").all("input") == []


def test_a_shipped_order_page_says_there_is_nothing_to_ship(client, clerk, orders, desk_html):
    page = desk_html(client.get(order_url(orders["shipped"])))

    assert page.by_id("not-shippable").text == "Nothing to ship: this order is “shipped”."
    assert page.by_id("pack") is None
    assert page.by_id("shipments").rows() == [
        [
            "SF Express",
            "SF0001",
            "矿泉水 ×1",
            "2025-11-25 10:45",
            orders["shipped"].events.last().actor.username,
        ]
    ]


def test_a_pickup_orders_page_says_it_is_not_shipped(client, clerk, orders, desk_html):
    page = desk_html(client.get(order_url(orders["pickup"])))

    assert page.by_id("not-shippable").text == "Nothing to ship: this is not a delivery order."
    assert (page.by_id("pack"), page.by_id("ship-to").one("p", class_="address")) == (None, None)


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        (
            {"carrier_code": "SF", "tracking_number": "  "},
            "tracking_number",
            "This field is required.",
        ),
        (
            {"carrier_code": "UPS", "tracking_number": "1Z999"},
            "carrier_code",
            "Select a valid choice. UPS is not one of the available choices.",
        ),
        (
            {"carrier_code": "SF", "tracking_number": "9" * 65},
            "tracking_number",
            "Ensure this value has at most 64 characters (it has 65).",
        ),
    ],
)
def test_an_incomplete_ship_form_is_shown_again_with_its_errors(
    client, clerk, orders, desk_html, data, field, error
):
    first = orders["first"]
    before = snapshot()

    response = client.post(ship_url(first), {**data, "lines": line_keys(first)[:1]})

    assert response.status_code == 200
    assert response.context["form"].errors == {field: [error]}
    page = desk_html(response)
    assert page.by_id("pack").one("ul", class_="errorlist").text == error
    # The lines as ticked.
    assert [
        "checked" in box.attrs for box in page.by_id("order-lines").all("input", name="lines")
    ] == [True, False]
    assert snapshot() == before


# --- Who may ------------------------------------------------------------------------------------


def test_a_clerk_cannot_open_or_ship_another_stores_orders(client, clerk, orders):
    elsewhere = orders["elsewhere"]
    data = {"carrier_code": "SF", "tracking_number": "SF5555", "lines": line_keys(elsewhere)}
    before = snapshot()

    responses = [
        client.get(order_url(elsewhere, "SH002")),
        client.get(order_url(elsewhere)),
        client.post(ship_url(elsewhere, "SH002"), data),
        client.post(ship_url(elsewhere), data),
        client.get("/console/SH002/fulfilment/"),
        client.get("/console/SH002/fulfilment/pick-list/"),
    ]

    assert [response.status_code for response in responses] == [404] * 6
    assert snapshot() == before


def test_staff_without_the_permission_get_a_403_and_change_nothing(
    client, clerk, orders, monkeypatch
):
    monkeypatch.setitem(
        ROLE_PERMISSIONS, Role.CLERK, ROLE_PERMISSIONS[Role.CLERK] - {"orders.add_shipment"}
    )
    first = orders["first"]
    before = snapshot()

    responses = [
        client.get(QUEUE),
        client.get(PICK_LIST),
        client.get(order_url(first)),
        client.post(
            ship_url(first),
            {"carrier_code": "SF", "tracking_number": "SF4242", "lines": line_keys(first)},
        ),
    ]

    assert [response.status_code for response in responses] == [403] * 4
    assert snapshot() == before


def test_shipping_is_a_post(client, clerk, orders):
    assert client.get(ship_url(orders["first"])).status_code == 405


def test_the_order_page_costs_a_fixed_number_of_queries(
    client, clerk, orders, django_assert_num_queries
):
    # The frame's five; the order; its lines with their SKUs; its parcels, their lines and
    # who sent them; the routing event.
    with django_assert_num_queries(10):
        client.get(order_url(orders["partly"]))
