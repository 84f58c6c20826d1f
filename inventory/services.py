"""Every write to stock goes through here.

Two rules keep stock right under any concurrency:

* a change is one guarded ``UPDATE ... WHERE <enough stock>``: the database row lock serialises
  racing writers and the guard makes the loser see the winner's numbers, so no read-then-write
  window exists; multi-line changes touch rows in primary-key order, so two baskets taking the
  same SKUs in opposite order queue instead of deadlocking;
* every change has a key that the database keeps unique (the ledger's ``idempotency_key``, the
  reservation's ``line_key``): a repeated call finds the first result instead of applying twice.

The outermost caller owns the transaction; these functions open savepoints of their own and
never call the network.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from inventory.models import Reservation, StockItem, StockMovement
from retail.errors import BusinessError
from retail.models import SKU, Store

Reason = StockMovement.Reason
Status = Reservation.Status


class InsufficientStock(BusinessError):
    def __init__(self, *, sku: SKU | int, store: Store | int, requested: int) -> None:
        sku_id = sku if isinstance(sku, int) else sku.pk
        super().__init__(
            "insufficient_stock",
            _("Not enough stock for this item."),
            fields={"sku": [str(sku_id)], "quantity": [str(requested)]},
        )
        self.sku_id = sku_id
        self.store_id = store if isinstance(store, int) else store.pk


def _refuse(code: str, message: str, **fields: str) -> BusinessError:
    return BusinessError(code, message, fields={k: [v] for k, v in fields.items()})


def _positive(quantity: int) -> None:
    if quantity <= 0:
        raise _refuse(
            "invalid_quantity",
            _("Quantity must be a positive whole number."),
            quantity=str(quantity),
        )


def stock_item_for(*, store: Store | int, sku: SKU | int) -> StockItem:
    """The stock row of a SKU in a store, created empty on first use (race-safe)."""
    store_id = store if isinstance(store, int) else store.pk
    sku_id = sku if isinstance(sku, int) else sku.pk
    try:
        with transaction.atomic():
            item, _created = StockItem.objects.get_or_create(store_id=store_id, sku_id=sku_id)
    except IntegrityError:
        item = StockItem.objects.get(store_id=store_id, sku_id=sku_id)
    return item


# --- The ledger --------------------------------------------------------------------------------


def _ledger_apply(
    *,
    item: StockItem,
    quantity: int,
    reason: str,
    idempotency_key: str,
    actor: User | None,
    reference: str,
    release_reserved: int = 0,
) -> StockMovement:
    """Change ``on_hand`` by ``quantity`` (and ``reserved`` by ``-release_reserved``), write
    the ledger row, or return the row written before under the same key.

    The guard keeps ``reserved <= on_hand``: a decrease may only take units nobody reserved,
    unless they are the reservation being consumed (``release_reserved``).
    """
    existing = StockMovement.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            updated = StockItem.objects.filter(
                pk=item.pk,
                on_hand__gte=F("reserved") - release_reserved - quantity,
                reserved__gte=release_reserved,
            ).update(
                on_hand=F("on_hand") + quantity,
                reserved=F("reserved") - release_reserved,
                updated_at=timezone.now(),
            )
            if not updated:
                raise InsufficientStock(sku=item.sku_id, store=item.store_id, requested=-quantity)
            on_hand = StockItem.objects.values_list("on_hand", flat=True).get(pk=item.pk)
            return StockMovement.objects.create(
                stock_item=item,
                quantity=quantity,
                on_hand_after=on_hand,
                reason=reason,
                actor=actor,
                reference=reference,
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        # A concurrent call with the same key won; its movement is the answer.
        movement = StockMovement.objects.filter(idempotency_key=idempotency_key).first()
        if movement is None:
            raise
        return movement


@dataclass(frozen=True)
class StockLine:
    sku: SKU | int
    quantity: int

    @property
    def sku_id(self) -> int:
        return self.sku if isinstance(self.sku, int) else self.sku.pk


def _items_in_lock_order(
    store: Store | int, lines: Sequence[StockLine]
) -> list[tuple[StockItem, StockLine]]:
    """The stock rows of ``lines`` (created empty where missing), each paired with its line,
    sorted by primary key: the order every writer takes row locks in."""
    store_id = store if isinstance(store, int) else store.pk
    items = {
        item.sku_id: item
        for item in StockItem.objects.filter(
            store_id=store_id, sku_id__in=[line.sku_id for line in lines]
        )
    }
    pairs = [
        (items.get(line.sku_id) or stock_item_for(store=store_id, sku=line.sku_id), line)
        for line in lines
    ]
    return sorted(pairs, key=lambda pair: pair[0].pk)


def _ledger_lines(
    *,
    store: Store | int,
    lines: Sequence[StockLine],
    reason: str,
    sign: int,
    idempotency_key: str,
    actor: User | None,
    reference: str,
) -> list[StockMovement]:
    skus = [line.sku_id for line in lines]
    if len(set(skus)) != len(skus):
        raise _refuse("duplicate_line", _("Each SKU may appear only once."))
    for line in lines:
        _positive(line.quantity)
    with transaction.atomic():
        return [
            _ledger_apply(
                item=item,
                quantity=sign * line.quantity,
                reason=reason,
                idempotency_key=f"{idempotency_key}:{item.sku_id}",
                actor=actor,
                reference=reference,
            )
            for item, line in _items_in_lock_order(store, lines)
        ]


def stock_receive(
    *,
    store: Store | int,
    lines: Sequence[StockLine],
    idempotency_key: str,
    actor: User | None = None,
    reference: str = "",
) -> list[StockMovement]:
    """Goods arrived from a supplier (a delivery note is one call, one key)."""
    return _ledger_lines(
        store=store,
        lines=lines,
        reason=Reason.RECEIPT,
        sign=1,
        idempotency_key=f"receipt:{idempotency_key}",
        actor=actor,
        reference=reference,
    )


def stock_sell_at_counter(
    *,
    store: Store | int,
    lines: Sequence[StockLine],
    idempotency_key: str,
    actor: User | None = None,
    reference: str = "",
) -> list[StockMovement]:
    """Goods leave over the counter at once. The shelf's safety stock is for exactly these
    shoppers, so a counter sale may take it; units reserved for orders it may not."""
    return _ledger_lines(
        store=store,
        lines=lines,
        reason=Reason.COUNTER_SALE,
        sign=-1,
        idempotency_key=f"counter:{idempotency_key}",
        actor=actor,
        reference=reference,
    )


def stock_return(
    *,
    store: Store | int,
    lines: Sequence[StockLine],
    idempotency_key: str,
    actor: User | None = None,
    reference: str = "",
) -> list[StockMovement]:
    """Sold goods came back in sellable condition."""
    return _ledger_lines(
        store=store,
        lines=lines,
        reason=Reason.RETURN,
        sign=1,
        idempotency_key=f"return:{idempotency_key}",
        actor=actor,
        reference=reference,
    )


def stock_write_off(
    *,
    store: Store | int,
    lines: Sequence[StockLine],
    idempotency_key: str,
    actor: User | None = None,
    reference: str = "",
) -> list[StockMovement]:
    """Damaged, expired or lost goods leave the books."""
    return _ledger_lines(
        store=store,
        lines=lines,
        reason=Reason.DAMAGE,
        sign=-1,
        idempotency_key=f"damage:{idempotency_key}",
        actor=actor,
        reference=reference,
    )


# --- Reservations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReserveLine(StockLine):
    line_key: str


def _hold_expiry() -> datetime:
    return timezone.now() + timedelta(minutes=settings.STOCK_HOLD_MINUTES)


def stock_reserve(
    *,
    store: Store | int,
    lines: Sequence[ReserveLine],
    online: bool = True,
    expires_at: datetime | None = None,
) -> list[Reservation]:
    """Hold units for order lines until ``expires_at``: all lines or none.

    Online channels leave the safety stock alone. Reserving a line again returns its first
    reservation unchanged, whatever was asked the second time.
    """
    keys = [line.line_key for line in lines]
    if len(set(keys)) != len(keys):
        raise _refuse("duplicate_line", _("Each order line may be reserved only once."))
    for line in lines:
        _positive(line.quantity)
    expires_at = expires_at or _hold_expiry()

    with transaction.atomic():
        if len(lines) == 1:
            [(item, line)] = _items_in_lock_order(store, lines)
            reservations = [_reserve_line(item, line, online=online, expires_at=expires_at)]
        else:
            reservations = _reserve_basket(store, lines, online=online, expires_at=expires_at)
    return sorted(reservations, key=lambda reservation: keys.index(reservation.line_key))


def _reserve_line(
    item: StockItem, line: ReserveLine, *, online: bool, expires_at: datetime
) -> Reservation:
    existing = Reservation.objects.filter(line_key=line.line_key).first()
    if existing is not None:
        return existing
    kept_back = F("safety_stock") if online else 0
    try:
        with transaction.atomic():
            updated = StockItem.objects.filter(
                pk=item.pk, on_hand__gte=F("reserved") + kept_back + line.quantity
            ).update(reserved=F("reserved") + line.quantity, updated_at=timezone.now())
            if not updated:
                raise InsufficientStock(
                    sku=item.sku_id, store=item.store_id, requested=line.quantity
                )
            return Reservation.objects.create(
                stock_item=item,
                line_key=line.line_key,
                quantity=line.quantity,
                expires_at=expires_at,
            )
    except IntegrityError:
        reservation = Reservation.objects.filter(line_key=line.line_key).first()
        if reservation is None:
            raise
        return reservation


def _reserve_basket(
    store: Store | int, lines: Sequence[ReserveLine], *, online: bool, expires_at: datetime
) -> list[Reservation]:
    """Several lines at once, in a fixed number of queries whatever their count: lock the
    stock rows in primary-key order, check every line against the locked numbers, then one
    UPDATE for all rows and one INSERT for all reservations."""
    store_id = store if isinstance(store, int) else store.pk
    found = {
        r.line_key: r
        for r in Reservation.objects.filter(line_key__in=[ln.line_key for ln in lines])
    }
    new_lines = [line for line in lines if line.line_key not in found]
    if not new_lines:
        return list(found.values())
    wanted: dict[int, int] = {}
    for line in new_lines:
        wanted[line.sku_id] = wanted.get(line.sku_id, 0) + line.quantity
    items = {
        item.sku_id: item
        for item in StockItem.objects.select_for_update()
        .filter(store_id=store_id, sku_id__in=list(wanted))
        .order_by("pk")
    }
    for sku_id, quantity in wanted.items():
        item = items.get(sku_id)
        kept_back = item.safety_stock if item is not None and online else 0
        if item is None or item.on_hand - item.reserved - kept_back < quantity:
            raise InsufficientStock(sku=sku_id, store=store_id, requested=quantity)
    try:
        with transaction.atomic():
            StockItem.objects.filter(pk__in=[item.pk for item in items.values()]).update(
                reserved=F("reserved")
                + Case(
                    *[When(pk=items[sku].pk, then=Value(qty)) for sku, qty in wanted.items()],
                    output_field=IntegerField(),
                ),
                updated_at=timezone.now(),
            )
            created = Reservation.objects.bulk_create(
                Reservation(
                    stock_item=items[line.sku_id],
                    line_key=line.line_key,
                    quantity=line.quantity,
                    expires_at=expires_at,
                )
                for line in new_lines
            )
    except IntegrityError:
        # A racing call reserved the same lines first: its reservations are the answer.
        return list(Reservation.objects.filter(line_key__in=[ln.line_key for ln in lines]))
    return [*found.values(), *created]


def _locked_reservation(line_key: str) -> Reservation:
    reservation = (
        Reservation.objects.select_for_update()
        .select_related("stock_item")
        .filter(line_key=line_key)
        .first()
    )
    if reservation is None:
        raise BusinessError(
            "reservation_not_found",
            _("No reservation for this order line."),
            fields={"line_key": [line_key]},
            status_code=404,
        )
    return reservation


def _set_status(reservation: Reservation, status: str, **changes) -> None:
    Reservation.objects.filter(pk=reservation.pk).update(
        status=status, updated_at=timezone.now(), **changes
    )
    reservation.status = status
    for field, value in changes.items():
        setattr(reservation, field, value)


def stock_commit(*, line_key: str) -> Reservation:
    """The order is paid: its units stay held with no expiry."""
    with transaction.atomic():
        reservation = _locked_reservation(line_key)
        if reservation.status == Status.HELD:
            _set_status(reservation, Status.COMMITTED, expires_at=None)
        elif reservation.status == Status.RELEASED:
            raise _refuse(
                "reservation_released",
                _("The reservation was released; reserve the stock again."),
                line_key=line_key,
            )
        return reservation


def stock_consume(
    *, line_key: str, actor: User | None = None, reference: str = "", at_counter: bool = False
) -> StockMovement:
    """The goods left (shipped, picked up, or handed over the counter when ``at_counter``):
    reserved units leave ``on_hand`` for good."""
    with transaction.atomic():
        reservation = _locked_reservation(line_key)
        if reservation.status == Status.RELEASED:
            raise _refuse(
                "reservation_released",
                _("The reservation was released; its goods cannot leave."),
                line_key=line_key,
            )
        movement = _ledger_apply(
            item=reservation.stock_item,
            quantity=-reservation.quantity,
            reason=Reason.COUNTER_SALE if at_counter else Reason.ONLINE_FULFILMENT,
            idempotency_key=f"consume:{line_key}",
            actor=actor,
            reference=reference or line_key,
            release_reserved=reservation.quantity,
        )
        if reservation.status != Status.CONSUMED:
            _set_status(reservation, Status.CONSUMED, expires_at=None)
        return movement


def stock_release(*, line_key: str) -> Reservation:
    """The order was cancelled or its hold expired: the units are for sale again."""
    with transaction.atomic():
        reservation = _locked_reservation(line_key)
        if reservation.status == Status.CONSUMED:
            raise _refuse(
                "reservation_consumed",
                _("The goods already left; record a return instead."),
                line_key=line_key,
            )
        if reservation.status in Reservation.ACTIVE:
            StockItem.objects.filter(pk=reservation.stock_item_id).update(
                reserved=F("reserved") - reservation.quantity, updated_at=timezone.now()
            )
            _set_status(reservation, Status.RELEASED, expires_at=None)
        return reservation


def stock_release_expired(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Release holds whose time ran out; returns how many. Safe beside other workers: each
    hold is re-checked under its lock, so a hold paid meanwhile stays."""
    now = now or timezone.now()
    released = 0
    for line_key in _expired_line_keys(now, batch_size):
        with transaction.atomic():
            reservation = _locked_reservation(line_key)
            if reservation.status == Status.HELD and reservation.expires_at <= now:
                stock_release(line_key=line_key)
                released += 1
    return released


def _expired_line_keys(now: datetime, batch_size: int) -> Iterable[str]:
    return list(
        Reservation.objects.filter(status=Status.HELD, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("line_key", flat=True)[:batch_size]
    )
