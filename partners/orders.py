"""What partners do to orders through their API: a sales channel places and cancels its orders;
a fulfilment partner acknowledges the orders routed to it, posts shipments and delivery events.

Every service takes the partner and the order number and finds the order among the partner's
own (``partner_order_find``): another partner's order is a 404, as an unknown one. The writes
themselves are the orders services'; these add who may ask for what.
"""

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from orders import payments, services
from orders.models import ActorKind, Channel, Fulfilment, Order, Refund, Shipment
from orders.pricing import BasketLine
from orders.transitions import Cause, order_event_record, order_locked
from partners.models import Partner, PartnerOrder
from partners.routing import partner_serves
from partners.settlement import PROVIDER
from retail.errors import BusinessError
from retail.models import SKU, Store

S = Order.Status
SELLING_KINDS = (Partner.Kind.SALES_CHANNEL, Partner.Kind.BOTH)
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def _refuse(code: str, message: str, *, status_code: int | None = None, **fields: str):
    return BusinessError(
        code, message, fields={k: [str(v)] for k, v in fields.items()}, status_code=status_code
    )


def partner_order_find(*, partner: Partner, number: str, role: str | None = None) -> PartnerOrder:
    """The partner's link to the order ``number``; 404 ``not_found`` for an order that is not
    the partner's (or not in ``role``), so partners learn nothing of each other's orders."""
    links = PartnerOrder.objects.filter(partner=partner, order__number=number)
    if role is not None:
        links = links.filter(role=role)
    link = links.select_related("order").order_by("role").first()
    if link is None:
        raise _refuse("not_found", _("No such order among this partner's."), status_code=404)
    return link


# --- Sales channel -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderRequest:
    store_code: str
    fulfilment: str
    lines: Sequence[tuple[str, int]]  # (SKU code, quantity)
    address: dict
    note: str = ""

    def digest(self) -> str:
        canonical = json.dumps(
            {
                "store": self.store_code,
                "fulfilment": self.fulfilment,
                "lines": sorted([code, quantity] for code, quantity in self.lines),
                "address": self.address,
                "note": self.note,
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def _check_seller(partner: Partner) -> None:
    if partner.kind not in SELLING_KINDS:
        raise _refuse(
            "not_a_sales_channel",
            _("Only sales-channel partners place orders."),
            status_code=403,
        )


def _replay(link: PartnerOrder, request: OrderRequest, partner: Partner) -> PartnerOrder:
    """The first order of a repeated key, settled (should the first call have stopped short
    of it); the key with another request is refused."""
    if link.request_digest != request.digest():
        raise _refuse(
            "idempotency_key_reused",
            _("This Idempotency-Key was used for another order request."),
            status_code=422,
            idempotency_key=link.idempotency_key,
        )
    _settle(link.order, partner)
    link.order.refresh_from_db()
    return link


def partner_order_place(
    *, partner: Partner, idempotency_key: str, request: OrderRequest
) -> tuple[PartnerOrder, bool]:
    """A sales channel's order, paid by the partner: priced by the one pricing function,
    its stock reserved and committed, then routed like any paid order. Returns the link and
    whether it is new. The same ``Idempotency-Key`` again (also at the same time) returns the
    first order; with another request it is refused (``idempotency_key_reused``)."""
    _check_seller(partner)
    if not IDEMPOTENCY_KEY.match(idempotency_key or ""):
        raise _refuse(
            "idempotency_key_required",
            _("Send an Idempotency-Key header of 8 to 64 letters, digits or . _ : -."),
            status_code=400,
            idempotency_key=(idempotency_key or "")[:64],
        )
    first = PartnerOrder.objects.filter(
        partner=partner, role=PartnerOrder.Role.SELL, idempotency_key=idempotency_key
    ).select_related("order")
    if (link := first.first()) is not None:
        return _replay(link, request, partner), False
    store = Store.objects.filter(code=request.store_code).first()
    if store is None or not _serves(partner, store):
        raise _refuse(
            "store_not_found", _("No such store."), status_code=404, store=request.store_code
        )
    if request.fulfilment not in (Fulfilment.DELIVERY, Fulfilment.PICKUP):
        raise _refuse(
            "invalid_fulfilment",
            _("Partner orders are delivered or picked up."),
            status_code=400,
            fulfilment=request.fulfilment,
        )
    basket = _basket(request.lines)
    reference = f"{partner.pk}:{idempotency_key}"
    try:
        with transaction.atomic():
            order = services.checkout_place(
                channel=Channel.PARTNER,
                store=store,
                fulfilment=request.fulfilment,
                lines=basket,
                client_reference=reference,
                address=request.address,
                note=request.note,
                actor_kind=ActorKind.PARTNER,
            )
            link, created = PartnerOrder.objects.get_or_create(
                order=order,
                role=PartnerOrder.Role.SELL,
                defaults={
                    "partner": partner,
                    "idempotency_key": idempotency_key,
                    "request_digest": request.digest(),
                },
            )
    except IntegrityError:
        # The same key won a race in another request: answer with its order.
        link = first.get()
        created = False
    if not created:
        return _replay(link, request, partner), False
    _settle(link.order, partner)
    link.order.refresh_from_db()
    return link, True


def _serves(partner: Partner, store: Store) -> bool:
    return store.active and partner_serves(partner, store)


def _basket(lines: Sequence[tuple[str, int]]) -> list[BasketLine]:
    codes = [code for code, _quantity in lines]
    skus = dict(SKU.objects.filter(code__in=codes).values_list("code", "pk"))
    unknown = [code for code in codes if code not in skus]
    if unknown:
        raise _refuse(
            "sku_not_found", _("No such SKU."), status_code=400, sku=", ".join(unknown)[:200]
        )
    return [BasketLine(sku_id=skus[code], quantity=quantity) for code, quantity in lines]


def _settle(order: Order, partner: Partner) -> None:
    """The partner has the money: the order is paid in full (once, however often asked)."""
    if order.status != S.PENDING_PAYMENT:
        return
    try:
        payment, _result = payments.payment_start(order=order, provider=PROVIDER)
    except BusinessError as refused:
        if refused.code == "order_not_payable":
            return  # paid by a racing repeat of the same request
        raise
    payments.payment_confirm(
        provider=PROVIDER,
        out_trade_no=payment.out_trade_no,
        transaction_id=f"partner-{partner.pk}-{order.number}",
        amount_fen=payment.amount_fen,
        payload={"partner_id": partner.pk},
    )


def partner_order_cancel(*, partner: Partner, number: str, reason: str) -> Order:
    """A sales channel cancels its order before the goods leave: the money goes back in full
    through the partner, which cancels the order and frees its stock. Cancelling a cancelled
    order changes nothing; one on its way is refused (``illegal_transition``)."""
    _check_seller(partner)
    link = partner_order_find(partner=partner, number=number, role=PartnerOrder.Role.SELL)
    reason = (reason or "").strip()[:200] or _("Cancelled by the sales channel.")
    order = link.order
    if order.status == S.CANCELLED:
        return order
    if order.status == S.PENDING_PAYMENT:
        return services.order_cancel(
            order=order, cause=Cause.STAFF, actor_kind=ActorKind.PARTNER, note=reason
        )
    if (
        order.status not in (S.PAID, S.READY_FOR_PICKUP)
        or order.lines.filter(shipped=True).exists()
    ):
        raise _refuse(
            "illegal_transition",
            _("The goods have left: the order can no longer be cancelled."),
            status=order.status,
        )
    owed = order.paid_fen - order.refunded_fen
    if owed > 0 and not order.refunds.filter(status=Refund.Status.PENDING).exists():
        refund = payments.refund_create(order=order, amount_fen=owed, reason=reason, actor=None)
        payments.refund_submit(refund_id=refund.pk)
    order.refresh_from_db()
    return order


# --- Fulfilment ---------------------------------------------------------------------------------


def partner_order_acknowledge(*, partner: Partner, number: str) -> PartnerOrder:
    """The partner has taken the order in. The first acknowledgement is kept; a repeat changes
    nothing."""
    link = partner_order_find(partner=partner, number=number)
    with transaction.atomic():
        order_locked(link.order)
        now = timezone.now()
        updated = PartnerOrder.objects.filter(pk=link.pk, acknowledged_at__isnull=True).update(
            acknowledged_at=now
        )
        if updated:
            link.acknowledged_at = now
            order_event_record(
                order=link.order,
                kind="partner.acknowledged",
                actor=None,
                actor_kind=ActorKind.PARTNER,
                note=partner.name,
                data={"partner_id": partner.pk},
            )
        else:
            link.refresh_from_db(fields=["acknowledged_at"])
    return link


def _fulfilling(partner: Partner, number: str) -> PartnerOrder:
    """The partner's link to an order routed to it; ``not_the_fulfiller`` (403) for an order
    it only sold, 404 for one that is not its own at all."""
    try:
        return partner_order_find(partner=partner, number=number, role=PartnerOrder.Role.FULFIL)
    except BusinessError:
        partner_order_find(partner=partner, number=number)
        raise _refuse(
            "not_the_fulfiller",
            _("This order is not fulfilled by this partner."),
            status_code=403,
        ) from None


def partner_shipment_post(
    *,
    partner: Partner,
    number: str,
    carrier_code: str,
    tracking_number: str,
    line_keys: Sequence[str] | None,
) -> tuple[Shipment, bool]:
    """A parcel left with ``carrier_code`` and ``tracking_number``: returns it and whether it
    is new. The order is ``shipped`` once every line has left (split shipments: one call per
    parcel), which the WeChat sync carries to WeChat. The same tracking number again returns
    the first shipment."""
    link = _fulfilling(partner, number)
    existing = Shipment.objects.filter(
        order=link.order, carrier_code=carrier_code.strip(), tracking_number=tracking_number.strip()
    ).exists()
    shipment = services.shipment_create(
        order=link.order,
        carrier_code=carrier_code,
        tracking_number=tracking_number,
        line_keys=line_keys,
        actor_kind=ActorKind.PARTNER,
    )
    return shipment, not existing


def partner_delivery_event(*, partner: Partner, number: str, status: str, reason: str) -> Order:
    """The carrier's word on a shipped order: ``delivered`` (a repeat, or one for an order
    completed since, changes nothing) or ``failed`` with a reason (on the timeline; the order
    stays shipped)."""
    link = _fulfilling(partner, number)
    if status == "delivered":
        with transaction.atomic():
            order = order_locked(link.order)
            if order.status in (S.DELIVERED, S.COMPLETED):
                return order
            return services.order_mark_delivered(order=order, actor_kind=ActorKind.PARTNER)
    if status == "failed":
        return services.order_delivery_failed(
            order=link.order, reason=reason, actor_kind=ActorKind.PARTNER
        )
    raise _refuse(
        "invalid_delivery_status",
        _("A delivery event is “delivered” or “failed”."),
        status_code=400,
        status=status,
    )
