"""Placing orders and moving them along: checkout, cancel, expiry, pickup, shipment, delivery.

Each service owns its transaction. Stock changes go through ``inventory.services``; status
changes through ``orders.transitions.order_transition``; nothing here calls the network.
"""

import math
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from inventory.services import ReserveLine, stock_consume, stock_release, stock_reserve
from members.models import Member
from members.services.coupons import coupon_redeem
from members.services.points import points_redeem
from orders.models import ActorKind, Channel, Fulfilment, Order, OrderLine, Shipment
from orders.pricing import BasketLine, Quote, price_basket
from orders.transitions import Cause, order_event_record, order_locked, order_transition
from retail.errors import BusinessError
from retail.geo import haversine_m
from retail.models import Store

S = Order.Status

ADDRESS_FIELDS = {
    "name": 50,
    "mobile": 11,
    "province": 32,
    "city": 32,
    "district": 32,
    "detail": 200,
}
# Each coordinate and the largest number of degrees it may be, either way (GCJ-02).
COORDINATES = {"latitude": 90, "longitude": 180}


def _refuse(code: str, message: str, *, status_code: int | None = None, **fields: str):
    return BusinessError(
        code, message, fields={k: [v] for k, v in fields.items()}, status_code=status_code
    )


# --- Checkout ----------------------------------------------------------------------------------


def _checked_address(fulfilment: str, address: dict | None) -> dict:
    if fulfilment != Fulfilment.DELIVERY:
        return {}
    address = address or {}
    cleaned = {}
    for field, max_length in ADDRESS_FIELDS.items():
        value = str(address.get(field) or "").strip()
        if not value or len(value) > max_length:
            raise _refuse(
                "invalid_address",
                _("The delivery address needs a valid “%(field)s”.") % {"field": field},
                status_code=400,
                **{f"address.{field}": value[:50]},
            )
        cleaned[field] = value
    if any(address.get(field) is not None for field in COORDINATES):
        # Both or neither: the delivery area is checked on the pair.
        for field, limit in COORDINATES.items():
            value = address.get(field)
            if not _valid_coordinate(value, limit):
                raise _refuse(
                    "invalid_address",
                    _("The delivery address needs a valid “%(field)s”.") % {"field": field},
                    status_code=400,
                    **{f"address.{field}": "" if value is None else str(value)[:50]},
                )
            cleaned[field] = str(value)
    return cleaned


def _valid_coordinate(value, limit: int) -> bool:
    if isinstance(value, bool):
        return False
    try:
        degrees = float(value)
    except (TypeError, ValueError):
        return False
    # Written so that NaN fails too.
    return -limit <= degrees <= limit


def delivery_area_check(
    *, store: Store, address: dict, field: str = "address", value: str = ""
) -> None:
    """Refuse (422 ``address_out_of_range``) a delivery address farther from the store than
    its riders go. Only a store that delivers in the city alone (``delivery_radius_m``, no
    ship-from-store, not a warehouse) is bound: couriers take a parcel anywhere. An address
    without coordinates passes: the H5 address form, the partner API and the staff API have
    none, and the shop's address book makes them optional. ``field`` and ``value`` name the
    input holding the address in the refusal."""
    if address.get("latitude") is None or address.get("longitude") is None:
        return
    couriers = store.kind == Store.Kind.WAREHOUSE or store.offers_ship_from_store
    if couriers or store.delivery_radius_m <= 0:
        return
    distance = haversine_m(
        float(address["latitude"]),
        float(address["longitude"]),
        float(store.latitude),
        float(store.longitude),
    )
    # Inclusive, as the nearest-stores search (inventory.selectors) counts a store in reach.
    if distance <= store.delivery_radius_m:
        return
    raise _refuse(
        "address_out_of_range",
        _("%(store)s delivers within %(radius)d m; this address is %(distance)d m away.")
        % {
            "store": store.name,
            "radius": store.delivery_radius_m,
            "distance": math.ceil(distance),
        },
        status_code=422,
        **{field: value},
    )


def store_serves(store: Store, fulfilment: str) -> bool:
    """Whether an active store offers this fulfilment: the rule checkout applies, which shop
    pages also use to offer only what the store can do."""
    offers = {
        Fulfilment.COUNTER: store.offers_counter_sales,
        Fulfilment.PICKUP: store.offers_pickup,
        Fulfilment.DELIVERY: store.kind == Store.Kind.WAREHOUSE
        or store.offers_ship_from_store
        or store.delivery_radius_m > 0,
    }[Fulfilment(fulfilment)]
    return store.active and offers


def _check_store_serves(store: Store, *, channel: str, fulfilment: str) -> None:
    if (channel == Channel.COUNTER) != (fulfilment == Fulfilment.COUNTER):
        raise _refuse(
            "invalid_fulfilment",
            _("Counter sales are fulfilled at the counter, and only they are."),
            status_code=400,
            fulfilment=fulfilment,
        )
    if not store_serves(store, fulfilment):
        raise _refuse(
            "store_does_not_serve",
            _("%(store)s does not offer this.") % {"store": store.name},
            store=str(store.pk),
            fulfilment=fulfilment,
        )


def _new_number(now: datetime) -> str:
    local = timezone.localtime(now)
    return f"{local:%y%m%d}{secrets.randbelow(10**10):010d}"


def _new_pickup_code(store: Store) -> str:
    for _attempt in range(5):
        code = f"{secrets.randbelow(10**6):06d}"
        taken = Order.objects.filter(
            store=store,
            pickup_code=code,
            status__in=[S.PENDING_PAYMENT, S.PAID, S.READY_FOR_PICKUP],
        ).exists()
        if not taken:
            return code
    raise _refuse("pickup_codes_exhausted", _("Try again in a moment."), status_code=503)


def _payment_minutes(channel: str) -> int:
    if channel == Channel.COUNTER:
        return settings.ORDER_COUNTER_PAYMENT_MINUTES
    return settings.ORDER_PAYMENT_MINUTES


def checkout_place(
    *,
    channel: str,
    store: Store,
    fulfilment: str,
    lines: Sequence[BasketLine],
    client_reference: str,
    member: Member | None = None,
    address: dict | None = None,
    note: str = "",
    coupon_code: str = "",
    points_to_redeem: int = 0,
    actor: User | None = None,
    actor_kind: str = ActorKind.SHOPPER,
) -> Order:
    """Price the basket, hold its stock, spend the coupon and the points and create the order
    ``pending_payment``, all or nothing. A second call with the same ``client_reference`` on
    the same channel returns the first order, whatever its basket. ``points_to_redeem`` is
    what the shopper offers: the pricing function uses what the rules allow of it."""
    if not client_reference or len(client_reference) > 64:
        raise _refuse(
            "invalid_client_reference",
            _("A client reference of 1 to 64 characters is required."),
            status_code=400,
            client_reference=client_reference[:64],
        )
    first = Order.objects.filter(channel=channel, client_reference=client_reference).first()
    if first is not None:
        return first
    # Counter sales may be anonymous; a partner's order is its customer's, not our member's.
    if channel not in (Channel.COUNTER, Channel.PARTNER) and member is None:
        raise _refuse(
            "member_required", _("Online orders need a member."), status_code=400, member=""
        )
    _check_store_serves(store, channel=channel, fulfilment=fulfilment)
    clean_address = _checked_address(fulfilment, address)
    if fulfilment == Fulfilment.DELIVERY:
        delivery_area_check(store=store, address=clean_address)
    quote = price_basket(
        store=store,
        lines=lines,
        fulfilment=fulfilment,
        channel=channel,
        member=member,
        coupon_code=coupon_code,
        points_to_redeem=points_to_redeem,
    )
    for _attempt in range(3):
        try:
            return _place(
                quote,
                channel=channel,
                store=store,
                fulfilment=fulfilment,
                client_reference=client_reference,
                member=member,
                address=clean_address,
                note=note[:200],
                actor=actor,
                actor_kind=actor_kind,
            )
        except IntegrityError:
            # Either the same reference won a race (answer with its order) or a fresh number
            # or pickup code collided (try again with new ones).
            first = Order.objects.filter(channel=channel, client_reference=client_reference).first()
            if first is not None:
                return first
    raise _refuse("checkout_busy", _("Try again in a moment."), status_code=503)


def _place(
    quote: Quote,
    *,
    channel,
    store,
    fulfilment,
    client_reference,
    member,
    address,
    note,
    actor,
    actor_kind,
) -> Order:
    now = timezone.now()
    expires_at = now + timedelta(minutes=_payment_minutes(channel))
    with transaction.atomic():
        order = Order.objects.create(
            number=_new_number(now),
            channel=channel,
            fulfilment=fulfilment,
            store=store,
            member=member,
            client_reference=client_reference,
            subtotal_fen=quote.subtotal_fen,
            discount_fen=quote.discount_fen,
            shipping_fen=quote.shipping_fen,
            total_fen=quote.total_fen,
            pricing=quote.breakdown,
            coupon_code=quote.coupon.code if quote.coupon is not None else "",
            points_redeemed=quote.points_redeemed,
            address=address,
            pickup_code=_new_pickup_code(store) if fulfilment == Fulfilment.PICKUP else "",
            note=note,
            created_by=actor,
            expires_at=expires_at,
        )
        order_lines = OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                sku=line.sku,
                sku_code=line.sku.code,
                product_name=line.sku.product.name,
                attributes=line.sku.attributes,
                unit_price_fen=line.unit_price_fen,
                quantity=line.quantity,
                discount_fen=line.discount_fen,
                total_fen=line.total_fen,
                line_key=f"{order.number}-{index}",
            )
            for index, line in enumerate(quote.lines, start=1)
        )
        # The hold outlives the order's deadline a little, so that expiring the order (which
        # releases it) comes first and a payment arriving on the deadline still finds its goods.
        stock_reserve(
            store=store,
            lines=[ReserveLine(line.sku_id, line.quantity, line.line_key) for line in order_lines],
            online=channel != Channel.COUNTER,
            expires_at=expires_at + timedelta(minutes=settings.ORDER_HOLD_GRACE_MINUTES),
        )
        # Locks in the order every service takes them: stock rows, the member, the coupon.
        if quote.points_redeemed:
            points_redeem(member=member, points=quote.points_redeemed, order_reference=order.number)
        if quote.coupon is not None:
            coupon_redeem(coupon=quote.coupon, member=member, order_reference=order.number, now=now)
        order_event_record(
            order=order,
            kind="order.created",
            to_status=order.status,
            actor=actor,
            actor_kind=actor_kind,
        )
    return order


# --- Cancel and expiry -------------------------------------------------------------------------


def order_release_stock(order: Order) -> None:
    """Free the stock held for every line; lines released already stay so."""
    for line_key in order.lines.values_list("line_key", flat=True):
        stock_release(line_key=line_key)


def order_cancel(
    *,
    order: Order | int,
    cause: str,
    actor: User | None = None,
    actor_kind: str = ActorKind.SYSTEM,
    note: str = "",
) -> Order:
    """Cancel an unpaid order and free its stock. Cancelling a cancelled order changes
    nothing; a paid order is refused (refund it instead)."""
    with transaction.atomic():
        locked = order_locked(order)
        if locked.status == S.CANCELLED:
            return locked
        if locked.status != S.PENDING_PAYMENT:
            raise _refuse(
                "order_paid",
                _("A paid order is cancelled by refunding it."),
                status=locked.status,
            )
        order_release_stock(locked)
        return order_transition(
            order=locked, to=S.CANCELLED, cause=cause, actor=actor, actor_kind=actor_kind, note=note
        )


def orders_expire_unpaid(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Cancel the unpaid orders past their deadline; returns how many. Each is re-checked under
    its lock, so one paid meanwhile is left alone."""
    now = now or timezone.now()
    due = list(
        Order.objects.filter(status=S.PENDING_PAYMENT, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:batch_size]
    )
    expired = 0
    for order_id in due:
        with transaction.atomic():
            locked = order_locked(order_id)
            if locked.status == S.PENDING_PAYMENT and locked.expires_at <= now:
                order_cancel(order=locked, cause=Cause.EXPIRY)
                expired += 1
    return expired


# --- Fulfilment --------------------------------------------------------------------------------


def order_mark_ready(*, order: Order | int, actor: User | None) -> Order:
    """Goods for a pickup order are packed and waiting at the store."""
    return order_transition(
        order=order,
        to=S.READY_FOR_PICKUP,
        cause=Cause.READY,
        actor=actor,
        actor_kind=ActorKind.STAFF,
    )


def pickup_handover(*, store: Store, pickup_code: str, actor: User | None) -> Order:
    """The shopper shows the pickup code at the store: the goods leave, the order completes."""
    with transaction.atomic():
        order = (
            Order.objects.select_for_update()
            .filter(store=store, pickup_code=pickup_code.strip(), fulfilment=Fulfilment.PICKUP)
            .filter(status__in=[S.PAID, S.READY_FOR_PICKUP])
            .first()
        )
        if order is None:
            raise _refuse(
                "pickup_code_unknown",
                _("No order waiting for pickup has this code at this store."),
                status_code=404,
                pickup_code=pickup_code[:8],
            )
        if order.status == S.PAID:
            order = order_mark_ready(order=order, actor=actor)
        for line in order.lines.all():
            stock_consume(line_key=line.line_key, actor=actor, reference=order.number)
        return order_transition(
            order=order, to=S.COMPLETED, cause=Cause.PICKUP, actor=actor, actor_kind=ActorKind.STAFF
        )


def shipment_create(
    *,
    order: Order | int,
    carrier_code: str,
    tracking_number: str,
    line_keys: Sequence[str] | None = None,
    actor: User | None = None,
    actor_kind: str = ActorKind.STAFF,
) -> Shipment:
    """Goods of a paid delivery order left the store with a carrier. ``line_keys`` name the
    lines in this parcel (all unshipped ones when omitted); the order is ``shipped`` once every
    line is. Posting the same carrier and tracking number again returns the first shipment."""
    carrier_code, tracking_number = carrier_code.strip(), tracking_number.strip()
    if (
        not carrier_code
        or not tracking_number
        or len(tracking_number) > 64
        or len(carrier_code) > 32
    ):
        raise _refuse(
            "invalid_tracking",
            _("A carrier code and a tracking number are required."),
            status_code=400,
            tracking_number=tracking_number[:64],
        )
    with transaction.atomic():
        locked = order_locked(order)
        same = Shipment.objects.filter(
            carrier_code=carrier_code, tracking_number=tracking_number
        ).first()
        if same is not None:
            if same.order_id != locked.pk:
                raise _refuse(
                    "tracking_number_taken",
                    _("This tracking number belongs to another order."),
                    tracking_number=tracking_number,
                )
            return same
        if locked.fulfilment != Fulfilment.DELIVERY or locked.status != S.PAID:
            raise _refuse(
                "not_shippable",
                _("Only paid delivery orders can be shipped."),
                status=locked.status,
            )
        unshipped = {line.line_key: line for line in locked.lines.filter(shipped=False)}
        keys = list(unshipped) if line_keys is None else list(dict.fromkeys(line_keys))
        unknown = [key for key in keys if key not in unshipped]
        if unknown or not keys:
            raise _refuse(
                "invalid_shipment_lines",
                _("The parcel must hold lines of this order not shipped yet."),
                status_code=400,
                line_keys=", ".join(unknown)[:200],
            )
        for key in keys:
            stock_consume(line_key=key, actor=actor, reference=locked.number)
        shipment = Shipment.objects.create(
            order=locked,
            carrier_code=carrier_code,
            tracking_number=tracking_number,
            shipped_at=timezone.now(),
            created_by=actor,
        )
        shipment.lines.set([unshipped[key] for key in keys])
        OrderLine.objects.filter(order=locked, line_key__in=keys).update(shipped=True)
        if len(keys) == len(unshipped):
            order_transition(
                order=locked,
                to=S.SHIPPED,
                cause=Cause.SHIPMENT,
                actor=actor,
                actor_kind=actor_kind,
                data={"carrier_code": carrier_code, "tracking_number": tracking_number},
            )
        else:
            order_event_record(
                order=locked,
                kind="order.partially_shipped",
                actor=actor,
                actor_kind=actor_kind,
                data={"carrier_code": carrier_code, "tracking_number": tracking_number},
            )
        return shipment


def order_mark_delivered(
    *, order: Order | int, actor: User | None = None, actor_kind: str = ActorKind.STAFF
) -> Order:
    return order_transition(
        order=order, to=S.DELIVERED, cause=Cause.DELIVERY, actor=actor, actor_kind=actor_kind
    )


def order_delivery_failed(
    *, order: Order | int, reason: str, actor: User | None = None, actor_kind: str
) -> Order:
    """The carrier could not hand a shipped order over (nobody home, refused, damaged): the
    order stays ``shipped`` and the attempt goes on its timeline for staff to act on."""
    reason = reason.strip()
    if not reason:
        raise _refuse(
            "reason_required",
            _("Say why the delivery failed."),
            status_code=400,
            reason="",
        )
    with transaction.atomic():
        locked = order_locked(order)
        if locked.status != S.SHIPPED:
            raise _refuse(
                "not_in_delivery",
                _("Only a shipped order can fail to be delivered."),
                status=locked.status,
            )
        order_event_record(
            order=locked,
            kind="order.delivery_failed",
            actor=actor,
            actor_kind=actor_kind,
            note=reason,
            data={"reason": reason[:200]},
        )
        return locked


def order_address_change(
    *,
    order: Order | int,
    address: dict,
    actor: User | None = None,
    actor_kind: str = ActorKind.STAFF,
) -> Order:
    """A new delivery address for a delivery order none of whose goods has left yet (waiting
    for payment or paid). Whoever fulfils it hears of it through the ``order.address_changed``
    event. The same address again changes nothing."""
    with transaction.atomic():
        locked = order_locked(order)
        if locked.fulfilment != Fulfilment.DELIVERY:
            raise _refuse(
                "not_a_delivery",
                _("Only delivery orders have a delivery address."),
                fulfilment=locked.fulfilment,
            )
        if (
            locked.status not in (S.PENDING_PAYMENT, S.PAID)
            or locked.lines.filter(shipped=True).exists()
        ):
            raise _refuse(
                "address_locked",
                _("The goods have left: the address can no longer change."),
                status=locked.status,
            )
        clean = _checked_address(Fulfilment.DELIVERY, address)
        if clean == locked.address:
            return locked
        previous = locked.address
        locked.address = clean
        locked.updated_at = timezone.now()
        Order.objects.filter(pk=locked.pk).update(address=clean, updated_at=locked.updated_at)
        order_event_record(
            order=locked,
            kind="order.address_changed",
            actor=actor,
            actor_kind=actor_kind,
            data={"previous_city": previous.get("city", ""), "city": clean["city"]},
        )
        return locked


def order_confirm_receipt(*, order: Order | int, actor: User | None = None) -> Order:
    """The shopper says the goods arrived: a shipped order is delivered, then completed."""
    with transaction.atomic():
        locked = order_locked(order)
        if locked.status == S.SHIPPED:
            locked = order_mark_delivered(order=locked, actor=actor, actor_kind=ActorKind.SHOPPER)
        return order_transition(
            order=locked,
            to=S.COMPLETED,
            cause=Cause.RECEIPT_CONFIRMED,
            actor=actor,
            actor_kind=ActorKind.SHOPPER,
        )


def orders_auto_complete(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Complete orders delivered more than ``ORDER_AUTO_COMPLETE_DAYS`` ago."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.ORDER_AUTO_COMPLETE_DAYS)
    due = list(
        Order.objects.filter(status=S.DELIVERED, updated_at__lte=cutoff)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:batch_size]
    )
    completed = 0
    for order_id in due:
        with transaction.atomic():
            locked = order_locked(order_id)
            if locked.status == S.DELIVERED:
                order_transition(order=locked, to=S.COMPLETED, cause=Cause.AUTO_COMPLETE)
                completed += 1
    return completed
