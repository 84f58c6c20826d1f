"""Staff API for orders: the list, one order's page, and one POST endpoint per action.

An action view checks its permission, finds the order among the user's stores (another store's
order is a 404), calls one service and answers with the order as it now stands. Refusals are
``BusinessError``s, which ``retail.errors`` turns into the one error shape.
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import aftersales, payments, selectors, services
from orders.api.filters import OrderFilter
from orders.api.serializers import (
    AddressInput,
    CancelInput,
    DecisionInput,
    HandoverInput,
    OrderDetailOutput,
    OrderListOutput,
    RefundInput,
    RejectionInput,
    ShipInput,
)
from orders.models import ActorKind
from orders.transitions import Cause
from retail.api.permissions import ModelPermissions
from retail.api.serializers import ErrorOutput


class HoldsPermissions(BasePermission):
    """The user holds every one of the view's ``required_permissions``."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perms(view.required_permissions))


def _refusals(*codes: int, not_found: str = "No such order among the user's stores.") -> dict:
    described = {
        400: "Invalid input (`validation_error`, `invalid_cursor` or the service's own code).",
        403: "Not signed in, or the role may not do this.",
        404: not_found,
        409: "A business rule refused the action (`illegal_transition`, ...).",
        415: "`unsupported_media_type`: a body that is not JSON, a form or multipart.",
    }
    return {code: OpenApiResponse(ErrorOutput, description=described[code]) for code in codes}


NO_SUCH_REQUEST = "No such after-sales request among the user's stores."


def _order_answer(request: Request, order_id: int) -> Response:
    order = selectors.order_detail(user=request.user, order_id=order_id)
    return Response(OrderDetailOutput(order).data)


@extend_schema_view(
    get=extend_schema(
        responses={
            200: OrderListOutput(many=True),
            **_refusals(400, 403),
        }
    )
)
class OrderListView(generics.ListAPIView):
    """Orders of the user's stores (all stores for HQ), newest first."""

    serializer_class = OrderListOutput
    permission_classes = [ModelPermissions]
    filterset_class = OrderFilter

    def get_queryset(self):
        return selectors.order_list(user=self.request.user)


@extend_schema_view(get=extend_schema(responses={200: OrderDetailOutput, **_refusals(403, 404)}))
class OrderDetailView(generics.RetrieveAPIView):
    """One order with its lines, timeline, payments, refunds, after-sales, shipments and the
    outbox deliveries of its events."""

    serializer_class = OrderDetailOutput
    permission_classes = [ModelPermissions]

    def get_queryset(self):
        return selectors.order_list(user=self.request.user)

    def get_object(self):
        return selectors.order_detail(user=self.request.user, order_id=self.kwargs["pk"])


class OrderActionView(APIView):
    permission_classes = [HoldsPermissions]
    required_permissions: tuple[str, ...] = ("orders.change_order",)

    def order_id(self, request: Request, pk: int) -> int:
        return selectors.order_in_scope(user=request.user, order_id=pk).pk


class OrderCancelView(OrderActionView):
    @extend_schema(
        request=CancelInput,
        responses={200: OrderDetailOutput, **_refusals(400, 403, 404, 409, 415)},
        description="Cancel an unpaid order and free its stock; a paid order is refused "
        "with `order_paid` (refund it instead). Cancelling twice changes nothing.",
    )
    def post(self, request: Request, pk: int) -> Response:
        payload = CancelInput(data=request.data)
        payload.is_valid(raise_exception=True)
        services.order_cancel(
            order=self.order_id(request, pk),
            cause=Cause.STAFF,
            actor=request.user,
            actor_kind=ActorKind.STAFF,
            note=payload.validated_data["note"],
        )
        return _order_answer(request, pk)


class OrderMarkReadyView(OrderActionView):
    @extend_schema(
        request=None,
        responses={200: OrderDetailOutput, **_refusals(403, 404, 409)},
        description="The goods of a paid pickup order wait at the store.",
    )
    def post(self, request: Request, pk: int) -> Response:
        services.order_mark_ready(order=self.order_id(request, pk), actor=request.user)
        return _order_answer(request, pk)


class OrderHandoverView(OrderActionView):
    @extend_schema(
        request=HandoverInput,
        responses={
            200: OrderDetailOutput,
            **_refusals(400, 403, 404, 415, not_found="`pickup_code_unknown` at this store."),
        },
        description="The shopper shows a pickup code at one of the user's stores: the goods "
        "leave and the order completes. An unknown code is a 404 `pickup_code_unknown`.",
    )
    def post(self, request: Request) -> Response:
        payload = HandoverInput(data=request.data, context={"request": request})
        payload.is_valid(raise_exception=True)
        order = services.pickup_handover(**payload.validated_data, actor=request.user)
        return _order_answer(request, order.pk)


class OrderShipView(OrderActionView):
    required_permissions = ("orders.add_shipment",)

    @extend_schema(
        request=ShipInput,
        responses={200: OrderDetailOutput, **_refusals(400, 403, 404, 409, 415)},
        description="A parcel of a paid delivery order left with a carrier. Without "
        "`line_keys` it holds every line not shipped yet. Posting the same tracking number "
        "again changes nothing.",
    )
    def post(self, request: Request, pk: int) -> Response:
        payload = ShipInput(data=request.data)
        payload.is_valid(raise_exception=True)
        services.shipment_create(
            order=self.order_id(request, pk), **payload.validated_data, actor=request.user
        )
        return _order_answer(request, pk)


class OrderAddressView(OrderActionView):
    @extend_schema(
        request=AddressInput,
        responses={200: OrderDetailOutput, **_refusals(400, 403, 404, 409, 415)},
        description="A new delivery address for a delivery order whose goods have not left "
        "(`not_a_delivery`, `address_locked` otherwise). Whoever fulfils it, a partner "
        "included, is told (`order.address_changed`). The same address again changes nothing.",
    )
    def post(self, request: Request, pk: int) -> Response:
        payload = AddressInput(data=request.data)
        payload.is_valid(raise_exception=True)
        services.order_address_change(
            order=self.order_id(request, pk),
            address=dict(payload.validated_data),
            actor=request.user,
            actor_kind=ActorKind.STAFF,
        )
        return _order_answer(request, pk)


class OrderMarkDeliveredView(OrderActionView):
    @extend_schema(
        request=None,
        responses={200: OrderDetailOutput, **_refusals(403, 404, 409)},
        description="A shipped order reached the shopper.",
    )
    def post(self, request: Request, pk: int) -> Response:
        services.order_mark_delivered(order=self.order_id(request, pk), actor=request.user)
        return _order_answer(request, pk)


class OrderRefundView(OrderActionView):
    required_permissions = ("orders.add_refund",)

    @extend_schema(
        request=RefundInput,
        responses={200: OrderDetailOutput, **_refusals(400, 403, 404, 409, 415)},
        description="Give back part or all of what was paid; the provider is asked after "
        "commit, so the new refund is `pending` in the answer.",
    )
    def post(self, request: Request, pk: int) -> Response:
        payload = RefundInput(data=request.data)
        payload.is_valid(raise_exception=True)
        payments.refund_create(
            order=self.order_id(request, pk), **payload.validated_data, actor=request.user
        )
        return _order_answer(request, pk)


class AfterSaleActionView(APIView):
    permission_classes = [HoldsPermissions]
    required_permissions = ("orders.change_aftersale",)

    def after_sale_id(self, request: Request, pk: int) -> int:
        return selectors.after_sale_in_scope(user=request.user, after_sale_id=pk).pk

    def answer(self, request: Request, after_sale) -> Response:
        return _order_answer(request, after_sale.order_id)


class AfterSaleApproveView(AfterSaleActionView):
    @extend_schema(
        request=DecisionInput,
        responses={
            200: OrderDetailOutput,
            **_refusals(400, 403, 404, 409, 415, not_found=NO_SUCH_REQUEST),
        },
        description="Refund only: the refund goes out now. Return and refund: wait for the "
        "goods. Answers with the request's order.",
    )
    def post(self, request: Request, pk: int) -> Response:
        payload = DecisionInput(data=request.data)
        payload.is_valid(raise_exception=True)
        after_sale = aftersales.after_sale_approve(
            after_sale=self.after_sale_id(request, pk),
            actor=request.user,
            note=payload.validated_data["note"],
        )
        return self.answer(request, after_sale)


class AfterSaleRejectView(AfterSaleActionView):
    @extend_schema(
        request=RejectionInput,
        responses={
            200: OrderDetailOutput,
            **_refusals(400, 403, 404, 409, 415, not_found=NO_SUCH_REQUEST),
        },
        description="Reject a request, saying why. Answers with the request's order.",
    )
    def post(self, request: Request, pk: int) -> Response:
        payload = RejectionInput(data=request.data)
        payload.is_valid(raise_exception=True)
        after_sale = aftersales.after_sale_reject(
            after_sale=self.after_sale_id(request, pk),
            actor=request.user,
            note=payload.validated_data["note"],
        )
        return self.answer(request, after_sale)


class AfterSaleReceiveReturnView(AfterSaleActionView):
    @extend_schema(
        request=None,
        responses={
            200: OrderDetailOutput,
            **_refusals(403, 404, 409, not_found=NO_SUCH_REQUEST),
        },
        description="The returned goods arrived at the order's store: back on the shelf, "
        "money back. Answers with the request's order.",
    )
    def post(self, request: Request, pk: int) -> Response:
        after_sale = aftersales.after_sale_receive_return(
            after_sale=self.after_sale_id(request, pk), actor=request.user
        )
        return self.answer(request, after_sale)
