"""What a shopper browses, logged in or not: home (nearby stores, recommendations), categories,
the catalogue with its filters, a product with the stock of nearby stores, recommendations.

A token, when sent, must be valid; with one, recommendations start from the member's own
purchases. Stock figures follow the online rules (safety stock kept back): ``available_at_store``
is what the chosen store can sell, ``available_online`` what the warehouses can ship.
"""

from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from members.models import Member
from retail.api.pagination import CursorPagination
from wechat import selectors
from wechat.api.auth import PublicAPIView, Shopper, ShopperTokenAuthentication
from wechat.api.filters import ProductFilter
from wechat.api.serializers import (
    CategoryBriefOutput,
    CategoryOutput,
    ProductOutput,
    RecommendationOutput,
    SKUOutput,
    StoreCardOutput,
    error_responses,
)

# A token that is sent must be good, though none is needed.
OPTIONAL_AUTH_ERRORS = {401: ["token_invalid", "token_expired"]}
TAGS = ["shop: catalogue"]


def _member(request: Request) -> Member | None:
    return request.user.member if isinstance(request.user, Shopper) else None


class LocationQuery(serializers.Serializer):
    lat = serializers.FloatField(
        required=False, min_value=-90, max_value=90, help_text="Latitude, GCJ-02 (wx.getLocation)."
    )
    lng = serializers.FloatField(
        required=False, min_value=-180, max_value=180, help_text="Longitude, GCJ-02."
    )
    store = serializers.PrimaryKeyRelatedField(
        queryset=selectors.shop_stores(),
        required=False,
        help_text="The chosen store's id: its stock is shown.",
    )

    def validate(self, attrs: dict) -> dict:
        if ("lat" in attrs) != ("lng" in attrs):
            missing = "lng" if "lat" in attrs else "lat"
            raise serializers.ValidationError(
                {missing: [serializers.Field.default_error_messages["required"]]}
            )
        return attrs


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


# --- Home -----------------------------------------------------------------------------------


class HomeQuery(LocationQuery):
    include_closed = serializers.BooleanField(
        default=False, help_text="true: list stores closed now too."
    )


class HomeOutput(serializers.Serializer):
    store_id = serializers.IntegerField(
        allow_null=True,
        help_text="The store recommendations are checked against: the chosen one, else the "
        "nearest open one.",
    )
    stores = StoreCardOutput(many=True)
    recommendations = RecommendationOutput(many=True)


class HomeView(PublicAPIView):
    @extend_schema(
        operation_id="shop_home",
        tags=TAGS,
        summary="Nearest open stores and recommendations",
        description=(
            "Active stores open now within 20 km of the point, nearest first (at most 10), with "
            "distance, average rating and average order value; without a point, by store code. "
            "Recommendations are available at the chosen (or nearest open) store or online."
        ),
        parameters=[HomeQuery],
        responses={
            200: HomeOutput,
            **error_responses({400: ["validation_error"]}, OPTIONAL_AUTH_ERRORS),
        },
    )
    def get(self, request: Request) -> Response:
        query = _query(HomeQuery, request)
        cards = selectors.shop_stores_near(
            latitude=query.get("lat"),
            longitude=query.get("lng"),
            now=timezone.now(),
            include_closed=query["include_closed"],
        )
        store = query.get("store") or next((card.store for card in cards if card.open_now), None)
        recommendations = selectors.shop_recommendations(member=_member(request), store=store)
        output = {
            "store_id": store.pk if store is not None else None,
            "stores": cards,
            "recommendations": recommendations,
        }
        return Response(HomeOutput(output).data)


# --- Categories -----------------------------------------------------------------------------


class CategoryListView(PublicAPIView):
    @extend_schema(
        operation_id="shop_categories",
        tags=TAGS,
        summary="Categories, in display order",
        description="Flat: a subcategory names its parent.",
        responses={200: CategoryOutput(many=True), **error_responses(OPTIONAL_AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        return Response(CategoryOutput(selectors.shop_categories(), many=True).data)


# --- Catalogue ------------------------------------------------------------------------------


class ProductPagination(CursorPagination):
    """Stable pages at constant cost however deep the shopper scrolls."""

    ordering = "code"
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class ProductListView(generics.ListAPIView):
    authentication_classes = [ShopperTokenAuthentication]
    permission_classes: list = []
    serializer_class = ProductOutput
    pagination_class = ProductPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = ProductFilter

    def get_queryset(self):
        return selectors.shop_products()

    def filter_queryset(self, queryset):
        filterset = ProductFilter(
            self.request.query_params, queryset=queryset, request=self.request
        )
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        self.chosen_store = filterset.form.cleaned_data.get("store")
        return filterset.qs

    @extend_schema(
        operation_id="shop_products",
        tags=TAGS,
        summary="The catalogue: search, filters, stock at the chosen store and online",
        description=(
            "Products by code, 20 a page (`page_size` up to 100), with their active SKUs. "
            "Follow `next` for the following page."
        ),
        responses={
            200: ProductOutput(many=True),
            **error_responses({400: ["validation_error", "invalid_cursor"]}, OPTIONAL_AUTH_ERRORS),
        },
    )
    def get(self, request: Request) -> Response:
        products = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        availability = selectors.shop_availability(
            sku_ids=[sku.pk for product in products for sku in product.shop_skus],
            store=self.chosen_store,
        )
        data = ProductOutput(products, many=True, context={"availability": availability}).data
        return self.get_paginated_response(data)


# --- Product --------------------------------------------------------------------------------


class ProductStoreSKUOutput(serializers.Serializer):
    sku_id = serializers.IntegerField()
    available = serializers.IntegerField()


class ProductStoreOutput(serializers.Serializer):
    id = serializers.IntegerField(source="option.store.pk")
    code = serializers.CharField(source="option.store.code")
    name = serializers.CharField(source="option.store.name")
    address = serializers.CharField(source="option.store.full_address")
    distance_m = serializers.IntegerField(source="option.distance_m")
    open_now = serializers.BooleanField()
    offers_pickup = serializers.BooleanField(source="option.store.offers_pickup")
    has_every_sku = serializers.BooleanField(source="option.can_serve_all")
    skus = ProductStoreSKUOutput(source="option.lines", many=True)


class ProductDetailOutput(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    brand = serializers.CharField()
    unit = serializers.CharField()
    description = serializers.CharField()
    category = CategoryBriefOutput()
    skus = SKUOutput(source="shop_skus", many=True)
    stores = ProductStoreOutput(
        many=True, help_text="Nearby stores (within 20 km, at most 10) when lat/lng are given."
    )
    recommendations = RecommendationOutput(many=True)


class ProductDetailView(PublicAPIView):
    @extend_schema(
        operation_id="shop_product",
        tags=TAGS,
        summary="A product: its SKUs with stock, nearby stores' stock, recommendations",
        parameters=[LocationQuery],
        responses={
            200: ProductDetailOutput,
            **error_responses(
                {400: ["validation_error"], 404: ["not_found"]}, OPTIONAL_AUTH_ERRORS
            ),
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        query = _query(LocationQuery, request)
        product = selectors.shop_product(product_id=pk)
        store = query.get("store")
        availability = selectors.shop_availability(
            sku_ids=[sku.pk for sku in product.shop_skus], store=store
        )
        stores = []
        if "lat" in query:
            stores = [
                {"option": option, "open_now": open_now}
                for option, open_now in selectors.shop_product_stores(
                    product=product,
                    latitude=query["lat"],
                    longitude=query["lng"],
                    now=timezone.now(),
                )
            ]
        product.stores = stores
        product.recommendations = selectors.shop_recommendations(
            member=_member(request), store=store, product=product
        )
        output = ProductDetailOutput(product, context={"availability": availability})
        return Response(output.data)


# --- Recommendations ------------------------------------------------------------------------


class RecommendationQuery(serializers.Serializer):
    store = serializers.PrimaryKeyRelatedField(
        queryset=selectors.shop_stores(),
        required=False,
        help_text="The chosen store's id: items must be available there or online.",
    )


class RecommendationsView(PublicAPIView):
    @extend_schema(
        operation_id="shop_recommendations",
        tags=TAGS,
        summary="Items for this shopper",
        description=(
            "The member's own purchases in every channel (the counter too), then items often "
            "bought with them; for a shopper without purchases (or not logged in), items often "
            "bought together. Only items available at the chosen store or online, one per "
            "product, at most 10."
        ),
        parameters=[RecommendationQuery],
        responses={
            200: RecommendationOutput(many=True),
            **error_responses({400: ["validation_error"]}, OPTIONAL_AUTH_ERRORS),
        },
    )
    def get(self, request: Request) -> Response:
        query = _query(RecommendationQuery, request)
        recommendations = selectors.shop_recommendations(
            member=_member(request), store=query.get("store")
        )
        return Response(RecommendationOutput(recommendations, many=True).data)
