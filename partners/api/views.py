"""The partner API (``/api/partner/v1/``): ``Authorization: Bearer <key>``, one key's calls
throttled together, every refusal in the one error shape. Views are thin: they read the input,
call one service or selector with the key's partner and answer with the order as it stands.
Another partner's order is a 404, like an unknown one."""

from datetime import UTC

from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.models import Order
from partners import orders, selectors
from partners.api.serializers import (
    AcknowledgeOutput,
    CancelInput,
    DeliveryEventInput,
    OrderCreateInput,
    PartnerOrderOutput,
    ShipmentInput,
    StockOutput,
    StockQueryInput,
)
from partners.api.throttles import PartnerKeyThrottle
from partners.auth import IsPartner, PartnerKeyAuthentication
from partners.models import Partner
from retail.api.serializers import ErrorOutput
from retail.errors import BusinessError

REFUSALS = {
    400: "Invalid input: `validation_error` or the service's code.",
    401: "`not_authenticated`, `key_invalid`, `key_revoked`, `partner_inactive`.",
    403: "`not_a_sales_channel`, `not_the_fulfiller`.",
    404: "`not_found`: no such order among this partner's (another partner's included).",
    409: "A business rule refused it (`illegal_transition`, `not_shippable`, ...).",
    415: "`unsupported_media_type`: the body is not JSON (`Content-Type: application/json`).",
    422: "`idempotency_key_reused`: the key came with another request.",
    429: "`throttled`: too many calls with this key; see `Retry-After`.",
}


def refusals(*codes: int) -> dict:
    return {
        code: OpenApiResponse(ErrorOutput, description=REFUSALS[code])
        for code in (401, 429, *codes)
    }


class PartnerView(APIView):
    # JSON in and out, as documented: a form body cannot carry an order's lines, and partners
    # are programs, not browsers.
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]
    authentication_classes = [PartnerKeyAuthentication]
    permission_classes = [IsPartner]
    throttle_classes = [PartnerKeyThrottle]

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        # No order number holds a NUL, and PostgreSQL refuses one in a query: unknown order.
        if "\x00" in kwargs.get("number", ""):
            raise BusinessError(
                "not_found", _("No such order among this partner's."), status_code=404
            )

    @property
    def partner(self) -> Partner:
        return self.request.user.partner

    def order_answer(self, number: str, status_code: int = status.HTTP_200_OK) -> Response:
        order = selectors.partner_order(partner=self.partner, number=number)
        return Response(PartnerOrderOutput(order).data, status=status_code)


class PartnerOrderPagination(CursorPagination):
    # Oldest change first: a partner polls with the cursor (or ``updated_since``) and never
    # misses an order changed while it paged.
    ordering = ("updated_at", "pk")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request):
        # DRF answers 404 to a cursor it did not give: for a partner that is invalid input.
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise BusinessError(
                "invalid_cursor",
                str(self.invalid_cursor_message),
                fields={"cursor": [request.query_params.get(self.cursor_query_param, "")[:40]]},
                status_code=400,
            ) from None


UPDATED_SINCE = OpenApiParameter(
    "updated_since",
    OpenApiTypes.DATETIME,
    description="ISO 8601 time with its offset: orders changed at or after it.",
)
STATUS = OpenApiParameter(
    "status", str, enum=Order.Status.values, description="Only orders in this status."
)
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    location=OpenApiParameter.HEADER,
    required=True,
    pattern=r"^[A-Za-z0-9._:-]{8,64}$",
    description="8 to 64 of `A-Z a-z 0-9 . _ : -`; the same key again returns the first order.",
)


class OrderListView(PartnerView, generics.ListAPIView):
    serializer_class = PartnerOrderOutput
    pagination_class = PartnerOrderPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the view
            return Order.objects.none()
        since_text = self.request.query_params.get("updated_since")
        since = None
        if since_text is not None:
            try:
                since = parse_datetime(since_text)
                if since is not None and since.tzinfo is not None:
                    # Year 1 or 9999 may not exist in UTC: refused like any bad time.
                    since = since.astimezone(UTC)
            except (ValueError, OverflowError):
                since = None
            if since is None or since.tzinfo is None:
                raise BusinessError(
                    "validation_error",
                    _("Give a time with its offset, e.g. 2026-11-25T08:00:00+08:00."),
                    fields={"updated_since": [since_text[:40]]},
                    status_code=400,
                )
        queryset = selectors.partner_orders(partner=self.partner, updated_since=since)
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in Order.Status.values:  # PostgreSQL refuses a NUL in a query
                invalid = serializers.ChoiceField.default_error_messages["invalid_choice"]
                raise BusinessError(
                    "validation_error",
                    _("Some fields are not valid."),
                    fields={"status": [str(invalid).format(input=wanted[:40])]},
                    status_code=400,
                )
            queryset = queryset.filter(status=wanted)
        return queryset

    @extend_schema(
        parameters=[UPDATED_SINCE, STATUS],
        responses={200: PartnerOrderOutput(many=True), **refusals(400)},
        description="The orders routed to this partner or sold by it, oldest change first, "
        "in cursor pages (`next` carries on).",
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        parameters=[IDEMPOTENCY_KEY],
        request=OrderCreateInput,
        responses={
            201: PartnerOrderOutput,
            200: OpenApiResponse(PartnerOrderOutput, description="A repeat of a key."),
            **refusals(400, 403, 404, 409, 415, 422),
        },
        description="Sales channels: place an order the partner's customer paid. It is "
        "priced by our rules, its stock reserved, and it is paid at once "
        "(settled with the partner). A repeat of the `Idempotency-Key` answers 200 with "
        "the first order.",
    )
    def post(self, request: Request) -> Response:
        payload = OrderCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        link, created = orders.partner_order_place(
            partner=self.partner,
            idempotency_key=request.headers.get("Idempotency-Key", ""),
            request=orders.OrderRequest(
                store_code=data["store"],
                fulfilment=data["fulfilment"],
                lines=[(line["sku"], line["quantity"]) for line in data["lines"]],
                address=dict(data.get("address") or {}),
                note=data["note"],
            ),
        )
        return self.order_answer(
            link.order.number, status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class OrderDetailView(PartnerView):
    @extend_schema(responses={200: PartnerOrderOutput, **refusals(404)})
    def get(self, request: Request, number: str) -> Response:
        return self.order_answer(number)


class AcknowledgeView(PartnerView):
    @extend_schema(
        request=None,
        responses={200: AcknowledgeOutput, **refusals(404)},
        description="The partner has taken the order in; the first time is kept.",
    )
    def post(self, request: Request, number: str) -> Response:
        link = orders.partner_order_acknowledge(partner=self.partner, number=number)
        return Response(
            AcknowledgeOutput({"number": number, "acknowledged_at": link.acknowledged_at}).data
        )


class ShipmentsView(PartnerView):
    @extend_schema(
        request=ShipmentInput,
        responses={
            201: PartnerOrderOutput,
            200: OpenApiResponse(PartnerOrderOutput, description="The same tracking number."),
            **refusals(400, 403, 404, 409, 415),
        },
        description="A parcel left: carrier code, tracking number and the lines in it "
        "(all unshipped lines when omitted). The order is `shipped` when its last line "
        "leaves. The same carrier and tracking number again changes nothing (200).",
    )
    def post(self, request: Request, number: str) -> Response:
        payload = ShipmentInput(data=request.data)
        payload.is_valid(raise_exception=True)
        _shipment, created = orders.partner_shipment_post(
            partner=self.partner,
            number=number,
            carrier_code=payload.validated_data["carrier_code"],
            tracking_number=payload.validated_data["tracking_number"],
            line_keys=payload.validated_data.get("line_keys"),
        )
        return self.order_answer(number, status.HTTP_201_CREATED if created else 200)


class DeliveryEventsView(PartnerView):
    @extend_schema(
        request=DeliveryEventInput,
        responses={200: PartnerOrderOutput, **refusals(400, 403, 404, 409, 415)},
        description="`delivered`: the order is delivered (a repeat changes nothing). "
        "`failed` with a `reason`: noted on the order, which stays shipped.",
    )
    def post(self, request: Request, number: str) -> Response:
        payload = DeliveryEventInput(data=request.data)
        payload.is_valid(raise_exception=True)
        orders.partner_delivery_event(partner=self.partner, number=number, **payload.validated_data)
        return self.order_answer(number)


class CancelView(PartnerView):
    @extend_schema(
        request=CancelInput,
        responses={200: PartnerOrderOutput, **refusals(400, 403, 404, 409, 415)},
        description="Sales channels: cancel an order before its goods leave; it is refunded "
        "in full through the partner and its stock freed. Twice changes nothing.",
    )
    def post(self, request: Request, number: str) -> Response:
        payload = CancelInput(data=request.data)
        payload.is_valid(raise_exception=True)
        orders.partner_order_cancel(
            partner=self.partner, number=number, reason=payload.validated_data["reason"]
        )
        return self.order_answer(number)


class StockView(PartnerView):
    @extend_schema(
        parameters=[StockQueryInput],
        responses={200: StockOutput(many=True), **refusals(400, 404)},
        description="Units available online per store and SKU, among the stores this "
        "partner serves; an unknown code is a 404 naming it.",
    )
    def get(self, request: Request) -> Response:
        query = StockQueryInput(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = selectors.partner_stock(
            partner=self.partner,
            store_codes=query.validated_data["store"],
            sku_codes=query.validated_data["sku"],
        )
        return Response(StockOutput(rows, many=True).data)
