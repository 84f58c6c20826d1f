"""The shared core: stores, the catalogue and who works where.

Invariants that matter to money or to other apps are database constraints as well as
validators, so that no code path (admin, import, shell, a later service) can break them.
"""

import uuid
from datetime import datetime, time
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from retail.validators import validate_gtin

code_validator = RegexValidator(
    r"^[A-Z0-9][A-Z0-9-]{1,31}$",
    _("Use 2 to 32 capital letters, digits or dashes."),
    code="invalid_code",
)


class Store(models.Model):
    class Kind(models.TextChoices):
        STORE = "store", _("Store")
        WAREHOUSE = "warehouse", _("Warehouse")

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.STORE)
    province = models.CharField(_("province"), max_length=32)
    city = models.CharField(_("city"), max_length=32)
    district = models.CharField(_("district"), max_length=32)
    address = models.CharField(_("street address"), max_length=200)
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    # GCJ-02, the datum of every map a Chinese shopper's phone uses.
    latitude = models.DecimalField(_("latitude (GCJ-02)"), max_digits=9, decimal_places=6)
    longitude = models.DecimalField(_("longitude (GCJ-02)"), max_digits=9, decimal_places=6)
    # Local (Asia/Shanghai) wall-clock hours, the same every day. closes_at earlier than
    # opens_at means the store closes after midnight; equal times mean open around the clock.
    opens_at = models.TimeField(_("opens at"), default=time(9, 0))
    closes_at = models.TimeField(_("closes at"), default=time(22, 0))
    offers_pickup = models.BooleanField(_("offers pickup"), default=False)
    offers_ship_from_store = models.BooleanField(_("offers ship-from-store"), default=False)
    offers_counter_sales = models.BooleanField(_("offers counter sales"), default=False)
    delivery_radius_m = models.PositiveIntegerField(
        _("same-city delivery radius (m)"),
        default=0,
        help_text=_("0 means the store does not deliver in the city."),
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("store")
        verbose_name_plural = _("stores")
        ordering = ["code"]
        # Serves the bounding-box prefilter of "nearest stores".
        indexes = [models.Index(fields=["latitude", "longitude"], name="store_location")]
        constraints = [
            models.CheckConstraint(
                condition=Q(latitude__gte=-90) & Q(latitude__lte=90),
                name="store_latitude_range",
            ),
            models.CheckConstraint(
                condition=Q(longitude__gte=-180) & Q(longitude__lte=180),
                name="store_longitude_range",
            ),
            models.CheckConstraint(
                condition=Q(kind="store")
                | Q(offers_pickup=False, offers_counter_sales=False, delivery_radius_m=0),
                name="store_warehouse_has_no_shopper_services",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def full_address(self) -> str:
        return f"{self.province}{self.city}{self.district}{self.address}"

    def is_open_at(self, moment: datetime) -> bool:
        """Whether the store is open at an aware moment, read in the store's local time."""
        local = moment.astimezone(ZoneInfo(settings.TIME_ZONE)).time()
        if self.opens_at == self.closes_at:
            return True
        if self.opens_at < self.closes_at:
            return self.opens_at <= local < self.closes_at
        return local >= self.opens_at or local < self.closes_at


class Category(models.Model):
    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=50)
    parent = models.ForeignKey(
        "self",
        verbose_name=_("parent category"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
    )
    sort_order = models.PositiveSmallIntegerField(_("sort order"), default=0)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["sort_order", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["parent", "name"],
                name="category_name_unique_under_parent",
                violation_error_message=_("A category with this name exists under this parent."),
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=Q(parent__isnull=True),
                name="category_top_level_name_unique",
                violation_error_message=_("A top-level category with this name exists."),
            ),
            models.CheckConstraint(
                condition=~Q(parent=models.F("pk")), name="category_not_own_parent"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """What a shopper thinks of as one item; its variants for sale are SKUs."""

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    category = models.ForeignKey(
        Category, verbose_name=_("category"), on_delete=models.PROTECT, related_name="products"
    )
    brand = models.CharField(_("brand"), max_length=50, blank=True)
    unit = models.CharField(_("unit"), max_length=8, default="件")
    description = models.TextField(_("description"), blank=True)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class SKU(models.Model):
    """A sellable variant: one barcode, one price in fen."""

    product = models.ForeignKey(
        Product, verbose_name=_("product"), on_delete=models.PROTECT, related_name="skus"
    )
    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    barcode = models.CharField(_("barcode"), max_length=14, unique=True, validators=[validate_gtin])
    # Spec attributes as shown to shoppers, e.g. {"规格": "500ml", "口味": "原味"}.
    attributes = models.JSONField(_("spec attributes"), default=dict, blank=True)
    price_fen = models.BigIntegerField(_("price (fen)"))
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("SKU")
        verbose_name_plural = _("SKUs")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(price_fen__gte=0),
                name="sku_price_not_negative",
                violation_error_message=_("A price cannot be negative."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product.name} {self.spec_label}".strip()

    @property
    def spec_label(self) -> str:
        return " ".join(str(value) for value in self.attributes.values())


class StaffRole(models.Model):
    """Who works where. HQ admins belong to no store and see all of them."""

    class Role(models.TextChoices):
        HQ_ADMIN = "hq_admin", _("HQ admin")
        STORE_MANAGER = "store_manager", _("Store manager")
        CLERK = "clerk", _("Clerk")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="staff_roles",
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    store = models.ForeignKey(
        Store,
        verbose_name=_("store"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="staff_roles",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("staff role")
        verbose_name_plural = _("staff roles")
        ordering = ["store__code", "role", "user__username"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(role="hq_admin") & Q(store__isnull=True))
                | (~Q(role="hq_admin") & Q(store__isnull=False)),
                name="staffrole_store_matches_role",
                violation_error_message=_(
                    "An HQ admin belongs to no store; a manager or a clerk to exactly one."
                ),
            ),
            models.UniqueConstraint(
                fields=["user", "store"],
                name="staffrole_one_role_per_store",
                violation_error_message=_("This user already has a role in this store."),
            ),
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(role="hq_admin"),
                name="staffrole_one_hq_role",
                violation_error_message=_("This user is already an HQ admin."),
            ),
        ]

    def __str__(self) -> str:
        where = self.store.code if self.store_id else "HQ"
        return f"{self.user} · {self.get_role_display()} · {where}"


# --- The outbox: the one road from the core to the outside world (see retail/outbox) ----------


class OutboxEvent(models.Model):
    """Something that happened, written in the same transaction as the change itself."""

    # Receivers get this id with every delivery and treat a repeat as done.
    event_id = models.UUIDField(_("event id"), default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(_("event type"), max_length=64)
    aggregate_type = models.CharField(_("aggregate type"), max_length=32)
    aggregate_id = models.CharField(_("aggregate id"), max_length=64)
    # What a subscriber needs to act without reading our database, as it stood at the time.
    payload = models.JSONField(_("payload"), default=dict, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox events")
        ordering = ["-pk"]
        # Serves "an earlier delivery of the same aggregate is still open" (order per aggregate).
        indexes = [
            models.Index(
                fields=["aggregate_type", "aggregate_id", "id"], name="outbox_event_aggregate"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_type}:{self.aggregate_id}"


class OutboxDelivery(models.Model):
    """One event on its way to one subscriber.

    ``lease_until`` says until when someone is known to be taking care of the delivery: the
    worker running it (``in_flight``) or a task message on its way (``pending``, ``failed``).
    The sweeper only touches deliveries nobody holds.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        IN_FLIGHT = "in_flight", _("in flight")
        DELIVERED = "delivered", pgettext_lazy("outbox", "delivered")
        FAILED = "failed", _("failed, will retry")
        DEAD = "dead", _("dead")

    OPEN_STATES = (State.PENDING, State.IN_FLIGHT, State.FAILED)

    event = models.ForeignKey(
        OutboxEvent,
        verbose_name=_("event"),
        on_delete=models.PROTECT,
        related_name="deliveries",
    )
    subscriber = models.CharField(_("subscriber"), max_length=64)
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # Dead once ``attempts`` reaches it; a staff retry of a dead delivery grants a new round.
    attempt_limit = models.PositiveIntegerField(_("attempt limit"))
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    last_status_code = models.PositiveIntegerField(_("last status code"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    retried_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("last retried by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    retried_at = models.DateTimeField(_("last retried at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("outbox delivery")
        verbose_name_plural = _("outbox deliveries")
        ordering = ["-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "subscriber"], name="outboxdelivery_one_per_subscriber"
            ),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "in_flight", "delivered", "failed", "dead"]),
                name="outboxdelivery_state_valid",
            ),
            models.CheckConstraint(
                condition=Q(state="delivered", delivered_at__isnull=False)
                | (~Q(state="delivered") & Q(delivered_at__isnull=True)),
                name="outboxdelivery_delivered_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(state="in_flight") | Q(lease_until__isnull=False),
                name="outboxdelivery_in_flight_has_lease",
            ),
        ]
        indexes = [
            # The sweeper's question: which open deliveries are due? Delivered and dead rows,
            # the bulk of the table, stay out of the index.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state__in=["pending", "in_flight", "failed"]),
                name="outbox_delivery_due",
            ),
            # The admin's list filter: what is dead or failing for a subscriber.
            models.Index(fields=["subscriber", "state"], name="outbox_delivery_subscriber"),
            # The console's "sync trouble": failing and dead deliveries, a sliver of the table.
            models.Index(
                fields=["state", "event"],
                condition=Q(state__in=["failed", "dead"]),
                name="outbox_delivery_trouble",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.subscriber}"


class OutboxAttempt(models.Model):
    """One call of a subscriber's handler, kept for staff; trimmed by age."""

    class Outcome(models.TextChoices):
        RUNNING = "running", _("running")
        DONE = "done", _("done")
        RETRY = "retry", _("try again later")
        GIVE_UP = "give_up", _("given up")
        # The worker vanished while the handler ran (its lease expired).
        LOST = "lost", _("worker lost")

    delivery = models.ForeignKey(
        OutboxDelivery,
        verbose_name=pgettext_lazy("outbox", "delivery"),
        on_delete=models.CASCADE,
        related_name="attempt_log",
    )
    number = models.PositiveIntegerField(_("attempt"))
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=Outcome.choices, default=Outcome.RUNNING
    )
    error = models.TextField(_("error"), blank=True)
    status_code = models.PositiveIntegerField(_("status code"), null=True, blank=True)

    class Meta:
        verbose_name = _("outbox attempt")
        verbose_name_plural = _("outbox attempts")
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "number"], name="outboxattempt_one_per_number"
            ),
        ]
        # Serves trimming by age.
        indexes = [models.Index(fields=["started_at"], name="outbox_attempt_started")]

    def __str__(self) -> str:
        return f"#{self.number} {self.get_outcome_display()}"
