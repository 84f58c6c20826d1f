"""The one pricing function. Checkout, the preview a shopper sees and the counter all call it.

Today a line costs its SKU's price and delivery costs the store's fee; promotions, member tier
discounts, coupons and points plug in here (members issue), in the order written in
docs/architecture.md, so every channel prices the same basket the same way.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _

from members.models import Member
from orders.models import Fulfilment, ShippingRule
from retail.errors import BusinessError
from retail.models import SKU, Store


@dataclass(frozen=True)
class BasketLine:
    sku_id: int
    quantity: int


@dataclass(frozen=True)
class PricedLine:
    sku: SKU
    quantity: int
    unit_price_fen: int
    discount_fen: int

    @property
    def total_fen(self) -> int:
        return self.unit_price_fen * self.quantity - self.discount_fen


@dataclass(frozen=True)
class Quote:
    lines: list[PricedLine]
    subtotal_fen: int
    discount_fen: int
    shipping_fen: int

    @property
    def total_fen(self) -> int:
        return self.subtotal_fen - self.discount_fen + self.shipping_fen


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


def shipping_fee(*, store: Store, fulfilment: str, subtotal_fen: int) -> int:
    """Delivery costs the store's fee (or the default) unless the basket reaches the
    free-delivery amount; pickup and counter sales cost nothing."""
    if fulfilment != Fulfilment.DELIVERY:
        return 0
    try:
        rule = store.shipping_rule
        fee, free_from = rule.fee_fen, rule.free_from_fen
    except ShippingRule.DoesNotExist:
        fee, free_from = settings.ORDER_DELIVERY_FEE_FEN, settings.ORDER_FREE_DELIVERY_FROM_FEN
    if free_from is not None and subtotal_fen >= free_from:
        return 0
    return fee


def price_basket(
    *,
    store: Store,
    lines: Sequence[BasketLine],
    fulfilment: str,
    channel: str,
    member: Member | None = None,
) -> Quote:
    """Price ``lines`` for ``member`` at ``store``; refuses unknown or unsellable SKUs.
    Two queries: the SKUs with their products, and the store's shipping rule."""
    _checked_basket(lines)
    skus = SKU.objects.select_related("product").in_bulk([line.sku_id for line in lines])
    priced = []
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
        priced.append(
            PricedLine(
                sku=sku, quantity=line.quantity, unit_price_fen=sku.price_fen, discount_fen=0
            )
        )
    subtotal = sum(line.unit_price_fen * line.quantity for line in priced)
    discount = sum(line.discount_fen for line in priced)
    return Quote(
        lines=priced,
        subtotal_fen=subtotal,
        discount_fen=discount,
        shipping_fen=shipping_fee(store=store, fulfilment=fulfilment, subtotal_fen=subtotal),
    )
