"""What the shopper side keeps of its own: login tokens, addresses, carts, and the
"bought together" figures behind recommendations. Members, orders and stock live in their apps.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from members.models import Member, mobile_validator
from retail.models import SKU, Store


class ShopperToken(models.Model):
    """A bearer token issued at login. Only its SHA-256 is stored: a leaked table logs no one in."""

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="shop_tokens"
    )
    key_hash = models.CharField(_("token hash"), max_length=64, unique=True)
    # WeChat's session key for this login (to decrypt data the mini-program hands over).
    session_key = models.CharField(_("WeChat session key"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("issued at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("shopper token")
        verbose_name_plural = _("shopper tokens")
        indexes = [models.Index(fields=["member", "expires_at"], name="shoptoken_member_expiry")]

    def __str__(self) -> str:
        return f"{self.member_id}: {self.key_hash[:8]}…"


class Address(models.Model):
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="addresses"
    )
    name = models.CharField(_("recipient"), max_length=50)
    mobile = models.CharField(_("mobile number"), max_length=11, validators=[mobile_validator])
    province = models.CharField(_("province"), max_length=32)
    city = models.CharField(_("city"), max_length=32)
    district = models.CharField(_("district"), max_length=32)
    detail = models.CharField(_("street address"), max_length=200)
    latitude = models.DecimalField(
        _("latitude (GCJ-02)"), max_digits=9, decimal_places=6, null=True, blank=True
    )
    longitude = models.DecimalField(
        _("longitude (GCJ-02)"), max_digits=9, decimal_places=6, null=True, blank=True
    )
    is_default = models.BooleanField(_("default"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("address")
        verbose_name_plural = _("addresses")
        ordering = ["-is_default", "-updated_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["member"], condition=Q(is_default=True), name="address_one_default"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.district}{self.detail}"


class Cart(models.Model):
    """The shopper's basket, kept on the server so the mini-program and H5 pages share it."""

    member = models.OneToOneField(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="cart"
    )
    store = models.ForeignKey(
        Store,
        verbose_name=_("chosen store"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("cart")
        verbose_name_plural = _("carts")

    def __str__(self) -> str:
        return f"{self.member}"


class CartLine(models.Model):
    cart = models.ForeignKey(
        Cart, verbose_name=_("cart"), on_delete=models.CASCADE, related_name="lines"
    )
    sku = models.ForeignKey(SKU, verbose_name=_("SKU"), on_delete=models.CASCADE, related_name="+")
    quantity = models.PositiveIntegerField(_("quantity"))
    added_at = models.DateTimeField(_("added at"), auto_now_add=True)

    class Meta:
        verbose_name = _("cart line")
        verbose_name_plural = _("cart lines")
        ordering = ["added_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["cart", "sku"], name="cartline_one_per_sku"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="cartline_quantity_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id} × {self.quantity}"


class BoughtTogether(models.Model):
    """How many recent orders held both SKUs; recomputed by a beat task."""

    sku = models.ForeignKey(SKU, verbose_name=_("SKU"), on_delete=models.CASCADE, related_name="+")
    other = models.ForeignKey(
        SKU, verbose_name=_("bought with"), on_delete=models.CASCADE, related_name="+"
    )
    orders = models.PositiveIntegerField(_("orders with both"))
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("bought together")
        verbose_name_plural = _("bought together")
        ordering = ["sku", "-orders"]
        constraints = [
            models.UniqueConstraint(fields=["sku", "other"], name="boughttogether_one_per_pair"),
            models.CheckConstraint(
                condition=~Q(sku=models.F("other")), name="boughttogether_two_skus"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id} + {self.other_id}: {self.orders}"


class SyncCall(models.Model):
    """One thing told to WeChat about one outbox event (``wechat.sync``): a shipping-info upload
    or a subscribe message. Keyed by the event id and written before the call, so a delivery
    run again never tells WeChat twice."""

    class Kind(models.TextChoices):
        SHIPPING = "shipping", _("shipping info")
        MESSAGE = "message", _("subscribe message")

    class State(models.TextChoices):
        # The call went out and no answer came (a timeout, a worker that died): WeChat may
        # have acted on it.
        SENDING = "sending", _("sent, no answer")
        SENT = "sent", _("accepted")
        FAILED = "failed", _("not accepted, will retry")
        REFUSED = "refused", _("refused")

    event_id = models.UUIDField(_("outbox event id"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    order_number = models.CharField(_("order number"), max_length=20)
    state = models.CharField(_("state"), max_length=16, choices=State.choices)
    calls = models.PositiveIntegerField(_("calls to WeChat"), default=0)
    errcode = models.IntegerField(_("WeChat errcode"), null=True, blank=True)
    error = models.CharField(_("error"), max_length=200, blank=True)
    # What was sent (the upload's fields or the message's template and data).
    request = models.JSONField(_("request"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"))

    class Meta:
        verbose_name = _("WeChat sync call")
        verbose_name_plural = _("WeChat sync calls")
        ordering = ["-pk"]
        constraints = [
            models.UniqueConstraint(fields=["event_id", "kind"], name="synccall_one_per_event"),
            models.CheckConstraint(
                condition=Q(state__in=["sending", "sent", "failed", "refused"]),
                name="synccall_state_valid",
            ),
        ]
        indexes = [models.Index(fields=["order_number"], name="synccall_order")]

    def __str__(self) -> str:
        return f"{self.order_number} {self.kind}: {self.state}"
