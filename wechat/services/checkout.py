"""Checkout from the shopper's cart: the price breakdown before placing (nothing held), and
placing the order through ``orders.services.checkout_place``, which prices, reserves stock,
spends the coupon and the points all or nothing.

What the shop adds to the orders service: the basket comes from the cart (all its lines, or
the SKUs the shopper ticked), the delivery address from her address book, and two refusals the
pricing function does not make: a store that does not offer the service asked for
(``store_does_not_serve``, also in the preview) and more points than she owns
(``points_exceed_balance``: the pricing function would quietly use fewer; the shopper is told
instead). A repeated ``client_reference`` answers with the first order, even after its lines
left the cart.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils.translation import gettext as _

from inventory.selectors import availability_for_skus
from members.models import Member
from orders.models import Channel, Fulfilment, Order
from orders.pricing import BasketLine, Quote, price_basket
from orders.services import checkout_place, delivery_area_check, store_serves
from retail.errors import BusinessError
from retail.models import Store
from wechat.models import Address, Cart, CartLine
from wechat.services.cart import cart_lines_remove

SHOP_CHANNELS = (Channel.MINI_SHOP, Channel.H5)
SHOP_FULFILMENTS = (Fulfilment.DELIVERY, Fulfilment.PICKUP)


def _refuse(code: str, message: str, *, status_code: int | None = None, **fields: str):
    return BusinessError(
        code, message, fields={k: [v] for k, v in fields.items()}, status_code=status_code
    )


@dataclass(frozen=True)
class CheckoutRequest:
    """What the shopper asks for, as the preview and the place endpoints take it."""

    fulfilment: str
    store: int | None = None
    address_id: int | None = None
    coupon_code: str = ""
    points: int = 0
    # Empty: every line of the cart.
    skus: tuple[int, ...] = ()


@dataclass(frozen=True)
class Preview:
    quote: Quote
    store: Store
    fulfilment: str
    address: Address | None
    points_requested: int
    # Units the store can sell online now, per SKU of the basket.
    available: dict[int, int]

    @property
    def all_available(self) -> bool:
        return all(line.quantity <= self.available[line.sku.pk] for line in self.quote.lines)


@dataclass(frozen=True)
class _Checked:
    store: Store
    address: Address | None
    lines: list[BasketLine]


def _checked(*, member: Member, cart_store_id: int | None, asked: CheckoutRequest) -> _Checked:
    if asked.fulfilment not in SHOP_FULFILMENTS:
        raise _refuse(
            "invalid_fulfilment",
            _("Choose delivery or pickup."),
            status_code=400,
            fulfilment=str(asked.fulfilment),
        )
    store_id = asked.store or cart_store_id
    if store_id is None:
        raise _refuse("store_required", _("Choose a store first."), status_code=400, store="")
    store = Store.objects.select_related("shipping_rule").filter(pk=store_id).first()
    if store is None or not store.active:
        raise _refuse("store_not_found", _("No such store."), status_code=404, store=str(store_id))
    if not store_serves(store, asked.fulfilment):
        raise _refuse(
            "store_does_not_serve",
            _("%(store)s does not offer this.") % {"store": store.name},
            store=str(store.pk),
            fulfilment=asked.fulfilment,
        )
    address = None
    if asked.fulfilment == Fulfilment.DELIVERY:
        if asked.address_id is None:
            raise _refuse(
                "address_required",
                _("Choose a delivery address."),
                status_code=400,
                address_id="",
            )
        address = Address.objects.filter(pk=asked.address_id, member=member).first()
        if address is None:
            raise _refuse(
                "address_not_found",
                _("No such address."),
                status_code=404,
                address_id=str(asked.address_id),
            )
        delivery_area_check(
            store=store,
            address=_address_snapshot(address),
            field="address_id",
            value=str(address.pk),
        )
    if isinstance(asked.points, bool) or not isinstance(asked.points, int) or asked.points < 0:
        raise _refuse(
            "invalid_points",
            _("Points to redeem must be a whole number, 0 or more."),
            status_code=400,
            points=str(asked.points),
        )
    if asked.points > member.points_balance:
        raise _refuse(
            "points_exceed_balance",
            _("You have %(balance)d points.") % {"balance": member.points_balance},
            points=str(asked.points),
        )
    cart_lines = CartLine.objects.filter(cart__member=member).order_by("added_at", "pk")
    if asked.skus:
        cart_lines = cart_lines.filter(sku_id__in=asked.skus)
    lines = [
        BasketLine(sku_id, quantity)
        for sku_id, quantity in cart_lines.values_list("sku_id", "quantity")
    ]
    if asked.skus and len(lines) != len(set(asked.skus)):
        missing = sorted(set(asked.skus) - {line.sku_id for line in lines})
        raise _refuse(
            "not_in_cart",
            _("Some chosen items are not in the cart."),
            status_code=400,
            skus=", ".join(map(str, missing)),
        )
    if not lines:
        raise _refuse("empty_basket", _("The basket is empty."), status_code=400, lines="")
    return _Checked(store=store, address=address, lines=lines)


def _cart_store_id(member: Member) -> int | None:
    return Cart.objects.filter(member=member).values_list("store_id", flat=True).first()


def _address_snapshot(address: Address | None) -> dict | None:
    if address is None:
        return None
    snapshot = {
        field: getattr(address, field)
        for field in ("name", "mobile", "province", "city", "district", "detail")
    }
    if address.latitude is not None and address.longitude is not None:
        snapshot["latitude"], snapshot["longitude"] = str(address.latitude), str(address.longitude)
    return snapshot


def checkout_preview(*, member: Member, asked: CheckoutRequest, channel: str) -> Preview:
    """The price breakdown of ordering the cart now, and whether the store has every line;
    nothing is held or spent. Refuses as placing would (coupon, points, store, address), except
    for stock, which the answer shows line by line."""
    checked = _checked(member=member, cart_store_id=_cart_store_id(member), asked=asked)
    quote = price_basket(
        store=checked.store,
        lines=checked.lines,
        fulfilment=asked.fulfilment,
        channel=channel,
        member=member,
        coupon_code=asked.coupon_code,
        points_to_redeem=asked.points,
    )
    units = availability_for_skus(
        sku_ids=[line.sku_id for line in checked.lines], store_ids=[checked.store.pk], online=True
    )
    return Preview(
        quote=quote,
        store=checked.store,
        fulfilment=asked.fulfilment,
        address=checked.address,
        points_requested=asked.points,
        available={sku_id: count for (_store, sku_id), count in units.items()},
    )


def checkout_place_from_cart(
    *,
    member: Member,
    asked: CheckoutRequest,
    channel: str,
    client_reference: str,
    note: str = "",
) -> tuple[Order, bool]:
    """Place the order for the cart (or its ticked lines) and take those lines out of the cart,
    in one transaction: refused, nothing is held, spent or removed. Returns the order and
    whether it is new; the same ``client_reference`` again returns the first order (another
    shopper's reference is ``client_reference_taken``)."""
    if channel not in SHOP_CHANNELS:
        raise _refuse(
            "invalid_channel", _("Unknown shop channel."), status_code=400, channel=channel
        )
    if client_reference:
        first = Order.objects.filter(channel=channel, client_reference=client_reference).first()
        if first is not None:
            if first.member_id != member.pk:
                raise _refuse(
                    "client_reference_taken",
                    _("This client reference belongs to another order."),
                    client_reference=client_reference,
                )
            return first, False
    checked = _checked(member=member, cart_store_id=_cart_store_id(member), asked=asked)
    with transaction.atomic():
        order = checkout_place(
            channel=channel,
            store=checked.store,
            fulfilment=asked.fulfilment,
            lines=checked.lines,
            client_reference=client_reference,
            member=member,
            address=_address_snapshot(checked.address),
            note=note,
            coupon_code=asked.coupon_code,
            points_to_redeem=asked.points,
        )
        cart_lines_remove(member=member, sku_ids=[line.sku_id for line in checked.lines])
    return order, True
