"""Schemathesis against the partner API's own OpenAPI schema (``/api/partner/v1/schema/``),
in process through the WSGI application.

Every operation, with cases generated from the schema (valid and invalid input, the coverage
phase's edge cases, unexpected methods), is called with a fulfilment partner's key and with a
sales channel's key: no answer is a 5xx, and each one is what the schema documents (status
code, content type, body). Without a valid key (none, a wrong or malformed one, a revoked one,
an inactive partner's), every call is a 401 in the error shape, never a 5xx.

Each test seeds a world once and its calls act on it in turn (orders are acknowledged, shipped,
delivered, placed, cancelled). Hooks make the cases land on it: about half the order numbers
are real ones (mostly the calling partner's, one another partner's), order requests and stock
queries often name real stores and SKUs, and an order request often has a valid
Idempotency-Key (some repeated). Runs are derandomized: CI sees the same cases every time.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test.utils import override_settings
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from partners import services
from tests.partners.conftest import ADDRESS

API = "/api/partner/v1/"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = hypothesis_settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    # One seeded world per test, shared by its cases on purpose: they act on it in turn.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _partner_schema():
    """The schema as the application serves it (Schemathesis calls the app as ``localhost``)."""
    from retail.wsgi import application

    with override_settings(ALLOWED_HOSTS=["localhost"]):
        return schemathesis.openapi.from_wsgi(API + "schema/", application)


schema = _partner_schema()

# What the running test seeded, for the hooks (they belong to the schema, made at import).
WORLD: dict = {}


def _is(context, method: str, path: str) -> bool:
    operation = context.operation
    return operation is not None and (operation.method.upper(), operation.path) == (
        method,
        API + path,
    )


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """About half the order numbers are real ones."""
    if not (WORLD and path_parameters and "number" in path_parameters):
        return st.just(path_parameters)
    return st.one_of(
        st.just(path_parameters),
        st.sampled_from(WORLD["numbers"]).map(lambda number: {**path_parameters, "number": number}),
    )


@schema.hook
def flatmap_query(context, query):
    """Stock queries: often real store and SKU codes."""
    if not (WORLD and _is(context, "GET", "stock/")):
        return st.just(query)
    stores = st.lists(st.sampled_from(WORLD["stores"]), min_size=1, unique=True).map(",".join)
    skus = st.lists(st.sampled_from(WORLD["skus"]), min_size=1, unique=True).map(",".join)
    return st.one_of(
        st.just(query),
        st.builds(lambda store, sku: {**(query or {}), "store": store, "sku": sku}, stores, skus),
    )


def _order_requests():
    """Order requests that pass validation: real stores and SKUs, generated quantities (up to
    the schema's 999), fulfilment and note."""
    line = st.fixed_dictionaries(
        {"sku": st.sampled_from(WORLD["skus"]), "quantity": st.integers(1, 999)}
    )
    return st.fixed_dictionaries(
        {
            "store": st.sampled_from(WORLD["stores"]),
            "fulfilment": st.sampled_from(["delivery", "pickup"]),
            "lines": st.lists(line, min_size=1, max_size=2, unique_by=lambda line: line["sku"]),
            "address": st.just(ADDRESS),
            "note": st.text(max_size=20),
        }
    )


# Bodies that pass validation, so that the services behind the views act on real orders.
MEANINGFUL_BODIES = {
    "orders/{number}/shipments/": st.fixed_dictionaries(
        {"carrier_code": st.just("SF"), "tracking_number": st.sampled_from(["SF1001", "SF1002"])}
    ),
    "orders/{number}/delivery-events/": st.sampled_from(
        [{"status": "delivered"}, {"status": "failed", "reason": "无人签收"}]
    ),
    "orders/{number}/cancel/": st.just({"reason": "顾客取消"}),
}


@schema.hook
def flatmap_body(context, body):
    """Often a body that passes validation: an order request, a shipment, a delivery event,
    a cancellation."""
    if not WORLD or context.operation is None:
        return st.just(body)
    if _is(context, "POST", "orders/"):
        return st.one_of(st.just(body), _order_requests())
    for path, meaningful in MEANINGFUL_BODIES.items():
        if _is(context, "POST", path):
            return st.one_of(st.just(body), meaningful)
    return st.just(body)


@schema.hook
def flatmap_headers(context, headers):
    """Order requests: often a valid Idempotency-Key, some of them used again."""
    if not (WORLD and _is(context, "POST", "orders/")):
        return st.just(headers)
    keys = st.one_of(
        st.sampled_from(["fuzz-key-0001", "fuzz-key-0002"]),
        st.from_regex(r"[A-Za-z0-9._:-]{8,64}", fullmatch=True),
    )
    return st.one_of(
        st.just(headers), keys.map(lambda key: {**(headers or {}), "Idempotency-Key": key})
    )


@pytest.fixture
def world(
    settings, monkeypatch, courier, channel, warehouse, store_a, goods, warehouse_rule, place_paid
):
    """Two mini-shop orders routed to the courier (one paid, one shipped); two orders the
    sales channel sold (a delivery from the warehouse, routed to the courier too, and a pickup
    at store A); stock for any quantity the schema allows; a key for each partner, a revoked
    key and an inactive partner's key."""
    from inventory.services import StockLine, stock_receive
    from partners.orders import OrderRequest, partner_order_place, partner_shipment_post

    settings.ALLOWED_HOSTS = ["localhost"]
    # The fuzzing calls faster than a partner may: the view's answer, not 429 throttled.
    settings.PARTNER_THROTTLE_RATE = "100000/min"
    pushes = []
    monkeypatch.setattr("partners.pushes.requests.post", lambda *a, **k: pushes.append(a))
    courier.webhook_url = ""  # it reads its orders through the API: nothing is pushed
    courier.save(update_fields=["webhook_url"])

    keys = {
        "courier": services.partner_api_key_issue(partner=courier)[0],
        "channel": services.partner_api_key_issue(partner=channel)[0],
    }
    keys["revoked"], revoked = services.partner_api_key_issue(partner=courier)
    services.partner_api_key_revoke(key=revoked)
    closed, _secret = services.partner_create(name="停业伙伴", kind="fulfilment")
    keys["inactive"] = services.partner_api_key_issue(partner=closed)[0]
    closed.active = False
    closed.save(update_fields=["active"])

    for store in (warehouse, store_a):
        stock_receive(
            store=store,
            lines=[StockLine(sku, 5000) for sku in goods],
            idempotency_key=f"fuzz-{store.code}",
        )
    routed = [place_paid(warehouse).number, place_paid(warehouse).number]
    partner_shipment_post(  # on its way: a delivery event may follow
        partner=courier,
        number=routed[1],
        carrier_code="SF",
        tracking_number="SF0001",
        line_keys=None,
    )
    sold = [
        partner_order_place(
            partner=channel,
            idempotency_key=f"seed-order-{fulfilment}",
            request=OrderRequest(
                store_code=store.code,
                fulfilment=fulfilment,
                lines=[(goods[0].code, 1), (goods[1].code, 2)],
                address=ADDRESS if fulfilment == "delivery" else {},
            ),
        )[0].order.number
        for store, fulfilment in ((warehouse, "delivery"), (store_a, "pickup"))
    ]
    WORLD.update(
        numbers=[*routed, *sold],
        stores=[warehouse.code, store_a.code],
        skus=[sku.code for sku in goods],
    )
    # As Django's test client does: the WSGI handler would otherwise close the connection
    # that holds the test's transaction at the end of each request (PostgreSQL).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {"keys": keys, "routed": routed, "sold": sold}
    finally:
        WORLD.clear()
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    assert pushes == []


@pytest.fixture
def as_courier(world):
    """The courier's orders (the routed ones and the channel's delivery), and the channel's
    pickup order, which the courier does not see."""
    WORLD["numbers"] = [*world["routed"], *world["sold"]]
    return {"Authorization": f"Bearer {world['keys']['courier']}"}


@pytest.fixture
def as_channel(world):
    """The channel's two orders, and one routed to the courier, which the channel does not
    see."""
    WORLD["numbers"] = [*world["sold"], world["routed"][0]]
    return {"Authorization": f"Bearer {world['keys']['channel']}"}


@schema.parametrize()
@FUZZ
def test_a_fulfilment_partner_gets_no_5xx_and_what_the_schema_says(case, as_courier):
    case.call_and_validate(headers=as_courier, checks=CHECKS)


@schema.parametrize()
@FUZZ
def test_a_sales_channel_gets_no_5xx_and_what_the_schema_says(case, as_channel):
    case.call_and_validate(headers=as_channel, checks=CHECKS)


KEY_REFUSALS = {"not_authenticated", "key_invalid", "key_revoked", "partner_inactive"}


@schema.parametrize()
@hypothesis_settings(FUZZ, max_examples=10)
def test_without_a_valid_key_every_call_is_a_401(case, world):
    keys = world["keys"]
    case.headers = {
        name: value
        for name, value in (case.headers or {}).items()
        if name.lower() != "authorization"
    }
    for authorization in (
        None,
        "Bearer ptn_not-a-key",
        "Bearer two words",
        "Basic dXNlcjpwYXNz",
        f"Bearer {keys['revoked']}",
        f"Bearer {keys['inactive']}",
    ):
        headers = {} if authorization is None else {"Authorization": authorization}
        response = case.call_and_validate(headers=headers, checks=CHECKS)

        assert response.status_code == 401, (authorization, response.status_code)
        assert response.json()["error"]["code"] in KEY_REFUSALS, authorization


# Values the generators rarely hit, each once: what PostgreSQL refuses in a query (NUL), times
# that do not exist in UTC, a cursor we never gave, a status that is none.
EDGE_CASES = [
    ("GET", "orders/{number}/", {"number": "2611\x0025"}, None, None, (404, "not_found")),
    ("POST", "orders/{number}/acknowledge/", {"number": "\x00"}, None, None, (404, "not_found")),
    (
        "POST",
        "orders/{number}/shipments/",
        {"number": "A\x00"},
        None,
        {"carrier_code": "SF", "tracking_number": "SF1"},
        (404, "not_found"),
    ),
    (
        "POST",
        "orders/{number}/delivery-events/",
        {"number": "A\x00"},
        None,
        {"status": "delivered"},
        (404, "not_found"),
    ),
    ("POST", "orders/{number}/cancel/", {"number": "A\x00"}, None, {}, (404, "not_found")),
    ("GET", "orders/", None, {"status": "paid\x00"}, None, (400, "validation_error")),
    ("GET", "orders/", None, {"status": "lost"}, None, (400, "validation_error")),
    ("GET", "orders/", None, {"cursor": "游标"}, None, (400, "invalid_cursor")),
    (
        "GET",
        "orders/",
        None,
        {"updated_since": "9999-12-31T23:59:59-01:00"},
        None,
        (400, "validation_error"),
    ),
    (
        "GET",
        "orders/",
        None,
        {"updated_since": "0001-01-01T00:00:00+01:00"},
        None,
        (400, "validation_error"),
    ),
    (
        "GET",
        "stock/",
        None,
        {"store": "WH01\x00", "sku": "RICE-5KG"},
        None,
        (400, "validation_error"),
    ),
]


def test_edge_values_are_refused_in_the_documented_shape_and_change_nothing(as_courier, world):
    from orders.models import Order, Shipment
    from partners.models import PartnerOrder

    def state():
        return (
            sorted(Order.objects.values_list("number", "status")),
            Shipment.objects.count(),
            PartnerOrder.objects.filter(acknowledged_at__isnull=False).count(),
        )

    before = state()
    answers = []
    for method, path, path_parameters, query, body, _expected in EDGE_CASES:
        case = schema[API + path][method].Case(
            path_parameters=path_parameters, query=query, **({"body": body} if body else {})
        )
        response = case.call_and_validate(headers=as_courier, checks=CHECKS)
        answers.append((response.status_code, response.json()["error"]["code"]))

    assert answers == [expected for *_case, expected in EDGE_CASES]
    assert state() == before
