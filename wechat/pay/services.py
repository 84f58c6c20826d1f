"""WeChat Pay as the payment provider ``wechat_pay``, written once against
``wechat.pay.base.Gateway`` (v3 or v2, ``WECHAT_PAY_VERSION``).

Three rules hold everywhere here:

- WeChat is called outside every database transaction and with no row lock held: the orders
  services commit their rows first (``payment_create``, ``refund_create``), then WeChat is
  asked, and what it says comes back through the orders services, which lock and re-check.
- ``orders.payments.payment_confirm`` is the one door to a paid order, whoever learnt of the
  money: the pay notify, reconciliation, the counter's payment code, a prepay WeChat refused as
  already paid. It is idempotent and refuses (and records) a wrong amount or an unknown trade.
  Money for an order that was cancelled meanwhile is refunded by orders, through this
  provider's ``refund``.
- A payment that WeChat will not take (closed, reversed, refused, never created) is closed with
  ``payment_close``, so the order's next attempt starts a new trade number.
"""

import contextvars
import logging
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import Identity
from orders.models import Fulfilment, Order, Payment, Refund
from orders.payments import (
    RefundResult,
    StartResult,
    payment_close,
    payment_confirm,
    payment_create,
    payment_start,
    refund_confirm,
    refund_fail,
)
from retail.errors import BusinessError
from wechat.pay.base import (
    Gateway,
    Notice,
    RefundState,
    Trade,
    TradeState,
    WeChatPayError,
    gateway,
)

logger = logging.getLogger("wechat.pay")

PROVIDER = "wechat_pay"

# WeChat's error codes (v2 spelling, v3 spelling) that the services act on.
ALREADY_PAID = frozenset({"ORDERPAID", "ORDER_PAID"})
ALREADY_CLOSED = frozenset({"ORDERCLOSED", "ORDER_CLOSED", "ORDERREVERSED"})
NO_SUCH_TRADE = frozenset({"ORDERNOTEXIST", "ORDER_NOT_EXIST", "RESOURCE_NOT_EXISTS"})
USER_PAYING = "USERPAYING"
# Trade states after which the trade will never be paid.
DEAD_STATES = frozenset({TradeState.CLOSED, TradeState.REVOKED, TradeState.PAYERROR})
WAITING_STATES = frozenset({TradeState.NOTPAY, TradeState.USERPAYING})
# WeChat's refund states (v2's mapped onto v3's by the gateways).
REFUND_SUCCESS = "SUCCESS"
REFUND_DEAD = frozenset({"ABNORMAL", "CLOSED", "CHANGE", "REFUNDCLOSE"})
# How often the till asks WeChat to reverse before it gives up and leaves it to reconciliation.
REVERSE_ATTEMPTS = 3
DESCRIPTION_LENGTH = 120

# The shopper's address for a JSAPI prepay: ``payment_start`` hands the provider only the
# payment, so the shop view's address travels beside it.
_client_ip: contextvars.ContextVar[str] = contextvars.ContextVar("wechat_pay_client_ip", default="")


def _refuse(code: str, message: str, *, status_code: int = 409, **fields: str) -> BusinessError:
    return BusinessError(
        code, message, fields={k: [str(v)] for k, v in fields.items()}, status_code=status_code
    )


def _wechat_failed(error: WeChatPayError) -> BusinessError:
    if error.retryable:
        return _refuse(
            "wechat_pay_unavailable",
            _("WeChat Pay cannot be reached just now; try again in a moment."),
            status_code=503,
            wechat_code=error.code,
        )
    return _refuse(
        "wechat_pay_refused",
        _("WeChat Pay refused: %(message)s") % {"message": error.message},
        status_code=502,
        wechat_code=error.code,
    )


def _description(order: Order) -> str:
    return f"{order.store.name} {order.number}"[:DESCRIPTION_LENGTH]


def member_openid(member_id: int | None) -> str:
    """The member's openid in the mini-program (``WECHAT_APP_ID``), or ``""``."""
    if member_id is None:
        return ""
    return (
        Identity.objects.filter(
            member_id=member_id, kind=Identity.Kind.WECHAT, app_id=settings.WECHAT_APP_ID
        )
        .order_by("pk")
        .values_list("openid", flat=True)
        .first()
        or ""
    )


# --- Settling what WeChat reports --------------------------------------------------------------


def trade_settle(trade: Trade, *, actor: User | None = None) -> str:
    """Apply what WeChat says of one trade (a notify, a query answer, a payment-code answer);
    returns a word for the log. Only a paid trade of this app and merchant, for the payment's
    exact amount, confirms anything, and only through ``payment_confirm``."""
    if trade.app_id != settings.WECHAT_APP_ID:
        logger.warning("trade %s for another app %r: ignored", trade.out_trade_no, trade.app_id)
        return "wrong_app"
    if trade.mch_id != settings.WECHAT_PAY_MCH_ID:
        logger.warning(
            "trade %s for another merchant %r: ignored", trade.out_trade_no, trade.mch_id
        )
        return "wrong_merchant"
    if trade.state != TradeState.SUCCESS:
        return "not_paid"
    if not trade.transaction_id:
        logger.warning("trade %s paid without a transaction id: ignored", trade.out_trade_no)
        return "no_transaction_id"
    known = (
        Payment.objects.filter(provider=PROVIDER, out_trade_no=trade.out_trade_no)
        .values_list("status", "order__fulfilment")
        .first()
    )
    if known == (Payment.Status.CLOSED, Fulfilment.COUNTER):
        # The till reversed this payment-code trade (WeChat gave the money back): a late
        # word of it must not complete the sale.
        logger.warning("trade %s was reversed at the counter: ignored", trade.out_trade_no)
        return "reversed"
    try:
        payment_confirm(
            provider=PROVIDER,
            out_trade_no=trade.out_trade_no,
            transaction_id=trade.transaction_id,
            amount_fen=trade.amount_fen if trade.amount_fen is not None else -1,
            payload=trade.raw,
            actor=actor,
        )
    except BusinessError as refused:
        # payment_confirm has recorded the PaymentIssue for staff.
        logger.warning(
            "trade %s refused: %s (amount %s)", trade.out_trade_no, refused.code, trade.amount_fen
        )
        return refused.code
    if known is not None and known[0] == Payment.Status.SUCCEEDED:
        return "already_confirmed"
    logger.info("trade %s confirmed: %s fen", trade.out_trade_no, trade.amount_fen)
    return "confirmed"


def refund_settle(state: RefundState) -> str:
    """Apply what WeChat says of one refund (its notify); returns a word for the log."""
    refund = (
        Refund.objects.select_related("payment").filter(out_refund_no=state.out_refund_no).first()
    )
    if refund is None or refund.payment.provider != PROVIDER:
        logger.warning("refund notify for unknown refund %s: ignored", state.out_refund_no)
        return "unknown_refund"
    if state.amount_fen != refund.amount_fen:
        logger.warning(
            "refund %s: WeChat says %s fen, we asked %s: ignored",
            state.out_refund_no,
            state.amount_fen,
            refund.amount_fen,
        )
        return "amount_mismatch"
    if state.state == REFUND_SUCCESS:
        before = refund.status
        refund_confirm(out_refund_no=refund.out_refund_no, provider_refund_id=state.refund_id)
        return "already_confirmed" if before == Refund.Status.SUCCEEDED else "confirmed"
    if state.state in REFUND_DEAD:
        refund_fail(out_refund_no=refund.out_refund_no, error=f"WeChat: {state.state}")
        return "failed"
    return "processing"


def notice_settle(notice: Notice) -> str:
    """A verified notify, either kind."""
    if notice.kind == "payment" and notice.trade is not None:
        return trade_settle(notice.trade)
    if notice.kind == "refund" and notice.refund is not None:
        return refund_settle(notice.refund)
    logger.warning("notify %s of kind %r carries nothing to settle", notice.notify_id, notice.kind)
    return "empty"


# --- The provider: JSAPI prepay and refunds ----------------------------------------------------


class WeChatPayProvider:
    """Registered from ``wechat.apps`` as ``wechat_pay``. ``orders`` calls it after commit."""

    name = PROVIDER
    confirms_immediately = False

    def start(self, payment: Payment) -> StartResult:
        """The ``wx.requestPayment`` parameters. The WeChat order is created once per payment:
        its prepay id is kept in ``provider_data`` and asked for again it is reused (a prepay
        id lasts two hours; an unpaid order is cancelled long before)."""
        pay = gateway()
        prepay_id = payment.provider_data.get("prepay_id", "")
        if not prepay_id:
            prepay_id = _prepay(pay, payment)
        return StartResult(
            client_parameters=pay.jsapi_parameters(prepay_id=prepay_id),
            provider_data={**payment.provider_data, "prepay_id": prepay_id, "version": pay.version},
        )

    def refund(self, refund: Refund) -> RefundResult:
        """Ask WeChat for the refund (keyed by ``out_refund_no``, so asking again is safe). Its
        answer is usually PROCESSING: pending until the refund notify or a later ask."""
        payment = refund.payment
        try:
            state = gateway().refund(
                out_trade_no=payment.out_trade_no,
                out_refund_no=refund.out_refund_no,
                refund_fen=refund.amount_fen,
                total_fen=payment.amount_fen,
                reason=refund.reason,
            )
        except WeChatPayError as error:
            if error.retryable:
                logger.warning("refund %s not sent: %s", refund.out_refund_no, error)
                return RefundResult(status=Refund.Status.PENDING)
            return RefundResult(status=Refund.Status.FAILED, error=f"{error.code}: {error.message}")
        if state.state == REFUND_SUCCESS:
            return RefundResult(status=Refund.Status.SUCCEEDED, provider_refund_id=state.refund_id)
        if state.state in REFUND_DEAD:
            return RefundResult(status=Refund.Status.FAILED, error=f"WeChat: {state.state}")
        return RefundResult(status=Refund.Status.PENDING, provider_refund_id=state.refund_id)


def _prepay(pay: Gateway, payment: Payment) -> str:
    order = Order.objects.select_related("store").get(pk=payment.order_id)
    openid = member_openid(order.member_id)
    if not openid:
        raise _refuse(
            "wechat_openid_missing",
            _("Log in with WeChat to pay with WeChat Pay."),
            order=order.number,
        )
    try:
        return pay.jsapi_prepay(
            out_trade_no=payment.out_trade_no,
            amount_fen=payment.amount_fen,
            description=_description(order),
            openid=openid,
            client_ip=_client_ip.get() or settings.WECHAT_PAY_SERVER_IP,
        )
    except WeChatPayError as error:
        if error.code in ALREADY_PAID:
            # Paid, and its notify not here yet: learn it now (or reconciliation will).
            try:
                _trade_query_settle(pay, payment.out_trade_no)
            except WeChatPayError as unanswered:
                logger.warning("trade %s paid, not asked: %s", payment.out_trade_no, unanswered)
            raise _refuse(
                "order_already_paid", _("This order is paid already."), order=order.number
            ) from None
        if error.code in ALREADY_CLOSED:
            payment_close(
                provider=PROVIDER, out_trade_no=payment.out_trade_no, reason="closed at WeChat"
            )
        raise _wechat_failed(error) from None


@contextmanager
def _shopper_address(client_ip: str):
    token = _client_ip.set(client_ip)
    try:
        yield
    finally:
        _client_ip.reset(token)


@dataclass(frozen=True)
class ShopPayment:
    payment: Payment
    parameters: dict


def shop_order_pay(*, order: Order | int, client_ip: str) -> ShopPayment:
    """The shopper pays an order of hers in the mini-program: the pending payment (created, or
    the one already waiting) and what ``wx.requestPayment`` needs. The order is paid when
    WeChat's notify (or reconciliation) confirms it."""
    with _shopper_address(client_ip):
        payment, started = payment_start(order=order, provider=PROVIDER)
    return ShopPayment(payment=payment, parameters=started.client_parameters)


# --- Reconciliation: notifies that never came, unpaid orders closed at WeChat ------------------


def _query(pay: Gateway, out_trade_no: str) -> Trade | None:
    """The trade, or None when WeChat has none by that number."""
    try:
        return pay.query(out_trade_no=out_trade_no)
    except WeChatPayError as error:
        if error.code in NO_SUCH_TRADE:
            return None
        raise


def _trade_query_settle(pay: Gateway, out_trade_no: str) -> str:
    trade = _query(pay, out_trade_no)
    return trade_settle(trade) if trade is not None else "no_trade"


def _close(payment: Payment, reason: str) -> str:
    payment_close(provider=PROVIDER, out_trade_no=payment.out_trade_no, reason=reason)
    return "closed"


def _close_at_wechat(pay: Gateway, payment: Payment) -> str:
    """Stop WeChat taking money for a payment whose order is gone: close the JSAPI trade, or
    reverse the counter's payment-code trade. Paid meanwhile: confirmed (and orders refunds)."""
    try:
        if payment.order.fulfilment == Fulfilment.COUNTER:
            pay.reverse(out_trade_no=payment.out_trade_no)
        else:
            pay.close(out_trade_no=payment.out_trade_no)
    except WeChatPayError as error:
        if error.code in ALREADY_PAID:
            return _trade_query_settle(pay, payment.out_trade_no)
        if error.code not in ALREADY_CLOSED | NO_SUCH_TRADE:
            raise
    return _close(payment, "closed at WeChat: the order is no longer payable")


def _payment_check(pay: Gateway, payment: Payment, *, order_open: bool) -> str:
    trade = _query(pay, payment.out_trade_no)
    if trade is None:
        return "waiting" if order_open else _close(payment, "never created at WeChat")
    if trade.state == TradeState.SUCCESS:
        return trade_settle(trade)
    if trade.state in DEAD_STATES:
        return _close(payment, f"WeChat: {trade.state}")
    if trade.state in WAITING_STATES:
        return "waiting" if order_open else _close_at_wechat(pay, payment)
    # REFUND: paid and refunded outside the platform while we still wait. Staff decide.
    logger.error("payment %s pending but WeChat says %s", payment.out_trade_no, trade.state)
    return "needs_attention"


def _payments_check(payments: list[Payment], *, order_open: bool, budget_seconds: float) -> Counter:
    outcomes: Counter = Counter()
    if not payments:
        return outcomes
    pay = gateway()
    stop_at = time.monotonic() + budget_seconds
    for payment in payments:
        if time.monotonic() > stop_at:
            outcomes["left_for_next_run"] += 1
            continue
        try:
            outcomes[_payment_check(pay, payment, order_open=order_open)] += 1
        except WeChatPayError as error:
            logger.warning("payment %s not checked: %s", payment.out_trade_no, error)
            outcomes["unreachable"] += 1
    return outcomes


def _pending_payments():
    return (
        Payment.objects.filter(provider=PROVIDER, status=Payment.Status.PENDING)
        .select_related("order")
        .order_by("created_at", "pk")
    )


def payments_reconcile(
    *, now: datetime | None = None, batch_size: int = 100, budget_seconds: float = 90
) -> Counter:
    """Ask WeChat about payments of orders still waiting for payment whose notify has not come
    ``WECHAT_PAY_RECONCILE_AFTER_MINUTES`` after they were created: paid ones are confirmed
    as a notify would, dead ones closed, the rest left waiting. Returns outcome counts."""
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.WECHAT_PAY_RECONCILE_AFTER_MINUTES)
    payments = list(
        _pending_payments().filter(
            order__status=Order.Status.PENDING_PAYMENT, created_at__lte=cutoff
        )[:batch_size]
    )
    return _payments_check(payments, order_open=True, budget_seconds=budget_seconds)


def payments_close_unpaid(*, batch_size: int = 100, budget_seconds: float = 90) -> Counter:
    """Close at WeChat the trades of orders no longer waiting for payment (expired, or
    cancelled), so nobody can pay them; one paid meanwhile is confirmed, and orders refunds
    it. Returns outcome counts."""
    payments = list(
        _pending_payments().exclude(order__status=Order.Status.PENDING_PAYMENT)[:batch_size]
    )
    return _payments_check(payments, order_open=False, budget_seconds=budget_seconds)


# --- The counter's payment code ----------------------------------------------------------------


def _codepay_refused(code: str, message: str, **fields: str) -> BusinessError:
    return _refuse(code, message, status_code=409, **fields)


def counter_pay_by_code(*, order: Order | int, auth_code: str, actor: User | None) -> Payment:
    """The clerk scans the shopper's WeChat payment code for a counter sale. Paid at once, or
    after the shopper confirms on her phone (``USERPAYING``, polled until
    ``WECHAT_PAY_CODEPAY_DEADLINE_SECONDS``): ``payment_confirm`` completes the sale. Not paid
    in time: the trade is reversed, the payment closed, and the sale stays open with its stock
    untouched (``codepay_timeout``). One scan at a time per order (``payment_in_progress``)."""
    order_id = order if isinstance(order, int) else order.pk
    row = Order.objects.select_related("store").get(pk=order_id)
    if row.fulfilment != Fulfilment.COUNTER:
        raise _codepay_refused(
            "not_a_counter_sale",
            _("Only a counter sale is paid with a payment code."),
            order=row.number,
        )
    busy = f"wechat-pay:codepay:{order_id}"
    # Not a lock anyone waits on: a second scan of the same sale is refused at once.
    if not cache.add(busy, "1", timeout=int(settings.WECHAT_PAY_CODEPAY_DEADLINE_SECONDS) + 60):
        raise _codepay_refused(
            "payment_in_progress",
            _("This sale is already being paid; wait for the answer."),
            order=row.number,
        )
    try:
        return _codepay(row, auth_code=auth_code, actor=actor)
    finally:
        cache.delete(busy)


def _codepay(order: Order, *, auth_code: str, actor: User | None) -> Payment:
    pay = gateway()
    deadline = time.monotonic() + settings.WECHAT_PAY_CODEPAY_DEADLINE_SECONDS
    earlier = _pending_payments().filter(order=order).first()
    if earlier is not None:
        # A scan before this one ended without an answer: learn its fate before charging again.
        try:
            trade = _query(pay, earlier.out_trade_no)
        except WeChatPayError as error:
            raise _wechat_failed(error) from None
        if trade is not None and trade.state == TradeState.SUCCESS:
            return _codepay_confirm(trade, earlier, actor=actor)
        if trade is not None and trade.state == TradeState.USERPAYING:
            return _codepay_wait(pay, earlier, deadline=deadline, actor=actor)
        if trade is not None and trade.state not in DEAD_STATES:
            _reverse(pay, earlier)
        _close(earlier, "an earlier scan that was not paid")
    payment = payment_create(order=order.pk, provider=PROVIDER)
    try:
        trade = pay.codepay(
            out_trade_no=payment.out_trade_no,
            amount_fen=payment.amount_fen,
            auth_code=auth_code,
            description=_description(order),
            client_ip=settings.WECHAT_PAY_SERVER_IP,
        )
    except WeChatPayError as error:
        if error.code != USER_PAYING and not error.retryable:
            _close(payment, f"WeChat refused the payment code: {error.code}")
            raise _codepay_refused(
                "codepay_refused",
                _("WeChat Pay refused the payment code: %(message)s") % {"message": error.message},
                wechat_code=error.code,
            ) from None
        # The shopper is confirming, or the answer was lost: ask until the deadline.
        trade = None
    if trade is not None and trade.state == TradeState.SUCCESS:
        return _codepay_confirm(trade, payment, actor=actor)
    if trade is not None and trade.state in DEAD_STATES:
        _close(payment, f"WeChat: {trade.state}")
        raise _codepay_failed(payment, trade.state)
    return _codepay_wait(pay, payment, deadline=deadline, actor=actor)


def _codepay_confirm(trade: Trade, payment: Payment, *, actor: User | None) -> Payment:
    outcome = trade_settle(trade, actor=actor)
    payment.refresh_from_db()
    if payment.status != Payment.Status.SUCCEEDED:
        raise _codepay_refused(
            "codepay_not_confirmed",
            _("WeChat took the payment but it could not be matched to this sale: %(why)s")
            % {"why": outcome},
            out_trade_no=payment.out_trade_no,
        )
    return payment


def _codepay_failed(payment: Payment, state: str) -> BusinessError:
    return _codepay_refused(
        "codepay_failed",
        _("The shopper's payment did not go through (%(state)s).") % {"state": state},
        out_trade_no=payment.out_trade_no,
    )


def _codepay_wait(
    pay: Gateway, payment: Payment, *, deadline: float, actor: User | None
) -> Payment:
    poll = settings.WECHAT_PAY_CODEPAY_POLL_SECONDS
    while time.monotonic() + poll <= deadline:
        time.sleep(poll)
        try:
            trade = _query(pay, payment.out_trade_no)
        except WeChatPayError as error:
            logger.warning("payment code %s: query failed: %s", payment.out_trade_no, error)
            continue
        if trade is None or trade.state in WAITING_STATES:
            continue
        if trade.state == TradeState.SUCCESS:
            return _codepay_confirm(trade, payment, actor=actor)
        if trade.state in DEAD_STATES:
            _close(payment, f"WeChat: {trade.state}")
            raise _codepay_failed(payment, trade.state)
    _reverse(pay, payment)
    _close(payment, "not paid in time: reversed")
    raise _codepay_refused(
        "codepay_timeout",
        _("The shopper did not confirm the payment in time; it was cancelled."),
        out_trade_no=payment.out_trade_no,
    )


def _reverse(pay: Gateway, payment: Payment) -> None:
    """Reverse a payment-code trade (WeChat refunds it if it was paid after all). Should WeChat
    not answer, the payment stays pending for reconciliation and the till hears so."""
    for attempt in range(1, REVERSE_ATTEMPTS + 1):
        try:
            pay.reverse(out_trade_no=payment.out_trade_no)
            return
        except WeChatPayError as error:
            if error.code in ALREADY_CLOSED | NO_SUCH_TRADE:
                return
            logger.warning("reverse %s, try %s: %s", payment.out_trade_no, attempt, error)
            if not error.retryable or attempt == REVERSE_ATTEMPTS:
                raise _wechat_failed(error) from None
