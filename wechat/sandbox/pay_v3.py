"""WeChat Pay API v3 (api.mch.weixin.qq.com/v3) as the sandbox plays it, with its cashier.

The protocol, as WeChat Pay's "API v3 rules" describe it:

- Every request carries ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",
  signature="..",timestamp="..",serial_no=".."``: RSA-SHA256 with the merchant's API key over
  ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n``. The sandbox checks it with the merchant's
  public key: 401 ``SIGN_ERROR`` when it is missing, for another serial number, more than five
  minutes off or not valid (400 ``MCH_NOT_EXISTS`` for another merchant).
- Every answer, errors included, is signed with the WeChat Pay key over
  ``TIMESTAMP\\nNONCE\\nBODY\\n`` (headers ``Wechatpay-Timestamp``, ``-Nonce``, ``-Signature``,
  and ``-Serial``: the id of the WeChat Pay public key the platform verifies with).
- Errors are HTTP 4xx/5xx with ``{"code", "message"}`` (``detail.field`` on ``PARAM_ERROR``).
- Notifies are POSTed to the trade's ``notify_url`` (or the one set in the sandbox's config):
  ``{id, create_time, event_type, resource_type, summary, resource: {original_type,
  algorithm: AEAD_AES_256_GCM, ciphertext, associated_data, nonce}}``, the resource encrypted
  with the API v3 key and the request signed like an answer. 200 or 204 means received.

The endpoints: JSAPI order, query by out_trade_no, close, refund, payment code (codepay) and
its reverse. Trades live in memory until ``reset``. The sandbox's pages and control endpoints
for them are under ``/sandbox/pay/v3/`` (see ``routes``): the cashier page where a person pays a
trade, paying or notifying on request (duplicate, late, forged, stale, wrong amount), payment
codes that pay at once, after some polls or never, refund results.

The keys in ``keys/`` are test keys: they open nothing but this sandbox.
"""

import base64
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wechat.sandbox.data import WeChatUser
from wechat.sandbox.http import (
    BadRequest,
    Request,
    Response,
    Route,
    html_page,
    html_response,
    json_response,
    redirect_response,
)
from wechat.sandbox.pay_controls import PayControls

if TYPE_CHECKING:
    from wechat.sandbox.core import Sandbox

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")

# --- the sandbox merchant and its test keys ---------------------------------------------------

KEYS_DIR = Path(__file__).resolve().parent / "keys"
SANDBOX_MCH_ID = "1900000109"
# The merchant's API key pair: the platform signs with the private key; WeChat knows the
# certificate (here: the public key) by its serial number.
MERCHANT_PRIVATE_KEY_PATH = KEYS_DIR / "v3_merchant_private_key.pem"
MERCHANT_PUBLIC_KEY_PATH = KEYS_DIR / "v3_merchant_public_key.pem"
MERCHANT_SERIAL_NO = "3775B6A45ACD588826D15E583A95F5DD2C4A5C1E"
# WeChat Pay's key pair: the sandbox signs answers and notifies with the private key; the
# platform verifies with the public key, known by its id.
WECHATPAY_PRIVATE_KEY_PATH = KEYS_DIR / "v3_wechatpay_private_key.pem"
WECHATPAY_PUBLIC_KEY_PATH = KEYS_DIR / "v3_wechatpay_public_key.pem"
WECHATPAY_PUBLIC_KEY_ID = "PUB_KEY_ID_0119000001092026112500000000000001"
# The 32-byte API v3 key that encrypts notify resources.
API_V3_KEY = "sandboxApiV3Key0NotForProduction"
# The key id a forged notify claims (forge "serial").
FORGED_KEY_ID = "PUB_KEY_ID_0000000000000000000000000000000000"

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
MAX_SKEW_SECONDS = 300
NOTIFY_TIMEOUT_SECONDS = 5.0
MAX_COPIES = 200

TRADE_STATE_DESC = {
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "NOTPAY": "未支付",
    "CLOSED": "已关闭",
    "REVOKED": "已撤销（付款码支付）",
    "USERPAYING": "用户支付中（付款码支付）",
    "PAYERROR": "支付失败(其他原因，如银行返回失败)",
}
PAYMENT_CODE_OUTCOMES = ("paid", "userpaying", "not_enough")
REFUND_RESULTS = ("SUCCESS", "ABNORMAL", "CLOSED")
FORGERIES = ("signature", "serial", "body", "ciphertext")
# How a fault's status is named when the fault gives no code of its own.
STATUS_CODES = {
    400: ("PARAM_ERROR", "参数错误"),
    401: ("SIGN_ERROR", "签名错误"),
    403: ("NO_AUTH", "商户无权限"),
    404: ("ORDER_NOT_EXIST", "订单不存在"),
    429: ("FREQUENCY_LIMITED", "频率超限"),
    500: ("SYSTEM_ERROR", "系统异常，请稍后重试"),
}


def platform_settings(base_url: str) -> dict[str, str]:
    """The platform's settings that point its v3 gateway at this sandbox (tests, the demo)."""
    return {
        "WECHAT_PAY_MCH_ID": SANDBOX_MCH_ID,
        "WECHAT_PAY_API_BASE_URL": base_url,
        "WECHAT_PAY_V3_PRIVATE_KEY_PATH": str(MERCHANT_PRIVATE_KEY_PATH),
        "WECHAT_PAY_V3_CERT_SERIAL_NO": MERCHANT_SERIAL_NO,
        "WECHAT_PAY_V3_PUBLIC_KEY_PATH": str(WECHATPAY_PUBLIC_KEY_PATH),
        "WECHAT_PAY_V3_PUBLIC_KEY_ID": WECHATPAY_PUBLIC_KEY_ID,
        "WECHAT_PAY_V3_API_KEY": API_V3_KEY,
    }


# --- signatures and encryption ----------------------------------------------------------------


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(
            base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def _private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _public_key(path: Path) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


@cache
def _forger_key() -> rsa.RSAPrivateKey:
    """A key that is not WeChat Pay's: what a forger signs with."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _china_time(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), CHINA).isoformat()


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


# --- what the sandbox holds -------------------------------------------------------------------


@dataclass
class _Trade:
    out_trade_no: str
    trade_type: str  # JSAPI or MICROPAY
    appid: str
    description: str
    total: int
    openid: str
    notify_url: str
    attach: str
    created_at: float
    # What must be the same for a second order of the same out_trade_no to be "the same".
    request_key: tuple
    state: str = "NOTPAY"
    prepay_id: str = ""
    transaction_id: str = ""
    success_time: float | None = None
    # A payment-code trade waiting for the shopper's password: paid after this many queries.
    queries_until_paid: int | None = None

    def as_wechat(self, mch_id: str, *, amount_fen: int | None = None) -> dict[str, Any]:
        """The trade as the query answers it and the pay notify carries it."""
        total = self.total if amount_fen is None else amount_fen
        data: dict[str, Any] = {
            "appid": self.appid,
            "mchid": mch_id,
            "out_trade_no": self.out_trade_no,
            "trade_type": self.trade_type,
            "trade_state": self.state,
            "trade_state_desc": TRADE_STATE_DESC[self.state],
            "attach": self.attach,
            "amount": {"total": total, "currency": "CNY"},
        }
        if self.transaction_id:
            data.update(
                transaction_id=self.transaction_id,
                bank_type="OTHERS",
                success_time=_china_time(self.success_time or 0),
                payer={"openid": self.openid},
            )
            data["amount"].update(payer_total=total, payer_currency="CNY")
        elif self.state == "USERPAYING":
            data["payer"] = {"openid": self.openid}
        return data

    def as_dict(self, mch_id: str) -> dict[str, Any]:
        """For the sandbox's own listing: what WeChat answers, and what it keeps to itself."""
        return {
            **self.as_wechat(mch_id),
            "description": self.description,
            "prepay_id": self.prepay_id,
            "notify_url": self.notify_url,
            "created_at": _china_time(self.created_at),
        }


@dataclass
class _Refund:
    out_refund_no: str
    refund_id: str
    out_trade_no: str
    transaction_id: str
    refund: int
    total: int
    reason: str
    notify_url: str
    created_at: float
    status: str = "PROCESSING"
    success_time: float | None = None

    def as_wechat(self) -> dict[str, Any]:
        data = {
            "refund_id": self.refund_id,
            "out_refund_no": self.out_refund_no,
            "transaction_id": self.transaction_id,
            "out_trade_no": self.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": _china_time(self.created_at),
            "status": self.status,
            "funds_account": "AVAILABLE",
            "amount": self._amount(),
        }
        if self.success_time is not None:
            data["success_time"] = _china_time(self.success_time)
        return data

    def as_notify(self, mch_id: str) -> dict[str, Any]:
        data = {
            "mchid": mch_id,
            "out_trade_no": self.out_trade_no,
            "transaction_id": self.transaction_id,
            "out_refund_no": self.out_refund_no,
            "refund_id": self.refund_id,
            "refund_status": self.status,
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": self.total,
                "refund": self.refund,
                "payer_total": self.total,
                "payer_refund": self.refund,
            },
        }
        if self.success_time is not None:
            data["success_time"] = _china_time(self.success_time)
        return data

    def _amount(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "refund": self.refund,
            "payer_total": self.total,
            "payer_refund": self.refund,
            "settlement_total": self.total,
            "settlement_refund": self.refund,
            "discount_refund": 0,
            "currency": "CNY",
        }


@dataclass
class _PaymentCode:
    openid: str
    outcome: str  # paid | userpaying | not_enough
    paid_after_queries: int | None = None
    used: bool = False


class _Refused(Exception):
    """A v3 error answer: raised from deep in a handler, answered signed."""

    def __init__(self, status: int, code: str, message: str, field_name: str | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.field_name = status, code, message, field_name


@dataclass
class _Config:
    # Where notifies go instead of the URL in the request (the merchant platform's setting).
    notify_url: str | None = None
    refund_notify_url: str | None = None
    # The next N answers are signed with a key that is not WeChat Pay's.
    forge_responses: int = 0


class PayV3(PayControls):
    """The v3 endpoints of one merchant. State is guarded by the sandbox's lock; notifies are
    sent outside it (the platform may call back while handling one)."""

    fault_modes = frozenset({"busy", "errcode", "timeout"})

    def __init__(
        self,
        sandbox: "Sandbox",
        *,
        app_id: str,
        users: tuple[WeChatUser, ...],
        mch_id: str = SANDBOX_MCH_ID,
        notify_url: str | None = None,
    ):
        self.sandbox = sandbox
        self.app_id = app_id
        self.mch_id = mch_id
        self.users = {user.openid: user for user in users}
        self.default_notify_url = notify_url
        self.merchant_public_key = _public_key(MERCHANT_PUBLIC_KEY_PATH)
        self.wechatpay_key = _private_key(WECHATPAY_PRIVATE_KEY_PATH)
        self.api_v3_key = API_V3_KEY.encode()
        self._stop = threading.Event()
        self.reset()

    def reset(self) -> None:
        self.config = _Config(notify_url=self.default_notify_url)
        self._trades: dict[str, _Trade] = {}
        self._refunds: dict[str, _Refund] = {}
        self._codes: dict[str, _PaymentCode] = {}
        self._notifies: list[dict[str, Any]] = []
        self._notify_ids = 0
        # Late notifies still waiting are dropped.
        self._stop.set()
        self._stop = threading.Event()

    def routes(self) -> list[Route]:
        wechat = [
            Route("POST", "/v3/pay/transactions/jsapi", self.jsapi),
            Route("GET", "/v3/pay/transactions/out-trade-no/{out_trade_no}", self.query),
            Route("POST", "/v3/pay/transactions/out-trade-no/{out_trade_no}/close", self.close),
            Route("POST", "/v3/refund/domestic/refunds", self.refund),
            Route("POST", "/v3/pay/transactions/codepay", self.codepay),
            Route("POST", "/v3/pay/transactions/out-trade-no/{out_trade_no}/reverse", self.reverse),
        ]
        control = [
            ("GET", "/sandbox/pay/v3/", self.index_page),
            ("GET", "/sandbox/pay/v3/trades", self.trades_listing),
            ("GET", "/sandbox/pay/v3/notifies", self.notifies_listing),
            ("GET", "/sandbox/pay/v3/config", self.config_show),
            ("POST", "/sandbox/pay/v3/config", self.config_set),
            ("POST", "/sandbox/pay/v3/pay", self.pay_control),
            ("POST", "/sandbox/pay/v3/notify", self.notify_control),
            ("POST", "/sandbox/pay/v3/refund-result", self.refund_result_control),
            ("POST", "/sandbox/pay/v3/payment-codes", self.payment_code_control),
            ("POST", "/sandbox/pay/v3/refunds/{out_refund_no}", self.refund_result_form),
            ("GET", "/sandbox/pay/v3/{out_trade_no}", self.cashier_page),
            ("POST", "/sandbox/pay/v3/{out_trade_no}", self.cashier_pay),
        ]
        return wechat + [
            Route(method, path, handler, recorded=False) for method, path, handler in control
        ]

    # --- how faults answer ------------------------------------------------------------------

    def error_response(self, errcode: int, errmsg: str | None = None) -> Response:
        """busy: 500 SYSTEM_ERROR. An errcode fault: the HTTP status ``errcode`` (4xx/5xx, else
        400) with the code ``errmsg`` (default: the usual code of that status)."""
        status = 500 if errcode == -1 else errcode if 400 <= errcode <= 599 else 400
        code, message = STATUS_CODES.get(status, STATUS_CODES[500 if status >= 500 else 400])
        return self._error(status, errmsg or code, message)

    def expire_credentials(self, request: Request) -> Response:
        """v3 has no access token; not among ``fault_modes``."""
        return self.error_response(-1)

    # --- answers ------------------------------------------------------------------------------

    def _signed(self, status: int, data: Any = None) -> Response:
        body = b"" if data is None else json.dumps(data, ensure_ascii=False).encode("utf-8")
        with self.sandbox.lock:
            forged = self.config.forge_responses > 0
            if forged:
                self.config.forge_responses -= 1
        headers = self._signature_headers(body, forged_key=forged)
        headers.append(("Request-ID", uuid.uuid4().hex.upper()))
        return Response(status, body, "application/json; charset=utf-8", headers)

    def _signature_headers(
        self,
        body: bytes,
        *,
        forged_key: bool = False,
        serial: str = WECHATPAY_PUBLIC_KEY_ID,
        timestamp_offset: float = 0,
    ) -> list[tuple[str, str]]:
        # Wall time, not the sandbox clock: a signature's time is the real time of WeChat's
        # servers, whatever the tests did to token expiry.
        timestamp = str(int(time.time() + timestamp_offset))
        nonce = secrets.token_hex(16).upper()
        key = _forger_key() if forged_key else self.wechatpay_key
        signature = rsa_sign(key, f"{timestamp}\n{nonce}\n".encode() + body + b"\n")
        return [
            ("Wechatpay-Nonce", nonce),
            ("Wechatpay-Signature", signature),
            ("Wechatpay-Timestamp", timestamp),
            ("Wechatpay-Serial", serial),
            ("Wechatpay-Signature-Type", AUTH_SCHEME),
        ]

    def _error(
        self, status: int, code: str, message: str, field_name: str | None = None
    ) -> Response:
        data: dict[str, Any] = {"code": code, "message": message}
        if field_name is not None:
            data["detail"] = {"field": field_name, "location": "body"}
        return self._signed(status, data)

    def _handle(self, request: Request, act: Any) -> Response:
        """Authenticate, run ``act(body)``, sign what it answers (or the refusal it raised)."""
        try:
            self._authenticate(request)
            body = self._json_body(request) if request.method == "POST" else {}
            status, data = act(body)
        except _Refused as refused:
            return self._error(refused.status, refused.code, refused.message, refused.field_name)
        return self._signed(status, data)

    # --- request checks -----------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme != AUTH_SCHEME:
            raise _Refused(401, "SIGN_ERROR", "Http头Authorization值格式错误，请参考签名规则")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        missing = [
            name
            for name in ("mchid", "nonce_str", "signature", "timestamp", "serial_no")
            if not fields.get(name)
        ]
        if missing:
            raise _Refused(401, "SIGN_ERROR", f"Authorization缺少{','.join(missing)}")
        if fields["mchid"] != self.mch_id:
            raise _Refused(400, "MCH_NOT_EXISTS", "商户号不存在")
        if fields["serial_no"] != MERCHANT_SERIAL_NO:
            raise _Refused(401, "SIGN_ERROR", "商户证书序列号有误")
        timestamp = fields["timestamp"]
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_SECONDS:
            raise _Refused(401, "SIGN_ERROR", "请求的时间戳已过期或无效")
        url = request.path + (f"?{request.query_string}" if request.query_string else "")
        message = (
            f"{request.method}\n{url}\n{timestamp}\n{fields['nonce_str']}\n".encode()
            + request.body
            + b"\n"
        )
        if not rsa_verify(self.merchant_public_key, message, fields["signature"]):
            raise _Refused(401, "SIGN_ERROR", "签名错误")

    def _json_body(self, request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except ValueError:
            raise _Refused(400, "PARAM_ERROR", "请求体不是合法的JSON") from None
        if not isinstance(body, dict):
            raise _Refused(400, "PARAM_ERROR", "请求体应为JSON对象")
        return body

    def _require(self, data: dict[str, Any], path: str, kind: type = str) -> Any:
        """The field at ``path`` ("amount/total") of the body: present and of its type."""
        value: Any = data
        for name in path.split("/"):
            value = value.get(name) if isinstance(value, dict) else None
        well_typed = (
            isinstance(value, int) and not isinstance(value, bool) and value >= 1
            if kind is int
            else isinstance(value, kind) and value != ""
        )
        if not well_typed:
            raise _Refused(
                400,
                "PARAM_ERROR",
                f"输入源“/body/{path}”映射到值字段必填性规则校验失败，此字段为必填项",
                f"/{path}",
            )
        return value

    def _check_merchant(self, body: dict[str, Any], *, appid: bool = True) -> None:
        if self._require(body, "mchid") != self.mch_id:
            raise _Refused(400, "MCH_NOT_EXISTS", "商户号不存在")
        if appid and self._require(body, "appid") != self.app_id:
            raise _Refused(400, "APPID_MCHID_NOT_MATCH", "AppID和mch_id不匹配")

    def _check_order_fields(self, body: dict[str, Any]) -> tuple[str, str, int]:
        out_trade_no = self._require(body, "out_trade_no")
        if not re.fullmatch(r"[0-9A-Za-z_\-*|]{6,32}", out_trade_no):
            raise _Refused(400, "PARAM_ERROR", "商户订单号格式错误", "/out_trade_no")
        description = self._require(body, "description")
        if len(description) > 127:
            raise _Refused(400, "PARAM_ERROR", "商品描述超过长度限制", "/description")
        total = self._require(body, "amount/total", int)
        if body["amount"].get("currency", "CNY") != "CNY":
            raise _Refused(400, "PARAM_ERROR", "币种不支持", "/amount/currency")
        return out_trade_no, description, total

    def _check_notify_url(self, url: Any, name: str) -> str:
        parts = urlsplit(url) if isinstance(url, str) else None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
        ):
            # WeChat wants https; the sandbox takes http too (the platform runs locally).
            raise _Refused(400, "PARAM_ERROR", f"{name}格式错误，须为不带参数的完整URL", f"/{name}")
        return url

    # --- WeChat Pay's endpoints ---------------------------------------------------------------

    def jsapi(self, request: Request) -> Response:
        return self._handle(request, self._jsapi)

    def _jsapi(self, body: dict[str, Any]) -> tuple[int, Any]:
        self._check_merchant(body)
        out_trade_no, description, total = self._check_order_fields(body)
        notify_url = self._check_notify_url(body.get("notify_url"), "notify_url")
        openid = self._require(body, "payer/openid")
        if openid not in self.users:
            raise _Refused(400, "PARAM_ERROR", "用户的openid与appid不匹配", "/payer/openid")
        key = (body["appid"], description, total, openid, body.get("attach", ""))
        with self.sandbox.lock:
            trade = self._trades.get(out_trade_no)
            if trade is not None:
                self._refuse_reorder(trade, key)
                return 200, {"prepay_id": trade.prepay_id}
            now = self.sandbox.now()
            trade = _Trade(
                out_trade_no=out_trade_no,
                trade_type="JSAPI",
                appid=body["appid"],
                description=description,
                total=total,
                openid=openid,
                notify_url=notify_url,
                attach=body.get("attach", ""),
                created_at=now,
                request_key=key,
                prepay_id=f"wx{datetime.fromtimestamp(now, CHINA):%d%H%M%S}{secrets.token_hex(13)}",
            )
            self._trades[out_trade_no] = trade
        return 200, {"prepay_id": trade.prepay_id}

    @staticmethod
    def _refuse_reorder(trade: _Trade, key: tuple) -> None:
        """A second order under a known out_trade_no: the same unpaid order gets the same
        answer; anything else is refused."""
        if trade.state in ("SUCCESS", "REFUND"):
            raise _Refused(403, "ORDERPAID", "订单已支付")
        if trade.state in ("CLOSED", "REVOKED"):
            raise _Refused(400, "ORDER_CLOSED", "订单已关闭")
        if trade.request_key != key:
            raise _Refused(403, "OUT_TRADE_NO_USED", "商户订单号重复")

    def query(self, request: Request) -> Response:
        out_trade_no = request.params["out_trade_no"]

        def act(body: dict[str, Any]) -> tuple[int, Any]:
            if request.query.get("mchid") != self.mch_id:
                raise _Refused(400, "PARAM_ERROR", "mchid与请求的商户号不一致", "/mchid")
            with self.sandbox.lock:
                trade = self._trade(out_trade_no)
                if trade.state == "USERPAYING" and trade.queries_until_paid is not None:
                    trade.queries_until_paid -= 1
                    if trade.queries_until_paid <= 0:
                        self._mark_paid(trade)
                return 200, trade.as_wechat(self.mch_id)

        return self._handle(request, act)

    def close(self, request: Request) -> Response:
        out_trade_no = request.params["out_trade_no"]

        def act(body: dict[str, Any]) -> tuple[int, Any]:
            self._check_merchant(body, appid=False)
            with self.sandbox.lock:
                trade = self._trades.get(out_trade_no)
                # WeChat answers 204 for a trade closed before, and for one it does not know.
                if trade is None or trade.state in ("CLOSED", "REVOKED"):
                    return 204, None
                if trade.state in ("SUCCESS", "REFUND"):
                    raise _Refused(400, "ORDERPAID", "订单已支付")
                if trade.state == "USERPAYING":
                    raise _Refused(202, "USERPAYING", "用户支付中，需要输入密码")
                trade.state = "CLOSED"
            return 204, None

        return self._handle(request, act)

    def refund(self, request: Request) -> Response:
        return self._handle(request, self._refund)

    def _refund(self, body: dict[str, Any]) -> tuple[int, Any]:
        out_refund_no = self._require(body, "out_refund_no")
        if not re.fullmatch(r"[0-9A-Za-z_\-*|@]{1,64}", out_refund_no):
            raise _Refused(400, "PARAM_ERROR", "商户退款单号格式错误", "/out_refund_no")
        refund_fen = self._require(body, "amount/refund", int)
        total_fen = self._require(body, "amount/total", int)
        if self._require(body, "amount/currency") != "CNY":
            raise _Refused(400, "PARAM_ERROR", "币种不支持", "/amount/currency")
        reason = body.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 80:
            raise _Refused(400, "PARAM_ERROR", "退款原因超过长度限制", "/reason")
        notify_url = body.get("notify_url", "")
        if notify_url:
            self._check_notify_url(notify_url, "notify_url")
        with self.sandbox.lock:
            trade = self._refunded_trade(body)
            refund = self._refunds.get(out_refund_no)
            if refund is not None:
                if (refund.out_trade_no, refund.refund, refund.total) != (
                    trade.out_trade_no,
                    refund_fen,
                    total_fen,
                ):
                    raise _Refused(400, "INVALID_REQUEST", "退款单号重复，且与之前的请求参数不一致")
                return 200, refund.as_wechat()
            if trade.state not in ("SUCCESS", "REFUND"):
                raise _Refused(400, "INVALID_REQUEST", f"订单状态为{trade.state}，不能退款")
            if total_fen != trade.total:
                raise _Refused(400, "INVALID_REQUEST", "订单金额与原订单不一致", "/amount/total")
            refunded = sum(
                other.refund
                for other in self._refunds.values()
                if other.out_trade_no == trade.out_trade_no
                and other.status in ("PROCESSING", "SUCCESS")
            )
            if refunded + refund_fen > trade.total:
                raise _Refused(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
            refund = _Refund(
                out_refund_no=out_refund_no,
                refund_id=f"5030{_digits(25)}",
                out_trade_no=trade.out_trade_no,
                transaction_id=trade.transaction_id,
                refund=refund_fen,
                total=total_fen,
                reason=reason,
                notify_url=notify_url,
                created_at=self.sandbox.now(),
            )
            self._refunds[out_refund_no] = refund
            trade.state = "REFUND"
            return 200, refund.as_wechat()

    def _refunded_trade(self, body: dict[str, Any]) -> _Trade:
        transaction_id, out_trade_no = body.get("transaction_id"), body.get("out_trade_no")
        if transaction_id:
            found = [t for t in self._trades.values() if t.transaction_id == transaction_id]
        elif out_trade_no:
            found = [self._trades[out_trade_no]] if out_trade_no in self._trades else []
        else:
            raise _Refused(
                400, "PARAM_ERROR", "transaction_id和out_trade_no必须二选一", "/out_trade_no"
            )
        if not found:
            raise _Refused(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        return found[0]

    def codepay(self, request: Request) -> Response:
        return self._handle(request, self._codepay)

    def _codepay(self, body: dict[str, Any]) -> tuple[int, Any]:
        self._check_merchant(body)
        out_trade_no, description, total = self._check_order_fields(body)
        auth_code = self._require(body, "payer/auth_code")
        if not re.fullmatch(r"1[0-5]\d{16}", auth_code):
            raise _Refused(
                400,
                "AUTH_CODE_INVALID",
                "请扫描微信支付付款码(以10/11/12/13/14/15为前缀的18位数字)",
            )
        key = (body["appid"], description, total, auth_code, body.get("attach", ""))
        with self.sandbox.lock:
            trade = self._trades.get(out_trade_no)
            if trade is not None:
                # The till repeating itself after a lost answer: the trade as it stands.
                if trade.request_key != key:
                    raise _Refused(403, "OUT_TRADE_NO_USED", "商户订单号重复")
                return self._codepay_answer(trade)
            # A code the sandbox did not hand out: a shopper whose payment goes through.
            code = self._codes.get(auth_code) or _PaymentCode(
                openid=next(iter(self.users)), outcome="paid"
            )
            if code.used:
                raise _Refused(400, "AUTHCODEEXPIRE", "二维码已过期，请用户在微信上刷新后再试")
            code.used = True
            self._codes[auth_code] = code
            trade = _Trade(
                out_trade_no=out_trade_no,
                trade_type="MICROPAY",
                appid=body["appid"],
                description=description,
                total=total,
                openid=code.openid,
                notify_url="",
                attach=body.get("attach", ""),
                created_at=self.sandbox.now(),
                request_key=key,
            )
            self._trades[out_trade_no] = trade
            if code.outcome == "paid":
                self._mark_paid(trade)
            elif code.outcome == "userpaying":
                trade.state = "USERPAYING"
                trade.queries_until_paid = code.paid_after_queries
            else:
                trade.state = "PAYERROR"
            return self._codepay_answer(trade)

    def _codepay_answer(self, trade: _Trade) -> tuple[int, Any]:
        if trade.state == "USERPAYING":
            raise _Refused(202, "USERPAYING", "用户支付中，需要输入密码")
        if trade.state == "PAYERROR":
            raise _Refused(403, "NOT_ENOUGH", "用户账号余额不足")
        return 200, trade.as_wechat(self.mch_id)

    def reverse(self, request: Request) -> Response:
        out_trade_no = request.params["out_trade_no"]

        def act(body: dict[str, Any]) -> tuple[int, Any]:
            self._check_merchant(body)
            with self.sandbox.lock:
                trade = self._trade(out_trade_no)
                if trade.trade_type != "MICROPAY":
                    raise _Refused(400, "INVALID_REQUEST", "非付款码支付的订单不能撤销")
                if trade.state == "REFUND":
                    raise _Refused(400, "INVALID_REQUEST", "订单已发生退款，不能撤销")
                # Paid: the money goes back to the shopper; unpaid: the trade is closed.
                trade.state = "REVOKED"
                trade.queries_until_paid = None
            return 200, {"appid": trade.appid, "mchid": self.mch_id, "out_trade_no": out_trade_no}

        return self._handle(request, act)

    def _trade(self, out_trade_no: str) -> _Trade:
        trade = self._trades.get(out_trade_no)
        if trade is None:
            raise _Refused(404, "ORDER_NOT_EXIST", "订单不存在")
        return trade

    def _mark_paid(self, trade: _Trade) -> None:
        now = self.sandbox.now()
        trade.state = "SUCCESS"
        trade.queries_until_paid = None
        trade.transaction_id = f"4200{datetime.fromtimestamp(now, CHINA):%Y%m%d}{_digits(16)}"
        trade.success_time = now

    # --- paying and notifying -----------------------------------------------------------------

    def pay(self, out_trade_no: str, *, notify: bool = True) -> dict[str, Any]:
        """The shopper pays (the cashier's button, or a test): the trade succeeds and, for a
        JSAPI trade, the pay notify goes out. Returns the trade and the notifies sent."""
        with self.sandbox.lock:
            trade = self._trades.get(out_trade_no)
            if trade is None:
                raise BadRequest(f"no trade {out_trade_no!r} in the sandbox")
            if trade.state not in ("NOTPAY", "USERPAYING"):
                raise BadRequest(f"trade {out_trade_no} is {trade.state}, not payable")
            self._mark_paid(trade)
            shown = trade.as_dict(self.mch_id)
            # Payment codes have no notify: the till learns the result from its own calls.
            notify = notify and trade.trade_type == "JSAPI"
        sent = self.send_notify({"out_trade_no": out_trade_no}) if notify else []
        return {"trade": shown, "notifies": sent}

    def send_notify(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        """Send the notify of a trade (``out_trade_no``) or refund (``out_refund_no``) as it
        stands, optionally bent: ``copies`` identical ones (all at once, or one after the other
        with ``concurrent: false``), ``delay_seconds`` later,
        ``forge`` (signature: signed with another key; serial: another key id; body: changed
        after signing; ciphertext: encrypted with another API v3 key),
        ``timestamp_offset_seconds`` (stale or future), ``amount_fen`` (a wrong amount),
        ``notify_url`` (elsewhere). ``deliver: false`` returns the requests unsent."""
        copies = spec.get("copies", 1)
        if not isinstance(copies, int) or isinstance(copies, bool) or not 1 <= copies <= MAX_COPIES:
            raise BadRequest(f"copies must be an integer in [1, {MAX_COPIES}]")
        concurrent = spec.get("concurrent", True)
        if not isinstance(concurrent, bool):
            raise BadRequest("concurrent must be a boolean")
        forge = spec.get("forge")
        if forge is not None and forge not in FORGERIES:
            raise BadRequest(f"forge must be one of {list(FORGERIES)}")
        offset = spec.get("timestamp_offset_seconds", 0)
        delay = spec.get("delay_seconds", 0)
        amount_fen = spec.get("amount_fen")
        for name, value in (("timestamp_offset_seconds", offset), ("delay_seconds", delay)):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise BadRequest(f"{name} must be a number")
        if not 0 <= delay <= 600:
            raise BadRequest("delay_seconds must be in [0, 600]")
        if amount_fen is not None and (
            not isinstance(amount_fen, int) or isinstance(amount_fen, bool)
        ):
            raise BadRequest("amount_fen must be an integer")
        notify = self._notify_request(spec, forge=forge, offset=offset, amount_fen=amount_fen)
        if spec.get("deliver", True) is False:
            return [notify] * copies
        if delay:
            stop = self._stop
            threading.Thread(
                target=self._deliver_later,
                args=(notify, copies, concurrent, delay, stop),
                daemon=True,
            ).start()
            return []
        return self._deliver_copies(notify, copies, concurrent)

    def _notify_request(
        self, spec: dict[str, Any], *, forge: str | None, offset: float, amount_fen: int | None
    ) -> dict[str, Any]:
        out_trade_no, out_refund_no = spec.get("out_trade_no"), spec.get("out_refund_no")
        with self.sandbox.lock:
            if out_refund_no is not None:
                refund = self._refunds.get(out_refund_no)
                if refund is None:
                    raise BadRequest(f"no refund {out_refund_no!r} in the sandbox")
                if refund.status == "PROCESSING":
                    raise BadRequest(f"refund {out_refund_no} is still PROCESSING")
                resource = refund.as_notify(self.mch_id)
                if amount_fen is not None:
                    resource["amount"].update(refund=amount_fen, payer_refund=amount_fen)
                event_type, kind = f"REFUND.{refund.status}", "refund"
                summary = {"SUCCESS": "退款成功", "ABNORMAL": "退款异常", "CLOSED": "退款关闭"}
                summary_text = summary[refund.status]
                url = self.config.refund_notify_url or refund.notify_url
            else:
                trade = self._trades.get(out_trade_no) if isinstance(out_trade_no, str) else None
                if trade is None:
                    raise BadRequest(f"no trade {out_trade_no!r} in the sandbox")
                if not trade.transaction_id:
                    raise BadRequest(f"trade {out_trade_no} was never paid")
                resource = trade.as_wechat(self.mch_id, amount_fen=amount_fen)
                # The notify tells of the payment, whatever happened to the trade since.
                resource.update(trade_state="SUCCESS", trade_state_desc=TRADE_STATE_DESC["SUCCESS"])
                event_type, kind, summary_text = "TRANSACTION.SUCCESS", "transaction", "支付成功"
                url = self.config.notify_url or trade.notify_url
            now = self.sandbox.now()
        if spec.get("notify_url") is not None:
            try:
                url = self._check_notify_url(spec["notify_url"], "notify_url")
            except _Refused as refused:
                raise BadRequest(refused.message) from None
        if not url:
            raise BadRequest("no notify URL: the request gave none and the config sets none")
        nonce = secrets.token_urlsafe(9)[:12]
        key = secrets.token_bytes(32) if forge == "ciphertext" else self.api_v3_key
        plaintext = json.dumps(resource, ensure_ascii=False).encode("utf-8")
        ciphertext = AESGCM(key).encrypt(nonce.encode(), plaintext, kind.encode())
        envelope = {
            "id": str(uuid.uuid4()),
            "create_time": _china_time(now),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary_text,
            "resource": {
                "original_type": kind,
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": kind,
                "nonce": nonce,
            },
        }
        body = json.dumps(envelope, ensure_ascii=False).encode("utf-8")
        headers = self._signature_headers(
            body,
            forged_key=forge == "signature",
            serial=FORGED_KEY_ID if forge == "serial" else WECHATPAY_PUBLIC_KEY_ID,
            timestamp_offset=offset,
        )
        if forge == "body":
            body = body.replace(summary_text.encode(), "已篡改".encode())
        variant = [
            forge,
            f"timestamp {offset:+g} s" if offset else None,
            f"amount {amount_fen}" if amount_fen is not None else None,
        ]
        return {
            "url": url,
            "headers": {"Content-Type": "application/json", **dict(headers)},
            "body": body.decode("utf-8"),
            "event_type": event_type,
            "out_trade_no": resource["out_trade_no"],
            "out_refund_no": resource.get("out_refund_no"),
            "variant": ", ".join(part for part in variant if part) or None,
        }

    def _deliver_copies(
        self, notify: dict[str, Any], copies: int, concurrent: bool
    ) -> list[dict[str, Any]]:
        if copies == 1 or not concurrent:
            return [self._deliver(notify) for _ in range(copies)]
        results: list[dict[str, Any]] = [{}] * copies
        start = threading.Barrier(copies)

        def send(index: int) -> None:
            start.wait()
            results[index] = self._deliver(notify)

        threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    def _deliver_later(
        self,
        notify: dict[str, Any],
        copies: int,
        concurrent: bool,
        delay: float,
        stop: threading.Event,
    ) -> None:
        if not stop.wait(delay):
            self._deliver_copies(notify, copies, concurrent)

    def _deliver(self, notify: dict[str, Any]) -> dict[str, Any]:
        """POST one notify as WeChat does and keep what the platform answered."""
        # Every notify URL's scheme (http or https) was checked when the sandbox took it.
        request = urllib.request.Request(  # noqa: S310
            notify["url"],
            data=notify["body"].encode("utf-8"),
            headers={**notify["headers"], "User-Agent": "Mozilla/4.0"},
            method="POST",
        )
        status, answer, error = None, None, None
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=NOTIFY_TIMEOUT_SECONDS) as response:  # noqa: S310
                status, answer = response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            error = str(getattr(exc, "reason", exc))
        with self.sandbox.lock:
            self._notify_ids += 1
            record = {
                "id": self._notify_ids,
                "time": _china_time(self.sandbox.now()),
                "event_type": notify["event_type"],
                "out_trade_no": notify["out_trade_no"],
                "out_refund_no": notify["out_refund_no"],
                "url": notify["url"],
                "variant": notify["variant"],
                "status": status,
                "answer": answer,
                "error": error,
                # WeChat counts 200 and 204 as received; anything else it would send again.
                "delivered": status in (200, 204),
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            }
            self._notifies.append(record)
        return dict(record)

    def mint_payment_code(self, spec: dict[str, Any]) -> str:
        """The 18-digit code the shopper's WeChat shows at the till, and how her payment will
        go: ``paid`` at once, ``userpaying`` (asks for her password; paid after
        ``paid_after_queries`` queries, or by ``POST /sandbox/pay/v3/pay``, or never),
        ``not_enough`` (refused: balance too low)."""
        openid = spec.get("openid", next(iter(self.users)))
        if openid not in self.users:
            raise BadRequest(f"no WeChat user with openid {openid!r} in the sandbox")
        outcome = spec.get("outcome", "paid")
        if outcome not in PAYMENT_CODE_OUTCOMES:
            raise BadRequest(f"outcome must be one of {list(PAYMENT_CODE_OUTCOMES)}")
        after = spec.get("paid_after_queries")
        if after is not None and (
            outcome != "userpaying"
            or not isinstance(after, int)
            or isinstance(after, bool)
            or after < 1
        ):
            raise BadRequest("paid_after_queries is a positive integer, for userpaying codes")
        with self.sandbox.lock:
            code = f"13{_digits(16)}"
            self._codes[code] = _PaymentCode(
                openid=openid, outcome=outcome, paid_after_queries=after
            )
        return code

    def settle_refund(
        self, out_refund_no: Any, status: Any, *, notify: bool = True
    ) -> dict[str, Any]:
        """WeChat finishes a refund: SUCCESS (the money is back), ABNORMAL or CLOSED; the
        refund notify goes out when the refund request or the config gave a URL."""
        if status not in REFUND_RESULTS:
            raise BadRequest(f"status must be one of {list(REFUND_RESULTS)}")
        with self.sandbox.lock:
            refund = self._refunds.get(out_refund_no) if isinstance(out_refund_no, str) else None
            if refund is None:
                raise BadRequest(f"no refund {out_refund_no!r} in the sandbox")
            if refund.status != "PROCESSING":
                raise BadRequest(f"refund {out_refund_no} is already {refund.status}")
            refund.status = status
            if status == "SUCCESS":
                refund.success_time = self.sandbox.now()
            shown = refund.as_wechat()
            url = self.config.refund_notify_url or refund.notify_url
        sent = self.send_notify({"out_refund_no": out_refund_no}) if notify and url else []
        return {"refund": shown, "notifies": sent}

    # --- control endpoints --------------------------------------------------------------------

    def trades_listing(self, request: Request) -> Response:
        with self.sandbox.lock:
            trades = [trade.as_dict(self.mch_id) for trade in self._trades.values()]
            refunds = [refund.as_wechat() for refund in self._refunds.values()]
        return json_response({"trades": trades, "refunds": refunds})

    def notifies_listing(self, request: Request) -> Response:
        with self.sandbox.lock:
            return json_response({"notifies": [dict(record) for record in self._notifies]})

    def config_show(self, request: Request) -> Response:
        with self.sandbox.lock:
            return json_response(self._config_dict())

    def config_set(self, request: Request) -> Response:
        """``notify_url`` / ``refund_notify_url``: where notifies go instead of the URL in the
        request (null: the request's); ``forge_responses``: sign the next N answers with a
        key that is not WeChat Pay's."""
        body = request.control_json()
        unknown = set(body) - {"notify_url", "refund_notify_url", "forge_responses"}
        if unknown:
            raise BadRequest(f"unknown settings {sorted(unknown)}")
        for name in ("notify_url", "refund_notify_url"):
            if body.get(name) is not None:
                try:
                    self._check_notify_url(body[name], name)
                except _Refused as refused:
                    raise BadRequest(refused.message) from None
        forge = body.get("forge_responses", 0)
        if not isinstance(forge, int) or isinstance(forge, bool) or forge < 0:
            raise BadRequest("forge_responses must be a non-negative integer")
        with self.sandbox.lock:
            for name in ("notify_url", "refund_notify_url"):
                if name in body:
                    setattr(self.config, name, body[name])
            if "forge_responses" in body:
                self.config.forge_responses = forge
            return json_response(self._config_dict())

    def _config_dict(self) -> dict[str, Any]:
        return {
            "mchid": self.mch_id,
            "appid": self.app_id,
            "notify_url": self.config.notify_url,
            "refund_notify_url": self.config.refund_notify_url,
            "forge_responses": self.config.forge_responses,
        }

    def pay_control(self, request: Request) -> Response:
        body = request.control_json()
        notify = body.get("notify", True)
        if not isinstance(notify, bool):
            raise BadRequest("notify must be a boolean")
        return json_response(self.pay(str(body.get("out_trade_no")), notify=notify))

    # --- pages: the cashier and the merchant's view ---------------------------------------------

    def index_page(self, request: Request) -> Response:
        with self.sandbox.lock:
            trades = [trade.as_dict(self.mch_id) for trade in self._trades.values()]
            refunds = [refund.as_wechat() for refund in self._refunds.values()]
            notifies = [dict(record) for record in self._notifies[-50:]]
        trade_rows = "".join(
            f"<tr><td><a href='/sandbox/pay/v3/{escape(t['out_trade_no'])}'>"
            f"{escape(t['out_trade_no'])}</a></td><td>{escape(t['trade_type'])}</td>"
            f"<td>{_yuan(t['amount']['total'])}</td><td>{escape(t['trade_state'])}</td>"
            f"<td>{escape(t.get('transaction_id', ''))}</td></tr>"
            for t in reversed(trades)
        )
        refund_rows = "".join(
            f"<tr><td>{escape(r['out_refund_no'])}</td><td>{escape(r['out_trade_no'])}</td>"
            f"<td>{_yuan(r['amount']['refund'])}</td><td>{escape(r['status'])}</td><td>"
            + (
                "".join(
                    f"<form method='post' action='/sandbox/pay/v3/refunds/"
                    f"{escape(r['out_refund_no'])}' style='display:inline'>"
                    f"<button name='status' value='{status}'>{status}</button></form>"
                    for status in REFUND_RESULTS
                )
                if r["status"] == "PROCESSING"
                else ""
            )
            + "</td></tr>"
            for r in reversed(refunds)
        )
        notify_rows = "".join(
            f"<tr><td>{n['id']}</td><td>{escape(n['event_type'])}</td>"
            f"<td>{escape(n['out_trade_no'])}</td><td>{escape(n['url'])}</td>"
            f"<td>{escape(str(n['variant'] or ''))}</td>"
            f"<td>{n['status'] if n['status'] is not None else escape(n['error'] or '')}</td></tr>"
            for n in reversed(notifies)
        )
        body = (
            f"<p>Merchant <code>{escape(self.mch_id)}</code>, app <code>{escape(self.app_id)}"
            "</code>. <a href='/sandbox/'>sandbox</a> · <a href='/sandbox/pay/v3/trades'>"
            "trades as JSON</a> · <a href='/sandbox/pay/v3/notifies'>notifies as JSON</a></p>"
            "<h2>Trades</h2><table><tr><th>out_trade_no</th><th>type</th><th>amount</th>"
            f"<th>state</th><th>transaction_id</th></tr>{trade_rows or _none(5)}</table>"
            "<h2>Refunds</h2><table><tr><th>out_refund_no</th><th>out_trade_no</th>"
            f"<th>amount</th><th>status</th><th>settle</th></tr>{refund_rows or _none(5)}</table>"
            "<h2>Notifies (newest first)</h2><table><tr><th>#</th><th>event</th>"
            "<th>out_trade_no</th><th>to</th><th>variant</th><th>answer</th></tr>"
            f"{notify_rows or _none(6)}</table>"
        )
        return html_response(html_page("WeChat Pay v3 sandbox", body))

    def refund_result_form(self, request: Request) -> Response:
        status = dict(parse_qsl(request.text)).get("status")
        self.settle_refund(request.params["out_refund_no"], status)
        return redirect_response("/sandbox/pay/v3/")

    def cashier_page(self, request: Request) -> Response:
        """What WeChat shows the shopper for ``wx.requestPayment``. With the parameters the
        platform signed (``timeStamp``, ``nonceStr``, ``package``, ``paySign``, ``appId``) in
        the query, they are checked as WeChat checks them."""
        out_trade_no = request.params["out_trade_no"]
        with self.sandbox.lock:
            trade = self._trades.get(out_trade_no)
            shown = trade.as_dict(self.mch_id) if trade else None
        if shown is None:
            body = f"<p class='error'>No trade {escape(out_trade_no)} in the sandbox.</p>"
            return html_response(html_page("WeChat Pay", body), 404)
        refused = self._check_payment_parameters(request.query, shown)
        if refused:
            body = f"<p class='error'>支付验证签名失败: {escape(refused)}</p>"
            return html_response(html_page("WeChat Pay", body), 400)
        payer = self.users.get(trade.openid) if trade else None
        details = (
            f"<p>{escape(shown['description'])}</p>"
            f"<p style='font-size:2em'>¥{_yuan(shown['amount']['total'])}</p>"
            f"<p>Merchant {escape(self.mch_id)} · order <code>{escape(out_trade_no)}</code> · "
            f"payer {escape(payer.nickname if payer else '-')}</p>"
        )
        if shown["trade_state"] == "NOTPAY" and shown["trade_type"] == "JSAPI":
            redirect = _redirect_target(request.query)
            action = (
                "<form method='post'>"
                f"<input type='hidden' name='redirect' value='{escape(redirect)}'>"
                f"<button type='submit' style='font-size:1.3em;padding:.6em 2em'>"
                f"确认支付 Pay ¥{_yuan(shown['amount']['total'])}</button></form>"
            )
        else:
            action = f"<p>This trade is <b>{escape(shown['trade_state'])}</b>.</p>"
        return html_response(html_page("WeChat Pay", details + action))

    def _check_payment_parameters(self, query: dict[str, str], trade: dict[str, Any]) -> str:
        names = ("timeStamp", "nonceStr", "package", "paySign")
        if not any(name in query for name in names):
            return ""  # a person opening the page by hand
        if any(not query.get(name) for name in names):
            return "timeStamp, nonceStr, package and paySign are all needed"
        if query["package"] != f"prepay_id={trade['prepay_id']}":
            return "package is not this trade's prepay_id"
        app_id = query.get("appId", self.app_id)
        if app_id != self.app_id:
            return "appId is not the merchant's"
        if query.get("signType", "RSA") != "RSA":
            return "signType must be RSA"
        message = f"{app_id}\n{query['timeStamp']}\n{query['nonceStr']}\n{query['package']}\n"
        if not rsa_verify(self.merchant_public_key, message.encode(), query["paySign"]):
            return "paySign does not verify with the merchant's key"
        return ""

    def cashier_pay(self, request: Request) -> Response:
        out_trade_no = request.params["out_trade_no"]
        form = dict(parse_qsl(request.text))
        try:
            result = self.pay(out_trade_no)
        except BadRequest as exc:
            return html_response(
                html_page("WeChat Pay", f"<p class='error'>{escape(str(exc))}</p>"), 409
            )
        redirect = _redirect_target(form)
        if redirect:
            parts = urlsplit(redirect)
            query = parse_qsl(parts.query, keep_blank_values=True)
            query += [("out_trade_no", out_trade_no), ("result", "paid")]
            return redirect_response(urlunsplit(parts._replace(query=urlencode(query))))
        notices = "".join(
            f"<li>notify to <code>{escape(n['url'])}</code>: "
            + (
                f"answered {n['status']}"
                + (" (received)" if n["delivered"] else " (WeChat would send it again)")
                if n["status"] is not None
                else f"failed: {escape(n['error'] or '')}"
            )
            + "</li>"
            for n in result["notifies"]
        )
        body = (
            f"<p>支付成功 Paid ¥{_yuan(result['trade']['amount']['total'])}, transaction "
            f"<code>{escape(result['trade']['transaction_id'])}</code>.</p>"
            f"<ul>{notices or '<li>no notify URL</li>'}</ul>"
            "<p><a href='/sandbox/pay/v3/'>all trades</a></p>"
        )
        return html_response(html_page("WeChat Pay", body))


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _none(columns: int) -> str:
    return f"<tr><td colspan={columns}>none yet</td></tr>"


def _redirect_target(values: dict[str, str]) -> str:
    redirect = values.get("redirect", "")
    if redirect and urlsplit(redirect).scheme not in ("http", "https"):
        raise BadRequest("redirect must be an absolute http(s) URL")
    return redirect
