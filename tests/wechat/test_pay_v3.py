"""WeChat Pay API v3: the platform's gateway (wechat/pay/v3.py) against the sandbox's v3 side
(wechat/sandbox/pay_v3.py), over real sockets. Every gateway method's answers and error codes;
signatures both ways (a request the sandbox refuses, an answer the gateway refuses); notifies
sent by the sandbox to a notify endpoint and parsed by the gateway, good and bad (forged,
tampered, stale, wrong key, undecryptable, another merchant); the sandbox's cashier page and
control endpoints."""

import base64
import dataclasses
import json
import re
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ImproperlyConfigured

from tests.wechat.conftest import CHEN, LIN, WANG
from wechat.pay import base
from wechat.pay.base import Notice, NotifyAnswer, NotifyRejected, RefundState, Trade, WeChatPayError
from wechat.pay.v3 import V3Gateway, load_private_key, load_public_key, rsa_sign, rsa_verify
from wechat.sandbox import SANDBOX_APP_ID
from wechat.sandbox.pay_v3 import (
    API_V3_KEY,
    MERCHANT_PRIVATE_KEY_PATH,
    MERCHANT_PUBLIC_KEY_PATH,
    MERCHANT_SERIAL_NO,
    SANDBOX_MCH_ID,
    WECHATPAY_PRIVATE_KEY_PATH,
    WECHATPAY_PUBLIC_KEY_ID,
    WECHATPAY_PUBLIC_KEY_PATH,
    platform_settings,
)

JSAPI = "/v3/pay/transactions/jsapi"
REFUNDS = "/v3/refund/domestic/refunds"
CODEPAY = "/v3/pay/transactions/codepay"
TX_ID = re.compile(r"4200\d{24}")
REFUND_ID = re.compile(r"5030\d{25}")


# --- a notify endpoint for the sandbox to call ----------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host's name up in DNS, which can hang offline.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class NotifyEndpoint:
    """The platform's notify URL as far as these tests need it: keeps every request and
    answers ``status`` with ``body``. Also plays a proxy in front of WeChat (GET/POST)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with endpoint.lock:
                    endpoint.received.append(
                        {"path": self.path, "headers": dict(self.headers.items()), "body": body}
                    )
                self._answer()

            def do_GET(self):
                self._answer()

            def _answer(self):
                self.send_response(endpoint.status)
                self.send_header("Content-Length", str(len(endpoint.body)))
                self.end_headers()
                self.wfile.write(endpoint.body)

            def log_message(self, format, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def reset(self):
        self.received = []
        self.status, self.body = 204, b""

    def wait_for(self, count, seconds=3.0):
        deadline = time.monotonic() + seconds
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.received


@pytest.fixture(scope="session")
def endpoint_server():
    endpoint = NotifyEndpoint()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


@pytest.fixture
def endpoint(endpoint_server):
    endpoint_server.reset()
    return endpoint_server


@pytest.fixture
def v3_settings(settings, sandbox_server, endpoint):
    for name, value in platform_settings(sandbox_server.url).items():
        setattr(settings, name, value)
    settings.WECHAT_PAY_NOTIFY_BASE_URL = endpoint.url
    return settings


@pytest.fixture
def gw(v3_settings):
    return V3Gateway()


@pytest.fixture(scope="session")
def stranger_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- helpers ------------------------------------------------------------------------------------


def prepay(gw, no="P00000001", amount=1999, openid=LIN, description="静安寺店 订单"):
    return gw.jsapi_prepay(
        out_trade_no=no,
        amount_fen=amount,
        description=description,
        openid=openid,
        client_ip="203.0.113.7",
    )


def pay(wx, no, notify=False):
    response = wx.post("/sandbox/pay/v3/pay", {"out_trade_no": no, "notify": notify})
    assert response.status_code == 200, response.text
    return response.json()


def paid(gw, wx, no="P00000001", amount=1999):
    prepay(gw, no, amount)
    return pay(wx, no)["trade"]


def payment_code(wx, openid=WANG, **spec):
    response = wx.post("/sandbox/pay/v3/payment-codes", {"openid": openid, **spec})
    assert response.status_code == 201, response.text
    return response.json()["auth_code"]


def codepay(gw, code, no="C00000001", amount=2500):
    return gw.codepay(
        out_trade_no=no,
        amount_fen=amount,
        auth_code=code,
        description="收银台 SH001",
        client_ip="10.0.0.8",
    )


def trades(wx):
    return {
        trade["out_trade_no"]: trade for trade in wx.get("/sandbox/pay/v3/trades").json()["trades"]
    }


def notify_request(wx, **spec):
    """A notify the sandbox signed and did not send: (body bytes, headers)."""
    response = wx.post("/sandbox/pay/v3/notify", {**spec, "deliver": False})
    assert response.status_code == 200, response.text
    request = response.json()["requests"][0]
    return request["body"].encode(), request["headers"]


def refused(call) -> WeChatPayError:
    with pytest.raises(WeChatPayError) as raised:
        call()
    return raised.value


def rejected(gw, body, headers) -> str:
    with pytest.raises(NotifyRejected) as raised:
        gw.parse_notify(body=body, headers=headers)
    return raised.value.reason


def wechat_signed(body: bytes, *, offset=0) -> dict:
    """Headers WeChat Pay would send with ``body`` (the sandbox's key: tests only)."""
    timestamp, nonce = str(int(time.time()) + offset), secrets.token_hex(8)
    key = load_private_key(str(WECHATPAY_PRIVATE_KEY_PATH))
    signature = rsa_sign(key, f"{timestamp}\n{nonce}\n{body.decode()}\n")
    return {
        "Wechatpay-Serial": WECHATPAY_PUBLIC_KEY_ID,
        "Wechatpay-Signature": signature,
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
    }


def merchant_call(wx, method, path, body=None, *, offset=0, key=None, serial=MERCHANT_SERIAL_NO):
    """A request signed by hand, as the merchant (or someone else) would sign it."""
    payload = "" if body is None else json.dumps(body)
    timestamp, nonce = str(int(time.time()) + offset), "N0NCE42"
    message = f"{method}\n{path}\n{timestamp}\n{nonce}\n{payload}\n"
    signature = rsa_sign(key or load_private_key(str(MERCHANT_PRIVATE_KEY_PATH)), message)
    authorization = (
        f'WECHATPAY2-SHA256-RSA2048 mchid="{SANDBOX_MCH_ID}",nonce_str="{nonce}",'
        f'signature="{signature}",timestamp="{timestamp}",serial_no="{serial}"'
    )
    return wx.http.request(
        method,
        wx.url + path.lstrip("/"),
        data=payload.encode() or None,
        headers={"Authorization": authorization, "Content-Type": "application/json"},
        timeout=5,
    )


def wechat_verifies(response) -> bool:
    headers = response.headers
    message = (
        f"{headers['Wechatpay-Timestamp']}\n{headers['Wechatpay-Nonce']}\n".encode()
        + response.content
        + b"\n"
    )
    key = load_public_key(str(WECHATPAY_PUBLIC_KEY_PATH))
    return headers["Wechatpay-Serial"] == WECHATPAY_PUBLIC_KEY_ID and rsa_verify(
        key, message, headers["Wechatpay-Signature"]
    )


# --- configuration ------------------------------------------------------------------------------


def test_the_gateway_is_the_default_version_and_built_from_the_settings(v3_settings):
    gateway = base.gateway()

    assert isinstance(gateway, V3Gateway)
    assert gateway.version == "v3"
    assert gateway.config.app_id == SANDBOX_APP_ID
    assert gateway.config.mch_id == SANDBOX_MCH_ID
    assert gateway.config.base_url == v3_settings.WECHAT_PAY_API_BASE_URL.rstrip("/")
    assert gateway.config.api_v3_key == API_V3_KEY.encode()
    assert gateway.config.max_skew_seconds == 300


def test_without_its_keys_the_gateway_refuses_to_start(v3_settings):
    v3_settings.WECHAT_PAY_V3_API_KEY = ""
    v3_settings.WECHAT_PAY_V3_PUBLIC_KEY_ID = ""
    with pytest.raises(
        ImproperlyConfigured, match="WECHAT_PAY_V3_PUBLIC_KEY_ID, WECHAT_PAY_V3_API_KEY"
    ):
        V3Gateway()

    v3_settings.WECHAT_PAY_V3_PUBLIC_KEY_ID = WECHATPAY_PUBLIC_KEY_ID
    v3_settings.WECHAT_PAY_V3_API_KEY = "too short"
    with pytest.raises(ImproperlyConfigured, match="must be 32 bytes"):
        V3Gateway()

    v3_settings.WECHAT_PAY_V3_API_KEY = API_V3_KEY
    v3_settings.WECHAT_PAY_V3_PRIVATE_KEY_PATH = str(MERCHANT_PUBLIC_KEY_PATH)
    with pytest.raises(ImproperlyConfigured, match="cannot read the merchant's private key"):
        V3Gateway()


def test_without_a_notify_address_no_order_is_made_but_the_counter_works(v3_settings, wx):
    v3_settings.WECHAT_PAY_NOTIFY_BASE_URL = ""
    gateway = V3Gateway()

    with pytest.raises(ImproperlyConfigured, match="WECHAT_PAY_NOTIFY_BASE_URL"):
        prepay(gateway)
    with pytest.raises(ImproperlyConfigured, match="WECHAT_PAY_NOTIFY_BASE_URL"):
        gateway.refund(out_trade_no="C1", out_refund_no="R1", refund_fen=1, total_fen=1, reason="")
    trade = codepay(gateway, payment_code(wx))

    assert trade.state == "SUCCESS"
    assert wx.calls(JSAPI) == wx.calls(REFUNDS) == []


# --- JSAPI prepay and the mini-program's parameters ---------------------------------------------


def test_prepay_creates_the_wechat_order_with_a_request_the_sandbox_verified(gw, wx, endpoint):
    prepay_id = prepay(gw)

    assert re.fullmatch(r"wx\d{8}[0-9a-f]{26}", prepay_id)
    [call] = wx.calls(JSAPI)
    assert (call["status"], call["answer"]) == (200, {"prepay_id": prepay_id})
    assert call["body"] == {
        "appid": SANDBOX_APP_ID,
        "mchid": SANDBOX_MCH_ID,
        "description": "静安寺店 订单",
        "out_trade_no": "P00000001",
        "notify_url": f"{endpoint.url}/wechat/pay/notify/v3/",
        "amount": {"total": 1999, "currency": "CNY"},
        "payer": {"openid": LIN},
        "scene_info": {"payer_client_ip": "203.0.113.7"},
    }
    trade = trades(wx)["P00000001"]
    assert (trade["trade_state"], trade["prepay_id"]) == ("NOTPAY", prepay_id)


def test_asking_again_for_the_same_order_gets_the_same_prepay_and_another_order_is_refused(gw, wx):
    first = prepay(gw)

    again = prepay(gw)
    error = refused(lambda: prepay(gw, amount=2000))

    assert again == first
    assert (error.code, error.message, error.retryable) == (
        "OUT_TRADE_NO_USED",
        "商户订单号重复",
        False,
    )
    assert list(trades(wx)) == ["P00000001"]
    assert trades(wx)["P00000001"]["amount"]["total"] == 1999


def test_prepay_refuses_a_user_of_another_app_and_cuts_a_long_description(gw, wx):
    error = refused(lambda: prepay(gw, openid="oSomeoneElsesOpenid"))
    prepay(gw, no="P00000002", description="商" * 200)

    assert (error.code, error.message, error.retryable) == (
        "PARAM_ERROR",
        "用户的openid与appid不匹配",
        False,
    )
    assert list(trades(wx)) == ["P00000002"]
    assert trades(wx)["P00000002"]["description"] == "商" * 127


def test_the_payment_parameters_are_signed_with_the_merchant_key_and_open_the_cashier(gw, wx):
    prepay_id = prepay(gw)

    params = gw.jsapi_parameters(prepay_id=prepay_id)

    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert (params["appId"], params["package"], params["signType"]) == (
        SANDBOX_APP_ID,
        f"prepay_id={prepay_id}",
        "RSA",
    )
    assert abs(int(params["timeStamp"]) - time.time()) < 5
    assert re.fullmatch(r"[0-9a-f]{32}", params["nonceStr"])
    message = (
        f"{SANDBOX_APP_ID}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    )
    assert rsa_verify(
        load_public_key(str(MERCHANT_PUBLIC_KEY_PATH)), message.encode(), params["paySign"]
    )
    page = wx.get("/sandbox/pay/v3/P00000001", **params)
    assert page.status_code == 200
    assert "确认支付 Pay ¥19.99" in page.text


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"paySign": base64.b64encode(b"x" * 256).decode()}, "paySign does not verify"),
        ({"package": "prepay_id=wx00000000"}, "package is not this trade&#x27;s prepay_id"),
        ({"nonceStr": "another"}, "paySign does not verify"),
        ({"appId": "wx0000000000000000"}, "appId is not the merchant&#x27;s"),
    ],
)
def test_the_cashier_refuses_parameters_that_do_not_verify(gw, wx, change, reason):
    params = gw.jsapi_parameters(prepay_id=prepay(gw))

    page = wx.get("/sandbox/pay/v3/P00000001", **{**params, **change})

    assert page.status_code == 400
    assert f"支付验证签名失败: {reason}" in page.text
    assert trades(wx)["P00000001"]["trade_state"] == "NOTPAY"


# --- query and close ----------------------------------------------------------------------------


def test_query_tells_an_unpaid_then_a_paid_trade(gw, wx):
    prepay(gw)
    unpaid = gw.query(out_trade_no="P00000001")

    pay(wx, "P00000001")
    now_paid = gw.query(out_trade_no="P00000001")

    assert dataclasses.replace(unpaid, raw={}) == Trade(
        out_trade_no="P00000001",
        state="NOTPAY",
        amount_fen=1999,
        app_id=SANDBOX_APP_ID,
        mch_id=SANDBOX_MCH_ID,
    )
    assert unpaid.raw["trade_state_desc"] == "未支付"
    sandbox_trade = trades(wx)["P00000001"]
    assert TX_ID.fullmatch(now_paid.transaction_id)
    assert dataclasses.replace(now_paid, raw={}) == Trade(
        out_trade_no="P00000001",
        state="SUCCESS",
        transaction_id=sandbox_trade["transaction_id"],
        amount_fen=1999,
        app_id=SANDBOX_APP_ID,
        mch_id=SANDBOX_MCH_ID,
        payer_openid=LIN,
    )
    assert now_paid.raw == {
        "appid": SANDBOX_APP_ID,
        "mchid": SANDBOX_MCH_ID,
        "out_trade_no": "P00000001",
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "attach": "",
        "amount": {"total": 1999, "currency": "CNY", "payer_total": 1999, "payer_currency": "CNY"},
        "transaction_id": sandbox_trade["transaction_id"],
        "bank_type": "OTHERS",
        "success_time": sandbox_trade["success_time"],
        "payer": {"openid": LIN},
    }
    assert wx.calls("/v3/pay/transactions/out-trade-no/P00000001")[0]["query"] == {
        "mchid": SANDBOX_MCH_ID
    }


def test_query_of_a_trade_wechat_does_not_know(gw):
    error = refused(lambda: gw.query(out_trade_no="P99999999"))

    assert (error.code, error.message, error.retryable) == ("ORDER_NOT_EXIST", "订单不存在", False)


def test_close_closes_an_unpaid_trade_once_and_for_all(gw, wx):
    prepay(gw)

    gw.close(out_trade_no="P00000001")
    gw.close(out_trade_no="P00000001")  # closing a closed trade is fine
    reorder = refused(lambda: prepay(gw))

    assert gw.query(out_trade_no="P00000001").state == "CLOSED"
    assert [
        call["status"] for call in wx.calls("/v3/pay/transactions/out-trade-no/P00000001/close")
    ] == [
        204,
        204,
    ]
    assert wx.calls("/v3/pay/transactions/out-trade-no/P00000001/close")[0]["body"] == {
        "mchid": SANDBOX_MCH_ID
    }
    assert (reorder.code, reorder.message) == ("ORDER_CLOSED", "订单已关闭")
    assert wx.post("/sandbox/pay/v3/pay", {"out_trade_no": "P00000001"}).json() == {
        "error": "trade P00000001 is CLOSED, not payable"
    }


def test_a_paid_trade_does_not_close_and_a_paying_one_not_yet(gw, wx):
    paid(gw, wx)
    codepay(gw, payment_code(wx, outcome="userpaying"))

    paid_error = refused(lambda: gw.close(out_trade_no="P00000001"))
    paying_error = refused(lambda: gw.close(out_trade_no="C00000001"))

    assert (paid_error.code, paid_error.message, paid_error.retryable) == (
        "ORDERPAID",
        "订单已支付",
        False,
    )
    assert (paying_error.code, paying_error.retryable) == ("USERPAYING", True)
    assert {no: trade["trade_state"] for no, trade in trades(wx).items()} == {
        "P00000001": "SUCCESS",
        "C00000001": "USERPAYING",
    }


# --- refunds ------------------------------------------------------------------------------------


def test_refund_is_asked_for_and_processing(gw, wx, endpoint):
    paid(gw, wx)

    state = gw.refund(
        out_trade_no="P00000001",
        out_refund_no="R00000001",
        refund_fen=500,
        total_fen=1999,
        reason="少了一件",
    )

    assert REFUND_ID.fullmatch(state.refund_id)
    assert dataclasses.replace(state, raw={}) == RefundState(
        out_refund_no="R00000001", state="PROCESSING", refund_id=state.refund_id, amount_fen=500
    )
    assert state.raw["amount"] == {
        "total": 1999,
        "refund": 500,
        "payer_total": 1999,
        "payer_refund": 500,
        "settlement_total": 1999,
        "settlement_refund": 500,
        "discount_refund": 0,
        "currency": "CNY",
    }
    assert wx.calls(REFUNDS)[0]["body"] == {
        "out_trade_no": "P00000001",
        "out_refund_no": "R00000001",
        "notify_url": f"{endpoint.url}/wechat/pay/notify/v3/refund/",
        "amount": {"refund": 500, "total": 1999, "currency": "CNY"},
        "reason": "少了一件",
    }
    assert gw.query(out_trade_no="P00000001").state == "REFUND"


def test_refunds_add_up_to_the_trade_and_a_repeat_is_the_same_refund(gw, wx):
    paid(gw, wx)

    def ask(no, fen, total=1999):
        return gw.refund(
            out_trade_no="P00000001", out_refund_no=no, refund_fen=fen, total_fen=total, reason=""
        )

    first = ask("R00000001", 1500)
    repeat = ask("R00000001", 1500)
    too_much = refused(lambda: ask("R00000002", 500))
    changed = refused(lambda: ask("R00000001", 1000))
    wrong_total = refused(lambda: ask("R00000003", 100, total=2000))
    rest = ask("R00000004", 499)

    assert repeat.refund_id == first.refund_id
    assert (too_much.code, too_much.message, too_much.retryable) == (
        "INVALID_REQUEST",
        "申请退款金额超过订单可退金额",
        False,
    )
    assert (changed.code, changed.message) == (
        "INVALID_REQUEST",
        "退款单号重复，且与之前的请求参数不一致",
    )
    assert (wrong_total.code, wrong_total.message) == ("INVALID_REQUEST", "订单金额与原订单不一致")
    assert rest.amount_fen == 499
    refunds = wx.get("/sandbox/pay/v3/trades").json()["refunds"]
    assert [(r["out_refund_no"], r["amount"]["refund"]) for r in refunds] == [
        ("R00000001", 1500),
        ("R00000004", 499),
    ]
    assert "reason" not in wx.calls(REFUNDS)[0]["body"]


def test_refund_of_an_unpaid_or_unknown_trade_is_refused(gw):
    prepay(gw)

    unpaid = refused(
        lambda: gw.refund(
            out_trade_no="P00000001", out_refund_no="R1", refund_fen=1, total_fen=1999, reason=""
        )
    )
    unknown = refused(
        lambda: gw.refund(
            out_trade_no="P00000009", out_refund_no="R2", refund_fen=1, total_fen=1999, reason=""
        )
    )

    assert (unpaid.code, unpaid.message) == ("INVALID_REQUEST", "订单状态为NOTPAY，不能退款")
    assert (unknown.code, unknown.message, unknown.retryable) == (
        "RESOURCE_NOT_EXISTS",
        "订单不存在",
        False,
    )


@pytest.mark.parametrize(("status", "desc"), [("SUCCESS", "退款成功"), ("ABNORMAL", "退款异常")])
def test_the_refund_result_comes_as_a_notify_the_gateway_reads(gw, wx, endpoint, status, desc):
    paid(gw, wx)
    asked = gw.refund(
        out_trade_no="P00000001",
        out_refund_no="R00000001",
        refund_fen=500,
        total_fen=1999,
        reason="",
    )

    answer = wx.post(
        "/sandbox/pay/v3/refund-result", {"out_refund_no": "R00000001", "status": status}
    )

    [sent] = answer.json()["notifies"]
    assert (sent["event_type"], sent["status"], sent["delivered"]) == (
        f"REFUND.{status}",
        204,
        True,
    )
    [received] = endpoint.received
    assert received["path"] == "/wechat/pay/notify/v3/refund/"
    assert json.loads(received["body"])["summary"] == desc
    notice = gw.parse_notify(body=received["body"], headers=received["headers"])
    assert notice.kind == "refund"
    assert notice.trade is None
    assert dataclasses.replace(notice.refund, raw={}) == RefundState(
        out_refund_no="R00000001", state=status, refund_id=asked.refund_id, amount_fen=500
    )
    assert notice.refund.raw["out_trade_no"] == "P00000001"
    assert notice.notify_id == json.loads(received["body"])["id"]


# --- the counter's payment code -----------------------------------------------------------------


def test_a_payment_code_paid_at_once(gw, wx):
    code = payment_code(wx, outcome="paid")

    trade = codepay(gw, code)

    assert TX_ID.fullmatch(trade.transaction_id)
    assert dataclasses.replace(trade, raw={}) == Trade(
        out_trade_no="C00000001",
        state="SUCCESS",
        transaction_id=trade.transaction_id,
        amount_fen=2500,
        app_id=SANDBOX_APP_ID,
        mch_id=SANDBOX_MCH_ID,
        payer_openid=WANG,
    )
    assert trade.raw["trade_type"] == "MICROPAY"
    assert wx.calls(CODEPAY)[0]["body"] == {
        "appid": SANDBOX_APP_ID,
        "mchid": SANDBOX_MCH_ID,
        "description": "收银台 SH001",
        "out_trade_no": "C00000001",
        "payer": {"auth_code": code},
        "amount": {"total": 2500, "currency": "CNY"},
        "scene_info": {"device_ip": "10.0.0.8"},
    }


def test_a_till_repeating_its_codepay_gets_the_same_trade_and_a_used_code_is_refused(gw, wx):
    code = payment_code(wx)
    first = codepay(gw, code)

    repeat = codepay(gw, code)
    reused = refused(lambda: codepay(gw, code, no="C00000002"))

    assert repeat.transaction_id == first.transaction_id
    assert (reused.code, reused.message, reused.retryable) == (
        "AUTHCODEEXPIRE",
        "二维码已过期，请用户在微信上刷新后再试",
        False,
    )
    assert list(trades(wx)) == ["C00000001"]


def test_a_payment_code_waiting_for_the_password_is_polled_until_paid(gw, wx):
    code = payment_code(wx, CHEN, outcome="userpaying", paid_after_queries=2)

    waiting = codepay(gw, code)
    first_poll = gw.query(out_trade_no="C00000001")
    second_poll = gw.query(out_trade_no="C00000001")

    assert waiting == Trade(
        out_trade_no="C00000001",
        state="USERPAYING",
        amount_fen=2500,
        app_id=SANDBOX_APP_ID,
        mch_id=SANDBOX_MCH_ID,
        raw={"code": "USERPAYING", "message": "用户支付中，需要输入密码"},
    )
    assert wx.calls(CODEPAY)[0]["status"] == 202
    assert (first_poll.state, first_poll.payer_openid, first_poll.transaction_id) == (
        "USERPAYING",
        CHEN,
        "",
    )
    assert (second_poll.state, second_poll.payer_openid) == ("SUCCESS", CHEN)
    assert TX_ID.fullmatch(second_poll.transaction_id)


def test_a_payment_code_never_paid_is_reversed(gw, wx):
    codepay(gw, payment_code(wx, outcome="userpaying"))
    polls = [gw.query(out_trade_no="C00000001").state for _ in range(3)]

    gw.reverse(out_trade_no="C00000001")
    gw.reverse(out_trade_no="C00000001")  # a reverse repeated after a lost answer

    assert polls == ["USERPAYING"] * 3
    assert gw.query(out_trade_no="C00000001").state == "REVOKED"
    [call, _again] = wx.calls("/v3/pay/transactions/out-trade-no/C00000001/reverse")
    assert (call["status"], call["body"], call["answer"]) == (
        200,
        {"appid": SANDBOX_APP_ID, "mchid": SANDBOX_MCH_ID},
        {"appid": SANDBOX_APP_ID, "mchid": SANDBOX_MCH_ID, "out_trade_no": "C00000001"},
    )
    assert wx.post("/sandbox/pay/v3/pay", {"out_trade_no": "C00000001"}).status_code == 400


def test_a_paid_payment_code_trade_reversed_gives_the_money_back(gw, wx):
    codepay(gw, payment_code(wx))

    gw.reverse(out_trade_no="C00000001")

    assert gw.query(out_trade_no="C00000001").state == "REVOKED"


def test_payment_codes_refused(gw, wx):
    prepay(gw)

    poor = refused(lambda: codepay(gw, payment_code(wx, outcome="not_enough")))
    garbage = refused(lambda: codepay(gw, "123456", no="C00000002"))
    jsapi = refused(lambda: gw.reverse(out_trade_no="P00000001"))
    unknown = refused(lambda: gw.reverse(out_trade_no="C00000009"))

    assert (poor.code, poor.message, poor.retryable) == ("NOT_ENOUGH", "用户账号余额不足", False)
    assert gw.query(out_trade_no="C00000001").state == "PAYERROR"
    assert (garbage.code, garbage.retryable) == ("AUTH_CODE_INVALID", False)
    assert (jsapi.code, jsapi.message) == ("INVALID_REQUEST", "非付款码支付的订单不能撤销")
    assert (unknown.code, unknown.message) == ("ORDER_NOT_EXIST", "订单不存在")
    assert sorted(trades(wx)) == ["C00000001", "P00000001"]


def test_a_code_the_sandbox_did_not_hand_out_pays_as_its_first_user(gw, wx):
    trade = codepay(gw, "134567890123456789")

    assert (trade.state, trade.payer_openid) == ("SUCCESS", LIN)


# --- failures on the way: what is worth trying again --------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"mode": "busy"}, ("SYSTEM_ERROR", "系统异常，请稍后重试", True)),
        ({"mode": "errcode", "errcode": 429}, ("FREQUENCY_LIMITED", "频率超限", True)),
        (
            {"mode": "errcode", "errcode": 500, "errmsg": "BANK_ERROR"},
            ("BANK_ERROR", "系统异常，请稍后重试", True),
        ),
        (
            {"mode": "errcode", "errcode": 403, "errmsg": "RULE_LIMIT"},
            ("RULE_LIMIT", "商户无权限", False),
        ),
    ],
)
def test_wechat_errors_say_whether_to_try_again(gw, wx, fault, expected):
    wx.fault(path=JSAPI, **fault)

    error = refused(lambda: prepay(gw))

    assert (error.code, error.message, error.retryable) == expected
    assert prepay(gw).startswith("wx")  # the fault answered once


def test_a_fault_on_the_query_pattern_answers_for_every_trade(gw, wx):
    prepay(gw, "P00000001")
    prepay(gw, "P00000002")
    wx.fault(path="/v3/pay/transactions/out-trade-no/{out_trade_no}", mode="busy", times=2)

    errors = [
        refused(lambda no=no: gw.query(out_trade_no=no)).code for no in ("P00000001", "P00000002")
    ]

    assert errors == ["SYSTEM_ERROR", "SYSTEM_ERROR"]
    assert gw.query(out_trade_no="P00000001").state == "NOTPAY"
    assert [call["fault"] for call in wx.calls()[-3:]] == ["busy", "busy", None]


def test_a_call_timing_out_is_retryable_and_wechat_may_have_acted(gw, wx):
    wx.fault(path=JSAPI, mode="timeout", seconds=0.4)
    impatient = V3Gateway(dataclasses.replace(gw.config, timeout_seconds=0.1))

    error = refused(lambda: prepay(impatient))

    assert (error.code, error.retryable) == ("TIMEOUT", True)
    deadline = time.monotonic() + 3
    while not trades(wx) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert trades(wx)["P00000001"]["trade_state"] == "NOTPAY"  # WeChat went on without us


def test_wechat_unreachable_is_retryable(gw):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    offline = V3Gateway(dataclasses.replace(gw.config, base_url=f"http://127.0.0.1:{port}"))

    error = refused(lambda: offline.query(out_trade_no="P00000001"))

    assert (error.code, error.retryable) == ("NETWORK", True)


def test_a_proxy_error_without_wechat_signature_is_retryable(gw, endpoint):
    endpoint.status, endpoint.body = 502, b"<html>Bad Gateway</html>"
    proxied = V3Gateway(dataclasses.replace(gw.config, base_url=endpoint.url))

    error = refused(lambda: proxied.query(out_trade_no="P00000001"))

    assert (error.code, error.message, error.retryable) == (
        "HTTP_502",
        "<html>Bad Gateway</html>",
        True,
    )


def test_an_unsigned_answer_is_not_believed(gw, endpoint):
    endpoint.status, endpoint.body = 200, json.dumps({"trade_state": "SUCCESS"}).encode()
    impostor = V3Gateway(dataclasses.replace(gw.config, base_url=endpoint.url))

    error = refused(lambda: impostor.query(out_trade_no="P00000001"))

    assert (error.code, error.retryable) == ("RESPONSE_UNVERIFIED", True)
    assert error.message == (
        "missing_headers: wechatpay-serial, wechatpay-signature, "
        "wechatpay-timestamp, wechatpay-nonce"
    )


def test_an_answer_signed_with_another_key_is_not_believed(gw, wx):
    paid(gw, wx)
    assert wx.post("/sandbox/pay/v3/config", {"forge_responses": 1}).json()["forge_responses"] == 1

    error = refused(lambda: gw.query(out_trade_no="P00000001"))

    assert (error.code, error.message, error.retryable) == (
        "RESPONSE_UNVERIFIED",
        "bad_signature: the signature does not verify",
        True,
    )
    assert gw.query(out_trade_no="P00000001").state == "SUCCESS"


def test_an_answer_by_a_key_the_gateway_does_not_know_is_not_believed(gw, wx):
    prepay(gw)
    other = V3Gateway(dataclasses.replace(gw.config, wechatpay_public_key_id="PUB_KEY_ID_OTHER"))

    error = refused(lambda: other.query(out_trade_no="P00000001"))

    assert (error.code, error.message) == (
        "RESPONSE_UNVERIFIED",
        f"unknown_serial: {WECHATPAY_PUBLIC_KEY_ID}",
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("key", ("SIGN_ERROR", "签名错误")),
        ("serial", ("SIGN_ERROR", "商户证书序列号有误")),
        ("mch_id", ("MCH_NOT_EXISTS", "商户号不存在")),
    ],
)
def test_wechat_refuses_a_request_not_signed_by_the_merchant(
    gw, wx, stranger_key, change, expected
):
    config = {
        "key": {"merchant_key": stranger_key},
        "serial": {"merchant_serial_no": "0123456789ABCDEF"},
        "mch_id": {"mch_id": "1900000999"},
    }[change]
    impostor = V3Gateway(dataclasses.replace(gw.config, **config))

    error = refused(lambda: prepay(impostor))

    assert (error.code, error.message, error.retryable) == (*expected, False)
    assert trades(wx) == {}


# --- the sandbox's side of the signatures -------------------------------------------------------


def test_every_answer_is_signed_by_wechat_pay_errors_included(gw, wx):
    prepay(gw)

    found = merchant_call(
        wx, "GET", f"/v3/pay/transactions/out-trade-no/P00000001?mchid={SANDBOX_MCH_ID}"
    )
    missing = merchant_call(
        wx, "GET", f"/v3/pay/transactions/out-trade-no/P0000000X?mchid={SANDBOX_MCH_ID}"
    )
    unsigned = wx.get("/v3/pay/transactions/out-trade-no/P00000001", mchid=SANDBOX_MCH_ID)

    assert (found.status_code, found.json()["trade_state"]) == (200, "NOTPAY")
    assert (missing.status_code, missing.json()) == (
        404,
        {"code": "ORDER_NOT_EXIST", "message": "订单不存在"},
    )
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "SIGN_ERROR")
    for answer in (found, missing, unsigned):
        assert wechat_verifies(answer)
        assert answer.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
        assert re.fullmatch(r"[0-9A-F]{32}", answer.headers["Request-ID"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"offset": -301}, "请求的时间戳已过期或无效"),
        ({"offset": 400}, "请求的时间戳已过期或无效"),
        ({"serial": "FFFF"}, "商户证书序列号有误"),
    ],
)
def test_the_sandbox_checks_each_request_signature(wx, kwargs, message):
    body = {"mchid": SANDBOX_MCH_ID}

    answer = merchant_call(
        wx, "POST", "/v3/pay/transactions/out-trade-no/P00000001/close", body, **kwargs
    )

    assert (answer.status_code, answer.json()) == (401, {"code": "SIGN_ERROR", "message": message})


def test_a_signature_over_another_body_is_refused(wx):
    good = merchant_call(
        wx, "POST", "/v3/pay/transactions/out-trade-no/P00000001/close", {"mchid": SANDBOX_MCH_ID}
    )
    headers = {"Authorization": good.request.headers["Authorization"]}

    tampered = wx.http.post(
        wx.url + "v3/pay/transactions/out-trade-no/P00000001/close",
        data=json.dumps({"mchid": "1900000109 "}).encode(),
        headers=headers,
        timeout=5,
    )

    assert good.status_code == 204
    assert (tampered.status_code, tampered.json()["message"]) == (401, "签名错误")


def test_a_param_error_names_the_field(wx):
    answer = merchant_call(wx, "POST", JSAPI, {"appid": SANDBOX_APP_ID, "mchid": SANDBOX_MCH_ID})

    assert answer.status_code == 400
    assert answer.json()["code"] == "PARAM_ERROR"
    assert answer.json()["detail"] == {"field": "/out_trade_no", "location": "body"}


# --- notifies -----------------------------------------------------------------------------------


def test_the_pay_notify_reaches_the_platform_and_the_gateway_reads_it(gw, wx, endpoint):
    prepay(gw)

    result = pay(wx, "P00000001", notify=True)

    [sent] = result["notifies"]
    assert {
        key: sent[key] for key in ("event_type", "out_trade_no", "url", "status", "delivered")
    } == {
        "event_type": "TRANSACTION.SUCCESS",
        "out_trade_no": "P00000001",
        "url": f"{endpoint.url}/wechat/pay/notify/v3/",
        "status": 204,
        "delivered": True,
    }
    [received] = endpoint.received
    assert received["path"] == "/wechat/pay/notify/v3/"
    envelope = json.loads(received["body"])
    assert {key: envelope[key] for key in ("event_type", "resource_type", "summary")} == {
        "event_type": "TRANSACTION.SUCCESS",
        "resource_type": "encrypt-resource",
        "summary": "支付成功",
    }
    assert {
        key: envelope["resource"][key] for key in ("algorithm", "associated_data", "original_type")
    } == {
        "algorithm": "AEAD_AES_256_GCM",
        "associated_data": "transaction",
        "original_type": "transaction",
    }
    assert "P00000001" not in received["body"].decode()  # the resource is encrypted
    notice = gw.parse_notify(body=received["body"], headers=received["headers"])
    assert notice == Notice(
        kind="payment",
        trade=gw.query(out_trade_no="P00000001"),
        notify_id=envelope["id"],
    )


def test_notify_answers_in_wechat_v3_format(gw):
    assert gw.notify_success() == NotifyAnswer(
        status=204, content_type="application/json", body=b""
    )
    assert gw.notify_failure("签名错误") == NotifyAnswer(
        status=500,
        content_type="application/json",
        body=json.dumps({"code": "FAIL", "message": "签名错误"}, ensure_ascii=False).encode(),
    )


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"forge": "signature"}, "bad_signature"),  # signed with a key that is not WeChat Pay's
        ({"forge": "body"}, "bad_signature"),  # changed after WeChat signed it
        ({"forge": "serial"}, "unknown_serial"),  # claims another WeChat Pay key
        ({"forge": "ciphertext"}, "undecryptable"),  # encrypted with another API v3 key
        ({"timestamp_offset_seconds": -310}, "stale_timestamp"),  # a replay of an old notify
        ({"timestamp_offset_seconds": 310}, "stale_timestamp"),
    ],
)
def test_a_bad_notify_is_rejected(gw, wx, spec, reason):
    paid(gw, wx)

    body, headers = notify_request(wx, out_trade_no="P00000001", **spec)

    assert rejected(gw, body, headers) == reason


def test_a_notify_within_five_minutes_is_accepted(gw, wx):
    paid(gw, wx)

    body, headers = notify_request(wx, out_trade_no="P00000001", timestamp_offset_seconds=-290)

    assert gw.parse_notify(body=body, headers=headers).trade.state == "SUCCESS"


def test_a_notify_for_another_key_merchant_or_app_is_rejected(gw, wx):
    paid(gw, wx)
    body, headers = notify_request(wx, out_trade_no="P00000001")

    def parsed_by(**config):
        return rejected(V3Gateway(dataclasses.replace(gw.config, **config)), body, headers)

    assert parsed_by(api_v3_key=b"0" * 32) == "undecryptable"
    assert parsed_by(mch_id="1900000999") == "wrong_mch_id"
    assert parsed_by(app_id="wx0000000000000000") == "wrong_app_id"
    assert (
        parsed_by(wechatpay_public_key=load_public_key(str(MERCHANT_PUBLIC_KEY_PATH)))
        == "bad_signature"
    )
    assert gw.parse_notify(body=body, headers=headers).kind == "payment"


def test_a_notify_without_wechat_headers_or_of_another_shape_is_rejected(gw, wx):
    paid(gw, wx)
    body, headers = notify_request(wx, out_trade_no="P00000001")
    not_json = b"<xml><return_code>SUCCESS</return_code></xml>"
    closed = json.dumps({"id": "EV-1", "event_type": "TRANSACTION.CLOSED", "resource": {}}).encode()

    assert rejected(gw, body, {"Content-Type": "application/json"}) == "missing_headers"
    assert (
        rejected(gw, body, {**headers, "Wechatpay-Signature-Type": "WECHATPAY2-SM2-WITH-SM3"})
        == "bad_signature"
    )
    assert rejected(gw, not_json, wechat_signed(not_json)) == "malformed"
    assert rejected(gw, closed, wechat_signed(closed)) == "malformed"
    assert rejected(gw, body, {**headers, "Wechatpay-Timestamp": "soon"}) == "bad_signature"


def test_a_notify_of_an_event_the_platform_does_not_handle_is_rejected(gw, wx):
    paid(gw, wx)
    body, _headers = notify_request(wx, out_trade_no="P00000001")
    other_event = body.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.CLOSED"')

    assert rejected(gw, other_event, wechat_signed(other_event)) == "unknown_event"


def test_a_wrong_amount_notify_is_wechat_signed_and_tells_the_wrong_amount(gw, wx):
    paid(gw, wx)

    body, headers = notify_request(wx, out_trade_no="P00000001", amount_fen=1)

    trade = gw.parse_notify(body=body, headers=headers).trade
    assert (trade.out_trade_no, trade.state, trade.amount_fen) == ("P00000001", "SUCCESS", 1)


def test_duplicate_notifies_arrive_at_once_and_identical(gw, wx, endpoint):
    paid(gw, wx)

    answer = wx.post("/sandbox/pay/v3/notify", {"out_trade_no": "P00000001", "copies": 5}).json()

    assert [sent["delivered"] for sent in answer["notifies"]] == [True] * 5
    assert len({(r["body"], r["headers"]["Wechatpay-Signature"]) for r in endpoint.received}) == 1
    assert len(endpoint.received) == 5
    notifies = wx.get("/sandbox/pay/v3/notifies").json()["notifies"]
    assert sorted(n["id"] for n in notifies) == [1, 2, 3, 4, 5]


def test_duplicate_notifies_one_after_the_other(gw, wx, endpoint):
    paid(gw, wx)

    answer = wx.post(
        "/sandbox/pay/v3/notify", {"out_trade_no": "P00000001", "copies": 3, "concurrent": False}
    ).json()

    assert [sent["id"] for sent in answer["notifies"]] == [1, 2, 3]
    assert len({r["body"] for r in endpoint.received}) == 1
    assert len(endpoint.received) == 3


def test_a_late_notify_arrives_later(gw, wx, endpoint):
    paid(gw, wx)

    answer = wx.post("/sandbox/pay/v3/notify", {"out_trade_no": "P00000001", "delay_seconds": 0.2})

    assert answer.json() == {"notifies": [], "scheduled": True}
    assert endpoint.received == []
    [received] = endpoint.wait_for(1)
    assert (
        gw.parse_notify(body=received["body"], headers=received["headers"]).trade.state == "SUCCESS"
    )


def test_a_notify_the_platform_refused_is_kept_and_can_be_sent_again(gw, wx, endpoint):
    prepay(gw)
    endpoint.status, endpoint.body = 500, b'{"code":"FAIL","message":"busy"}'

    first = pay(wx, "P00000001", notify=True)["notifies"]
    endpoint.status, endpoint.body = 204, b""
    again = wx.post("/sandbox/pay/v3/notify", {"out_trade_no": "P00000001"}).json()["notifies"]

    assert [(n["status"], n["answer"], n["delivered"]) for n in first] == [
        (500, '{"code":"FAIL","message":"busy"}', False)
    ]
    assert [(n["status"], n["delivered"]) for n in again] == [(204, True)]
    assert [n["delivered"] for n in wx.get("/sandbox/pay/v3/notifies").json()["notifies"]] == [
        False,
        True,
    ]


def test_a_notify_to_a_platform_that_is_down_is_kept_with_the_error(gw, wx):
    prepay(gw)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    wx.post("/sandbox/pay/v3/config", {"notify_url": f"http://127.0.0.1:{port}/down/"})

    [sent] = pay(wx, "P00000001", notify=True)["notifies"]

    assert (sent["status"], sent["delivered"], sent["url"]) == (
        None,
        False,
        f"http://127.0.0.1:{port}/down/",
    )
    assert "refused" in sent["error"].lower()


def test_the_sandbox_config_sends_notifies_elsewhere(gw, wx, endpoint):
    prepay(gw)
    config = wx.post(
        "/sandbox/pay/v3/config",
        {
            "notify_url": f"{endpoint.url}/elsewhere/",
            "refund_notify_url": f"{endpoint.url}/refunds/",
        },
    ).json()

    pay(wx, "P00000001", notify=True)
    gw.refund(out_trade_no="P00000001", out_refund_no="R1", refund_fen=1, total_fen=1999, reason="")
    wx.post("/sandbox/pay/v3/refund-result", {"out_refund_no": "R1", "status": "SUCCESS"})

    assert config == {
        "mchid": SANDBOX_MCH_ID,
        "appid": SANDBOX_APP_ID,
        "notify_url": f"{endpoint.url}/elsewhere/",
        "refund_notify_url": f"{endpoint.url}/refunds/",
        "forge_responses": 0,
    }
    assert [r["path"] for r in endpoint.received] == ["/elsewhere/", "/refunds/"]
    wx.post("/sandbox/reset")
    assert wx.get("/sandbox/pay/v3/config").json()["notify_url"] is None


def test_notify_control_refuses_what_it_cannot_send(gw, wx, endpoint):
    prepay(gw)
    paid(gw, wx, "P00000002")

    answers = [
        wx.post("/sandbox/pay/v3/notify", spec).json()
        for spec in (
            {"out_trade_no": "P00000001"},
            {"out_trade_no": "P00000009"},
            {"out_refund_no": "R00000009"},
            {},
            {"out_trade_no": "P00000001", "forge": "everything"},
            {"out_trade_no": "P00000001", "copies": 0},
            {"out_trade_no": "P00000002", "notify_url": "file:///etc/passwd"},
        )
    ]

    assert answers == [
        {"error": "trade P00000001 was never paid"},
        {"error": "no trade 'P00000009' in the sandbox"},
        {"error": "no refund 'R00000009' in the sandbox"},
        {"error": "out_trade_no or out_refund_no is required"},
        {"error": "forge must be one of ['signature', 'serial', 'body', 'ciphertext']"},
        {"error": "copies must be an integer in [1, 200]"},
        {"error": "notify_url格式错误，须为不带参数的完整URL"},
    ]
    assert endpoint.received == []
    assert wx.get("/sandbox/pay/v3/notifies").json() == {"notifies": []}


# --- the cashier page ---------------------------------------------------------------------------


def test_a_person_pays_on_the_cashier_page_and_the_platform_is_notified(gw, wx, endpoint):
    prepay(gw, amount=12345, description="春季新品 ×2")

    page = wx.get("/sandbox/pay/v3/P00000001")
    done = wx.http.post(wx.url + "sandbox/pay/v3/P00000001", data={"redirect": ""}, timeout=5)
    after = wx.get("/sandbox/pay/v3/P00000001")
    twice = wx.http.post(wx.url + "sandbox/pay/v3/P00000001", data={}, timeout=5)

    assert page.status_code == 200
    assert all(
        text in page.text for text in ("春季新品 ×2", "¥123.45", "林小美", "确认支付 Pay ¥123.45")
    )
    assert done.status_code == 200
    assert "支付成功 Paid ¥123.45" in done.text
    assert "answered 204 (received)" in done.text
    assert "This trade is <b>SUCCESS</b>" in after.text
    assert "确认支付" not in after.text
    assert (twice.status_code, "trade P00000001 is SUCCESS, not payable" in twice.text) == (
        409,
        True,
    )
    [received] = endpoint.received
    trade = gw.parse_notify(body=received["body"], headers=received["headers"]).trade
    assert (trade.state, trade.amount_fen, trade.payer_openid) == ("SUCCESS", 12345, LIN)


def test_the_cashier_sends_the_shopper_back_where_she_came_from(gw, wx):
    params = gw.jsapi_parameters(prepay_id=prepay(gw))
    page = wx.get(
        "/sandbox/pay/v3/P00000001", redirect="http://shop.test/h5/orders/1?tab=pay", **params
    )

    done = wx.http.post(
        wx.url + "sandbox/pay/v3/P00000001",
        data={"redirect": "http://shop.test/h5/orders/1?tab=pay"},
        allow_redirects=False,
        timeout=5,
    )

    assert "value='http://shop.test/h5/orders/1?tab=pay'" in page.text
    assert done.status_code == 302
    location = urlsplit(done.headers["Location"])
    assert (location.netloc, location.path) == ("shop.test", "/h5/orders/1")
    assert parse_qs(location.query) == {
        "tab": ["pay"],
        "out_trade_no": ["P00000001"],
        "result": ["paid"],
    }


def test_the_cashier_of_an_unknown_trade(wx):
    page = wx.get("/sandbox/pay/v3/P00000404")

    assert (page.status_code, "No trade P00000404 in the sandbox." in page.text) == (404, True)


def test_the_merchant_page_lists_trades_and_settles_refunds(gw, wx, endpoint):
    paid(gw, wx)
    gw.refund(
        out_trade_no="P00000001",
        out_refund_no="R00000001",
        refund_fen=999,
        total_fen=1999,
        reason="",
    )

    page = wx.get("/sandbox/pay/v3/")
    settled = wx.http.post(
        wx.url + "sandbox/pay/v3/refunds/R00000001",
        data=urlencode({"status": "SUCCESS"}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        allow_redirects=False,
        timeout=5,
    )

    assert page.status_code == 200
    assert "<a href='/sandbox/pay/v3/P00000001'>P00000001</a>" in page.text
    assert "<td>9.99</td><td>PROCESSING</td>" in page.text
    assert (settled.status_code, settled.headers["Location"]) == (302, "/sandbox/pay/v3/")
    assert wx.get("/sandbox/pay/v3/trades").json()["refunds"][0]["status"] == "SUCCESS"
    [received] = endpoint.received
    assert (
        gw.parse_notify(body=received["body"], headers=received["headers"]).refund.state
        == "SUCCESS"
    )
    assert "<td>9.99</td><td>SUCCESS</td><td></td>" in wx.get("/sandbox/pay/v3/").text


def test_control_endpoints_refuse_bad_requests(gw, wx):
    paid(gw, wx)

    answers = [
        wx.post("/sandbox/pay/v3/pay", {"out_trade_no": "P00000001"}),
        wx.post("/sandbox/pay/v3/pay", {"out_trade_no": "P00000404"}),
        wx.post("/sandbox/pay/v3/payment-codes", {"outcome": "maybe"}),
        wx.post("/sandbox/pay/v3/payment-codes", {"outcome": "paid", "paid_after_queries": 2}),
        wx.post("/sandbox/pay/v3/payment-codes", {"openid": "nobody"}),
        wx.post("/sandbox/pay/v3/refund-result", {"out_refund_no": "R404", "status": "SUCCESS"}),
        wx.post("/sandbox/pay/v3/refund-result", {"out_refund_no": "R404", "status": "DONE"}),
        wx.post("/sandbox/pay/v3/config", {"notify_url": "ftp://x/"}),
        wx.post("/sandbox/pay/v3/config", {"colour": "red"}),
    ]

    assert [(a.status_code, a.json()["error"]) for a in answers] == [
        (400, "trade P00000001 is SUCCESS, not payable"),
        (400, "no trade 'P00000404' in the sandbox"),
        (400, "outcome must be one of ['paid', 'userpaying', 'not_enough']"),
        (400, "paid_after_queries is a positive integer, for userpaying codes"),
        (400, "no WeChat user with openid 'nobody' in the sandbox"),
        (400, "no refund 'R404' in the sandbox"),
        (400, "status must be one of ['SUCCESS', 'ABNORMAL', 'CLOSED']"),
        (400, "notify_url格式错误，须为不带参数的完整URL"),
        (400, "unknown settings ['colour']"),
    ]


def test_reset_forgets_trades_refunds_codes_and_notifies(gw, wx):
    paid(gw, wx)
    code = payment_code(wx)
    wx.post("/sandbox/pay/v3/notify", {"out_trade_no": "P00000001"})

    wx.post("/sandbox/reset")

    assert wx.get("/sandbox/pay/v3/trades").json() == {"trades": [], "refunds": []}
    assert wx.get("/sandbox/pay/v3/notifies").json() == {"notifies": []}
    assert codepay(gw, code).payer_openid == LIN  # the code is now one the sandbox never gave
