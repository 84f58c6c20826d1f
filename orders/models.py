"""Orders, their events, payments, refunds, after-sales and shipments.

An order's ``status`` is written by ``orders.services.order_transition`` only, following
``orders.transitions.TRANSITIONS``; every change writes an ``OrderEvent`` in the same
transaction. Money is integer fen; the database refuses totals that do not add up and refunds
beyond what was paid.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils.translation import gettext_lazy as _

from members.models import Member
from retail.models import SKU, Store


class Channel(models.TextChoices):
    MINI_SHOP = "mini_shop", _("WeChat mini-shop")
    H5 = "h5", _("H5 shop")
    COUNTER = "counter", _("counter")
    PARTNER = "partner", _("partner")


class Fulfilment(models.TextChoices):
    DELIVERY = "delivery", _("delivery")
    PICKUP = "pickup", _("pickup at a store")
    COUNTER = "counter", _("at the counter")


class OrderStatus(models.TextChoices):
    PENDING_PAYMENT = "pending_payment", _("pending payment")
    PAID = "paid", _("paid")
    READY_FOR_PICKUP = "ready_for_pickup", _("ready for pickup")
    SHIPPED = "shipped", _("shipped")
    DELIVERED = "delivered", _("delivered")
    COMPLETED = "completed", _("completed")
    CANCELLED = "cancelled", _("cancelled")


class Order(models.Model):
    Status = OrderStatus

    number = models.CharField(_("order number"), max_length=20, unique=True)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    fulfilment = models.CharField(_("fulfilment"), max_length=16, choices=Fulfilment.choices)
    store = models.ForeignKey(
        Store, verbose_name=_("fulfilling store"), on_delete=models.PROTECT, related_name="orders"
    )
    member = models.ForeignKey(
        Member,
        verbose_name=_("member"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="orders",
    )
    status = models.CharField(
        _("status"), max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING_PAYMENT
    )
    # A repeated create with the same reference returns the first order.
    client_reference = models.CharField(_("client reference"), max_length=64)
    subtotal_fen = models.BigIntegerField(_("subtotal (fen)"))
    discount_fen = models.BigIntegerField(_("discount (fen)"), default=0)
    shipping_fen = models.BigIntegerField(_("shipping (fen)"), default=0)
    total_fen = models.BigIntegerField(_("total (fen)"))
    paid_fen = models.BigIntegerField(_("paid (fen)"), default=0)
    refunded_fen = models.BigIntegerField(_("refunded (fen)"), default=0)
    # What made up the discount, from the one pricing function (orders.pricing):
    # {"promotion_fen", "tier_fen", "coupon_fen", "points_fen", "shipping_discount_fen"}; the
    # first four add up to ``discount_fen``, the last was taken off the delivery fee.
    pricing = models.JSONField(_("pricing breakdown"), default=dict, blank=True)
    coupon_code = models.CharField(_("coupon"), max_length=16, blank=True)
    points_redeemed = models.BigIntegerField(_("points redeemed"), default=0)
    address = models.JSONField(_("delivery address"), default=dict, blank=True)
    pickup_code = models.CharField(_("pickup code"), max_length=8, blank=True)
    note = models.CharField(_("shopper's note"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    expires_at = models.DateTimeField(_("pay before"), null=True, blank=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("completed or cancelled at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    OPEN = (
        OrderStatus.PAID,
        OrderStatus.READY_FOR_PICKUP,
        OrderStatus.SHIPPED,
        OrderStatus.DELIVERED,
    )

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["store", "status", "-created_at"], name="order_store_status"),
            models.Index(fields=["status", "expires_at"], name="order_status_expiry"),
            models.Index(fields=["member", "-created_at"], name="order_member_time"),
            models.Index(fields=["-created_at", "-id"], name="order_created"),
            # The console dashboard's sales of a day and of the last 30 days.
            models.Index(fields=["store", "paid_at"], name="order_store_paid"),
            # All stores' sales by day (the dashboard's last 30 days): holds every column the
            # sum reads, so PostgreSQL answers from the index alone (bench/scale.py).
            models.Index(
                fields=["paid_at", "id", "paid_fen", "refunded_fen"], name="order_paid_amounts"
            ),
            # The dashboard's oldest waiting orders (paid, or ready for pickup) by payment time:
            # without it the one above is walked from the oldest payment of all.
            models.Index(
                fields=["paid_at", "id"],
                condition=Q(status__in=["paid", "ready_for_pickup"]),
                name="order_waiting",
            ),
            # A partner's order list, oldest change first (partners.api PartnerOrderPagination).
            models.Index(fields=["updated_at", "id"], name="order_updated"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "client_reference"], name="order_client_reference_per_channel"
            ),
            models.UniqueConstraint(
                fields=["store", "pickup_code"],
                condition=~Q(pickup_code="")
                & Q(status__in=["pending_payment", "paid", "ready_for_pickup"]),
                name="order_pickup_code_open_per_store",
            ),
            models.CheckConstraint(
                condition=Q(subtotal_fen__gte=0)
                & Q(discount_fen__gte=0)
                & Q(shipping_fen__gte=0)
                & Q(paid_fen__gte=0)
                & Q(refunded_fen__gte=0),
                name="order_amounts_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(total_fen=F("subtotal_fen") - F("discount_fen") + F("shipping_fen")),
                name="order_total_adds_up",
            ),
            models.CheckConstraint(condition=Q(total_fen__gte=0), name="order_total_gte_0"),
            # Discounts are on goods only (a free-delivery coupon lowers ``shipping_fen``).
            models.CheckConstraint(
                condition=Q(discount_fen__lte=F("subtotal_fen")), name="order_discount_lte_goods"
            ),
            models.CheckConstraint(
                condition=Q(points_redeemed__gte=0), name="order_points_redeemed_gte_0"
            ),
            # Orders priced before the breakdown existed have none (NULL passes a CHECK).
            models.CheckConstraint(
                condition=Q(
                    discount_fen=Cast(KT("pricing__promotion_fen"), models.BigIntegerField())
                    + Cast(KT("pricing__tier_fen"), models.BigIntegerField())
                    + Cast(KT("pricing__coupon_fen"), models.BigIntegerField())
                    + Cast(KT("pricing__points_fen"), models.BigIntegerField())
                ),
                name="order_discount_is_its_breakdown",
            ),
            models.CheckConstraint(
                condition=Q(paid_fen__lte=F("total_fen")), name="order_paid_lte_total"
            ),
            models.CheckConstraint(
                condition=Q(refunded_fen__lte=F("paid_fen")), name="order_refunded_lte_paid"
            ),
        ]

    def __str__(self) -> str:
        return self.number


class OrderLine(models.Model):
    order = models.ForeignKey(
        Order, verbose_name=_("order"), on_delete=models.CASCADE, related_name="lines"
    )
    sku = models.ForeignKey(SKU, verbose_name=_("SKU"), on_delete=models.PROTECT, related_name="+")
    # Snapshots: later catalogue changes do not touch a placed order.
    sku_code = models.CharField(_("SKU code"), max_length=32)
    product_name = models.CharField(_("product"), max_length=100)
    attributes = models.JSONField(_("spec attributes"), default=dict, blank=True)
    unit_price_fen = models.BigIntegerField(_("unit price (fen)"))
    quantity = models.PositiveIntegerField(_("quantity"))
    discount_fen = models.BigIntegerField(_("discount (fen)"), default=0)
    total_fen = models.BigIntegerField(_("line total (fen)"))
    # The key of this line's stock reservation.
    line_key = models.CharField(_("line key"), max_length=40, unique=True)
    shipped = models.BooleanField(_("shipped"), default=False)

    class Meta:
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        ordering = ["order", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="orderline_quantity_gt_0"),
            models.CheckConstraint(
                condition=Q(unit_price_fen__gte=0) & Q(discount_fen__gte=0),
                name="orderline_amounts_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(total_fen=F("unit_price_fen") * F("quantity") - F("discount_fen")),
                name="orderline_total_adds_up",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_name} × {self.quantity}"


class ActorKind(models.TextChoices):
    SHOPPER = "shopper", _("shopper")
    STAFF = "staff", _("staff")
    PARTNER = "partner", _("partner")
    SYSTEM = "system", _("system")


class OrderEvent(models.Model):
    """Something that happened to an order: a status change, a payment, a refund, a shipment."""

    order = models.ForeignKey(
        Order, verbose_name=_("order"), on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(_("event"), max_length=32)
    from_status = models.CharField(_("from"), max_length=20, blank=True)
    to_status = models.CharField(_("to"), max_length=20, blank=True)
    actor_kind = models.CharField(_("actor kind"), max_length=16, choices=ActorKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    note = models.CharField(_("note"), max_length=200, blank=True)
    data = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        ordering = ["order", "pk"]

    def __str__(self) -> str:
        return self.kind


class ShippingRule(models.Model):
    """A store's delivery fee; stores without one use the settings' default."""

    store = models.OneToOneField(
        Store, verbose_name=_("store"), on_delete=models.CASCADE, related_name="shipping_rule"
    )
    fee_fen = models.BigIntegerField(_("delivery fee (fen)"))
    free_from_fen = models.BigIntegerField(
        _("free delivery from (fen)"), null=True, blank=True, help_text=_("Empty: never free.")
    )

    class Meta:
        verbose_name = _("shipping rule")
        verbose_name_plural = _("shipping rules")
        constraints = [
            models.CheckConstraint(condition=Q(fee_fen__gte=0), name="shippingrule_fee_gte_0"),
        ]

    def __str__(self) -> str:
        return str(self.store)


class Payment(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("waiting for payment")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        CLOSED = "closed", _("closed")

    order = models.ForeignKey(
        Order, verbose_name=_("order"), on_delete=models.PROTECT, related_name="payments"
    )
    provider = models.CharField(_("provider"), max_length=16)
    out_trade_no = models.CharField(_("merchant trade number"), max_length=32, unique=True)
    transaction_id = models.CharField(
        _("provider transaction id"), max_length=64, unique=True, null=True, blank=True
    )
    amount_fen = models.BigIntegerField(_("amount (fen)"))
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    # What the provider needs again later (a prepay id, say).
    provider_data = models.JSONField(_("provider data"), default=dict, blank=True)
    raw_payload = models.JSONField(_("provider's confirmation"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gt=0), name="payment_amount_gt_0"),
            models.UniqueConstraint(
                fields=["order"],
                condition=Q(status="succeeded"),
                name="payment_one_success_per_order",
            ),
        ]

    def __str__(self) -> str:
        return self.out_trade_no


class PaymentIssue(models.Model):
    """A confirmation that was refused (wrong amount, unknown trade number, a second
    transaction id): kept for staff to look into; nothing else changed."""

    payment = models.ForeignKey(
        Payment,
        verbose_name=_("payment"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="issues",
    )
    provider = models.CharField(_("provider"), max_length=16)
    out_trade_no = models.CharField(_("merchant trade number"), max_length=32)
    code = models.CharField(_("problem"), max_length=40)
    amount_fen = models.BigIntegerField(_("amount (fen)"), null=True, blank=True)
    raw_payload = models.JSONField(_("provider's message"), default=dict, blank=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("payment issue")
        verbose_name_plural = _("payment issues")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.out_trade_no}: {self.code}"


class AfterSale(models.Model):
    class Kind(models.TextChoices):
        REFUND_ONLY = "refund_only", _("refund only")
        RETURN_AND_REFUND = "return_and_refund", _("return and refund")

    class Status(models.TextChoices):
        REQUESTED = "requested", _("requested")
        APPROVED = "approved", _("approved, awaiting the goods")
        REJECTED = "rejected", _("rejected")
        REFUNDED = "refunded", _("refunded")

    order = models.ForeignKey(
        Order, verbose_name=_("order"), on_delete=models.PROTECT, related_name="after_sales"
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.REQUESTED
    )
    reason = models.CharField(_("reason"), max_length=200)
    amount_fen = models.BigIntegerField(_("refund amount (fen)"))
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("decided by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    decision_note = models.CharField(_("decision note"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    restocked_at = models.DateTimeField(_("goods back at"), null=True, blank=True)

    class Meta:
        verbose_name = _("after-sales request")
        verbose_name_plural = _("after-sales requests")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gt=0), name="aftersale_amount_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.order} · {self.get_kind_display()}"


class AfterSaleLine(models.Model):
    after_sale = models.ForeignKey(
        AfterSale,
        verbose_name=_("after-sales request"),
        on_delete=models.CASCADE,
        related_name="lines",
    )
    order_line = models.ForeignKey(
        OrderLine, verbose_name=_("order line"), on_delete=models.PROTECT, related_name="+"
    )
    quantity = models.PositiveIntegerField(_("quantity"))

    class Meta:
        verbose_name = _("after-sales line")
        verbose_name_plural = _("after-sales lines")
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="aftersaleline_quantity_gt_0"),
            models.UniqueConstraint(
                fields=["after_sale", "order_line"], name="aftersaleline_one_per_line"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order_line.product_name} × {self.quantity}"


class Refund(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("processing")
        SUCCEEDED = "succeeded", _("refunded")
        FAILED = "failed", _("failed")

    payment = models.ForeignKey(
        Payment, verbose_name=_("payment"), on_delete=models.PROTECT, related_name="refunds"
    )
    order = models.ForeignKey(
        Order, verbose_name=_("order"), on_delete=models.PROTECT, related_name="refunds"
    )
    after_sale = models.ForeignKey(
        AfterSale,
        verbose_name=_("after-sales request"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="refunds",
    )
    out_refund_no = models.CharField(_("merchant refund number"), max_length=40, unique=True)
    provider_refund_id = models.CharField(
        _("provider refund id"), max_length=64, unique=True, null=True, blank=True
    )
    amount_fen = models.BigIntegerField(_("amount (fen)"))
    reason = models.CharField(_("reason"), max_length=200)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    error = models.CharField(_("error"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    succeeded_at = models.DateTimeField(_("refunded at"), null=True, blank=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gt=0), name="refund_amount_gt_0"),
        ]

    def __str__(self) -> str:
        return self.out_refund_no


class Shipment(models.Model):
    order = models.ForeignKey(
        Order, verbose_name=_("order"), on_delete=models.PROTECT, related_name="shipments"
    )
    carrier_code = models.CharField(_("carrier code"), max_length=32)
    tracking_number = models.CharField(_("tracking number"), max_length=64)
    shipped_at = models.DateTimeField(_("shipped at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    lines = models.ManyToManyField(OrderLine, verbose_name=_("lines"), related_name="shipments")

    class Meta:
        verbose_name = _("shipment")
        verbose_name_plural = _("shipments")
        ordering = ["order", "shipped_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["carrier_code", "tracking_number"], name="shipment_tracking_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.carrier_code} {self.tracking_number}"


class Review(models.Model):
    """A shopper's rating of a completed order and of the store that served it: one per order."""

    order = models.OneToOneField(
        Order, verbose_name=_("order"), on_delete=models.PROTECT, related_name="review"
    )
    store = models.ForeignKey(
        Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="reviews"
    )
    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="reviews"
    )
    rating = models.PositiveSmallIntegerField(_("rating (1-5)"))
    text = models.CharField(_("review"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("written at"), auto_now_add=True)

    class Meta:
        verbose_name = _("review")
        verbose_name_plural = _("reviews")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__gte=1) & Q(rating__lte=5), name="review_rating_1_to_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order} · {self.rating}★"


class DailySales(models.Model):
    """One store's sales of one closed local day (Asia/Shanghai) in one channel: what the
    console dashboard's last 30 days read instead of the orders (``orders.sales_rollup``).

    Same definitions as the dashboard: the orders paid that day (``paid_at``), each at what was
    paid less what has been refunded of it so far, whatever its status now."""

    store = models.ForeignKey(
        Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="+"
    )
    day = models.DateField(_("day"))
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    orders = models.BigIntegerField(_("orders"))
    paid_fen = models.BigIntegerField(_("paid (fen)"))
    refunded_fen = models.BigIntegerField(_("refunded (fen)"))
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        verbose_name = _("daily sales")
        verbose_name_plural = _("daily sales")
        ordering = ["-day", "store", "channel"]
        indexes = [
            # All stores' days (the per-store ones use the unique constraint's index).
            models.Index(fields=["day"], name="dailysales_day"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["store", "day", "channel"], name="dailysales_one_per_store_day_channel"
            ),
            models.CheckConstraint(
                condition=Q(orders__gte=0) & Q(paid_fen__gte=0) & Q(refunded_fen__gte=0),
                name="dailysales_amounts_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(refunded_fen__lte=F("paid_fen")), name="dailysales_refunded_lte_paid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} · {self.store_id} · {self.channel}"


class SalesRollupState(models.Model):
    """The one row of ``orders.sales_rollup``'s progress, locked by each run.

    ``complete_through``: the last closed local day whose ``DailySales`` are complete (every
    day of the dashboard's window up to it is read from them); ``watermark``: when the last run
    started (orders changed since then, less a margin, are recomputed by the next)."""

    SINGLETON = 1

    complete_through = models.DateField(_("complete through"), null=True, blank=True)
    watermark = models.DateTimeField(_("last run started at"), null=True, blank=True)

    class Meta:
        verbose_name = _("sales roll-up state")
        verbose_name_plural = _("sales roll-up state")
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="salesrollupstate_singleton"),
        ]

    def __str__(self) -> str:
        return str(self.complete_through or "—")
