"""WeChat Pay API v3: JSON over HTTPS, RSA signatures both ways, AES-GCM notifies. Written by
hand over ``requests`` and ``cryptography`` (a few calls do not need an SDK).

- Each request is signed with the merchant's API private key: ``Authorization:
  WECHATPAY2-SHA256-RSA2048 mchid,nonce_str,signature,timestamp,serial_no`` over
  ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n``.
- Each answer must carry WeChat Pay's signature over ``TIMESTAMP\\nNONCE\\nBODY\\n``, made with
  the key whose public half is ``WECHAT_PAY_V3_PUBLIC_KEY_PATH`` (``Wechatpay-Serial`` names
  it), at most ``WECHAT_PAY_V3_MAX_SKEW_SECONDS`` from now. An answer that does not verify is
  not believed: ``WeChatPayError("RESPONSE_UNVERIFIED", retryable=True)`` (what WeChat did is
  unknown; asking again, e.g. with ``query``, finds out).
- A notify is verified the same way and its ``resource`` decrypted with the API v3 key
  (AEAD_AES_256_GCM); then its merchant id and app id must be ours. Anything else is
  ``NotifyRejected`` with a stable reason.
- Errors are WeChat's ``{code, message}`` with the HTTP status; 5xx, 429 and a few codes are
  worth trying again (``retryable``), as are timeouts and connection failures. Nothing is
  retried here: the caller decides (a payment code must not be charged twice).
"""

import base64
import binascii
import json
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

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

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
# Besides 5xx and 429: WeChat's own "try again" codes. USERPAYING: the shopper is entering her
# password (close answers it with 202); the trade settles soon.
RETRYABLE_CODES = frozenset({"SYSTEM_ERROR", "BANK_ERROR", "FREQUENCY_LIMITED", "USERPAYING"})
REQUIRED_SETTINGS = (
    "WECHAT_APP_ID",
    "WECHAT_PAY_MCH_ID",
    "WECHAT_PAY_API_BASE_URL",
    "WECHAT_PAY_V3_PRIVATE_KEY_PATH",
    "WECHAT_PAY_V3_CERT_SERIAL_NO",
    "WECHAT_PAY_V3_PUBLIC_KEY_PATH",
    "WECHAT_PAY_V3_PUBLIC_KEY_ID",
    "WECHAT_PAY_V3_API_KEY",
)
DESCRIPTION_MAX = 127
REASON_MAX = 80


@dataclass(frozen=True)
class V3Config:
    app_id: str
    mch_id: str
    base_url: str
    merchant_key: rsa.RSAPrivateKey
    merchant_serial_no: str
    wechatpay_public_key: rsa.RSAPublicKey
    wechatpay_public_key_id: str
    api_v3_key: bytes
    timeout_seconds: float
    max_skew_seconds: int

    @classmethod
    def from_settings(cls) -> "V3Config":
        missing = [name for name in REQUIRED_SETTINGS if not getattr(settings, name, "")]
        if missing:
            raise ImproperlyConfigured(f"WeChat Pay v3 needs {', '.join(missing)}")
        api_v3_key = settings.WECHAT_PAY_V3_API_KEY.encode()
        if len(api_v3_key) != 32:
            raise ImproperlyConfigured("WECHAT_PAY_V3_API_KEY must be 32 bytes")
        return cls(
            app_id=settings.WECHAT_APP_ID,
            mch_id=settings.WECHAT_PAY_MCH_ID,
            base_url=settings.WECHAT_PAY_API_BASE_URL.rstrip("/"),
            merchant_key=load_private_key(settings.WECHAT_PAY_V3_PRIVATE_KEY_PATH),
            merchant_serial_no=settings.WECHAT_PAY_V3_CERT_SERIAL_NO,
            wechatpay_public_key=load_public_key(settings.WECHAT_PAY_V3_PUBLIC_KEY_PATH),
            wechatpay_public_key_id=settings.WECHAT_PAY_V3_PUBLIC_KEY_ID,
            api_v3_key=api_v3_key,
            timeout_seconds=settings.WECHAT_TIMEOUT_SECONDS,
            max_skew_seconds=settings.WECHAT_PAY_V3_MAX_SKEW_SECONDS,
        )


@lru_cache(maxsize=8)
def load_private_key(path: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"cannot read the merchant's private key {path}: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ImproperlyConfigured(f"{path} is not an RSA private key")
    return key


@lru_cache(maxsize=8)
def load_public_key(path: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"cannot read the WeChat Pay public key {path}: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ImproperlyConfigured(f"{path} is not an RSA public key")
    return key


def rsa_sign(key: rsa.RSAPrivateKey, message: str) -> str:
    signature = key.sign(message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa_verify(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


class V3Gateway:
    version = "v3"

    def __init__(self, config: V3Config | None = None) -> None:
        self.config = config or V3Config.from_settings()

    # --- JSAPI (the mini-program) ---------------------------------------------------------------

    def jsapi_prepay(
        self, *, out_trade_no: str, amount_fen: int, description: str, openid: str, client_ip: str
    ) -> str:
        body = {
            "appid": self.config.app_id,
            "mchid": self.config.mch_id,
            "description": description[:DESCRIPTION_MAX],
            "out_trade_no": out_trade_no,
            "notify_url": _notify_url(self.version, "payment"),
            "amount": {"total": amount_fen, "currency": "CNY"},
            "payer": {"openid": openid},
            "scene_info": {"payer_client_ip": client_ip},
        }
        _status, data = self._call("POST", "/v3/pay/transactions/jsapi", body=body)
        prepay_id = data.get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise WeChatPayError("BAD_RESPONSE", "no prepay_id in the answer", retryable=True)
        return prepay_id

    def jsapi_parameters(self, *, prepay_id: str) -> dict:
        """``wx.requestPayment``'s parameters: ``paySign`` is RSA-SHA256 with the merchant's
        key over ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``."""
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        package = f"prepay_id={prepay_id}"
        message = f"{self.config.app_id}\n{timestamp}\n{nonce}\n{package}\n"
        return {
            "appId": self.config.app_id,
            "timeStamp": timestamp,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": rsa_sign(self.config.merchant_key, message),
        }

    # --- trades -------------------------------------------------------------------------------

    def query(self, *, out_trade_no: str) -> Trade:
        _status, data = self._call(
            "GET", _trade_path(out_trade_no), query={"mchid": self.config.mch_id}
        )
        return _trade(data)

    def close(self, *, out_trade_no: str) -> None:
        self._call(
            "POST",
            _trade_path(out_trade_no, "close"),
            body={"mchid": self.config.mch_id},
            expect=(200, 204),
        )

    def refund(
        self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str
    ) -> RefundState:
        body: dict[str, Any] = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "notify_url": _notify_url(self.version, "refund"),
            "amount": {"refund": refund_fen, "total": total_fen, "currency": "CNY"},
        }
        if reason:
            body["reason"] = reason[:REASON_MAX]
        _status, data = self._call("POST", "/v3/refund/domestic/refunds", body=body)
        return _refund_state(data, status_field="status")

    # --- the counter's payment code -------------------------------------------------------------

    def codepay(
        self,
        *,
        out_trade_no: str,
        amount_fen: int,
        auth_code: str,
        description: str,
        client_ip: str,
    ) -> Trade:
        body = {
            "appid": self.config.app_id,
            "mchid": self.config.mch_id,
            "description": description[:DESCRIPTION_MAX],
            "out_trade_no": out_trade_no,
            "payer": {"auth_code": auth_code},
            "amount": {"total": amount_fen, "currency": "CNY"},
            "scene_info": {"device_ip": client_ip},
        }
        status, data = self._call(
            "POST", "/v3/pay/transactions/codepay", body=body, expect=(200, 202)
        )
        if status == 202:
            # The shopper is asked for her password: the till polls ``query``.
            return Trade(
                out_trade_no=out_trade_no,
                state=TradeState.USERPAYING,
                amount_fen=amount_fen,
                app_id=self.config.app_id,
                mch_id=self.config.mch_id,
                raw=data,
            )
        return _trade(data)

    def reverse(self, *, out_trade_no: str) -> None:
        body = {"appid": self.config.app_id, "mchid": self.config.mch_id}
        self._call("POST", _trade_path(out_trade_no, "reverse"), body=body)

    # --- notifies -----------------------------------------------------------------------------

    def parse_notify(self, *, body: bytes, headers: dict[str, str]) -> Notice:
        found = {name.lower(): value for name, value in headers.items()}
        self._verify(body, found, NotifyRejected)
        try:
            envelope = json.loads(body)
            resource = envelope["resource"]
            event_type = envelope["event_type"]
            algorithm = resource["algorithm"]
            ciphertext = base64.b64decode(resource["ciphertext"], validate=True)
            nonce = resource["nonce"].encode()
            associated_data = resource.get("associated_data", "").encode()
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise NotifyRejected("malformed", str(exc)) from exc
        if algorithm != "AEAD_AES_256_GCM":
            raise NotifyRejected("malformed", f"algorithm {algorithm}")
        try:
            plaintext = AESGCM(self.config.api_v3_key).decrypt(nonce, ciphertext, associated_data)
            data = json.loads(plaintext)
        except (InvalidTag, ValueError) as exc:
            raise NotifyRejected("undecryptable", type(exc).__name__) from exc
        if not isinstance(data, dict):
            raise NotifyRejected("malformed", "the resource is not an object")
        if data.get("mchid") != self.config.mch_id:
            raise NotifyRejected("wrong_mch_id", str(data.get("mchid")))
        notify_id = str(envelope.get("id", ""))
        try:
            if event_type == "TRANSACTION.SUCCESS":
                if data.get("appid") != self.config.app_id:
                    raise NotifyRejected("wrong_app_id", str(data.get("appid")))
                return Notice(kind="payment", trade=_trade(data), notify_id=notify_id)
            if isinstance(event_type, str) and event_type.startswith("REFUND."):
                refund = _refund_state(data, status_field="refund_status")
                return Notice(kind="refund", refund=refund, notify_id=notify_id)
        except WeChatPayError as exc:
            raise NotifyRejected("malformed", exc.message) from exc
        raise NotifyRejected("unknown_event", str(event_type))

    def notify_success(self) -> NotifyAnswer:
        """200 or 204, no body needed (WeChat reads the status)."""
        return NotifyAnswer(status=204, content_type="application/json", body=b"")

    def notify_failure(self, message: str) -> NotifyAnswer:
        body = json.dumps({"code": "FAIL", "message": message}, ensure_ascii=False)
        return NotifyAnswer(status=500, content_type="application/json", body=body.encode())

    # --- HTTP ---------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> tuple[int, dict[str, Any]]:
        """One signed call; the answer verified and parsed, or ``WeChatPayError``."""
        target = path + (f"?{urlencode(query)}" if query else "")
        payload = (
            "" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        )
        url = self.config.base_url + target
        headers = {
            "Authorization": self._authorization(method, urlsplit(url), payload),
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": "retail-platform wechatpay-v3",
        }
        try:
            response = requests.request(
                method,
                url,
                data=payload.encode("utf-8") if body is not None else None,
                headers=headers,
                timeout=self.config.timeout_seconds,
            )
        except requests.Timeout as exc:
            raise WeChatPayError("TIMEOUT", str(exc), retryable=True) from exc
        except requests.RequestException as exc:
            raise WeChatPayError("NETWORK", str(exc), retryable=True) from exc
        status = response.status_code
        lowered = {name.lower(): value for name, value in response.headers.items()}
        if status >= 500 and "wechatpay-signature" not in lowered:
            # A proxy or load balancer in front of WeChat, not WeChat itself.
            raise WeChatPayError(f"HTTP_{status}", response.text[:200], retryable=True)
        self._verify(
            response.content,
            lowered,
            lambda reason, detail: WeChatPayError(
                "RESPONSE_UNVERIFIED", f"{reason}: {detail}", retryable=True
            ),
        )
        try:
            data = json.loads(response.content) if response.content else {}
        except ValueError as exc:
            raise WeChatPayError("BAD_RESPONSE", "the answer is not JSON", retryable=True) from exc
        if not isinstance(data, dict):
            raise WeChatPayError("BAD_RESPONSE", "the answer is not an object", retryable=True)
        if status in expect:
            return status, data
        code = str(data.get("code") or f"HTTP_{status}")
        retryable = status >= 500 or status == 429 or code in RETRYABLE_CODES
        raise WeChatPayError(code, str(data.get("message", "")), retryable=retryable)

    def _authorization(self, method: str, url: Any, payload: str) -> str:
        target = url.path + (f"?{url.query}" if url.query else "")
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16).upper()
        signature = rsa_sign(
            self.config.merchant_key, f"{method}\n{target}\n{timestamp}\n{nonce}\n{payload}\n"
        )
        return (
            f'{AUTH_SCHEME} mchid="{self.config.mch_id}",nonce_str="{nonce}",'
            f'signature="{signature}",timestamp="{timestamp}",'
            f'serial_no="{self.config.merchant_serial_no}"'
        )

    def _verify(self, body: bytes, headers: dict[str, str], refuse: Any) -> None:
        """WeChat Pay's signature over ``TIMESTAMP\\nNONCE\\nBODY\\n``, by the key we know, made
        within the allowed skew. ``refuse(reason, detail)`` builds the exception to raise."""
        names = (
            "wechatpay-serial",
            "wechatpay-signature",
            "wechatpay-timestamp",
            "wechatpay-nonce",
        )
        missing = [name for name in names if not headers.get(name)]
        if missing:
            raise refuse("missing_headers", ", ".join(missing))
        signature_type = headers.get("wechatpay-signature-type", AUTH_SCHEME)
        if signature_type != AUTH_SCHEME:
            raise refuse("bad_signature", f"signature type {signature_type}")
        if headers["wechatpay-serial"] != self.config.wechatpay_public_key_id:
            raise refuse("unknown_serial", headers["wechatpay-serial"])
        timestamp, nonce = headers["wechatpay-timestamp"], headers["wechatpay-nonce"]
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        if not rsa_verify(
            self.config.wechatpay_public_key, message, headers["wechatpay-signature"]
        ):
            raise refuse("bad_signature", "the signature does not verify")
        # Checked after the signature: a stale timestamp is WeChat's own message, replayed.
        if not timestamp.isdigit():
            raise refuse("stale_timestamp", timestamp)
        skew = abs(time.time() - int(timestamp))
        if skew > self.config.max_skew_seconds:
            raise refuse("stale_timestamp", f"{int(skew)} s off")


def _notify_url(version: str, kind: str) -> str:
    if not settings.WECHAT_PAY_NOTIFY_BASE_URL:
        raise ImproperlyConfigured("WECHAT_PAY_NOTIFY_BASE_URL is needed to receive notifies")
    return notify_url(version, kind)


def _trade_path(out_trade_no: str, action: str = "") -> str:
    # Trade numbers are letters, digits and _-*| (WeChat's rule): nothing to escape.
    path = f"/v3/pay/transactions/out-trade-no/{out_trade_no}"
    return f"{path}/{action}" if action else path


def _trade(data: dict[str, Any]) -> Trade:
    try:
        amount = data.get("amount") or {}
        return Trade(
            out_trade_no=data["out_trade_no"],
            state=data["trade_state"],
            transaction_id=data.get("transaction_id", ""),
            amount_fen=amount.get("total"),
            app_id=data.get("appid", ""),
            mch_id=data.get("mchid", ""),
            payer_openid=(data.get("payer") or {}).get("openid", ""),
            raw=data,
        )
    except (KeyError, AttributeError, TypeError) as exc:
        raise WeChatPayError("BAD_RESPONSE", f"not a trade: {exc}", retryable=True) from exc


def _refund_state(data: dict[str, Any], *, status_field: str) -> RefundState:
    try:
        return RefundState(
            out_refund_no=data["out_refund_no"],
            state=data[status_field],
            refund_id=data.get("refund_id", ""),
            amount_fen=(data.get("amount") or {}).get("refund"),
            raw=data,
        )
    except (KeyError, AttributeError, TypeError) as exc:
        raise WeChatPayError("BAD_RESPONSE", f"not a refund: {exc}", retryable=True) from exc
