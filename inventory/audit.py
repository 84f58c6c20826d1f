"""The inventory audit: proves that every stock row agrees with the records behind it.

Two sums must hold for every ``StockItem``:

* ``on_hand`` equals the sum of its ledger movements (every change of ``on_hand`` is a
  ``StockMovement``);
* ``reserved`` equals the sum of its active (held or committed) reservations.

A stock row that disagrees is a *drift*: the ledger and the reservations are the truth, so
``expected`` is what they add up to and ``found`` is what the stock row says.

The check is one query whatever the number of stock rows: both sums are correlated subqueries,
the comparison runs in the database and only drifting rows come back, streamed in chunks. Being
one statement it reads one snapshot, so writes committed while it runs cannot show up as drift.
The running ``on_hand_after`` of each movement is not re-checked: it would sort the whole ledger,
and a change of ``on_hand`` that bypassed the ledger already shows up in the first sum.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from django.db import models
from django.db.models import F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from inventory.models import Reservation, StockItem, StockMovement
from retail.models import Store


class DriftCheck(models.TextChoices):
    ON_HAND = "on_hand", _("on hand vs ledger total")
    RESERVED = "reserved", _("reserved vs active reservations")


@dataclass(frozen=True)
class Drift:
    stock_item_id: int
    store_code: str
    sku_code: str
    check: DriftCheck
    expected: int  # the sum of the ledger or of the active reservations
    found: int  # the stock row's own number

    @property
    def difference(self) -> int:
        return self.found - self.expected


def _audited_items(store: Store | int | None) -> QuerySet[StockItem]:
    items = StockItem.objects.all()
    if store is not None:
        items = items.filter(store_id=store if isinstance(store, int) else store.pk)
    return items


def _sum_per_item(rows: QuerySet) -> Coalesce:
    """The sum of ``quantity`` over ``rows`` of the outer stock item; 0 when it has none."""
    total = (
        rows.filter(stock_item=OuterRef("pk"))
        .order_by()
        .values("stock_item")
        .annotate(total=Sum("quantity"))
        .values("total")
    )
    return Coalesce(Subquery(total, output_field=IntegerField()), Value(0))


def stock_item_count(*, store: Store | int | None = None) -> int:
    """How many stock rows an audit of ``store`` (or of every store) checks."""
    return _audited_items(store).count()


def inventory_drift(*, store: Store | int | None = None, chunk_size: int = 2000) -> Iterator[Drift]:
    """Every drift in ``store`` (or in every store), ordered by store and SKU code, one query."""
    drifting = (
        _audited_items(store)
        .annotate(
            ledger_total=_sum_per_item(StockMovement.objects.all()),
            active_reserved=_sum_per_item(
                Reservation.objects.filter(status__in=Reservation.ACTIVE)
            ),
        )
        .filter(~Q(on_hand=F("ledger_total")) | ~Q(reserved=F("active_reserved")))
        .order_by("store__code", "sku__code")
        .values_list(
            "pk",
            "store__code",
            "sku__code",
            "on_hand",
            "ledger_total",
            "reserved",
            "active_reserved",
        )
    )
    for (
        pk,
        store_code,
        sku_code,
        on_hand,
        ledger_total,
        reserved,
        active_reserved,
    ) in drifting.iterator(chunk_size=chunk_size):
        if on_hand != ledger_total:
            yield Drift(pk, store_code, sku_code, DriftCheck.ON_HAND, ledger_total, on_hand)
        if reserved != active_reserved:
            yield Drift(pk, store_code, sku_code, DriftCheck.RESERVED, active_reserved, reserved)
