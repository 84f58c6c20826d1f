"""What the partner API reads and answers. The order is shown as in pushes (``data.order``),
plus the partner's own view of it (``roles``, ``acknowledged_at``) and ``updated_at``."""

from rest_framework import serializers

from orders.models import Order, OrderLine, Shipment
from retail.models import Store


class PartnerStoreOutput(serializers.ModelSerializer):
    class Meta:
        model = Store
        fields = ["code", "name", "province", "city", "district", "address", "phone"]


class PartnerLineOutput(serializers.ModelSerializer):
    class Meta:
        model = OrderLine
        fields = [
            "line_key",
            "sku_code",
            "product_name",
            "quantity",
            "unit_price_fen",
            "total_fen",
            "shipped",
        ]


class PartnerShipmentOutput(serializers.ModelSerializer):
    line_keys = serializers.SerializerMethodField()

    class Meta:
        model = Shipment
        fields = ["carrier_code", "tracking_number", "shipped_at", "line_keys"]

    def get_line_keys(self, shipment: Shipment) -> list[str]:
        return [line.line_key for line in shipment.lines.all()]


class PartnerOrderOutput(serializers.ModelSerializer):
    store = PartnerStoreOutput()
    lines = PartnerLineOutput(many=True)
    shipments = PartnerShipmentOutput(many=True)
    roles = serializers.SerializerMethodField(help_text="`fulfil`, `sell` or both.")
    acknowledged_at = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "number",
            "status",
            "channel",
            "fulfilment",
            "store",
            "address",
            "note",
            "pickup_code",
            "subtotal_fen",
            "discount_fen",
            "shipping_fen",
            "total_fen",
            "paid_fen",
            "refunded_fen",
            "created_at",
            "paid_at",
            "updated_at",
            "lines",
            "shipments",
            "roles",
            "acknowledged_at",
        ]

    def get_roles(self, order: Order) -> list[str]:
        return [link.role for link in order.links_of_partner]

    def get_acknowledged_at(self, order: Order) -> str | None:
        moments = [link.acknowledged_at for link in order.links_of_partner if link.acknowledged_at]
        return serializers.DateTimeField().to_representation(min(moments)) if moments else None


class ShipmentInput(serializers.Serializer):
    carrier_code = serializers.CharField(max_length=32)
    tracking_number = serializers.CharField(max_length=64)
    line_keys = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        allow_empty=False,
        min_length=1,  # as allow_empty, for the schema (minItems)
        max_length=200,
        help_text="The lines in this parcel; omitted: every line not shipped yet.",
    )


class DeliveryEventInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=["delivered", "failed"])
    reason = serializers.CharField(
        max_length=200,
        required=False,
        default="",
        allow_blank=True,
        help_text="Required when `failed`.",
    )


class OrderLineInput(serializers.Serializer):
    sku = serializers.CharField(max_length=32, help_text="The SKU code.")
    quantity = serializers.IntegerField(min_value=1, max_value=999)


class AddressInput(serializers.Serializer):
    name = serializers.CharField(max_length=50)
    mobile = serializers.RegexField(r"^1\d{10}$", max_length=11)
    province = serializers.CharField(max_length=32)
    city = serializers.CharField(max_length=32)
    district = serializers.CharField(max_length=32)
    detail = serializers.CharField(max_length=200)


class OrderCreateInput(serializers.Serializer):
    store = serializers.CharField(max_length=32, help_text="The fulfilling store's code.")
    fulfilment = serializers.ChoiceField(choices=["delivery", "pickup"])
    # A list field, not many=True: the schema then shows its bounds (minItems, maxItems).
    lines = serializers.ListField(
        child=OrderLineInput(), allow_empty=False, min_length=1, max_length=100
    )
    address = AddressInput(required=False, help_text="Required for delivery.")
    note = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)

    def validate(self, data: dict) -> dict:
        if data["fulfilment"] == "delivery" and "address" not in data:
            raise serializers.ValidationError({"address": ["Required for delivery."]})
        codes = [line["sku"] for line in data["lines"]]
        if len(set(codes)) != len(codes):
            raise serializers.ValidationError({"lines": ["One line per SKU."]})
        return data


class CancelInput(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class StockQueryInput(serializers.Serializer):
    store = serializers.CharField(help_text="Store codes, comma-separated (at most 50).")
    sku = serializers.CharField(help_text="SKU codes, comma-separated (at most 100).")

    def _codes(self, value: str, limit: int) -> list[str]:
        codes = list(dict.fromkeys(code.strip() for code in value.split(",") if code.strip()))
        if not codes or len(codes) > limit or any(len(code) > 32 for code in codes):
            raise serializers.ValidationError(f"1 to {limit} codes of at most 32 characters.")
        return codes

    def validate_store(self, value: str) -> list[str]:
        return self._codes(value, 50)

    def validate_sku(self, value: str) -> list[str]:
        return self._codes(value, 100)


class StockOutput(serializers.Serializer):
    store = serializers.CharField()
    sku = serializers.CharField()
    available = serializers.IntegerField(help_text="Units that may be promised online.")


class AcknowledgeOutput(serializers.Serializer):
    number = serializers.CharField()
    acknowledged_at = serializers.DateTimeField()
