"""Shapes shared by the shopper API: the member as the shopper sees herself, and the error
shape with the codes each endpoint documents."""

from collections.abc import Iterable, Mapping
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from members.models import Member
from retail.api.serializers import ErrorFieldsOutput


class TierOutput(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    discount_percent = serializers.IntegerField()


class MemberSummaryOutput(serializers.ModelSerializer):
    """The member in a login or bind-phone answer. The mobile is masked (138****8001)."""

    mobile = serializers.CharField(source="masked_mobile")
    tier = TierOutput(allow_null=True)
    has_mobile = serializers.SerializerMethodField()

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
            "home_store_id",
            "joined_channel",
        ]

    def get_has_mobile(self, member: Member) -> bool:
        return bool(member.mobile)


class ErrorDetailOutput(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = ErrorFieldsOutput()


class ErrorOutput(serializers.Serializer):
    """Every error: ``{"error": {"code", "message", "fields"}}`` (retail/errors.py)."""

    error = ErrorDetailOutput()


# Codes every authenticated endpoint can answer with.
AUTH_ERRORS: dict[int, list[str]] = {
    401: ["not_authenticated", "token_invalid", "token_expired"],
}


def error_responses(*groups: Mapping[int, Iterable[str]]) -> dict[int, Any]:
    """OpenAPI responses for the error codes an endpoint answers with, by HTTP status:
    ``error_responses({400: ["validation_error"]}, AUTH_ERRORS)``."""
    by_status: dict[int, list[str]] = {}
    for group in groups:
        for status_code, codes in group.items():
            by_status.setdefault(status_code, []).extend(codes)
    return {
        status_code: OpenApiResponse(
            response=ErrorOutput,
            description="Error codes: " + ", ".join(f"`{code}`" for code in codes),
        )
        for status_code, codes in sorted(by_status.items())
    }


# --- Stores, catalogue, recommendations -----------------------------------------------------


@extend_schema_field({"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$", "example": "09:00"})
class ClockTimeField(serializers.TimeField):
    """A time of day as ``HH:MM`` (not OpenAPI's "time" format, which has seconds)."""

    def __init__(self, **kwargs):
        super().__init__(format="%H:%M", **kwargs)


class StoreCardOutput(serializers.Serializer):
    """A store as the home page and the store picker show it."""

    id = serializers.IntegerField(source="store.pk")
    code = serializers.CharField(source="store.code")
    name = serializers.CharField(source="store.name")
    address = serializers.CharField(source="store.full_address")
    phone = serializers.CharField(source="store.phone")
    latitude = serializers.FloatField(source="store.latitude", help_text="GCJ-02")
    longitude = serializers.FloatField(source="store.longitude", help_text="GCJ-02")
    distance_m = serializers.IntegerField(allow_null=True, help_text="Null without a location.")
    open_now = serializers.BooleanField()
    opens_at = ClockTimeField(source="store.opens_at")
    closes_at = ClockTimeField(source="store.closes_at")
    offers_pickup = serializers.BooleanField(source="store.offers_pickup")
    offers_ship_from_store = serializers.BooleanField(source="store.offers_ship_from_store")
    delivery_radius_m = serializers.IntegerField(
        source="store.delivery_radius_m", help_text="0: the store does not deliver."
    )
    avg_rating = serializers.FloatField(
        source="rating.avg_rating", allow_null=True, help_text="1 to 5, one decimal."
    )
    review_count = serializers.IntegerField(source="rating.review_count")
    avg_order_value_fen = serializers.IntegerField(
        source="rating.avg_order_value_fen", allow_null=True
    )


class CategoryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    parent_id = serializers.IntegerField(allow_null=True)
    sort_order = serializers.IntegerField()


class CategoryBriefOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class SKUOutput(serializers.Serializer):
    """A SKU with what the chosen store and the warehouses can sell of it (context
    ``availability``: a ``wechat.selectors.Availability``)."""

    id = serializers.IntegerField()
    code = serializers.CharField()
    barcode = serializers.CharField()
    spec = serializers.CharField(source="spec_label")
    attributes = serializers.DictField(child=serializers.CharField())
    price_fen = serializers.IntegerField()
    available_at_store = serializers.SerializerMethodField(
        help_text="Units the chosen store can sell; null without a chosen store."
    )
    available_online = serializers.SerializerMethodField(help_text="Units the warehouses can ship.")

    def get_available_at_store(self, sku) -> int | None:
        return self.context["availability"].at(sku.pk)

    def get_available_online(self, sku) -> int:
        return self.context["availability"].shipped(sku.pk)


class ProductOutput(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    brand = serializers.CharField()
    unit = serializers.CharField()
    category = CategoryBriefOutput()
    price_from_fen = serializers.SerializerMethodField(help_text="The lowest SKU price.")
    in_stock = serializers.SerializerMethodField(
        help_text="Some SKU is available at the chosen store or online."
    )
    skus = SKUOutput(source="shop_skus", many=True)

    def get_price_from_fen(self, product) -> int:
        return min(sku.price_fen for sku in product.shop_skus)

    def get_in_stock(self, product) -> bool:
        return any(self.context["availability"].any(sku.pk) for sku in product.shop_skus)


class RecommendedProductOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    brand = serializers.CharField()
    unit = serializers.CharField()


class RecommendedSKUOutput(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    spec = serializers.CharField(source="spec_label")
    price_fen = serializers.IntegerField()


class RecommendationOutput(serializers.Serializer):
    reason = serializers.ChoiceField(
        choices=["bought_before", "bought_together", "popular"],
        help_text="bought_before: the member bought it (any channel); bought_together: often "
        "in the same orders as what she bought or is looking at; popular: often bought with "
        "other items (for shoppers without purchases).",
    )
    product = RecommendedProductOutput(source="sku.product")
    sku = RecommendedSKUOutput()
    available_at_store = serializers.IntegerField(source="at_store", allow_null=True)
    available_online = serializers.IntegerField(source="online")
