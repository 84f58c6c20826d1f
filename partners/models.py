"""Partners: logistics and delivery companies that fulfil our orders, and channels that sell
our stock. Each calls the partner API with its own keys and receives pushes signed with its
secret."""

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
