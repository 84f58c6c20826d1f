"""WeChat Pay end to end, for both protocol versions: the platform on a live server, the real
gateway (v3: RSA-signed JSON, AES-GCM notifies; v2: key-signed XML) talking HTTP to the
sandbox, and the sandbox sending its signed notifies back to the live server.

A shopper logs in with WeChat, checks out, asks to pay, pays on the sandbox's cashier page
(which checks the ``wx.requestPayment`` signature), the notify marks the order paid and commits
its stock, and picking it up earns her points. Forged, stale, wrong-amount, unknown-order and
replayed notifies change nothing; refunds go out and come back by notify; reconciliation finds
a payment whose notify never came and closes the trade of an order that expired; the counter's
payment code is paid at once, after the shopper confirms, or never (reversed).
"""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from inventory.models import Reservation, StockItem, StockMovement
from members.models import Identity, Member
from orders.models import Channel, Fulfilment, Order, OrderEvent, Payment, PaymentIssue, Refund
from orders.payments import refund_create
from orders.pricing import BasketLine
from orders.services import (
    checkout_place,
    order_mark_ready,
    orders_expire_unpaid,
    pickup_handover,
    shipment_create,
)
from retail import settings as project_settings
from tests.wechat.conftest import LIN
from wechat.pay.base import gateway
from wechat.pay.services import PROVIDER, payments_close_unpaid, payments_reconcile
from wechat.sandbox import SANDBOX_APP_ID, pay_v2, pay_v3

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("ledger_emptied_after"),
]

S = Order.Status


@pytest.fixture(params=["v3", "v2"])
def version(request, settings, sandbox_server, live_server):
    """The platform's gateway of this version pointed at the sandbox, and the sandbox's
    notifies pointed at the live server."""
    module = {"v3": pay_v3, "v2": pay_v2}[request.param]
    for name, value in module.platform_settings(sandbox_server.url).items():
        setattr(settings, name, value)
    settings.WECHAT_PAY_VERSION = request.param
    settings.WECHAT_PAY_NOTIFY_BASE_URL = live_server.url
    settings.WECHAT_PAY_CODEPAY_POLL_SECONDS = 0.05
    settings.WECHAT_PAY_CODEPAY_DEADLINE_SECONDS = 0.6
    return request.param


class SandboxPay:
    """The sandbox's pay side of one version: its cashier and control endpoints."""

    def __init__(self, version: str, url: str):
        self.version = version
        self.url = f"{url.rstrip('/')}/sandbox/pay/{version}/"
        self.http = requests.Session()

    def _post(self, path: str, body: dict) -> dict:
        response = self.http.post(self.url + path, json=body, timeout=10)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def cashier(self, out_trade_no: str, parameters: dict) -> requests.Response:
        """The shopper's phone: the payment sheet ``wx.requestPayment`` opens, then her tap."""
        sheet = self.http.get(self.url + out_trade_no, params=parameters, timeout=10)
        assert sheet.status_code == 200, sheet.text
        return self.http.post(self.url + out_trade_no, data={}, timeout=10)

    def pay(self, out_trade_no: str, *, notify: bool = True) -> dict:
        return self._post("pay", {"out_trade_no": out_trade_no, "notify": notify})

    def notify(self, **spec) -> list[dict]:
        return self._post("notify", spec)["notifies"]

    def refund_result(self, out_refund_no: str, status: str) -> dict:
        return self._post("refund-result", {"out_refund_no": out_refund_no, "status": status})

    def payment_code(self, **spec) -> str:
        return self._post("payment-codes", spec)["auth_code"]

    def trade(self, out_trade_no: str) -> dict:
        trades = self.http.get(self.url + "trades", timeout=10).json()["trades"]
        return next(trade for trade in trades if trade["out_trade_no"] == out_trade_no)

    def refunds(self) -> list[tuple[str, str]]:
        """(out_refund_no, status) of the refunds WeChat was asked for."""
        refunds = self.http.get(self.url + "trades", timeout=10).json()["refunds"]
        return [
            (refund["out_refund_no"], refund.get("status") or refund["refund_status"])
            for refund in refunds
        ]

    def notifies(self) -> list[dict]:
        return self.http.get(self.url + "notifies", timeout=10).json()["notifies"]

    def state(self, out_trade_no: str) -> str:
        trade = self.trade(out_trade_no)
        return trade.get("trade_state") or trade["state"]


def received(version: str, record: dict) -> bool:
    """Whether the platform's answer to a notify says "received"."""
    if version == "v3":
        return record["status"] in (200, 204)
    return record["status"] == 200 and "<return_code><![CDATA[SUCCESS]]>" in record["answer"]


def refused(version: str, record: dict) -> bool:
    if version == "v3":
        return record["status"] == 500
    return record["status"] == 200 and "<return_code><![CDATA[FAIL]]>" in record["answer"]


@pytest.fixture
def cashier(version, sandbox_server):
    return SandboxPay(version, sandbox_server.url)


@pytest.fixture
def water(stocked):
    return stocked(name="矿泉水", price_fen=200, on_hand=50)


class Phone:
    """The mini-program on the shopper's phone: the shop API over HTTP."""

    def __init__(self, base: str, wx):
        self.base = f"{base}/api/shop/v1/"
        self.http = requests.Session()
        self.http.headers["Accept-Language"] = "en"
        code = wx.js_code(LIN)
        login = self.http.post(self.base + "login/", json={"code": code}, timeout=10)
        assert login.status_code == 200, login.text
        self.http.headers["Authorization"] = f"Bearer {login.json()['token']}"

    def call(self, method: str, path: str, body=None, expect: int = 200) -> dict:
        response = self.http.request(method, self.base + path, json=body, timeout=10)
        assert response.status_code == expect, response.text
        return response.json()


@pytest.fixture
def phone(live_server, wx, version):
    return Phone(live_server.url, wx)


def shopper() -> Member:
    return Identity.objects.get(openid=LIN, app_id=SANDBOX_APP_ID).member


@pytest.fixture
def checked_out(phone, shop_store, water):
    """Three waters in her cart at store A, checked out for pickup: 6.00 yuan."""
    phone.call("PUT", "cart/store/", {"store": shop_store.pk})
    phone.call("PUT", f"cart/lines/{water.pk}/", {"quantity": 3})
    order = phone.call(
        "POST", "checkout/", {"fulfilment": "pickup", "client_reference": "e2e-1"}, expect=201
    )
    return Order.objects.get(number=order["number"])


@pytest.fixture
def paying(phone, checked_out) -> dict:
    """She tapped "pay": the answer of the pay endpoint."""
    return phone.call("POST", f"orders/{checked_out.number}/pay/")


def stock(sku, store) -> tuple[int, int]:
    item = StockItem.objects.get(sku=sku, store=store)
    return item.on_hand, item.reserved


def reservations(order) -> list[str]:
    keys = order.lines.values_list("line_key", flat=True)
    return list(Reservation.objects.filter(line_key__in=keys).values_list("status", flat=True))


def test_a_shopper_pays_in_the_sandbox_the_order_is_paid_and_pickup_earns_points(
    version, cashier, phone, checked_out, water, shop_store, manager_a
):
    # She taps "pay" twice (left the payment sheet and came back): one WeChat order
    first = phone.call("POST", f"orders/{checked_out.number}/pay/")
    again = phone.call("POST", f"orders/{checked_out.number}/pay/")
    payment = Payment.objects.get()
    assert (first["out_trade_no"], again["out_trade_no"]) == (payment.out_trade_no,) * 2
    assert first["amount_fen"] == 600
    assert first["request_payment"]["package"] == f"prepay_id={payment.provider_data['prepay_id']}"
    assert first["request_payment"]["appId"] == SANDBOX_APP_ID
    trade = cashier.trade(payment.out_trade_no)
    assert cashier.state(payment.out_trade_no) == "NOTPAY"

    # She pays on WeChat's sheet; WeChat's notify reaches the platform
    paid = cashier.cashier(payment.out_trade_no, first["request_payment"])

    assert paid.status_code == 200
    [notify] = cashier.notifies()
    assert received(version, notify), notify
    assert cashier.state(payment.out_trade_no) == "SUCCESS"
    order = phone.call("GET", f"orders/{checked_out.number}/")
    assert (order["status"], order["paid_fen"]) == ("paid", 600)
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert payment.transaction_id == cashier.trade(payment.out_trade_no)["transaction_id"]
    assert trade["out_trade_no"] == payment.out_trade_no
    assert reservations(checked_out) == ["committed"]
    assert stock(water, shop_store) == (50, 3)
    assert OrderEvent.objects.filter(order=checked_out, kind="order.paid").count() == 1

    # Picked up at the store: the goods leave and she earns a point a yuan
    order_mark_ready(order=checked_out.pk, actor=manager_a)
    pickup_handover(store=shop_store, pickup_code=checked_out.pickup_code, actor=manager_a)

    checked_out.refresh_from_db()
    assert checked_out.status == S.COMPLETED
    assert stock(water, shop_store) == (47, 0)
    assert shopper().points_balance == 6


FORGERIES = {
    "v3": [
        {"forge": "signature"},
        {"forge": "serial"},
        {"forge": "body"},
        {"forge": "ciphertext"},
        {"timestamp_offset_seconds": -600},
        {"timestamp_offset_seconds": 600},
    ],
    "v2": [
        {"forge": "signature"},
        {"forge": "body"},
        {"forge": "appid"},
        {"forge": "mch_id"},
        {"forge": "malformed"},
    ],
}


def test_notifies_not_genuine_or_not_new_change_nothing(
    version, cashier, paying, checked_out, water, shop_store
):
    """One order, WeChat holding its money, every kind of notify that must not count."""
    out_trade_no = paying["out_trade_no"]
    cashier.pay(out_trade_no, notify=False)
    payment = Payment.objects.get()

    # Forged (another key, key id, body or cipher; another app or merchant; not XML) and,
    # for v3, signed too long ago or in the future: refused, so WeChat would send them again
    forged = [
        record
        for spec in FORGERIES[version]
        for record in cashier.notify(out_trade_no=out_trade_no, **spec)
    ]
    # Genuine but for another amount: received, recorded for staff, not confirmed
    [wrong_amount] = cashier.notify(out_trade_no=out_trade_no, amount_fen=1)
    # Genuine, for a trade this platform never made (another system at the same merchant)
    gateway().jsapi_prepay(
        out_trade_no="ELSEWHERE0001",
        amount_fen=600,
        description="其他系统",
        openid=LIN,
        client_ip="127.0.0.1",
    )
    cashier.pay("ELSEWHERE0001", notify=False)
    [unknown] = cashier.notify(out_trade_no="ELSEWHERE0001")

    assert len(forged) == len(FORGERIES[version])
    assert [refused(version, record) for record in forged] == [True] * len(forged), forged
    assert (received(version, wrong_amount), received(version, unknown)) == (True, True)
    checked_out.refresh_from_db()
    assert (checked_out.status, checked_out.paid_fen) == (S.PENDING_PAYMENT, 0)
    assert list(Payment.objects.values_list("pk", "status")) == [(payment.pk, "pending")]
    assert stock(water, shop_store) == (50, 3)
    assert reservations(checked_out) == ["held"]
    assert list(
        PaymentIssue.objects.order_by("pk").values_list("code", "out_trade_no", "amount_fen")
    ) == [
        ("amount_mismatch", out_trade_no, 1),
        ("unknown_payment", "ELSEWHERE0001", 600),
    ]

    # The genuine notify goes through, once; its repeats (one after another, as WeChat
    # repeats: test_pay_concurrency.py sends them at once, on PostgreSQL, since the live
    # server shares one SQLite connection between its threads) answer success, without effect
    [genuine] = cashier.notify(out_trade_no=out_trade_no)
    paid_at = Payment.objects.get(pk=payment.pk).paid_at
    repeats = [record for _ in range(3) for record in cashier.notify(out_trade_no=out_trade_no)]

    assert [received(version, record) for record in [genuine, *repeats]] == [True] * 4
    checked_out.refresh_from_db()
    assert (checked_out.status, checked_out.paid_fen) == (S.PAID, 600)
    assert Payment.objects.get(pk=payment.pk).paid_at == paid_at
    assert OrderEvent.objects.filter(order=checked_out, kind="order.paid").count() == 1
    assert PaymentIssue.objects.count() == 2


def test_refunds_go_out_through_wechat_and_come_back_by_notify(
    version, cashier, paying, checked_out, water, shop_store
):
    cashier.pay(paying["out_trade_no"])

    # A partial refund: PROCESSING at WeChat, then its notify
    partial = refund_create(order=checked_out.pk, amount_fen=200, reason="少一瓶", actor=None)
    partial.refresh_from_db()
    assert partial.status == "pending"
    assert cashier.refunds() == [(partial.out_refund_no, "PROCESSING")]

    result = cashier.refund_result(partial.out_refund_no, "SUCCESS")

    assert [received(version, record) for record in result["notifies"]] == [True]
    partial.refresh_from_db()
    checked_out.refresh_from_db()
    assert partial.status == "succeeded"
    assert (checked_out.status, checked_out.refunded_fen) == (S.PAID, 200)

    # The rest, which WeChat closed: failed, not counted
    closed = refund_create(order=checked_out.pk, amount_fen=400, reason="不要了", actor=None)
    answer = cashier.refund_result(closed.out_refund_no, "CLOSED")

    assert [received(version, record) for record in answer["notifies"]] == [True]
    closed.refresh_from_db()
    checked_out.refresh_from_db()
    assert (closed.status, closed.error) == ("failed", "WeChat: CLOSED")
    assert (checked_out.status, checked_out.refunded_fen) == (S.PAID, 200)

    # Asked again, it goes through: refunded in full, the order is cancelled
    rest = refund_create(order=checked_out.pk, amount_fen=400, reason="再退", actor=None)
    cashier.refund_result(rest.out_refund_no, "SUCCESS")

    rest.refresh_from_db()
    checked_out.refresh_from_db()
    assert rest.status == "succeeded"
    assert rest.provider_refund_id
    assert (checked_out.status, checked_out.refunded_fen) == (S.CANCELLED, 600)
    assert stock(water, shop_store) == (50, 0)


def test_reconciliation_confirms_a_payment_whose_notify_never_came(
    version, cashier, paying, checked_out
):
    cashier.pay(paying["out_trade_no"], notify=False)

    outcomes = payments_reconcile(now=timezone.now() + timedelta(minutes=6))

    assert outcomes == {"confirmed": 1}
    checked_out.refresh_from_db()
    assert checked_out.status == S.PAID
    assert cashier.notifies() == []


def test_an_expired_orders_trade_is_closed_at_wechat(version, cashier, paying, checked_out):
    orders_expire_unpaid(now=timezone.now() + timedelta(minutes=31))

    outcomes = payments_close_unpaid()

    assert outcomes == {"closed": 1}
    assert cashier.state(paying["out_trade_no"]) == "CLOSED"
    assert Payment.objects.get().status == "closed"
    # Paying it now is impossible
    late = cashier.http.post(cashier.url + "pay", json={"out_trade_no": paying["out_trade_no"]})
    assert late.status_code == 400
    assert "not payable" in late.text


def test_money_paid_after_expiry_goes_back(version, cashier, paying, checked_out):
    orders_expire_unpaid(now=timezone.now() + timedelta(minutes=31))

    [record] = cashier.pay(paying["out_trade_no"])["notifies"]

    assert received(version, record)
    [refund] = Refund.objects.all()
    assert (refund.amount_fen, refund.status) == (600, "pending")
    assert cashier.refunds() == [(refund.out_refund_no, "PROCESSING")]
    checked_out.refresh_from_db()
    assert (checked_out.status, checked_out.paid_fen) == (S.CANCELLED, 600)

    # WeChat could not pay it out (the shopper's card was closed): failed, for staff
    answer = cashier.refund_result(refund.out_refund_no, "ABNORMAL")

    assert [received(version, record) for record in answer["notifies"]] == [True]
    refund.refresh_from_db()
    checked_out.refresh_from_db()
    assert (refund.status, refund.error) == ("failed", "WeChat: ABNORMAL")
    assert (checked_out.status, checked_out.refunded_fen) == (S.CANCELLED, 0)


# --- The counter's payment code ----------------------------------------------------------------


@pytest.fixture
def sale(shop_store, water, clerk_a):
    return checkout_place(
        channel=Channel.COUNTER,
        store=shop_store,
        fulfilment=Fulfilment.COUNTER,
        lines=[BasketLine(water.pk, 2)],
        client_reference="till-1",
        actor=clerk_a,
    )


@pytest.fixture
def till(client, clerk_a, version):
    client.force_login(clerk_a)

    def scan(order, code):
        return client.post(
            f"/api/staff/v1/orders/{order.pk}/pay-by-code/",
            {"auth_code": code},
            content_type="application/json",
        )

    return scan


@pytest.mark.parametrize(
    ("spec", "queries"),
    [({"outcome": "paid"}, 0), ({"outcome": "userpaying", "paid_after_queries": 2}, 2)],
)
def test_a_payment_code_paid_completes_the_counter_sale(
    version, cashier, till, sale, water, shop_store, sandbox, spec, queries
):
    code = cashier.payment_code(**spec)

    response = till(sale, code)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "completed"
    payment = Payment.objects.get()
    assert (payment.provider, payment.status) == (PROVIDER, "succeeded")
    assert payment.transaction_id == cashier.trade(payment.out_trade_no)["transaction_id"]
    assert stock(water, shop_store) == (48, 0)
    assert StockMovement.objects.filter(reason="counter_sale").count() == 1
    query_path = {
        "v3": f"/v3/pay/transactions/out-trade-no/{payment.out_trade_no}",
        "v2": "/pay/orderquery",
    }[version]
    assert len(sandbox.calls(path=query_path)) == queries


def test_a_payment_code_never_confirmed_is_reversed_and_the_sale_stays_open(
    version, cashier, till, sale, water, shop_store
):
    code = cashier.payment_code(outcome="userpaying")

    response = till(sale, code)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "codepay_timeout"
    payment = Payment.objects.get()
    assert payment.status == "closed"
    assert cashier.state(payment.out_trade_no) == "REVOKED"
    sale.refresh_from_db()
    assert (sale.status, sale.paid_fen) == (S.PENDING_PAYMENT, 0)
    assert stock(water, shop_store) == (50, 2)
    assert StockMovement.objects.filter(reason="counter_sale").count() == 0


def test_a_payment_code_refused_for_want_of_money_changes_nothing(
    version, cashier, till, sale, water, shop_store
):
    code = cashier.payment_code(outcome="not_enough")

    response = till(sale, code)

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "codepay_refused"
    assert error["fields"]["wechat_code"] == [{"v3": "NOT_ENOUGH", "v2": "NOTENOUGH"}[version]]
    assert Payment.objects.get().status == "closed"
    sale.refresh_from_db()
    assert sale.status == S.PENDING_PAYMENT
    assert stock(water, shop_store) == (50, 2)


def test_paid_through_wechat_then_shipped_the_upload_and_the_message_reach_wechat(
    version, cashier, phone, shop_store, water, wx, settings, manager_a
):
    """The whole road: checkout, prepay, paid in the sandbox, notify, order paid; then shipped
    from the store, and the outbox carries the shipping info and a subscribe message to WeChat
    (seen in the sandbox's records), each once."""
    settings.WECHAT_SUBSCRIBE_TEMPLATES = project_settings._SANDBOX_SUBSCRIBE_TEMPLATES
    wx.allow(LIN, "sandbox-order-paid")
    wx.allow(LIN, "sandbox-order-shipped")
    address = phone.call(
        "POST",
        "addresses/",
        {
            "name": "林晓梅",
            "mobile": "13912345678",
            "province": "上海市",
            "city": "上海市",
            "district": "静安区",
            "detail": "愚园路168号",
            "is_default": True,
        },
        expect=201,
    )
    phone.call("PUT", "cart/store/", {"store": shop_store.pk})
    phone.call("PUT", f"cart/lines/{water.pk}/", {"quantity": 2})
    placed = phone.call(
        "POST",
        "checkout/",
        {"fulfilment": "delivery", "address_id": address["id"], "client_reference": "e2e-ship"},
        expect=201,
    )
    paying = phone.call("POST", f"orders/{placed['number']}/pay/")

    cashier.cashier(paying["out_trade_no"], paying["request_payment"])
    order = Order.objects.get(number=placed["number"])
    assert order.status == S.PAID
    transaction_id = Payment.objects.get(order=order).transaction_id

    shipment_create(order=order, carrier_code="SF", tracking_number="SF9876543210", actor=manager_a)

    uploads = wx.calls("/wxa/sec/order/upload_shipping_info")
    assert [call["body"]["order_key"] for call in uploads] == [
        {"order_number_type": 2, "transaction_id": transaction_id}
    ]
    assert [p["tracking_no"] for p in uploads[0]["body"]["shipping_list"]] == ["SF9876543210"]
    sent = wx.calls("/cgi-bin/message/subscribe/send")
    assert [call["body"]["template_id"] for call in sent] == [
        "sandbox-order-paid",
        "sandbox-order-shipped",
    ]
    assert {call["body"]["touser"] for call in sent} == {LIN}
