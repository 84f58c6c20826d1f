"""The order state machine: one table, one door.

``order_transition`` is the only code that writes ``Order.status`` (``tests/orders/
test_transitions.py`` reads the source of every app to make sure). It locks the order,
refuses a move the table does not allow, writes the ``OrderEvent`` and publishes the outbox
event, all in the caller's transaction.
"""

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from members.services.coupons import member_order_cancelled
from members.services.points import member_order_completed, member_order_paid
from orders.models import ActorKind, Fulfilment, Order, OrderEvent
from retail.errors import BusinessError
from retail.outbox import outbox_publish

S = Order.Status


class Cause(models.TextChoices):
    PAYMENT = "payment", gettext_lazy("payment received")
    SHOPPER = "shopper", gettext_lazy("cancelled by the shopper")
    STAFF = "staff", gettext_lazy("by staff")
    EXPIRY = "expiry", gettext_lazy("not paid in time")
    REFUND = "refund", gettext_lazy("refunded in full")
    READY = "ready", gettext_lazy("goods ready for pickup")
    SHIPMENT = "shipment", gettext_lazy("goods shipped")
    COUNTER_SALE = "counter_sale", gettext_lazy("handed over at the counter")
    PICKUP = "pickup", gettext_lazy("picked up")
    DELIVERY = "delivery", gettext_lazy("delivered")
    RECEIPT_CONFIRMED = "receipt_confirmed", gettext_lazy("receipt confirmed")
    AUTO_COMPLETE = "auto_complete", gettext_lazy("completed automatically")


@dataclass(frozen=True)
class Rule:
    causes: frozenset[str]
    # Empty: every fulfilment type.
    fulfilments: frozenset[str] = frozenset()


def _rule(*causes: str, only: tuple[str, ...] = ()) -> Rule:
    return Rule(frozenset(causes), frozenset(only))


TRANSITIONS: dict[tuple[str, str], Rule] = {
    (S.PENDING_PAYMENT, S.PAID): _rule(Cause.PAYMENT),
    (S.PENDING_PAYMENT, S.CANCELLED): _rule(Cause.SHOPPER, Cause.STAFF, Cause.EXPIRY),
    (S.PAID, S.READY_FOR_PICKUP): _rule(Cause.READY, only=(Fulfilment.PICKUP,)),
    (S.PAID, S.SHIPPED): _rule(Cause.SHIPMENT, only=(Fulfilment.DELIVERY,)),
    (S.PAID, S.COMPLETED): _rule(Cause.COUNTER_SALE, only=(Fulfilment.COUNTER,)),
    # A paid order is cancelled only by refunding it in full.
    (S.PAID, S.CANCELLED): _rule(Cause.REFUND),
    (S.READY_FOR_PICKUP, S.COMPLETED): _rule(Cause.PICKUP),
    (S.READY_FOR_PICKUP, S.CANCELLED): _rule(Cause.REFUND),
    (S.SHIPPED, S.DELIVERED): _rule(Cause.DELIVERY),
    (S.DELIVERED, S.COMPLETED): _rule(Cause.RECEIPT_CONFIRMED, Cause.AUTO_COMPLETE),
}

CLOSED = (S.COMPLETED, S.CANCELLED)


def transition_allowed(*, order: Order, to: str, cause: str) -> bool:
    rule = TRANSITIONS.get((order.status, to))
    return (
        rule is not None
        and cause in rule.causes
        and (not rule.fulfilments or order.fulfilment in rule.fulfilments)
    )


def order_locked(order: Order | int) -> Order:
    """The order, re-read under a row lock; call inside a transaction."""
    order_id = order if isinstance(order, int) else order.pk
    # ``of``: lock the order only; without it PostgreSQL also locks the joined store row, so
    # every payment in a store queued on it and deadlocked with checkouts (bench/flash_sale.py).
    return Order.objects.select_for_update(of=("self",)).select_related("store").get(pk=order_id)


def order_transition(
    *,
    order: Order | int,
    to: str,
    cause: str,
    actor: User | None = None,
    actor_kind: str = ActorKind.SYSTEM,
    note: str = "",
    data: dict | None = None,
) -> Order:
    """Move the order to ``to`` for ``cause``, or refuse with ``illegal_transition``."""
    with transaction.atomic():
        locked = order_locked(order)
        if not transition_allowed(order=locked, to=to, cause=cause):
            raise BusinessError(
                "illegal_transition",
                _("An order that is “%(status)s” cannot become “%(to)s” this way.")
                % {"status": locked.get_status_display(), "to": S(to).label},
                fields={"status": [locked.status]},
            )
        now = timezone.now()
        changes: dict = {"status": to, "updated_at": now}
        if to == S.PAID:
            changes["paid_at"] = now
        if to in CLOSED:
            changes["closed_at"] = now
        Order.objects.filter(pk=locked.pk).update(**changes)
        from_status = locked.status
        for field, value in changes.items():
            setattr(locked, field, value)
        if locked.member_id is not None:
            _tell_members(locked, now)
        order_event_record(
            order=locked,
            kind=f"order.{to}",
            from_status=from_status,
            to_status=to,
            actor=actor,
            actor_kind=actor_kind,
            note=note or Cause(cause).label,
            data={"cause": cause, **(data or {})},
        )
        return locked


def _tell_members(order: Order, now) -> None:
    """Points, spend, tiers and coupons follow the order, in its transaction."""
    if order.status == S.COMPLETED:
        member_order_completed(
            member_id=order.member_id,
            order_reference=order.number,
            amount_fen=order.paid_fen - order.refunded_fen,
            at=now,
        )
    elif order.status == S.CANCELLED:
        member_order_cancelled(member_id=order.member_id, order_reference=order.number)
    elif order.status == S.PAID:
        member_order_paid(member_id=order.member_id, order_reference=order.number)


def order_event_record(
    *,
    order: Order,
    kind: str,
    actor: User | None,
    actor_kind: str,
    note: str = "",
    data: dict | None = None,
    from_status: str = "",
    to_status: str = "",
) -> OrderEvent:
    """One row in the order's timeline and one outbox event for the outside world."""
    event = OrderEvent.objects.create(
        order=order,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        actor_kind=actor_kind,
        note=str(note)[:200],
        data=data or {},
    )
    outbox_publish(
        event_type=kind,
        aggregate_type="order",
        aggregate_id=order.pk,
        payload=order_snapshot(order, event=event),
    )
    return event


def order_snapshot(order: Order, *, event: OrderEvent) -> dict:
    """What a subscriber needs to act without reading our database: the order as it stands."""
    lines = list(order.lines.order_by("pk"))
    shipments = list(order.shipments.prefetch_related("lines").order_by("pk"))
    return {
        "event": {"kind": event.kind, "at": event.created_at.isoformat(), "data": event.data},
        "order": {
            "id": order.pk,
            "number": order.number,
            "status": order.status,
            "channel": order.channel,
            "fulfilment": order.fulfilment,
            "store": {"id": order.store_id, "code": order.store.code, "name": order.store.name},
            "member_id": order.member_id,
            "subtotal_fen": order.subtotal_fen,
            "discount_fen": order.discount_fen,
            "shipping_fen": order.shipping_fen,
            "total_fen": order.total_fen,
            "paid_fen": order.paid_fen,
            "refunded_fen": order.refunded_fen,
            "address": order.address,
            "note": order.note,
            "pickup_code": order.pickup_code,
            "created_at": order.created_at.isoformat(),
            "paid_at": order.paid_at.isoformat() if order.paid_at else None,
            "lines": [
                {
                    "line_key": line.line_key,
                    "sku_code": line.sku_code,
                    "product_name": line.product_name,
                    "quantity": line.quantity,
                    "unit_price_fen": line.unit_price_fen,
                    "total_fen": line.total_fen,
                }
                for line in lines
            ],
            "shipments": [
                {
                    "carrier_code": shipment.carrier_code,
                    "tracking_number": shipment.tracking_number,
                    "shipped_at": shipment.shipped_at.isoformat(),
                    "line_keys": [line.line_key for line in shipment.lines.all()],
                }
                for shipment in shipments
            ],
        },
    }
