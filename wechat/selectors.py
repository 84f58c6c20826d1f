"""Reads of the shopper side. Each part keeps its own section below: the catalogue, home and
recommendations; the cart, orders, member centre and addresses.

A shopper sees only her own: every read here takes her member and filters by it, so another
shopper's order or address does not exist (404), exactly like an unknown one.
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from django.db.models import (
    Count,
    Exists,
    Expression,
    F,
    Max,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Greatest
from django.shortcuts import get_object_or_404

from inventory.models import StockItem
from inventory.selectors import (
    MAX_STORES,
    StoreOption,
    availability_for_skus,
    nearest_stores_for_basket,
)
from members.models import Coupon, CouponTemplate, Member
from members.selectors import coupon_templates_claimable
from orders.models import (
    AfterSale,
    AfterSaleLine,
    Channel,
    Fulfilment,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    Refund,
    Shipment,
)
from orders.pricing import BasketLine, Quote, price_basket
from orders.selectors import StoreRating, store_ratings
from retail.models import SKU, Category, Product, Store
from wechat.models import Address, BoughtTogether, Cart, CartLine

# --- Cart, orders, member centre, addresses (helper S2) ---------------------------------------


@dataclass(frozen=True)
class CartItem:
    line: CartLine
    # Units the chosen store can sell online now (None without a chosen store).
    available: int | None

    @property
    def sellable(self) -> bool:
        return self.line.sku.active and self.line.sku.product.active

    @property
    def enough(self) -> bool | None:
        return None if self.available is None else self.available >= self.line.quantity


@dataclass(frozen=True)
class CartSummary:
    store: Store | None
    items: list[CartItem]
    fulfilment: str
    # The price of the sellable lines at the chosen store; None without a store or such lines.
    quote: Quote | None


def cart_summary(
    *, member: Member, fulfilment: str = Fulfilment.PICKUP, channel: str = Channel.MINI_SHOP
) -> CartSummary:
    """The member's cart (empty when she has none): lines in the order they were added, what
    the chosen store holds of each, and the price of the sellable lines there by the one
    pricing function (no coupon, no points). A fixed number of queries whatever the number of
    lines: the cart with its store, its lines with SKU and product, the store's stock of them,
    then the pricing function's own reads (SKUs, promotions; the shipping rule for delivery)."""
    cart = (
        Cart.objects.select_related("store")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=CartLine.objects.select_related("sku__product").order_by("added_at", "pk"),
            )
        )
        .filter(member=member)
        .first()
    )
    if cart is None:
        return CartSummary(store=None, items=[], fulfilment=fulfilment, quote=None)
    lines = list(cart.lines.all())
    store = cart.store if cart.store is not None and cart.store.active else None
    units = (
        availability_for_skus(
            sku_ids=[line.sku_id for line in lines], store_ids=[store.pk], online=True
        )
        if store is not None
        else {}
    )
    items = [
        CartItem(line=line, available=units.get((store.pk, line.sku_id)) if store else None)
        for line in lines
    ]
    sellable = [BasketLine(item.line.sku_id, item.line.quantity) for item in items if item.sellable]
    quote = (
        price_basket(
            store=store, lines=sellable, fulfilment=fulfilment, channel=channel, member=member
        )
        if store is not None and sellable
        else None
    )
    return CartSummary(store=store, items=items, fulfilment=fulfilment, quote=quote)


def shop_orders(*, member: Member, statuses: list[str] | None = None) -> QuerySet[Order]:
    """The member's orders in every channel (counter sales too), newest first, each with its
    store, lines and review: three queries a page, however many lines the orders have."""
    orders = (
        Order.objects.filter(member=member)
        .select_related("store", "review")
        .prefetch_related(Prefetch("lines", queryset=OrderLine.objects.order_by("pk")))
    )
    if statuses:
        orders = orders.filter(status__in=statuses)
    return orders.order_by("-created_at", "-pk")


def shop_order_detail(*, member: Member, number: str) -> Order:
    """One of the member's orders with what its page shows: lines, timeline, payments,
    refunds, after-sales with their lines, shipments with theirs, review. Another member's
    number is a 404, as an unknown one. A fixed number of queries."""
    return get_object_or_404(
        Order.objects.filter(member=member)
        .select_related("store", "review")
        .prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.order_by("pk")),
            Prefetch("events", queryset=OrderEvent.objects.order_by("pk")),
            Prefetch("payments", queryset=Payment.objects.order_by("pk")),
            Prefetch("refunds", queryset=Refund.objects.order_by("pk")),
            Prefetch(
                "after_sales",
                queryset=AfterSale.objects.prefetch_related(
                    Prefetch(
                        "lines",
                        queryset=AfterSaleLine.objects.select_related("order_line").order_by("pk"),
                    )
                ).order_by("pk"),
            ),
            Prefetch(
                "shipments",
                queryset=Shipment.objects.prefetch_related(
                    Prefetch("lines", queryset=OrderLine.objects.only("pk", "line_key"))
                ).order_by("shipped_at", "pk"),
            ),
        ),
        number=number,
    )


def shop_order_for_action(*, member: Member, number: str) -> Order:
    """The bare row of one of the member's orders, for an action to hand to its service."""
    return get_object_or_404(Order.objects.filter(member=member), number=number)


class CouponState:
    AVAILABLE = "available"
    USED = "used"
    EXPIRED = "expired"
    ALL = (AVAILABLE, USED, EXPIRED)


def shop_coupons(*, member: Member, state: str, now: datetime) -> QuerySet[Coupon]:
    """The member's coupons in one state, with their templates. ``available``: not used and
    not over (some may start later), soonest to end first; ``used``: spent on an order
    (newest first); ``expired``: over unused, or void (latest first)."""
    coupons = Coupon.objects.filter(member=member).select_related("template")
    status = Coupon.Status
    if state == CouponState.AVAILABLE:
        return coupons.filter(status=status.AVAILABLE, valid_until__gt=now).order_by(
            "valid_until", "pk"
        )
    if state == CouponState.USED:
        return coupons.filter(status__in=[status.USED, status.LOCKED]).order_by("-used_at", "-pk")
    return coupons.filter(
        Q(status=status.VOID) | Q(status=status.AVAILABLE, valid_until__lte=now)
    ).order_by("-valid_until", "-pk")


def shop_coupon_count(*, member: Member, now: datetime) -> int:
    return Coupon.objects.filter(
        member=member, status=Coupon.Status.AVAILABLE, valid_until__gt=now
    ).count()


def shop_claimable_templates(*, member: Member, now: datetime) -> QuerySet[CouponTemplate]:
    """Templates the member may claim now with coupons left, each with ``claimed``: how many
    she holds already (the per-member limit counts them). One query."""
    held = (
        Coupon.objects.filter(template=OuterRef("pk"), member=member)
        .order_by()
        .values("template")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return coupon_templates_claimable(now=now).annotate(claimed=Coalesce(Subquery(held), Value(0)))


def shop_addresses(*, member: Member) -> QuerySet[Address]:
    """The member's addresses, the default first, then the most recently changed."""
    return Address.objects.filter(member=member).order_by("-is_default", "-updated_at", "-pk")


def shop_address(*, member: Member, address_id: int) -> Address:
    return get_object_or_404(Address.objects.filter(member=member), pk=address_id)


# --- Stores, catalogue and recommendations (helper S1) ----------------------------------------

# "Online" is what the warehouses can ship, after their safety stock (the rule of online
# reservations, inventory.selectors); "at the store" is what the chosen store can sell online.
HOME_RADIUS_M = 20_000
HOME_STORE_LIMIT = 10
RECOMMENDATION_LIMIT = 10
# How many candidates each source offers before availability and the limit thin them out.
_CANDIDATES = 50
_BOUGHT = [
    Order.Status.PAID,
    Order.Status.READY_FOR_PICKUP,
    Order.Status.SHIPPED,
    Order.Status.DELIVERED,
    Order.Status.COMPLETED,
]


def _sellable_online() -> Expression:
    return F("on_hand") - F("reserved") - F("safety_stock")


@dataclass(frozen=True)
class StoreCard:
    store: Store
    distance_m: int | None
    open_now: bool
    rating: StoreRating


def shop_stores_near(
    *,
    latitude: float | None,
    longitude: float | None,
    now: datetime,
    include_closed: bool = False,
    radius_m: int = HOME_RADIUS_M,
    limit: int = HOME_STORE_LIMIT,
) -> list[StoreCard]:
    """Active stores (never warehouses) open at ``now``, nearest first, each with its distance,
    average rating and average order value; closed ones too when ``include_closed``. Without a
    location: by store code, no distance. Three queries: the stores, reviews, orders."""
    if latitude is None or longitude is None:
        near = [(None, store) for store in shop_stores().order_by("code")[:MAX_STORES]]
    else:
        options = nearest_stores_for_basket(
            latitude=latitude, longitude=longitude, lines=[], radius_m=radius_m, limit=MAX_STORES
        )
        near = [(option.distance_m, option.store) for option in options]
    chosen = [
        (distance, store, store.is_open_at(now))
        for distance, store in near
        if include_closed or store.is_open_at(now)
    ][:limit]
    ratings = store_ratings(store_ids=[store.pk for _distance, store, _open in chosen])
    return [
        StoreCard(store=store, distance_m=distance, open_now=open_now, rating=ratings[store.pk])
        for distance, store, open_now in chosen
    ]


def shop_store(*, store_id: int) -> Store:
    """An active store a shopper may choose (404 otherwise)."""
    return get_object_or_404(Store.objects.filter(active=True, kind=Store.Kind.STORE), pk=store_id)


def shop_stores() -> QuerySet[Store]:
    return Store.objects.filter(active=True, kind=Store.Kind.STORE)


def shop_categories() -> QuerySet[Category]:
    """Active categories whose parent (if any) is active, in display order. One query."""
    return (
        Category.objects.filter(active=True)
        .filter(Q(parent__isnull=True) | Q(parent__active=True))
        .order_by("sort_order", "code")
    )


def _active_skus() -> QuerySet[SKU]:
    return SKU.objects.filter(active=True).order_by("code")


def shop_products() -> QuerySet[Product]:
    """Active products of active categories with at least one active SKU, each with
    ``shop_skus`` (its active SKUs by code) and its category: two queries a page."""
    has_sku = SKU.objects.filter(product=OuterRef("pk"), active=True)
    return (
        Product.objects.filter(active=True, category__active=True)
        .filter(Exists(has_sku))
        .select_related("category")
        .prefetch_related(Prefetch("skus", queryset=_active_skus(), to_attr="shop_skus"))
    )


def shop_product(*, product_id: int) -> Product:
    return get_object_or_404(shop_products(), pk=product_id)


def shop_products_in_category(products: QuerySet[Product], category: Category) -> QuerySet:
    """The category and its subcategories, three levels down."""
    return products.filter(
        Q(category=category) | Q(category__parent=category) | Q(category__parent__parent=category)
    )


def shop_products_matching(products: QuerySet[Product], text: str) -> QuerySet[Product]:
    """Name, brand or category name containing ``text``; product or SKU code, or barcode,
    equal to it."""
    text = text.strip()
    sku_hit = SKU.objects.filter(product=OuterRef("pk"), active=True).filter(
        Q(code__iexact=text) | Q(barcode=text)
    )
    return products.filter(
        Q(name__icontains=text)
        | Q(brand__icontains=text)
        | Q(category__name__icontains=text)
        | Q(code__iexact=text)
        | Exists(sku_hit)
    )


def shop_products_available(
    products: QuerySet[Product], *, store: Store | None, online: bool
) -> QuerySet[Product]:
    """Products with an active SKU the chosen ``store`` can sell online now, or (``online``)
    a warehouse can ship; both given: either."""
    stock = StockItem.objects.alias(units=_sellable_online()).filter(
        sku__product=OuterRef("pk"), sku__active=True, units__gt=0
    )
    where = Q()
    if store is not None:
        where |= Exists(stock.filter(store=store))
    if online:
        where |= Exists(stock.filter(store__active=True, store__kind=Store.Kind.WAREHOUSE))
    return products.filter(where) if where else products


@dataclass(frozen=True)
class Availability:
    # Units the chosen store can sell online now (None without a chosen store).
    at_store: dict[int, int] | None
    # Units the warehouses can ship, per SKU.
    online: dict[int, int]

    def at(self, sku_id: int) -> int | None:
        return None if self.at_store is None else self.at_store.get(sku_id, 0)

    def shipped(self, sku_id: int) -> int:
        return self.online.get(sku_id, 0)

    def any(self, sku_id: int) -> bool:
        return bool(self.at(sku_id)) or self.shipped(sku_id) > 0


def shop_availability(*, sku_ids: Collection[int], store: Store | None) -> Availability:
    """What the chosen store and the warehouses can sell of each SKU, online rules (safety stock
    kept back). Two queries, one without a store, none without SKUs."""
    if not sku_ids:
        return Availability(at_store=None if store is None else {}, online={})
    at_store = None
    if store is not None:
        units = availability_for_skus(sku_ids=sku_ids, store_ids=[store.pk], online=True)
        at_store = {sku_id: available for (_store, sku_id), available in units.items()}
    online = dict(
        StockItem.objects.filter(
            sku_id__in=sku_ids, store__active=True, store__kind=Store.Kind.WAREHOUSE
        )
        .annotate(units=Greatest(_sellable_online(), Value(0)))
        .values("sku_id")
        .annotate(total=Sum("units"))
        .values_list("sku_id", "total")
        .order_by()
    )
    return Availability(at_store=at_store, online=online)


def shop_product_stores(
    *, product: Product, latitude: float, longitude: float, now: datetime
) -> list[tuple[StoreOption, bool]]:
    """Active stores near a point with what each can sell online of the product's SKUs,
    nearest first, and whether each is open now. Two queries."""
    options = nearest_stores_for_basket(
        latitude=latitude,
        longitude=longitude,
        lines=[(sku.pk, 1) for sku in product.shop_skus],
        radius_m=HOME_RADIUS_M,
        limit=HOME_STORE_LIMIT,
    )
    return [(option, option.store.is_open_at(now)) for option in options]


class Reason:
    BOUGHT_BEFORE = "bought_before"
    BOUGHT_TOGETHER = "bought_together"
    POPULAR = "popular"


@dataclass(frozen=True)
class Recommendation:
    sku: SKU
    reason: str
    at_store: int | None
    online: int


def shop_recommendations(
    *,
    member: Member | None,
    store: Store | None,
    product: Product | None = None,
    limit: int = RECOMMENDATION_LIMIT,
) -> list[Recommendation]:
    """Items for the shopper, each available at the chosen ``store`` or online, one per product,
    at most ``limit``:

    - on a product page (``product``): what was bought together with its SKUs, then the
      member's own purchases;
    - elsewhere: the member's own purchases in every channel, the counter too (latest first),
      then what was bought together with them; without purchases, what is bought together
      most (``popular``).

    A fixed number of queries: the member's purchases, the bought-together figures, the SKUs
    with their products, and the availability (two).
    """
    bought = _bought_by(member) if member is not None else []
    own_skus = [sku.pk for sku in product.shop_skus] if product is not None else []
    seeds = own_skus or bought
    together = _bought_together(seeds)
    if product is not None:
        ranked = [(sku_id, Reason.BOUGHT_TOGETHER) for sku_id in together]
        ranked += [(sku_id, Reason.BOUGHT_BEFORE) for sku_id in bought]
    elif bought:
        ranked = [(sku_id, Reason.BOUGHT_BEFORE) for sku_id in bought]
        ranked += [(sku_id, Reason.BOUGHT_TOGETHER) for sku_id in together]
    else:
        ranked = [(sku_id, Reason.POPULAR) for sku_id in together]

    skus = {
        sku.pk: sku
        for sku in SKU.objects.filter(
            pk__in={sku_id for sku_id, _reason in ranked},
            active=True,
            product__active=True,
            product__category__active=True,
        ).select_related("product")
    }
    availability = shop_availability(sku_ids=list(skus), store=store)
    picked: list[Recommendation] = []
    products = {product.pk} if product is not None else set()
    for sku_id, reason in ranked:
        sku = skus.get(sku_id)
        if sku is None or sku.product_id in products or not availability.any(sku_id):
            continue
        products.add(sku.product_id)
        picked.append(
            Recommendation(
                sku=sku,
                reason=reason,
                at_store=availability.at(sku_id),
                online=availability.shipped(sku_id),
            )
        )
        if len(picked) == limit:
            break
    return picked


def _bought_by(member: Member) -> list[int]:
    """SKUs of the member's paid orders in every channel, most recently bought first."""
    return list(
        OrderLine.objects.filter(order__member=member, order__status__in=_BOUGHT)
        .values("sku_id")
        .annotate(last=Max("order__created_at"))
        .order_by("-last", "sku_id")
        .values_list("sku_id", flat=True)[:_CANDIDATES]
    )


def _bought_together(sku_ids: list[int]) -> list[int]:
    """SKUs most often in the same orders as ``sku_ids`` (not among them); without seeds, the
    SKUs most often bought with anything."""
    if sku_ids:
        rows = (
            BoughtTogether.objects.filter(sku_id__in=sku_ids)
            .exclude(other_id__in=sku_ids)
            .values("other_id")
            .annotate(score=Sum("orders"))
            .order_by("-score", "other_id")
            .values_list("other_id", flat=True)
        )
    else:
        rows = (
            BoughtTogether.objects.values("sku_id")
            .annotate(score=Sum("orders"))
            .order_by("-score", "sku_id")
            .values_list("sku_id", flat=True)
        )
    return list(rows[:_CANDIDATES])
