from collections.abc import Mapping

from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from retail.models import SKU, Product, Store

# --- The error shape (``retail.errors``), shared by the staff, shop and partner APIs ----------


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {
            "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}]
        },
        "description": "The inputs at fault, each with its messages: "
        '`{"store": ["..."]}`. A nested input has the same shape inside, lists by index: '
        '`"address": {"mobile": ["..."]}`, `"lines": {"1": {"quantity": ["..."]}}`, '
        '`"line_keys": {"0": ["..."]}`. Empty when no one input is at fault.',
    }
)
class ErrorFieldsOutput(serializers.DictField):
    pass


class ErrorBodyOutput(serializers.Serializer):
    def get_fields(self):
        # "fields" cannot be a declared field: it is the name of the serializer's own attribute.
        return {
            "code": serializers.CharField(),
            "message": serializers.CharField(),
            "fields": ErrorFieldsOutput(),
        }


class ErrorOutput(serializers.Serializer):
    """The one error shape of ``retail.errors``, for the documentation; ``fields`` as
    ``retail.errors`` gives them, nested inputs included."""

    error = ErrorBodyOutput()


def error_responses(described: Mapping[int, str]) -> dict[int, OpenApiResponse]:
    """OpenAPI responses in the error shape, by HTTP status: ``{404: "No such store."}``."""
    return {
        code: OpenApiResponse(ErrorOutput, description=text) for code, text in described.items()
    }


# --- Stores and the catalogue -----------------------------------------------------------------


@extend_schema_field(
    {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]:[0-5][0-9]$", "example": "09:00:00"}
)
class StoreTimeField(serializers.TimeField):
    """A store's opening or closing time as ``HH:MM:SS``, the store's local time: not OpenAPI's
    "time" format, which wants an offset."""

    def __init__(self, **kwargs):
        super().__init__(format="%H:%M:%S", **kwargs)


class StoreOutput(serializers.ModelSerializer):
    latitude = serializers.FloatField()
    longitude = serializers.FloatField()
    opens_at = StoreTimeField()
    closes_at = StoreTimeField()

    class Meta:
        model = Store
        fields = [
            "id",
            "code",
            "name",
            "kind",
            "province",
            "city",
            "district",
            "address",
            "phone",
            "latitude",
            "longitude",
            "opens_at",
            "closes_at",
            "offers_pickup",
            "offers_ship_from_store",
            "offers_counter_sales",
            "delivery_radius_m",
            "active",
        ]


class SKUOutput(serializers.ModelSerializer):
    product_code = serializers.CharField(source="product.code")
    product_name = serializers.CharField(source="product.name")
    category = serializers.CharField(source="product.category.code")

    class Meta:
        model = SKU
        fields = [
            "id",
            "code",
            "barcode",
            "product_code",
            "product_name",
            "category",
            "attributes",
            "price_fen",
            "active",
        ]


class SKUCreateInput(serializers.Serializer):
    product = serializers.SlugRelatedField(slug_field="code", queryset=Product.objects.all())
    code = serializers.CharField(max_length=32)
    barcode = serializers.CharField(max_length=14)
    price_fen = serializers.IntegerField(min_value=0)
    attributes = serializers.DictField(child=serializers.CharField(max_length=50), required=False)
    active = serializers.BooleanField(default=True)
