"""One member across the counter, the mini-shop and partners, with one points balance, one
tier and one set of coupons.

The database keeps the invariants: a points balance never below zero, one identity per
WeChat openid and per phone, one ledger entry per (reason, reference), a coupon template never
issued beyond its quantity. Writes go through ``members.services``.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from retail.models import SKU, Category, Product, Store

mobile_validator = RegexValidator(
    r"^1[3-9]\d{9}$", _("Enter a mainland China mobile number (11 digits starting with 1).")
)


class JoinedChannel(models.TextChoices):
    COUNTER = "counter", _("counter")
    MINI_SHOP = "mini_shop", _("WeChat mini-shop")
    H5 = "h5", _("H5 shop")
    PARTNER = "partner", _("partner")


class Tier(models.Model):
    """A level of membership reached by spending ``threshold_fen`` within the rolling window
    (``MEMBER_TIER_WINDOW_DAYS``)."""

    code = models.CharField(_("code"), max_length=16, unique=True)
    name = models.CharField(_("name"), max_length=32)
    threshold_fen = models.BigIntegerField(_("spend needed (fen)"), unique=True)
    discount_percent = models.PositiveSmallIntegerField(
        _("member discount (%)"), default=0, validators=[MaxValueValidator(50)]
    )
    # Points earned per yuan, in hundredths: 100 = 1×, 150 = 1.5×.
    points_multiplier = models.PositiveSmallIntegerField(_("points multiplier (%)"), default=100)

    class Meta:
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        ordering = ["threshold_fen"]
        constraints = [
            models.CheckConstraint(condition=Q(threshold_fen__gte=0), name="tier_threshold_gte_0"),
            models.CheckConstraint(
                condition=Q(discount_percent__lte=50), name="tier_discount_lte_50"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Member(models.Model):
    mobile = models.CharField(
        _("mobile number"),
        max_length=11,
        unique=True,
        null=True,
        blank=True,
        validators=[mobile_validator],
    )
    name = models.CharField(_("name"), max_length=50, blank=True)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    tier = models.ForeignKey(
        Tier,
        verbose_name=_("tier"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="members",
    )
    home_store = models.ForeignKey(
        Store,
        verbose_name=_("home store"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="members",
    )
    joined_channel = models.CharField(
        _("joined through"), max_length=16, choices=JoinedChannel.choices, default="counter"
    )
    referrer = models.ForeignKey(
        "self",
        verbose_name=_("referred by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="referrals",
    )
    referral_code = models.CharField(
        _("referral code"), max_length=12, unique=True, null=True, blank=True
    )
    points_balance = models.BigIntegerField(_("points"), default=0)
    # A member merged into another keeps its row (orders and audit point at it) but is closed.
    merged_into = models.ForeignKey(
        "self",
        verbose_name=_("merged into"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    erased_at = models.DateTimeField(_("personal data erased at"), null=True, blank=True)
    erased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("erased by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(_("joined at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        ordering = ["-created_at", "-pk"]
        permissions = [
            ("view_full_mobile", _("Can see members' full mobile numbers")),
            ("export_member", _("Can export a member's personal data")),
            ("erase_member", _("Can erase a member's personal data")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(points_balance__gte=0), name="member_points_balance_gte_0"
            ),
            models.CheckConstraint(
                condition=~Q(merged_into=F("pk")), name="member_not_merged_into_itself"
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.masked_mobile or f"#{self.pk}"

    @property
    def masked_mobile(self) -> str:
        return mask_mobile(self.mobile)


def mask_mobile(mobile: str | None) -> str:
    """``139****5678``: enough to recognise, not enough to call."""
    if not mobile:
        return ""
    return f"{mobile[:3]}****{mobile[-4:]}"


class Identity(models.Model):
    """A way a member is recognised: a WeChat openid (per app) or a verified phone number."""

    class Kind(models.TextChoices):
        WECHAT = "wechat", _("WeChat")
        PHONE = "phone", _("phone")

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="identities"
    )
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    app_id = models.CharField(_("WeChat app id"), max_length=32, blank=True)
    openid = models.CharField(_("openid"), max_length=64, blank=True)
    unionid = models.CharField(_("unionid"), max_length=64, blank=True)
    phone = models.CharField(_("phone"), max_length=11, blank=True)
    created_at = models.DateTimeField(_("added at"), auto_now_add=True)

    class Meta:
        verbose_name = _("identity")
        verbose_name_plural = _("identities")
        constraints = [
            models.UniqueConstraint(
                fields=["app_id", "openid"],
                condition=Q(kind="wechat"),
                name="identity_one_per_openid",
            ),
            models.UniqueConstraint(
                fields=["phone"], condition=Q(kind="phone"), name="identity_one_per_phone"
            ),
            models.CheckConstraint(
                condition=(Q(kind="wechat") & ~Q(openid="") & ~Q(app_id=""))
                | (Q(kind="phone") & ~Q(phone="")),
                name="identity_has_its_key",
            ),
        ]
        indexes = [models.Index(fields=["unionid"], name="identity_unionid")]

    def __str__(self) -> str:
        return self.openid if self.kind == self.Kind.WECHAT else mask_mobile(self.phone)


class MemberMerge(models.Model):
    """Audit of one merge: what moved from ``source`` to ``target``."""

    source = models.ForeignKey(
        Member, verbose_name=_("merged member"), on_delete=models.PROTECT, related_name="+"
    )
    target = models.ForeignKey(
        Member, verbose_name=_("into"), on_delete=models.PROTECT, related_name="merges"
    )
    reason = models.CharField(_("reason"), max_length=100)
    moved = models.JSONField(_("what moved"), default=dict)
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("member merge")
        verbose_name_plural = _("member merges")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["source"], name="membermerge_once_per_source"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id} → {self.target_id}"


class PointsEntry(models.Model):
    """One change of a member's points. The entries sum to ``Member.points_balance``."""

    class Reason(models.TextChoices):
        EARN = "earn", _("earned on an order")
        REDEEM = "redeem", _("spent at checkout")
        REDEEM_RESTORED = "redeem_restored", _("given back: order cancelled")
        EARN_REVERSED = "earn_reversed", _("taken back: order refunded")
        REFERRAL = "referral", _("referral reward")
        EXPIRE = "expire", _("expired")
        MERGE_IN = "merge_in", _("moved in from a merged member")
        MERGE_OUT = "merge_out", _("moved out to the surviving member")
        ADJUST = "adjust", _("adjusted by staff")

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="points"
    )
    reason = models.CharField(_("reason"), max_length=16, choices=Reason.choices)
    # What the entry is for: an order number, a merge id, an expiry batch...
    reference = models.CharField(_("reference"), max_length=64)
    points = models.BigIntegerField(_("points"))
    balance_after = models.BigIntegerField(_("balance after"))
    # Earned points expire; ``remaining`` is what of them is still unspent (spent oldest first).
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    remaining = models.BigIntegerField(_("unspent"), default=0)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("points entry")
        verbose_name_plural = _("points entries")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["member", "reason", "reference"], name="points_once_per_reason_reference"
            ),
            models.CheckConstraint(condition=~Q(points=0), name="points_not_zero"),
            # The points history names every reason: an unknown one is a bug, refused here.
            models.CheckConstraint(
                condition=Q(
                    reason__in=[
                        "earn",
                        "redeem",
                        "redeem_restored",
                        "earn_reversed",
                        "referral",
                        "expire",
                        "merge_in",
                        "merge_out",
                        "adjust",
                    ]
                ),
                name="points_reason_valid",
            ),
            models.CheckConstraint(
                condition=Q(balance_after__gte=0), name="points_balance_after_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("points")) | Q(remaining=0),
                name="points_remaining_within_entry",
            ),
        ]
        indexes = [
            models.Index(
                fields=["member", "expires_at"],
                condition=Q(remaining__gt=0),
                name="points_unspent_by_expiry",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} {self.points:+d}"


class SpendEntry(models.Model):
    """Money a member spent (completed orders) or got back (refunds), for tiers."""

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="spend"
    )
    reference = models.CharField(_("reference"), max_length=64)
    amount_fen = models.BigIntegerField(_("amount (fen)"))
    at = models.DateTimeField(_("at"), db_index=True)

    class Meta:
        verbose_name = _("spend entry")
        verbose_name_plural = _("spend entries")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "reference"], name="spend_once_per_reference"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference}: {self.amount_fen}"


class Scope(models.TextChoices):
    ONLINE = "online", _("online")
    COUNTER = "counter", _("counter")
    ALL = "all", _("online and counter")


class CouponTemplate(models.Model):
    class Kind(models.TextChoices):
        FIXED = "fixed", _("fixed amount off")
        THRESHOLD = "threshold", _("spend X save Y")
        PERCENT = "percent", _("percentage off with a cap")
        FREE_SHIPPING = "free_shipping", _("free delivery")

    class IssuedBy(models.TextChoices):
        CLAIM = "claim", _("claimed by members")
        GRANT = "grant", _("granted by staff")
        BIRTHDAY = "birthday", _("birthday gift")
        REFERRAL = "referral", _("referral reward")

    name = models.CharField(_("name"), max_length=50)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    issued_by = models.CharField(_("issued by"), max_length=16, choices=IssuedBy.choices)
    amount_fen = models.BigIntegerField(_("amount off (fen)"), default=0)
    threshold_fen = models.BigIntegerField(_("minimum spend (fen)"), default=0)
    percent_off = models.PositiveSmallIntegerField(
        _("percent off"), default=0, validators=[MinValueValidator(0), MaxValueValidator(90)]
    )
    cap_fen = models.BigIntegerField(_("at most off (fen)"), null=True, blank=True)
    scope = models.CharField(_("channels"), max_length=8, choices=Scope.choices, default="all")
    stores = models.ManyToManyField(
        Store, verbose_name=_("stores (empty: all)"), blank=True, related_name="+"
    )
    categories = models.ManyToManyField(
        Category, verbose_name=_("categories (empty: all)"), blank=True, related_name="+"
    )
    skus = models.ManyToManyField(
        SKU, verbose_name=_("SKUs (empty: all)"), blank=True, related_name="+"
    )
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until"))
    # Each coupon is valid this many days from issue (within the template's window); empty: the
    # template's window.
    valid_days = models.PositiveSmallIntegerField(
        _("valid days after issue"), null=True, blank=True
    )
    per_member_limit = models.PositiveSmallIntegerField(_("per member"), default=1)
    total_quantity = models.PositiveIntegerField(_("total quantity"))
    issued_count = models.PositiveIntegerField(_("issued"), default=0)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("coupon template")
        verbose_name_plural = _("coupon templates")
        ordering = ["-valid_from", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(issued_count__lte=F("total_quantity")),
                name="coupontemplate_never_over_issued",
            ),
            models.CheckConstraint(
                condition=Q(amount_fen__gte=0) & Q(threshold_fen__gte=0),
                name="coupontemplate_amounts_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(valid_until__gt=F("valid_from")), name="coupontemplate_window"
            ),
            models.CheckConstraint(
                condition=Q(per_member_limit__gte=1), name="coupontemplate_per_member_gte_1"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Coupon(models.Model):
    class Status(models.TextChoices):
        AVAILABLE = "available", _("available")
        LOCKED = "locked", _("locked to an unpaid order")
        USED = "used", _("used")
        VOID = "void", _("void")

    template = models.ForeignKey(
        CouponTemplate, verbose_name=_("template"), on_delete=models.PROTECT, related_name="coupons"
    )
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="coupons"
    )
    code = models.CharField(_("code"), max_length=16, unique=True)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.AVAILABLE
    )
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until"))
    # The order it is locked to or was used on (an order number: members never import orders).
    order_reference = models.CharField(_("order"), max_length=64, blank=True)
    # Why it was issued: "claim", "grant:<batch>", "birthday:2026", "referral:<member id>".
    issue_reference = models.CharField(_("issued for"), max_length=64)
    issued_at = models.DateTimeField(_("issued at"), auto_now_add=True)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("coupon")
        verbose_name_plural = _("coupons")
        ordering = ["valid_until", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "member", "issue_reference"],
                name="coupon_once_per_issue_reference",
            ),
        ]
        indexes = [
            models.Index(fields=["member", "status"], name="coupon_member_status"),
            # A cancelled order finds its coupon by its number.
            models.Index(
                fields=["order_reference"],
                condition=Q(status="used"),
                name="coupon_used_on_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.template} · {self.code}"


class CouponGrant(models.Model):
    """One staff grant of a template to a set of members: who granted it, to which segment,
    how many coupons. Unique per (template, reference), so a repeated grant issues nothing."""

    template = models.ForeignKey(
        CouponTemplate, verbose_name=_("template"), on_delete=models.PROTECT, related_name="grants"
    )
    reference = models.CharField(_("batch reference"), max_length=48)
    segment = models.JSONField(_("members chosen by"), default=dict)
    issued = models.PositiveIntegerField(_("coupons issued"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("granted by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(_("granted at"), auto_now_add=True)

    class Meta:
        verbose_name = _("coupon grant")
        verbose_name_plural = _("coupon grants")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "reference"], name="coupongrant_once_per_reference"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.template} · {self.reference}"


class Promotion(models.Model):
    """A time-boxed price campaign on some products, in some channels and stores."""

    class Kind(models.TextChoices):
        PERCENT_OFF = "percent_off", _("percentage off")
        MEMBER_PRICE = "member_price", _("member price")

    name = models.CharField(_("name"), max_length=50)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    percent_off = models.PositiveSmallIntegerField(
        _("percent off"), default=0, validators=[MaxValueValidator(90)]
    )
    # Member price: a fixed price in fen for members, per SKU in ``PromotionPrice``.
    scope = models.CharField(_("channels"), max_length=8, choices=Scope.choices, default="all")
    stores = models.ManyToManyField(
        Store, verbose_name=_("stores (empty: all)"), blank=True, related_name="+"
    )
    products = models.ManyToManyField(
        Product, verbose_name=_("products"), blank=True, related_name="+"
    )
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("promotion")
        verbose_name_plural = _("promotions")
        ordering = ["-starts_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="promotion_window"
            ),
            models.CheckConstraint(
                condition=Q(percent_off__lte=90), name="promotion_percent_lte_90"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PromotionPrice(models.Model):
    promotion = models.ForeignKey(
        Promotion, verbose_name=_("promotion"), on_delete=models.CASCADE, related_name="prices"
    )
    sku = models.ForeignKey(SKU, verbose_name=_("SKU"), on_delete=models.CASCADE, related_name="+")
    price_fen = models.BigIntegerField(_("member price (fen)"))

    class Meta:
        verbose_name = _("member price")
        verbose_name_plural = _("member prices")
        constraints = [
            models.UniqueConstraint(fields=["promotion", "sku"], name="promotionprice_one_per_sku"),
            models.CheckConstraint(condition=Q(price_fen__gte=0), name="promotionprice_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id}: {self.price_fen}"
