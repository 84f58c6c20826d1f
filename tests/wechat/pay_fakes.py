"""An in-memory WeChat Pay behind ``wechat.pay.base.Gateway``, for the services' unit tests
(the end-to-end tests use the real gateways against the sandbox over HTTP).

It keeps trades and refunds as WeChat would, records every call, and can be told to fail a
call (``fail``), to answer a payment code with USERPAYING and turn paid after some queries
(``codepay_plan``), and to accept notifies: a notify is JSON ``{"kind", "trade" | "refund",
"id"}`` signed by the header ``X-Fake-Signature: good`` (else ``bad_signature``), with
``X-Fake-Stale`` meaning a stale timestamp.
"""

import json
from dataclasses import dataclass, field

from wechat.pay import base
from wechat.pay.base import (
    Notice,
    NotifyAnswer,
    NotifyRejected,
    RefundState,
    Trade,
    TradeState,
    WeChatPayError,
)

APP_ID = "wx5e1dbd0c2a9f4b71"  # the sandbox's mini-program
MCH_ID = "1900000109"
OPENID = "oSbx5t1_LinXiaomei00000000001"


@dataclass
class CodepayPlan:
    """How the next payment code answers: SUCCESS at once, or USERPAYING and then paid after
    ``paid_after_queries`` queries (None: never paid), or a WeChat error."""

    answer: str = TradeState.SUCCESS
    paid_after_queries: int | None = 0
    error: WeChatPayError | None = None


@dataclass
class FakeWeChatPay:
    version: str = "v3"
    trades: dict[str, dict] = field(default_factory=dict)
    refunds: dict[str, dict] = field(default_factory=dict)
    calls: list[tuple[str, dict]] = field(default_factory=list)
    failures: dict[str, list[WeChatPayError]] = field(default_factory=dict)
    refund_answer: str = "PROCESSING"
    codepay_plan: CodepayPlan = field(default_factory=CodepayPlan)
    _ids: int = 0

    # --- test knobs ---------------------------------------------------------------------------

    def fail(self, method: str, code: str, *, retryable: bool, times: int = 1) -> None:
        error = WeChatPayError(code, f"{code} (fake)", retryable=retryable)
        self.failures.setdefault(method, []).extend([error] * times)

    def called(self, method: str) -> list[dict]:
        return [kwargs for name, kwargs in self.calls if name == method]

    def pay(self, out_trade_no: str, *, amount_fen: int | None = None) -> Trade:
        """The shopper pays in WeChat: the trade is SUCCESS."""
        trade = self.trades[out_trade_no]
        self._ids += 1
        trade.update(
            state=TradeState.SUCCESS,
            transaction_id=f"4200000{self._ids:013d}",
            paid_fen=trade["amount_fen"] if amount_fen is None else amount_fen,
        )
        return self.trade(out_trade_no)

    def trade(self, out_trade_no: str, **changes) -> Trade:
        trade = self.trades[out_trade_no]
        fields = {
            "out_trade_no": out_trade_no,
            "state": trade["state"],
            "transaction_id": trade.get("transaction_id", ""),
            "amount_fen": trade.get("paid_fen", trade["amount_fen"]),
            "app_id": APP_ID,
            "mch_id": MCH_ID,
            "payer_openid": trade.get("openid", ""),
            "raw": {"trade_state": trade["state"], "out_trade_no": out_trade_no},
        }
        fields.update(changes)
        return Trade(**fields)

    def _call(self, method: str, **kwargs) -> None:
        self.calls.append((method, kwargs))
        waiting = self.failures.get(method)
        if waiting:
            raise waiting.pop(0)

    def _new_trade(self, out_trade_no: str, amount_fen: int, **extra) -> dict:
        trade = {"state": TradeState.NOTPAY, "amount_fen": amount_fen, "queries": 0, **extra}
        self.trades[out_trade_no] = trade
        return trade

    # --- the Gateway protocol -----------------------------------------------------------------

    def jsapi_prepay(self, *, out_trade_no, amount_fen, description, openid, client_ip) -> str:
        self._call(
            "jsapi_prepay",
            out_trade_no=out_trade_no,
            amount_fen=amount_fen,
            description=description,
            openid=openid,
            client_ip=client_ip,
        )
        if out_trade_no in self.trades:
            trade = self.trades[out_trade_no]
            if trade["state"] == TradeState.SUCCESS:
                raise WeChatPayError("ORDERPAID", "该订单已支付", retryable=False)
            if trade["state"] == TradeState.CLOSED:
                raise WeChatPayError("ORDER_CLOSED", "订单已关闭", retryable=False)
            return trade["prepay_id"]
        self._ids += 1
        trade = self._new_trade(out_trade_no, amount_fen, openid=openid)
        trade["prepay_id"] = f"wx{self._ids:030d}"
        return trade["prepay_id"]

    def jsapi_parameters(self, *, prepay_id: str) -> dict:
        return {
            "appId": APP_ID,
            "timeStamp": "1795838400",
            "nonceStr": "fake-nonce",
            "package": f"prepay_id={prepay_id}",
            "signType": "RSA",
            "paySign": f"signed-{prepay_id}",
        }

    def query(self, *, out_trade_no: str) -> Trade:
        self._call("query", out_trade_no=out_trade_no)
        trade = self.trades.get(out_trade_no)
        if trade is None:
            raise WeChatPayError("ORDER_NOT_EXIST", "订单不存在", retryable=False)
        trade["queries"] += 1
        plan = trade.get("paid_after_queries")
        if (
            trade["state"] == TradeState.USERPAYING
            and plan is not None
            and trade["queries"] >= plan
        ):
            self.pay(out_trade_no)
        return self.trade(out_trade_no)

    def close(self, *, out_trade_no: str) -> None:
        self._call("close", out_trade_no=out_trade_no)
        trade = self.trades.get(out_trade_no)
        if trade is None:
            raise WeChatPayError("ORDER_NOT_EXIST", "订单不存在", retryable=False)
        if trade["state"] == TradeState.SUCCESS:
            raise WeChatPayError("ORDERPAID", "该订单已支付", retryable=False)
        trade["state"] = TradeState.CLOSED

    def refund(self, *, out_trade_no, out_refund_no, refund_fen, total_fen, reason) -> RefundState:
        self._call(
            "refund",
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            refund_fen=refund_fen,
            total_fen=total_fen,
            reason=reason,
        )
        refund = self.refunds.setdefault(
            out_refund_no,
            {
                "state": self.refund_answer,
                "amount_fen": refund_fen,
                "refund_id": f"5030{len(self.refunds):010d}",
            },
        )
        return self.refund_state(out_refund_no, state=refund["state"])

    def refund_state(self, number: str, **changes) -> RefundState:
        refund = self.refunds[number]
        fields = {
            "out_refund_no": number,
            "state": refund["state"],
            "refund_id": refund["refund_id"],
            "amount_fen": refund["amount_fen"],
            "raw": {"refund_status": refund["state"]},
        }
        fields.update(changes)
        return RefundState(**fields)

    def codepay(self, *, out_trade_no, amount_fen, auth_code, description, client_ip) -> Trade:
        self._call(
            "codepay",
            out_trade_no=out_trade_no,
            amount_fen=amount_fen,
            auth_code=auth_code,
            description=description,
            client_ip=client_ip,
        )
        plan = self.codepay_plan
        if plan.error is not None:
            raise plan.error
        trade = self._new_trade(out_trade_no, amount_fen, state=TradeState.USERPAYING)
        if plan.answer == TradeState.SUCCESS:
            return self.pay(out_trade_no)
        trade["paid_after_queries"] = plan.paid_after_queries
        if plan.answer == "raise_userpaying":
            raise WeChatPayError("USERPAYING", "需要用户输入支付密码", retryable=False)
        trade["state"] = plan.answer
        return self.trade(out_trade_no)

    def reverse(self, *, out_trade_no: str) -> None:
        self._call("reverse", out_trade_no=out_trade_no)
        trade = self.trades.get(out_trade_no)
        if trade is None:
            raise WeChatPayError("ORDERNOTEXIST", "订单不存在", retryable=False)
        trade["state"] = TradeState.REVOKED

    def parse_notify(self, *, body: bytes, headers) -> Notice:
        self.calls.append(("parse_notify", {"body": body}))
        if headers.get("X-Fake-Signature") != "good":
            raise NotifyRejected("bad_signature", "the signature does not verify")
        if headers.get("X-Fake-Stale"):
            raise NotifyRejected("stale_timestamp", "older than 5 minutes")
        message = json.loads(body)
        if message["kind"] == "payment":
            return Notice(kind="payment", trade=Trade(**message["trade"]), notify_id=message["id"])
        return Notice(
            kind="refund", refund=RefundState(**message["refund"]), notify_id=message["id"]
        )

    def notify_success(self) -> NotifyAnswer:
        return NotifyAnswer(200, "application/json", b'{"code": "SUCCESS"}')

    def notify_failure(self, message: str) -> NotifyAnswer:
        body = json.dumps({"code": "FAIL", "message": message}).encode()
        return NotifyAnswer(500, "application/json", body)


def notify_body(
    notice_id: str, *, trade: Trade | None = None, refund: RefundState | None = None
) -> bytes:
    """A notify as the fake gateway reads it."""
    if trade is not None:
        fields = {k: getattr(trade, k) for k in trade.__dataclass_fields__}
        return json.dumps({"kind": "payment", "trade": fields, "id": notice_id}).encode()
    fields = {k: getattr(refund, k) for k in refund.__dataclass_fields__}
    return json.dumps({"kind": "refund", "refund": fields, "id": notice_id}).encode()


_current: list[FakeWeChatPay] = []


def fake_gateway() -> FakeWeChatPay:
    """What ``base.gateway()`` builds while ``fake_pay`` is in use."""
    return _current[-1]


def fake_pay_installed(monkeypatch, settings):
    """Behind a test module's ``fake_pay`` fixture: ``base.gateway()`` builds the fake, for
    both versions, with the sandbox's app id and a merchant id."""
    fake = FakeWeChatPay()
    _current.append(fake)
    for version in ("v3", "v2"):
        monkeypatch.setitem(base.GATEWAYS, version, "tests.wechat.pay_fakes.fake_gateway")
    settings.WECHAT_APP_ID = APP_ID
    settings.WECHAT_PAY_MCH_ID = MCH_ID
    settings.WECHAT_PAY_VERSION = "v3"
    yield fake
    _current.remove(fake)
