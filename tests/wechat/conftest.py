"""One WeChat sandbox per test session, on a free port in a thread; every test talks to it over
a real socket and starts from a reset sandbox and a token store of its own."""

import uuid

import pytest
import requests

from wechat.sandbox import SANDBOX_APP_ID, SANDBOX_APP_SECRET, SandboxServer

LIN = "oSbx5t1_LinXiaomei00000000001"  # unionid, phone 13800138001
WANG = "oSbx5t1_WangDawei000000000002"  # unionid, phone 13900139002
CHEN = "oSbx5t1_ChenJing0000000000003"  # no unionid, phone 13700137003
ZHAO = "oSbx5t1_ZhaoLei0000000000004"  # unionid, no phone
RISKY = "oSbx5t1_RiskyUser00000000005"  # login refused (40226)


@pytest.fixture(scope="session")
def sandbox_server():
    server = SandboxServer().start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server):
    return sandbox_server.sandbox


@pytest.fixture(autouse=True)
def wechat_settings(settings, sandbox_server):
    """The client pointed at the sandbox, quick to retry, its token in this test's cache."""
    sandbox_server.sandbox.reset()
    settings.WECHAT_APP_ID = SANDBOX_APP_ID
    settings.WECHAT_APP_SECRET = SANDBOX_APP_SECRET
    settings.WECHAT_API_BASE_URL = sandbox_server.url
    settings.WECHAT_TIMEOUT_SECONDS = 2.0
    settings.WECHAT_RETRY_ATTEMPTS = 3
    settings.WECHAT_RETRY_BACKOFF_SECONDS = 0.01
    settings.WECHAT_STABLE_TOKEN = True
    settings.WECHAT_TOKEN_KEY_PREFIX = f"test-wechat-{uuid.uuid4().hex}"
    settings.WECHAT_MINIPROGRAM_STATE = "formal"
    # The Redis token store has tests of its own (test_client.py, with REDIS_URL set).
    settings.REDIS_URL = ""
    yield
    sandbox_server.sandbox.reset()


class SandboxHTTP:
    """Raw HTTP to the sandbox, as WeChat's clients and the shopper's phone would talk to it."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()

    def get(self, path: str, /, **params) -> requests.Response:
        return self.http.get(self.url + path.lstrip("/"), params=params, timeout=5)

    def post(self, path: str, body=None, /, **params) -> requests.Response:
        return self.http.post(self.url + path.lstrip("/"), json=body, params=params, timeout=5)

    def token(self) -> str:
        answer = self.get(
            "/cgi-bin/token",
            grant_type="client_credential",
            appid=SANDBOX_APP_ID,
            secret=SANDBOX_APP_SECRET,
        ).json()
        return answer["access_token"]

    def js_code(self, openid: str) -> str:
        return self.post("/sandbox/codes", {"openid": openid}).json()["code"]

    def phone_code(self, openid: str) -> str:
        return self.post("/sandbox/phone-codes", {"openid": openid}).json()["code"]

    def fault(self, **spec) -> dict:
        response = self.post("/sandbox/faults", spec)
        assert response.status_code == 201, response.text
        return response.json()["fault"]

    def calls(self, path: str | None = None) -> list[dict]:
        params = {"path": path} if path else {}
        return self.get("/sandbox/calls", **params).json()["calls"]

    def allow(self, openid: str, template_id: str, times: int = 1) -> None:
        body = {"openid": openid, "template_id": template_id, "times": times}
        assert self.post("/sandbox/subscriptions", body).status_code == 200


@pytest.fixture
def wx(sandbox_server):
    return SandboxHTTP(sandbox_server.url)


# --- Shopper account: cart, checkout, orders, member centre, addresses (helper S2) -------------


@pytest.fixture
def shop_store(store_a):
    """Store A (SH001 静安寺店) sells online: pickup and ship-from-store."""
    store_a.offers_ship_from_store = True
    store_a.save(update_fields=["offers_ship_from_store"])
    return store_a


@pytest.fixture
def stocked(shop_store):
    """A SKU with ``on_hand`` units received at the shop store through the ledger."""
    from inventory.services import StockLine, stock_receive
    from tests import factories

    def _stocked(*, name: str, price_fen: int, on_hand: int, store=None, **product):
        sku = factories.SKUFactory(price_fen=price_fen, product__name=name, **product)
        stock_receive(
            store=store or shop_store,
            lines=[StockLine(sku, on_hand)],
            idempotency_key=f"seed-{sku.code}",
        )
        return sku

    return _stocked


@pytest.fixture
def lina(db):
    """The shopper: a member with a phone, no tier, no points."""
    from tests import factories

    return factories.MemberFactory(mobile="13800138001", name="林小美")


@pytest.fixture
def shop_api(client):
    """A test client logged in to the shop API as ``member`` (a token of her own), reading
    English: ``shop_api(member).get("cart/")``."""
    from wechat.services.auth import token_issue

    class ShopClient:
        prefix = "/api/shop/v1/"

        def __init__(self, member):
            raw, _token = token_issue(member=member)
            self.headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}", "HTTP_ACCEPT_LANGUAGE": "en"}

        def get(self, path: str, data=None):
            return client.get(self.prefix + path, data or {}, **self.headers)

        def _send(self, method: str, path: str, data=None):
            send = getattr(client, method)
            return send(self.prefix + path, data, content_type="application/json", **self.headers)

        def post(self, path: str, data=None):
            return self._send("post", path, data or {})

        def put(self, path: str, data=None):
            return self._send("put", path, data or {})

        def patch(self, path: str, data=None):
            return self._send("patch", path, data or {})

        def delete(self, path: str):
            return client.delete(self.prefix + path, **self.headers)

    return ShopClient


class ShopPay:
    """A payment provider that confirms later, like WeChat Pay; ``pay_order`` confirms."""

    name = "shoppay"
    confirms_immediately = False

    def start(self, payment):
        from orders.payments import StartResult

        return StartResult()

    def refund(self, refund):
        from orders.payments import RefundResult

        return RefundResult(status="pending")


@pytest.fixture
def pay_order(django_capture_on_commit_callbacks):
    """Pay an order in full, as the provider's notify would."""
    from orders import payments

    provider = ShopPay()
    payments.provider_register(provider)

    def _pay(order):
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

    yield _pay
    payments._providers.pop(provider.name)
