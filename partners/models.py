"""Partners: logistics and delivery companies that fulfil our orders, and channels that sell
our stock. Each calls the partner API with its own keys and receives pushes signed with its
secret."""

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from retail.models import Store


class Partner(models.Model):
    class Kind(models.TextChoices):
        FULFILMENT = "fulfilment", _("fulfilment")
        SALES_CHANNEL = "sales_channel", _("sales channel")
        BOTH = "both", _("fulfilment and sales channel")

    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    active = models.BooleanField(_("active"), default=True)
    webhook_url = models.URLField(_("webhook URL"), blank=True)
    # Fernet token of the HMAC secret pushes are signed with (partners.services): pushes need
    # the secret itself, so it is encrypted, not hashed.
    signing_secret_encrypted = models.TextField(_("signing secret (encrypted)"), editable=False)
    # The secret before the last rotation: pushes are signed with both for
    # PARTNER_SECRET_ROTATION_HOURS, so the partner can switch without refusing any.
    previous_signing_secret_encrypted = models.TextField(
        _("previous signing secret (encrypted)"), blank=True, editable=False
    )
    signing_secret_rotated_at = models.DateTimeField(
        _("signing secret set at"), null=True, editable=False
    )
    stores = models.ManyToManyField(
        Store, verbose_name=_("stores served"), related_name="partners", blank=True
    )
    cities = models.JSONField(
        _("cities served"),
        default=list,
        blank=True,
        help_text=_('City names as stores spell them, e.g. ["上海市", "杭州市"].'),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("partner")
        verbose_name_plural = _("partners")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["fulfilment", "sales_channel", "both"]),
                name="partner_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PartnerApiKey(models.Model):
    """A key a partner calls the API with. Only its SHA-256 is stored: the raw key is shown
    once, when it is issued; ``prefix`` tells keys apart in lists."""

    partner = models.ForeignKey(
        Partner, verbose_name=_("partner"), on_delete=models.CASCADE, related_name="api_keys"
    )
    prefix = models.CharField(_("prefix"), max_length=16)
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("issued at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("partner API key")
        verbose_name_plural = _("partner API keys")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.prefix}…"


class RoutingRule(models.Model):
    """Which paid delivery orders go to which fulfilment partner. Rules are tried in
    ``priority`` order (lowest first); the first that matches an order, of an active partner
    that serves the order's store, wins, and the decision is recorded on the order. An order
    no rule matches is fulfilled by its own store."""

    class StoreKind(models.TextChoices):
        ANY = "", _("any store or warehouse")
        STORE = "store", _("stores only")
        WAREHOUSE = "warehouse", _("warehouses only")

    name = models.CharField(_("name"), max_length=100)
    partner = models.ForeignKey(
        Partner, verbose_name=_("partner"), on_delete=models.CASCADE, related_name="rules"
    )
    priority = models.PositiveIntegerField(_("priority"), default=100)
    active = models.BooleanField(_("active"), default=True)
    store_kind = models.CharField(
        _("fulfilling store kind"), max_length=16, choices=StoreKind.choices, blank=True
    )
    without_ship_from_store = models.BooleanField(
        _("only stores without ship-from-store"),
        default=False,
        help_text=_("Match only stores that do not ship parcels themselves."),
    )
    stores = models.ManyToManyField(
        Store,
        verbose_name=_("only these stores"),
        related_name="+",
        blank=True,
        help_text=_("Empty: any store the partner serves."),
    )
    channels = models.JSONField(
        _("only these channels"),
        default=list,
        blank=True,
        help_text=_('Empty: every channel. For example ["mini_shop", "h5", "partner"].'),
    )

    class Meta:
        verbose_name = _("routing rule")
        verbose_name_plural = _("routing rules")
        ordering = ["priority", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(store_kind__in=["", "store", "warehouse"]),
                name="routingrule_store_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from orders.models import Channel

        known = set(Channel.values)
        if not isinstance(self.channels, list) or not set(self.channels) <= known:
            raise ValidationError(
                {"channels": _("A list of channels among: %s.") % ", ".join(sorted(known))}
            )


class PartnerOrder(models.Model):
    """An order a partner deals with: one it fulfils (routed to it when paid) or one it sold
    (created through its API). A partner sees, and is told about, these orders only."""

    class Role(models.TextChoices):
        FULFIL = "fulfil", _("fulfils it")
        SELL = "sell", _("sold it")

    partner = models.ForeignKey(
        Partner, verbose_name=_("partner"), on_delete=models.PROTECT, related_name="orders"
    )
    order = models.ForeignKey(
        "orders.Order",
        verbose_name=_("order"),
        on_delete=models.PROTECT,
        related_name="partner_links",
    )
    role = models.CharField(_("role"), max_length=8, choices=Role.choices)
    rule = models.ForeignKey(
        RoutingRule,
        verbose_name=_("routing rule"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Sales channel orders: the partner's Idempotency-Key and a digest of the request it came
    # with, so a repeat with another body is refused instead of answered with the wrong order.
    idempotency_key = models.CharField(_("idempotency key"), max_length=64, blank=True)
    request_digest = models.CharField(_("request digest"), max_length=64, blank=True)
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    created_at = models.DateTimeField(_("since"), auto_now_add=True)

    class Meta:
        verbose_name = _("partner order")
        verbose_name_plural = _("partner orders")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["order", "role"], name="partnerorder_one_per_role"),
            models.CheckConstraint(
                condition=models.Q(role__in=["fulfil", "sell"]), name="partnerorder_role_valid"
            ),
        ]
        indexes = [models.Index(fields=["partner", "order"], name="partnerorder_partner")]

    def __str__(self) -> str:
        return f"{self.partner} · {self.order}"


class PartnerPush(models.Model):
    """One push of one outbox event to one partner: written before the call, updated with the
    answer, so a delivery run again after the partner took the push does not push again, and
    staff see what each partner answered."""

    class Status(models.TextChoices):
        SENDING = "sending", _("sending")
        DELIVERED = "delivered", _("delivered")
        RETRYING = "retrying", _("will be retried")
        FAILED = "failed", _("refused by the partner")

    partner = models.ForeignKey(
        Partner, verbose_name=_("partner"), on_delete=models.CASCADE, related_name="pushes"
    )
    event_id = models.UUIDField(_("event id"))
    event_type = models.CharField(_("push type"), max_length=40)
    order_number = models.CharField(_("order number"), max_length=20)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    status_code = models.PositiveIntegerField(_("last HTTP status"), null=True, blank=True)
    answer = models.TextField(_("last answer or error"), blank=True)
    created_at = models.DateTimeField(_("first sent at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("last sent at"), auto_now=True)

    class Meta:
        verbose_name = _("partner push")
        verbose_name_plural = _("partner pushes")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["event_id", "partner"], name="partnerpush_once"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.partner}"
