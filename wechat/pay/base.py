"""What the platform needs from WeChat Pay, whatever the protocol version.

``WECHAT_PAY_VERSION`` ("v3" by default, or "v2") picks the gateway (``gateway()``); everything
else (prepay, notifies, reconciliation, refunds, the counter's payment code) is written once in
``wechat.pay.services`` against this interface. Gateways talk HTTP and nothing else: no
database, no transactions; they never run inside one.
"""

from dataclasses import dataclass, field
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


class TradeState:
    """WeChat's trade states (the same words in v2 and v3)."""

    SUCCESS = "SUCCESS"
    NOTPAY = "NOTPAY"
    USERPAYING = "USERPAYING"
    CLOSED = "CLOSED"
    REVOKED = "REVOKED"
    PAYERROR = "PAYERROR"
    REFUND = "REFUND"


@dataclass(frozen=True)
class Trade:
    """A payment as WeChat reports it (query answer, notify, payment-code answer)."""

    out_trade_no: str
    state: str
    transaction_id: str = ""
    amount_fen: int | None = None
    app_id: str = ""
    mch_id: str = ""
    payer_openid: str = ""
    raw: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RefundState:
    out_refund_no: str
    # SUCCESS, PROCESSING, ABNORMAL, CLOSED (v3 words; v2's are mapped onto them).
    state: str
    refund_id: str = ""
    amount_fen: int | None = None
    raw: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """A verified, decrypted notify: a payment (``trade``) or a refund (``refund``)."""

    kind: str  # "payment" or "refund"
    trade: Trade | None = None
    refund: RefundState | None = None
    notify_id: str = ""


class WeChatPayError(Exception):
    """WeChat Pay answered with an error, or could not be reached."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


class NotifyRejected(Exception):
    """A notify that is not WeChat's or not acceptable: bad signature, stale timestamp,
    undecryptable, for another app or merchant. ``reason`` is a stable word for the log."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class NotifyAnswer:
    """What to answer WeChat: status, content type and body in the version's format."""

    status: int
    content_type: str
    body: bytes


class Gateway(Protocol):
    version: str

    def jsapi_prepay(
        self, *, out_trade_no: str, amount_fen: int, description: str, openid: str, client_ip: str
    ) -> str:
        """Create the WeChat order; returns the prepay id."""

    def jsapi_parameters(self, *, prepay_id: str) -> dict:
        """What the mini-program passes to ``wx.requestPayment`` (signed)."""

    def query(self, *, out_trade_no: str) -> Trade:
        """The trade as WeChat has it now."""

    def close(self, *, out_trade_no: str) -> None:
        """Close an unpaid trade (an order that expired); closing a closed one is fine."""

    def refund(
        self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str
    ) -> RefundState:
        """Ask for a refund; the answer is usually PROCESSING, the notify says the rest."""

    def codepay(
        self,
        *,
        out_trade_no: str,
        amount_fen: int,
        auth_code: str,
        description: str,
        client_ip: str,
    ) -> Trade:
        """Charge the shopper's payment code at the counter (micropay / v3 codepay). The state
        may be SUCCESS, USERPAYING (poll ``query``) or an error."""

    def reverse(self, *, out_trade_no: str) -> None:
        """Cancel a payment-code trade that was not paid in time (refunds it if it was)."""

    def parse_notify(self, *, body: bytes, headers: dict[str, str]) -> Notice:
        """Verify and decrypt a pay or refund notify, or raise ``NotifyRejected``."""

    def notify_success(self) -> NotifyAnswer: ...

    def notify_failure(self, message: str) -> NotifyAnswer: ...


GATEWAYS = {"v3": "wechat.pay.v3.V3Gateway", "v2": "wechat.pay.v2.V2Gateway"}


def notify_url(version: str, kind: str = "payment") -> str:
    """Where WeChat sends the notifies of ``version`` for ``kind`` ("payment" or "refund"):
    served by ``wechat.pay.views`` under ``/wechat/pay/notify/``. Gateways put it in their
    prepay and refund requests."""
    base = settings.WECHAT_PAY_NOTIFY_BASE_URL.rstrip("/")
    suffix = "refund/" if kind == "refund" else ""
    return f"{base}/wechat/pay/notify/{version}/{suffix}"


def gateway(version: str | None = None) -> Gateway:
    """The gateway of ``version`` (default ``WECHAT_PAY_VERSION``), built from the settings."""
    return import_string(GATEWAYS[version or settings.WECHAT_PAY_VERSION])()
