import pytest

from inventory.services import StockLine, stock_receive
from orders.models import Channel, Fulfilment
from orders.pricing import BasketLine
from orders.services import checkout_place
from tests import factories

ADDRESS = {
    "name": "王小明",
    "mobile": "13912345678",
    "province": "上海市",
    "city": "上海市",
    "district": "静安区",
    "detail": "愚园路168号5楼",
}


@pytest.fixture
def shop(store_a):
    """Store A sells online too: pickup, ship-from-store and the counter."""
    store_a.offers_ship_from_store = True
    store_a.save(update_fields=["offers_ship_from_store"])
    return store_a


@pytest.fixture
def member(db):
    return factories.MemberFactory(mobile="13900000001", name="李娜")


@pytest.fixture
def water(shop):
    """550ml water at 2.00 yuan, 10 on hand at store A."""
    sku = factories.SKUFactory(price_fen=200, product__name="矿泉水")
    stock_receive(store=shop, lines=[StockLine(sku, 10)], idempotency_key="seed-water")
    return sku


@pytest.fixture
def milk(shop):
    """Milk at 12.50 yuan, 4 on hand at store A."""
    sku = factories.SKUFactory(price_fen=1250, product__name="鲜牛奶")
    stock_receive(store=shop, lines=[StockLine(sku, 4)], idempotency_key="seed-milk")
    return sku


@pytest.fixture
def place(shop, member):
    """Place an order at store A; defaults to a mini-shop pickup order."""
    counter = iter(range(1, 10_000))

    def _place(*lines, **kwargs):
        kwargs.setdefault("channel", Channel.MINI_SHOP)
        kwargs.setdefault("fulfilment", Fulfilment.PICKUP)
        kwargs.setdefault("store", shop)
        kwargs.setdefault("member", None if kwargs["channel"] == Channel.COUNTER else member)
        kwargs.setdefault("client_reference", f"ref-{next(counter)}")
        if kwargs["fulfilment"] == Fulfilment.DELIVERY:
            kwargs.setdefault("address", ADDRESS)
        basket = [BasketLine(sku.pk, quantity) for sku, quantity in lines]
        return checkout_place(lines=basket, **kwargs)

    return _place


class FakePay:
    """A provider that confirms later (like WeChat Pay) and answers refunds as told."""

    name = "fakepay"
    confirms_immediately = False

    def __init__(self) -> None:
        self.refund_answer = "succeeded"
        self.refunds_asked: list[str] = []

    def start(self, payment):
        from orders.payments import StartResult

        return StartResult(
            client_parameters={"pay": payment.out_trade_no},
            provider_data={"prepay_id": f"prepay-{payment.out_trade_no}"},
        )

    def refund(self, refund):
        from orders.payments import RefundResult

        self.refunds_asked.append(refund.out_refund_no)
        if self.refund_answer == "failed":
            return RefundResult(status="failed", error="NOTENOUGH")
        return RefundResult(
            status=self.refund_answer, provider_refund_id=f"wx-{refund.out_refund_no}"
        )


@pytest.fixture
def fakepay():
    from orders import payments

    provider = FakePay()
    payments.provider_register(provider)
    yield provider
    payments._providers.pop(provider.name)


@pytest.fixture
def after_commit(django_capture_on_commit_callbacks):
    """Run what the services queue for after commit (a refund going to its provider) as a
    real commit would; tests run inside a transaction that never commits."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def pay(fakepay, after_commit):
    """Pay an order in full through FakePay, as its notify would."""
    from orders.payments import payment_confirm, payment_start

    def _pay(order, *, transaction_id=None):
        payment, _start = payment_start(order=order, provider="fakepay")
        with after_commit():
            return payment_confirm(
                provider="fakepay",
                out_trade_no=payment.out_trade_no,
                transaction_id=transaction_id or f"tx-{payment.out_trade_no}",
                amount_fen=payment.amount_fen,
                payload={"trade_state": "SUCCESS"},
            )

    return _pay
