"""Schemathesis against the staff API's OpenAPI schema (``/api/schema/``: stores, SKUs, orders
and after-sales under ``/api/staff/v1/``), in process through the WSGI application.

Every operation, with cases generated from the schema (valid and invalid input, the coverage
phase's edge cases, unexpected methods), is called as an HQ user and as a clerk of store A,
each signed in with a session cookie (and the CSRF cookie and header a browser sends): no answer
is a 5xx, and each one is what the schema documents (status code, content type, body). Paying
by code calls the WeChat Pay (v3) of a WeChat sandbox on a free port.

Each test seeds a world once and its calls act on it in turn (orders are readied, shipped,
delivered, cancelled, refunded; after-sales decided). Hooks make the cases land on it: about
half the ids are real (orders of store A and one of store B, which the clerk may not see; its
after-sales; stores; SKUs). Runs are derandomized: CI sees the same cases every time. The schema
is loaded at import and, on PostgreSQL, the WSGI handler must not close the test's connection
(see tests/partners/test_schema_fuzz.py).
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

API = "/api/staff/v1/"
# No 5xx, and every answer as documented: its status code among the operation's, its content
# type, its body (error "fields" nested for nested inputs, store hours as "HH:MM:SS").
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = hypothesis_settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    # One seeded world per test, shared by its cases on purpose: they act on it in turn.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CSRF_TOKEN = "fuzzcsrf" * 4  # 32 letters: a well-formed CSRF secret
ADDRESS = {
    "name": "林小美",
    "mobile": "13800138001",
    "province": "上海市",
    "city": "上海市",
    "district": "静安区",
    "detail": "愚园路168号5楼",
}


def _staff_schema():
    """The schema as the application serves it (Schemathesis calls the app as ``localhost``)."""
    from retail.wsgi import application

    with override_settings(ALLOWED_HOSTS=["localhost"]):
        return schemathesis.openapi.from_wsgi("/api/schema/", application)


schema = _staff_schema()

# What the running test seeded, for the hooks (they belong to the schema, made at import).
WORLD: dict = {}


def _source(context) -> str | None:
    path = context.operation.path if context.operation is not None else ""
    for part, source in (
        ("/after-sales/", "after_sales"),
        ("/orders/", "orders"),
        ("/stores/", "stores"),
        ("/skus/", "skus"),
    ):
        if part in path:
            return source
    return None


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """About half the ids are real ones."""
    source = _source(context)
    if not (WORLD and path_parameters and "id" in path_parameters and source):
        return st.just(path_parameters)
    return st.one_of(
        st.just(path_parameters),
        st.sampled_from(WORLD[source]).map(lambda pk: {**path_parameters, "id": pk}),
    )


@pytest.fixture(scope="module")
def sandbox_server():
    from wechat.sandbox import SandboxServer

    server = SandboxServer().start()
    yield server
    server.stop()


class LaterPay:
    """A payment provider that confirms later, like WeChat Pay: the test confirms."""

    name = "fuzzpay"
    confirms_immediately = False

    def start(self, payment):
        from orders.payments import StartResult

        return StartResult()

    def refund(self, refund):
        from orders.payments import RefundResult

        return RefundResult(status="pending")


def _session_headers(user) -> dict:
    """The cookies a signed-in browser sends, and the CSRF header of its unsafe requests."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return {
        "cookies": {
            settings.SESSION_COOKIE_NAME: session.session_key,
            settings.CSRF_COOKIE_NAME: CSRF_TOKEN,
        },
        "headers": {"X-CSRFToken": CSRF_TOKEN},
    }


@pytest.fixture
def world(
    settings, sandbox_server, store_a, store_b, hq_user, clerk_a, django_capture_on_commit_callbacks
):
    """At store A: a paid pickup, a paid delivery (with an after-sale asked for), an unpaid
    counter sale; at store B: a paid pickup. Two SKUs with stock at both stores."""
    from inventory.services import StockLine, stock_receive
    from orders import payments
    from orders.aftersales import after_sale_request
    from orders.models import Channel, Fulfilment
    from orders.pricing import BasketLine
    from orders.services import checkout_place
    from tests import factories
    from wechat.sandbox import SANDBOX_APP_ID, pay_v3

    settings.ALLOWED_HOSTS = ["localhost"]
    settings.WECHAT_APP_ID = SANDBOX_APP_ID
    for name, value in pay_v3.platform_settings(sandbox_server.url).items():
        setattr(settings, name, value)
    settings.WECHAT_PAY_VERSION = "v3"
    settings.WECHAT_PAY_NOTIFY_BASE_URL = "http://localhost"
    settings.WECHAT_PAY_CODEPAY_POLL_SECONDS = 0.02
    settings.WECHAT_PAY_CODEPAY_DEADLINE_SECONDS = 0.1
    store_a.offers_ship_from_store = True
    store_a.save(update_fields=["offers_ship_from_store"])

    provider = LaterPay()
    payments.provider_register(provider)
    member = factories.MemberFactory(mobile="13800138001", name="林小美")
    skus = [
        factories.SKUFactory(price_fen=200, product__name="矿泉水"),
        factories.SKUFactory(price_fen=1250, product__name="鲜牛奶"),
    ]
    for store in (store_a, store_b):
        stock_receive(
            store=store,
            lines=[StockLine(sku, 500) for sku in skus],
            idempotency_key=f"fuzz-{store.code}",
        )
    counter = iter(range(1, 100))

    def place(store, fulfilment, channel=Channel.MINI_SHOP, paid=True):
        order = checkout_place(
            channel=channel,
            store=store,
            fulfilment=fulfilment,
            lines=[BasketLine(skus[0].pk, 2), BasketLine(skus[1].pk, 1)],
            client_reference=f"fuzz-{next(counter)}",
            **({"member": member} if channel != Channel.COUNTER else {"actor": clerk_a}),
            **({"address": ADDRESS} if fulfilment == Fulfilment.DELIVERY else {}),
        )
        if paid:
            payment, _start = payments.payment_start(order=order, provider=provider.name)
            with django_capture_on_commit_callbacks(execute=True):
                payments.payment_confirm(
                    provider=provider.name,
                    out_trade_no=payment.out_trade_no,
                    transaction_id=f"tx-{payment.out_trade_no}",
                    amount_fen=payment.amount_fen,
                )
            order.refresh_from_db()
        return order

    pickup = place(store_a, Fulfilment.PICKUP)
    delivery = place(store_a, Fulfilment.DELIVERY)
    sale = place(store_a, Fulfilment.COUNTER, channel=Channel.COUNTER, paid=False)
    elsewhere = place(store_b, Fulfilment.PICKUP)
    line = delivery.lines.first()
    after_sale = after_sale_request(
        order=delivery, kind="refund_only", lines=[(line.line_key, 1)], reason="坏了"
    )
    WORLD.update(
        orders=[pickup.pk, delivery.pk, sale.pk, elsewhere.pk],
        after_sales=[after_sale.pk],
        stores=[store_a.pk, store_b.pk],
        skus=[sku.pk for sku in skus],
    )
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {
            "hq": _session_headers(hq_user),
            "clerk": _session_headers(clerk_a),
            "elsewhere": elsewhere,
        }
    finally:
        WORLD.clear()
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
        payments._providers.pop(provider.name)


@schema.parametrize()
@FUZZ
def test_hq_gets_no_5xx_and_what_the_schema_says(case, world):
    case.call_and_validate(**world["hq"], checks=CHECKS)


@schema.parametrize()
@FUZZ
def test_a_clerk_gets_no_5xx_and_what_the_schema_says(case, world):
    elsewhere = world["elsewhere"]
    before = (elsewhere.status, elsewhere.updated_at)
    case.call_and_validate(**world["clerk"], checks=CHECKS)
    # Store B's order is not hers: every call on it was a 404.
    elsewhere.refresh_from_db()
    assert (elsewhere.status, elsewhere.updated_at) == before
