"""The logged-in shopper's side of the shop API: cart, checkout, her orders and what she can do
with them, the member centre, coupons, the share link and the address book.

Each view validates, calls one service or selector and serializes. Every read is narrowed to
the shopper's member: another shopper's order or address is a 404 like an unknown one.
Refusals are ``BusinessError``s with a stable code (listed per endpoint in the schema).
"""

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from members.models import CouponTemplate
from members.selectors import member_points_entries
from members.services.coupons import coupon_claim
from members.services.identity import member_code_issue
from orders.aftersales import after_sale_request
from orders.models import ActorKind, Channel
from orders.reviews import order_review_create
from orders.services import order_cancel, order_confirm_receipt
from orders.transitions import Cause
from retail.api.pagination import CursorPagination
from retail.errors import BusinessError
from wechat import selectors
from wechat.api.auth import IsShopper, ShopperAPIView, ShopperTokenAuthentication
from wechat.api.serializers import AUTH_ERRORS, error_responses
from wechat.api.serializers_account import (
    AddressInput,
    AddressOutput,
    AfterSaleInput,
    CartLineInput,
    CartOutput,
    CartQueryInput,
    CartStoreInput,
    CheckoutInput,
    CheckoutPlaceInput,
    ClaimableTemplateOutput,
    CouponOutput,
    CouponQueryInput,
    MemberCodeOutput,
    MeOutput,
    OrderDetailOutput,
    OrderListOutput,
    OrderQueryInput,
    PointsEntryOutput,
    PreviewOutput,
    ReferrerInput,
    ReviewInput,
    ShareOutput,
)
from wechat.api.throttles import CheckoutIPThrottle, CheckoutShopperThrottle
from wechat.services import addresses as address_services
from wechat.services import cart as cart_services
from wechat.services.checkout import (
    CheckoutRequest,
    checkout_place_from_cart,
    checkout_preview,
)
from wechat.services.referrals import referral_apply

# The mini-program page a share link opens.
SHARE_PAGE = "pages/index/index"
# The H5 shop's entry, where ``?ref=`` lands.
SHARE_H5_PATH = "/shop/"

CART = "shop: cart"
CHECKOUT = "shop: checkout"
ORDERS = "shop: orders"
MEMBER = "shop: member"
COUPONS = "shop: coupons"
ADDRESSES = "shop: addresses"

VALIDATION = {400: ["validation_error"]}
NOT_FOUND = {404: ["not_found"]}
# A cursor the API never gave (retail.api.pagination).
CURSOR = {400: ["invalid_cursor"]}
CHECKOUT_REFUSALS = {
    400: [
        "validation_error",
        "invalid_fulfilment",
        "store_required",
        "address_required",
        "invalid_address",
        "invalid_points",
        "empty_basket",
        "not_in_cart",
        "too_many_lines",
        "invalid_quantity",
        "sku_not_found",
    ],
    404: ["store_not_found", "address_not_found", "coupon_not_found"],
    409: [
        "store_does_not_serve",
        "points_exceed_balance",
        "sku_unavailable",
        "coupon_not_yours",
        "coupon_used",
        "coupon_expired",
        "coupon_not_started",
        "coupon_wrong_channel",
        "coupon_wrong_store",
        "coupon_below_threshold",
        "coupon_no_eligible_items",
        "coupon_no_delivery_fee",
    ],
    422: ["address_out_of_range"],
}


class ShopperListView(generics.ListAPIView):
    """A cursor-paginated list of the shopper's own rows."""

    authentication_classes = [ShopperTokenAuthentication]
    permission_classes = [IsShopper]
    filter_backends: list = []

    @property
    def member(self):
        return self.request.user.member


class ShopPagination(CursorPagination):
    ordering = ("-created_at", "-pk")
    page_size = 20
    max_page_size = 50


# --- Cart ---------------------------------------------------------------------------------------


def _cart_answer(request: Request, fulfilment: str = "pickup") -> Response:
    summary = selectors.cart_summary(member=request.user.member, fulfilment=fulfilment)
    return Response(CartOutput(summary).data)


class CartView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_cart",
        tags=[CART],
        summary="The cart, with stock at the chosen store and a price preview",
        parameters=[CartQueryInput],
        responses={200: CartOutput, **error_responses(VALIDATION, AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        query = CartQueryInput(data=request.query_params)
        query.is_valid(raise_exception=True)
        return _cart_answer(request, query.validated_data["fulfilment"])

    @extend_schema(
        operation_id="shop_cart_clear",
        tags=[CART],
        summary="Empty the cart (the chosen store stays)",
        request=None,
        responses={200: CartOutput, **error_responses(AUTH_ERRORS)},
    )
    def delete(self, request: Request) -> Response:
        cart_services.cart_clear(member=request.user.member)
        return _cart_answer(request)


class CartStoreView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_cart_store",
        tags=[CART],
        summary="Choose the store to buy from",
        request=CartStoreInput,
        responses={
            200: CartOutput,
            **error_responses(VALIDATION, {404: ["store_not_found"]}, AUTH_ERRORS),
        },
    )
    def put(self, request: Request) -> Response:
        payload = CartStoreInput(data=request.data)
        payload.is_valid(raise_exception=True)
        cart_services.cart_store_set(
            member=request.user.member, store=payload.validated_data["store"]
        )
        return _cart_answer(request)


class CartLineView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_cart_line",
        tags=[CART],
        summary="Set the quantity of one SKU in the cart (0 removes it)",
        request=CartLineInput,
        responses={
            200: CartOutput,
            **error_responses(
                {400: ["validation_error", "invalid_quantity"]},
                {404: ["sku_not_found"], 409: ["sku_unavailable", "cart_full"]},
                AUTH_ERRORS,
            ),
        },
    )
    def put(self, request: Request, sku: int) -> Response:
        payload = CartLineInput(data=request.data)
        payload.is_valid(raise_exception=True)
        cart_services.cart_line_set(
            member=request.user.member, sku=sku, quantity=payload.validated_data["quantity"]
        )
        return _cart_answer(request)


# --- Checkout -----------------------------------------------------------------------------------


def _checkout_request(data: dict) -> CheckoutRequest:
    return CheckoutRequest(
        fulfilment=data["fulfilment"],
        store=data["store"],
        address_id=data["address_id"],
        coupon_code=data["coupon_code"],
        points=data["points"],
        skus=tuple(data["skus"]),
    )


class CheckoutPreviewView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_checkout_preview",
        tags=[CHECKOUT],
        summary="Price the cart for checkout; nothing is held",
        description="The full price breakdown (promotions, tier, coupon, points, delivery) "
        "and whether the store has every line. Refuses what placing would refuse, except "
        "stock, which `availability` shows line by line.",
        request=CheckoutInput,
        responses={200: PreviewOutput, **error_responses(CHECKOUT_REFUSALS, AUTH_ERRORS)},
    )
    def post(self, request: Request) -> Response:
        payload = CheckoutInput(data=request.data)
        payload.is_valid(raise_exception=True)
        preview = checkout_preview(
            member=request.user.member,
            asked=_checkout_request(payload.validated_data),
            channel=Channel.MINI_SHOP,
        )
        return Response(PreviewOutput(preview).data)


class CheckoutView(ShopperAPIView):
    throttle_classes = [CheckoutShopperThrottle, CheckoutIPThrottle]

    @extend_schema(
        operation_id="shop_checkout",
        tags=[CHECKOUT],
        summary="Place the order for the cart",
        description="Prices the cart, holds its stock, spends the coupon and points, and "
        "takes the ordered lines out of the cart, all or nothing: a refusal holds and spends "
        "nothing. The same `client_reference` again answers 200 with the first order. The "
        "order waits for payment for `ORDER_PAYMENT_MINUTES`.",
        request=CheckoutPlaceInput,
        responses={
            201: OrderDetailOutput,
            200: OrderDetailOutput,
            **error_responses(
                CHECKOUT_REFUSALS,
                {
                    400: ["invalid_client_reference"],
                    409: ["insufficient_stock", "client_reference_taken"],
                    429: ["throttled"],
                    503: ["checkout_busy"],
                },
                AUTH_ERRORS,
            ),
        },
    )
    def post(self, request: Request) -> Response:
        payload = CheckoutPlaceInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        order, created = checkout_place_from_cart(
            member=request.user.member,
            asked=_checkout_request(data),
            channel=data["channel"],
            client_reference=data["client_reference"],
            note=data["note"],
        )
        detail = selectors.shop_order_detail(member=request.user.member, number=order.number)
        return Response(
            OrderDetailOutput(detail).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


# --- Orders -------------------------------------------------------------------------------------


class OrderListView(ShopperListView):
    serializer_class = OrderListOutput
    pagination_class = ShopPagination

    @extend_schema(
        operation_id="shop_orders",
        tags=[ORDERS],
        summary="The shopper's orders, newest first (every channel)",
        parameters=[OrderQueryInput],
        responses={
            200: OrderListOutput(many=True),
            **error_responses(VALIDATION, CURSOR, AUTH_ERRORS),
        },
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = OrderQueryInput(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.shop_orders(
            member=self.member, statuses=sorted(query.validated_data.get("status", []))
        )


def _order_answer(request: Request, number: str, code: int = status.HTTP_200_OK) -> Response:
    order = selectors.shop_order_detail(member=request.user.member, number=number)
    return Response(OrderDetailOutput(order).data, status=code)


class OrderDetailView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_order",
        tags=[ORDERS],
        summary="One of the shopper's orders: lines, timeline, shipments, payments",
        responses={200: OrderDetailOutput, **error_responses(NOT_FOUND, AUTH_ERRORS)},
    )
    def get(self, request: Request, number: str) -> Response:
        return _order_answer(request, number)


class OrderActionView(ShopperAPIView):
    def order_id(self, request: Request, number: str) -> int:
        return selectors.shop_order_for_action(member=request.user.member, number=number).pk


class OrderCancelView(OrderActionView):
    @extend_schema(
        operation_id="shop_order_cancel",
        tags=[ORDERS],
        summary="Cancel an unpaid order",
        description="Frees its stock and gives back its coupon and points. A paid order is "
        "refused with `order_paid` (ask for after-sales instead); cancelling twice changes "
        "nothing.",
        request=None,
        responses={
            200: OrderDetailOutput,
            **error_responses(NOT_FOUND, {409: ["order_paid"]}, AUTH_ERRORS),
        },
    )
    def post(self, request: Request, number: str) -> Response:
        order_cancel(
            order=self.order_id(request, number),
            cause=Cause.SHOPPER,
            actor_kind=ActorKind.SHOPPER,
        )
        return _order_answer(request, number)


class OrderConfirmReceiptView(OrderActionView):
    @extend_schema(
        operation_id="shop_order_confirm_receipt",
        tags=[ORDERS],
        summary="Say a delivered order arrived: it completes",
        request=None,
        responses={
            200: OrderDetailOutput,
            **error_responses(NOT_FOUND, {409: ["illegal_transition"]}, AUTH_ERRORS),
        },
    )
    def post(self, request: Request, number: str) -> Response:
        order_confirm_receipt(order=self.order_id(request, number))
        return _order_answer(request, number)


class OrderAfterSaleView(OrderActionView):
    @extend_schema(
        operation_id="shop_order_after_sale",
        tags=[ORDERS],
        summary="Ask for money back (and send goods back) on lines of a paid order",
        request=AfterSaleInput,
        responses={
            201: OrderDetailOutput,
            **error_responses(
                {
                    400: [
                        "validation_error",
                        "reason_required",
                        "invalid_kind",
                        "invalid_lines",
                        "invalid_quantity",
                    ],
                    409: ["order_not_paid", "after_sale_open", "nothing_to_refund"],
                },
                NOT_FOUND,
                AUTH_ERRORS,
            ),
        },
    )
    def post(self, request: Request, number: str) -> Response:
        payload = AfterSaleInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        after_sale_request(
            order=self.order_id(request, number),
            kind=data["kind"],
            lines=[(line["line_key"], line["quantity"]) for line in data["lines"]],
            reason=data["reason"],
            actor_kind=ActorKind.SHOPPER,
        )
        return _order_answer(request, number, status.HTTP_201_CREATED)


class OrderReviewView(OrderActionView):
    @extend_schema(
        operation_id="shop_order_review",
        tags=[ORDERS],
        summary="Rate a completed order (once)",
        request=ReviewInput,
        responses={
            201: OrderDetailOutput,
            **error_responses(
                VALIDATION,
                NOT_FOUND,
                {409: ["review_not_allowed", "review_exists"]},
                AUTH_ERRORS,
            ),
        },
    )
    def post(self, request: Request, number: str) -> Response:
        payload = ReviewInput(data=request.data)
        payload.is_valid(raise_exception=True)
        order_review_create(
            order=self.order_id(request, number),
            member=request.user.member,
            rating=payload.validated_data["rating"],
            text=payload.validated_data["text"],
        )
        return _order_answer(request, number, status.HTTP_201_CREATED)


# --- Member centre ------------------------------------------------------------------------------


class MeView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_me",
        tags=[MEMBER],
        summary="The member centre: tier, points, masked mobile, referral code",
        responses={200: MeOutput, **error_responses(AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        member = request.user.member
        member.coupons_available = selectors.shop_coupon_count(member=member, now=timezone.now())
        return Response(MeOutput(member).data)


class PointsHistoryView(ShopperListView):
    serializer_class = PointsEntryOutput
    pagination_class = ShopPagination

    @extend_schema(
        operation_id="shop_points",
        tags=[MEMBER],
        summary="The points history, newest first",
        responses={200: PointsEntryOutput(many=True), **error_responses(CURSOR, AUTH_ERRORS)},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return member_points_entries(member=self.member)


class CouponListView(ShopperListView):
    serializer_class = CouponOutput
    pagination_class = None

    @extend_schema(
        operation_id="shop_coupons",
        tags=[MEMBER],
        summary="The shopper's coupons: available, used or expired",
        parameters=[CouponQueryInput],
        responses={200: CouponOutput(many=True), **error_responses(VALIDATION, AUTH_ERRORS)},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = CouponQueryInput(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.shop_coupons(
            member=self.member, state=query.validated_data["status"], now=timezone.now()
        )


class MemberCodeView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_member_code",
        tags=[MEMBER],
        summary="A fresh member code for the counter to scan",
        responses={200: MemberCodeOutput, **error_responses({410: ["member_erased"]}, AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        code = member_code_issue(member=request.user.member)
        return Response(
            MemberCodeOutput({"code": code, "expires_in": settings.MEMBER_CODE_TTL_SECONDS}).data
        )


class ShareView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_share",
        tags=[MEMBER],
        summary="The share link with the shopper's referral code",
        description="A friend who opens it and joins names the shopper as her referrer; the "
        "shopper earns points on the friend's first paid order.",
        responses={
            200: ShareOutput,
            **error_responses({404: ["referral_code_missing"]}, AUTH_ERRORS),
        },
    )
    def get(self, request: Request) -> Response:
        code = request.user.member.referral_code
        if not code:
            raise BusinessError(
                "referral_code_missing", _("This member has no referral code."), status_code=404
            )
        share = {
            "referral_code": code,
            "url": request.build_absolute_uri(f"{SHARE_H5_PATH}?ref={code}"),
            "path": f"{SHARE_PAGE}?ref={code}",
        }
        return Response(ShareOutput(share).data)


class ReferrerView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_referrer",
        tags=[MEMBER],
        summary="Name the member whose share link brought the shopper (new members, once)",
        request=ReferrerInput,
        responses={
            200: MeOutput,
            **error_responses(
                VALIDATION,
                {
                    404: ["referral_code_unknown"],
                    409: [
                        "referral_self",
                        "referrer_already_set",
                        "referral_circular",
                        "referral_too_late",
                    ],
                },
                AUTH_ERRORS,
            ),
        },
    )
    def post(self, request: Request) -> Response:
        payload = ReferrerInput(data=request.data)
        payload.is_valid(raise_exception=True)
        member = request.user.member
        referral_apply(member=member, code=payload.validated_data["code"])
        member.coupons_available = selectors.shop_coupon_count(member=member, now=timezone.now())
        return Response(MeOutput(member).data)


# --- Coupons ------------------------------------------------------------------------------------


class ClaimableCouponsView(ShopperListView):
    serializer_class = ClaimableTemplateOutput
    pagination_class = None

    @extend_schema(
        operation_id="shop_coupons_claimable",
        tags=[COUPONS],
        summary="Coupons the shopper can claim now",
        responses={200: ClaimableTemplateOutput(many=True), **error_responses(AUTH_ERRORS)},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return selectors.shop_claimable_templates(member=self.member, now=timezone.now())


class CouponClaimView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_coupon_claim",
        tags=[COUPONS],
        summary="Claim one coupon of a template",
        request=None,
        responses={
            201: CouponOutput,
            **error_responses(
                NOT_FOUND,
                {
                    409: [
                        "coupon_not_claimable",
                        "coupon_not_started",
                        "coupon_expired",
                        "coupon_limit_reached",
                        "coupon_sold_out",
                    ]
                },
                AUTH_ERRORS,
            ),
        },
    )
    def post(self, request: Request, template: int) -> Response:
        if not CouponTemplate.objects.filter(pk=template).exists():
            raise BusinessError("not_found", _("No such coupon."), status_code=404)
        coupon = coupon_claim(member=request.user.member, template=template)
        return Response(CouponOutput(coupon).data, status=status.HTTP_201_CREATED)


# --- Addresses ----------------------------------------------------------------------------------


class AddressListView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_addresses",
        tags=[ADDRESSES],
        summary="The address book, the default first",
        responses={200: AddressOutput(many=True), **error_responses(AUTH_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        addresses = selectors.shop_addresses(member=request.user.member)
        return Response(AddressOutput(addresses, many=True).data)

    @extend_schema(
        operation_id="shop_address_create",
        tags=[ADDRESSES],
        summary="Add an address (the first one is the default)",
        request=AddressInput,
        responses={
            201: AddressOutput,
            **error_responses(VALIDATION, {409: ["address_limit"]}, AUTH_ERRORS),
        },
    )
    def post(self, request: Request) -> Response:
        payload = AddressInput(data=request.data)
        payload.is_valid(raise_exception=True)
        address = address_services.address_create(
            member=request.user.member, **payload.validated_data
        )
        return Response(AddressOutput(address).data, status=status.HTTP_201_CREATED)


class AddressDetailView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_address",
        tags=[ADDRESSES],
        summary="One address",
        responses={200: AddressOutput, **error_responses(NOT_FOUND, AUTH_ERRORS)},
    )
    def get(self, request: Request, pk: int) -> Response:
        address = selectors.shop_address(member=request.user.member, address_id=pk)
        return Response(AddressOutput(address).data)

    @extend_schema(
        operation_id="shop_address_update",
        tags=[ADDRESSES],
        summary="Change an address; `is_default: true` makes it the default",
        request=AddressInput(partial=True),
        responses={
            200: AddressOutput,
            **error_responses(
                {400: ["validation_error", "default_required"]},
                {404: ["address_not_found"]},
                AUTH_ERRORS,
            ),
        },
    )
    def patch(self, request: Request, pk: int) -> Response:
        payload = AddressInput(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        address = address_services.address_update(
            member=request.user.member, address_id=pk, **payload.validated_data
        )
        return Response(AddressOutput(address).data)

    @extend_schema(
        operation_id="shop_address_delete",
        tags=[ADDRESSES],
        summary="Remove an address (another becomes the default)",
        responses={204: None, **error_responses({404: ["address_not_found"]}, AUTH_ERRORS)},
    )
    def delete(self, request: Request, pk: int) -> Response:
        address_services.address_delete(member=request.user.member, address_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
