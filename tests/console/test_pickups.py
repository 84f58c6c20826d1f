"""The console's pickup desk: the code opens the order to check, handing over completes it and
consumes its stock, the lists of orders to prepare and waiting; refusals change nothing."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from inventory.models import StockItem, StockMovement
from orders.models import Order, OrderEvent
from orders.services import order_mark_ready, pickup_handover
from retail.access import ROLE_PERMISSIONS, Role
from retail.models import OutboxEvent
from tests import factories

pytestmark = pytest.mark.django_db

S = Order.Status
SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2025, 11, 25, 10, 30, tzinfo=SHANGHAI)
PAGE = "/console/SH001/pickups/"
HANDOVER = "/console/SH001/pickups/handover/"


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


@pytest.fixture
def orders(desk_place, desk_goods, clock, clerk_a):
    """At store A: two paid pickup orders to prepare (10:30 and 10:35), one ready (10:40);
    besides, an unpaid and a collected pickup order, a paid delivery order, and a paid pickup
    order at store B, none of which the lists show."""
    water, milk = desk_goods
    first = desk_place((water, 2), (milk, 1))
    clock.shift(timedelta(minutes=5))
    second = desk_place((milk, 1))
    clock.shift(timedelta(minutes=5))
    ready = desk_place((water, 3))
    order_mark_ready(order=ready, actor=clerk_a)
    unpaid = desk_place((water, 1), paid=False)
    collected = desk_place((milk, 2))
    pickup_handover(store=collected.store, pickup_code=collected.pickup_code, actor=clerk_a)
    delivery = desk_place((water, 1), fulfilment="delivery")
    store_b = factories.StoreFactory(code="SH002", name="人民广场店")
    factories.StockItemFactory(store=store_b, sku=water, on_hand=5)
    elsewhere = desk_place((water, 1), store=store_b)
    for order in (first, second, ready, unpaid, collected, delivery, elsewhere):
        order.refresh_from_db()
    return {
        "first": first,
        "second": second,
        "ready": ready,
        "unpaid": unpaid,
        "collected": collected,
        "delivery": delivery,
        "elsewhere": elsewhere,
        "water": water,
        "milk": milk,
    }


def stock(store, sku) -> tuple[int, int]:
    item = StockItem.objects.get(store=store, sku=sku)
    return item.on_hand, item.reserved


def snapshot() -> dict:
    """Everything a refused action must leave as it was."""
    return {
        "orders": sorted(Order.objects.values_list("number", "status", "updated_at")),
        "stock": sorted(StockItem.objects.values_list("store_id", "sku_id", "on_hand", "reserved")),
        "movements": StockMovement.objects.count(),
        "events": OrderEvent.objects.count(),
        "outbox": OutboxEvent.objects.count(),
    }


def code_not_in_use(*orders: Order) -> str:
    taken = {order.pickup_code for order in orders}
    return next(code for code in ("000000", "111111", "222222") if code not in taken)


def test_the_page_lists_the_orders_to_prepare_and_those_waiting(client, clerk, orders, desk_html):
    page = desk_html(client.get(PAGE))

    assert page.by_id("to-prepare").one("h2").text == "To prepare 2"
    assert page.by_id("to-prepare").rows() == [
        [
            orders["first"].number,
            "11-25 10:30",
            "李娜 · 139****4321",
            "矿泉水 ×2, 鲜牛奶 ×1",
            "Mark ready",
        ],
        [orders["second"].number, "11-25 10:35", "李娜 · 139****4321", "鲜牛奶 ×1", "Mark ready"],
    ]
    assert page.by_id("waiting").one("h2").text == "Waiting for pickup 1"
    assert page.by_id("waiting").rows() == [
        [orders["ready"].number, "11-25 10:40", "李娜 · 139****4321", "矿泉水 ×3"],
    ]
    # The shopper's code is her proof: the lists do not show it.
    for key in ("first", "second", "ready"):
        assert orders[key].pickup_code not in page.by_id("to-prepare").text
        assert orders[key].pickup_code not in page.by_id("waiting").text
    assert page.by_id("pickup-order") is None
    assert page.messages == []


def test_empty_lists_say_so(client, clerk, desk_store, desk_html):
    page = desk_html(client.get(PAGE))

    assert page.by_id("to-prepare").text == "To prepare 0 No paid pickup orders to prepare."
    assert page.by_id("waiting").text == "Waiting for pickup 0 No orders waiting for pickup."


def test_checking_a_code_shows_the_order_and_changes_nothing(client, clerk, orders, desk_html):
    first = orders["first"]
    before = snapshot()

    response = client.get(PAGE, {"code": first.pickup_code})

    page = desk_html(response)
    found = page.by_id("pickup-order")
    assert found.attrs["data-order"] == first.number
    assert found.one("h2").text == f"Order {first.number} paid"
    assert page.by_id("pickup-member").text == "李娜 · 139****4321"
    assert page.by_id("pickup-paid").text == "¥16.50 · 2025-11-25 10:30"
    assert page.by_id("pickup-lines").rows() == [
        ["矿泉水 550ml", "WATER-550", "2", "¥4.00"],
        ["鲜牛奶 1L", "MILK-1L", "1", "¥12.50"],
    ]
    form = found.one("form")
    assert form.attrs["action"] == HANDOVER
    assert {box.attrs["name"]: box.attrs["value"] for box in form.all("input", type="hidden")} == {
        "csrfmiddlewaretoken": response.context["csrf_token"],
        "code": first.pickup_code,
        "order": first.number,
    }
    assert page.by_id("handover").text == "Goods checked: hand over"
    assert page.messages == []
    assert snapshot() == before


def test_a_scanned_code_with_spaces_or_full_width_digits_opens_the_order(
    client, clerk, orders, desk_html
):
    code = orders["ready"].pickup_code
    full_width = "".join(chr(ord(digit) + 0xFEE0) for digit in code)

    spaced = desk_html(client.get(PAGE, {"code": f" {code[:3]} {code[3:]} "}))
    wide = desk_html(client.get(PAGE, {"code": full_width}))

    assert spaced.by_id("pickup-order").attrs["data-order"] == orders["ready"].number
    assert wide.by_id("pickup-order").attrs["data-order"] == orders["ready"].number
    assert spaced.by_id("pickup-status").text == "ready for pickup"


def test_handing_over_completes_the_order_consumes_its_stock_and_tells_the_outbox(
    client, clerk, orders, desk_html, desk_store
):
    first, water, milk = orders["first"], orders["water"], orders["milk"]
    # 20 received; the collected order took 2 milk; the open orders hold the rest.
    assert stock(desk_store, water) == (20, 2 + 3 + 1 + 1)
    assert stock(desk_store, milk) == (18, 1 + 1)

    response = client.post(HANDOVER, {"code": f" {first.pickup_code}", "order": first.number})

    assert (response.status_code, response["Location"]) == (302, PAGE)
    page = desk_html(client.get(response["Location"]))
    assert page.messages == [
        (
            "success",
            f"Order {first.number} handed over: the goods left the store and the order is "
            "completed.",
        )
    ]
    assert [row[0] for row in page.by_id("to-prepare").rows()] == [orders["second"].number]
    first.refresh_from_db()
    assert first.status == S.COMPLETED
    assert stock(desk_store, water) == (18, 3 + 1 + 1)
    assert stock(desk_store, milk) == (17, 1)
    assert sorted(
        StockMovement.objects.filter(reference=first.number).values_list(
            "stock_item__sku__code", "quantity", "reason", "actor"
        )
    ) == [
        ("MILK-1L", -1, "online_fulfilment", clerk.pk),
        ("WATER-550", -2, "online_fulfilment", clerk.pk),
    ]
    assert list(first.events.values_list("kind", "actor", "actor_kind")) == [
        ("order.created", None, "shopper"),
        ("order.paid", None, "system"),
        ("order.ready_for_pickup", clerk.pk, "staff"),
        ("order.completed", clerk.pk, "staff"),
    ]
    completed = OutboxEvent.objects.get(event_type="order.completed", aggregate_id=str(first.pk))
    assert completed.payload["order"]["status"] == "completed"
    assert completed.payload["order"]["pickup_code"] == first.pickup_code


def test_an_unknown_code_is_refused_clearly_and_changes_nothing(client, clerk, orders, desk_html):
    unknown = code_not_in_use(*(order for order in orders.values() if isinstance(order, Order)))
    before = snapshot()

    looked_up = desk_html(client.get(PAGE, {"code": unknown}))
    posted = client.post(HANDOVER, {"code": unknown, "order": orders["first"].number})

    assert looked_up.by_id("pickup-order") is None
    assert looked_up.by_id("lookup-error").text == (
        "No order waiting for pickup has this code at this store."
    )
    assert looked_up.messages == []
    assert looked_up.one("input", name="code").attrs["value"] == unknown
    assert (posted.status_code, posted["Location"]) == (302, PAGE)
    assert desk_html(client.get(posted["Location"])).messages == [
        ("error", "No order waiting for pickup has this code at this store.")
    ]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("collected", "No order waiting for pickup has this code at this store."),
        ("elsewhere", "No order waiting for pickup has this code at this store."),
        ("unpaid", "The order with this code is not paid yet: it cannot be handed over."),
    ],
)
def test_a_code_of_an_order_not_waiting_here_is_refused(
    client, clerk, orders, desk_html, case, message
):
    order = orders[case]
    before = snapshot()

    looked_up = desk_html(client.get(PAGE, {"code": order.pickup_code}))
    posted = client.post(HANDOVER, {"code": order.pickup_code, "order": order.number})

    assert looked_up.by_id("pickup-order") is None
    assert (looked_up.by_id("lookup-error").text, looked_up.messages) == (message, [])
    assert (posted.status_code, posted["Location"]) == (302, PAGE)
    assert desk_html(client.get(PAGE)).messages == [("error", message)]
    assert snapshot() == before


def test_a_code_that_is_not_six_digits_is_refused(client, clerk, orders, desk_html):
    before = snapshot()

    looked_up = desk_html(client.get(PAGE, {"code": "12ab56"}))
    posted = client.post(HANDOVER, {"code": "1234567", "order": orders["first"].number})

    assert looked_up.by_id("pickup-order") is None
    assert looked_up.by_id("pickup-lookup").one("ul", class_="errorlist").text == (
        "A pickup code is 6 digits."
    )
    assert (posted.status_code, posted["Location"]) == (302, PAGE)
    assert desk_html(client.get(PAGE)).messages == [("error", "A pickup code is 6 digits.")]
    assert snapshot() == before


def test_handing_over_is_refused_when_the_code_opens_another_order_than_the_one_checked(
    client, clerk, orders, desk_html
):
    before = snapshot()

    code = orders["first"].pickup_code

    posted = client.post(HANDOVER, {"code": code, "order": orders["second"].number})
    again = desk_html(client.get(posted["Location"]))
    unchecked = client.post(HANDOVER, {"code": code})
    after_unchecked = desk_html(client.get(unchecked["Location"]))

    assert (posted.status_code, posted["Location"]) == (302, f"{PAGE}?code={code}")
    assert again.messages == [
        ("error", "This code now opens another order than the one checked: check it again.")
    ]
    # The page shows the order the code opens, to check again.
    assert again.by_id("pickup-order").attrs["data-order"] == orders["first"].number
    assert (unchecked.status_code, unchecked["Location"]) == (302, PAGE)
    assert after_unchecked.messages == [("error", "Check the order before handing it over.")]
    assert snapshot() == before


def test_handing_over_is_a_post(client, clerk, orders):
    before = snapshot()

    response = client.get(HANDOVER, {"code": orders["first"].pickup_code})

    assert response.status_code == 405
    assert snapshot() == before


def test_marking_ready_moves_a_paid_order_to_waiting(client, clerk, orders, desk_html):
    second = orders["second"]

    response = client.post(f"{PAGE}{second.pk}/ready/")

    assert (response.status_code, response["Location"]) == (302, PAGE)
    page = desk_html(client.get(PAGE))
    assert page.messages == [
        ("success", f"Order {second.number} is ready: it waits for its shopper.")
    ]
    assert [row[0] for row in page.by_id("to-prepare").rows()] == [orders["first"].number]
    # Oldest payment first.
    assert [row[0] for row in page.by_id("waiting").rows()] == [
        second.number,
        orders["ready"].number,
    ]
    second.refresh_from_db()
    assert second.status == S.READY_FOR_PICKUP
    assert list(second.events.values_list("kind", "actor", "actor_kind", "note")).pop() == (
        "order.ready_for_pickup",
        clerk.pk,
        "staff",
        "goods ready for pickup",
    )
    # Ready is not handed over: the stock is still held for the shopper.
    assert stock(second.store, orders["milk"]) == (18, 2)


def test_marking_ready_twice_or_an_unpaid_order_changes_nothing(client, clerk, orders, desk_html):
    before = snapshot()

    again = client.post(f"{PAGE}{orders['ready'].pk}/ready/")
    again_page = desk_html(client.get(PAGE))
    unpaid = client.post(f"{PAGE}{orders['unpaid'].pk}/ready/")
    unpaid_page = desk_html(client.get(PAGE))
    delivery = client.post(f"{PAGE}{orders['delivery'].pk}/ready/")

    assert again_page.messages == [("info", f"Order {orders['ready'].number} is ready already.")]
    assert unpaid_page.messages == [
        (
            "error",
            "An order that is “pending payment” cannot become “ready for pickup” this way.",
        )
    ]
    assert (again.status_code, unpaid.status_code, delivery.status_code) == (302, 302, 404)
    assert snapshot() == before


def test_a_clerk_cannot_reach_another_stores_pickups(client, clerk, orders):
    elsewhere = orders["elsewhere"]
    before = snapshot()

    responses = [
        client.get("/console/SH002/pickups/", {"code": elsewhere.pickup_code}),
        client.post(
            "/console/SH002/pickups/handover/",
            {"code": elsewhere.pickup_code, "order": elsewhere.number},
        ),
        client.post(f"/console/SH002/pickups/{elsewhere.pk}/ready/"),
        # Store B's order through store A's address: not there either.
        client.post(f"{PAGE}{elsewhere.pk}/ready/"),
    ]

    assert [response.status_code for response in responses] == [404, 404, 404, 404]
    assert snapshot() == before


def test_staff_without_the_permission_get_a_403_and_change_nothing(
    client, clerk, orders, monkeypatch
):
    monkeypatch.setitem(
        ROLE_PERMISSIONS, Role.CLERK, ROLE_PERMISSIONS[Role.CLERK] - {"orders.change_order"}
    )
    first = orders["first"]
    before = snapshot()

    responses = [
        client.get(PAGE, {"code": first.pickup_code}),
        client.post(HANDOVER, {"code": first.pickup_code, "order": first.number}),
        client.post(f"{PAGE}{orders['second'].pk}/ready/"),
    ]

    assert [response.status_code for response in responses] == [403, 403, 403]
    assert snapshot() == before


def test_anonymous_posts_are_sent_to_sign_in_and_change_nothing(client, orders):
    first = orders["first"]
    before = snapshot()

    response = client.post(HANDOVER, {"code": first.pickup_code, "order": first.number})

    assert (response.status_code, response["Location"]) == (
        302,
        f"/admin/login/?next={HANDOVER}",
    )
    assert snapshot() == before


def test_a_manager_and_hq_may_hand_over_too(client, manager_a, hq_user, orders):
    for user, key in ((manager_a, "first"), (hq_user, "ready")):
        client.force_login(user)
        order = orders[key]
        response = client.post(HANDOVER, {"code": order.pickup_code, "order": order.number})
        order.refresh_from_db()
        assert (response.status_code, order.status) == (302, S.COMPLETED)


def _orders_at(desk_place, desk_goods, clerk_a, count: int) -> None:
    water, milk = desk_goods
    for index in range(count):
        order = desk_place((water, 1), (milk, 1))
        if index % 2:
            order_mark_ready(order=order, actor=clerk_a)


@pytest.mark.parametrize("count", [2, 12])
def test_the_page_costs_the_same_queries_however_many_orders(
    client, clerk, desk_place, desk_goods, clerk_a, django_assert_num_queries, count
):
    _orders_at(desk_place, desk_goods, clerk_a, count)

    # Session, user, roles, store, the switcher's stores; each list and its lines.
    with django_assert_num_queries(9):
        response = client.get(PAGE)

    assert len(response.context["to_prepare"]) + len(response.context["waiting"]) == count


def test_checking_a_code_costs_a_fixed_number_of_queries(
    client, clerk, orders, django_assert_num_queries
):
    # The page's nine, and the order with its member and its lines.
    with django_assert_num_queries(11):
        client.get(PAGE, {"code": orders["first"].pickup_code})
