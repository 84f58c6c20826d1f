"""The shop's part in merging two members (``members.services.identity.member_merge``): the
merged member's login tokens, addresses and cart go to the survivor. Registered in
``WeChatConfig.ready``."""

from django.db.models import F

from wechat.models import Address, Cart, CartLine, ShopperToken


def tokens_member_move(*, source_id: int, target_id: int) -> int:
    return ShopperToken.objects.filter(member_id=source_id).update(member_id=target_id)


def addresses_member_move(*, source_id: int, target_id: int) -> int:
    # The survivor's default stays the default.
    return Address.objects.filter(member_id=source_id).update(member_id=target_id, is_default=False)


def cart_member_move(*, source_id: int, target_id: int) -> int:
    """The merged member's cart lines join the survivor's cart (quantities add up for a SKU in
    both); returns how many lines moved."""
    source = Cart.objects.filter(member_id=source_id).first()
    if source is None:
        return 0
    target, _created = Cart.objects.get_or_create(
        member_id=target_id, defaults={"store_id": source.store_id}
    )
    lines = list(CartLine.objects.filter(cart=source))
    in_both = {
        line.sku_id: line
        for line in CartLine.objects.filter(cart=target, sku__in=[line.sku_id for line in lines])
    }
    for line in lines:
        if line.sku_id in in_both:
            CartLine.objects.filter(pk=in_both[line.sku_id].pk).update(
                quantity=F("quantity") + line.quantity
            )
    CartLine.objects.filter(cart=source, sku__in=list(in_both)).delete()
    CartLine.objects.filter(cart=source).update(cart=target)
    source.delete()
    return len(lines)
