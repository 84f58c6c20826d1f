"""The control endpoints both WeChat Pay services of the sandbox (``pay_v2``, ``pay_v3``) offer
in the same shape, so tests and people drive either version alike: send notifies on request,
settle a refund, hand out a payment code. Each service supplies ``send_notify``,
``settle_refund`` and ``mint_payment_code`` in its own protocol."""

from wechat.sandbox.http import BadRequest, Request, Response, json_response


class PayControls:
    def notify_control(self, request: Request) -> Response:
        body = request.control_json()
        if body.get("out_trade_no") is None and body.get("out_refund_no") is None:
            raise BadRequest("out_trade_no or out_refund_no is required")
        notifies = self.send_notify(body)
        if body.get("deliver", True) is False:
            return json_response({"requests": notifies})
        return json_response({"notifies": notifies, "scheduled": bool(body.get("delay_seconds"))})

    def refund_result_control(self, request: Request) -> Response:
        body = request.control_json()
        notify = body.get("notify", True)
        if not isinstance(notify, bool):
            raise BadRequest("notify must be a boolean")
        return json_response(
            self.settle_refund(body.get("out_refund_no"), body.get("status"), notify=notify)
        )

    def payment_code_control(self, request: Request) -> Response:
        return json_response({"auth_code": self.mint_payment_code(request.control_json())}, 201)
