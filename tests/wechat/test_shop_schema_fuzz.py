"""Schemathesis against the shop API's own OpenAPI schema (``/api/shop/v1/schema/``), in
process through the WSGI application, as a logged-in shopper.

Every operation, with cases generated from the schema (valid and invalid input, the coverage
phase's edge cases, unexpected methods), is called with Lin Xiaomei's token: no answer is a
5xx, and each one is what the schema documents (status code, content type, body). Login and
phone binding call the session's WeChat sandbox (a made-up code is refused there), paying calls
the sandbox's WeChat Pay (v3): no 5xx either way.

The test seeds a world once and its calls act on it in turn (the cart is filled and emptied,
orders are placed, cancelled, paid for, reviewed). Hooks make the cases land on it: about half
the path ids are real (her orders and one of another shopper, which must stay a 404; products,
SKUs, her addresses, a claimable coupon), and cart, checkout, after-sales and review bodies
often pass validation. Runs are derandomized: CI sees the same cases every time. The schema is
loaded at import (``from_fixture`` does not work with this pytest) and, on PostgreSQL, the WSGI
handler must not close the test's connection (see tests/partners/test_schema_fuzz.py).
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

from tests.wechat.conftest import LIN, WANG

API = "/api/shop/v1/"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = hypothesis_settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    # One seeded world per test, shared by its cases on purpose: they act on it in turn.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ADDRESS = {
    "name": "林小美",
    "mobile": "13800138001",
    "province": "上海市",
    "city": "上海市",
    "district": "静安区",
    "detail": "愚园路168号5楼",
}


def _shop_schema():
    """The schema as the application serves it (Schemathesis calls the app as ``localhost``)."""
    from retail.wsgi import application

    with override_settings(ALLOWED_HOSTS=["localhost"]):
        return schemathesis.openapi.from_wsgi(API + "schema/", application)


schema = _shop_schema()

# What the running test seeded, for the hooks (they belong to the schema, made at import).
WORLD: dict = {}

# Path parameter -> the WORLD list its real values come from, per path.
REAL_IDS = {
    "number": "numbers",
    "sku": "skus",
    "template": "templates",
}


def _real_ids(context, name: str) -> str | None:
    if name in REAL_IDS:
        return REAL_IDS[name]
    if name == "id" and context.operation is not None:
        return "addresses" if "/addresses/" in context.operation.path else "products"
    return None


def _is(context, method: str, path: str) -> bool:
    operation = context.operation
    return operation is not None and (operation.method.upper(), operation.path) == (
        method,
        API + path,
    )


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """About half the ids are real ones."""
    if not (WORLD and path_parameters):
        return st.just(path_parameters)
    real = {
        name: st.sampled_from(WORLD[source])
        for name in path_parameters
        if (source := _real_ids(context, name)) and WORLD[source]
    }
    if not real:
        return st.just(path_parameters)
    return st.one_of(
        st.just(path_parameters),
        st.fixed_dictionaries(real).map(lambda chosen: {**path_parameters, **chosen}),
    )


def _checkout():
    return st.fixed_dictionaries(
        {
            "fulfilment": st.sampled_from(["delivery", "pickup"]),
            "store": st.sampled_from([None, *WORLD["stores"]]),
            "address_id": st.sampled_from([None, *WORLD["addresses"]]),
            "points": st.integers(0, 500),
        }
    )


def _meaningful_bodies():
    return {
        ("PUT", "cart/store/"): st.fixed_dictionaries({"store": st.sampled_from(WORLD["stores"])}),
        ("PUT", "cart/lines/{sku}/"): st.fixed_dictionaries({"quantity": st.integers(0, 60)}),
        ("POST", "checkout/preview/"): _checkout(),
        ("POST", "checkout/"): _checkout(),
        ("POST", "orders/{number}/after-sales/"): st.fixed_dictionaries(
            {
                "kind": st.sampled_from(["refund_only", "return_and_refund"]),
                "lines": st.lists(
                    st.fixed_dictionaries(
                        {
                            "line_key": st.sampled_from(WORLD["line_keys"]),
                            "quantity": st.integers(1, 3),
                        }
                    ),
                    min_size=1,
                    max_size=2,
                ),
                "reason": st.just("坏了"),
            }
        ),
        ("POST", "orders/{number}/review/"): st.fixed_dictionaries(
            {"rating": st.integers(0, 6), "text": st.text(max_size=20)}
        ),
        ("POST", "addresses/"): st.just(ADDRESS),
    }


@schema.hook
def flatmap_body(context, body):
    """Often a body that passes validation."""
    if not WORLD or context.operation is None:
        return st.just(body)
    for (method, path), meaningful in _meaningful_bodies().items():
        if _is(context, method, path):
            return st.one_of(st.just(body), meaningful)
    return st.just(body)


@pytest.fixture
def world(settings, sandbox_server, shop_store, store_b, stocked, lina, pay_order):
    """Lin Xiaomei (a WeChat identity at the sandbox's app, points, an address, a cart with two
    SKUs at store A), three orders of hers (unpaid pickup, paid pickup, paid delivery) and one
    of Wang Dawei's; a coupon she may claim; WeChat Pay v3 at the sandbox."""
    from members.models import Identity
    from members.services.points import points_apply
    from orders.models import Channel, Fulfilment
    from orders.pricing import BasketLine
    from orders.services import checkout_place
    from tests import factories
    from tests.members.factories import CouponTemplateFactory
    from wechat.sandbox import SANDBOX_APP_ID, pay_v3
    from wechat.services import addresses, cart
    from wechat.services.auth import token_issue

    settings.ALLOWED_HOSTS = ["localhost"]
    for name, value in pay_v3.platform_settings(sandbox_server.url).items():
        setattr(settings, name, value)
    settings.WECHAT_PAY_VERSION = "v3"
    settings.WECHAT_PAY_NOTIFY_BASE_URL = "http://localhost"
    # The fuzzing logs in and checks out faster than a shopper may: the view's answer, not 429.
    settings.SHOP_THROTTLE_RATES = {scope: "100000/min" for scope in settings.SHOP_THROTTLE_RATES}

    Identity.objects.create(
        member=lina, kind=Identity.Kind.WECHAT, app_id=SANDBOX_APP_ID, openid=LIN
    )
    wang = factories.MemberFactory(mobile="13900139002", name="王大伟")
    Identity.objects.create(
        member=wang, kind=Identity.Kind.WECHAT, app_id=SANDBOX_APP_ID, openid=WANG
    )
    points_apply(member=lina, points=800, reason="adjust", reference="fuzz-seed")
    water = stocked(name="矿泉水", price_fen=200, on_hand=500)
    milk = stocked(name="鲜牛奶", price_fen=1250, on_hand=500)
    address = addresses.address_create(member=lina, **ADDRESS)
    cart.cart_store_set(member=lina, store=shop_store)
    cart.cart_line_set(member=lina, sku=water, quantity=2)
    cart.cart_line_set(member=lina, sku=milk, quantity=1)
    template = CouponTemplateFactory()

    def place(member, fulfilment, reference):
        return checkout_place(
            channel=Channel.MINI_SHOP,
            store=shop_store,
            fulfilment=fulfilment,
            lines=[BasketLine(water.pk, 2), BasketLine(milk.pk, 1)],
            client_reference=reference,
            member=member,
            **({"address": ADDRESS} if fulfilment == Fulfilment.DELIVERY else {}),
        )

    unpaid = place(lina, Fulfilment.PICKUP, "fuzz-1")
    paid_pickup = pay_order(place(lina, Fulfilment.PICKUP, "fuzz-2"))
    paid_delivery = pay_order(place(lina, Fulfilment.DELIVERY, "fuzz-3"))
    others = place(wang, Fulfilment.PICKUP, "fuzz-4")
    hers = [unpaid, paid_pickup, paid_delivery]
    WORLD.update(
        numbers=[*(order.number for order in hers), others.number],
        skus=[water.pk, milk.pk],
        products=[water.product_id, milk.product_id],
        addresses=[address.pk],
        templates=[template.pk],
        stores=[shop_store.pk, store_b.pk],
        line_keys=[line.line_key for order in hers for line in order.lines.all()],
    )
    raw, _token = token_issue(member=lina)
    others_before = (others.status, others.updated_at)
    # As Django's test client does: the WSGI handler would otherwise close the connection
    # that holds the test's transaction at the end of each request (PostgreSQL).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {
            "headers": {"Authorization": f"Bearer {raw}"},
            "others": others,
        }
    finally:
        WORLD.clear()
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    # Wang's order was never hers to act on: every call on it was a 404.
    others.refresh_from_db()
    assert (others.status, others.updated_at) == others_before


@schema.parametrize()
@FUZZ
def test_a_shopper_gets_no_5xx_and_what_the_schema_says(case, world):
    case.call_and_validate(headers=world["headers"], checks=CHECKS)
