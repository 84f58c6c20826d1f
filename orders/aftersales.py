"""After-sales: a shopper asks for money back (and may send goods back); staff decide.

Refund only: approving refunds at once. Return and refund: approving waits for the goods;
receiving them puts them back on the store's shelf through the ledger, then refunds.
"""

from collections.abc import Sequence

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from inventory.services import StockLine, stock_return
from orders.models import ActorKind, AfterSale, AfterSaleLine, Order, OrderLine
from orders.payments import refund_create
from orders.transitions import order_event_record, order_locked
from retail.errors import BusinessError

S = Order.Status
OPEN_REQUESTS = (AfterSale.Status.REQUESTED, AfterSale.Status.APPROVED)


def _refuse(code: str, message: str, *, status_code: int | None = None, **fields):
    return BusinessError(
        code, message, fields={k: [str(v)] for k, v in fields.items()}, status_code=status_code
    )


def after_sale_request(
    *,
    order: Order | int,
    kind: str,
    lines: Sequence[tuple[str, int]],
    reason: str,
    actor: User | None = None,
    actor_kind: str = ActorKind.SHOPPER,
) -> AfterSale:
    """Ask for ``(line_key, quantity)`` back. The amount is what those units were paid for
    (line totals pro rata, never above what the order can still refund). Refused while
    another request of the order is open, for unpaid orders, and for more units than bought."""
    reason = reason.strip()
    if not reason:
        raise _refuse("reason_required", _("Please give a reason."), status_code=400, reason="")
    if kind not in AfterSale.Kind.values:
        raise _refuse("invalid_kind", _("Unknown kind of request."), status_code=400, kind=kind)
    if not lines:
        raise _refuse("invalid_lines", _("Choose what to return."), status_code=400, lines="")
    with transaction.atomic():
        locked = order_locked(order)
        if locked.status in (S.PENDING_PAYMENT, S.CANCELLED) or locked.paid_fen == 0:
            raise _refuse(
                "order_not_paid", _("Only paid orders have after-sales."), status=locked.status
            )
        if locked.after_sales.filter(status__in=OPEN_REQUESTS).exists():
            raise _refuse(
                "after_sale_open", _("This order already has an open request."), order=locked.number
            )
        order_lines = {line.line_key: line for line in locked.lines.all()}
        already = dict(
            AfterSaleLine.objects.filter(
                after_sale__order=locked, after_sale__status=AfterSale.Status.REFUNDED
            )
            .values("order_line")
            .annotate(total=Sum("quantity"))
            .values_list("order_line", "total")
        )
        amount = 0
        chosen: list[tuple[OrderLine, int]] = []
        seen: set[str] = set()
        for line_key, quantity in lines:
            line = order_lines.get(line_key)
            if line is None or line_key in seen:
                raise _refuse(
                    "invalid_lines",
                    _("No such line in this order."),
                    status_code=400,
                    line_key=line_key,
                )
            if not 0 < quantity <= line.quantity - already.get(line.pk, 0):
                raise _refuse(
                    "invalid_quantity",
                    _("More than was bought and not yet returned."),
                    status_code=400,
                    line_key=line_key,
                    quantity=quantity,
                )
            seen.add(line_key)
            amount += line.total_fen * quantity // line.quantity
            chosen.append((line, quantity))
        amount = min(amount, locked.paid_fen - locked.refunded_fen)
        if amount <= 0:
            raise _refuse(
                "nothing_to_refund",
                _("Nothing is left to refund on this order."),
                order=locked.number,
            )
        after_sale = AfterSale.objects.create(
            order=locked, kind=kind, reason=reason[:200], amount_fen=amount
        )
        AfterSaleLine.objects.bulk_create(
            AfterSaleLine(after_sale=after_sale, order_line=line, quantity=quantity)
            for line, quantity in chosen
        )
        order_event_record(
            order=locked,
            kind="after_sale.requested",
            actor=actor,
            actor_kind=actor_kind,
            note=reason,
            data={"after_sale": after_sale.pk, "kind": kind, "amount_fen": amount},
        )
        return after_sale


def _locked_request(after_sale: AfterSale | int) -> tuple[Order, AfterSale]:
    """The request and its order, locked order first (the order every writer takes)."""
    after_sale_id = after_sale if isinstance(after_sale, int) else after_sale.pk
    order_id = AfterSale.objects.values_list("order_id", flat=True).get(pk=after_sale_id)
    order = order_locked(order_id)
    return order, AfterSale.objects.select_for_update().get(pk=after_sale_id)


def _decide(after_sale: AfterSale, status: str, actor: User | None, note: str) -> None:
    now = timezone.now()
    AfterSale.objects.filter(pk=after_sale.pk).update(
        status=status, decided_by=actor, decided_at=now, decision_note=note[:200]
    )
    after_sale.status, after_sale.decided_by, after_sale.decided_at = status, actor, now
    after_sale.decision_note = note[:200]


def after_sale_approve(
    *, after_sale: AfterSale | int, actor: User | None, note: str = ""
) -> AfterSale:
    """Refund only: the refund goes out now. Return and refund: wait for the goods."""
    with transaction.atomic():
        order, request = _locked_request(after_sale)
        if request.status != AfterSale.Status.REQUESTED:
            raise _refuse(
                "after_sale_decided", _("This request was already decided."), status=request.status
            )
        _decide(request, AfterSale.Status.APPROVED, actor, note)
        order_event_record(
            order=order,
            kind="after_sale.approved",
            actor=actor,
            actor_kind=ActorKind.STAFF,
            note=note,
            data={"after_sale": request.pk},
        )
        if request.kind == AfterSale.Kind.REFUND_ONLY:
            refund_create(
                order=order,
                amount_fen=request.amount_fen,
                reason=request.reason,
                actor=actor,
                after_sale=request,
            )
        return request


def after_sale_reject(*, after_sale: AfterSale | int, actor: User | None, note: str) -> AfterSale:
    if not note.strip():
        raise _refuse(
            "reason_required", _("Say why the request is rejected."), status_code=400, note=""
        )
    with transaction.atomic():
        order, request = _locked_request(after_sale)
        if request.status != AfterSale.Status.REQUESTED:
            raise _refuse(
                "after_sale_decided", _("This request was already decided."), status=request.status
            )
        _decide(request, AfterSale.Status.REJECTED, actor, note)
        order_event_record(
            order=order,
            kind="after_sale.rejected",
            actor=actor,
            actor_kind=ActorKind.STAFF,
            note=note,
            data={"after_sale": request.pk},
        )
        return request


def after_sale_receive_return(*, after_sale: AfterSale | int, actor: User | None) -> AfterSale:
    """The returned goods arrived at the order's store: back on the shelf, money back."""
    with transaction.atomic():
        order, request = _locked_request(after_sale)
        if (
            request.kind != AfterSale.Kind.RETURN_AND_REFUND
            or request.status != AfterSale.Status.APPROVED
            # Received already; its refund is on its way (a second call would refund twice).
            or request.restocked_at is not None
        ):
            raise _refuse(
                "not_awaiting_goods",
                _("This request is not waiting for goods."),
                status=request.status,
            )
        lines = list(request.lines.select_related("order_line"))
        stock_return(
            store=order.store_id,
            lines=[StockLine(line.order_line.sku_id, line.quantity) for line in lines],
            idempotency_key=f"after_sale:{request.pk}",
            actor=actor,
            reference=order.number,
        )
        AfterSale.objects.filter(pk=request.pk).update(restocked_at=timezone.now())
        order_event_record(
            order=order,
            kind="after_sale.goods_received",
            actor=actor,
            actor_kind=ActorKind.STAFF,
            data={"after_sale": request.pk},
        )
        refund_create(
            order=order,
            amount_fen=request.amount_fen,
            reason=request.reason,
            actor=actor,
            after_sale=request,
        )
        return request
