"""The shopper pays an order with WeChat Pay: the parameters of ``wx.requestPayment``.

The order is paid when WeChat's notify (or reconciliation) confirms it, not when this answers:
the mini-program then reads the order again.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from wechat import selectors
from wechat.api.auth import ShopperAPIView
from wechat.api.serializers import AUTH_ERRORS, error_responses
from wechat.pay.services import shop_order_pay

PAY_REFUSALS = {
    404: ["not_found"],
    409: ["order_not_payable", "order_expired", "order_already_paid", "wechat_openid_missing"],
    502: ["wechat_pay_refused"],
    503: ["wechat_pay_unavailable"],
}


class OrderPayOutput(serializers.Serializer):
    order = serializers.CharField(source="payment.order.number")
    provider = serializers.CharField(source="payment.provider")
    out_trade_no = serializers.CharField(source="payment.out_trade_no")
    amount_fen = serializers.IntegerField(source="payment.amount_fen")
    request_payment = serializers.DictField(
        source="parameters",
        child=serializers.CharField(),
        help_text="Pass as is to `wx.requestPayment`: appId, timeStamp, nonceStr, package, "
        "signType, paySign.",
    )


class OrderPayView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_order_pay",
        tags=["shop: orders"],
        summary="Pay an unpaid order with WeChat Pay",
        description="Creates the WeChat order once (asking again reuses it, so the shopper can "
        "leave the payment sheet and come back) and answers the signed parameters of "
        "`wx.requestPayment`. The order becomes `paid` when WeChat tells the platform; read "
        "it again after the payment sheet closes.",
        request=None,
        responses={200: OrderPayOutput, **error_responses(PAY_REFUSALS, AUTH_ERRORS)},
    )
    def post(self, request: Request, number: str) -> Response:
        order = selectors.shop_order_for_action(member=request.user.member, number=number)
        started = shop_order_pay(order=order.pk, client_ip=BaseThrottle().get_ident(request))
        return Response(OrderPayOutput(started).data)
