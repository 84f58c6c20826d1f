"""The shopper's server-side cart: the store she chose and one line per SKU.

The mini-program and the H5 pages share it. Writes lock the cart row first (created on first
use), so two taps racing on one line cannot lose an update or pass the line limit. Checkout
(``wechat.services.checkout``) removes the lines it ordered.
"""

from collections.abc import Collection

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from members.models import Member
from retail.errors import BusinessError
from retail.models import SKU, Store
from wechat.models import Cart, CartLine


def _refuse(code: str, message: str, *, status_code: int | None = None, **fields: str):
    return BusinessError(
        code, message, fields={k: [v] for k, v in fields.items()}, status_code=status_code
    )


def _cart_locked(member: Member) -> Cart:
    """The member's cart under a row lock, created on first use; call inside a transaction."""
    cart = Cart.objects.select_for_update().filter(member=member).first()
    if cart is not None:
        return cart
    try:
        with transaction.atomic():
            return Cart.objects.create(member=member)
    except IntegrityError:
        # A racing first write created it: take that one.
        return Cart.objects.select_for_update().get(member=member)


def cart_store_set(*, member: Member, store: Store | int) -> Cart:
    """The store the shopper buys from: availability and prices in the cart follow it.
    An unknown or inactive store, or a warehouse, is ``store_not_found`` (404)."""
    store_id = store if isinstance(store, int) else store.pk
    chosen = Store.objects.filter(pk=store_id, active=True, kind=Store.Kind.STORE).first()
    if chosen is None:
        raise _refuse("store_not_found", _("No such store."), status_code=404, store=str(store_id))
    with transaction.atomic():
        cart = _cart_locked(member)
        if cart.store_id != chosen.pk:
            cart.store = chosen
            cart.save(update_fields=["store", "updated_at"])
    cart.store = chosen
    return cart


def cart_line_set(*, member: Member, sku: SKU | int, quantity: int) -> Cart:
    """Set how many of ``sku`` the cart holds; 0 removes the line. Refused: an unknown SKU
    (``sku_not_found``, 404), a SKU no longer sold (``sku_unavailable``, only when adding or
    raising it: lowering or removing always works), a quantity outside 0 to
    ``ORDER_MAX_LINE_QUANTITY`` (``invalid_quantity``) and a new line beyond
    ``ORDER_MAX_LINES`` (``cart_full``)."""
    sku_id = sku if isinstance(sku, int) else sku.pk
    if isinstance(quantity, bool) or not 0 <= quantity <= settings.ORDER_MAX_LINE_QUANTITY:
        raise _refuse(
            "invalid_quantity",
            _("Quantity must be between 0 and %(max)d.")
            % {"max": settings.ORDER_MAX_LINE_QUANTITY},
            status_code=400,
            quantity=str(quantity),
        )
    found = SKU.objects.select_related("product").filter(pk=sku_id).first()
    if found is None:
        raise _refuse("sku_not_found", _("No such SKU."), status_code=404, sku=str(sku_id))
    with transaction.atomic():
        cart = _cart_locked(member)
        line = CartLine.objects.filter(cart=cart, sku_id=sku_id).first()
        if quantity == 0:
            if line is not None:
                line.delete()
                cart.save(update_fields=["updated_at"])
            return cart
        raising = line is None or quantity > line.quantity
        if raising and not (found.active and found.product.active):
            raise _refuse(
                "sku_unavailable",
                _("“%(name)s” is no longer sold.") % {"name": found.product.name},
                sku=str(sku_id),
            )
        if line is None:
            if CartLine.objects.filter(cart=cart).count() >= settings.ORDER_MAX_LINES:
                raise _refuse(
                    "cart_full",
                    _("A cart holds at most %(count)d items.")
                    % {"count": settings.ORDER_MAX_LINES},
                    sku=str(sku_id),
                )
            CartLine.objects.create(cart=cart, sku_id=sku_id, quantity=quantity)
        elif line.quantity != quantity:
            CartLine.objects.filter(pk=line.pk).update(quantity=quantity)
        cart.save(update_fields=["updated_at"])
        return cart


def cart_clear(*, member: Member) -> None:
    """Empty the cart; the chosen store stays."""
    with transaction.atomic():
        cart = Cart.objects.select_for_update().filter(member=member).first()
        if cart is not None and CartLine.objects.filter(cart=cart).delete()[0]:
            cart.save(update_fields=["updated_at"])


def cart_lines_remove(*, member: Member, sku_ids: Collection[int]) -> int:
    """Take these SKUs out of the cart (what an order just took); returns how many lines
    went. The caller owns the transaction."""
    return CartLine.objects.filter(cart__member=member, sku_id__in=list(sku_ids)).delete()[0]
