"""What the shopper's cart, checkout, orders, member centre, coupons and addresses endpoints
read and answer. Amounts are integer fen; times ISO 8601 in the shop's zone."""

from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from members.models import Coupon, CouponTemplate, Member, PointsEntry
from orders.models import (
    AfterSale,
    AfterSaleLine,
    Channel,
    Fulfilment,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    Refund,
    Review,
    Shipment,
)
from orders.pricing import Quote
from retail.models import SKU, Store
from wechat.api.serializers import TierOutput
from wechat.models import Address
from wechat.selectors import CouponState

S = Order.Status

# --- Shared pieces ------------------------------------------------------------------------------


class StoreBriefOutput(serializers.ModelSerializer):
    address = serializers.CharField(source="full_address")

    class Meta:
        model = Store
        fields = ["id", "code", "name", "address", "phone"]


class SKUBriefOutput(serializers.ModelSerializer):
    product_name = serializers.CharField(source="product.name")
    unit = serializers.CharField(source="product.unit")
    sellable = serializers.SerializerMethodField()

    class Meta:
        model = SKU
        fields = ["id", "code", "product_name", "attributes", "unit", "price_fen", "sellable"]

    def get_sellable(self, sku: SKU) -> bool:
        return sku.active and sku.product.active


class QuoteLineOutput(serializers.Serializer):
    """One line as the pricing function priced it: list price and what each step took off."""

    sku_id = serializers.IntegerField(source="sku.pk")
    sku_code = serializers.CharField(source="sku.code")
    product_name = serializers.CharField(source="sku.product.name")
    attributes = serializers.JSONField(source="sku.attributes")
    quantity = serializers.IntegerField()
    unit_price_fen = serializers.IntegerField()
    promotion_fen = serializers.IntegerField()
    tier_fen = serializers.IntegerField()
    coupon_fen = serializers.IntegerField()
    points_fen = serializers.IntegerField()
    discount_fen = serializers.IntegerField()
    total_fen = serializers.IntegerField()


class QuoteOutput(serializers.Serializer):
    """The price breakdown (orders.pricing): ``total = subtotal - discount + shipping``;
    ``discount`` = promotion + tier + coupon + points; a free-delivery coupon shows as
    ``shipping_discount_fen`` (already taken off ``shipping_fen``)."""

    subtotal_fen = serializers.IntegerField()
    promotion_fen = serializers.SerializerMethodField()
    tier_fen = serializers.SerializerMethodField()
    coupon_fen = serializers.SerializerMethodField()
    points_fen = serializers.SerializerMethodField()
    discount_fen = serializers.IntegerField()
    shipping_fen = serializers.IntegerField()
    shipping_discount_fen = serializers.IntegerField()
    total_fen = serializers.IntegerField()
    coupon_code = serializers.SerializerMethodField()
    points_redeemed = serializers.IntegerField()
    lines = QuoteLineOutput(many=True)

    def _sum(self, quote: Quote, step: str) -> int:
        return sum(getattr(line, step) for line in quote.lines)

    def get_promotion_fen(self, quote: Quote) -> int:
        return self._sum(quote, "promotion_fen")

    def get_tier_fen(self, quote: Quote) -> int:
        return self._sum(quote, "tier_fen")

    def get_coupon_fen(self, quote: Quote) -> int:
        return self._sum(quote, "coupon_fen")

    def get_points_fen(self, quote: Quote) -> int:
        return self._sum(quote, "points_fen")

    def get_coupon_code(self, quote: Quote) -> str:
        return quote.coupon.code if quote.coupon is not None else ""


# --- Cart ---------------------------------------------------------------------------------------


class CartLineOutput(serializers.Serializer):
    sku = SKUBriefOutput(source="line.sku")
    quantity = serializers.IntegerField(source="line.quantity")
    available = serializers.IntegerField(
        allow_null=True, help_text="Units the chosen store can sell now; null without a store."
    )
    enough = serializers.BooleanField(allow_null=True)
    added_at = serializers.DateTimeField(source="line.added_at")


class CartOutput(serializers.Serializer):
    store = StoreBriefOutput(allow_null=True)
    fulfilment = serializers.CharField(help_text="What the price assumes (pickup by default).")
    lines = CartLineOutput(many=True, source="items")
    units = serializers.SerializerMethodField()
    price = QuoteOutput(
        source="quote",
        allow_null=True,
        help_text="The sellable lines priced at the chosen store (no coupon, no points); null "
        "without a store.",
    )

    def get_units(self, summary) -> int:
        return sum(item.line.quantity for item in summary.items)


class CartStoreInput(serializers.Serializer):
    store = serializers.IntegerField(help_text="The id of a store (from home).")


class CartLineInput(serializers.Serializer):
    quantity = serializers.IntegerField(help_text="0 removes the line.")


class CartQueryInput(serializers.Serializer):
    fulfilment = serializers.ChoiceField(
        choices=[Fulfilment.PICKUP, Fulfilment.DELIVERY], default=Fulfilment.PICKUP
    )


# --- Checkout -----------------------------------------------------------------------------------


class CheckoutInput(serializers.Serializer):
    fulfilment = serializers.ChoiceField(choices=[Fulfilment.DELIVERY, Fulfilment.PICKUP])
    store = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="Default: the cart's store."
    )
    address_id = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="Required for delivery."
    )
    coupon_code = serializers.CharField(max_length=16, required=False, allow_blank=True, default="")
    points = serializers.IntegerField(
        min_value=0,
        required=False,
        default=0,
        help_text="Points offered; more than the balance is refused, more than the rules allow "
        "is lowered (see `points_redeemed`).",
    )
    skus = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        default=list,
        max_length=100,
        help_text="The SKUs of the cart to order; default: every line.",
    )


class CheckoutPlaceInput(CheckoutInput):
    client_reference = serializers.CharField(
        max_length=64,
        help_text="Made by the client once per order attempt: sending it again returns the "
        "first order.",
    )
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    channel = serializers.ChoiceField(
        choices=[Channel.MINI_SHOP, Channel.H5], required=False, default=Channel.MINI_SHOP
    )


class AvailabilityOutput(serializers.Serializer):
    sku_id = serializers.IntegerField()
    quantity = serializers.IntegerField()
    available = serializers.IntegerField()
    enough = serializers.BooleanField()


class AddressOutput(serializers.ModelSerializer):
    latitude = serializers.FloatField(allow_null=True)
    longitude = serializers.FloatField(allow_null=True)

    class Meta:
        model = Address
        fields = [
            "id",
            "name",
            "mobile",
            "province",
            "city",
            "district",
            "detail",
            "latitude",
            "longitude",
            "is_default",
            "updated_at",
        ]


class PreviewOutput(serializers.Serializer):
    fulfilment = serializers.CharField()
    store = StoreBriefOutput()
    address = AddressOutput(allow_null=True)
    points_requested = serializers.IntegerField()
    price = QuoteOutput(source="quote")
    availability = serializers.SerializerMethodField()
    all_available = serializers.BooleanField()

    @extend_schema_field(AvailabilityOutput(many=True))
    def get_availability(self, preview) -> list[dict]:
        rows = [
            {
                "sku_id": line.sku.pk,
                "quantity": line.quantity,
                "available": preview.available[line.sku.pk],
                "enough": preview.available[line.sku.pk] >= line.quantity,
            }
            for line in preview.quote.lines
        ]
        return AvailabilityOutput(rows, many=True).data


# --- Orders -------------------------------------------------------------------------------------


class OrderLineOutput(serializers.ModelSerializer):
    class Meta:
        model = OrderLine
        fields = [
            "line_key",
            "sku_id",
            "sku_code",
            "product_name",
            "attributes",
            "unit_price_fen",
            "quantity",
            "discount_fen",
            "total_fen",
            "shipped",
        ]


class OrderStoreOutput(serializers.ModelSerializer):
    class Meta:
        model = Store
        fields = ["id", "code", "name"]


class ReviewOutput(serializers.ModelSerializer):
    class Meta:
        model = Review
        fields = ["rating", "text", "created_at"]


def _review_of(order: Order) -> Review | None:
    try:
        return order.review
    except Review.DoesNotExist:
        return None


class OrderListOutput(serializers.ModelSerializer):
    store = OrderStoreOutput()
    status_label = serializers.CharField(source="get_status_display")
    units = serializers.SerializerMethodField()
    lines = OrderLineOutput(many=True)
    can_cancel = serializers.SerializerMethodField()
    can_confirm_receipt = serializers.SerializerMethodField()
    can_review = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "number",
            "status",
            "status_label",
            "channel",
            "fulfilment",
            "store",
            "units",
            "total_fen",
            "lines",
            "created_at",
            "expires_at",
            "can_cancel",
            "can_confirm_receipt",
            "can_review",
        ]

    def get_units(self, order: Order) -> int:
        return sum(line.quantity for line in order.lines.all())

    def get_can_cancel(self, order: Order) -> bool:
        return order.status == S.PENDING_PAYMENT

    def get_can_confirm_receipt(self, order: Order) -> bool:
        return order.status in (S.SHIPPED, S.DELIVERED)

    def get_can_review(self, order: Order) -> bool:
        return order.status == S.COMPLETED and _review_of(order) is None


# What each kind of event is called in the shopper's timeline; a status change is called by
# the status it reached.
EVENT_TITLES = {
    "order.created": gettext_lazy("Order placed"),
    "order.partially_shipped": gettext_lazy("Part of the order shipped"),
    "payment.after_cancel": gettext_lazy("Paid after cancellation: refunding"),
    "refund.requested": gettext_lazy("Refund requested"),
    "refund.succeeded": gettext_lazy("Refunded"),
    "refund.failed": gettext_lazy("Refund failed"),
    "after_sale.requested": gettext_lazy("After-sales requested"),
    "after_sale.approved": gettext_lazy("After-sales approved"),
    "after_sale.rejected": gettext_lazy("After-sales rejected"),
    "after_sale.goods_received": gettext_lazy("Returned goods received"),
    "order.routed": gettext_lazy("Handed to a delivery partner"),
    "partner.acknowledged": gettext_lazy("The delivery partner took the order"),
    "order.address_changed": gettext_lazy("Delivery address changed"),
    "order.delivery_failed": gettext_lazy("Delivery attempt failed"),
}


class TimelineOutput(serializers.ModelSerializer):
    title = serializers.SerializerMethodField(help_text="In the shopper's language.")
    note = serializers.CharField(help_text="As recorded (a reason, a staff member's note).")
    at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = OrderEvent
        fields = ["kind", "title", "from_status", "to_status", "note", "at"]

    def get_title(self, event: OrderEvent) -> str:
        if event.to_status and event.kind == f"order.{event.to_status}":
            return str(S(event.to_status).label)
        return str(EVENT_TITLES.get(event.kind, event.kind))


class ShipmentOutput(serializers.ModelSerializer):
    line_keys = serializers.SlugRelatedField(
        source="lines", slug_field="line_key", many=True, read_only=True
    )

    class Meta:
        model = Shipment
        fields = ["carrier_code", "tracking_number", "shipped_at", "line_keys"]


class PaymentBriefOutput(serializers.ModelSerializer):
    class Meta:
        model = Payment
        fields = ["provider", "amount_fen", "status", "created_at", "paid_at"]


class RefundBriefOutput(serializers.ModelSerializer):
    class Meta:
        model = Refund
        fields = ["amount_fen", "status", "reason", "created_at", "succeeded_at"]


class PaymentSummaryOutput(serializers.Serializer):
    total_fen = serializers.IntegerField()
    paid_fen = serializers.IntegerField()
    refunded_fen = serializers.IntegerField()
    payments = PaymentBriefOutput(many=True)
    refunds = RefundBriefOutput(many=True)


class AfterSaleLineOutput(serializers.ModelSerializer):
    line_key = serializers.CharField(source="order_line.line_key")

    class Meta:
        model = AfterSaleLine
        fields = ["line_key", "quantity"]


class AfterSaleOutput(serializers.ModelSerializer):
    lines = AfterSaleLineOutput(many=True)

    class Meta:
        model = AfterSale
        fields = [
            "id",
            "kind",
            "status",
            "reason",
            "amount_fen",
            "lines",
            "decision_note",
            "created_at",
            "decided_at",
        ]


class OrderDetailOutput(OrderListOutput):
    pricing = serializers.JSONField(
        help_text="promotion_fen, tier_fen, coupon_fen, points_fen (adding up to "
        "discount_fen) and shipping_discount_fen."
    )
    pickup_code = serializers.SerializerMethodField(
        help_text="Shown once the order is paid, until it is picked up."
    )
    timeline = TimelineOutput(source="events", many=True)
    shipments = ShipmentOutput(many=True)
    payment = serializers.SerializerMethodField()
    after_sales = AfterSaleOutput(many=True)
    review = serializers.SerializerMethodField()
    can_request_after_sale = serializers.SerializerMethodField()

    class Meta(OrderListOutput.Meta):
        fields = [
            *OrderListOutput.Meta.fields,
            "subtotal_fen",
            "discount_fen",
            "shipping_fen",
            "pricing",
            "coupon_code",
            "points_redeemed",
            "paid_fen",
            "refunded_fen",
            "address",
            "pickup_code",
            "note",
            "paid_at",
            "closed_at",
            "timeline",
            "shipments",
            "payment",
            "after_sales",
            "review",
            "can_request_after_sale",
        ]

    def get_pickup_code(self, order: Order) -> str:
        return order.pickup_code if order.status in (S.PAID, S.READY_FOR_PICKUP) else ""

    @extend_schema_field(PaymentSummaryOutput)
    def get_payment(self, order: Order) -> dict:
        return PaymentSummaryOutput(
            {
                "total_fen": order.total_fen,
                "paid_fen": order.paid_fen,
                "refunded_fen": order.refunded_fen,
                "payments": order.payments.all(),
                "refunds": order.refunds.all(),
            }
        ).data

    @extend_schema_field(ReviewOutput(allow_null=True))
    def get_review(self, order: Order) -> dict | None:
        review = _review_of(order)
        return None if review is None else ReviewOutput(review).data

    def get_can_request_after_sale(self, order: Order) -> bool:
        open_requests = (AfterSale.Status.REQUESTED, AfterSale.Status.APPROVED)
        return (
            order.status not in (S.PENDING_PAYMENT, S.CANCELLED)
            and order.paid_fen > order.refunded_fen
            and not any(request.status in open_requests for request in order.after_sales.all())
        )


class OrderQueryInput(serializers.Serializer):
    status = serializers.MultipleChoiceField(
        choices=S.choices,
        required=False,
        help_text="Only orders in these statuses (repeat the parameter for several).",
    )


class AfterSaleLineInput(serializers.Serializer):
    line_key = serializers.CharField(max_length=40)
    quantity = serializers.IntegerField(min_value=1)


class AfterSaleInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=AfterSale.Kind.choices)
    lines = AfterSaleLineInput(many=True, allow_empty=False)
    reason = serializers.CharField(max_length=200)


class ReviewInput(serializers.Serializer):
    rating = serializers.IntegerField(help_text="1 to 5 stars.")
    text = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


# --- Member centre ------------------------------------------------------------------------------


class MeOutput(serializers.ModelSerializer):
    mobile = serializers.CharField(source="masked_mobile", help_text="Masked: 138****8001.")
    has_mobile = serializers.SerializerMethodField()
    tier = TierOutput(allow_null=True)
    has_referrer = serializers.SerializerMethodField()
    coupons_available = serializers.IntegerField()

    class Meta:
        model = Member
        fields = [
            "id",
            "name",
            "mobile",
            "has_mobile",
            "tier",
            "points_balance",
            "referral_code",
            "has_referrer",
            "coupons_available",
            "created_at",
        ]

    def get_has_mobile(self, member: Member) -> bool:
        return bool(member.mobile)

    def get_has_referrer(self, member: Member) -> bool:
        return member.referrer_id is not None


class PointsEntryOutput(serializers.ModelSerializer):
    reason_label = serializers.CharField(source="get_reason_display")
    at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = PointsEntry
        fields = [
            "id",
            "reason",
            "reason_label",
            "reference",
            "points",
            "balance_after",
            "expires_at",
            "at",
        ]


class CouponOutput(serializers.ModelSerializer):
    name = serializers.CharField(source="template.name")
    kind = serializers.CharField(source="template.kind")
    amount_fen = serializers.IntegerField(source="template.amount_fen")
    threshold_fen = serializers.IntegerField(source="template.threshold_fen")
    percent_off = serializers.IntegerField(source="template.percent_off")
    cap_fen = serializers.IntegerField(source="template.cap_fen", allow_null=True)
    scope = serializers.CharField(source="template.scope")
    order_number = serializers.CharField(source="order_reference")

    class Meta:
        model = Coupon
        fields = [
            "code",
            "name",
            "kind",
            "amount_fen",
            "threshold_fen",
            "percent_off",
            "cap_fen",
            "scope",
            "status",
            "valid_from",
            "valid_until",
            "order_number",
            "used_at",
        ]


class CouponQueryInput(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=CouponState.ALL, required=False, default=CouponState.AVAILABLE
    )


class ClaimableTemplateOutput(serializers.ModelSerializer):
    claimed = serializers.IntegerField(help_text="How many of these the shopper holds.")
    can_claim = serializers.SerializerMethodField()

    class Meta:
        model = CouponTemplate
        fields = [
            "id",
            "name",
            "kind",
            "amount_fen",
            "threshold_fen",
            "percent_off",
            "cap_fen",
            "scope",
            "valid_from",
            "valid_until",
            "valid_days",
            "per_member_limit",
            "claimed",
            "can_claim",
        ]

    def get_can_claim(self, template: CouponTemplate) -> bool:
        return template.claimed < template.per_member_limit


class MemberCodeOutput(serializers.Serializer):
    code = serializers.CharField(help_text="Show as a QR code; the counter scans it.")
    expires_in = serializers.IntegerField(help_text="Seconds it stays good.")


class ShareOutput(serializers.Serializer):
    referral_code = serializers.CharField()
    url = serializers.CharField(help_text="The H5 shop with the code: `?ref=<code>`.")
    path = serializers.CharField(help_text="The mini-program page with the code.")


class ReferrerInput(serializers.Serializer):
    code = serializers.CharField(max_length=32)


# --- Addresses ----------------------------------------------------------------------------------


class AddressInput(serializers.Serializer):
    name = serializers.CharField(max_length=50)
    mobile = serializers.CharField(max_length=11)
    province = serializers.CharField(max_length=32)
    city = serializers.CharField(max_length=32)
    district = serializers.CharField(max_length=32)
    detail = serializers.CharField(max_length=200)
    latitude = serializers.DecimalField(
        max_digits=9, decimal_places=6, required=False, allow_null=True, min_value=-90, max_value=90
    )
    longitude = serializers.DecimalField(
        max_digits=9,
        decimal_places=6,
        required=False,
        allow_null=True,
        min_value=-180,
        max_value=180,
    )
    is_default = serializers.BooleanField(required=False)
