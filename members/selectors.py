"""Reads of members, points and coupons. Each part of the members app keeps its own section
below (identity, points, coupons and promotions)."""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import (
    BigIntegerField,
    CharField,
    Exists,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _

from members.models import (
    Coupon,
    CouponTemplate,
    Identity,
    Member,
    MemberMerge,
    PointsEntry,
    Promotion,
    PromotionPrice,
    Scope,
    SpendEntry,
    Tier,
)
from retail.access import scope_to_stores
from retail.errors import BusinessError
from retail.models import SKU, Category, Store

# --- Identity: members as staff look them up ------------------------------------------------

MEMBER_DETAIL_POINTS_SHOWN = 50


def member_list(*, user: User | AnonymousUser) -> QuerySet[Member]:
    """Members whose home store is one of the user's stores (every member for HQ), with tier
    and home store. Members who joined online and never came to a counter belong to HQ."""
    return scope_to_stores(
        Member.objects.select_related("tier", "home_store"), user, store_field="home_store"
    )


def member_detail(*, user: User | AnonymousUser, member_id: int) -> Member:
    """One member with what her page shows: identities, her latest points entries
    (``latest_points``, newest first, at most ``MEMBER_DETAIL_POINTS_SHOWN``), coupons with
    their templates and the merges into her. Five queries (and the user's roles, once), however
    long her history; a member outside the user's stores is a 404."""
    latest_points = PointsEntry.objects.select_related("actor").order_by("-created_at", "-pk")
    return get_object_or_404(
        member_list(user=user)
        .select_related("referrer", "merged_into")
        .prefetch_related(
            Prefetch("identities", queryset=Identity.objects.order_by("pk")),
            Prefetch(
                "points",
                queryset=latest_points[:MEMBER_DETAIL_POINTS_SHOWN],
                to_attr="latest_points",
            ),
            Prefetch(
                "coupons",
                queryset=Coupon.objects.select_related("template").order_by("valid_until", "pk"),
            ),
            Prefetch("merges", queryset=MemberMerge.objects.order_by("created_at", "pk")),
        ),
        pk=member_id,
    )


# --- Points, spend and tiers -----------------------------------------------------------------


def tier_for_spend(spend_fen: int) -> Tier | None:
    """The highest tier whose threshold ``spend_fen`` reaches; None when no tier is set up."""
    return Tier.objects.filter(threshold_fen__lte=spend_fen).order_by("-threshold_fen").first()


def _window_spend(*, now: datetime) -> QuerySet[SpendEntry]:
    """Spend that counts for tiers at ``now``: the last ``MEMBER_TIER_WINDOW_DAYS`` days."""
    return SpendEntry.objects.filter(
        at__gt=now - timedelta(days=settings.MEMBER_TIER_WINDOW_DAYS), at__lte=now
    )


def member_window_spend(*, member: Member, now: datetime) -> int:
    """What the member spent (net of refunds) within the tier window ending at ``now``, in fen."""
    total = _window_spend(now=now).filter(member=member).aggregate(total=Sum("amount_fen"))
    return total["total"] or 0


def member_window_spend_subquery(*, now: datetime) -> Subquery:
    """``member_window_spend`` per member, to annotate a queryset of members (NULL for none)."""
    return Subquery(
        _window_spend(now=now)
        .filter(member=OuterRef("pk"))
        .values("member")
        .annotate(total=Sum("amount_fen"))
        .values("total")
    )


def member_points_entries(*, member: Member) -> QuerySet[PointsEntry]:
    """The member's points history, newest first, with the staff member behind each entry."""
    return (
        PointsEntry.objects.filter(member=member)
        .select_related("actor")
        .order_by("-created_at", "-pk")
    )


@dataclass(frozen=True)
class PointsDrift:
    """A member whose balance disagrees with her ledger (the sum of her entries), with her
    unspent lots (their ``remaining``) or with her last entry's ``balance_after``."""

    member_id: int
    balance: int
    ledger: int
    lots: int
    last_balance_after: int


def _per_member(rows: QuerySet[PointsEntry], field: str) -> Coalesce:
    total = rows.filter(member=OuterRef("pk")).order_by().values("member").annotate(t=Sum(field))
    return Coalesce(Subquery(total.values("t"), output_field=BigIntegerField()), Value(0))


def points_drift(*, chunk_size: int = 2000) -> Iterator[PointsDrift]:
    """Every member whose points do not add up, by id: one query whatever the number of
    members, compared in the database, so only drifting members come back."""
    last = (
        PointsEntry.objects.filter(member=OuterRef("pk"))
        .order_by("-pk")
        .values("balance_after")[:1]
    )
    drifting = (
        Member.objects.annotate(
            ledger=_per_member(PointsEntry.objects.all(), "points"),
            lots=_per_member(PointsEntry.objects.filter(remaining__gt=0), "remaining"),
            last_balance_after=Coalesce(Subquery(last, output_field=BigIntegerField()), Value(0)),
        )
        .filter(
            ~Q(ledger=F("points_balance"))
            | ~Q(lots=F("points_balance"))
            | ~Q(last_balance_after=F("points_balance"))
        )
        .order_by("pk")
        .values_list("pk", "points_balance", "ledger", "lots", "last_balance_after")
    )
    for row in drifting.iterator(chunk_size=chunk_size):
        yield PointsDrift(*row)


def member_points_expiring(*, member: Member, before: datetime) -> int:
    """How many of the member's points expire before ``before`` unless she spends them."""
    total = PointsEntry.objects.filter(
        member=member, remaining__gt=0, expires_at__lt=before
    ).aggregate(total=Sum("remaining"))
    return total["total"] or 0


# --- Coupons and promotions ----------------------------------------------------------------


def channel_scope(channel: str) -> str:
    """The coupon and promotion scope a sales channel belongs to: the counter, or online (the
    mini-shop, H5 and partners)."""
    return Scope.COUNTER if channel == "counter" else Scope.ONLINE


def _active_promotions(*, store: Store, channel: str, now: datetime) -> QuerySet[Promotion]:
    stores = Promotion.stores.through.objects.filter(promotion_id=OuterRef("pk"))
    return Promotion.objects.filter(
        Q(~Exists(stores)) | Q(Exists(stores.filter(store_id=store.pk))),
        active=True,
        starts_at__lte=now,
        ends_at__gt=now,
        scope__in=[channel_scope(channel), Scope.ALL],
    )


def promotion_unit_prices(
    *, skus: Sequence[SKU], store: Store, channel: str, with_member: bool, now: datetime
) -> dict[int, int]:
    """The lowest unit price the promotions active at ``store`` in ``channel`` at ``now`` give
    each SKU: percentage off (per unit, the saving rounded down to the fen) and, only
    ``with_member``, member prices. Only SKUs a promotion makes cheaper appear. One query,
    whatever the basket."""
    active = _active_promotions(store=store, channel=channel, now=now)
    label = CharField()
    candidates = Promotion.products.through.objects.filter(
        promotion__in=active.filter(kind=Promotion.Kind.PERCENT_OFF),
        product_id__in={sku.product_id for sku in skus},
    ).values_list(Value("percent", output_field=label), "product_id", "promotion__percent_off")
    if with_member:
        member_prices = PromotionPrice.objects.filter(
            promotion__in=active.filter(kind=Promotion.Kind.MEMBER_PRICE),
            sku_id__in=[sku.pk for sku in skus],
        ).values_list(Value("price", output_field=label), "sku_id", "price_fen")
        candidates = candidates.union(member_prices, all=True)
    percents: dict[int, list[int]] = {}
    member_price: dict[int, int] = {}
    for kind, key, value in candidates:
        if kind == "percent":
            percents.setdefault(key, []).append(value)
        else:
            member_price[key] = min(value, member_price.get(key, value))
    best: dict[int, int] = {}
    for sku in skus:
        off = percents.get(sku.product_id, [])
        prices = [sku.price_fen - sku.price_fen * pct // 100 for pct in off]
        if sku.pk in member_price:
            prices.append(member_price[sku.pk])
        if prices and min(prices) < sku.price_fen:
            best[sku.pk] = min(prices)
    return best


@dataclass(frozen=True)
class CheckoutCoupon:
    """A coupon the member may use on this order, with what its template covers."""

    coupon: Coupon
    category_ids: frozenset[int]
    sku_ids: frozenset[int]

    @property
    def template(self) -> CouponTemplate:
        return self.coupon.template

    def covers(self, sku: SKU) -> bool:
        """No categories and no SKUs: the whole basket; otherwise the SKUs named and every
        product under a category named (at any depth)."""
        if not self.category_ids and not self.sku_ids:
            return True
        return sku.pk in self.sku_ids or sku.product.category_id in self.category_ids


def _refuse_coupon(code: str, message: str, coupon_code: str, status_code: int = 409):
    return BusinessError(
        code, message, fields={"coupon_code": [coupon_code]}, status_code=status_code
    )


def _with_descendants(category_ids: Iterable[int]) -> frozenset[int]:
    children: dict[int | None, list[int]] = {}
    for pk, parent_id in Category.objects.values_list("pk", "parent_id"):
        children.setdefault(parent_id, []).append(pk)
    found, todo = set(), list(category_ids)
    while todo:
        pk = todo.pop()
        if pk not in found:
            found.add(pk)
            todo.extend(children.get(pk, []))
    return frozenset(found)


def coupon_for_checkout(
    *, code: str, member: Member | None, store: Store, channel: str, now: datetime
) -> CheckoutCoupon:
    """The member's coupon ``code`` if it may be used now, in ``channel``, at ``store``;
    otherwise a refusal whose code says why. What the basket must hold (eligible items,
    threshold) the pricing function checks. Two queries (three when the coupon names
    categories)."""
    code = code.strip().upper()
    coupon = Coupon.objects.select_related("template").filter(code=code).first()
    if coupon is None:
        raise _refuse_coupon("coupon_not_found", _("No such coupon."), code, status_code=404)
    if member is None or coupon.member_id != member.pk:
        raise _refuse_coupon("coupon_not_yours", _("This coupon belongs to someone else."), code)
    if coupon.status == Coupon.Status.VOID:
        raise _refuse_coupon("coupon_expired", _("This coupon has expired."), code)
    if coupon.status != Coupon.Status.AVAILABLE:
        raise _refuse_coupon("coupon_used", _("This coupon has been used."), code)
    if now < coupon.valid_from:
        raise _refuse_coupon("coupon_not_started", _("This coupon cannot be used yet."), code)
    if now >= coupon.valid_until:
        raise _refuse_coupon("coupon_expired", _("This coupon has expired."), code)
    template = coupon.template
    if template.scope not in (Scope.ALL, channel_scope(channel)):
        raise _refuse_coupon(
            "coupon_wrong_channel",
            _("This coupon is only for %(scope)s.") % {"scope": template.get_scope_display()},
            code,
        )
    label = CharField()
    scope_rows = (
        CouponTemplate.stores.through.objects.filter(coupontemplate_id=template.pk)
        .values_list(Value("store", output_field=label), "store_id")
        .union(
            CouponTemplate.categories.through.objects.filter(
                coupontemplate_id=template.pk
            ).values_list(Value("category", output_field=label), "category_id"),
            CouponTemplate.skus.through.objects.filter(coupontemplate_id=template.pk).values_list(
                Value("sku", output_field=label), "sku_id"
            ),
            all=True,
        )
    )
    scope: dict[str, set[int]] = {"store": set(), "category": set(), "sku": set()}
    for kind, pk in scope_rows:
        scope[kind].add(pk)
    if scope["store"] and store.pk not in scope["store"]:
        raise _refuse_coupon(
            "coupon_wrong_store", _("This coupon cannot be used at this store."), code
        )
    return CheckoutCoupon(
        coupon=coupon,
        category_ids=_with_descendants(scope["category"]) if scope["category"] else frozenset(),
        sku_ids=frozenset(scope["sku"]),
    )


def member_coupons(*, member: Member, usable_at: datetime | None = None) -> QuerySet[Coupon]:
    """The member's coupons with their templates, soonest to expire first; ``usable_at``
    keeps only those available and valid then."""
    coupons = Coupon.objects.filter(member=member).select_related("template")
    if usable_at is not None:
        coupons = coupons.filter(
            status=Coupon.Status.AVAILABLE, valid_from__lte=usable_at, valid_until__gt=usable_at
        )
    return coupons.order_by("valid_until", "pk")


def coupon_templates_claimable(*, now: datetime) -> QuerySet[CouponTemplate]:
    """Templates members may claim now that still have coupons left."""
    return CouponTemplate.objects.filter(
        issued_by=CouponTemplate.IssuedBy.CLAIM,
        active=True,
        valid_from__lte=now,
        valid_until__gt=now,
        issued_count__lt=F("total_quantity"),
    ).order_by("valid_until", "pk")
