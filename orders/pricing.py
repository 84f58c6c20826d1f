"""The one pricing function. Checkout, the preview a shopper sees and the counter all call it,
so every channel prices the same basket the same way.

The stacking rule (docs/architecture.md, "Members and pricing"), in this order:

1. Promotion: each line at the lowest unit price the promotions active for its product in this
   channel, store and time give (member prices only for members). No tier discount on it.
2. Tier discount: lines without a promotion get ``floor(line * tier.discount_percent / 100)``.
3. Coupon (one per order): its scope picks the eligible lines; the threshold is checked on
   what they cost after 1-2. Fixed and threshold coupons take ``min(amount, eligible)``,
   percentage coupons ``floor(eligible * pct / 100)`` up to their cap, a free-delivery coupon
   the delivery fee.
4. Points, last: at most ``MEMBER_POINTS_MAX_PERCENT`` of the goods after 1-3, the balance and
   what the shopper asked. Never on delivery.

Goods discounts of 3 and 4 are split over their lines in proportion to what each still costs
(largest remainder, so the lines add up exactly): a refund of one line gives back what that
line cost. Delivery is free from the free-delivery amount, reached by the goods after 1-3.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import Coupon, CouponTemplate, Member
from members.selectors import CheckoutCoupon, coupon_for_checkout, promotion_unit_prices
from orders.models import Fulfilment, ShippingRule
from retail.errors import BusinessError
from retail.models import SKU, Store


@dataclass(frozen=True)
class BasketLine:
    sku_id: int
    quantity: int


@dataclass(frozen=True)
class PricedLine:
    """A line at its list price and what each step of the stacking rule took off it."""

    sku: SKU
    quantity: int
    unit_price_fen: int
    promotion_fen: int = 0
    tier_fen: int = 0
    coupon_fen: int = 0
    points_fen: int = 0

    @property
    def discount_fen(self) -> int:
        return self.promotion_fen + self.tier_fen + self.coupon_fen + self.points_fen

    @property
    def total_fen(self) -> int:
        return self.unit_price_fen * self.quantity - self.discount_fen


@dataclass(frozen=True)
class Quote:
    lines: list[PricedLine]
    subtotal_fen: int
    # The delivery fee left to pay, after a free-delivery coupon took ``shipping_discount_fen``.
    shipping_fen: int
    shipping_discount_fen: int = 0
    coupon: Coupon | None = None
    points_redeemed: int = 0

    @property
    def discount_fen(self) -> int:
        return sum(line.discount_fen for line in self.lines)

    @property
    def total_fen(self) -> int:
        return self.subtotal_fen - self.discount_fen + self.shipping_fen

    @property
    def breakdown(self) -> dict[str, int]:
        """What the order keeps in ``Order.pricing``."""
        return {
            "promotion_fen": sum(line.promotion_fen for line in self.lines),
            "tier_fen": sum(line.tier_fen for line in self.lines),
            "coupon_fen": sum(line.coupon_fen for line in self.lines),
            "points_fen": sum(line.points_fen for line in self.lines),
            "shipping_discount_fen": self.shipping_discount_fen,
        }


def _bad_basket(code: str, message: str, **fields: str) -> BusinessError:
    return BusinessError(code, message, fields={k: [v] for k, v in fields.items()}, status_code=400)


def _checked_basket(lines: Sequence[BasketLine]) -> None:
    if not lines:
        raise _bad_basket("empty_basket", _("The basket is empty."), lines="")
    if len(lines) > settings.ORDER_MAX_LINES:
        raise _bad_basket(
            "too_many_lines",
            _("An order may have at most %(count)d lines.") % {"count": settings.ORDER_MAX_LINES},
            lines=str(len(lines)),
        )
    seen: set[int] = set()
    for line in lines:
        if line.sku_id in seen:
            raise _bad_basket(
                "duplicate_line", _("Each SKU may appear only once."), sku=str(line.sku_id)
            )
        seen.add(line.sku_id)
        if not 0 < line.quantity <= settings.ORDER_MAX_LINE_QUANTITY:
            raise _bad_basket(
                "invalid_quantity",
                _("Quantity must be between 1 and %(max)d.")
                % {"max": settings.ORDER_MAX_LINE_QUANTITY},
                sku=str(line.sku_id),
                quantity=str(line.quantity),
            )


def shipping_fee(*, store: Store, fulfilment: str, goods_fen: int) -> int:
    """Delivery costs the store's fee (or the default) unless the goods reach the
    free-delivery amount; pickup and counter sales cost nothing."""
    if fulfilment != Fulfilment.DELIVERY:
        return 0
    try:
        rule = store.shipping_rule
        fee, free_from = rule.fee_fen, rule.free_from_fen
    except ShippingRule.DoesNotExist:
        fee, free_from = settings.ORDER_DELIVERY_FEE_FEN, settings.ORDER_FREE_DELIVERY_FROM_FEN
    if free_from is not None and goods_fen >= free_from:
        return 0
    return fee


def _split(amount: int, weights: list[int]) -> list[int]:
    """``amount`` (at most ``sum(weights)``) in shares proportional to ``weights`` that add up
    exactly: each share rounded down, the fen left over to the largest remainders (the first
    line on a tie)."""
    total = sum(weights)
    if not amount or not total:
        return [0] * len(weights)
    shares = [amount * weight // total for weight in weights]
    by_remainder = sorted(
        range(len(weights)), key=lambda index: (-(amount * weights[index] % total), index)
    )
    for index in by_remainder[: amount - sum(shares)]:
        shares[index] += 1
    return shares


def _refuse_coupon(code: str, message: str, coupon: Coupon) -> BusinessError:
    return BusinessError(code, message, fields={"coupon_code": [coupon.code]})


def _coupon_off(checked: CheckoutCoupon, skus: list[SKU], costs: list[int]) -> list[int]:
    """Step 3 on the goods: what the coupon takes off each line (zeros for free delivery)."""
    template, coupon = checked.template, checked.coupon
    eligible = [index for index, sku in enumerate(skus) if checked.covers(sku) and costs[index]]
    if not eligible:
        raise _refuse_coupon(
            "coupon_no_eligible_items",
            _("Nothing in the basket is covered by this coupon."),
            coupon,
        )
    eligible_fen = sum(costs[index] for index in eligible)
    if eligible_fen < template.threshold_fen:
        raise _refuse_coupon(
            "coupon_below_threshold",
            _("Spend %(short)d fen more on eligible items to use this coupon.")
            % {"short": template.threshold_fen - eligible_fen},
            coupon,
        )
    kind = CouponTemplate.Kind
    if template.kind in (kind.FIXED, kind.THRESHOLD):
        off = min(template.amount_fen, eligible_fen)
    elif template.kind == kind.PERCENT:
        off = eligible_fen * template.percent_off // 100
        if template.cap_fen is not None:
            off = min(off, template.cap_fen)
    else:
        off = 0
    shares = _split(off, [costs[index] for index in eligible])
    per_line = [0] * len(skus)
    for index, share in zip(eligible, shares, strict=True):
        per_line[index] = share
    return per_line


def _checked_points(points: int, member: Member | None) -> None:
    if not isinstance(points, int) or points < 0:
        raise _bad_basket(
            "invalid_points", _("Points to redeem must be a whole number, 0 or more."), points=""
        )
    if points and member is None:
        raise _bad_basket(
            "member_required", _("Only members can pay with points."), points=str(points)
        )


def price_basket(
    *,
    store: Store,
    lines: Sequence[BasketLine],
    fulfilment: str,
    channel: str,
    member: Member | None = None,
    coupon_code: str = "",
    points_to_redeem: int = 0,
    now: datetime | None = None,
) -> Quote:
    """Price ``lines`` for ``member`` at ``store`` in ``channel`` by the stacking rule above;
    refuses unknown or unsellable SKUs and a coupon that does not apply (the code says why).
    Reads nothing per line: the SKUs with their products, the promotions, the member's tier,
    the coupon and its scope (and the category tree when it names categories), the store's
    shipping rule, each once."""
    _checked_basket(lines)
    _checked_points(points_to_redeem, member)
    now = now or timezone.now()
    skus = SKU.objects.select_related("product").in_bulk([line.sku_id for line in lines])
    basket: list[tuple[SKU, int]] = []
    for line in lines:
        sku = skus.get(line.sku_id)
        if sku is None:
            raise _bad_basket("sku_not_found", _("No such SKU."), sku=str(line.sku_id))
        if not (sku.active and sku.product.active):
            raise BusinessError(
                "sku_unavailable",
                _("“%(name)s” is no longer sold.") % {"name": sku.product.name},
                fields={"sku": [str(sku.pk)]},
            )
        basket.append((sku, line.quantity))
    in_basket = [sku for sku, _quantity in basket]
    # The coupon's own conditions (owner, status, dates, channel, store) come first.
    checked = (
        coupon_for_checkout(code=coupon_code, member=member, store=store, channel=channel, now=now)
        if coupon_code.strip()
        else None
    )

    # 1-2: promotions, then the tier discount on the lines without one.
    promoted = promotion_unit_prices(
        skus=in_basket, store=store, channel=channel, with_member=member is not None, now=now
    )
    tier_percent = member.tier.discount_percent if member is not None and member.tier_id else 0
    promotion, tier = [], []
    for sku, quantity in basket:
        if sku.pk in promoted:
            promotion.append((sku.price_fen - promoted[sku.pk]) * quantity)
            tier.append(0)
        else:
            promotion.append(0)
            tier.append(sku.price_fen * quantity * tier_percent // 100)
    costs = [
        sku.price_fen * quantity - promotion[index] - tier[index]
        for index, (sku, quantity) in enumerate(basket)
    ]

    # 3: the coupon, on goods or on delivery.
    coupon = [0] * len(basket)
    if checked is not None:
        coupon = _coupon_off(checked, in_basket, costs)
        costs = [cost - off for cost, off in zip(costs, coupon, strict=True)]
    fee = shipping_fee(store=store, fulfilment=fulfilment, goods_fen=sum(costs))
    shipping_discount = 0
    if checked is not None and checked.template.kind == CouponTemplate.Kind.FREE_SHIPPING:
        if not fee:
            raise _refuse_coupon(
                "coupon_no_delivery_fee",
                _("This order has no delivery fee for the coupon to take off."),
                checked.coupon,
            )
        shipping_discount = fee

    # 4: points, last, on goods only.
    points = 0
    if points_to_redeem:
        fen_per_point = settings.MEMBER_POINTS_FEN_PER_POINT
        most_fen = sum(costs) * settings.MEMBER_POINTS_MAX_PERCENT // 100
        points = min(points_to_redeem, member.points_balance, most_fen // fen_per_point)
    paid_with_points = _split(points * settings.MEMBER_POINTS_FEN_PER_POINT, costs)

    return Quote(
        lines=[
            PricedLine(
                sku=sku,
                quantity=quantity,
                unit_price_fen=sku.price_fen,
                promotion_fen=promotion[index],
                tier_fen=tier[index],
                coupon_fen=coupon[index],
                points_fen=paid_with_points[index],
            )
            for index, (sku, quantity) in enumerate(basket)
        ],
        subtotal_fen=sum(sku.price_fen * quantity for sku, quantity in basket),
        shipping_fen=fee - shipping_discount,
        shipping_discount_fen=shipping_discount,
        coupon=checked.coupon if checked is not None else None,
        points_redeemed=points,
    )
