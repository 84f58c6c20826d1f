"""The staff order API: the list and one order's page scoped to the user's stores, with exact
query counts; every action as a POST that calls one service, with its permission, its 404 for
another store's order and its refusals in the one error shape, changing nothing."""

import io
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction

from inventory.models import StockItem, StockMovement
from inventory.services import StockLine, stock_receive
from orders.aftersales import after_sale_approve, after_sale_request
from orders.models import AfterSale, Channel, Fulfilment, Order, OrderEvent, Refund, Shipment
from orders.payments import refund_create
from orders.services import order_mark_ready, pickup_handover, shipment_create
from retail.models import OutboxDelivery, OutboxEvent
from retail.outbox import delivery as delivery_module
from retail.outbox import done, outbox_publish, registry, retry, subscribe
from tests import factories

pytestmark = pytest.mark.django_db

S = Order.Status
URL = "/api/staff/v1/orders/"
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(autouse=True)
def _no_other_subscribers(monkeypatch):
    """The apps' real outbox subscribers stay out; a test that wants one registers it."""
    monkeypatch.setattr(registry, "_subscribers", {})


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def api(client):
    """The test client signed in as ``user``, reading English."""

    def _as(user):
        client.force_login(user)
        client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
        return client

    return _as


@pytest.fixture
def nobody(db):
    """Staff without a role: signed in, allowed nothing."""
    return factories.UserFactory()


def post(client, path: str, data: dict | None = None):
    return client.post(f"{URL}{path}", data or {}, content_type="application/json")


def stock(store, sku) -> tuple[int, int]:
    item = StockItem.objects.get(store=store, sku=sku)
    return item.on_hand, item.reserved


def books(order: Order, store, *skus) -> tuple:
    """Everything an action could change, to assert that a refused one changed nothing."""
    order.refresh_from_db()
    return (
        order.status,
        order.paid_fen,
        order.refunded_fen,
        order.events.count(),
        OutboxEvent.objects.count(),
        Refund.objects.count(),
        Shipment.objects.count(),
        list(AfterSale.objects.order_by("pk").values_list("status", flat=True)),
        StockMovement.objects.count(),
        [stock(store, sku) for sku in skus],
    )


def error(response) -> tuple:
    body = response.json()["error"]
    return response.status_code, body["code"], body["fields"]


def iso(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("Asia/Shanghai")).isoformat()


# --- The list ----------------------------------------------------------------------------------


def test_the_list_shows_the_clerks_store_only_with_amounts_in_fen(
    api, clerk_a, place, shop, member, water, store_b, clock
):
    order = place((water, 2))
    factories.OrderFactory(store=store_b)

    response = api(clerk_a).get(URL)

    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [
            {
                "id": order.pk,
                "number": order.number,
                "status": "pending_payment",
                "channel": "mini_shop",
                "fulfilment": "pickup",
                "store": {"id": shop.pk, "code": "SH001", "name": "静安寺店"},
                "member": {"id": member.pk, "name": "李娜", "mobile": "13900000001"},
                "pickup_code": order.pickup_code,
                "total_fen": 400,
                "paid_fen": 0,
                "refunded_fen": 0,
                "created_at": "2026-11-25T10:00:00+08:00",
                "expires_at": "2026-11-25T10:30:00+08:00",
                "paid_at": None,
                "closed_at": None,
            }
        ],
    }


def test_hq_sees_every_store_newest_first(api, hq_user, store_a, store_b):
    older = factories.OrderFactory(store=store_a)
    newer = factories.OrderFactory(store=store_b)

    results = api(hq_user).get(URL).json()["results"]

    assert [(row["number"], row["store"]["code"]) for row in results] == [
        (newer.number, "SH002"),
        (older.number, "SH001"),
    ]
    assert results[0]["member"] is None


def test_the_list_pages_with_a_cursor(api, clerk_a, store_a):
    orders = factories.OrderFactory.create_batch(3, store=store_a)
    client = api(clerk_a)

    first = client.get(URL, {"page_size": 2}).json()
    second = client.get(first["next"]).json()

    assert [row["id"] for row in first["results"]] == [orders[2].pk, orders[1].pk]
    assert [row["id"] for row in second["results"]] == [orders[0].pk]
    assert second["next"] is None


def test_the_list_filters(api, hq_user, store_a, store_b):
    with time_machine.travel(T0, tick=False):
        paid = factories.OrderFactory(
            store=store_a, status=S.PAID, number="2611250000000001", pickup_code="123456"
        )
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        counter = factories.OrderFactory(
            store=store_b,
            status=S.COMPLETED,
            channel=Channel.COUNTER,
            fulfilment=Fulfilment.COUNTER,
            number="2611260000000002",
        )
        ready = factories.OrderFactory(
            store=store_a,
            status=S.READY_FOR_PICKUP,
            fulfilment=Fulfilment.PICKUP,
            number="2611260000000003",
            pickup_code="654321",
        )
    client = api(hq_user)

    def found(**params) -> list[int]:
        response = client.get(URL, params)
        assert response.status_code == 200
        return [row["id"] for row in response.json()["results"]]

    assert found(status=["paid", "ready_for_pickup"]) == [ready.pk, paid.pk]
    assert found(channel="counter") == [counter.pk]
    assert found(fulfilment="pickup") == [ready.pk]
    assert found(store=store_b.pk) == [counter.pk]
    assert found(created_after="2026-11-26T00:00:00+08:00") == [ready.pk, counter.pk]
    assert found(created_before="2026-11-26T00:00:00+08:00") == [paid.pk]
    assert found(q="261126") == [ready.pk, counter.pk]
    assert found(q=" 654321 ") == [ready.pk]
    assert found(q="54321") == []


def test_filtering_by_another_store_finds_nothing(api, clerk_a, store_a, store_b):
    factories.OrderFactory(store=store_a)
    factories.OrderFactory(store=store_b)

    response = api(clerk_a).get(URL, {"store": store_b.pk})

    assert (response.status_code, response.json()["results"]) == (200, [])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"channel": "fax"}, "channel"),
        ({"store": "SH001"}, "store"),
        ({"store": "1.5"}, "store"),
        ({"created_after": "yesterday"}, "created_after"),
    ],
)
def test_bad_filters_are_a_400_naming_the_field(api, clerk_a, store_a, params, field):
    factories.OrderFactory(store=store_a)

    response = api(clerk_a).get(URL, params)

    status_code, code, fields = error(response)
    assert (status_code, code, list(fields)) == (400, "validation_error", [field])


def test_the_list_needs_a_signed_in_user_with_a_role(api, client, nobody, store_a):
    factories.OrderFactory(store=store_a)

    anonymous = client.get(URL)
    roleless = api(nobody).get(URL)

    assert error(anonymous) == (403, "not_authenticated", {})
    assert error(roleless) == (403, "permission_denied", {})


@pytest.mark.parametrize("orders", [2, 20])
def test_the_list_costs_six_queries_however_many_orders(
    api, clerk_a, store_a, orders, django_assert_num_queries
):
    for _ in range(orders):
        factories.OrderFactory(store=store_a, member=factories.MemberFactory())
    client = api(clerk_a)

    # session, user, staff roles, ModelBackend's user and group permissions,
    # one page of orders joined with store and member
    with django_assert_num_queries(6):
        response = client.get(URL)

    assert len(response.json()["results"]) == orders


# --- One order ---------------------------------------------------------------------------------


@pytest.fixture
def erp(monkeypatch):
    """An outside system hearing about created and paid orders: it takes the first, times out
    on the second. Retries come back at the top of their jitter range, so times are exact."""
    monkeypatch.setattr(delivery_module, "random", SimpleNamespace(uniform=lambda low, high: high))

    def handler(event):
        return done(200) if event.event_type == "order.created" else retry("ERP timeout", 504)

    subscribe("erp", event_types={"order.created", "order.paid"}, handler=handler)


def test_the_order_page_shows_lines_timeline_money_shipments_and_deliveries(
    api,
    manager_a,
    clerk_a,
    place,
    pay,
    shop,
    member,
    water,
    milk,
    erp,
    clock,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        order = place((water, 2), (milk, 1), fulfilment=Fulfilment.DELIVERY, note="放门口")
    with django_capture_on_commit_callbacks(execute=True):
        payment = pay(order)
    water_line, milk_line = order.lines.order_by("pk")
    shipment_create(
        order=order,
        carrier_code="SF",
        tracking_number="SF1234567890",
        line_keys=[water_line.line_key],
        actor=clerk_a,
    )
    refund = refund_create(order=order, amount_fen=200, reason="少发一瓶", actor=manager_a)
    after_sale = after_sale_request(
        order=order, kind="refund_only", lines=[(milk_line.line_key, 1)], reason="漏了"
    )
    payment.refresh_from_db()
    created, paid = OutboxDelivery.objects.order_by("pk")

    body = api(manager_a).get(f"{URL}{order.pk}/").json()

    at = "2026-11-25T10:00:00+08:00"
    assert {key: body[key] for key in ("status", "subtotal_fen", "shipping_fen", "total_fen")} == {
        "status": "paid",
        "subtotal_fen": 1650,
        "shipping_fen": 600,
        "total_fen": 2250,
    }
    assert (body["discount_fen"], body["paid_fen"], body["refunded_fen"]) == (0, 2250, 0)
    assert body["address"]["detail"] == "愚园路168号5楼"
    assert (body["note"], body["client_reference"], body["created_by"]) == ("放门口", "ref-1", None)
    assert body["lines"] == [
        {
            "line_key": water_line.line_key,
            "sku_id": water.pk,
            "sku_code": water.code,
            "product_name": "矿泉水",
            "attributes": {"规格": "550ml"},
            "unit_price_fen": 200,
            "quantity": 2,
            "discount_fen": 0,
            "total_fen": 400,
            "shipped": True,
        },
        {
            "line_key": milk_line.line_key,
            "sku_id": milk.pk,
            "sku_code": milk.code,
            "product_name": "鲜牛奶",
            "attributes": {"规格": "550ml"},
            "unit_price_fen": 1250,
            "quantity": 1,
            "discount_fen": 0,
            "total_fen": 1250,
            "shipped": False,
        },
    ]
    assert [
        (event["kind"], event["from_status"], event["to_status"], event["actor"])
        for event in body["events"]
    ] == [
        ("order.created", "", "pending_payment", None),
        ("order.paid", "pending_payment", "paid", None),
        ("order.partially_shipped", "", "", clerk_a.username),
        ("refund.requested", "", "", manager_a.username),
        ("after_sale.requested", "", "", None),
    ]
    assert body["events"][3]["data"] == {"out_refund_no": refund.out_refund_no, "amount_fen": 200}
    assert body["events"][3]["note"] == "少发一瓶"
    assert body["payments"] == [
        {
            "id": payment.pk,
            "provider": "fakepay",
            "out_trade_no": payment.out_trade_no,
            "transaction_id": f"tx-{payment.out_trade_no}",
            "amount_fen": 2250,
            "status": "succeeded",
            "created_at": at,
            "paid_at": at,
        }
    ]
    assert body["refunds"] == [
        {
            "id": refund.pk,
            "out_refund_no": refund.out_refund_no,
            "amount_fen": 200,
            "reason": "少发一瓶",
            "status": "pending",
            "error": "",
            "after_sale": None,
            "created_by": manager_a.username,
            "created_at": at,
            "succeeded_at": None,
        }
    ]
    assert body["after_sales"] == [
        {
            "id": after_sale.pk,
            "kind": "refund_only",
            "status": "requested",
            "reason": "漏了",
            "amount_fen": 1250,
            "lines": [{"line_key": milk_line.line_key, "quantity": 1}],
            "decided_by": None,
            "decision_note": "",
            "created_at": at,
            "decided_at": None,
            "restocked_at": None,
        }
    ]
    assert body["shipments"] == [
        {
            "id": Shipment.objects.get().pk,
            "carrier_code": "SF",
            "tracking_number": "SF1234567890",
            "shipped_at": at,
            "line_keys": [water_line.line_key],
            "created_by": clerk_a.username,
        }
    ]
    assert body["deliveries"] == [
        {
            "id": created.pk,
            "event_id": str(created.event.event_id),
            "event_type": "order.created",
            "subscriber": "erp",
            "state": "delivered",
            "attempts": 1,
            "attempt_limit": 12,
            "last_error": "",
            "last_status_code": 200,
            "next_attempt_at": at,
            "delivered_at": at,
        },
        {
            "id": paid.pk,
            "event_id": str(paid.event.event_id),
            "event_type": "order.paid",
            "subscriber": "erp",
            "state": "failed",
            "attempts": 1,
            "attempt_limit": 12,
            "last_error": "ERP timeout",
            "last_status_code": 504,
            "next_attempt_at": "2026-11-25T10:00:10+08:00",
            "delivered_at": None,
        },
    ]


def test_deliveries_of_another_aggregate_with_the_same_id_are_not_the_orders(
    api, clerk_a, place, water, erp
):
    order = place((water, 1))
    with transaction.atomic():
        outbox_publish(
            event_type="order.created", aggregate_type="transfer", aggregate_id=order.pk, payload={}
        )

    body = api(clerk_a).get(f"{URL}{order.pk}/").json()

    assert [delivery["event_type"] for delivery in body["deliveries"]] == ["order.created"]
    assert OutboxDelivery.objects.count() == 2


def test_another_stores_order_is_a_404_like_an_unknown_one(api, clerk_a, store_b, english):
    theirs = factories.OrderFactory(store=store_b)
    client = api(clerk_a)

    other = client.get(f"{URL}{theirs.pk}/")
    unknown = client.get(f"{URL}{theirs.pk + 1000}/")

    for response in (other, unknown):
        assert response.status_code == 404
        assert response.json() == {
            "error": {"code": "not_found", "message": "Not found.", "fields": {}}
        }


def test_the_order_page_costs_the_same_queries_for_one_line_and_many(
    api, manager_a, clerk_a, place, pay, shop, water, milk, django_assert_num_queries
):
    extra = factories.SKUFactory.create_batch(4, price_fen=100)
    stock_receive(store=shop, lines=[StockLine(sku, 5) for sku in extra], idempotency_key="extra")
    small = place((water, 1), fulfilment=Fulfilment.DELIVERY)
    big = place((water, 2), (milk, 1), *((sku, 1) for sku in extra), fulfilment=Fulfilment.DELIVERY)
    for order in (small, big):
        pay(order)
        keys = list(order.lines.order_by("pk").values_list("line_key", flat=True))
        for index, key in enumerate(keys[:-1] or keys):
            shipment_create(
                order=order,
                carrier_code="SF",
                tracking_number=f"SF{order.pk}-{index}",
                line_keys=[key],
                actor=clerk_a,
            )
        request = after_sale_request(
            order=order, kind="refund_only", lines=[(key, 1) for key in keys], reason="坏了"
        )
        after_sale_approve(after_sale=request, actor=manager_a)
    assert (small.lines.count(), small.events.count()) == (1, 6)
    assert (big.lines.count(), big.events.count()) == (6, 10)
    client = api(manager_a)

    for order in (small, big):
        # session, user, staff roles, ModelBackend's user and group permissions, the order
        # joined with store, member and creator; lines; events with actors; payments; refunds
        # with creators; after-sales with deciders; their lines with the order lines;
        # shipments with creators; their lines; outbox deliveries with their events
        with django_assert_num_queries(15):
            response = client.get(f"{URL}{order.pk}/")
        assert response.status_code == 200

    assert [len(body) for body in (response.json()["lines"], response.json()["shipments"])] == [
        6,
        5,
    ]


def test_a_fresh_order_page_skips_the_queries_for_rows_it_does_not_have(
    api, clerk_a, place, water, django_assert_num_queries
):
    order = place((water, 1))
    client = api(clerk_a)

    # As above, without the lines of after-sales and shipments: there are none to look up.
    with django_assert_num_queries(13):
        response = client.get(f"{URL}{order.pk}/")

    body = response.json()
    assert (body["after_sales"], body["shipments"], body["deliveries"]) == ([], [], [])


# --- Cancel ------------------------------------------------------------------------------------


def test_staff_cancel_an_unpaid_order_and_its_stock_is_freed(api, clerk_a, place, shop, water):
    order = place((water, 3))
    assert stock(shop, water) == (10, 3)

    response = post(api(clerk_a), f"{order.pk}/cancel/", {"note": "顾客电话取消"})

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert stock(shop, water) == (10, 0)
    event = OrderEvent.objects.filter(order=order).last()
    assert (event.kind, event.actor, event.actor_kind, event.note, event.data) == (
        "order.cancelled",
        clerk_a,
        "staff",
        "顾客电话取消",
        {"cause": "staff"},
    )


def test_cancelling_a_paid_order_is_refused_and_changes_nothing(
    api, clerk_a, place, pay, shop, water, english
):
    order = place((water, 1))
    pay(order)
    before = books(order, shop, water)

    response = post(api(clerk_a), f"{order.pk}/cancel/")

    assert response.json() == {
        "error": {
            "code": "order_paid",
            "message": "A paid order is cancelled by refunding it.",
            "fields": {"status": ["paid"]},
        }
    }
    assert response.status_code == 409
    assert books(order, shop, water) == before


def test_cancelling_another_stores_order_is_a_404_and_changes_nothing(
    api, manager_a, shop, store_b, water
):
    theirs = factories.OrderFactory(store=store_b, status=S.PENDING_PAYMENT)
    before = books(theirs, shop, water)

    response = post(api(manager_a), f"{theirs.pk}/cancel/")

    assert error(response) == (404, "not_found", {})
    assert books(theirs, shop, water) == before


def test_an_overlong_note_is_a_400(api, clerk_a, place, shop, water):
    order = place((water, 1))
    before = books(order, shop, water)

    response = post(api(clerk_a), f"{order.pk}/cancel/", {"note": "长" * 201})

    assert error(response) == (
        400,
        "validation_error",
        {"note": ["Ensure this field has no more than 200 characters."]},
    )
    assert books(order, shop, water) == before


def test_malformed_json_is_a_400(api, clerk_a, place, shop, water):
    order = place((water, 1))
    before = books(order, shop, water)

    response = api(clerk_a).post(
        f"{URL}{order.pk}/cancel/", "{nope", content_type="application/json"
    )

    assert error(response)[:2] == (400, "parse_error")
    assert books(order, shop, water) == before


def test_staff_without_a_role_may_not_act(api, nobody, place, shop, water):
    order = place((water, 1))
    before = books(order, shop, water)

    response = post(api(nobody), f"{order.pk}/cancel/")

    assert error(response) == (403, "permission_denied", {})
    assert books(order, shop, water) == before


# --- Pickup: ready, handover -------------------------------------------------------------------


def test_a_paid_pickup_order_is_marked_ready(api, clerk_a, place, pay, water):
    order = place((water, 1))
    pay(order)

    response = post(api(clerk_a), f"{order.pk}/mark-ready/")

    assert (response.status_code, response.json()["status"]) == (200, "ready_for_pickup")
    assert response.json()["events"][-1]["actor"] == clerk_a.username


def test_marking_a_delivery_order_ready_is_an_illegal_transition(
    api, clerk_a, place, pay, shop, water
):
    order = place((water, 1), fulfilment=Fulfilment.DELIVERY)
    pay(order)
    before = books(order, shop, water)

    response = post(api(clerk_a), f"{order.pk}/mark-ready/")

    assert error(response) == (409, "illegal_transition", {"status": ["paid"]})
    assert books(order, shop, water) == before


def test_the_shopper_collects_with_the_pickup_code(api, clerk_a, place, pay, shop, water):
    order = place((water, 2))
    pay(order)
    order_mark_ready(order=order, actor=clerk_a)

    response = post(api(clerk_a), "handover/", {"store": shop.pk, "pickup_code": order.pickup_code})

    assert response.status_code == 200
    assert (response.json()["id"], response.json()["status"]) == (order.pk, "completed")
    assert stock(shop, water) == (8, 0)


def test_an_unknown_pickup_code_is_a_404_and_changes_nothing(api, clerk_a, place, pay, shop, water):
    order = place((water, 2))
    pay(order)
    code = "000000" if order.pickup_code != "000000" else "111111"
    before = books(order, shop, water)

    response = post(api(clerk_a), "handover/", {"store": shop.pk, "pickup_code": code})

    assert error(response) == (404, "pickup_code_unknown", {"pickup_code": [code]})
    assert books(order, shop, water) == before


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"store": ["This field is required."], "pickup_code": ["This field is required."]}),
        (
            {"store": "other", "pickup_code": "right"},
            {"store": ['Invalid pk "{other}" - object does not exist.']},
        ),
        (
            {"store": "shop", "pickup_code": "123456789"},
            {"pickup_code": ["Ensure this field has no more than 8 characters."]},
        ),
    ],
)
def test_handover_at_another_store_or_with_bad_input_is_a_400(
    api, clerk_a, place, pay, shop, store_b, water, payload, fields
):
    order = place((water, 2))
    pay(order)
    stores = {"other": store_b.pk, "shop": shop.pk}
    payload = {
        key: stores.get(value, order.pickup_code if value == "right" else value)
        for key, value in payload.items()
    }
    fields = {
        key: [message.replace("{other}", str(store_b.pk)) for message in messages]
        for key, messages in fields.items()
    }
    before = books(order, shop, water)

    response = post(api(clerk_a), "handover/", payload)

    assert error(response) == (400, "validation_error", fields)
    assert books(order, shop, water) == before


# --- Shipping and delivery ---------------------------------------------------------------------


def test_a_clerk_ships_part_of_an_order_then_the_rest(api, clerk_a, place, pay, shop, water, milk):
    order = place((water, 2), (milk, 1), fulfilment=Fulfilment.DELIVERY)
    pay(order)
    water_key, milk_key = order.lines.order_by("pk").values_list("line_key", flat=True)
    client = api(clerk_a)

    first = post(
        client,
        f"{order.pk}/ship/",
        {"carrier_code": "SF", "tracking_number": "SF001", "line_keys": [water_key]},
    )
    rest = post(client, f"{order.pk}/ship/", {"carrier_code": "SF", "tracking_number": "SF002"})

    assert first.status_code == 200
    assert first.json()["status"] == "paid"
    assert rest.json()["status"] == "shipped"
    assert [
        (shipment["tracking_number"], shipment["line_keys"])
        for shipment in rest.json()["shipments"]
    ] == [("SF001", [water_key]), ("SF002", [milk_key])]
    assert (stock(shop, water), stock(shop, milk)) == ((8, 0), (3, 0))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"carrier_code": "SF", "tracking_number": "SF001", "line_keys": ["nope"]},
            (400, "invalid_shipment_lines", {"line_keys": ["nope"]}),
        ),
        (
            {"carrier_code": "SF", "tracking_number": "SF001", "line_keys": []},
            (400, "validation_error", {"line_keys": ["This list may not be empty."]}),
        ),
        (
            {"carrier_code": "SF", "tracking_number": "SF001", "line_keys": "all"},
            (
                400,
                "validation_error",
                {"line_keys": ['Expected a list of items but got type "str".']},
            ),
        ),
        (
            {"carrier_code": "", "tracking_number": "SF001"},
            (400, "validation_error", {"carrier_code": ["This field may not be blank."]}),
        ),
        (
            {"carrier_code": "SF", "tracking_number": "   "},
            (400, "validation_error", {"tracking_number": ["This field may not be blank."]}),
        ),
    ],
)
def test_a_bad_parcel_is_a_400_and_ships_nothing(
    api, clerk_a, place, pay, shop, water, payload, expected
):
    order = place((water, 2), fulfilment=Fulfilment.DELIVERY)
    pay(order)
    before = books(order, shop, water)

    response = post(api(clerk_a), f"{order.pk}/ship/", payload)

    assert error(response) == expected
    assert books(order, shop, water) == before


def test_an_unpaid_order_cannot_be_shipped(api, clerk_a, place, shop, water):
    order = place((water, 2), fulfilment=Fulfilment.DELIVERY)
    before = books(order, shop, water)

    response = post(
        api(clerk_a), f"{order.pk}/ship/", {"carrier_code": "SF", "tracking_number": "SF1"}
    )

    assert error(response) == (409, "not_shippable", {"status": ["pending_payment"]})
    assert books(order, shop, water) == before


def test_a_shipped_order_is_marked_delivered_once(api, clerk_a, place, pay, shop, water):
    order = place((water, 1), fulfilment=Fulfilment.DELIVERY)
    pay(order)
    shipment_create(order=order, carrier_code="SF", tracking_number="SF1", actor=clerk_a)
    client = api(clerk_a)

    delivered = post(client, f"{order.pk}/mark-delivered/")
    before = books(order, shop, water)
    again = post(client, f"{order.pk}/mark-delivered/")

    assert (delivered.status_code, delivered.json()["status"]) == (200, "delivered")
    assert error(again) == (409, "illegal_transition", {"status": ["delivered"]})
    assert books(order, shop, water) == before


NEW_ADDRESS = {
    "name": "陈静",
    "mobile": "13800001111",
    "province": "上海市",
    "city": "上海市",
    "district": "徐汇区",
    "detail": "漕溪北路398号12楼",
}


def test_a_clerk_changes_the_address_of_a_paid_delivery_order(api, clerk_a, place, pay, water):
    order = place((water, 1), fulfilment=Fulfilment.DELIVERY)
    pay(order)
    client = api(clerk_a)

    response = post(client, f"{order.pk}/address/", NEW_ADDRESS)
    events = OrderEvent.objects.filter(order=order, kind="order.address_changed")
    again = post(client, f"{order.pk}/address/", NEW_ADDRESS)

    assert response.status_code == 200
    assert response.json()["address"] == NEW_ADDRESS
    order.refresh_from_db()
    assert order.address == NEW_ADDRESS
    assert [(e.actor_id, e.actor_kind, e.data) for e in events] == [
        (clerk_a.pk, "staff", {"previous_city": "上海市", "city": "上海市"})
    ]
    assert OutboxEvent.objects.filter(event_type="order.address_changed").count() == 1
    assert again.status_code == 200


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {**NEW_ADDRESS, "mobile": "12345"},
            (
                400,
                "validation_error",
                {"mobile": ["This value does not match the required pattern."]},
            ),
        ),
        (
            {key: value for key, value in NEW_ADDRESS.items() if key != "detail"},
            (400, "validation_error", {"detail": ["This field is required."]}),
        ),
    ],
)
def test_a_bad_address_is_a_400_and_changes_nothing(
    api, clerk_a, place, pay, shop, water, payload, expected
):
    order = place((water, 1), fulfilment=Fulfilment.DELIVERY)
    pay(order)
    address = order.address
    before = books(order, shop, water)

    response = post(api(clerk_a), f"{order.pk}/address/", payload)

    assert error(response) == expected
    assert books(order, shop, water) == before
    assert order.address == address


def test_the_address_is_locked_once_goods_left_and_pickups_have_none(
    api, clerk_a, place, pay, shop, water
):
    shipped = place((water, 1), fulfilment=Fulfilment.DELIVERY)
    pay(shipped)
    shipment_create(order=shipped, carrier_code="SF", tracking_number="SF9", actor=clerk_a)
    pickup = place((water, 1))
    client = api(clerk_a)
    before = books(shipped, shop, water), books(pickup, shop, water)

    locked = post(client, f"{shipped.pk}/address/", NEW_ADDRESS)
    not_delivery = post(client, f"{pickup.pk}/address/", NEW_ADDRESS)

    assert error(locked) == (409, "address_locked", {"status": ["shipped"]})
    assert error(not_delivery) == (409, "not_a_delivery", {"fulfilment": ["pickup"]})
    assert (books(shipped, shop, water), books(pickup, shop, water)) == before


def test_another_stores_order_address_is_a_404(api, store_b, place, pay, water):
    order = place((water, 1), fulfilment=Fulfilment.DELIVERY)
    pay(order)
    clerk_b = factories.StaffRoleFactory(role="clerk", store=store_b).user

    response = post(api(clerk_b), f"{order.pk}/address/", NEW_ADDRESS)

    assert response.status_code == 404
    order.refresh_from_db()
    assert order.address != NEW_ADDRESS


# --- Refunds -----------------------------------------------------------------------------------


def test_a_manager_refunds_part_of_an_order(api, manager_a, place, pay, shop, water):
    order = place((water, 2))
    pay(order)

    response = post(api(manager_a), f"{order.pk}/refund/", {"amount_fen": 150, "reason": "临期"})

    assert response.status_code == 200
    refund = Refund.objects.get()
    assert (refund.amount_fen, refund.reason, refund.created_by, refund.status) == (
        150,
        "临期",
        manager_a,
        "pending",
    )
    assert [(row["id"], row["status"]) for row in response.json()["refunds"]] == [
        (refund.pk, "pending")
    ]


def test_a_clerk_may_not_refund(api, clerk_a, place, pay, shop, water):
    order = place((water, 2))
    pay(order)
    before = books(order, shop, water)

    response = post(api(clerk_a), f"{order.pk}/refund/", {"amount_fen": 150, "reason": "临期"})

    assert error(response) == (403, "permission_denied", {})
    assert books(order, shop, water) == before


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"amount_fen": 401, "reason": "多退"},
            (409, "refund_exceeds_paid", {"amount_fen": ["401"]}),
        ),
        (
            {"amount_fen": 0, "reason": "零"},
            (
                400,
                "validation_error",
                {"amount_fen": ["Ensure this value is greater than or equal to 1."]},
            ),
        ),
        (
            {"amount_fen": "1.5", "reason": "小数"},
            (400, "validation_error", {"amount_fen": ["A valid integer is required."]}),
        ),
        ({"amount_fen": 100}, (400, "validation_error", {"reason": ["This field is required."]})),
    ],
)
def test_a_refund_beyond_what_was_paid_or_malformed_is_refused(
    api, manager_a, place, pay, shop, water, payload, expected
):
    order = place((water, 2))
    pay(order)
    before = books(order, shop, water)

    response = post(api(manager_a), f"{order.pk}/refund/", payload)

    assert error(response) == expected
    assert books(order, shop, water) == before


def test_an_unpaid_order_has_nothing_to_refund(api, manager_a, place, shop, water):
    order = place((water, 2))
    before = books(order, shop, water)

    response = post(api(manager_a), f"{order.pk}/refund/", {"amount_fen": 100, "reason": "x"})

    assert error(response) == (409, "order_not_paid", {"order": [order.number]})
    assert books(order, shop, water) == before


# --- After-sales -------------------------------------------------------------------------------


@pytest.fixture
def collected(place, pay, shop, water, clerk_a):
    """A pickup order of 2 waters, paid and collected."""
    order = place((water, 2))
    pay(order)
    pickup_handover(store=shop, pickup_code=order.pickup_code, actor=clerk_a)
    return order


def ask(order, kind: str, quantity: int = 1) -> AfterSale:
    line_key = order.lines.get().line_key
    return after_sale_request(order=order, kind=kind, lines=[(line_key, quantity)], reason="破损")


def test_a_manager_approves_a_refund_only_request_and_the_refund_goes_out(
    api, manager_a, collected
):
    request = ask(collected, "refund_only")

    response = post(api(manager_a), f"after-sales/{request.pk}/approve/", {"note": "同意"})

    assert response.status_code == 200
    [after_sale] = response.json()["after_sales"]
    assert (after_sale["status"], after_sale["decided_by"], after_sale["decision_note"]) == (
        "approved",
        manager_a.username,
        "同意",
    )
    refund = Refund.objects.get()
    assert (refund.after_sale, refund.amount_fen, refund.status) == (request, 200, "pending")


def test_a_manager_rejects_with_a_reason_and_not_without(api, manager_a, collected, shop, water):
    request = ask(collected, "refund_only")
    client = api(manager_a)
    before = books(collected, shop, water)

    blank = post(client, f"after-sales/{request.pk}/reject/", {"note": ""})
    assert error(blank) == (400, "validation_error", {"note": ["This field may not be blank."]})
    assert books(collected, shop, water) == before

    rejected = post(client, f"after-sales/{request.pk}/reject/", {"note": "已过退货期"})

    assert rejected.status_code == 200
    request.refresh_from_db()
    assert (request.status, request.decision_note, request.decided_by) == (
        "rejected",
        "已过退货期",
        manager_a,
    )
    assert Refund.objects.count() == 0


def test_deciding_twice_is_refused_and_changes_nothing(api, manager_a, collected, shop, water):
    request = ask(collected, "refund_only")
    client = api(manager_a)
    post(client, f"after-sales/{request.pk}/reject/", {"note": "不符合"})
    before = books(collected, shop, water)

    response = post(client, f"after-sales/{request.pk}/approve/")

    assert error(response) == (409, "after_sale_decided", {"status": ["rejected"]})
    assert books(collected, shop, water) == before


def test_returned_goods_go_back_on_the_shelf_and_the_money_back(
    api, manager_a, collected, shop, water
):
    request = ask(collected, "return_and_refund")
    client = api(manager_a)
    post(client, f"after-sales/{request.pk}/approve/")
    assert stock(shop, water) == (8, 0)

    response = post(client, f"after-sales/{request.pk}/receive-return/")

    assert response.status_code == 200
    assert stock(shop, water) == (9, 0)
    assert [(row["amount_fen"], row["after_sale"]) for row in response.json()["refunds"]] == [
        (200, request.pk)
    ]
    assert response.json()["after_sales"][0]["restocked_at"] is not None


def test_receiving_goods_nobody_approved_is_refused(api, manager_a, collected, shop, water):
    request = ask(collected, "return_and_refund")
    before = books(collected, shop, water)

    response = post(api(manager_a), f"after-sales/{request.pk}/receive-return/")

    assert error(response) == (409, "not_awaiting_goods", {"status": ["requested"]})
    assert books(collected, shop, water) == before


def test_a_clerk_may_not_decide_after_sales(api, clerk_a, collected, shop, water):
    request = ask(collected, "refund_only")
    before = books(collected, shop, water)

    response = post(api(clerk_a), f"after-sales/{request.pk}/approve/")

    assert error(response) == (403, "permission_denied", {})
    assert books(collected, shop, water) == before


def test_another_stores_after_sale_is_a_404(api, store_b, collected, shop, water):
    manager_b = factories.StaffRoleFactory(role="store_manager", store=store_b).user
    request = ask(collected, "refund_only")
    before = books(collected, shop, water)

    response = post(api(manager_b), f"after-sales/{request.pk}/approve/")

    assert error(response) == (404, "not_found", {})
    assert books(collected, shop, water) == before


# --- Documentation -----------------------------------------------------------------------------


def test_every_endpoint_is_in_the_schema():
    out = io.StringIO()

    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)

    paths = [line.strip() for line in out.getvalue().splitlines() if line.startswith("  /api/")]
    assert [path for path in paths if path.startswith("/api/staff/v1/orders/")] == [
        "/api/staff/v1/orders/:",
        "/api/staff/v1/orders/{id}/:",
        "/api/staff/v1/orders/{id}/address/:",
        "/api/staff/v1/orders/{id}/cancel/:",
        "/api/staff/v1/orders/{id}/mark-delivered/:",
        "/api/staff/v1/orders/{id}/mark-ready/:",
        # The counter's WeChat payment code, from wechat (wechat/api/staff_pay.py).
        "/api/staff/v1/orders/{id}/pay-by-code/:",
        "/api/staff/v1/orders/{id}/refund/:",
        "/api/staff/v1/orders/{id}/ship/:",
        "/api/staff/v1/orders/after-sales/{id}/approve/:",
        "/api/staff/v1/orders/after-sales/{id}/receive-return/:",
        "/api/staff/v1/orders/after-sales/{id}/reject/:",
        "/api/staff/v1/orders/handover/:",
    ]
