"""wechat/pay/v2.py (WeChat Pay API v2 over wechatpy) against the sandbox over a real socket:
every gateway method, its answers and WeChat's error codes, transport failures, and the notifies
the sandbox sends to a stand-in platform, parsed (good, forged, wrong key, another app or
merchant, malformed)."""

import hashlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from wechatpy.pay import WeChatPay
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac

from tests.wechat.conftest import LIN, WANG
from wechat.pay import base, v2
from wechat.pay.base import NotifyRejected, TradeState, WeChatPayError
from wechat.sandbox import SANDBOX_APP_ID
from wechat.sandbox.pay_v2 import (
    SANDBOX_MCH_ID,
    SANDBOX_V2_API_KEY,
    encrypt_req_info,
    platform_settings,
)

SUCCESS_ANSWER = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code>"
    b"<return_msg><![CDATA[OK]]></return_msg></xml>"
)
UNIFIEDORDER = "/pay/unifiedorder"
ORDERQUERY = "/pay/orderquery"
REFUND = "/secapi/pay/refund"
MICROPAY = "/pay/micropay"
REVERSE = "/secapi/pay/reverse"


# --- a stand-in for the platform's notify endpoints -----------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Notifies sent at once (copies) must not overflow the listen backlog.
    request_queue_size = 128

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for the host's name, which can hang offline.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class Receiver:
    """Keeps every POST (path, headers, body) and answers ``answer`` (status, type, body)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.answer = (200, "text/xml", SUCCESS_ANSWER)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.received.append((self.path, dict(self.headers), body))
                    status, content_type, answer = receiver.answer
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.answer = (200, "text/xml", SUCCESS_ANSWER)

    def bodies(self, path: str | None = None) -> list[bytes]:
        with self.lock:
            return [body for at, _headers, body in self.received if path in (None, at)]

    def wait_for(self, count: int, seconds: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + seconds
        while len(self.bodies()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.bodies()


@pytest.fixture(scope="session")
def receiver_server():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def receiver(receiver_server):
    receiver_server.reset()
    yield receiver_server
    receiver_server.reset()


@pytest.fixture(autouse=True)
def v2_settings(settings, sandbox_server, receiver):
    """The platform on v2, pointed at the sandbox; notifies go to the stand-in receiver."""
    for name, value in platform_settings(sandbox_server.url).items():
        setattr(settings, name, value)
    settings.WECHAT_PAY_VERSION = "v2"
    settings.WECHAT_PAY_NOTIFY_BASE_URL = receiver.url
    return settings


@pytest.fixture
def pay():
    return base.gateway()


PAY_NOTIFY_PATH = "/wechat/pay/notify/v2/"
REFUND_NOTIFY_PATH = "/wechat/pay/notify/v2/refund/"


def sent_fields(wx, path: str) -> list[dict[str, str]]:
    """What the sandbox received at ``path``, as fields."""
    return [v2.parse_xml(call["body"]) for call in wx.calls(path)]


def raised(call, *args, **kwargs) -> WeChatPayError:
    with pytest.raises(WeChatPayError) as caught:
        call(*args, **kwargs)
    return caught.value


def prepaid(pay, number: str = "P100", amount: int = 4990, openid: str = LIN) -> str:
    return pay.jsapi_prepay(
        out_trade_no=number,
        amount_fen=amount,
        description="静安寺店 · 燕麦拿铁 x2",
        openid=openid,
        client_ip="203.0.113.7",
    )


def paid(pay, sandbox, number: str = "P100", amount: int = 4990, notify: bool = False) -> dict:
    prepaid(pay, number, amount)
    return sandbox.pay_v2.pay(number, notify=notify)


def mint(sandbox, **spec) -> str:
    return sandbox.pay_v2.mint_payment_code(spec)


# --- building the gateway -------------------------------------------------------------------------


def test_the_gateway_of_v2_is_built_from_the_settings(sandbox_server, receiver):
    pay = base.gateway()

    assert isinstance(pay, v2.V2Gateway)
    assert pay.version == "v2"
    assert pay.config == v2.V2Config(
        app_id=SANDBOX_APP_ID,
        mch_id=SANDBOX_MCH_ID,
        api_key=SANDBOX_V2_API_KEY,
        sign_type="MD5",
        base_url=sandbox_server.url,
        pay_notify_url=f"{receiver.url}{PAY_NOTIFY_PATH}",
        refund_notify_url=f"{receiver.url}{REFUND_NOTIFY_PATH}",
        timeout=2.0,
    )
    assert pay.client.API_BASE_URL == sandbox_server.url
    assert (pay.client.mch_cert, pay.client.mch_key) == (None, None)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WECHAT_PAY_V2_API_KEY", "", "WeChat Pay v2 needs WECHAT_PAY_V2_API_KEY"),
        ("WECHAT_PAY_MCH_ID", "", "WeChat Pay v2 needs WECHAT_PAY_MCH_ID"),
        ("WECHAT_APP_ID", "", "WeChat Pay v2 needs WECHAT_APP_ID"),
        ("WECHAT_PAY_V2_SIGN_TYPE", "SHA1", "WECHAT_PAY_V2_SIGN_TYPE must be one of"),
        ("WECHAT_PAY_NOTIFY_BASE_URL", "", "WeChat cannot reach the notify URL"),
        ("WECHAT_PAY_V2_CERT_PATH", "/etc/apiclient_cert.pem", "go together"),
    ],
)
def test_the_gateway_refuses_an_incomplete_configuration(settings, name, value, message):
    setattr(settings, name, value)

    with pytest.raises(ImproperlyConfigured, match=message):
        base.gateway("v2")


def test_the_client_certificate_goes_with_every_call_when_configured(settings):
    settings.WECHAT_PAY_V2_CERT_PATH = "/srv/keys/apiclient_cert.pem"
    settings.WECHAT_PAY_V2_CERT_KEY_PATH = "/srv/keys/apiclient_key.pem"

    pay = base.gateway("v2")

    assert (pay.client.mch_cert, pay.client.mch_key) == (
        "/srv/keys/apiclient_cert.pem",
        "/srv/keys/apiclient_key.pem",
    )


# --- JSAPI prepay and the mini-program's parameters ----------------------------------------------


def test_prepay_creates_the_trade_at_wechat_and_returns_its_prepay_id(pay, sandbox, wx, receiver):
    prepay_id = prepaid(pay)

    trade = sandbox.pay_v2._trades["P100"]
    assert prepay_id == trade.prepay_id
    assert prepay_id.startswith("wx")
    [sent] = sent_fields(wx, UNIFIEDORDER)
    assert v2.signature_valid(sent, SANDBOX_V2_API_KEY)
    assert {name: sent[name] for name in sent if name not in ("nonce_str", "sign")} == {
        "appid": SANDBOX_APP_ID,
        "mch_id": SANDBOX_MCH_ID,
        "body": "静安寺店 · 燕麦拿铁 x2",
        "out_trade_no": "P100",
        "fee_type": "CNY",
        "total_fee": "4990",
        "spbill_create_ip": "203.0.113.7",
        "time_start": sent["time_start"],
        "time_expire": sent["time_expire"],
        "notify_url": f"{receiver.url}{PAY_NOTIFY_PATH}",
        "trade_type": "JSAPI",
        "openid": LIN,
        "sign_type": "MD5",
    }
    assert len(sent["nonce_str"]) == 32
    assert (trade.state, trade.total_fee, trade.openid) == ("NOTPAY", 4990, LIN)


def test_asking_again_for_the_same_trade_gets_the_same_prepay_id(pay, sandbox):
    first = prepaid(pay)
    again = prepaid(pay)

    assert again == first
    assert list(sandbox.pay_v2._trades) == ["P100"]


def test_a_long_description_is_cut_to_128_bytes_on_a_character_boundary(pay, wx):
    pay.jsapi_prepay(
        out_trade_no="P101",
        amount_fen=100,
        description="燕" * 50,
        openid=LIN,
        client_ip="203.0.113.7",
    )

    [sent] = sent_fields(wx, UNIFIEDORDER)
    assert sent["body"] == "燕" * 42
    assert len(sent["body"].encode()) == 126


@pytest.mark.parametrize(
    ("setup", "code", "message"),
    [
        ("paid", "ORDERPAID", "该订单已支付"),
        ("closed", "ORDERCLOSED", "该订单已关闭"),
        ("other_amount", "OUT_TRADE_NO_USED", "商户订单号重复，且与之前的请求参数不一致"),
        ("unknown_openid", "PARAM_ERROR", "appid和openid不匹配"),
    ],
)
def test_prepay_refusals_carry_wechats_error_code(pay, sandbox, setup, code, message):
    if setup == "paid":
        paid(pay, sandbox)
    elif setup == "closed":
        prepaid(pay)
        pay.close(out_trade_no="P100")
    elif setup == "other_amount":
        prepaid(pay, amount=100)
    openid = "oSbx5t1_Stranger000000000009" if setup == "unknown_openid" else LIN

    error = raised(prepaid, pay, openid=openid)

    assert (error.code, error.message, error.retryable) == (code, message, False)


def test_jsapi_parameters_are_signed_for_wx_request_payment(pay):
    parameters = pay.jsapi_parameters(prepay_id="wx2026112500000000abcdef")

    assert set(parameters) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert parameters["appId"] == SANDBOX_APP_ID
    assert parameters["package"] == "prepay_id=wx2026112500000000abcdef"
    assert parameters["signType"] == "MD5"
    assert abs(int(parameters["timeStamp"]) - time.time()) < 5
    assert len(parameters["nonceStr"]) == 32
    unsigned = {name: value for name, value in parameters.items() if name != "paySign"}
    assert parameters["paySign"] == calculate_signature(unsigned, SANDBOX_V2_API_KEY)


def test_the_sandbox_cashier_takes_the_parameters_and_the_payment_notifies(
    pay, sandbox, wx, receiver
):
    parameters = pay.jsapi_parameters(prepay_id=prepaid(pay))

    page = wx.get("/sandbox/pay/v2/P100", **parameters)
    paid_page = wx.http.post(f"{wx.url}sandbox/pay/v2/P100", data={}, timeout=5)

    assert page.status_code == 200
    assert "确认支付 Pay ¥49.90" in page.text
    assert paid_page.status_code == 200
    [body] = receiver.bodies(PAY_NOTIFY_PATH)
    notice = pay.parse_notify(body=body, headers={})
    assert notice.trade.state == TradeState.SUCCESS
    assert notice.trade.out_trade_no == "P100"


def test_the_cashier_refuses_tampered_parameters(pay, sandbox, wx):
    parameters = pay.jsapi_parameters(prepay_id=prepaid(pay))
    parameters["timeStamp"] = str(int(parameters["timeStamp"]) + 1)

    page = wx.get("/sandbox/pay/v2/P100", **parameters)

    assert page.status_code == 400
    assert "paySign does not verify with the merchant&#x27;s API key" in page.text
    assert sandbox.pay_v2._trades["P100"].state == "NOTPAY"


def test_hmac_sha256_signing_works_both_ways(settings, sandbox, wx, receiver):
    settings.WECHAT_PAY_V2_SIGN_TYPE = "HMAC-SHA256"
    pay = base.gateway()

    parameters = pay.jsapi_parameters(prepay_id=prepaid(pay))
    sandbox.pay_v2.pay("P100")
    trade = pay.query(out_trade_no="P100")
    notice = pay.parse_notify(body=receiver.bodies()[0], headers={})

    [sent] = sent_fields(wx, UNIFIEDORDER)
    assert sent["sign_type"] == "HMAC-SHA256"
    assert sent["sign"] == calculate_signature_hmac(
        {k: v for k, v in sent.items() if k != "sign"}, SANDBOX_V2_API_KEY
    )
    unsigned = {name: value for name, value in parameters.items() if name != "paySign"}
    assert parameters["signType"] == "HMAC-SHA256"
    assert parameters["paySign"] == calculate_signature_hmac(unsigned, SANDBOX_V2_API_KEY)
    assert trade.state == TradeState.SUCCESS
    assert notice.trade.raw["sign_type"] == "HMAC-SHA256"
    assert notice.trade.transaction_id == trade.transaction_id


# --- query and close ---------------------------------------------------------------------------


def test_query_reports_an_unpaid_trade(pay):
    prepaid(pay)

    trade = pay.query(out_trade_no="P100")

    assert (trade.out_trade_no, trade.state, trade.transaction_id) == ("P100", "NOTPAY", "")
    assert (trade.amount_fen, trade.app_id, trade.mch_id) == (4990, SANDBOX_APP_ID, SANDBOX_MCH_ID)
    assert trade.payer_openid == ""
    assert trade.raw["trade_state_desc"] == "订单未支付"


def test_query_reports_a_paid_trade_with_its_transaction_and_payer(pay, sandbox):
    shown = paid(pay, sandbox)["trade"]

    trade = pay.query(out_trade_no="P100")

    assert trade.state == TradeState.SUCCESS
    assert trade.transaction_id == shown["transaction_id"]
    assert len(trade.transaction_id) == 28
    assert (trade.amount_fen, trade.payer_openid) == (4990, LIN)
    assert trade.raw["time_end"] == shown["time_end"]


def test_query_of_a_trade_wechat_does_not_have_is_orderNotExist(pay):
    error = raised(pay.query, out_trade_no="P404")

    assert (error.code, error.message, error.retryable) == (
        "ORDERNOTEXIST",
        "此交易订单号不存在",
        False,
    )


def test_close_closes_an_unpaid_trade_and_closing_again_is_fine(pay, sandbox):
    prepaid(pay)

    pay.close(out_trade_no="P100")
    pay.close(out_trade_no="P100")

    assert pay.query(out_trade_no="P100").state == TradeState.CLOSED
    assert sandbox.pay_v2._trades["P100"].state == "CLOSED"


def test_closing_a_trade_wechat_never_had_is_fine(pay, wx):
    pay.close(out_trade_no="P404")

    [answer] = [call["answer"] for call in wx.calls("/pay/closeorder")]
    assert "<err_code><![CDATA[ORDERNOTEXIST]]></err_code>" in answer


def test_closing_a_paid_trade_is_orderpaid_and_leaves_it_paid(pay, sandbox):
    paid(pay, sandbox)

    error = raised(pay.close, out_trade_no="P100")

    assert (error.code, error.retryable) == ("ORDERPAID", False)
    assert pay.query(out_trade_no="P100").state == TradeState.SUCCESS


# --- refunds ------------------------------------------------------------------------------------


def test_refund_is_accepted_as_processing(pay, sandbox, wx, receiver):
    shown = paid(pay, sandbox)["trade"]

    refund = pay.refund(
        out_trade_no="P100", out_refund_no="R100", refund_fen=1990, total_fen=4990, reason="少一杯"
    )

    assert (refund.out_refund_no, refund.state, refund.amount_fen) == ("R100", "PROCESSING", 1990)
    assert refund.refund_id == sandbox.pay_v2._refunds["R100"].refund_id
    assert refund.raw["transaction_id"] == shown["transaction_id"]
    [sent] = sent_fields(wx, REFUND)
    assert v2.signature_valid(sent, SANDBOX_V2_API_KEY)
    assert (sent["out_trade_no"], sent["total_fee"], sent["refund_fee"]) == ("P100", "4990", "1990")
    assert (sent["refund_desc"], sent["op_user_id"]) == ("少一杯", SANDBOX_MCH_ID)
    assert sent["notify_url"] == f"{receiver.url}{REFUND_NOTIFY_PATH}"
    assert pay.query(out_trade_no="P100").state == TradeState.REFUND


def test_the_same_refund_asked_again_refunds_once(pay, sandbox):
    paid(pay, sandbox)
    ask = {"out_trade_no": "P100", "out_refund_no": "R100", "total_fen": 4990, "reason": ""}

    first = pay.refund(refund_fen=4990, **ask)
    again = pay.refund(refund_fen=4990, **ask)

    assert again.refund_id == first.refund_id
    assert list(sandbox.pay_v2._refunds) == ["R100"]
    assert sandbox.pay_v2._trades["P100"].refunded_fen == 4990


@pytest.mark.parametrize(
    ("setup", "refund_fen", "total_fen", "code", "message"),
    [
        ("unpaid", 100, 4990, "ERROR", "订单未支付"),
        ("paid", 100, 5000, "PARAM_ERROR", "订单金额或退款金额与之前请求不一致，请核实后再试"),
        ("paid", 4991, 4990, "ERROR", "申请退款金额超过订单可退金额"),
        ("refunded", 1, 4990, "ERROR", "申请退款金额超过订单可退金额"),
        ("none", 100, 4990, "ORDERNOTEXIST", "此交易订单号不存在"),
    ],
)
def test_refund_refusals_carry_wechats_error_code(
    pay, sandbox, setup, refund_fen, total_fen, code, message
):
    if setup == "unpaid":
        prepaid(pay)
    elif setup in ("paid", "refunded"):
        paid(pay, sandbox)
    if setup == "refunded":
        pay.refund(
            out_trade_no="P100", out_refund_no="R1", refund_fen=4990, total_fen=4990, reason=""
        )

    error = raised(
        pay.refund,
        out_trade_no="P100",
        out_refund_no="R2",
        refund_fen=refund_fen,
        total_fen=total_fen,
        reason="",
    )

    assert (error.code, error.message, error.retryable) == (code, message, False)
    assert "R2" not in sandbox.pay_v2._refunds


def test_a_refund_refused_for_the_merchants_balance_is_retryable(pay, sandbox, wx):
    paid(pay, sandbox)
    wx.fault(path=REFUND, mode="errcode", errcode=1, errmsg="NOTENOUGH")

    error = raised(
        pay.refund, out_trade_no="P100", out_refund_no="R1", refund_fen=1, total_fen=4990, reason=""
    )

    assert (error.code, error.message, error.retryable) == ("NOTENOUGH", "余额不足", True)


# --- the counter's payment code ------------------------------------------------------------------


def codepay(pay, auth_code: str, number: str = "C100", amount: int = 2500):
    return pay.codepay(
        out_trade_no=number,
        amount_fen=amount,
        auth_code=auth_code,
        description="静安寺店 柜台",
        client_ip="10.0.0.8",
    )


def test_codepay_paid_at_once(pay, sandbox, wx):
    code = mint(sandbox, openid=WANG)

    trade = codepay(pay, code)

    assert (trade.out_trade_no, trade.state, trade.amount_fen) == ("C100", "SUCCESS", 2500)
    assert (trade.payer_openid, trade.raw["trade_type"]) == (WANG, "MICROPAY")
    assert trade.transaction_id == sandbox.pay_v2._trades["C100"].transaction_id
    [sent] = sent_fields(wx, MICROPAY)
    assert (sent["auth_code"], sent["spbill_create_ip"], sent["total_fee"]) == (
        code,
        "10.0.0.8",
        "2500",
    )


def test_codepay_userpaying_then_paid_after_polling(pay, sandbox):
    code = mint(sandbox, outcome="userpaying", paid_after_queries=2)

    trade = codepay(pay, code)
    first = pay.query(out_trade_no="C100")
    second = pay.query(out_trade_no="C100")

    assert (trade.state, trade.out_trade_no, trade.amount_fen) == ("USERPAYING", "C100", 2500)
    assert trade.transaction_id == ""
    assert trade.raw["err_code"] == "USERPAYING"
    assert first.state == TradeState.USERPAYING
    assert (second.state, second.payer_openid) == (TradeState.SUCCESS, LIN)


def test_codepay_never_confirmed_is_reversed(pay, sandbox, wx):
    code = mint(sandbox, outcome="userpaying")
    codepay(pay, code)
    assert [pay.query(out_trade_no="C100").state for _ in range(3)] == ["USERPAYING"] * 3

    pay.reverse(out_trade_no="C100")

    assert pay.query(out_trade_no="C100").state == TradeState.REVOKED
    assert len(wx.calls(REVERSE)) == 1


def test_a_paid_payment_code_trade_reversed_is_revoked(pay, sandbox):
    codepay(pay, mint(sandbox))

    pay.reverse(out_trade_no="C100")
    pay.reverse(out_trade_no="C100")

    assert pay.query(out_trade_no="C100").state == TradeState.REVOKED


def test_reversing_a_trade_wechat_never_had_is_fine(pay, wx):
    pay.reverse(out_trade_no="C404")

    assert len(wx.calls(REVERSE)) == 1


def test_reverse_repeats_while_wechat_says_recall(pay, sandbox, wx):
    codepay(pay, mint(sandbox, outcome="userpaying", reverse_recalls=2))

    pay.reverse(out_trade_no="C100")

    answers = [v2.parse_xml(call["answer"]) for call in wx.calls(REVERSE)]
    assert [(a["result_code"], a["recall"]) for a in answers] == [
        ("FAIL", "Y"),
        ("FAIL", "Y"),
        ("SUCCESS", "N"),
    ]
    assert sandbox.pay_v2._trades["C100"].state == "REVOKED"


def test_reverse_gives_up_after_three_recalls_as_retryable(pay, sandbox, wx):
    codepay(pay, mint(sandbox, outcome="userpaying", reverse_recalls=3))

    error = raised(pay.reverse, out_trade_no="C100")

    assert (error.code, error.retryable) == ("RECALL", True)
    assert len(wx.calls(REVERSE)) == 3
    assert sandbox.pay_v2._trades["C100"].state == "USERPAYING"


def test_only_a_payment_code_trade_can_be_reversed(pay):
    prepaid(pay)

    error = raised(pay.reverse, out_trade_no="P100")

    assert (error.code, error.message, error.retryable) == (
        "TRADE_ERROR",
        "只有付款码支付的订单可以撤销",
        False,
    )


@pytest.mark.parametrize(
    ("outcome", "code", "message"),
    [
        ("expired", "AUTHCODEEXPIRE", "二维码已过期，请用户在微信上刷新后再试"),
        ("not_enough", "NOTENOUGH", "余额不足"),
    ],
)
def test_codepay_refusals_are_final(pay, sandbox, outcome, code, message):
    error = raised(codepay, pay, mint(sandbox, outcome=outcome))

    assert (error.code, error.message, error.retryable) == (code, message, False)
    assert "C100" not in sandbox.pay_v2._trades


def test_a_code_the_sandbox_never_showed_is_invalid(pay, sandbox):
    error = raised(codepay, pay, "134567890123456789")

    assert (error.code, error.retryable) == ("AUTH_CODE_INVALID", False)
    assert error.message.startswith("授权码检验错误")


def test_a_payment_code_is_good_once_and_for_a_minute(pay, sandbox):
    used, old = mint(sandbox), mint(sandbox)
    codepay(pay, used, number="C1")
    sandbox.advance_clock(60)

    again = raised(codepay, pay, used, number="C2")
    expired = raised(codepay, pay, old, number="C3")

    assert (again.code, expired.code) == ("AUTHCODEEXPIRE", "AUTHCODEEXPIRE")
    assert list(sandbox.pay_v2._trades) == ["C1"]


def test_codepay_systemerror_is_retryable_and_the_query_tells_the_outcome(pay, sandbox):
    error = raised(codepay, pay, mint(sandbox, outcome="systemerror"))

    assert (error.code, error.message, error.retryable) == ("SYSTEMERROR", "系统错误", True)
    assert pay.query(out_trade_no="C100").state == TradeState.SUCCESS


def test_codepay_repeated_after_systemerror_answers_the_trade_as_it_is(pay, sandbox):
    code = mint(sandbox, outcome="systemerror")
    raised(codepay, pay, code)

    trade = codepay(pay, code)

    assert trade.state == TradeState.SUCCESS
    assert len(sandbox.pay_v2._trades) == 1


def test_codepay_on_a_paid_trade_with_another_code_is_orderpaid(pay, sandbox):
    codepay(pay, mint(sandbox))

    error = raised(codepay, pay, mint(sandbox))

    assert (error.code, error.retryable) == ("ORDERPAID", False)


# --- transport: busy, timeouts, broken answers ----------------------------------------------------


def test_wechat_busy_is_systemerror_and_retryable(pay, wx):
    wx.fault(path=ORDERQUERY, mode="busy")

    error = raised(pay.query, out_trade_no="P100")

    assert (error.code, error.message, error.retryable) == ("SYSTEMERROR", "系统错误", True)


def test_a_fault_can_answer_any_err_code(pay, wx):
    wx.fault(path=MICROPAY, mode="errcode", errcode=1, errmsg="BANKERROR")

    error = raised(codepay, pay, "134567890123456789")

    assert (error.code, error.message, error.retryable) == ("BANKERROR", "银行系统异常", True)


def test_a_timeout_is_retryable_and_not_repeated(settings, wx):
    settings.WECHAT_TIMEOUT_SECONDS = 0.3
    wx.fault(path=ORDERQUERY, mode="timeout", seconds=3)
    started = time.monotonic()

    error = raised(base.gateway().query, out_trade_no="P100")

    assert time.monotonic() - started < 1
    assert (error.code, error.retryable) == ("TIMEOUT", True)
    assert len(wx.calls(ORDERQUERY)) == 1


def test_wechat_unreachable_is_network_and_retryable(settings):
    closed = socket.create_server(("127.0.0.1", 0))
    settings.WECHAT_PAY_API_BASE_URL = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()

    error = raised(base.gateway().query, out_trade_no="P100")

    assert (error.code, error.retryable) == ("NETWORK", True)


@pytest.mark.parametrize(
    ("answer", "code", "retryable"),
    [
        ((502, "text/html", b"<html>bad gateway</html>"), "HTTP_ERROR", True),
        ((404, "text/html", b"not here"), "HTTP_ERROR", False),
        ((200, "text/html", b"<html>captive portal</html>"), "INVALID_RESPONSE", True),
    ],
)
def test_broken_answers_are_errors(settings, receiver, answer, code, retryable):
    settings.WECHAT_PAY_API_BASE_URL = receiver.url
    receiver.answer = answer

    error = raised(base.gateway().query, out_trade_no="P100")

    assert (error.code, error.retryable) == (code, retryable)
    assert [path for path, _h, _b in receiver.received] == ["/pay/orderquery"]


def test_an_answer_signed_with_another_key_is_refused(pay, sandbox, wx):
    prepaid(pay)
    assert wx.post("/sandbox/pay/v2/config", {"forge_responses": 1}).status_code == 200

    error = raised(pay.query, out_trade_no="P100")

    assert (error.code, error.message, error.retryable) == (
        "INVALID_SIGNATURE",
        "the answer's sign is wrong",
        True,
    )
    assert pay.query(out_trade_no="P100").state == TradeState.NOTPAY


def test_an_unsigned_answer_is_refused(settings, receiver):
    settings.WECHAT_PAY_API_BASE_URL = receiver.url
    receiver.answer = (
        200,
        "text/xml",
        b"<xml><return_code>SUCCESS</return_code><result_code>SUCCESS</result_code>"
        b"<trade_state>SUCCESS</trade_state><out_trade_no>P100</out_trade_no></xml>",
    )

    error = raised(base.gateway().query, out_trade_no="P100")

    assert error.code == "INVALID_SIGNATURE"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WECHAT_PAY_V2_API_KEY", "0" * 32, "签名错误"),
        ("WECHAT_PAY_MCH_ID", "1900000000", "商户号mch_id不存在或格式错误"),
    ],
)
def test_a_request_wechat_cannot_verify_is_fail(settings, name, value, message):
    setattr(settings, name, value)

    error = raised(base.gateway().query, out_trade_no="P100")

    assert (error.code, error.message, error.retryable) == ("FAIL", message, False)


def test_another_app_is_appid_mchid_not_match(settings):
    settings.WECHAT_APP_ID = "wx0000000000000000"

    error = raised(base.gateway().query, out_trade_no="P100")

    assert (error.code, error.message, error.retryable) == (
        "APPID_MCHID_NOT_MATCH",
        "appid和mch_id不匹配",
        False,
    )


# --- pay notifies ---------------------------------------------------------------------------------


def notify(wx, **spec) -> dict:
    answer = wx.post("/sandbox/pay/v2/notify", spec)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_paid_trade_notifies_and_the_notice_says_so(pay, sandbox, receiver):
    shown = paid(pay, sandbox, notify=True)

    [(path, headers, body)] = receiver.received
    notice = pay.parse_notify(body=body, headers=headers)

    assert path == PAY_NOTIFY_PATH
    assert headers["Content-Type"] == "text/xml; charset=utf-8"
    assert (notice.kind, notice.refund) == ("payment", None)
    assert notice.notify_id == shown["trade"]["transaction_id"]
    trade = notice.trade
    assert (trade.out_trade_no, trade.state, trade.amount_fen) == ("P100", "SUCCESS", 4990)
    assert (trade.app_id, trade.mch_id, trade.payer_openid) == (SANDBOX_APP_ID, SANDBOX_MCH_ID, LIN)
    assert trade.transaction_id == shown["trade"]["transaction_id"]
    assert trade.raw["time_end"] == shown["trade"]["time_end"]
    [record] = shown["notifies"]
    assert (record["status"], record["delivered"], record["answer"]) == (
        200,
        True,
        SUCCESS_ANSWER.decode(),
    )


def test_wechatpy_reads_the_sandboxs_pay_notify_too(pay, sandbox, receiver):
    paid(pay, sandbox, notify=True)
    client = WeChatPay(appid=SANDBOX_APP_ID, api_key=SANDBOX_V2_API_KEY, mch_id=SANDBOX_MCH_ID)

    data = client.parse_payment_result(receiver.bodies()[0])

    assert (data["out_trade_no"], data["total_fee"], data["result_code"]) == (
        "P100",
        4990,
        "SUCCESS",
    )


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        ("signature", "bad_signature"),
        ("body", "bad_signature"),
        ("appid", "wrong_app"),
        ("mch_id", "wrong_merchant"),
        ("malformed", "malformed"),
    ],
)
def test_a_bent_pay_notify_is_rejected(pay, sandbox, wx, receiver, forge, reason):
    paid(pay, sandbox)

    [record] = notify(wx, out_trade_no="P100", forge=forge)["notifies"]
    with pytest.raises(NotifyRejected) as rejected:
        pay.parse_notify(body=receiver.bodies()[0], headers={})

    assert rejected.value.reason == reason
    assert record["variant"] == forge


def test_a_forged_notify_for_an_unpaid_trade_is_rejected(pay, wx, receiver):
    prepaid(pay)

    notify(wx, out_trade_no="P100", forge="signature")

    with pytest.raises(NotifyRejected, match="bad_signature"):
        pay.parse_notify(body=receiver.bodies()[0], headers={})


def test_a_notify_is_rejected_by_a_gateway_with_another_key(settings, sandbox, receiver):
    paid(base.gateway(), sandbox, notify=True)
    settings.WECHAT_PAY_V2_API_KEY = "another0key0of0thirty0two0chars"

    with pytest.raises(NotifyRejected) as rejected:
        base.gateway().parse_notify(body=receiver.bodies()[0], headers={})

    assert rejected.value.reason == "bad_signature"


def test_a_wrong_amount_is_verified_and_reported_as_sent(pay, sandbox, wx, receiver):
    paid(pay, sandbox)

    notify(wx, out_trade_no="P100", amount_fen=1)
    notice = pay.parse_notify(body=receiver.bodies()[0], headers={})

    assert (notice.trade.out_trade_no, notice.trade.amount_fen) == ("P100", 1)


def test_a_notify_for_a_trade_wechat_never_had_verifies_with_its_number(pay, wx, receiver):
    notify(wx, out_trade_no="P999", amount_fen=1200, notify_url=f"{receiver.url}{PAY_NOTIFY_PATH}")

    notice = pay.parse_notify(body=receiver.bodies()[0], headers={})

    assert (notice.trade.out_trade_no, notice.trade.amount_fen) == ("P999", 1200)


def test_duplicate_notifies_are_identical(pay, sandbox, wx, receiver):
    paid(pay, sandbox)

    sent = notify(wx, out_trade_no="P100", copies=3)["notifies"]

    assert [record["delivered"] for record in sent] == [True, True, True]
    bodies = receiver.bodies(PAY_NOTIFY_PATH)
    assert len(bodies) == 3
    assert len(set(bodies)) == 1


def test_a_late_notify_arrives_later(pay, sandbox, wx, receiver):
    paid(pay, sandbox)

    answer = notify(wx, out_trade_no="P100", delay_seconds=0.3)

    assert answer == {"notifies": [], "scheduled": True}
    assert receiver.bodies() == []
    [body] = receiver.wait_for(1)
    assert pay.parse_notify(body=body, headers={}).trade.state == TradeState.SUCCESS


@pytest.mark.parametrize(
    ("body", "reason", "detail"),
    [
        (b"", "malformed", "not XML: no element found: line 1, column 0"),
        (
            b"return_code=SUCCESS",
            "malformed",
            "not XML: not well-formed (invalid token): line 1, column 11",
        ),
        (b"<root><a>1</a></root>", "malformed", "not an <xml> message"),
        (b"<xml><a><b>1</b></a></xml>", "malformed", "field 'a' is not plain text"),
        (b"<xml><a>1</a><a>2</a></xml>", "malformed", "field 'a' is not plain text"),
        (b"<xml a='1'><b>2</b></xml>", "malformed", "unexpected attribute or text '@a'"),
        (
            b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<xml><return_code>&x;</return_code></xml>",
            "malformed",
            "not XML: entities are disabled",
        ),
        (
            b"<xml><return_code>FAIL</return_code><return_msg>no</return_msg></xml>",
            "not_success",
            "no",
        ),
        (
            b"<xml><return_code>SUCCESS</return_code><out_trade_no>P1</out_trade_no></xml>",
            "bad_signature",
            "",
        ),
    ],
)
def test_notifies_that_are_not_wechats_are_rejected(pay, body, reason, detail):
    with pytest.raises(NotifyRejected) as rejected:
        pay.parse_notify(body=body, headers={})

    assert (rejected.value.reason, rejected.value.detail) == (reason, detail)


def test_a_signed_notify_without_its_amount_is_malformed(pay):
    fields = {
        "return_code": "SUCCESS",
        "result_code": "SUCCESS",
        "appid": SANDBOX_APP_ID,
        "mch_id": SANDBOX_MCH_ID,
        "out_trade_no": "P100",
        "transaction_id": "4200001234202611250000000001",
    }
    fields["sign"] = v2.sign(fields, SANDBOX_V2_API_KEY)
    body = "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items()) + "</xml>"

    with pytest.raises(NotifyRejected) as rejected:
        pay.parse_notify(body=body.encode(), headers={})

    assert (rejected.value.reason, rejected.value.detail) == ("malformed", "total_fee")


def test_a_signed_failed_payment_is_payerror(pay):
    fields = {
        "return_code": "SUCCESS",
        "result_code": "FAIL",
        "err_code": "BANKERROR",
        "appid": SANDBOX_APP_ID,
        "mch_id": SANDBOX_MCH_ID,
        "out_trade_no": "P100",
        "total_fee": "4990",
    }
    fields["sign"] = v2.sign(fields, SANDBOX_V2_API_KEY)
    body = "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items()) + "</xml>"

    notice = pay.parse_notify(body=body.encode(), headers={})

    assert (notice.trade.state, notice.trade.amount_fen, notice.notify_id) == ("PAYERROR", 4990, "")


def test_notify_answers_in_wechats_format(pay):
    success, failure = pay.notify_success(), pay.notify_failure("bad_signature ]]> <x>")

    assert (success.status, success.content_type) == (200, "text/xml; charset=utf-8")
    assert v2.parse_xml(success.body) == {"return_code": "SUCCESS", "return_msg": "OK"}
    assert (failure.status, failure.content_type) == (200, "text/xml; charset=utf-8")
    assert v2.parse_xml(failure.body) == {
        "return_code": "FAIL",
        "return_msg": "bad_signature ]]> <x>",
    }


# --- refund notifies ----------------------------------------------------------------------------


def refunded(pay, sandbox, amount: int = 1990) -> str:
    paid(pay, sandbox)
    pay.refund(
        out_trade_no="P100", out_refund_no="R100", refund_fen=amount, total_fen=4990, reason=""
    )
    return sandbox.pay_v2._refunds["R100"].refund_id


@pytest.mark.parametrize(
    ("status", "state"), [("SUCCESS", "SUCCESS"), ("CHANGE", "ABNORMAL"), ("REFUNDCLOSE", "CLOSED")]
)
def test_a_settled_refund_notifies_with_req_info_encrypted(pay, sandbox, receiver, status, state):
    refund_id = refunded(pay, sandbox)

    result = sandbox.pay_v2.settle_refund("R100", status)
    [(path, _headers, body)] = receiver.received
    notice = pay.parse_notify(body=body, headers={})

    assert path == REFUND_NOTIFY_PATH
    assert (notice.kind, notice.trade, notice.notify_id) == ("refund", None, refund_id)
    refund = notice.refund
    assert (refund.out_refund_no, refund.state, refund.refund_id) == ("R100", state, refund_id)
    assert refund.amount_fen == 1990
    assert (refund.raw["out_trade_no"], refund.raw["refund_status"]) == ("P100", status)
    assert ("success_time" in refund.raw) == (status == "SUCCESS")
    outer = v2.parse_xml(body)
    assert set(outer) == {"return_code", "appid", "mch_id", "nonce_str", "req_info"}
    assert "R100" not in body.decode()
    assert result["notifies"][0]["delivered"] is True


def test_wechatpy_decrypts_the_sandboxs_refund_notify_too(pay, sandbox, receiver):
    refund_id = refunded(pay, sandbox)
    sandbox.pay_v2.settle_refund("R100", "SUCCESS")
    client = WeChatPay(appid=SANDBOX_APP_ID, api_key=SANDBOX_V2_API_KEY, mch_id=SANDBOX_MCH_ID)

    data = client.parse_refund_notify_result(receiver.bodies()[0])

    assert (data["out_refund_no"], data["refund_id"], data["refund_fee"]) == (
        "R100",
        refund_id,
        1990,
    )


def test_the_refund_key_is_md5_of_the_api_key_in_lowercase_hex():
    assert v2.refund_key("abc") == hashlib.md5(b"abc").hexdigest().encode()  # noqa: S324
    assert len(v2.refund_key(SANDBOX_V2_API_KEY)) == 32


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        ("ciphertext", "undecryptable"),
        ("signature", "undecryptable"),
        ("body", "undecryptable"),
        ("appid", "wrong_app"),
        ("mch_id", "wrong_merchant"),
        ("malformed", "malformed"),
    ],
)
def test_a_bent_refund_notify_is_rejected(pay, sandbox, wx, receiver, forge, reason):
    refunded(pay, sandbox)
    sandbox.pay_v2.settle_refund("R100", "SUCCESS", notify=False)

    notify(wx, out_refund_no="R100", forge=forge)
    with pytest.raises(NotifyRejected) as rejected:
        pay.parse_notify(body=receiver.bodies()[0], headers={})

    assert rejected.value.reason == reason


def test_a_refund_notify_under_another_api_key_is_undecryptable(settings, sandbox, receiver):
    refunded(base.gateway(), sandbox)
    sandbox.pay_v2.settle_refund("R100", "SUCCESS")
    settings.WECHAT_PAY_V2_API_KEY = "another0key0of0thirty0two0chars"

    with pytest.raises(NotifyRejected) as rejected:
        base.gateway().parse_notify(body=receiver.bodies()[0], headers={})

    assert rejected.value.reason == "undecryptable"


def test_a_refund_notify_with_a_wrong_amount_reports_it(pay, sandbox, wx, receiver):
    refunded(pay, sandbox)
    sandbox.pay_v2.settle_refund("R100", "SUCCESS", notify=False)

    notify(wx, out_refund_no="R100", amount_fen=4990)
    notice = pay.parse_notify(body=receiver.bodies()[0], headers={})

    assert (notice.refund.out_refund_no, notice.refund.amount_fen) == ("R100", 4990)


def test_a_refund_notify_with_an_unknown_status_is_malformed(pay):
    info = b"<root><out_refund_no>R1</out_refund_no><refund_status>LOST</refund_status></root>"
    body = (
        "<xml><return_code>SUCCESS</return_code>"
        f"<appid>{SANDBOX_APP_ID}</appid><mch_id>{SANDBOX_MCH_ID}</mch_id>"
        f"<req_info>{encrypt_req_info(info, SANDBOX_V2_API_KEY)}</req_info></xml>"
    ).encode()

    with pytest.raises(NotifyRejected) as rejected:
        pay.parse_notify(body=body, headers={})

    assert (rejected.value.reason, rejected.value.detail) == (
        "malformed",
        "refund_status or out_refund_no",
    )


def test_a_notify_the_platform_refuses_is_recorded_as_not_delivered(pay, sandbox, wx, receiver):
    paid(pay, sandbox)
    receiver.answer = (200, "text/xml", pay.notify_failure("not processed").body)

    [record] = notify(wx, out_trade_no="P100")["notifies"]

    assert (record["status"], record["delivered"]) == (200, False)
    listed = requests.get(f"{wx.url}sandbox/pay/v2/notifies", timeout=5).json()["notifies"]
    assert [(r["event_type"], r["delivered"]) for r in listed] == [("TRANSACTION.SUCCESS", False)]


@pytest.mark.parametrize("method", ["jsapi_prepay", "codepay"])
def test_a_call_without_the_client_ip_is_refused_before_wechat(pay, wx, method):
    spec = {"out_trade_no": "P1", "amount_fen": 100, "description": "x", "client_ip": ""}
    spec |= {"openid": LIN} if method == "jsapi_prepay" else {"auth_code": "134567890123456789"}

    with pytest.raises(ValueError, match="client_ip is required"):
        getattr(pay, method)(**spec)

    assert wx.calls() == []
