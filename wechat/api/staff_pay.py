"""Staff API: the counter takes a shopper's WeChat payment code for a counter sale, under
``/api/staff/v1/orders/`` (mounted from ``retail/urls.py``).

The clerk needs ``orders.change_order`` in the order's own store (a clerk here who manages
another store acts here as a clerk; another store's order is a 404). The request waits while
the shopper confirms on her phone, up to ``WECHAT_PAY_CODEPAY_DEADLINE_SECONDS``.
"""

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import selectors
from orders.api.serializers import OrderDetailOutput
from orders.api.views import HoldsPermissions
from retail.access import has_store_perm
from retail.api.serializers import ErrorOutput
from wechat.pay.services import counter_pay_by_code

PERMISSION = "orders.change_order"

REFUSALS = {
    400: "Invalid input: `validation_error` (an auth code is 18 digits starting 10 to 15).",
    403: "Not signed in, or no `orders.change_order` in the order's store.",
    404: "No such order among the user's stores.",
    409: "Refused: `codepay_timeout`, `codepay_refused`, `codepay_failed`, "
    "`payment_in_progress`, `not_a_counter_sale`, `order_not_payable`, `order_expired`.",
    415: "`unsupported_media_type`: a body that is not JSON, a form or multipart.",
    503: "`wechat_pay_unavailable`: WeChat Pay could not be reached or did not answer.",
}


class PayByCodeInput(serializers.Serializer):
    # WeChat's payment codes: 18 digits starting 10 to 15.
    auth_code = serializers.RegexField(r"^1[0-5]\d{16}$", max_length=18)


class OrderPayByCodeView(APIView):
    permission_classes = [HoldsPermissions]
    required_permissions = (PERMISSION,)

    @extend_schema(
        request=PayByCodeInput,
        responses={
            200: OrderDetailOutput,
            **{
                code: OpenApiResponse(ErrorOutput, description=text)
                for code, text in REFUSALS.items()
            },
        },
        description="Charge the shopper's WeChat payment code for a counter sale. Paid at "
        "once, or once she confirms on her phone: the sale completes and its stock leaves. "
        "Not confirmed in time: `codepay_timeout` (the trade is reversed, the sale stays open, "
        "no stock moves). Also `codepay_refused` (WeChat refused the code, `wechat_code` "
        "says why), `codepay_failed`, `payment_in_progress` (another scan of this sale is "
        "running), `not_a_counter_sale`, `order_not_payable`; 503 `wechat_pay_unavailable`.",
    )
    def post(self, request: Request, pk: int) -> Response:
        order = selectors.order_in_scope(user=request.user, order_id=pk)
        if not has_store_perm(request.user, PERMISSION, order.store_id):
            raise PermissionDenied
        payload = PayByCodeInput(data=request.data)
        payload.is_valid(raise_exception=True)
        counter_pay_by_code(
            order=order.pk, auth_code=payload.validated_data["auth_code"], actor=request.user
        )
        detail = selectors.order_detail(user=request.user, order_id=order.pk)
        return Response(OrderDetailOutput(detail).data)


urlpatterns = [
    path("<int:pk>/pay-by-code/", OrderPayByCodeView.as_view(), name="order-pay-by-code"),
]
