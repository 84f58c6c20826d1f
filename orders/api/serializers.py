"""What the staff order API reads and answers. Amounts are integer fen, as stored."""

from rest_framework import serializers

from members.models import Member
from orders.models import (
    AfterSale,
    AfterSaleLine,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    Refund,
    Shipment,
)
from retail.access import stores_for
from retail.models import OutboxDelivery, Store

# --- Output ------------------------------------------------------------------------------------


class OrderStoreOutput(serializers.ModelSerializer):
    class Meta:
        model = Store
        fields = ["id", "code", "name"]


class OrderMemberOutput(serializers.ModelSerializer):
    class Meta:
        model = Member
        fields = ["id", "name", "mobile"]


class OrderListOutput(serializers.ModelSerializer):
    store = OrderStoreOutput()
    member = OrderMemberOutput(allow_null=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "number",
            "status",
            "channel",
            "fulfilment",
            "store",
            "member",
            "pickup_code",
            "total_fen",
            "paid_fen",
            "refunded_fen",
            "created_at",
            "expires_at",
            "paid_at",
            "closed_at",
        ]


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


class OrderEventOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", allow_null=True)

    class Meta:
        model = OrderEvent
        fields = [
            "id",
            "kind",
            "from_status",
            "to_status",
            "actor_kind",
            "actor",
            "note",
            "data",
            "created_at",
        ]


class OrderPaymentOutput(serializers.ModelSerializer):
    class Meta:
        model = Payment
        fields = [
            "id",
            "provider",
            "out_trade_no",
            "transaction_id",
            "amount_fen",
            "status",
            "created_at",
            "paid_at",
        ]


class OrderRefundOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", allow_null=True)

    class Meta:
        model = Refund
        fields = [
            "id",
            "out_refund_no",
            "amount_fen",
            "reason",
            "status",
            "error",
            "after_sale",
            "created_by",
            "created_at",
            "succeeded_at",
        ]


class AfterSaleLineOutput(serializers.ModelSerializer):
    line_key = serializers.CharField(source="order_line.line_key")

    class Meta:
        model = AfterSaleLine
        fields = ["line_key", "quantity"]


class AfterSaleOutput(serializers.ModelSerializer):
    lines = AfterSaleLineOutput(many=True)
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True)

    class Meta:
        model = AfterSale
        fields = [
            "id",
            "kind",
            "status",
            "reason",
            "amount_fen",
            "lines",
            "decided_by",
            "decision_note",
            "created_at",
            "decided_at",
            "restocked_at",
        ]


class ShipmentOutput(serializers.ModelSerializer):
    line_keys = serializers.SlugRelatedField(
        source="lines", slug_field="line_key", many=True, read_only=True
    )
    created_by = serializers.CharField(source="created_by.username", allow_null=True)

    class Meta:
        model = Shipment
        fields = ["id", "carrier_code", "tracking_number", "shipped_at", "line_keys", "created_by"]


class OutboxDeliveryOutput(serializers.ModelSerializer):
    event_id = serializers.UUIDField(source="event.event_id")
    event_type = serializers.CharField(source="event.event_type")

    class Meta:
        model = OutboxDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "subscriber",
            "state",
            "attempts",
            "attempt_limit",
            "last_error",
            "last_status_code",
            "next_attempt_at",
            "delivered_at",
        ]


class OrderDetailOutput(OrderListOutput):
    created_by = serializers.CharField(source="created_by.username", allow_null=True)
    lines = OrderLineOutput(many=True)
    events = OrderEventOutput(many=True)
    payments = OrderPaymentOutput(many=True)
    refunds = OrderRefundOutput(many=True)
    after_sales = AfterSaleOutput(many=True)
    shipments = ShipmentOutput(many=True)
    deliveries = OutboxDeliveryOutput(source="outbox_deliveries", many=True)

    class Meta(OrderListOutput.Meta):
        fields = [
            *OrderListOutput.Meta.fields,
            "subtotal_fen",
            "discount_fen",
            "shipping_fen",
            "address",
            "note",
            "client_reference",
            "created_by",
            "updated_at",
            "lines",
            "events",
            "payments",
            "refunds",
            "after_sales",
            "shipments",
            "deliveries",
        ]


# --- Input -------------------------------------------------------------------------------------


class UserStoreField(serializers.PrimaryKeyRelatedField):
    """A store of the requesting user's: another store's id is refused like an unknown one."""

    def get_queryset(self):
        request = self.context.get("request")
        return stores_for(request.user) if request else Store.objects.none()


class CancelInput(serializers.Serializer):
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class HandoverInput(serializers.Serializer):
    store = UserStoreField(queryset=Store.objects.all())
    pickup_code = serializers.CharField(max_length=8)


class ShipInput(serializers.Serializer):
    carrier_code = serializers.CharField(max_length=32)
    tracking_number = serializers.CharField(max_length=64)
    # Omitted: every line not shipped yet.
    line_keys = serializers.ListField(
        child=serializers.CharField(max_length=40), required=False, allow_empty=False
    )


class AddressInput(serializers.Serializer):
    """A delivery address; ``orders.services`` checks and trims it (``invalid_address``)."""

    name = serializers.CharField(max_length=50)
    mobile = serializers.RegexField(r"^1\d{10}$", max_length=11)
    province = serializers.CharField(max_length=32)
    city = serializers.CharField(max_length=32)
    district = serializers.CharField(max_length=32)
    detail = serializers.CharField(max_length=200)


class RefundInput(serializers.Serializer):
    amount_fen = serializers.IntegerField(min_value=1)
    reason = serializers.CharField(max_length=200)


class DecisionInput(serializers.Serializer):
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class RejectionInput(serializers.Serializer):
    note = serializers.CharField(max_length=200)
