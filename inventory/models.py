"""One stock truth for every channel.

``StockItem`` holds the numbers per (store, SKU); the database refuses any state where more is
reserved than is on hand, or either goes below zero. Every change of ``on_hand`` is a
``StockMovement`` row (the ledger, append-only), and every unit of ``reserved`` belongs to an
active ``Reservation``. ``manage.py inventory_audit`` proves both sums.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from retail.models import SKU, Store


class StockItem(models.Model):
    store = models.ForeignKey(
        Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="stock_items"
    )
    sku = models.ForeignKey(
        SKU, verbose_name=_("SKU"), on_delete=models.PROTECT, related_name="stock_items"
    )
    on_hand = models.IntegerField(_("on hand"), default=0)
    reserved = models.IntegerField(_("reserved"), default=0)
    # Units online channels may not sell: kept for shoppers who walk in.
    safety_stock = models.IntegerField(_("safety stock"), default=0)
    # Replenishment: how long an order takes to arrive and how often the store orders.
    lead_time_days = models.PositiveSmallIntegerField(_("lead time (days)"), default=2)
    review_days = models.PositiveSmallIntegerField(_("order cycle (days)"), default=7)
    pack_size = models.PositiveIntegerField(_("pack size"), default=1)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("stock item")
        verbose_name_plural = _("stock items")
        ordering = ["store__code", "sku__code"]
        constraints = [
            models.UniqueConstraint(fields=["store", "sku"], name="stockitem_one_per_store_sku"),
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="stockitem_on_hand_gte_0"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="stockitem_reserved_gte_0"),
            models.CheckConstraint(
                condition=Q(reserved__lte=F("on_hand")), name="stockitem_reserved_lte_on_hand"
            ),
            models.CheckConstraint(
                condition=Q(safety_stock__gte=0), name="stockitem_safety_stock_gte_0"
            ),
            models.CheckConstraint(condition=Q(pack_size__gte=1), name="stockitem_pack_size_gte_1"),
        ]

    def __str__(self) -> str:
        return f"{self.store.code} · {self.sku.code}"

    @property
    def available(self) -> int:
        """What a counter sale may take: on hand and not promised to an order."""
        return self.on_hand - self.reserved

    @property
    def available_online(self) -> int:
        """What online channels may promise: the safety stock stays on the shelf."""
        return max(self.on_hand - self.reserved - self.safety_stock, 0)


class StockMovement(models.Model):
    """One change of ``on_hand``. Rows are never updated or deleted (a database trigger says
    so); a mistake is corrected by a further movement."""

    class Reason(models.TextChoices):
        RECEIPT = "receipt", _("goods receipt")
        COUNTER_SALE = "counter_sale", _("counter sale")
        ONLINE_FULFILMENT = "online_fulfilment", _("online fulfilment")
        RETURN = "return", _("return")
        TRANSFER_OUT = "transfer_out", _("transfer out")
        TRANSFER_IN = "transfer_in", _("transfer in")
        COUNT_ADJUSTMENT = "count_adjustment", _("count adjustment")
        DAMAGE = "damage", _("damage write-off")

    stock_item = models.ForeignKey(
        StockItem, verbose_name=_("stock item"), on_delete=models.PROTECT, related_name="movements"
    )
    quantity = models.IntegerField(_("quantity"))
    on_hand_after = models.IntegerField(_("on hand after"))
    reason = models.CharField(_("reason"), max_length=24, choices=Reason.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    reference = models.CharField(_("reference"), max_length=64, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=100, unique=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    INBOUND = (Reason.RECEIPT, Reason.RETURN, Reason.TRANSFER_IN)
    OUTBOUND = (Reason.COUNTER_SALE, Reason.ONLINE_FULFILMENT, Reason.TRANSFER_OUT, Reason.DAMAGE)
    SALES = (Reason.COUNTER_SALE, Reason.ONLINE_FULFILMENT)

    class Meta:
        verbose_name = _("stock movement")
        verbose_name_plural = _("stock movements")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["stock_item", "created_at"], name="movement_item_time")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(quantity=0), name="stockmovement_quantity_not_zero"
            ),
            models.CheckConstraint(
                condition=Q(on_hand_after__gte=0), name="stockmovement_on_hand_after_gte_0"
            ),
            models.CheckConstraint(
                condition=(Q(reason__in=["receipt", "return", "transfer_in"]) & Q(quantity__gt=0))
                | (
                    Q(reason__in=["counter_sale", "online_fulfilment", "transfer_out", "damage"])
                    & Q(quantity__lt=0)
                )
                | Q(reason="count_adjustment"),
                name="stockmovement_sign_matches_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} {self.quantity:+d}"


class Reservation(models.Model):
    """Units promised to one order line, from checkout until the goods leave or the order ends."""

    class Status(models.TextChoices):
        HELD = "held", _("held until payment")
        COMMITTED = "committed", _("committed (paid)")
        CONSUMED = "consumed", _("consumed (goods left)")
        RELEASED = "released", _("released")

    ACTIVE = (Status.HELD, Status.COMMITTED)

    stock_item = models.ForeignKey(
        StockItem,
        verbose_name=_("stock item"),
        on_delete=models.PROTECT,
        related_name="reservations",
    )
    # The order line's own key ("<order number>/<line>"): inventory does not know orders.
    line_key = models.CharField(_("order line"), max_length=64, unique=True)
    quantity = models.PositiveIntegerField(_("quantity"))
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.HELD
    )
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("reservation")
        verbose_name_plural = _("reservations")
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(status="held"), name="reservation_held_expiry"
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="reservation_quantity_gt_0"),
            models.CheckConstraint(
                condition=~Q(status="held") | Q(expires_at__isnull=False),
                name="reservation_held_has_expiry",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.line_key} × {self.quantity} ({self.get_status_display()})"


class Transfer(models.Model):
    """Goods sent from one store to another: out of the sender at once, into the receiver when
    they arrive; what did not arrive is recorded as the line's discrepancy."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("draft")
        IN_TRANSIT = "in_transit", _("in transit")
        RECEIVED = "received", _("received")

    from_store = models.ForeignKey(
        Store, verbose_name=_("from store"), on_delete=models.PROTECT, related_name="+"
    )
    to_store = models.ForeignKey(
        Store, verbose_name=_("to store"), on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.DRAFT
    )
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    received_at = models.DateTimeField(_("received at"), null=True, blank=True)

    class Meta:
        verbose_name = _("transfer")
        verbose_name_plural = _("transfers")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(from_store=F("to_store")), name="transfer_between_two_stores"
            ),
        ]

    def __str__(self) -> str:
        return f"TR{self.pk:06d} {self.from_store.code} → {self.to_store.code}"


class TransferLine(models.Model):
    transfer = models.ForeignKey(Transfer, on_delete=models.CASCADE, related_name="lines")
    sku = models.ForeignKey(SKU, verbose_name=_("SKU"), on_delete=models.PROTECT, related_name="+")
    quantity_sent = models.PositiveIntegerField(_("quantity sent"))
    quantity_received = models.PositiveIntegerField(_("quantity received"), null=True, blank=True)

    class Meta:
        verbose_name = _("transfer line")
        verbose_name_plural = _("transfer lines")
        constraints = [
            models.UniqueConstraint(fields=["transfer", "sku"], name="transferline_one_per_sku"),
            models.CheckConstraint(condition=Q(quantity_sent__gt=0), name="transferline_sent_gt_0"),
            models.CheckConstraint(
                condition=Q(quantity_received__isnull=True)
                | Q(quantity_received__lte=F("quantity_sent")),
                name="transferline_received_lte_sent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id} × {self.quantity_sent}"

    @property
    def discrepancy(self) -> int | None:
        """Units sent that never arrived (None until received)."""
        if self.quantity_received is None:
            return None
        return self.quantity_sent - self.quantity_received


class StockCount(models.Model):
    """A count sheet: staff count the shelf, applying it turns differences into adjustments."""

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        APPLIED = "applied", _("applied")

    store = models.ForeignKey(
        Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="stock_counts"
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default="open")
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    applied_at = models.DateTimeField(_("applied at"), null=True, blank=True)

    class Meta:
        verbose_name = _("stock count")
        verbose_name_plural = _("stock counts")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"SC{self.pk:06d} {self.store.code}"


class StockCountLine(models.Model):
    count = models.ForeignKey(StockCount, on_delete=models.CASCADE, related_name="lines")
    sku = models.ForeignKey(SKU, verbose_name=_("SKU"), on_delete=models.PROTECT, related_name="+")
    counted = models.IntegerField(_("counted"))
    # What the books said when the line was written (or last recounted); applying the sheet
    # books ``counted - expected`` on top of on_hand then, so later sales stay booked.
    expected = models.IntegerField(_("expected"), null=True, blank=True)

    class Meta:
        verbose_name = _("count line")
        verbose_name_plural = _("count lines")
        constraints = [
            models.UniqueConstraint(fields=["count", "sku"], name="countline_one_per_sku"),
            models.CheckConstraint(condition=Q(counted__gte=0), name="countline_counted_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id}: {self.counted}"

    @property
    def difference(self) -> int | None:
        return None if self.expected is None else self.counted - self.expected
