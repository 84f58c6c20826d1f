"""WeChat Pay API v2 (XML, key-signed) behind ``base.Gateway``, over wechatpy's ``WeChatPay``.

- Every request and every answer is signed with the merchant's API key (``WECHAT_PAY_V2_API_KEY``),
  MD5 by default or HMAC-SHA256 (``WECHAT_PAY_V2_SIGN_TYPE``); the request says which
  (``sign_type``) and the answer is signed the same way. wechatpy signs the requests but checks
  nothing it receives: here every answer with ``return_code`` SUCCESS must carry a valid
  signature, or the call fails (``INVALID_SIGNATURE``).
- Refund and reverse (``/secapi/...``) need the merchant's API client certificate at WeChat
  (mutual TLS: ``WECHAT_PAY_V2_CERT_PATH``, ``WECHAT_PAY_V2_CERT_KEY_PATH``, the
  ``apiclient_cert.pem``/``apiclient_key.pem`` pair). The sandbox speaks plain HTTP and does not
  ask for it, so the tests run without one.
- Pay notifies are signed like answers; refund notifies are not signed but carry ``req_info``,
  encrypted with AES-256-ECB under the lowercase hex MD5 of the API key.
- Errors: WeChat's ``err_code`` (``ORDERPAID``, ``ORDERNOTEXIST``, ``AUTHCODEEXPIRE`` ...) is the
  ``WeChatPayError`` code; ``return_code`` FAIL (bad signature, malformed request) is ``FAIL``
  with WeChat's ``return_msg``; and the gateway's own: ``TIMEOUT``, ``NETWORK``, ``HTTP_ERROR``,
  ``INVALID_RESPONSE``, ``INVALID_SIGNATURE``, ``RECALL`` (reverse still asks to be repeated).
- wechatpy looks the machine's address up in DNS when no client IP is given: every call that
  takes one is given one.
"""

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from xml.parsers.expat import ExpatError

import requests
import xmltodict
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from wechatpy.exceptions import WeChatPayException
from wechatpy.pay import WeChatPay
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac

from wechat.pay.base import (
    Notice,
    NotifyAnswer,
    NotifyRejected,
    RefundState,
    Trade,
    TradeState,
    WeChatPayError,
    notify_url,
)

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"
SIGN_TYPES = (MD5, HMAC_SHA256)

# Codes after which the same call may succeed later (WeChat's advice for each endpoint).
RETRYABLE = frozenset(
    {"SYSTEMERROR", "BANKERROR", "FREQUENCY_LIMITED", "INVALID_REQ_TOO_MUCH", "BIZERR_NEED_RETRY"}
)
# A refund refused for the merchant's balance goes through once the balance is topped up.
REFUND_RETRYABLE = RETRYABLE | {"NOTENOUGH"}
# A reverse answered ``recall=Y`` is repeated at once, this many times in all.
REVERSE_ATTEMPTS = 3
# v2 refund states, as v3 (and ``RefundState``) words.
REFUND_STATES = {
    "SUCCESS": "SUCCESS",
    "PROCESSING": "PROCESSING",
    "CHANGE": "ABNORMAL",
    "REFUNDCLOSE": "CLOSED",
}
BODY_MAX_BYTES = 128  # unifiedorder / micropay ``body``
REFUND_DESC_MAX = 80


# --- the protocol's pieces (the sandbox has its own, written apart, to check these against) ------


def parse_xml(body: bytes | str, *, root: str = "xml") -> dict[str, str]:
    """A v2 message: one ``<xml>`` (or ``root``) element holding text fields, nothing else.
    ``ValueError`` otherwise. Entity declarations are refused (xmltodict's default), so an
    XXE or billion-laughs notify goes no further than here."""
    try:
        parsed = xmltodict.parse(body, disable_entities=True)
    except (ExpatError, ValueError) as exc:
        raise ValueError(f"not XML: {exc}") from exc
    message = parsed.get(root) if isinstance(parsed, dict) else None
    if not isinstance(message, dict):
        raise ValueError(f"not an <{root}> message")
    fields = {}
    for name, value in message.items():
        if name.startswith(("@", "#")):
            raise ValueError(f"unexpected attribute or text {name!r}")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} is not plain text")
        fields[name] = value
    return fields


def sign(fields: Mapping[str, Any], key: str, sign_type: str = MD5) -> str:
    """WeChat's v2 signature: non-empty fields but ``sign`` sorted by name, ``k=v`` joined by
    ``&``, ``&key=KEY`` appended, MD5 or HMAC-SHA256 (keyed with the API key), upper-case hex."""
    unsigned = {name: value for name, value in fields.items() if name != "sign"}
    if sign_type == HMAC_SHA256:
        return calculate_signature_hmac(unsigned, key)
    return calculate_signature(unsigned, key)


def signature_valid(fields: Mapping[str, str], key: str, sign_type: str = MD5) -> bool:
    given = fields.get("sign") or ""
    return sign_type in SIGN_TYPES and hmac.compare_digest(given, sign(fields, key, sign_type))


def refund_key(api_key: str) -> bytes:
    """The AES-256 key of a refund notify's ``req_info``: md5(API key) as 32 lowercase hex."""
    return hashlib.md5(api_key.encode("utf-8")).hexdigest().encode("ascii")  # noqa: S324


def decrypt_req_info(req_info: str, api_key: str) -> bytes:
    """base64 -> AES-256-ECB (WeChat's choice, not ours) -> PKCS#7; ``ValueError`` when any step
    fails, which a wrong key does (bad padding, or garbage that is not the expected XML)."""
    data = base64.b64decode(req_info, validate=True)
    if not data or len(data) % 16:
        raise ValueError("req_info is not whole AES blocks")
    decryptor = Cipher(algorithms.AES(refund_key(api_key)), modes.ECB()).decryptor()  # noqa: S305
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _answer(return_code: str, return_msg: str) -> NotifyAnswer:
    body = (
        f"<xml><return_code>{_cdata(return_code)}</return_code>"
        f"<return_msg>{_cdata(return_msg)}</return_msg></xml>"
    )
    return NotifyAnswer(200, "text/xml; charset=utf-8", body.encode("utf-8"))


def _truncate_bytes(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _ip(client_ip: str) -> str:
    # Without one wechatpy looks the machine's address up through WeChat's host name (DNS).
    if not client_ip:
        raise ValueError("client_ip is required (spbill_create_ip)")
    return client_ip


def _int(fields: Mapping[str, str], name: str) -> int | None:
    value = fields.get(name)
    return int(value) if value not in (None, "") else None


# --- configuration and the wechatpy client -------------------------------------------------------


@dataclass(frozen=True)
class V2Config:
    app_id: str
    mch_id: str
    api_key: str
    sign_type: str
    base_url: str
    pay_notify_url: str
    refund_notify_url: str
    timeout: float
    cert_path: str = ""
    cert_key_path: str = ""

    @classmethod
    def from_settings(cls) -> "V2Config":
        return cls(
            app_id=settings.WECHAT_APP_ID,
            mch_id=settings.WECHAT_PAY_MCH_ID,
            api_key=settings.WECHAT_PAY_V2_API_KEY,
            sign_type=settings.WECHAT_PAY_V2_SIGN_TYPE,
            base_url=settings.WECHAT_PAY_API_BASE_URL,
            pay_notify_url=notify_url("v2"),
            refund_notify_url=notify_url("v2", "refund"),
            timeout=settings.WECHAT_TIMEOUT_SECONDS,
            cert_path=settings.WECHAT_PAY_V2_CERT_PATH,
            cert_key_path=settings.WECHAT_PAY_V2_CERT_KEY_PATH,
        )

    def check(self) -> None:
        missing = [
            name
            for name, value in (
                ("WECHAT_APP_ID", self.app_id),
                ("WECHAT_PAY_MCH_ID", self.mch_id),
                ("WECHAT_PAY_V2_API_KEY", self.api_key),
            )
            if not value
        ]
        if missing:
            raise ImproperlyConfigured(f"WeChat Pay v2 needs {', '.join(missing)}")
        if self.sign_type not in SIGN_TYPES:
            raise ImproperlyConfigured(f"WECHAT_PAY_V2_SIGN_TYPE must be one of {SIGN_TYPES}")
        for url in (self.pay_notify_url, self.refund_notify_url):
            if not url.startswith(("http://", "https://")):
                raise ImproperlyConfigured(
                    f"WeChat cannot reach the notify URL {url!r}: set WECHAT_PAY_NOTIFY_BASE_URL"
                )
        if bool(self.cert_path) != bool(self.cert_key_path):
            raise ImproperlyConfigured(
                "WECHAT_PAY_V2_CERT_PATH and WECHAT_PAY_V2_CERT_KEY_PATH go together"
            )


class _PayClient(WeChatPay):
    """wechatpy's pay client, asking for the configured sign type and checking every answer:
    XML, ``return_code`` SUCCESS, a valid signature. It returns the answer's fields whatever
    ``result_code`` says (a USERPAYING micropay is an answer, not an error); the gateway reads
    the result."""

    def __init__(self, config: V2Config):
        super().__init__(
            appid=config.app_id,
            api_key=config.api_key,
            mch_id=config.mch_id,
            mch_cert=config.cert_path or None,
            mch_key=config.cert_key_path or None,
            timeout=config.timeout,
        )
        self.sign_type = config.sign_type
        self.API_BASE_URL = config.base_url.rstrip("/") + "/"

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        data = kwargs.get("data")
        if isinstance(data, dict):
            # wechatpy signs with HMAC-SHA256 when the request says so, else with MD5.
            data["sign_type"] = self.sign_type
        return super()._request(method, url_or_endpoint, **kwargs)

    def _handle_result(self, res: requests.Response) -> dict[str, str]:
        try:
            fields = parse_xml(res.content)
        except ValueError as exc:
            raise WeChatPayError("INVALID_RESPONSE", str(exc), retryable=True) from exc
        if fields.get("return_code") != "SUCCESS":
            message = fields.get("return_msg") or "return_code is not SUCCESS"
            raise WeChatPayError("FAIL", message, retryable=False)
        if not signature_valid(fields, self.api_key, self.sign_type):
            raise WeChatPayError("INVALID_SIGNATURE", "the answer's sign is wrong", retryable=True)
        return fields


def _send(what: str, call: Callable[[], dict[str, str]]) -> dict[str, str]:
    """One call to WeChat, its transport failures as ``WeChatPayError``. A timeout is
    retryable but not repeated here: WeChat may have acted (the caller queries or retries)."""
    try:
        return call()
    except requests.Timeout as exc:
        raise WeChatPayError("TIMEOUT", f"{what}: {exc}", retryable=True) from exc
    except requests.RequestException as exc:
        raise WeChatPayError("NETWORK", f"{what}: {exc}", retryable=True) from exc
    except WeChatPayException as exc:
        # wechatpy raises it for an HTTP error status (answers reach _handle_result).
        status = exc.response.status_code if exc.response is not None else None
        raise WeChatPayError(
            "HTTP_ERROR", f"{what}: HTTP {status}", retryable=status is None or status >= 500
        ) from exc


def _result(
    fields: dict[str, str],
    *,
    fine: frozenset[str] = frozenset(),
    retryable: frozenset[str] = RETRYABLE,
) -> dict[str, str]:
    """The answer when ``result_code`` is SUCCESS or its ``err_code`` is ``fine``; else raises."""
    if fields.get("result_code") == "SUCCESS":
        return fields
    code = fields.get("err_code") or "FAIL"
    if code in fine:
        return fields
    message = fields.get("err_code_des") or fields.get("return_msg") or code
    raise WeChatPayError(code, message, retryable=code in retryable)


# --- the gateway ----------------------------------------------------------------------------------


class V2Gateway:
    """``base.Gateway`` over WeChat Pay API v2. Built from the settings by default."""

    version = "v2"

    def __init__(self, config: V2Config | None = None):
        self.config = config or V2Config.from_settings()
        self.config.check()
        self.client = _PayClient(self.config)

    def _trade(self, fields: dict[str, str], *, state: str, amount_fen: int | None = None) -> Trade:
        total = _int(fields, "total_fee")
        return Trade(
            out_trade_no=fields.get("out_trade_no", ""),
            state=state,
            transaction_id=fields.get("transaction_id", ""),
            amount_fen=total if total is not None else amount_fen,
            app_id=fields.get("appid", ""),
            mch_id=fields.get("mch_id", ""),
            payer_openid=fields.get("openid", ""),
            raw=dict(fields),
        )

    def jsapi_prepay(
        self, *, out_trade_no: str, amount_fen: int, description: str, openid: str, client_ip: str
    ) -> str:
        """``/pay/unifiedorder`` with ``trade_type`` JSAPI. The same request again (same number,
        same content) gets the same prepay id; ORDERPAID and ORDERCLOSED say it is too late."""
        fields = _send(
            "unifiedorder",
            lambda: self.client.order.create(
                trade_type="JSAPI",
                body=_truncate_bytes(description, BODY_MAX_BYTES),
                total_fee=amount_fen,
                notify_url=self.config.pay_notify_url,
                client_ip=_ip(client_ip),
                user_id=openid,
                out_trade_no=out_trade_no,
            ),
        )
        return _result(fields)["prepay_id"]

    def jsapi_parameters(self, *, prepay_id: str) -> dict:
        """``wx.requestPayment``'s fields, ``paySign`` over appId, timeStamp, nonceStr, package
        and signType with the API key (wechatpy's ``get_jsapi_params`` knows MD5 only)."""
        parameters = {
            "appId": self.config.app_id,
            "timeStamp": str(int(time.time())),
            "nonceStr": secrets.token_hex(16),
            "package": f"prepay_id={prepay_id}",
            "signType": self.config.sign_type,
        }
        parameters["paySign"] = sign(parameters, self.config.api_key, self.config.sign_type)
        return parameters

    def query(self, *, out_trade_no: str) -> Trade:
        """``/pay/orderquery``: ``trade_state`` as it is (ORDERNOTEXIST is an error: WeChat has
        no such trade)."""
        fields = _result(
            _send("orderquery", lambda: self.client.order.query(out_trade_no=out_trade_no))
        )
        return self._trade(fields, state=fields.get("trade_state", ""))

    def close(self, *, out_trade_no: str) -> None:
        """``/pay/closeorder``. Already closed, or never created at WeChat (nothing can be paid
        on it), is done; ORDERPAID is an error (the trade was paid: query it)."""
        fields = _send("closeorder", lambda: self.client.order.close(out_trade_no))
        _result(fields, fine=frozenset({"ORDERCLOSED", "ORDERNOTEXIST"}))

    def refund(
        self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str
    ) -> RefundState:
        """``/secapi/pay/refund`` (client certificate at WeChat). WeChat accepts the refund and
        settles it later: PROCESSING, and the refund notify brings SUCCESS, ABNORMAL or CLOSED.
        Asking again with the same ``out_refund_no`` is safe: WeChat refunds once."""
        fields = _send(
            "refund",
            lambda: self.client.refund.apply(
                total_fee=total_fen,
                refund_fee=refund_fen,
                out_refund_no=out_refund_no,
                out_trade_no=out_trade_no,
                refund_desc=reason[:REFUND_DESC_MAX] or None,
                notify_url=self.config.refund_notify_url,
            ),
        )
        fields = _result(fields, retryable=REFUND_RETRYABLE)
        return RefundState(
            out_refund_no=fields.get("out_refund_no", out_refund_no),
            state="PROCESSING",
            refund_id=fields.get("refund_id", ""),
            amount_fen=_int(fields, "refund_fee"),
            raw=dict(fields),
        )

    def codepay(
        self,
        *,
        out_trade_no: str,
        amount_fen: int,
        auth_code: str,
        description: str,
        client_ip: str,
    ) -> Trade:
        """``/pay/micropay``. SUCCESS: paid. USERPAYING: the shopper is asked for the password
        (poll ``query``). SYSTEMERROR and BANKERROR leave the outcome unknown: they raise
        retryable, and the caller polls and reverses as for USERPAYING. AUTHCODEEXPIRE,
        AUTH_CODE_INVALID, NOTENOUGH ... are final."""
        fields = _send(
            "micropay",
            lambda: self.client.micropay.create(
                body=_truncate_bytes(description, BODY_MAX_BYTES),
                total_fee=amount_fen,
                auth_code=auth_code,
                client_ip=_ip(client_ip),
                out_trade_no=out_trade_no,
            ),
        )
        fields = _result(fields, fine=frozenset({TradeState.USERPAYING}))
        if fields.get("result_code") == "SUCCESS":
            return self._trade(fields, state=TradeState.SUCCESS)
        fields.setdefault("out_trade_no", out_trade_no)
        return self._trade(fields, state=TradeState.USERPAYING, amount_fen=amount_fen)

    def reverse(self, *, out_trade_no: str) -> None:
        """``/secapi/pay/reverse`` (client certificate at WeChat): cancels the payment-code
        trade, refunding it if it was paid. ``recall=Y`` (with SUCCESS, or with an error such
        as SYSTEMERROR) asks for the call again, at once; a trade WeChat never got needs no
        cancelling."""
        for _attempt in range(REVERSE_ATTEMPTS):
            fields = _send("reverse", lambda: self.client.order.reverse(out_trade_no=out_trade_no))
            if fields.get("recall") != "Y":
                _result(fields, fine=frozenset({"ORDERNOTEXIST"}))
                return
        raise WeChatPayError("RECALL", "WeChat still asks to repeat the reverse", retryable=True)

    # --- notifies ---------------------------------------------------------------------------

    def parse_notify(self, *, body: bytes, headers: dict[str, str]) -> Notice:
        """A pay notify (signed like an answer) or a refund notify (``req_info`` encrypted under
        md5(API key)); v2 notifies have no id, so ``notify_id`` is WeChat's transaction or
        refund id. Reasons: malformed, not_success, bad_signature, wrong_app, wrong_merchant,
        undecryptable."""
        try:
            fields = parse_xml(body)
        except ValueError as exc:
            raise NotifyRejected("malformed", str(exc)) from exc
        if fields.get("return_code") != "SUCCESS":
            raise NotifyRejected("not_success", fields.get("return_msg", ""))
        if "req_info" in fields:
            return self._refund_notice(fields)
        return self._payment_notice(fields)

    def _check_owner(self, fields: dict[str, str]) -> None:
        if fields.get("appid") != self.config.app_id:
            raise NotifyRejected("wrong_app", fields.get("appid", ""))
        if fields.get("mch_id") != self.config.mch_id:
            raise NotifyRejected("wrong_merchant", fields.get("mch_id", ""))

    def _payment_notice(self, fields: dict[str, str]) -> Notice:
        sign_type = fields.get("sign_type") or MD5
        if not signature_valid(fields, self.config.api_key, sign_type):
            raise NotifyRejected("bad_signature")
        self._check_owner(fields)
        paid = fields.get("result_code") == "SUCCESS"
        try:
            amount = int(fields["total_fee"])
        except (KeyError, ValueError) as exc:
            raise NotifyRejected("malformed", "total_fee") from exc
        if not fields.get("out_trade_no") or (paid and not fields.get("transaction_id")):
            raise NotifyRejected("malformed", "out_trade_no or transaction_id missing")
        state = TradeState.SUCCESS if paid else TradeState.PAYERROR
        trade = self._trade(fields, state=state, amount_fen=amount)
        return Notice(kind="payment", trade=trade, notify_id=trade.transaction_id)

    def _refund_notice(self, fields: dict[str, str]) -> Notice:
        self._check_owner(fields)
        try:
            info = parse_xml(decrypt_req_info(fields["req_info"], self.config.api_key), root="root")
        except ValueError as exc:
            raise NotifyRejected("undecryptable", str(exc)) from exc
        state = REFUND_STATES.get(info.get("refund_status", ""))
        if state is None or not info.get("out_refund_no"):
            raise NotifyRejected("malformed", "refund_status or out_refund_no")
        try:
            amount = _int(info, "refund_fee")
        except ValueError as exc:
            raise NotifyRejected("malformed", "refund_fee") from exc
        refund = RefundState(
            out_refund_no=info["out_refund_no"],
            state=state,
            refund_id=info.get("refund_id", ""),
            amount_fen=amount,
            raw=info,
        )
        return Notice(kind="refund", refund=refund, notify_id=refund.refund_id)

    def notify_success(self) -> NotifyAnswer:
        return _answer("SUCCESS", "OK")

    def notify_failure(self, message: str) -> NotifyAnswer:
        return _answer("FAIL", message)
