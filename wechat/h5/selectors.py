"""Reads only the H5 pages need; everything else comes from ``wechat.selectors``."""

from dataclasses import dataclass

from django.db.models import Count

from members.models import Member
from retail.models import Store
from wechat.models import Cart, CartLine


@dataclass(frozen=True)
class ShopHeader:
    """What every page shows around its content: the chosen store and the cart's line count."""

    member: Member
    store: Store | None
    cart_count: int


def shop_header(*, member: Member) -> ShopHeader:
    """One query: the member's cart with its store and its number of lines."""
    cart = (
        Cart.objects.filter(member=member)
        .select_related("store")
        .annotate(line_count=Count("lines"))
        .first()
    )
    if cart is None:
        return ShopHeader(member=member, store=None, cart_count=0)
    store = cart.store if cart.store is not None and cart.store.active else None
    return ShopHeader(member=member, store=store, cart_count=cart.line_count)


def cart_quantities(*, member: Member, sku_ids: list[int]) -> dict[int, int]:
    """How many of each of these SKUs the member's cart holds (absent: none). One query."""
    return dict(
        CartLine.objects.filter(cart__member=member, sku_id__in=sku_ids).values_list(
            "sku_id", "quantity"
        )
    )
