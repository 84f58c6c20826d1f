import pytest

from partners import services


@pytest.fixture(autouse=True)
def _partner_secret_key(settings):
    """Tests run with DEBUG off, as production does: the key partner secrets are encrypted
    under is derived from SECRET_KEY here, as DEBUG would."""
    settings.PARTNER_SECRET_KEY = settings.SECRET_KEY


@pytest.fixture
def courier(db, store_a):
    partner, _secret = services.partner_create(
        name="顺丰同城",
        kind="fulfilment",
        webhook_url="https://partner.example/hooks",
        stores=[store_a],
        cities=["上海市"],
    )
    return partner


@pytest.fixture
def channel(db):
    partner, _secret = services.partner_create(name="美团闪购", kind="sales_channel")
    return partner


# --- Orders that partners deal with ------------------------------------------------------------

ADDRESS = {
    "name": "王小明",
    "mobile": "13912345678",
    "province": "上海市",
    "city": "上海市",
    "district": "静安区",
    "detail": "愚园路168号5楼",
}


@pytest.fixture
def warehouse(db):
    from tests import factories

    return factories.StoreFactory(
        code="WH01",
        name="嘉定仓",
        kind="warehouse",
        city="上海市",
        offers_pickup=False,
        offers_counter_sales=False,
        delivery_radius_m=0,
    )


@pytest.fixture
def goods(warehouse, store_a):
    """Rice (39.90) and oil (59.00), 20 of each at the warehouse and at store A."""
    from inventory.services import StockLine, stock_receive
    from tests import factories

    rice = factories.SKUFactory(code="RICE-5KG", price_fen=3990, product__name="五常大米 5kg")
    oil = factories.SKUFactory(code="OIL-5L", price_fen=5900, product__name="花生油 5L")
    for store in (warehouse, store_a):
        stock_receive(
            store=store,
            lines=[StockLine(rice, 20), StockLine(oil, 20)],
            idempotency_key=f"seed-{store.code}",
        )
    return rice, oil


@pytest.fixture
def warehouse_rule(courier, warehouse):
    """Delivery orders from the warehouse go to the courier."""
    from partners.models import RoutingRule

    courier.stores.add(warehouse)
    return RoutingRule.objects.create(
        name="仓库发货", partner=courier, priority=10, store_kind="warehouse"
    )


class _ConfirmLater:
    """A payment provider confirming later, as WeChat Pay's notify does."""

    name = "testpay"
    confirms_immediately = False

    def start(self, payment):
        from orders.payments import StartResult

        return StartResult()

    def refund(self, refund):
        from orders.payments import RefundResult

        return RefundResult(status="succeeded", provider_refund_id=f"r-{refund.out_refund_no}")


@pytest.fixture
def testpay():
    from orders import payments

    payments.provider_register(_ConfirmLater())
    yield "testpay"
    payments._providers.pop("testpay")


@pytest.fixture
def member(db):
    from tests import factories

    return factories.MemberFactory(mobile="13900000002", name="赵敏")


@pytest.fixture
def place_paid(testpay, member, goods, django_capture_on_commit_callbacks):
    """A mini-shop delivery order at ``store`` (the warehouse unless told), paid in full, its
    after-commit work (refunds, outbox deliveries) run."""
    import itertools

    from orders.payments import payment_confirm, payment_start
    from orders.pricing import BasketLine
    from orders.services import checkout_place

    numbers = itertools.count(1)

    def _place(store, *lines, fulfilment="delivery"):
        lines = lines or ((goods[0], 2), (goods[1], 1))
        with django_capture_on_commit_callbacks(execute=True):
            order = checkout_place(
                channel="mini_shop",
                store=store,
                fulfilment=fulfilment,
                lines=[BasketLine(sku.pk, quantity) for sku, quantity in lines],
                client_reference=f"mini-{next(numbers)}",
                member=member,
                address=ADDRESS if fulfilment == "delivery" else None,
            )
            payment, _start = payment_start(order=order, provider=testpay)
            payment_confirm(
                provider=testpay,
                out_trade_no=payment.out_trade_no,
                transaction_id=f"tx-{payment.out_trade_no}",
                amount_fen=payment.amount_fen,
            )
        order.refresh_from_db()
        return order

    return _place


# --- The WeChat sandbox, for the end-to-end tests -------------------------------------------------


@pytest.fixture(scope="session")
def wechat_sandbox_server():
    """The WeChat sandbox on a free port for the session (as tests/wechat/conftest.py runs it)."""
    from wechat.sandbox import SandboxServer

    server = SandboxServer().start()
    yield server
    server.stop()


@pytest.fixture
def wechat_sandbox(settings, wechat_sandbox_server):
    """The WeChat client pointed at a reset WeChat sandbox, its token in this test's cache;
    the settings tests/wechat/conftest.py gives every WeChat test."""
    import uuid

    from wechat.sandbox import SANDBOX_APP_ID, SANDBOX_APP_SECRET

    wechat_sandbox_server.sandbox.reset()
    settings.WECHAT_APP_ID = SANDBOX_APP_ID
    settings.WECHAT_APP_SECRET = SANDBOX_APP_SECRET
    settings.WECHAT_API_BASE_URL = wechat_sandbox_server.url
    settings.WECHAT_TIMEOUT_SECONDS = 2.0
    settings.WECHAT_RETRY_ATTEMPTS = 3
    settings.WECHAT_RETRY_BACKOFF_SECONDS = 0.01
    settings.WECHAT_STABLE_TOKEN = True
    settings.WECHAT_TOKEN_KEY_PREFIX = f"test-wechat-{uuid.uuid4().hex}"
    settings.WECHAT_MINIPROGRAM_STATE = "formal"
    settings.REDIS_URL = ""
    yield wechat_sandbox_server
    wechat_sandbox_server.sandbox.reset()
