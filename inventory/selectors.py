"""Reads of stock: what a store holds, which nearby stores can serve a basket, what to reorder.

Nothing here writes. The figures follow the services' rules: the counter may sell
``on_hand - reserved``; online channels may promise that less the safety stock.
"""

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import NamedTuple

from django.conf import settings
from django.db import models
from django.db.models import F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from inventory.models import StockItem, StockMovement
from retail.errors import BusinessError
from retail.geo import bounding_box, haversine_m
from retail.models import SKU, Store

SkuId = int
StoreId = int


def _available() -> models.Expression:
    return F("on_hand") - F("reserved")


def _available_online() -> models.Expression:
    return Greatest(F("on_hand") - F("reserved") - F("safety_stock"), Value(0))


def _bad_input(code: str, field: str, message: str) -> BusinessError:
    return BusinessError(code, message, fields={field: [message]}, status_code=400)


# --- Stock of one store ------------------------------------------------------------------------


def stock_at_store(
    *, store: Store | StoreId, skus: Iterable[SKU | SkuId] | None = None
) -> QuerySet[StockItem]:
    """The store's stock rows (of ``skus`` only, when given), with SKU and product, by SKU code.

    ``available`` and ``available_online`` are SQL expressions on the queryset, so callers may
    filter and order on them (``.filter(available_online__gt=0)``). They are aliases, not
    selected columns: ``StockItem`` has properties of the same names, which compute the same
    figures from the same row, and an annotation could not be set over them.
    """
    items = (
        StockItem.objects.filter(store=store)
        .select_related("sku", "sku__product")
        .alias(available=_available(), available_online=_available_online())
        .order_by("sku__code")
    )
    if skus is not None:
        items = items.filter(sku__in=list(skus))
    return items


def availability_for_skus(
    *, sku_ids: Collection[SkuId], store_ids: Collection[StoreId], online: bool
) -> dict[tuple[StoreId, SkuId], int]:
    """Units available for each (store, SKU) pair asked, in one query; a pair without a stock
    row is 0. ``online`` keeps the safety stock back, as online reservations do."""
    if not sku_ids or not store_ids:
        return {}
    units = {(store_id, sku_id): 0 for store_id in store_ids for sku_id in sku_ids}
    rows = (
        StockItem.objects.filter(store_id__in=store_ids, sku_id__in=sku_ids)
        .annotate(units=_available_online() if online else _available())
        .values_list("store_id", "sku_id", "units")
        .order_by()
    )
    for store_id, sku_id, available in rows:
        units[store_id, sku_id] = available
    return units


# --- Nearest stores for a basket ---------------------------------------------------------------


class Service(models.TextChoices):
    PICKUP = "pickup", gettext_lazy("pickup in store")
    SHIP_FROM_STORE = "ship_from_store", gettext_lazy("ship from store")
    DELIVERY = "delivery", gettext_lazy("same-city delivery")


class LineAvailability(NamedTuple):
    sku_id: SkuId
    requested: int
    available: int
    enough: bool


@dataclass(frozen=True)
class StoreOption:
    store: Store
    distance_m: int
    lines: list[LineAvailability]
    can_serve_all: bool


_MICRODEGREE = Decimal("0.000001")
MAX_RADIUS_M = 100_000
MAX_STORES = 100


def _box_edge(degrees: float, rounding: str) -> Decimal:
    # Coordinates are stored to 6 decimals; rounding the box outward keeps it from shrinking.
    return Decimal(degrees).quantize(_MICRODEGREE, rounding=rounding)


def _stores_in_box(
    latitude: float, longitude: float, radius_m: int, service: Service | None
) -> QuerySet[Store]:
    min_lat, max_lat, min_lng, max_lng = bounding_box(latitude, longitude, radius_m)
    stores = Store.objects.filter(
        active=True,
        kind=Store.Kind.STORE,
        latitude__gte=_box_edge(min_lat, ROUND_FLOOR),
        latitude__lte=_box_edge(max_lat, ROUND_CEILING),
        longitude__gte=_box_edge(min_lng, ROUND_FLOOR),
        longitude__lte=_box_edge(max_lng, ROUND_CEILING),
    )
    if service == Service.PICKUP:
        stores = stores.filter(offers_pickup=True)
    elif service == Service.SHIP_FROM_STORE:
        stores = stores.filter(offers_ship_from_store=True)
    elif service == Service.DELIVERY:
        stores = stores.filter(delivery_radius_m__gt=0)
    return stores


def _checked_service(service: str | None) -> Service | None:
    if service is None:
        return None
    try:
        return Service(service)
    except ValueError:
        raise _bad_input("invalid_service", "service", _("Unknown service.")) from None


def _check_location(latitude: float, longitude: float) -> None:
    # Written so that NaN fails too.
    if not -90 <= latitude <= 90:
        raise _bad_input("invalid_location", "latitude", _("Latitude must be between -90 and 90."))
    if not -180 <= longitude <= 180:
        raise _bad_input(
            "invalid_location", "longitude", _("Longitude must be between -180 and 180.")
        )


def _check_basket(lines: Sequence[tuple[SkuId, int]]) -> None:
    sku_ids = [sku_id for sku_id, _quantity in lines]
    if len(set(sku_ids)) != len(sku_ids):
        # Two lines of one SKU would each be checked against the whole shelf.
        raise _bad_input("duplicate_line", "lines", _("Each SKU may appear only once."))
    if any(quantity <= 0 for _sku_id, quantity in lines):
        raise _bad_input(
            "invalid_quantity", "lines", _("Quantity must be a positive whole number.")
        )


def nearest_stores_for_basket(
    *,
    latitude: float,
    longitude: float,
    lines: Sequence[tuple[SkuId, int]],
    radius_m: int = 10_000,
    limit: int = 10,
    online: bool = True,
    service: str | None = None,
    only_complete: bool = False,
) -> list[StoreOption]:
    """Active stores (never warehouses) within ``radius_m`` of a shopper, nearest first (ties
    by code), at most ``limit``, each with what it holds of every basket line.

    ``service`` keeps stores offering it; ``delivery`` also needs the shopper inside the
    store's own delivery radius. A store short of some line is listed with
    ``can_serve_all=False`` unless ``only_complete``. ``online`` keeps safety stock back.

    Two queries whatever the size: the stores in a bounding box (indexed on latitude and
    longitude; the exact distance is then computed here), and the stock of those stores for
    the basket's SKUs. An empty basket needs only the first.
    """
    latitude, longitude = float(latitude), float(longitude)
    _check_location(latitude, longitude)
    _check_basket(lines)
    if not 0 < radius_m <= MAX_RADIUS_M:
        raise _bad_input(
            "invalid_radius",
            "radius_m",
            _("The radius must be between 1 and %(max)d metres.") % {"max": MAX_RADIUS_M},
        )
    if not 0 < limit <= MAX_STORES:
        raise _bad_input(
            "invalid_limit",
            "limit",
            _("Between 1 and %(max)d stores may be asked for.") % {"max": MAX_STORES},
        )
    wanted_service = _checked_service(service)

    in_reach: list[tuple[int, Store]] = []
    for store in _stores_in_box(latitude, longitude, radius_m, wanted_service):
        distance = haversine_m(latitude, longitude, float(store.latitude), float(store.longitude))
        delivers_here = wanted_service != Service.DELIVERY or distance <= store.delivery_radius_m
        if distance <= radius_m and delivers_here:
            in_reach.append((round(distance), store))
    in_reach.sort(key=lambda reach: (reach[0], reach[1].code))
    if not only_complete:
        # Incomplete stores are listed too, so stock beyond the limit is never needed.
        in_reach = in_reach[:limit]

    units = availability_for_skus(
        sku_ids=[sku_id for sku_id, _quantity in lines],
        store_ids=[store.pk for _distance, store in in_reach],
        online=online,
    )
    options = []
    for distance_m, store in in_reach:
        availability = [
            LineAvailability(
                sku_id=sku_id,
                requested=quantity,
                available=units[store.pk, sku_id],
                enough=units[store.pk, sku_id] >= quantity,
            )
            for sku_id, quantity in lines
        ]
        can_serve_all = all(line.enough for line in availability)
        if can_serve_all or not only_complete:
            options.append(StoreOption(store, distance_m, availability, can_serve_all))
    return options[:limit]


# --- Reorder suggestions -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReorderSuggestion:
    stock_item: StockItem
    available: int
    units_sold: int
    velocity_per_day: float
    reorder_point: int
    suggested_quantity: int


def _ceil_div(numerator: int, denominator: int) -> int:
    # Integer arithmetic: in floats 116 / 28 * 7 comes out a hair above 29 and would round to 30.
    return -(-numerator // denominator)


def low_stock(*, store: Store | StoreId, now: datetime | None = None) -> list[ReorderSuggestion]:
    """The store's stock items that need ordering, most urgent first, with how much to order.

    Per item, over the ``settings.STOCK_VELOCITY_DAYS`` days before ``now`` (a sale exactly
    that long ago is outside, one at ``now`` inside):

    * ``units_sold``: units that left through counter sales and online fulfilment (returns do
      not net them off); ``velocity_per_day = units_sold / STOCK_VELOCITY_DAYS``;
    * ``reorder_point = safety_stock + ceil(velocity * lead_time_days)``: what must be on the
      shelf to last until an order placed now arrives;
    * the item is low when ``available <= reorder_point`` and it sells or keeps a safety
      stock (``velocity > 0 or safety_stock > 0``): an unsold item without safety stock is
      not worth ordering, even at 0;
    * ``suggested_quantity = ceil(velocity * (lead_time_days + review_days)) + safety_stock
      - available``, at least 0, rounded up to a whole number of packs: enough to last
      until the order after next arrives.

    Sorted by ``available - reorder_point`` (the furthest below first), then SKU code.
    One query.
    """
    now = now or timezone.now()
    days = settings.STOCK_VELOCITY_DAYS
    sales_in_window = (
        StockMovement.objects.filter(
            stock_item=OuterRef("pk"),
            reason__in=StockMovement.SALES,
            created_at__gt=now - timedelta(days=days),
            created_at__lte=now,
        )
        .order_by()
        .values("stock_item")
        .annotate(total=Sum("quantity"))
        .values("total")
    )
    items = (
        StockItem.objects.filter(store=store)
        .select_related("sku", "sku__product")
        # Sales are negative movements.
        .annotate(units_sold=-Coalesce(Subquery(sales_in_window), 0))
        .filter(Q(units_sold__gt=0) | Q(safety_stock__gt=0))
        # The reorder point below, in SQL, so only low items leave the database (a store
        # holds thousands of SKUs; few are low): ceil(a / b) = (a + b - 1) / b for a >= 0.
        .alias(
            reorder_point=F("safety_stock")
            + (F("units_sold") * F("lead_time_days") + (days - 1)) / days
        )
        .filter(reorder_point__gte=F("on_hand") - F("reserved"))
    )

    suggestions = []
    for item in items:
        reorder_point = item.safety_stock + _ceil_div(item.units_sold * item.lead_time_days, days)
        if item.available > reorder_point:
            continue
        cover_days = item.lead_time_days + item.review_days
        target = _ceil_div(item.units_sold * cover_days, days) + item.safety_stock
        packs = _ceil_div(max(target - item.available, 0), item.pack_size)
        suggestions.append(
            ReorderSuggestion(
                stock_item=item,
                available=item.available,
                units_sold=item.units_sold,
                velocity_per_day=item.units_sold / days,
                reorder_point=reorder_point,
                suggested_quantity=packs * item.pack_size,
            )
        )
    suggestions.sort(key=lambda s: (s.available - s.reorder_point, s.stock_item.sku.code))
    return suggestions
