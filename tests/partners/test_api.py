"""The partner API over HTTP (partners.api): a partner sees only its own orders, acknowledges
them, posts shipments and delivery events, reads stock, and a sales channel places and cancels
its orders with an Idempotency-Key. Every refusal is ``{"error": {"code", "message",
"fields"}}`` with a stable code, and changes nothing."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from rest_framework.fields import DateTimeField

from inventory.models import Reservation, StockItem
from orders.models import Order, OrderEvent, Payment, Refund, Shipment
from orders.services import shipment_create
from partners import services
from partners.models import Partner, PartnerApiKey, PartnerOrder, RoutingRule
from tests import factories
from tests.partners.conftest import ADDRESS

pytestmark = pytest.mark.django_db

API = "/api/partner/v1/"
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
NOT_FOUND = {
    "error": {"code": "not_found", "message": "No such order among this partner's.", "fields": {}}
}
BODY = {
    "store": "WH01",
    "fulfilment": "delivery",
    "lines": [{"sku": "RICE-5KG", "quantity": 2}, {"sku": "OIL-5L", "quantity": 1}],
    "address": ADDRESS,
    "note": "放门口",
}


class Api:
    """A partner calling the API with one key, in English."""

    def __init__(self, raw_key: str | None):
        self.raw_key = raw_key
        headers = {"HTTP_ACCEPT_LANGUAGE": "en"}
        if raw_key is not None:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {raw_key}"
        self.client = Client(**headers)

    def get(self, path: str, params: dict | None = None):
        return self.client.get(API + path, params or {})

    def post(self, path: str, body: dict | None = None, *, key: str | None = None):
        headers = {} if key is None else {"Idempotency-Key": key}
        return self.client.post(
            API + path, body or {}, content_type="application/json", headers=headers
        )

    def sell(self, key: str = "order-0001", **changes):
        """Places ``BODY`` with ``changes`` (a change to None leaves the field out)."""
        body = {name: value for name, value in {**BODY, **changes}.items() if value is not None}
        return self.post("orders/", body, key=key)


def api_of(partner: Partner) -> Api:
    raw, _key = services.partner_api_key_issue(partner=partner)
    return Api(raw)


def assert_error(response, status: int, code: str, message: str, fields: dict | None = None):
    assert response.status_code == status, response.content
    assert response.json() == {"error": {"code": code, "message": message, "fields": fields or {}}}


def when(moment) -> str:
    return DateTimeField().to_representation(moment)


@pytest.fixture(autouse=True)
def _no_push_leaves(monkeypatch):
    """No test here may call a partner's webhook: a push attempt fails the test."""
    calls = []
    monkeypatch.setattr("partners.pushes.requests.post", lambda *a, **k: calls.append(a))
    yield
    assert calls == []


@pytest.fixture
def courier_api(courier, warehouse_rule):
    """The courier, fulfilling the warehouse's delivery orders, reading its orders from the
    API (no webhook)."""
    courier.webhook_url = ""
    courier.save(update_fields=["webhook_url"])
    return api_of(courier)


@pytest.fixture
def channel_api(channel, goods):
    return api_of(channel)


@pytest.fixture
def routed(courier_api, place_paid, warehouse):
    """A paid warehouse delivery order (rice ×2, oil ×1) routed to the courier."""
    order = place_paid(warehouse)
    assert PartnerOrder.objects.filter(order=order, role="fulfil").exists()
    return order


def stock(store_code: str, sku_code: str) -> tuple[int, int]:
    item = StockItem.objects.get(store__code=store_code, sku__code=sku_code)
    return item.on_hand, item.reserved


def numbers(response) -> list[str]:
    return [order["number"] for order in response.json()["results"]]


# --- Listing and reading ------------------------------------------------------------------------


def test_the_list_holds_the_orders_a_partner_fulfils_and_sold_and_no_other(
    courier_api, channel_api, place_paid, warehouse, store_a
):
    both, _secret = services.partner_create(name="京东到家", kind="both")
    RoutingRule.objects.create(name="京东仓配", partner=both, priority=1, store_kind="warehouse")
    both_api = api_of(both)
    fulfilled = place_paid(warehouse)
    sold = both_api.sell("jd-pickup-1", store="SH001", fulfilment="pickup", address=None)
    sold_and_fulfilled = both_api.sell("jd-delivery-1")
    others = channel_api.sell("mt-000001", store="SH001", fulfilment="pickup", address=None)

    response = both_api.get("orders/")

    assert response.status_code == 200
    results = response.json()["results"]
    assert [(order["number"], order["roles"]) for order in results] == [
        (fulfilled.number, ["fulfil"]),
        (sold.json()["number"], ["sell"]),
        (sold_and_fulfilled.json()["number"], ["fulfil", "sell"]),
    ]
    assert (response.json()["next"], response.json()["previous"]) == (None, None)
    assert numbers(channel_api.get("orders/")) == [others.json()["number"]]
    assert numbers(courier_api.get("orders/")) == []  # the warehouse goes to 京东 first


def test_the_list_pages_with_a_cursor(courier_api, place_paid, warehouse):
    placed = [place_paid(warehouse).number for _ in range(5)]

    first = courier_api.get("orders/", {"page_size": 2})
    second = courier_api.client.get(first.json()["next"])
    third = courier_api.client.get(second.json()["next"])

    assert numbers(first) + numbers(second) + numbers(third) == placed
    assert [len(numbers(page)) for page in (first, second, third)] == [2, 2, 1]
    assert first.json()["next"].startswith("http://testserver/api/partner/v1/orders/?cursor=")
    assert third.json()["next"] is None
    assert numbers(courier_api.get("orders/", {"page_size": 500})) == placed  # over the cap: served


def test_updated_since_keeps_the_orders_changed_at_or_after_it(courier_api, place_paid, warehouse):
    with time_machine.travel(NOW, tick=False):
        old = place_paid(warehouse)
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        new = place_paid(warehouse)
    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        newer = place_paid(warehouse)

    since = courier_api.get("orders/", {"updated_since": "2026-11-25T11:00:00+08:00"})
    after = courier_api.get("orders/", {"updated_since": "2026-11-25T03:00:01Z"})
    before = courier_api.get("orders/", {"updated_since": "2026-11-25T09:59:59+08:00"})

    assert numbers(since) == [new.number, newer.number]
    assert numbers(after) == [newer.number]
    assert numbers(before) == [old.number, new.number, newer.number]


@pytest.mark.parametrize(
    "given", ["2026-11-25T08:00:00", "yesterday", "2026-13-45T08:00:00+08:00", ""]
)
def test_updated_since_without_an_offset_or_not_a_time_is_refused(courier_api, routed, given):
    response = courier_api.get("orders/", {"updated_since": given})

    assert_error(
        response,
        400,
        "validation_error",
        "Give a time with its offset, e.g. 2026-11-25T08:00:00+08:00.",
        {"updated_since": [given]},
    )


def test_the_status_filter(courier_api, place_paid, warehouse):
    shipped = place_paid(warehouse)
    paid = place_paid(warehouse)
    courier_api.post(
        f"orders/{shipped.number}/shipments/", {"carrier_code": "SF", "tracking_number": "SF1"}
    )

    assert numbers(courier_api.get("orders/", {"status": "shipped"})) == [shipped.number]
    assert numbers(courier_api.get("orders/", {"status": "paid"})) == [paid.number]
    assert numbers(courier_api.get("orders/", {"status": "cancelled"})) == []


def test_the_detail_shows_the_order_as_the_partner_sees_it(courier_api, routed, warehouse):
    response = courier_api.get(f"orders/{routed.number}/")

    routed.refresh_from_db()
    assert response.status_code == 200
    assert response.json() == {
        "number": routed.number,
        "status": "paid",
        "channel": "mini_shop",
        "fulfilment": "delivery",
        "store": {
            "code": "WH01",
            "name": "嘉定仓",
            "province": "上海市",
            "city": "上海市",
            "district": "静安区",
            "address": "南京西路1618号",
            "phone": "",
        },
        "address": ADDRESS,
        "note": "",
        "pickup_code": "",
        "subtotal_fen": 13880,
        "discount_fen": 0,
        "shipping_fen": 0,
        "total_fen": 13880,
        "paid_fen": 13880,
        "refunded_fen": 0,
        "created_at": when(routed.created_at),
        "paid_at": when(routed.paid_at),
        "updated_at": when(routed.updated_at),
        "lines": [
            {
                "line_key": f"{routed.number}-1",
                "sku_code": "RICE-5KG",
                "product_name": "五常大米 5kg",
                "quantity": 2,
                "unit_price_fen": 3990,
                "total_fen": 7980,
                "shipped": False,
            },
            {
                "line_key": f"{routed.number}-2",
                "sku_code": "OIL-5L",
                "product_name": "花生油 5L",
                "quantity": 1,
                "unit_price_fen": 5900,
                "total_fen": 5900,
                "shipped": False,
            },
        ],
        "shipments": [],
        "roles": ["fulfil"],
        "acknowledged_at": None,
    }


def test_another_partners_order_is_a_404_like_an_unknown_one(courier_api, channel_api, routed):
    theirs = channel_api.get(f"orders/{routed.number}/")
    unknown = courier_api.get("orders/2611259999999999/")

    assert_error(theirs, 404, "not_found", "No such order among this partner's.")
    assert theirs.json() == unknown.json() == NOT_FOUND
    for action in ("acknowledge", "shipments", "delivery-events", "cancel"):
        refused = channel_api.post(
            f"orders/{routed.number}/{action}/",
            {"carrier_code": "SF", "tracking_number": "SF1", "status": "delivered"},
        )
        assert (action, refused.status_code, refused.json()) == (action, 404, NOT_FOUND)
    assert PartnerOrder.objects.get(order=routed).acknowledged_at is None
    assert Order.objects.get(pk=routed.pk).status == "paid"
    assert Shipment.objects.count() == 0


def _orders_with_a_shipment(place_paid, warehouse, count: int) -> None:
    orders = [place_paid(warehouse) for _ in range(count)]
    shipment_create(order=orders[0], carrier_code="SF", tracking_number=f"SF-{count}")


@pytest.mark.parametrize("count", [3, 10])
def test_the_list_costs_the_same_queries_whatever_the_page(
    courier_api, place_paid, warehouse, django_assert_num_queries, count
):
    _orders_with_a_shipment(place_paid, warehouse, count)
    courier_api.get("orders/")  # the key's last use is written on the first call only

    # The key; the orders with their stores; their lines, shipments, shipment lines and the
    # partner's links.
    with django_assert_num_queries(6):
        response = courier_api.get("orders/")

    assert len(response.json()["results"]) == count


def test_the_detail_costs_six_queries(
    courier_api, place_paid, warehouse, django_assert_num_queries
):
    _orders_with_a_shipment(place_paid, warehouse, 1)
    number = Order.objects.get().number
    courier_api.get("orders/")

    with django_assert_num_queries(6):
        response = courier_api.get(f"orders/{number}/")

    assert response.json()["shipments"][0]["tracking_number"] == "SF-1"


# --- Keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "code", "message"),
    [
        ("missing", "not_authenticated", "Authentication credentials were not provided."),
        ("wrong", "key_invalid", "This API key is not valid."),
        ("revoked", "key_revoked", "This API key has been revoked."),
        ("inactive", "partner_inactive", "This partner is not active."),
    ],
)
def test_refused_keys_are_401(courier, routed, given, code, message):
    raw, key = services.partner_api_key_issue(partner=courier)
    if given == "revoked":
        services.partner_api_key_revoke(key=key)
    elif given == "inactive":
        Partner.objects.filter(pk=courier.pk).update(active=False)
    api = Api({"missing": None, "wrong": "ptn_not-a-key"}.get(given, raw))

    for response in (
        api.get("orders/"),
        api.get(f"orders/{routed.number}/"),
        api.post(f"orders/{routed.number}/acknowledge/"),
        api.get("stock/", {"store": "WH01", "sku": "RICE-5KG"}),
    ):
        assert_error(response, 401, code, message)
        assert response["WWW-Authenticate"] == 'Bearer realm="partner"'
    assert PartnerOrder.objects.get(order=routed).acknowledged_at is None
    assert PartnerApiKey.objects.get(pk=key.pk).last_used_at is None


# --- Acknowledge --------------------------------------------------------------------------------


def test_the_first_acknowledgement_is_kept(courier_api, routed):
    with time_machine.travel(NOW, tick=False):
        first = courier_api.post(f"orders/{routed.number}/acknowledge/")
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        again = courier_api.post(f"orders/{routed.number}/acknowledge/")
    detail = courier_api.get(f"orders/{routed.number}/")

    expected = {"number": routed.number, "acknowledged_at": when(NOW)}
    assert (first.status_code, first.json()) == (200, expected)
    assert (again.status_code, again.json()) == (200, expected)
    assert detail.json()["acknowledged_at"] == when(NOW)
    assert PartnerOrder.objects.get(order=routed).acknowledged_at == NOW
    event = routed.events.get(kind="partner.acknowledged")
    assert (event.actor_kind, event.note, event.data) == (
        "partner",
        "顺丰同城",
        {"partner_id": routed.partner_links.get().partner_id},
    )


# --- Shipments ----------------------------------------------------------------------------------


def test_shipping_the_whole_order_ships_it_and_the_same_tracking_again_changes_nothing(
    courier_api, routed
):
    path = f"orders/{routed.number}/shipments/"

    first = courier_api.post(path, {"carrier_code": "SF", "tracking_number": "SF1001"})
    events = routed.events.count()
    again = courier_api.post(path, {"carrier_code": "SF", "tracking_number": " SF1001 "})

    assert first.status_code == 201
    assert first.json()["status"] == "shipped"
    assert [line["shipped"] for line in first.json()["lines"]] == [True, True]
    assert [
        (shipment["carrier_code"], shipment["tracking_number"], shipment["line_keys"])
        for shipment in first.json()["shipments"]
    ] == [("SF", "SF1001", [f"{routed.number}-1", f"{routed.number}-2"])]
    assert (again.status_code, again.json()) == (200, first.json())
    assert Shipment.objects.count() == 1
    assert routed.events.count() == events
    shipped = routed.events.get(kind="order.shipped")
    assert (shipped.from_status, shipped.to_status, shipped.actor_kind, shipped.data) == (
        "paid",
        "shipped",
        "partner",
        {"cause": "shipment", "carrier_code": "SF", "tracking_number": "SF1001"},
    )
    assert stock("WH01", "RICE-5KG") == (18, 0)
    assert stock("WH01", "OIL-5L") == (19, 0)


def test_split_shipments_ship_the_order_with_its_last_line(courier_api, routed):
    path = f"orders/{routed.number}/shipments/"
    rice, oil = f"{routed.number}-1", f"{routed.number}-2"

    first = courier_api.post(
        path, {"carrier_code": "SF", "tracking_number": "SF1", "line_keys": [oil]}
    )
    second = courier_api.post(
        path, {"carrier_code": "JD", "tracking_number": "JD2", "line_keys": [rice]}
    )

    assert first.status_code == second.status_code == 201
    assert first.json()["status"] == "paid"
    assert [line["shipped"] for line in first.json()["lines"]] == [False, True]
    assert second.json()["status"] == "shipped"
    assert [(s["tracking_number"], s["line_keys"]) for s in second.json()["shipments"]] == [
        ("SF1", [oil]),
        ("JD2", [rice]),
    ]
    assert list(routed.events.values_list("kind", flat=True))[-2:] == [
        "order.partially_shipped",
        "order.shipped",
    ]


def test_an_unknown_line_key_ships_nothing(courier_api, routed):
    response = courier_api.post(
        f"orders/{routed.number}/shipments/",
        {
            "carrier_code": "SF",
            "tracking_number": "SF1",
            "line_keys": [f"{routed.number}-1", "X-9"],
        },
    )

    assert_error(
        response,
        400,
        "invalid_shipment_lines",
        "The parcel must hold lines of this order not shipped yet.",
        {"line_keys": ["X-9"]},
    )
    routed.refresh_from_db()
    assert routed.status == "paid"
    assert not routed.lines.filter(shipped=True).exists()
    assert Shipment.objects.count() == 0
    assert stock("WH01", "RICE-5KG") == (20, 2)


def test_a_partner_that_only_sold_the_order_does_not_ship_it(courier_api, channel_api):
    number = channel_api.sell().json()["number"]

    response = channel_api.post(
        f"orders/{number}/shipments/", {"carrier_code": "SF", "tracking_number": "SF1"}
    )
    delivered = channel_api.post(f"orders/{number}/delivery-events/", {"status": "delivered"})

    for refused in (response, delivered):
        assert_error(
            refused, 403, "not_the_fulfiller", "This order is not fulfilled by this partner."
        )
    assert Order.objects.get(number=number).status == "paid"
    assert Shipment.objects.count() == 0


@pytest.mark.parametrize("state", ["unpaid", "cancelled"])
def test_an_order_not_paid_is_not_shippable(courier, courier_api, channel_api, warehouse, state):
    if state == "cancelled":
        number = channel_api.sell().json()["number"]
        assert channel_api.post(f"orders/{number}/cancel/").json()["status"] == "cancelled"
    else:
        order = factories.OrderFactory(store=warehouse)
        PartnerOrder.objects.create(partner=courier, order=order, role="fulfil")
        number = order.number
    events = OrderEvent.objects.count()

    response = courier_api.post(
        f"orders/{number}/shipments/", {"carrier_code": "SF", "tracking_number": "SF1"}
    )

    status = "pending_payment" if state == "unpaid" else "cancelled"
    assert_error(
        response,
        409,
        "not_shippable",
        "Only paid delivery orders can be shipped.",
        {"status": [status]},
    )
    assert Order.objects.get(number=number).status == status
    assert Shipment.objects.count() == 0
    assert OrderEvent.objects.count() == events


# --- Delivery events ----------------------------------------------------------------------------


@pytest.fixture
def shipped(courier_api, routed):
    response = courier_api.post(
        f"orders/{routed.number}/shipments/", {"carrier_code": "SF", "tracking_number": "SF1"}
    )
    assert response.json()["status"] == "shipped"
    return routed


def test_delivered_delivers_the_order_once(courier_api, shipped):
    path = f"orders/{shipped.number}/delivery-events/"

    first = courier_api.post(path, {"status": "delivered"})
    events = shipped.events.count()
    again = courier_api.post(path, {"status": "delivered"})

    assert (first.status_code, first.json()["status"]) == (200, "delivered")
    assert (again.status_code, again.json()) == (200, first.json())
    assert shipped.events.count() == events
    delivered = shipped.events.get(kind="order.delivered")
    assert (delivered.from_status, delivered.to_status, delivered.actor_kind) == (
        "shipped",
        "delivered",
        "partner",
    )


def test_a_failed_delivery_is_noted_and_the_order_stays_shipped(courier_api, shipped):
    response = courier_api.post(
        f"orders/{shipped.number}/delivery-events/",
        {"status": "failed", "reason": " 收件人不在家 "},
    )

    assert (response.status_code, response.json()["status"]) == (200, "shipped")
    event = shipped.events.get(kind="order.delivery_failed")
    assert (event.from_status, event.to_status, event.actor_kind, event.note, event.data) == (
        "",
        "",
        "partner",
        "收件人不在家",
        {"reason": "收件人不在家"},
    )


def test_a_failed_delivery_needs_a_reason(courier_api, shipped):
    events = shipped.events.count()

    for body in (
        {"status": "failed"},
        {"status": "failed", "reason": ""},
        {"status": "failed", "reason": "   "},
    ):
        response = courier_api.post(f"orders/{shipped.number}/delivery-events/", body)
        assert_error(
            response, 400, "reason_required", "Say why the delivery failed.", {"reason": [""]}
        )
    assert shipped.events.count() == events


def test_an_unknown_delivery_status_is_a_validation_error(courier_api, shipped):
    response = courier_api.post(f"orders/{shipped.number}/delivery-events/", {"status": "lost"})

    assert_error(
        response,
        400,
        "validation_error",
        "Some fields are not valid.",
        {"status": ['"lost" is not a valid choice.']},
    )


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            {"status": "delivered"},
            "illegal_transition",
            "An order that is “paid” cannot become “delivered” this way.",
        ),
        (
            {"status": "failed", "reason": "拒收"},
            "not_in_delivery",
            "Only a shipped order can fail to be delivered.",
        ),
    ],
)
def test_delivery_events_before_shipping_are_refused(courier_api, routed, body, code, message):
    events = routed.events.count()

    response = courier_api.post(f"orders/{routed.number}/delivery-events/", body)

    assert_error(response, 409, code, message, {"status": ["paid"]})
    assert Order.objects.get(pk=routed.pk).status == "paid"
    assert routed.events.count() == events


# --- Stock --------------------------------------------------------------------------------------


def test_stock_per_store_and_sku_in_the_order_asked(courier_api, routed):
    response = courier_api.get("stock/", {"store": "WH01,SH001", "sku": "OIL-5L,RICE-5KG"})

    assert response.status_code == 200
    assert response.json() == [
        {"store": "WH01", "sku": "OIL-5L", "available": 19},
        {"store": "WH01", "sku": "RICE-5KG", "available": 18},
        {"store": "SH001", "sku": "OIL-5L", "available": 20},
        {"store": "SH001", "sku": "RICE-5KG", "available": 20},
    ]


@pytest.mark.parametrize(
    ("query", "code", "fields"),
    [
        (
            {"store": "WH01,NOPE,GONE", "sku": "RICE-5KG"},
            "store_not_found",
            {"store": ["NOPE, GONE"]},
        ),
        ({"store": "WH01", "sku": "RICE-5KG,NOPE-1"}, "sku_not_found", {"sku": ["NOPE-1"]}),
    ],
)
def test_stock_of_unknown_codes_is_a_404_naming_them(courier_api, goods, query, code, fields):
    response = courier_api.get("stock/", query)

    assert_error(response, 404, code, "No such store or SKU among this partner's.", fields)


def test_stock_of_a_store_the_partner_does_not_serve_is_a_404(courier_api, channel_api):
    factories.StoreFactory(code="HZ001", city="杭州市")  # the courier serves 上海市 only
    query = {"store": "SH001,HZ001", "sku": "RICE-5KG"}

    refused = courier_api.get("stock/", query)
    served = channel_api.get("stock/", query)  # a partner naming no store serves every one

    assert_error(
        refused,
        404,
        "store_not_found",
        "No such store or SKU among this partner's.",
        {"store": ["HZ001"]},
    )
    assert served.json() == [
        {"store": "SH001", "sku": "RICE-5KG", "available": 20},
        {"store": "HZ001", "sku": "RICE-5KG", "available": 0},
    ]


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ({"store": "WH01"}, {"sku": ["This field is required."]}),
        (
            {"store": " , ", "sku": "RICE-5KG"},
            {"store": ["1 to 50 codes of at most 32 characters."]},
        ),
        ({"store": "WH01", "sku": "X" * 33}, {"sku": ["1 to 100 codes of at most 32 characters."]}),
    ],
)
def test_a_bad_stock_query_is_a_400(courier_api, goods, query, fields):
    response = courier_api.get("stock/", query)

    assert_error(response, 400, "validation_error", "Some fields are not valid.", fields)


# --- Sales channel: create ----------------------------------------------------------------------


def test_a_sales_channel_creates_a_paid_order(channel, channel_api, courier_api):
    response = channel_api.sell("mt-20261125-0001")

    assert response.status_code == 201
    body = response.json()
    order = Order.objects.get()
    assert body["number"] == order.number
    assert (body["status"], body["channel"], body["fulfilment"], body["store"]["code"]) == (
        "paid",
        "partner",
        "delivery",
        "WH01",
    )
    assert (
        body["subtotal_fen"],
        body["discount_fen"],
        body["shipping_fen"],
        body["total_fen"],
        body["paid_fen"],
        body["refunded_fen"],
    ) == (13880, 0, 0, 13880, 13880, 0)
    assert [(line["sku_code"], line["quantity"], line["total_fen"]) for line in body["lines"]] == [
        ("RICE-5KG", 2, 7980),
        ("OIL-5L", 1, 5900),
    ]
    assert (body["address"], body["note"], body["roles"]) == (ADDRESS, "放门口", ["sell"])
    assert (order.member, order.client_reference) == (None, f"{channel.pk}:mt-20261125-0001")
    payment = Payment.objects.get()
    assert (payment.provider, payment.status, payment.amount_fen, payment.transaction_id) == (
        "partner",
        "succeeded",
        13880,
        f"partner-{channel.pk}-{order.number}",
    )
    assert stock("WH01", "RICE-5KG") == (20, 2)
    assert stock("WH01", "OIL-5L") == (20, 1)
    assert set(Reservation.objects.values_list("status", flat=True)) == {"committed"}
    sold = PartnerOrder.objects.get(role="sell")
    assert (sold.partner, sold.order, sold.idempotency_key, len(sold.request_digest)) == (
        channel,
        order,
        "mt-20261125-0001",
        64,
    )
    # Paid like any order: the warehouse's rule gives it to the courier.
    assert PartnerOrder.objects.get(role="fulfil").partner.name == "顺丰同城"
    assert list(order.events.values_list("kind", "actor_kind")) == [
        ("order.created", "partner"),
        ("order.paid", "system"),
        ("order.routed", "system"),
    ]


def test_the_same_idempotency_key_again_returns_the_first_order(channel_api):
    first = channel_api.sell("mt-000001")
    lines_reordered = [BODY["lines"][1], BODY["lines"][0]]
    again = channel_api.sell("mt-000001", lines=lines_reordered)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Order.objects.count() == 1
    assert PartnerOrder.objects.filter(role="sell").count() == 1
    assert Payment.objects.count() == 1
    assert stock("WH01", "RICE-5KG") == (20, 2)


def test_the_same_key_with_another_request_is_refused(channel_api):
    first = channel_api.sell("mt-000001")

    response = channel_api.sell("mt-000001", note="改了备注")

    assert_error(
        response,
        422,
        "idempotency_key_reused",
        "This Idempotency-Key was used for another order request.",
        {"idempotency_key": ["mt-000001"]},
    )
    assert Order.objects.get().note == "放门口"
    assert Order.objects.get().number == first.json()["number"]
    assert (Payment.objects.count(), PartnerOrder.objects.count()) == (1, 1)
    assert stock("WH01", "RICE-5KG") == (20, 2)


@pytest.mark.parametrize(
    ("key", "echoed"), [(None, ""), ("short", "short"), ("有空格 的键值12", "有空格 的键值12")]
)
def test_an_idempotency_key_is_required(channel_api, key, echoed):
    response = channel_api.post("orders/", BODY, key=key)

    assert_error(
        response,
        400,
        "idempotency_key_required",
        "Send an Idempotency-Key header of 8 to 64 letters, digits or . _ : -.",
        {"idempotency_key": [echoed]},
    )
    assert Order.objects.count() == 0


def test_a_fulfilment_partner_does_not_sell(courier_api, goods):
    response = courier_api.sell("sf-0000001")

    assert_error(response, 403, "not_a_sales_channel", "Only sales-channel partners place orders.")
    assert Order.objects.count() == 0


def test_an_unknown_sku_is_refused(channel_api):
    response = channel_api.sell(
        lines=[{"sku": "RICE-5KG", "quantity": 1}, {"sku": "NOPE", "quantity": 1}]
    )

    assert_error(response, 400, "sku_not_found", "No such SKU.", {"sku": ["NOPE"]})
    assert Order.objects.count() == 0


def test_out_of_stock_creates_nothing(channel_api, goods):
    response = channel_api.sell(
        lines=[{"sku": "OIL-5L", "quantity": 1}, {"sku": "RICE-5KG", "quantity": 21}]
    )

    assert_error(
        response,
        409,
        "insufficient_stock",
        "Not enough stock for this item.",
        {"sku": [str(goods[0].pk)], "quantity": ["21"]},
    )
    assert (Order.objects.count(), PartnerOrder.objects.count(), Payment.objects.count()) == (
        0,
        0,
        0,
    )
    assert stock("WH01", "RICE-5KG") == (20, 0)
    assert stock("WH01", "OIL-5L") == (20, 0)
    assert Reservation.objects.count() == 0


def test_a_delivery_without_an_address_is_refused(channel_api):
    body = {key: value for key, value in BODY.items() if key != "address"}

    response = channel_api.post("orders/", body, key="mt-000001")

    assert_error(
        response,
        400,
        "validation_error",
        "Some fields are not valid.",
        {"address": ["Required for delivery."]},
    )
    assert Order.objects.count() == 0


# --- Sales channel: cancel ----------------------------------------------------------------------


def test_cancelling_a_paid_order_refunds_it_in_full_and_frees_its_stock(channel_api):
    number = channel_api.sell().json()["number"]

    response = channel_api.post(f"orders/{number}/cancel/", {"reason": "顾客取消"})
    events = OrderEvent.objects.count()
    again = channel_api.post(f"orders/{number}/cancel/", {"reason": "再次取消"})

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["refunded_fen"]) == ("cancelled", 13880)
    assert (again.status_code, again.json()) == (200, response.json())
    refund = Refund.objects.get()
    assert (refund.amount_fen, refund.status, refund.reason) == (13880, "succeeded", "顾客取消")
    assert stock("WH01", "RICE-5KG") == (20, 0)
    assert stock("WH01", "OIL-5L") == (20, 0)
    assert set(Reservation.objects.values_list("status", flat=True)) == {"released"}
    assert OrderEvent.objects.count() == events


def test_a_shipped_order_cannot_be_cancelled(channel_api, courier_api):
    number = channel_api.sell().json()["number"]
    courier_api.post(
        f"orders/{number}/shipments/", {"carrier_code": "SF", "tracking_number": "SF1"}
    )

    response = channel_api.post(f"orders/{number}/cancel/")

    assert_error(
        response,
        409,
        "illegal_transition",
        "The goods have left: the order can no longer be cancelled.",
        {"status": ["shipped"]},
    )
    assert Order.objects.get().status == "shipped"
    assert Refund.objects.count() == 0


def test_another_channels_order_cannot_be_cancelled(channel_api):
    number = channel_api.sell().json()["number"]
    other, _secret = services.partner_create(name="饿了么", kind="sales_channel")

    response = api_of(other).post(f"orders/{number}/cancel/")

    assert (response.status_code, response.json()) == (404, NOT_FOUND)
    assert Order.objects.get().status == "paid"
    assert Refund.objects.count() == 0


# --- Throttling ---------------------------------------------------------------------------------


@time_machine.travel(NOW, tick=False)
def test_calls_are_throttled_per_key(settings, courier_api, channel_api):
    settings.PARTNER_THROTTLE_RATE = "3/min"

    allowed = [courier_api.get("orders/").status_code for _ in range(3)]
    refused = courier_api.get("orders/")
    other_partner = channel_api.get("orders/")

    assert allowed == [200, 200, 200]
    assert_error(
        refused, 429, "throttled", "Request was throttled. Expected available in 60 seconds."
    )
    assert refused["Retry-After"] == "60"
    assert other_partner.status_code == 200
    with time_machine.travel(NOW + timedelta(seconds=61), tick=False):
        assert courier_api.get("orders/").status_code == 200
