"""WeChat Pay API v2 (api.mch.weixin.qq.com, XML, key-signed) as the sandbox plays it.

The merchant's endpoints: ``/pay/unifiedorder`` (JSAPI), ``/pay/orderquery``,
``/pay/closeorder``, ``/secapi/pay/refund``, ``/pay/micropay`` (payment code),
``/secapi/pay/reverse``. Answers are HTTP 200 XML as WeChat's: ``return_code`` FAIL with
``return_msg`` for what cannot be read or verified (no body, not XML, unknown merchant, bad
signature), else ``return_code`` SUCCESS, signed with the API key in the request's sign type,
with ``result_code`` SUCCESS or FAIL and ``err_code``/``err_code_des``. The ``/secapi/``
endpoints want the API client certificate at WeChat (mutual TLS); the sandbox speaks plain HTTP
and takes them without one.

WeChat's side of the trade: pay notifies (XML signed with the API key) and refund notifies
(``req_info`` encrypted with AES-256-ECB under md5(API key)) are POSTed to the notify URL the
request named, or to the one set with ``POST /sandbox/pay/v2/config``; a person pays on the
cashier page ``/sandbox/pay/v2/{out_trade_no}`` (what ``wx.requestPayment`` opens; given the
parameters the platform signed, it checks ``paySign``). Tests pay, send notifies (duplicate,
late, forged, wrong amount ...), settle refunds and mint payment codes through the control
endpoints of ``routes``, which take the same JSON as the v3 side's (``pay_v3``), so one test can
drive either. Each notify is sent once: WeChat's retries are played by asking again.

Signatures, XML and the refund cipher are written here from WeChat's documentation, apart from
the platform's gateway (wechatpy), so that each checks the other.
"""

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

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

# The merchant the sandbox plays (the v3 side's too). Test-only values: they open nothing but
# the sandbox.
SANDBOX_MCH_ID = "1900000109"
API_KEY_PATH = Path(__file__).resolve().parent / "keys" / "v2_api_key.txt"
SANDBOX_V2_API_KEY = API_KEY_PATH.read_text().strip()
# Someone else's: what forged notifies (and answers, forge_responses) use.
OTHER_API_KEY = "0ther0merchant0key0not0yours0000"
OTHER_APP_ID = "wx0000000000000000"
OTHER_MCH_ID = "1900000000"

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"
CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
PREPAY_LIFETIME = 7200  # a prepay id is good for two hours
PAYMENT_CODE_LIFETIME = 60  # the code on the shopper's phone changes every minute
REVERSE_DAYS = 7  # a payment-code trade can be reversed this long
NOTIFY_TIMEOUT = 5.0
MAX_COPIES = 200
MAX_DELAY = 600
KEPT_NOTIFIES = 1000

TRADE_STATE_DESC = {
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "NOTPAY": "订单未支付",
    "CLOSED": "订单已关闭",
    "REVOKED": "已撤销（付款码支付）",
    "USERPAYING": "用户支付中（付款码支付）",
    "PAYERROR": "支付失败",
}
# err_code -> err_code_des, as WeChat's documentation words them.
ERR_CODE_DES = {
    "SYSTEMERROR": "系统错误",
    "BANKERROR": "银行系统异常",
    "PARAM_ERROR": "参数错误",
    "LACK_PARAMS": "缺少参数",
    "APPID_MCHID_NOT_MATCH": "appid和mch_id不匹配",
    "ORDERPAID": "该订单已支付",
    "ORDERCLOSED": "该订单已关闭",
    "ORDERREVERSED": "订单已撤销",
    "ORDERNOTEXIST": "此交易订单号不存在",
    "OUT_TRADE_NO_USED": "商户订单号重复",
    "USERPAYING": "需要用户输入支付密码",
    "AUTHCODEEXPIRE": "二维码已过期，请用户在微信上刷新后再试",
    "AUTH_CODE_INVALID": (
        "授权码检验错误，请扫描微信支付授权码（以10、11、12、13、14、15开头的18位数字）"
    ),
    "NOTENOUGH": "余额不足",
    "TRADE_ERROR": "交易错误",
    "REVERSE_EXPIRE": "订单已经超过撤销时限",
    "ERROR": "业务错误",
    "FREQUENCY_LIMITED": "频率限制",
    "NOTSUPORTCARD": "不支持卡类型",
    "BUYER_MISMATCH": "支付帐号错误",
}
# What a minted payment code does at /pay/micropay (the v3 side's words, and two of v2's own).
PAYMENT_CODE_OUTCOMES = ("paid", "userpaying", "not_enough", "expired", "systemerror")
# How a notify can be bent: signature (signed, or for a refund encrypted, with another key),
# body (changed after signing: a refund's req_info damaged), ciphertext (a refund's req_info
# encrypted with another key), appid / mch_id (another app's or merchant's, properly signed),
# malformed (not XML at all).
FORGERIES = ("signature", "body", "ciphertext", "appid", "mch_id", "malformed")
REFUND_STATUSES = ("SUCCESS", "CHANGE", "REFUNDCLOSE")
# The v3 side's words for the same results, accepted too.
REFUND_STATUS_ALIASES = {"ABNORMAL": "CHANGE", "CLOSED": "REFUNDCLOSE"}
_TRADE_NO = re.compile(r"[0-9A-Za-z_\-|*]{1,32}")
_REFUND_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
_AUTH_CODE = re.compile(r"1[0-5]\d{16}")


# --- the protocol's pieces ---------------------------------------------------------------------


def v2_sign(fields: dict[str, Any], key: str, sign_type: str = MD5) -> str:
    """Non-empty fields but ``sign``, sorted, ``k=v&...&key=KEY``; MD5 or HMAC-SHA256 keyed
    with the API key; upper-case hex."""
    text = "&".join(
        f"{name}={fields[name]}"
        for name in sorted(fields)
        if name != "sign" and str(fields[name]) != ""
    )
    text = f"{text}&key={key}".encode()
    if sign_type == HMAC_SHA256:
        return hmac.new(key.encode(), text, hashlib.sha256).hexdigest().upper()
    return hashlib.md5(text).hexdigest().upper()  # noqa: S324 - WeChat's MD5 sign


def to_xml(fields: dict[str, Any], root: str = "xml") -> bytes:
    parts = [f"<{root}>"]
    for name, value in fields.items():
        if isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            text = str(value).replace("]]>", "]]]]><![CDATA[>")
            parts.append(f"<{name}><![CDATA[{text}]]></{name}>")
    parts.append(f"</{root}>")
    return "".join(parts).encode("utf-8")


def from_xml(body: bytes, root: str = "xml") -> dict[str, str]:
    """The fields of a flat ``<xml>`` message; ``ValueError`` for anything else (DTDs too)."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise ValueError("DTDs are not accepted")
    try:
        element = ET.fromstring(body)  # noqa: S314 - no DTD can reach here
    except ET.ParseError as exc:
        raise ValueError(str(exc)) from exc
    if element.tag != root or element.attrib:
        raise ValueError(f"the root is not <{root}>")
    fields = {}
    for child in element:
        if len(child) or child.attrib or child.tag in fields:
            raise ValueError(f"<{child.tag}> is not a plain field")
        fields[child.tag] = child.text or ""
    return fields


def _aes_key(api_key: str) -> bytes:
    return hashlib.md5(api_key.encode()).hexdigest().encode()  # noqa: S324 - WeChat's choice


def encrypt_req_info(plain: bytes, api_key: str) -> str:
    """A refund notify's ``req_info``: PKCS#7, AES-256-ECB under md5(API key), base64."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(_aes_key(api_key)), modes.ECB()).encryptor()  # noqa: S305
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# --- state ---------------------------------------------------------------------------------------


@dataclass
class _Refund:
    out_refund_no: str
    refund_id: str
    out_trade_no: str
    transaction_id: str
    total_fee: int
    refund_fee: int
    reason: str
    notify_url: str
    created_at: float
    status: str = "PROCESSING"  # SUCCESS, CHANGE, REFUNDCLOSE
    success_time: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "out_refund_no": self.out_refund_no,
            "refund_id": self.refund_id,
            "out_trade_no": self.out_trade_no,
            "total_fee": self.total_fee,
            "refund_fee": self.refund_fee,
            "refund_desc": self.reason,
            "notify_url": self.notify_url,
            "refund_status": self.status,
            "success_time": self.success_time,
        }


@dataclass
class _Trade:
    out_trade_no: str
    trade_type: str  # JSAPI or MICROPAY
    openid: str
    body: str
    total_fee: int
    sign_type: str
    created_at: float
    # What makes a repeated unifiedorder "the same request" (it then gets the same prepay id).
    request: dict[str, str] = field(default_factory=dict)
    notify_url: str = ""
    prepay_id: str = ""
    expires_at: float | None = None
    state: str = "NOTPAY"
    transaction_id: str = ""
    time_end: str = ""
    auth_code: str = ""
    # A USERPAYING payment-code trade: paid after this many order queries (None: only when told).
    paid_after_queries: int | None = None
    reverse_recalls: int = 0
    refunds: list[_Refund] = field(default_factory=list)

    @property
    def paid(self) -> bool:
        return self.state == "SUCCESS"

    @property
    def refunded_fen(self) -> int:
        return sum(r.refund_fee for r in self.refunds if r.status != "REFUNDCLOSE")

    @property
    def trade_state(self) -> str:
        if self.paid and any(r.status != "REFUNDCLOSE" for r in self.refunds):
            return "REFUND"
        return self.state

    def as_dict(self) -> dict[str, Any]:
        return {
            "out_trade_no": self.out_trade_no,
            "trade_type": self.trade_type,
            "trade_state": self.trade_state,
            "openid": self.openid,
            "body": self.body,
            "total_fee": self.total_fee,
            "transaction_id": self.transaction_id,
            "prepay_id": self.prepay_id,
            "notify_url": self.notify_url,
            "time_end": self.time_end,
            "refunded_fee": self.refunded_fen,
            "refunds": [refund.as_dict() for refund in self.refunds],
        }


@dataclass
class _PaymentCode:
    openid: str
    outcome: str
    expires_at: float
    paid_after_queries: int | None
    reverse_recalls: int
    used: bool = False


@dataclass
class _Config:
    # Where notifies go instead of the URL in the request (the merchant platform's setting; or
    # the platform told WeChat a public address the sandbox cannot reach).
    notify_url: str | None = None
    refund_notify_url: str | None = None
    # The next N answers are signed with a key that is not the merchant's.
    forge_responses: int = 0


class _Refused(Exception):
    """A business refusal: ``result_code`` FAIL with this ``err_code``."""

    def __init__(self, err_code: str, des: str | None = None, **more: Any):
        super().__init__(err_code)
        self.err_code = err_code
        self.des = des or ERR_CODE_DES.get(err_code, err_code)
        self.more = more  # fields the refusal carries (reverse's ``recall``)


# --- the service --------------------------------------------------------------------------------


class PayV2(PayControls):
    """WeChat Pay v2 for one merchant and the sandbox's mini-program. State is guarded by the
    sandbox's lock; notifies are sent outside it (the platform may call back while handling)."""

    fault_modes = frozenset({"busy", "errcode", "timeout"})

    def __init__(
        self,
        sandbox: "Sandbox",
        *,
        app_id: str,
        users: tuple[WeChatUser, ...],
        mch_id: str = SANDBOX_MCH_ID,
        api_key: str = SANDBOX_V2_API_KEY,
        notify_url: str | None = None,
    ):
        self.sandbox = sandbox
        self.app_id = app_id
        self.mch_id = mch_id
        self.api_key = api_key
        self.users = {user.openid: user for user in users}
        self.default_notify_url = notify_url
        # Straight to the platform, whatever proxy the environment names.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._stop = threading.Event()
        self.reset()

    def reset(self) -> None:
        with self.sandbox.lock:
            self.config = _Config(notify_url=self.default_notify_url)
            self._trades: dict[str, _Trade] = {}
            self._prepays: dict[str, str] = {}
            self._refunds: dict[str, _Refund] = {}
            self._codes: dict[str, _PaymentCode] = {}
            self._notifies: deque[dict[str, Any]] = deque(maxlen=KEPT_NOTIFIES)
            self._notify_ids = 0
            self._sign_type = MD5  # of the last request: faults answer in it
            # Late notifies still waiting are dropped.
            self._stop.set()
            self._stop = threading.Event()

    def routes(self) -> list[Route]:
        wechat = [
            Route("POST", "/pay/unifiedorder", self.unifiedorder),
            Route("POST", "/pay/orderquery", self.orderquery),
            Route("POST", "/pay/closeorder", self.closeorder),
            Route("POST", "/secapi/pay/refund", self.refund),
            Route("POST", "/pay/micropay", self.micropay),
            Route("POST", "/secapi/pay/reverse", self.reverse),
        ]
        control = [
            ("GET", "/sandbox/pay/v2/", self.index_page),
            ("GET", "/sandbox/pay/v2/trades", self.trades_listing),
            ("GET", "/sandbox/pay/v2/notifies", self.notifies_listing),
            ("GET", "/sandbox/pay/v2/config", self.config_show),
            ("POST", "/sandbox/pay/v2/config", self.config_set),
            ("POST", "/sandbox/pay/v2/pay", self.pay_control),
            ("POST", "/sandbox/pay/v2/notify", self.notify_control),
            ("POST", "/sandbox/pay/v2/refund-result", self.refund_result_control),
            ("POST", "/sandbox/pay/v2/payment-codes", self.payment_code_control),
            ("GET", "/sandbox/pay/v2/payment-code", self.payment_code_page),
            ("POST", "/sandbox/pay/v2/refunds/{out_refund_no}", self.refund_result_form),
            ("GET", "/sandbox/pay/v2/{out_trade_no}", self.cashier_page),
            ("POST", "/sandbox/pay/v2/{out_trade_no}", self.cashier_pay),
        ]
        return wechat + [Route(m, p, h, recorded=False) for m, p, h in control]

    # --- answers --------------------------------------------------------------------------------

    def _xml(self, fields: dict[str, Any]) -> Response:
        return Response(200, to_xml(fields), "text/xml; charset=utf-8")

    def _fail(self, return_msg: str) -> Response:
        return self._xml({"return_code": "FAIL", "return_msg": return_msg})

    def _signed(self, sign_type: str, result: dict[str, Any]) -> Response:
        fields = {
            "return_code": "SUCCESS",
            "return_msg": "OK",
            "appid": self.app_id,
            "mch_id": self.mch_id,
            "nonce_str": secrets.token_hex(16),
            **result,
        }
        with self.sandbox.lock:
            forged = self.config.forge_responses > 0
            if forged:
                self.config.forge_responses -= 1
        fields["sign"] = v2_sign(fields, OTHER_API_KEY if forged else self.api_key, sign_type)
        return self._xml(fields)

    def _ok(self, sign_type: str, **fields: Any) -> Response:
        return self._signed(sign_type, {"result_code": "SUCCESS", **fields})

    def _refused(self, sign_type: str, err_code: str, des: str | None = None, **more: Any):
        return self._signed(
            sign_type,
            {
                "result_code": "FAIL",
                "err_code": err_code,
                "err_code_des": des or ERR_CODE_DES.get(err_code, err_code),
                **more,
            },
        )

    def error_response(self, errcode: int, errmsg: str | None = None) -> Response:
        """A fault's answer: SYSTEMERROR for busy, or the err_code named by ``errmsg``
        (``{"mode": "errcode", "errcode": 1, "errmsg": "BANKERROR"}``)."""
        err_code = errmsg if errmsg in ERR_CODE_DES else "SYSTEMERROR"
        return self._refused(self._sign_type, err_code)

    def expire_credentials(self, request: Request) -> Response:
        # v2 has no access token (no expire_token in fault_modes): never asked.
        return self.error_response(-1)

    # --- reading a request ------------------------------------------------------------------

    def _read(self, request: Request, required: tuple[str, ...]) -> tuple[dict[str, str], str]:
        """The verified fields of a request and its sign type, or a ``Response`` raised as
        ``_Answer`` for what WeChat refuses before the business (order as WeChat checks)."""
        if not request.body.strip():
            raise _Answer(self._fail("post数据为空"))
        try:
            fields = from_xml(request.body)
        except ValueError as exc:
            raise _Answer(self._fail("XML格式错误")) from exc
        if fields.get("mch_id") != self.mch_id:
            raise _Answer(self._fail("商户号mch_id不存在或格式错误"))
        sign_type = fields.get("sign_type") or MD5
        if sign_type not in (MD5, HMAC_SHA256):
            raise _Answer(self._fail("签名类型sign_type错误"))
        if not hmac.compare_digest(
            fields.get("sign", ""), v2_sign(fields, self.api_key, sign_type)
        ):
            raise _Answer(self._fail("签名错误"))
        with self.sandbox.lock:
            self._sign_type = sign_type
        if fields.get("appid") != self.app_id:
            raise _Answer(self._refused(sign_type, "APPID_MCHID_NOT_MATCH"))
        for name in ("nonce_str", *required):
            if not fields.get(name):
                raise _Answer(self._refused(sign_type, "LACK_PARAMS", f"缺少参数{name}"))
        return fields, sign_type

    def _endpoint(self, request: Request, required: tuple[str, ...], act) -> Response:
        try:
            fields, sign_type = self._read(request, required)
        except _Answer as answer:
            return answer.response
        try:
            with self.sandbox.lock:
                return self._ok(sign_type, **act(fields, sign_type))
        except _Refused as refused:
            return self._refused(sign_type, refused.err_code, refused.des, **refused.more)

    def _amount(self, fields: dict[str, str], name: str) -> int:
        value = fields.get(name, "")
        if not value.isdigit() or int(value) <= 0 or value.startswith("0"):
            raise _Refused("PARAM_ERROR", f"{name}参数格式错误")
        return int(value)

    def _trade_no(self, fields: dict[str, str]) -> str:
        number = fields.get("out_trade_no", "")
        if not _TRADE_NO.fullmatch(number):
            raise _Refused("PARAM_ERROR", "out_trade_no参数格式错误")
        return number

    def _find(self, fields: dict[str, str]) -> _Trade:
        """The trade a query names by ``transaction_id`` (first, as WeChat) or ``out_trade_no``."""
        if fields.get("transaction_id"):
            for trade in self._trades.values():
                if trade.transaction_id == fields["transaction_id"]:
                    return trade
            raise _Refused("ORDERNOTEXIST")
        if not fields.get("out_trade_no"):
            raise _Refused("LACK_PARAMS", "缺少参数out_trade_no或transaction_id")
        trade = self._trades.get(fields["out_trade_no"])
        if trade is None:
            raise _Refused("ORDERNOTEXIST")
        return trade

    def _now_text(self) -> str:
        return datetime.fromtimestamp(self.sandbox.now(), CHINA).strftime("%Y%m%d%H%M%S")

    def _settle(self, trade: _Trade) -> None:
        trade.state = "SUCCESS"
        trade.transaction_id = "4200001234" + self._now_text()[:8] + _digits(10)
        trade.time_end = self._now_text()
        trade.paid_after_queries = None

    def _paid_fields(self, trade: _Trade) -> dict[str, Any]:
        return {
            "openid": trade.openid,
            "is_subscribe": "N",
            "trade_type": trade.trade_type,
            "bank_type": "OTHERS",
            "fee_type": "CNY",
            "total_fee": trade.total_fee,
            "cash_fee": trade.total_fee,
            "transaction_id": trade.transaction_id,
            "out_trade_no": trade.out_trade_no,
            "time_end": trade.time_end,
        }

    # --- the merchant's endpoints ------------------------------------------------------------

    def unifiedorder(self, request: Request) -> Response:
        required = ("body", "out_trade_no", "total_fee", "spbill_create_ip", "notify_url")
        return self._endpoint(request, (*required, "trade_type"), self._unifiedorder)

    def _unifiedorder(self, fields: dict[str, str], sign_type: str) -> dict[str, Any]:
        if fields["trade_type"] != "JSAPI":
            raise _Refused("PARAM_ERROR", "沙箱只支持trade_type=JSAPI")
        if not fields.get("openid"):
            raise _Refused("LACK_PARAMS", "trade_type=JSAPI时，openid为必传参数")
        if fields["openid"] not in self.users:
            raise _Refused("PARAM_ERROR", "appid和openid不匹配")
        number = self._trade_no(fields)
        total = self._amount(fields, "total_fee")
        if len(fields["body"].encode()) > 128:
            raise _Refused("PARAM_ERROR", "body参数长度有误")
        notify = urlsplit(fields["notify_url"])
        if notify.scheme not in ("http", "https") or not notify.netloc or notify.query:
            raise _Refused("PARAM_ERROR", "notify_url参数格式错误（须为不带参数的http(s)地址）")
        expires_at = self._expiry(fields.get("time_expire", ""))
        same = {
            name: fields.get(name, "")
            for name in ("body", "total_fee", "openid", "notify_url", "attach", "time_expire")
        }
        trade = self._trades.get(number)
        if trade is not None:
            if trade.paid:
                raise _Refused("ORDERPAID")
            if trade.state in ("CLOSED", "REVOKED"):
                raise _Refused("ORDERCLOSED")
            if trade.trade_type != "JSAPI" or trade.request != same:
                raise _Refused("OUT_TRADE_NO_USED", "商户订单号重复，且与之前的请求参数不一致")
            return {"trade_type": "JSAPI", "prepay_id": trade.prepay_id}
        now = self.sandbox.now()
        trade = _Trade(
            out_trade_no=number,
            trade_type="JSAPI",
            openid=fields["openid"],
            body=fields["body"],
            total_fee=total,
            sign_type=sign_type,
            created_at=now,
            request=same,
            notify_url=fields["notify_url"],
            prepay_id="wx" + self._now_text() + secrets.token_hex(8),
            expires_at=expires_at,
        )
        self._trades[number] = trade
        self._prepays[trade.prepay_id] = number
        return {"trade_type": "JSAPI", "prepay_id": trade.prepay_id}

    def _expiry(self, text: str) -> float | None:
        if not text:
            return None
        try:
            moment = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=CHINA)
        except ValueError as exc:
            raise _Refused("PARAM_ERROR", "time_expire时间格式错误") from exc
        return moment.timestamp()

    def orderquery(self, request: Request) -> Response:
        return self._endpoint(request, (), self._orderquery)

    def _orderquery(self, fields: dict[str, str], sign_type: str) -> dict[str, Any]:
        trade = self._find(fields)
        if trade.state == "USERPAYING" and trade.paid_after_queries is not None:
            trade.paid_after_queries -= 1
            if trade.paid_after_queries <= 0:
                self._settle(trade)
        answer: dict[str, Any] = {
            "out_trade_no": trade.out_trade_no,
            "trade_type": trade.trade_type,
            "total_fee": trade.total_fee,
        }
        if trade.transaction_id:
            answer.update(self._paid_fields(trade))
        answer["trade_state"] = trade.trade_state
        answer["trade_state_desc"] = TRADE_STATE_DESC[trade.trade_state]
        return answer

    def closeorder(self, request: Request) -> Response:
        return self._endpoint(request, ("out_trade_no",), self._closeorder)

    def _closeorder(self, fields: dict[str, str], sign_type: str) -> dict[str, Any]:
        trade = self._find({"out_trade_no": fields["out_trade_no"]})
        if trade.trade_type != "JSAPI":
            raise _Refused("TRADE_ERROR", "付款码支付的订单请调用撤销订单接口")
        if trade.paid:
            raise _Refused("ORDERPAID")
        if trade.state == "CLOSED":
            raise _Refused("ORDERCLOSED")
        trade.state = "CLOSED"
        return {}

    def refund(self, request: Request) -> Response:
        required = ("out_refund_no", "total_fee", "refund_fee")
        return self._endpoint(request, required, self._refund)

    def _refund(self, fields: dict[str, str], sign_type: str) -> dict[str, Any]:
        trade = self._find(fields)
        out_refund_no = fields["out_refund_no"]
        if not _REFUND_NO.fullmatch(out_refund_no):
            raise _Refused("PARAM_ERROR", "out_refund_no参数格式错误")
        total, amount = self._amount(fields, "total_fee"), self._amount(fields, "refund_fee")
        inconsistent = _Refused("PARAM_ERROR", "订单金额或退款金额与之前请求不一致，请核实后再试")
        if total != trade.total_fee:
            raise inconsistent
        refund = self._refunds.get(out_refund_no)
        if refund is not None:
            # The same refund asked again: answered as the first time, refunded once.
            if refund.out_trade_no != trade.out_trade_no or refund.refund_fee != amount:
                raise inconsistent
        else:
            if trade.state == "REVOKED":
                raise _Refused("ERROR", "订单已撤销")
            if not trade.paid:
                raise _Refused("ERROR", "订单未支付")
            if amount > trade.total_fee - trade.refunded_fen:
                raise _Refused("ERROR", "申请退款金额超过订单可退金额")
            refund = _Refund(
                out_refund_no=out_refund_no,
                refund_id="50000" + self._now_text()[:8] + _digits(16),
                out_trade_no=trade.out_trade_no,
                transaction_id=trade.transaction_id,
                total_fee=trade.total_fee,
                refund_fee=amount,
                reason=fields.get("refund_desc", ""),
                notify_url=fields.get("notify_url", ""),
                created_at=self.sandbox.now(),
            )
            self._refunds[out_refund_no] = refund
            trade.refunds.append(refund)
        return {
            "transaction_id": trade.transaction_id,
            "out_trade_no": trade.out_trade_no,
            "out_refund_no": refund.out_refund_no,
            "refund_id": refund.refund_id,
            "refund_fee": refund.refund_fee,
            "total_fee": trade.total_fee,
            "cash_fee": trade.total_fee,
            "cash_refund_fee": refund.refund_fee,
        }

    def micropay(self, request: Request) -> Response:
        required = ("body", "out_trade_no", "total_fee", "spbill_create_ip", "auth_code")
        return self._endpoint(request, required, self._micropay)

    def _micropay(self, fields: dict[str, str], sign_type: str) -> dict[str, Any]:
        number = self._trade_no(fields)
        total = self._amount(fields, "total_fee")
        auth_code = fields["auth_code"]
        trade = self._trades.get(number)
        if trade is not None:
            # The same payment asked again (WeChat's advice after SYSTEMERROR): its state now.
            if trade.trade_type != "MICROPAY" or trade.total_fee != total:
                raise _Refused("OUT_TRADE_NO_USED")
            if trade.auth_code != auth_code and trade.state in ("SUCCESS", "USERPAYING"):
                raise _Refused("ORDERPAID" if trade.paid else "BUYER_MISMATCH")
            return self._micropay_state(trade)
        if not _AUTH_CODE.fullmatch(auth_code):
            raise _Refused("AUTH_CODE_INVALID")
        code = self._codes.get(auth_code)
        if code is None:
            raise _Refused("AUTH_CODE_INVALID")
        if code.used or self.sandbox.now() >= code.expires_at:
            raise _Refused("AUTHCODEEXPIRE")
        code.used = True
        if code.outcome in ("expired", "not_enough"):
            raise _Refused("AUTHCODEEXPIRE" if code.outcome == "expired" else "NOTENOUGH")
        trade = _Trade(
            out_trade_no=number,
            trade_type="MICROPAY",
            openid=code.openid,
            body=fields["body"],
            total_fee=total,
            sign_type=MD5,
            created_at=self.sandbox.now(),
            auth_code=auth_code,
            state="USERPAYING",
            reverse_recalls=code.reverse_recalls,
        )
        self._trades[number] = trade
        if code.outcome in ("paid", "systemerror"):
            self._settle(trade)
        else:
            trade.paid_after_queries = code.paid_after_queries
        if code.outcome == "systemerror":
            # Paid, but the answer says the outcome is unknown: the caller must query.
            raise _Refused("SYSTEMERROR")
        return self._micropay_state(trade)

    def _micropay_state(self, trade: _Trade) -> dict[str, Any]:
        if trade.paid:
            return self._paid_fields(trade)
        if trade.state == "USERPAYING":
            raise _Refused("USERPAYING")
        raise _Refused("ORDERREVERSED" if trade.state == "REVOKED" else "ORDERCLOSED")

    def reverse(self, request: Request) -> Response:
        return self._endpoint(request, (), self._reverse)

    def _reverse(self, fields: dict[str, str], sign_type: str) -> dict[str, Any]:
        trade = self._find(fields)
        if trade.trade_type != "MICROPAY":
            raise _Refused("TRADE_ERROR", "只有付款码支付的订单可以撤销")
        if self.sandbox.now() > trade.created_at + REVERSE_DAYS * 86400:
            raise _Refused("REVERSE_EXPIRE")
        if trade.reverse_recalls > 0:
            trade.reverse_recalls -= 1
            raise _Refused("SYSTEMERROR", recall="Y")
        if trade.refunds:
            raise _Refused("TRADE_ERROR", "订单已发生退款，不能撤销")
        # Paid or not, the shopper has her money back (or never paid).
        trade.state = "REVOKED"
        trade.paid_after_queries = None
        return {"recall": "N"}

    # --- paying and notifying -------------------------------------------------------------------

    def pay(self, out_trade_no: Any, *, notify: bool = True) -> dict[str, Any]:
        """The shopper pays (the cashier's button, or a test): a JSAPI trade not paid and not
        past its ``time_expire``, or a payment-code trade waiting for her password (USERPAYING).
        A JSAPI trade's notify goes out; payment codes have none (the till asks). Returns the
        trade and the notifies sent."""
        with self.sandbox.lock:
            trade = self._trades.get(out_trade_no) if isinstance(out_trade_no, str) else None
            if trade is None:
                raise BadRequest(f"no trade {out_trade_no!r} in the sandbox")
            if trade.state not in ("NOTPAY", "USERPAYING"):
                raise BadRequest(f"trade {out_trade_no} is {trade.trade_state}, not payable")
            if trade.expires_at is not None and self.sandbox.now() >= trade.expires_at:
                raise BadRequest(f"trade {out_trade_no} expired (time_expire), not payable")
            self._settle(trade)
            shown = trade.as_dict()
            notify = notify and trade.trade_type == "JSAPI"
        sent = self.send_notify({"out_trade_no": out_trade_no}) if notify else []
        return {"trade": shown, "notifies": sent}

    def send_notify(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        """Send the notify of a trade (``out_trade_no``) or refund (``out_refund_no``) as it
        stands, optionally bent: ``copies`` identical ones at once, ``delay_seconds`` later,
        ``forge`` (see ``FORGERIES``), ``amount_fen`` (a wrong amount, properly signed; for a
        trade the sandbox does not know, the amount of a made-up one), ``notify_url``
        (elsewhere). ``deliver: false`` returns the requests unsent."""
        copies = spec.get("copies", 1)
        if not _positive_int(copies) or copies > MAX_COPIES:
            raise BadRequest(f"copies must be an integer in [1, {MAX_COPIES}]")
        forge = spec.get("forge")
        if forge is not None and forge not in FORGERIES:
            raise BadRequest(f"forge must be one of {list(FORGERIES)}")
        delay = spec.get("delay_seconds", 0)
        if not isinstance(delay, int | float) or isinstance(delay, bool):
            raise BadRequest("delay_seconds must be a number")
        if not 0 <= delay <= MAX_DELAY:
            raise BadRequest(f"delay_seconds must be in [0, {MAX_DELAY}]")
        amount_fen = spec.get("amount_fen")
        if amount_fen is not None and not _positive_int(amount_fen):
            raise BadRequest("amount_fen must be a positive integer")
        if spec.get("out_refund_no") is not None:
            notify = self._refund_notify(spec["out_refund_no"], forge, amount_fen)
        else:
            notify = self._pay_notify(spec.get("out_trade_no"), forge, amount_fen)
        url = spec.get("notify_url") or notify["url"]
        if not url or urlsplit(url).scheme not in ("http", "https"):
            raise BadRequest("no http(s) notify URL: the request gave none, the config sets none")
        notify["url"] = url
        if spec.get("deliver", True) is False:
            return [notify] * copies
        if delay:
            stop = self._stop

            def later() -> None:
                if not stop.wait(delay):
                    self._deliver_copies(notify, copies)

            threading.Thread(target=later, name="sandbox-pay-v2-notify", daemon=True).start()
            return []
        return self._deliver_copies(notify, copies)

    def _pay_notify(self, out_trade_no: Any, forge: str | None, amount_fen: int | None) -> dict:
        if forge == "ciphertext":
            raise BadRequest("a pay notify is signed, not encrypted: forge signature or body")
        with self.sandbox.lock:
            trade = self._trades.get(out_trade_no) if isinstance(out_trade_no, str) else None
            if trade is None:
                if amount_fen is None or not isinstance(out_trade_no, str):
                    raise BadRequest(
                        f"no trade {out_trade_no!r} in the sandbox (give amount_fen to make one up)"
                    )
                # A payment WeChat never had: the platform must not find an order for it.
                trade = _Trade(
                    out_trade_no=out_trade_no,
                    trade_type="JSAPI",
                    openid=next(iter(self.users)),
                    body="",
                    total_fee=amount_fen,
                    sign_type=self._sign_type,
                    created_at=self.sandbox.now(),
                )
                self._settle(trade)
            elif not trade.transaction_id:
                if forge is None:
                    raise BadRequest(f"trade {out_trade_no} was never paid")
                # A forger claims an unpaid trade was paid.
                trade = replace(trade, refunds=[])
                self._settle(trade)
            fields: dict[str, Any] = {
                "return_code": "SUCCESS",
                "result_code": "SUCCESS",
                "appid": OTHER_APP_ID if forge == "appid" else self.app_id,
                "mch_id": OTHER_MCH_ID if forge == "mch_id" else self.mch_id,
                "nonce_str": secrets.token_hex(16),
                **self._paid_fields(trade),
            }
            url = self.config.notify_url or trade.notify_url
        if trade.sign_type == HMAC_SHA256:
            fields["sign_type"] = HMAC_SHA256
        if amount_fen is not None:
            fields.update(total_fee=amount_fen, cash_fee=amount_fen)
        key = OTHER_API_KEY if forge == "signature" else self.api_key
        fields["sign"] = v2_sign(fields, key, trade.sign_type)
        if forge == "body":
            fields["total_fee"] = fields["cash_fee"] = int(fields["total_fee"]) * 10
        return self._notify_dict(
            url, fields, forge, amount_fen, "TRANSACTION.SUCCESS", trade.out_trade_no, None
        )

    def _refund_notify(self, out_refund_no: Any, forge: str | None, amount_fen: int | None) -> dict:
        with self.sandbox.lock:
            refund = self._refunds.get(out_refund_no) if isinstance(out_refund_no, str) else None
            if refund is None:
                raise BadRequest(f"no refund {out_refund_no!r} in the sandbox")
            if refund.status == "PROCESSING":
                raise BadRequest(f"refund {out_refund_no} is still PROCESSING")
            amount = amount_fen if amount_fen is not None else refund.refund_fee
            info: dict[str, Any] = {
                "transaction_id": refund.transaction_id,
                "out_trade_no": refund.out_trade_no,
                "refund_id": refund.refund_id,
                "out_refund_no": refund.out_refund_no,
                "total_fee": refund.total_fee,
                "settlement_total_fee": refund.total_fee,
                "refund_fee": amount,
                "settlement_refund_fee": amount,
                "refund_status": refund.status,
                "success_time": refund.success_time,
                "refund_recv_accout": "支付用户零钱",
                "refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS",
                "refund_request_source": "API",
            }
            url = self.config.refund_notify_url or refund.notify_url
            status = refund.status
        if not info["success_time"]:
            del info["success_time"]
        key = OTHER_API_KEY if forge in ("signature", "ciphertext") else self.api_key
        req_info = encrypt_req_info(to_xml(info, root="root"), key)
        if forge == "body":
            # One ciphertext block changed: it no longer decrypts to what WeChat encrypted.
            raw = bytearray(base64.b64decode(req_info))
            raw[0] ^= 0xFF
            req_info = base64.b64encode(bytes(raw)).decode()
        fields = {
            "return_code": "SUCCESS",
            "appid": OTHER_APP_ID if forge == "appid" else self.app_id,
            "mch_id": OTHER_MCH_ID if forge == "mch_id" else self.mch_id,
            "nonce_str": secrets.token_hex(16),
            "req_info": req_info,
        }
        return self._notify_dict(
            url, fields, forge, amount_fen, f"REFUND.{status}", refund.out_trade_no, out_refund_no
        )

    def _notify_dict(
        self,
        url: str | None,
        fields: dict[str, Any],
        forge: str | None,
        amount_fen: int | None,
        event_type: str,
        out_trade_no: str,
        out_refund_no: str | None,
    ) -> dict[str, Any]:
        body = to_xml(fields)
        if forge == "malformed":
            body = body[: len(body) // 2]
        variant = [forge, f"amount {amount_fen}" if amount_fen is not None else None]
        return {
            "url": url,
            "headers": {"Content-Type": "text/xml; charset=utf-8"},
            "body": body.decode("utf-8"),
            "event_type": event_type,
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "variant": ", ".join(part for part in variant if part) or None,
        }

    def _deliver_copies(self, notify: dict[str, Any], copies: int) -> list[dict[str, Any]]:
        if copies == 1:
            return [self._deliver(notify)]
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

    def _deliver(self, notify: dict[str, Any]) -> dict[str, Any]:
        """POST one notify as WeChat does and keep what the platform answered: ``delivered``
        when it said HTTP 200 with ``return_code`` SUCCESS (anything else WeChat sends again)."""
        # The URL's scheme (http or https) was checked in send_notify.
        request = urllib.request.Request(  # noqa: S310
            notify["url"],
            data=notify["body"].encode("utf-8"),
            headers={**notify["headers"], "User-Agent": "Mozilla/4.0"},
            method="POST",
        )
        status, answer, error = None, None, None
        started = time.monotonic()
        try:
            with self._opener.open(request, timeout=NOTIFY_TIMEOUT) as response:
                status, answer = response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            error = str(getattr(exc, "reason", exc))
        try:
            said = from_xml(answer.encode()).get("return_code") if answer else None
        except ValueError:
            said = None
        with self.sandbox.lock:
            self._notify_ids += 1
            record = {
                "id": self._notify_ids,
                "time": datetime.fromtimestamp(self.sandbox.now(), CHINA).isoformat(),
                "event_type": notify["event_type"],
                "out_trade_no": notify["out_trade_no"],
                "out_refund_no": notify["out_refund_no"],
                "url": notify["url"],
                "variant": notify["variant"],
                "body": notify["body"],
                "status": status,
                "answer": answer,
                "error": error,
                "delivered": status == 200 and said == "SUCCESS",
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            }
            self._notifies.append(record)
        return dict(record)

    def settle_refund(self, out_refund_no: Any, status: Any, *, notify: bool = True) -> dict:
        """WeChat finishes a refund: SUCCESS (the money is back), CHANGE (it could not go back:
        abnormal) or REFUNDCLOSE (the v3 words ABNORMAL and CLOSED mean the same). A closed
        refund's amount can be refunded again. The notify goes out when the request or the
        config gave a URL."""
        status = REFUND_STATUS_ALIASES.get(status, status)
        if status not in REFUND_STATUSES:
            raise BadRequest(f"status must be one of {list(REFUND_STATUSES)}")
        with self.sandbox.lock:
            refund = self._refunds.get(out_refund_no) if isinstance(out_refund_no, str) else None
            if refund is None:
                raise BadRequest(f"no refund {out_refund_no!r} in the sandbox")
            if refund.status != "PROCESSING":
                raise BadRequest(f"refund {out_refund_no} is already {refund.status}")
            refund.status = status
            if status == "SUCCESS":
                moment = datetime.fromtimestamp(self.sandbox.now(), CHINA)
                refund.success_time = moment.strftime("%Y-%m-%d %H:%M:%S")
            shown = refund.as_dict()
            url = self.config.refund_notify_url or refund.notify_url
        sent = self.send_notify({"out_refund_no": out_refund_no}) if notify and url else []
        return {"refund": shown, "notifies": sent}

    def mint_payment_code(self, spec: dict[str, Any]) -> str:
        """The 18-digit code the shopper's WeChat shows at the till (good for a minute, once),
        and how her payment will go: ``paid`` at once; ``userpaying`` (asks for her password:
        paid after ``paid_after_queries`` order queries, or by ``POST /sandbox/pay/v2/pay``, or
        never); ``not_enough`` (NOTENOUGH), ``expired`` (AUTHCODEEXPIRE); ``systemerror`` (paid,
        but the answer is SYSTEMERROR: the till must ask). The first ``reverse_recalls``
        reverses of its trade answer SYSTEMERROR with ``recall=Y``."""
        openid = spec.get("openid", next(iter(self.users)))
        if openid not in self.users:
            raise BadRequest(f"no WeChat user with openid {openid!r} in the sandbox")
        outcome = spec.get("outcome", "paid")
        if outcome not in PAYMENT_CODE_OUTCOMES:
            raise BadRequest(f"outcome must be one of {list(PAYMENT_CODE_OUTCOMES)}")
        after = spec.get("paid_after_queries")
        if after is not None and (outcome != "userpaying" or not _positive_int(after)):
            raise BadRequest("paid_after_queries is a positive integer, for userpaying codes")
        recalls = spec.get("reverse_recalls", 0)
        if not isinstance(recalls, int) or isinstance(recalls, bool) or recalls < 0:
            raise BadRequest("reverse_recalls must be a non-negative integer")
        with self.sandbox.lock:
            now = self.sandbox.now()
            for value, code in list(self._codes.items()):
                if now >= code.expires_at + 3600:
                    del self._codes[value]
            value = "13" + _digits(16)
            self._codes[value] = _PaymentCode(
                openid=openid,
                outcome=outcome,
                expires_at=now + PAYMENT_CODE_LIFETIME,
                paid_after_queries=after,
                reverse_recalls=recalls,
            )
        return value

    # --- control endpoints -----------------------------------------------------------------------

    def trades_listing(self, request: Request) -> Response:
        with self.sandbox.lock:
            trades = [trade.as_dict() for trade in self._trades.values()]
            refunds = [refund.as_dict() for refund in self._refunds.values()]
        return json_response({"trades": trades, "refunds": refunds})

    def notifies_listing(self, request: Request) -> Response:
        with self.sandbox.lock:
            return json_response({"notifies": [dict(record) for record in self._notifies]})

    def config_show(self, request: Request) -> Response:
        with self.sandbox.lock:
            return json_response(self._config_dict())

    def config_set(self, request: Request) -> Response:
        """``notify_url`` / ``refund_notify_url``: where notifies go instead of the URL in the
        request (null: the request's); ``forge_responses``: sign the next N answers with a key
        that is not the merchant's."""
        body = request.control_json()
        unknown = set(body) - {"notify_url", "refund_notify_url", "forge_responses"}
        if unknown:
            raise BadRequest(f"unknown settings {sorted(unknown)}")
        for name in ("notify_url", "refund_notify_url"):
            value = body.get(name)
            if value is not None and (
                not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https")
            ):
                raise BadRequest(f"{name} must be an http(s) URL or null")
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
            "mch_id": self.mch_id,
            "appid": self.app_id,
            "api_key_file": "wechat/sandbox/keys/v2_api_key.txt",
            "notify_url": self.config.notify_url,
            "refund_notify_url": self.config.refund_notify_url,
            "forge_responses": self.config.forge_responses,
        }

    def pay_control(self, request: Request) -> Response:
        body = request.control_json()
        notify = body.get("notify", True)
        if not isinstance(notify, bool):
            raise BadRequest("notify must be a boolean")
        return json_response(self.pay(body.get("out_trade_no"), notify=notify))

    # --- pages: the cashier, the shopper's payment code, the merchant's view --------------------

    def index_page(self, request: Request) -> Response:
        with self.sandbox.lock:
            trades = [trade.as_dict() for trade in self._trades.values()]
            refunds = [refund.as_dict() for refund in self._refunds.values()]
            notifies = list(self._notifies)[-50:]
            config = self._config_dict()
        trade_rows = "".join(
            f"<tr><td><a href='/sandbox/pay/v2/{escape(t['out_trade_no'])}'>"
            f"{escape(t['out_trade_no'])}</a></td><td>{escape(t['trade_type'])}</td>"
            f"<td>{_yuan(t['total_fee'])}</td><td>{escape(t['trade_state'])}</td>"
            f"<td>{escape(t['transaction_id'])}</td></tr>"
            for t in reversed(trades)
        )
        refund_rows = "".join(
            f"<tr><td>{escape(r['out_refund_no'])}</td><td>{escape(r['out_trade_no'])}</td>"
            f"<td>{_yuan(r['refund_fee'])}</td><td>{escape(r['refund_status'])}</td><td>"
            + (
                "".join(
                    f"<form method='post' action='/sandbox/pay/v2/refunds/"
                    f"{escape(r['out_refund_no'])}' style='display:inline'>"
                    f"<button name='status' value='{status}'>{status}</button></form>"
                    for status in REFUND_STATUSES
                )
                if r["refund_status"] == "PROCESSING"
                else ""
            )
            + "</td></tr>"
            for r in reversed(refunds)
        )
        notify_rows = "".join(
            f"<tr><td>{n['id']}</td><td>{escape(n['event_type'])}</td>"
            f"<td>{escape(n['out_refund_no'] or n['out_trade_no'])}</td>"
            f"<td>{escape(n['url'])}</td><td>{escape(n['variant'] or '')}</td>"
            f"<td>{n['status'] if n['status'] is not None else escape(n['error'] or '')}"
            f"{' (received)' if n['delivered'] else ''}</td></tr>"
            for n in reversed(notifies)
        )
        codes = "".join(
            f"<li>{escape(user.nickname)}: "
            + " · ".join(
                f"<a href='/sandbox/pay/v2/payment-code?"
                f"{escape(urlencode({'openid': user.openid, 'outcome': outcome}))}'>{outcome}</a>"
                for outcome in ("paid", "userpaying", "not_enough")
            )
            + "</li>"
            for user in self.users.values()
        )
        body = (
            f"<p>Merchant <code>{escape(self.mch_id)}</code>, app <code>{escape(self.app_id)}"
            "</code>, API key in <code>wechat/sandbox/keys/v2_api_key.txt</code> (test only); "
            f"notifies to <code>{escape(config['notify_url'] or 'each request’s notify_url')}"
            "</code>. <a href='/sandbox/'>sandbox</a> · <a href='/sandbox/pay/v2/trades'>"
            "trades as JSON</a> · <a href='/sandbox/pay/v2/notifies'>notifies as JSON</a></p>"
            f"<h2>Payment codes (what the shopper shows at the till)</h2><ul>{codes}</ul>"
            "<h2>Trades</h2><table><tr><th>out_trade_no</th><th>type</th><th>amount</th>"
            f"<th>state</th><th>transaction_id</th></tr>{trade_rows or _none(5)}</table>"
            "<h2>Refunds</h2><table><tr><th>out_refund_no</th><th>out_trade_no</th>"
            f"<th>amount</th><th>status</th><th>settle</th></tr>{refund_rows or _none(5)}</table>"
            "<h2>Notifies (newest first)</h2><table><tr><th>#</th><th>event</th>"
            "<th>number</th><th>to</th><th>variant</th><th>answer</th></tr>"
            f"{notify_rows or _none(6)}</table>"
        )
        return html_response(html_page("WeChat Pay v2 sandbox", body))

    def refund_result_form(self, request: Request) -> Response:
        status = dict(parse_qsl(request.text)).get("status")
        self.settle_refund(request.params["out_refund_no"], status)
        return redirect_response("/sandbox/pay/v2/")

    def payment_code_page(self, request: Request) -> Response:
        openid = request.query.get("openid") or next(iter(self.users))
        outcome = request.query.get("outcome", "paid")
        code = self.mint_payment_code({"openid": openid, "outcome": outcome})
        body = (
            f"<p>{escape(self.users[openid].nickname)}'s payment code ({escape(outcome)}), good "
            f"once within {PAYMENT_CODE_LIFETIME} s:</p>"
            f"<p style='font-size:2em;letter-spacing:.1em'><code>{escape(code)}</code></p>"
            "<p><a href='/sandbox/pay/v2/'>all trades</a></p>"
        )
        return html_response(html_page("WeChat payment code", body))

    def cashier_page(self, request: Request) -> Response:
        """What WeChat shows the shopper for ``wx.requestPayment``. With the parameters the
        platform signed (``appId``, ``timeStamp``, ``nonceStr``, ``package``, ``signType``,
        ``paySign``) in the query, they are checked as WeChat checks them."""
        out_trade_no = request.params["out_trade_no"]
        with self.sandbox.lock:
            trade = self._trades.get(out_trade_no)
            shown = trade.as_dict() if trade else None
        if shown is None:
            body = f"<p class='error'>No trade {escape(out_trade_no)} in the sandbox.</p>"
            return html_response(html_page("WeChat Pay", body), 404)
        refused = self._check_payment_parameters(request.query, shown)
        if refused:
            body = f"<p class='error'>支付验证签名失败: {escape(refused)}</p>"
            return html_response(html_page("WeChat Pay", body), 400)
        payer = self.users.get(shown["openid"])
        details = (
            f"<p>{escape(shown['body'])}</p>"
            f"<p style='font-size:2em'>¥{_yuan(shown['total_fee'])}</p>"
            f"<p>Merchant {escape(self.mch_id)} · order <code>{escape(out_trade_no)}</code> · "
            f"payer {escape(payer.nickname if payer else shown['openid'])}</p>"
        )
        if shown["trade_state"] == "NOTPAY" and shown["trade_type"] == "JSAPI":
            redirect = request.query.get("redirect", "")
            _check_redirect(redirect)
            action = (
                "<form method='post'>"
                f"<input type='hidden' name='redirect' value='{escape(redirect)}'>"
                "<button type='submit' style='font-size:1.3em;padding:.6em 2em'>"
                f"确认支付 Pay ¥{_yuan(shown['total_fee'])}</button></form>"
            )
        else:
            action = f"<p>This trade is <b>{escape(shown['trade_state'])}</b>.</p>"
        return html_response(html_page("WeChat Pay", details + action))

    def _check_payment_parameters(self, query: dict[str, str], trade: dict[str, Any]) -> str:
        names = ("timeStamp", "nonceStr", "package", "signType", "paySign")
        if not any(name in query for name in names):
            return ""  # a person opening the page by hand
        if any(not query.get(name) for name in names):
            return "timeStamp, nonceStr, package, signType and paySign are all needed"
        if query["package"] != f"prepay_id={trade['prepay_id']}":
            return "package is not this trade's prepay_id"
        with self.sandbox.lock:
            created_at = self._trades[trade["out_trade_no"]].created_at
            if self.sandbox.now() >= created_at + PREPAY_LIFETIME:
                return "the prepay_id expired (two hours)"
        app_id = query.get("appId", self.app_id)
        if app_id != self.app_id:
            return "appId is not the merchant's"
        if query["signType"] not in (MD5, HMAC_SHA256):
            return "signType must be MD5 or HMAC-SHA256"
        signed = {name: query[name] for name in names[:-1]}
        signed["appId"] = app_id
        expected = v2_sign(signed, self.api_key, query["signType"])
        if not hmac.compare_digest(query["paySign"], expected):
            return "paySign does not verify with the merchant's API key"
        return ""

    def cashier_pay(self, request: Request) -> Response:
        out_trade_no = request.params["out_trade_no"]
        form = dict(parse_qsl(request.text))
        redirect = form.get("redirect", "")
        _check_redirect(redirect)
        try:
            result = self.pay(out_trade_no)
        except BadRequest as exc:
            return html_response(
                html_page("WeChat Pay", f"<p class='error'>{escape(str(exc))}</p>"), 409
            )
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
            f"<p>支付成功 Paid ¥{_yuan(result['trade']['total_fee'])}, transaction "
            f"<code>{escape(result['trade']['transaction_id'])}</code>.</p>"
            f"<ul>{notices or '<li>no notify URL</li>'}</ul>"
            "<p><a href='/sandbox/pay/v2/'>all trades</a></p>"
        )
        return html_response(html_page("WeChat Pay", body))


def platform_settings(base_url: str) -> dict[str, str]:
    """The platform's settings that point its v2 gateway at this sandbox (tests, the demo)."""
    return {
        "WECHAT_PAY_MCH_ID": SANDBOX_MCH_ID,
        "WECHAT_PAY_API_BASE_URL": base_url,
        "WECHAT_PAY_V2_API_KEY": SANDBOX_V2_API_KEY,
        "WECHAT_PAY_V2_SIGN_TYPE": MD5,
    }


class _Answer(Exception):
    """What WeChat answers before the business (``return_code`` FAIL and the like)."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _none(columns: int) -> str:
    return f"<tr><td colspan={columns}>none yet</td></tr>"


def _check_redirect(redirect: str) -> None:
    if redirect and urlsplit(redirect).scheme not in ("http", "https"):
        raise BadRequest("redirect must be an absolute http(s) URL")
