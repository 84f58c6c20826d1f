"""Store stock operations: transfers between stores, stock counts and a stock row's settings.

These are documents staff fill in and then act on. Acting on one (sending, receiving, applying)
changes ``on_hand`` only through the ledger (``services._ledger_apply``), one row per line, with
a key derived from the document and the SKU: running an action twice finds the rows of the
first run instead of moving the goods again.

Each service owns its transaction and locks the document row first, then the stock rows in
primary-key order, the order every stock writer takes them in. Who may act on which store is
the caller's question (the admin asks ``retail.access``); the actor goes into the ledger.
"""

from collections.abc import Mapping, Sequence

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from inventory.models import (
    StockCount,
    StockCountLine,
    StockItem,
    StockMovement,
    Transfer,
    TransferLine,
)
from inventory.services import StockLine, _items_in_lock_order, _ledger_apply
from retail.errors import BusinessError
from retail.models import SKU, Store

Reason = StockMovement.Reason


def _refuse(code: str, message: str, **fields: str) -> BusinessError:
    return BusinessError(code, message, fields={k: [v] for k, v in fields.items()})


def _sku_id(sku: SKU | int) -> int:
    return sku if isinstance(sku, int) else sku.pk


# --- Transfers ---------------------------------------------------------------------------------


def _transfer_reference(transfer: Transfer) -> str:
    return f"TR{transfer.pk:06d}"


def _check_transfer(*, from_store: Store, to_store: Store, lines: Sequence[StockLine]) -> None:
    if from_store.pk == to_store.pk:
        raise _refuse(
            "transfer_same_store",
            _("A transfer needs two different stores."),
            to_store=str(to_store.pk),
        )
    if not to_store.active:
        raise _refuse(
            "store_inactive",
            _("The receiving store is closed."),
            to_store=str(to_store.pk),
        )
    if not lines:
        raise _refuse("transfer_empty", _("A transfer needs at least one line."))
    seen: set[int] = set()
    for line in lines:
        if line.sku_id in seen:
            raise _refuse(
                "duplicate_line", _("Each SKU may appear only once."), sku=str(line.sku_id)
            )
        seen.add(line.sku_id)
        if line.quantity <= 0:
            raise _refuse(
                "invalid_quantity",
                _("Quantity must be a positive whole number."),
                sku=str(line.sku_id),
                quantity=str(line.quantity),
            )


def _write_transfer_lines(transfer: Transfer, lines: Sequence[StockLine]) -> None:
    TransferLine.objects.bulk_create(
        TransferLine(transfer=transfer, sku_id=line.sku_id, quantity_sent=line.quantity)
        for line in lines
    )


def _locked_transfer(transfer: Transfer) -> Transfer:
    return Transfer.objects.select_for_update().get(pk=transfer.pk)


def transfer_create(
    *,
    from_store: Store,
    to_store: Store,
    lines: Sequence[StockLine],
    actor: User | None,
    note: str = "",
) -> Transfer:
    """A draft transfer: nothing moves until it is sent."""
    _check_transfer(from_store=from_store, to_store=to_store, lines=lines)
    with transaction.atomic():
        transfer = Transfer.objects.create(
            from_store=from_store, to_store=to_store, note=note, created_by=actor
        )
        _write_transfer_lines(transfer, lines)
    return transfer


def transfer_revise(
    *,
    transfer: Transfer,
    from_store: Store,
    to_store: Store,
    lines: Sequence[StockLine],
    note: str = "",
) -> Transfer:
    """Change a draft before it leaves: its stores, its note, and its lines as a whole."""
    _check_transfer(from_store=from_store, to_store=to_store, lines=lines)
    with transaction.atomic():
        locked = _locked_transfer(transfer)
        if locked.status != Transfer.Status.DRAFT:
            raise _refuse("transfer_not_draft", _("Only a draft transfer can be changed."))
        locked.from_store = from_store
        locked.to_store = to_store
        locked.note = note
        locked.save(update_fields=["from_store", "to_store", "note"])
        locked.lines.all().delete()
        _write_transfer_lines(locked, lines)
    return locked


def transfer_send(*, transfer: Transfer, actor: User | None) -> Transfer:
    """The goods leave the sending store: every line or none. Sending again changes nothing."""
    with transaction.atomic():
        locked = _locked_transfer(transfer)
        if locked.status == Transfer.Status.IN_TRANSIT:
            return locked
        if locked.status == Transfer.Status.RECEIVED:
            raise _refuse(
                "transfer_already_received", _("This transfer has already been received.")
            )
        lines = [StockLine(line.sku_id, line.quantity_sent) for line in locked.lines.all()]
        if not lines:
            raise _refuse("transfer_empty", _("A transfer needs at least one line."))
        # A line short of stock raises out of this block and takes the lines before it back.
        for item, line in _items_in_lock_order(locked.from_store_id, lines):
            _ledger_apply(
                item=item,
                quantity=-line.quantity,
                reason=Reason.TRANSFER_OUT,
                idempotency_key=f"transfer:{locked.pk}:out:{line.sku_id}",
                actor=actor,
                reference=_transfer_reference(locked),
            )
        locked.status = Transfer.Status.IN_TRANSIT
        locked.sent_at = timezone.now()
        locked.save(update_fields=["status", "sent_at"])
    return locked


def _received_quantities(
    lines: Sequence[TransferLine], received: Mapping[int, int] | None
) -> dict[int, int]:
    """What arrived per SKU, checked: every line stated, none above what was sent. A line left
    out is refused rather than read as zero, so a slip of the hand is not booked as a loss."""
    if received is None:
        return {line.sku_id: line.quantity_sent for line in lines}
    sent = {line.sku_id: line.quantity_sent for line in lines}
    for sku_id in received:
        if sku_id not in sent:
            raise _refuse(
                "invalid_received_quantity",
                _("This SKU is not on the transfer."),
                sku=str(sku_id),
            )
    for sku_id, quantity_sent in sent.items():
        quantity = received.get(sku_id)
        if quantity is None or not 0 <= quantity <= quantity_sent:
            raise _refuse(
                "invalid_received_quantity",
                _("The quantity received must be between 0 and the quantity sent."),
                sku=str(sku_id),
                quantity=str(quantity),
            )
    return dict(received)


def transfer_receive(
    *, transfer: Transfer, received: Mapping[int, int] | None = None, actor: User | None
) -> Transfer:
    """The goods arrive: what came in (``received``, SKU id to quantity; None means everything
    sent) enters the receiving store, and what did not stays on the line as its discrepancy.
    Receiving again changes nothing."""
    with transaction.atomic():
        locked = _locked_transfer(transfer)
        if locked.status == Transfer.Status.RECEIVED:
            return locked
        if locked.status == Transfer.Status.DRAFT:
            raise _refuse("transfer_not_sent", _("This transfer has not been sent yet."))
        lines = list(locked.lines.all())
        quantities = _received_quantities(lines, received)
        arrived = [StockLine(sku_id, count) for sku_id, count in quantities.items() if count > 0]
        for item, line in _items_in_lock_order(locked.to_store_id, arrived):
            _ledger_apply(
                item=item,
                quantity=line.quantity,
                reason=Reason.TRANSFER_IN,
                idempotency_key=f"transfer:{locked.pk}:in:{line.sku_id}",
                actor=actor,
                reference=_transfer_reference(locked),
            )
        for line in lines:
            line.quantity_received = quantities[line.sku_id]
        TransferLine.objects.bulk_update(lines, ["quantity_received"])
        locked.status = Transfer.Status.RECEIVED
        locked.received_at = timezone.now()
        locked.save(update_fields=["status", "received_at"])
    return locked


# --- Stock counts ------------------------------------------------------------------------------


def _locked_open_count(count: StockCount) -> StockCount:
    locked = StockCount.objects.select_for_update().get(pk=count.pk)
    if locked.status != StockCount.Status.OPEN:
        raise _refuse("count_not_open", _("This count has already been applied."))
    return locked


def stock_count_create(*, store: Store, actor: User | None, note: str = "") -> StockCount:
    """An empty count sheet; staff add what they find with ``stock_count_set_line``."""
    with transaction.atomic():
        return StockCount.objects.create(store=store, note=note, created_by=actor)


def stock_count_set_line(*, count: StockCount, sku: SKU | int, counted: int) -> StockCountLine:
    """Write down how many units of a SKU are on the shelf (again, if counted twice), with what
    the books say at this moment (``expected``; 0 when the store has no row for the SKU).

    The pair is what applying the sheet books: only their difference, so whatever the ledger
    records between now and then stays booked. A recount takes a fresh reading of the books.
    """
    if counted < 0:
        raise _refuse(
            "invalid_count",
            _("A count cannot be negative."),
            sku=str(_sku_id(sku)),
            counted=str(counted),
        )
    with transaction.atomic():
        locked = _locked_open_count(count)
        on_books = (
            StockItem.objects.filter(store_id=locked.store_id, sku_id=_sku_id(sku))
            .values_list("on_hand", flat=True)
            .order_by("pk")
            .first()
        )
        line, _created = StockCountLine.objects.update_or_create(
            count=locked,
            sku_id=_sku_id(sku),
            defaults={"counted": counted, "expected": on_books or 0},
        )
    return line


def stock_count_start(
    *,
    store: Store,
    actor: User | None,
    note: str = "",
    sku_ids: Sequence[int] | None = None,
) -> tuple[StockCount, list[int]]:
    """A count sheet for ``sku_ids`` (None: every SKU the store keeps), each line written at the
    books' figure, so a line nobody counts books nothing; returns the sheet and its SKUs. The
    store's stock rows stay locked while the sheet is written, so no sale slips in between this
    reading of the books and each line's own. ``count_empty`` (409) for a store with no stock
    when every SKU is asked for."""
    with transaction.atomic():
        count = stock_count_create(store=store, actor=actor, note=note)
        rows = StockItem.objects.select_for_update().filter(store=store).order_by("pk")
        if sku_ids is not None:
            rows = rows.filter(sku_id__in=sku_ids)
        on_books = dict(rows.values_list("sku_id", "on_hand"))
        if sku_ids is None:
            sku_ids = list(on_books)
            if not sku_ids:
                raise _refuse("count_empty", _("This store keeps no stock to count yet."))
        for sku_id in sku_ids:
            stock_count_set_line(count=count, sku=sku_id, counted=on_books.get(sku_id, 0))
    return count, list(sku_ids)


def stock_count_set_lines(
    *, count: StockCount, lines: Sequence[tuple[int, int]]
) -> list[StockCountLine]:
    """Several ``(sku id, counted)`` figures written down at once, all or none."""
    with transaction.atomic():
        return [stock_count_set_line(count=count, sku=sku, counted=n) for sku, n in lines]


def stock_count_remove_line(*, count: StockCount, sku: SKU | int) -> None:
    """Take a SKU off an open count sheet (counted by mistake)."""
    with transaction.atomic():
        locked = _locked_open_count(count)
        StockCountLine.objects.filter(count=locked, sku_id=_sku_id(sku)).delete()


def stock_count_apply(*, count: StockCount, actor: User | None) -> StockCount:
    """Book what the count found: each line's difference from the books of the moment it was
    written (``counted - expected``) becomes one adjustment on top of ``on_hand`` as it is now.

    A sale or receipt between writing a line and applying the sheet is in the ledger already;
    setting ``on_hand`` to the counted figure would undo it (books 10, counted 8, 3 sold: the
    shelf holds 5, not 8). ``on_hand`` is read under the stock row's lock, rows taken in
    primary-key order. All lines or none: a line that would leave fewer units than are reserved
    for orders (``count_below_reserved``), or fewer than none (``count_negative_result``),
    refuses the whole sheet, to be counted again. Applying again changes nothing.
    """
    with transaction.atomic():
        locked = StockCount.objects.select_for_update().get(pk=count.pk)
        if locked.status == StockCount.Status.APPLIED:
            return locked
        lines = {line.sku_id: line for line in locked.lines.all()}
        if not lines:
            raise _refuse("count_empty", _("A count needs at least one line."))
        pairs = _items_in_lock_order(
            locked.store_id, [StockLine(sku_id, line.counted) for sku_id, line in lines.items()]
        )
        on_books = {
            item.pk: item
            for item in StockItem.objects.select_for_update()
            .filter(pk__in=[item.pk for item, _line in pairs])
            .order_by("pk")
        }
        for stale_item, _line in pairs:
            item = on_books[stale_item.pk]
            line = lines[item.sku_id]
            difference = line.counted - line.expected
            result = item.on_hand + difference
            if result < 0:
                raise _refuse(
                    "count_negative_result",
                    _("This count would leave less than nothing on hand; count again."),
                    sku=str(item.sku_id),
                    counted=str(line.counted),
                    expected=str(line.expected),
                    on_hand=str(item.on_hand),
                )
            if result < item.reserved:
                raise _refuse(
                    "count_below_reserved",
                    _("This count would leave fewer units than orders have reserved; count again."),
                    sku=str(item.sku_id),
                    counted=str(line.counted),
                    expected=str(line.expected),
                    on_hand=str(item.on_hand),
                    reserved=str(item.reserved),
                )
            if difference:
                _ledger_apply(
                    item=item,
                    quantity=difference,
                    reason=Reason.COUNT_ADJUSTMENT,
                    idempotency_key=f"count:{locked.pk}:{item.sku_id}",
                    actor=actor,
                    reference=f"SC{locked.pk:06d}",
                )
        locked.status = StockCount.Status.APPLIED
        locked.applied_at = timezone.now()
        locked.save(update_fields=["status", "applied_at"])
    return locked


# --- Stock row settings ------------------------------------------------------------------------


def stock_item_update_settings(
    *,
    item: StockItem,
    safety_stock: int,
    lead_time_days: int,
    review_days: int,
    pack_size: int,
) -> StockItem:
    """Change how a stock row is kept and replenished, never its numbers: only these columns
    are written, so a sale committed meanwhile is not overwritten by a stale ``on_hand``."""
    if safety_stock < 0:
        raise _refuse(
            "invalid_stock_setting",
            _("Safety stock cannot be negative."),
            safety_stock=str(safety_stock),
        )
    if lead_time_days < 0:
        raise _refuse(
            "invalid_stock_setting",
            _("Lead time cannot be negative."),
            lead_time_days=str(lead_time_days),
        )
    if review_days < 0:
        raise _refuse(
            "invalid_stock_setting",
            _("The order cycle cannot be negative."),
            review_days=str(review_days),
        )
    if pack_size < 1:
        raise _refuse(
            "invalid_stock_setting",
            _("A pack holds at least one unit."),
            pack_size=str(pack_size),
        )
    with transaction.atomic():
        StockItem.objects.filter(pk=item.pk).update(
            safety_stock=safety_stock,
            lead_time_days=lead_time_days,
            review_days=review_days,
            pack_size=pack_size,
            updated_at=timezone.now(),
        )
        return StockItem.objects.get(pk=item.pk)
