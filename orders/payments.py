"""Money in and money back: payment providers, payments, refunds.

A provider (cash now, WeChat Pay in the WeChat app) implements ``PaymentProvider`` and registers
itself at start-up; ``orders`` never imports it. Providers talk to the outside world *outside*
our transactions: ``payment_start`` and ``refund_create`` write their rows first, commit, and
only then call the provider; what the provider reports comes back through
``payment_confirm`` / ``refund_confirm``, which are idempotent.
"""

import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from inventory.services import stock_commit, stock_consume
from members.services.points import member_order_refunded
from orders.models import (
    ActorKind,
    AfterSale,
    Fulfilment,
    Order,
    Payment,
    PaymentIssue,
    Refund,
)
from orders.routing import order_route
from orders.services import order_release_stock
from orders.transitions import Cause, order_event_record, order_locked, order_transition
from retail.errors import BusinessError

S = Order.Status


# --- Providers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundResult:
    """What a provider said to a refund request: ``succeeded`` now, or ``pending`` (its
    notify will tell), or ``failed`` with an error."""

    status: str
    provider_refund_id: str | None = None
    error: str = ""


@dataclass(frozen=True)
class StartResult:
    """What the client needs to pay (for WeChat: the parameters of ``wx.requestPayment``)."""

    client_parameters: dict = field(default_factory=dict)
    provider_data: dict = field(default_factory=dict)


class PaymentProvider(Protocol):
    name: str
    # Whether the provider confirms at once (cash in the till) or later (a notify).
    confirms_immediately: bool

    def start(self, payment: Payment) -> StartResult: ...

    def refund(self, refund: Refund) -> RefundResult: ...


class CashProvider:
    """Cash at the counter: the clerk holds the money when the sale is recorded, and hands
    refunds back over the counter."""

    name = "cash"
    confirms_immediately = True

    def start(self, payment: Payment) -> StartResult:
        return StartResult()

    def refund(self, refund: Refund) -> RefundResult:
        return RefundResult(status=Refund.Status.SUCCEEDED, provider_refund_id=refund.out_refund_no)


_providers: dict[str, PaymentProvider] = {}


def provider_register(provider: PaymentProvider) -> None:
    _providers[provider.name] = provider


def provider_get(name: str) -> PaymentProvider:
    try:
        return _providers[name]
    except KeyError:
        raise BusinessError(
            "unknown_provider",
            _("This payment method is not available."),
            fields={"provider": [name]},
            status_code=400,
        ) from None


provider_register(CashProvider())


def _refuse(code: str, message: str, *, status_code: int | None = None, **fields: str):
    return BusinessError(
        code, message, fields={k: [str(v)] for k, v in fields.items()}, status_code=status_code
    )


# --- Payments ----------------------------------------------------------------------------------


def _trade_number(prefix: str) -> str:
    return f"{prefix}{timezone.localtime():%y%m%d%H%M%S}{secrets.token_hex(6).upper()}"


def payment_create(*, order: Order | int, provider: str) -> Payment:
    """A payment waiting for the provider, for what the order still owes. An unpaid order
    asking again with the same provider gets its pending payment back."""
    provider_get(provider)
    with transaction.atomic():
        locked = order_locked(order)
        if locked.status != S.PENDING_PAYMENT:
            raise _refuse(
                "order_not_payable",
                _("This order is not waiting for payment."),
                status=locked.status,
            )
        if locked.expires_at and locked.expires_at <= timezone.now():
            raise _refuse(
                "order_expired", _("Time to pay this order has run out."), order=locked.number
            )
        pending = locked.payments.filter(provider=provider, status=Payment.Status.PENDING).first()
        if pending is not None and pending.amount_fen == locked.total_fen:
            return pending
        return Payment.objects.create(
            order=locked,
            provider=provider,
            out_trade_no=_trade_number("P"),
            amount_fen=locked.total_fen,
        )


def payment_start(*, order: Order | int, provider: str) -> tuple[Payment, StartResult]:
    """Create (or reuse) the payment, then ask the provider, outside any transaction."""
    payment = payment_create(order=order, provider=provider)
    result = provider_get(provider).start(payment)
    if result.provider_data and result.provider_data != payment.provider_data:
        Payment.objects.filter(pk=payment.pk).update(provider_data=result.provider_data)
        payment.provider_data = result.provider_data
    return payment, result


def _record_issue(
    *,
    payment: Payment | None,
    provider: str,
    out_trade_no: str,
    code: str,
    amount_fen: int | None,
    payload: dict,
) -> None:
    # Its own transaction: the issue stays on record although the confirmation is refused.
    with transaction.atomic():
        PaymentIssue.objects.create(
            payment=payment,
            provider=provider,
            out_trade_no=out_trade_no[:32],
            code=code,
            amount_fen=amount_fen,
            raw_payload=payload,
        )


def payment_confirm(
    *,
    provider: str,
    out_trade_no: str,
    transaction_id: str,
    amount_fen: int,
    payload: dict | None = None,
    actor: User | None = None,
) -> Payment:
    """The provider says the money arrived. The first confirmation marks the payment, the
    order ``paid`` and its stock committed (counter sales: handed over and completed); a
    repeat changes nothing. A wrong amount, an unknown trade number or another transaction id
    for a paid payment is refused and recorded as a ``PaymentIssue``."""
    payload = payload or {}
    problem = None
    try:
        with transaction.atomic():
            # The order first, then the payment: the order every writer locks them in.
            order_id = (
                Payment.objects.filter(out_trade_no=out_trade_no, provider=provider)
                .values_list("order_id", flat=True)
                .first()
            )
            if order_id is not None:
                order_locked(order_id)
            payment = (
                Payment.objects.select_for_update()
                .filter(out_trade_no=out_trade_no, provider=provider)
                .first()
            )
            if payment is None:
                problem = ("unknown_payment", None)
                raise _refuse(
                    "unknown_payment",
                    _("No such payment."),
                    status_code=404,
                    out_trade_no=out_trade_no,
                )
            if payment.status == Payment.Status.SUCCEEDED:
                if payment.transaction_id != transaction_id:
                    problem = ("transaction_id_mismatch", payment)
                    raise _refuse(
                        "transaction_id_mismatch",
                        _("This payment was already confirmed with another transaction."),
                        transaction_id=transaction_id,
                    )
                return payment
            if amount_fen != payment.amount_fen:
                problem = ("amount_mismatch", payment)
                raise _refuse(
                    "amount_mismatch",
                    _("The amount paid does not match the order."),
                    amount_fen=amount_fen,
                )
            return _payment_succeeded(
                payment, transaction_id=transaction_id, payload=payload, actor=actor
            )
    except BusinessError:
        if problem is not None:
            code, known = problem
            _record_issue(
                payment=known,
                provider=provider,
                out_trade_no=out_trade_no,
                code=code,
                amount_fen=amount_fen,
                payload=payload,
            )
        raise


def _payment_succeeded(
    payment: Payment, *, transaction_id: str, payload: dict, actor: User | None
) -> Payment:
    order = order_locked(payment.order_id)
    now = timezone.now()
    Payment.objects.filter(pk=payment.pk).update(
        status=Payment.Status.SUCCEEDED,
        transaction_id=transaction_id,
        raw_payload=payload,
        paid_at=now,
    )
    payment.status, payment.transaction_id, payment.paid_at = (
        Payment.Status.SUCCEEDED,
        transaction_id,
        now,
    )
    payment.raw_payload = payload
    Payment.objects.filter(order=order, status=Payment.Status.PENDING).exclude(
        pk=payment.pk
    ).update(status=Payment.Status.CLOSED)
    Order.objects.filter(pk=order.pk).update(
        paid_fen=F("paid_fen") + payment.amount_fen, updated_at=now
    )
    order.paid_fen += payment.amount_fen
    if order.status != S.PENDING_PAYMENT:
        # Paid after the order was cancelled (it expired while the shopper paid): the money
        # goes straight back.
        order_event_record(
            order=order,
            kind="payment.after_cancel",
            actor=actor,
            actor_kind=ActorKind.SYSTEM,
            data={"out_trade_no": payment.out_trade_no, "amount_fen": payment.amount_fen},
        )
        _refund_open(
            payment=payment,
            order=order,
            amount_fen=payment.amount_fen,
            reason=_("Paid after the order was cancelled."),
            actor=None,
            after_sale=None,
        )
        return payment
    order = order_transition(
        order=order,
        to=S.PAID,
        cause=Cause.PAYMENT,
        actor=actor,
        actor_kind=ActorKind.STAFF if actor else ActorKind.SYSTEM,
        data={
            "provider": payment.provider,
            "out_trade_no": payment.out_trade_no,
            "amount_fen": payment.amount_fen,
        },
    )
    lines = list(order.lines.values_list("line_key", flat=True))
    if order.fulfilment == Fulfilment.COUNTER:
        for line_key in lines:
            stock_consume(line_key=line_key, actor=actor, reference=order.number, at_counter=True)
        order_transition(
            order=order,
            to=S.COMPLETED,
            cause=Cause.COUNTER_SALE,
            actor=actor,
            actor_kind=ActorKind.STAFF,
        )
    else:
        for line_key in lines:
            stock_commit(line_key=line_key)
        if order.fulfilment == Fulfilment.DELIVERY:
            order_route(order)
    return payment


def payment_close(*, provider: str, out_trade_no: str, reason: str) -> Payment:
    """The provider will not take this payment (its trade was closed, reversed, refused or
    never created): it stops waiting, so that the order's next attempt starts a new one. Only
    a pending payment closes; a confirmation that still arrives later is honoured by
    ``payment_confirm`` (and refunded if the order is gone)."""
    with transaction.atomic():
        order_id = (
            Payment.objects.filter(out_trade_no=out_trade_no, provider=provider)
            .values_list("order_id", flat=True)
            .first()
        )
        if order_id is None:
            raise _refuse(
                "unknown_payment", _("No such payment."), status_code=404, out_trade_no=out_trade_no
            )
        order = order_locked(order_id)
        payment = Payment.objects.select_for_update().get(
            out_trade_no=out_trade_no, provider=provider
        )
        if payment.status != Payment.Status.PENDING:
            return payment
        Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.CLOSED)
        payment.status = Payment.Status.CLOSED
        order_event_record(
            order=order,
            kind="payment.closed",
            actor=None,
            actor_kind=ActorKind.SYSTEM,
            note=reason,
            data={"out_trade_no": out_trade_no, "provider": provider},
        )
        return payment


# --- Refunds -----------------------------------------------------------------------------------


def _refund_open(
    *, payment: Payment, order: Order, amount_fen: int, reason: str, actor: User | None, after_sale
) -> Refund:
    """A refund row, checked against what the payment can still give back. The caller holds
    the order lock (which also serialises refunds of its payments)."""
    if amount_fen <= 0:
        raise _refuse(
            "invalid_amount",
            _("A refund must be more than zero."),
            status_code=400,
            amount_fen=amount_fen,
        )
    if payment.status != Payment.Status.SUCCEEDED:
        raise _refuse(
            "payment_not_succeeded",
            _("Only a received payment can be refunded."),
            payment=payment.out_trade_no,
        )
    committed = (
        payment.refunds.exclude(status=Refund.Status.FAILED).aggregate(total=Sum("amount_fen"))[
            "total"
        ]
        or 0
    )
    if committed + amount_fen > payment.amount_fen:
        raise _refuse(
            "refund_exceeds_paid",
            _("At most %(left)s fen of this payment can still be refunded.")
            % {"left": payment.amount_fen - committed},
            amount_fen=amount_fen,
        )
    refund = Refund.objects.create(
        payment=payment,
        order=order,
        after_sale=after_sale,
        out_refund_no=_trade_number("R"),
        amount_fen=amount_fen,
        reason=reason[:200],
        created_by=actor,
    )
    order_event_record(
        order=order,
        kind="refund.requested",
        actor=actor,
        actor_kind=ActorKind.STAFF if actor else ActorKind.SYSTEM,
        note=reason,
        data={"out_refund_no": refund.out_refund_no, "amount_fen": amount_fen},
    )
    transaction.on_commit(lambda: _queue_refund(refund.pk))
    return refund


def refund_create(
    *,
    order: Order | int,
    amount_fen: int,
    reason: str,
    actor: User | None,
    after_sale=None,
) -> Refund:
    """Refund part or all of an order's payment; never more than was paid. The provider is
    asked after commit."""
    with transaction.atomic():
        locked = order_locked(order)
        payment = locked.payments.filter(status=Payment.Status.SUCCEEDED).first()
        if payment is None:
            raise _refuse(
                "order_not_paid", _("This order has no payment to refund."), order=locked.number
            )
        return _refund_open(
            payment=payment,
            order=locked,
            amount_fen=amount_fen,
            reason=reason,
            actor=actor,
            after_sale=after_sale,
        )


def _queue_refund(refund_id: int) -> None:
    # Imported here: the task module imports this one.
    from orders.tasks import submit_refund

    submit_refund.delay(refund_id)


def refunds_resubmit_stale(*, now=None, older_than_s: int = 120) -> int:
    """Ask again for refunds still pending a while after they were created (their task was
    lost, or the provider has not answered); returns how many were asked."""
    now = now or timezone.now()
    stale = list(
        Refund.objects.filter(
            status=Refund.Status.PENDING, created_at__lte=now - timedelta(seconds=older_than_s)
        ).values_list("pk", flat=True)[:100]
    )
    for refund_id in stale:
        refund_submit(refund_id=refund_id)
    return len(stale)


def refund_submit(*, refund_id: int) -> Refund:
    """Ask the provider for a pending refund (after commit, outside any transaction), then
    record what it said. Safe to repeat: providers key refunds by ``out_refund_no``."""
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.status != Refund.Status.PENDING:
        return refund
    result = provider_get(refund.payment.provider).refund(refund)
    if result.status == Refund.Status.SUCCEEDED:
        return refund_confirm(
            out_refund_no=refund.out_refund_no, provider_refund_id=result.provider_refund_id
        )
    if result.status == Refund.Status.FAILED:
        return refund_fail(out_refund_no=refund.out_refund_no, error=result.error)
    return refund


def refund_confirm(*, out_refund_no: str, provider_refund_id: str | None) -> Refund:
    """The provider paid the refund out. Idempotent. A refund that brings the order's refunds
    up to what was paid, before the goods left, cancels the order and frees its stock."""
    with transaction.atomic():
        order_id = (
            Refund.objects.filter(out_refund_no=out_refund_no)
            .values_list("order_id", flat=True)
            .first()
        )
        if order_id is None:
            raise _refuse(
                "unknown_refund", _("No such refund."), status_code=404, out_refund_no=out_refund_no
            )
        order = order_locked(order_id)
        refund = Refund.objects.select_for_update().get(out_refund_no=out_refund_no)
        if refund.status == Refund.Status.SUCCEEDED:
            return refund
        now = timezone.now()
        Refund.objects.filter(pk=refund.pk).update(
            status=Refund.Status.SUCCEEDED,
            provider_refund_id=provider_refund_id,
            succeeded_at=now,
            error="",
        )
        refund.status, refund.succeeded_at = Refund.Status.SUCCEEDED, now
        Order.objects.filter(pk=order.pk).update(
            refunded_fen=F("refunded_fen") + refund.amount_fen, updated_at=now
        )
        order.refunded_fen += refund.amount_fen
        if order.member_id is not None:
            member_order_refunded(
                member_id=order.member_id,
                order_reference=order.number,
                refunded_fen=refund.amount_fen,
                paid_fen=order.paid_fen,
            )
        order_event_record(
            order=order,
            kind="refund.succeeded",
            actor=None,
            actor_kind=ActorKind.SYSTEM,
            data={"out_refund_no": refund.out_refund_no, "amount_fen": refund.amount_fen},
        )
        if order.refunded_fen == order.paid_fen and order.status in (S.PAID, S.READY_FOR_PICKUP):
            order_release_stock(order)
            order_transition(order=order, to=S.CANCELLED, cause=Cause.REFUND)
        if refund.after_sale_id:
            AfterSale.objects.filter(pk=refund.after_sale_id).update(
                status=AfterSale.Status.REFUNDED
            )
        return refund


def refund_fail(*, out_refund_no: str, error: str) -> Refund:
    """The provider refused the refund: it no longer counts against the payment; staff may
    try again with a new refund."""
    with transaction.atomic():
        order = order_locked(
            Refund.objects.values_list("order_id", flat=True).get(out_refund_no=out_refund_no)
        )
        refund = Refund.objects.select_for_update().get(out_refund_no=out_refund_no)
        if refund.status != Refund.Status.PENDING:
            return refund
        Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.FAILED, error=error[:200])
        refund.status, refund.error = Refund.Status.FAILED, error[:200]
        order_event_record(
            order=order,
            kind="refund.failed",
            actor=None,
            actor_kind=ActorKind.SYSTEM,
            note=error,
            data={"out_refund_no": refund.out_refund_no},
        )
        return refund


def counter_sale_pay_cash(
    *, order: Order | int, tendered_fen: int, actor: User | None
) -> tuple[Payment, int]:
    """Cash handed over for a counter order: the sale completes; returns the payment and the
    change to give back. Paying again returns the first payment."""
    with transaction.atomic():
        locked = order_locked(order)
        paid = locked.payments.filter(status=Payment.Status.SUCCEEDED).first()
        if paid is not None:
            return paid, max(
                paid.raw_payload.get("tendered_fen", paid.amount_fen) - paid.amount_fen, 0
            )
        if tendered_fen < locked.total_fen:
            raise _refuse(
                "cash_short",
                _("%(short)s fen short of the total.") % {"short": locked.total_fen - tendered_fen},
                status_code=400,
                tendered_fen=tendered_fen,
            )
        payment = payment_create(order=locked, provider=CashProvider.name)
        payment = payment_confirm(
            provider=CashProvider.name,
            out_trade_no=payment.out_trade_no,
            transaction_id=payment.out_trade_no,
            amount_fen=payment.amount_fen,
            payload={"tendered_fen": tendered_fen},
            actor=actor,
        )
        return payment, tendered_fen - payment.amount_fen
