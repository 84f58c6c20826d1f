"""The counter's WeChat payment code (micropay / v3 codepay) through the staff API, against an
in-memory WeChat (``pay_fakes``): paid at once, paid after the shopper confirms (USERPAYING
polled), never paid (reversed, the sale stays open, no stock moves), refused codes, an
earlier scan whose answer was lost, and who may scan."""

import pytest
from django.core.cache import cache

from inventory.models import StockItem, StockMovement
from orders.models import Channel, Fulfilment, Order, OrderEvent, Payment
from orders.pricing import BasketLine
from orders.services import checkout_place
from tests import factories
from tests.wechat.pay_fakes import CodepayPlan, fake_pay_installed
from wechat.pay.base import WeChatPayError

pytestmark = pytest.mark.django_db

S = Order.Status
CODE = "134567890123456789"


class TillClock:
    """The services' clock: sleeping moves it on at once, so a 15 s wait takes no time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    clock = TillClock()
    monkeypatch.setattr("wechat.pay.services.time", clock)
    return clock


@pytest.fixture
def fake_pay(monkeypatch, settings, clock):
    # The defaults: wait 15 s for the shopper, asking every 3 s.
    assert (
        settings.WECHAT_PAY_CODEPAY_DEADLINE_SECONDS,
        settings.WECHAT_PAY_CODEPAY_POLL_SECONDS,
    ) == (15, 3)
    yield from fake_pay_installed(monkeypatch, settings)


@pytest.fixture
def water(stocked):
    return stocked(name="矿泉水", price_fen=200, on_hand=50)


@pytest.fixture
def sale(shop_store, water, clerk_a):
    """Two waters rung up at store A's till: 4.00 yuan, waiting for payment."""
    return checkout_place(
        channel=Channel.COUNTER,
        store=shop_store,
        fulfilment=Fulfilment.COUNTER,
        lines=[BasketLine(water.pk, 2)],
        client_reference="till-1",
        actor=clerk_a,
    )


@pytest.fixture
def till(client, clerk_a):
    client.force_login(clerk_a)

    def scan(order, code=CODE):
        return client.post(
            f"/api/staff/v1/orders/{order.pk}/pay-by-code/",
            {"auth_code": code},
            content_type="application/json",
            HTTP_ACCEPT_LANGUAGE="en",
        )

    return scan


def stock(water, store):
    item = StockItem.objects.get(sku=water, store=store)
    return item.on_hand, item.reserved


def test_a_code_paid_at_once_completes_the_sale_and_the_goods_leave(
    fake_pay, till, sale, water, shop_store, clerk_a
):
    response = till(sale)

    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    payment = Payment.objects.get()
    assert (payment.provider, payment.status, payment.amount_fen) == (
        "wechat_pay",
        "succeeded",
        400,
    )
    assert payment.transaction_id == fake_pay.trades[payment.out_trade_no]["transaction_id"]
    assert fake_pay.called("codepay") == [
        {
            "out_trade_no": payment.out_trade_no,
            "amount_fen": 400,
            "auth_code": CODE,
            "description": f"静安寺店 {sale.number}",
            "client_ip": "127.0.0.1",
        }
    ]
    assert [name for name, _ in fake_pay.calls] == ["codepay"]
    sale.refresh_from_db()
    assert (sale.status, sale.paid_fen) == (S.COMPLETED, 400)
    assert stock(water, shop_store) == (48, 0)
    movement = StockMovement.objects.get(reason="counter_sale")
    assert (movement.quantity, movement.actor, movement.reference) == (-2, clerk_a, sale.number)


@pytest.mark.parametrize("answer", ["USERPAYING", "raise_userpaying"])
def test_a_code_paid_after_the_shopper_confirms_is_polled_then_completes(
    fake_pay, till, sale, water, shop_store, clock, answer
):
    # The shopper must type her password: WeChat says USERPAYING, paid on the third query
    fake_pay.codepay_plan = CodepayPlan(answer=answer, paid_after_queries=3)

    response = till(sale)

    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    assert [name for name, _ in fake_pay.calls] == ["codepay", "query", "query", "query"]
    assert clock.sleeps == [3, 3, 3]
    assert Payment.objects.get().status == "succeeded"
    assert stock(water, shop_store) == (48, 0)


def test_a_code_never_paid_is_reversed_and_the_sale_stays_open(
    fake_pay, till, sale, water, shop_store, clock
):
    fake_pay.codepay_plan = CodepayPlan(answer="USERPAYING", paid_after_queries=None)

    response = till(sale)

    assert response.status_code == 409
    payment = Payment.objects.get()
    assert response.json()["error"] == {
        "code": "codepay_timeout",
        "message": "The shopper did not confirm the payment in time; it was cancelled.",
        "fields": {"out_trade_no": [payment.out_trade_no]},
    }
    # Asked at 3, 6, 9, 12 and 15 s, then reversed
    assert [name for name, _ in fake_pay.calls] == ["codepay", *["query"] * 5, "reverse"]
    assert clock.sleeps == [3] * 5
    assert fake_pay.trades[payment.out_trade_no]["state"] == "REVOKED"
    assert payment.status == "closed"
    sale.refresh_from_db()
    assert (sale.status, sale.paid_fen) == (S.PENDING_PAYMENT, 0)
    assert stock(water, shop_store) == (50, 2)
    assert StockMovement.objects.filter(reason="counter_sale").count() == 0
    assert OrderEvent.objects.get(kind="payment.closed").note == "not paid in time: reversed"


def test_after_a_timeout_the_next_scan_is_a_new_trade(fake_pay, till, sale):
    fake_pay.codepay_plan = CodepayPlan(answer="USERPAYING", paid_after_queries=None)
    till(sale)
    fake_pay.codepay_plan = CodepayPlan()

    response = till(sale)

    assert response.status_code == 200
    first, second = Payment.objects.order_by("pk")
    assert (first.status, second.status) == ("closed", "succeeded")
    assert first.out_trade_no != second.out_trade_no


def test_a_refused_code_closes_the_payment_and_changes_nothing_else(
    fake_pay, till, sale, water, shop_store
):
    fake_pay.codepay_plan = CodepayPlan(
        error=WeChatPayError("AUTHCODEEXPIRE", "二维码已过期，请刷新再试", retryable=False)
    )

    response = till(sale)

    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "codepay_refused",
        "message": "WeChat Pay refused the payment code: 二维码已过期，请刷新再试",
        "fields": {"wechat_code": ["AUTHCODEEXPIRE"]},
    }
    assert [name for name, _ in fake_pay.calls] == ["codepay"]
    assert Payment.objects.get().status == "closed"
    sale.refresh_from_db()
    assert sale.status == S.PENDING_PAYMENT
    assert stock(water, shop_store) == (50, 2)


def test_a_trade_wechat_failed_while_polling_is_closed_without_reversing(
    fake_pay, till, sale, water, shop_store
):
    fake_pay.codepay_plan = CodepayPlan(answer="USERPAYING", paid_after_queries=None)
    real_query = fake_pay.query

    def cancelled_on_the_phone(*, out_trade_no):
        fake_pay.trades[out_trade_no]["state"] = "PAYERROR"
        return real_query(out_trade_no=out_trade_no)

    fake_pay.query = cancelled_on_the_phone

    response = till(sale)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "codepay_failed"
    assert [name for name, _ in fake_pay.calls] == ["codepay", "query"]
    assert Payment.objects.get().status == "closed"
    assert stock(water, shop_store) == (50, 2)


def test_a_lost_answer_is_learnt_by_the_next_scan_without_charging_twice(
    fake_pay, till, sale, water, shop_store
):
    # Given a scan whose answer never reached the till (WeChat timed out), though she paid
    fake_pay.codepay_plan = CodepayPlan(
        error=WeChatPayError("SYSTEMERROR", "timed out", retryable=True)
    )
    fake_pay.fail("query", "SYSTEMERROR", retryable=True, times=100)
    fake_pay.fail("reverse", "SYSTEMERROR", retryable=True, times=3)
    lost = till(sale)
    earlier = Payment.objects.get()
    fake_pay.failures.clear()
    fake_pay._new_trade(earlier.out_trade_no, 400)
    fake_pay.pay(earlier.out_trade_no)
    calls_before = len(fake_pay.calls)

    # When the clerk scans again
    response = till(sale)

    # Then the first payment completes the sale; the code is not charged again
    assert lost.status_code == 503
    assert lost.json()["error"]["code"] == "wechat_pay_unavailable"
    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    assert [name for name, _ in fake_pay.calls[calls_before:]] == ["query"]
    assert list(Payment.objects.values_list("out_trade_no", "status")) == [
        (earlier.out_trade_no, "succeeded")
    ]
    assert stock(water, shop_store) == (48, 0)


def test_an_earlier_unpaid_scan_is_reversed_before_a_new_charge(fake_pay, till, sale):
    fake_pay.codepay_plan = CodepayPlan(
        error=WeChatPayError("SYSTEMERROR", "timed out", retryable=True)
    )
    fake_pay.fail("query", "SYSTEMERROR", retryable=True, times=100)
    fake_pay.fail("reverse", "SYSTEMERROR", retryable=True, times=3)
    till(sale)
    earlier = Payment.objects.get()
    fake_pay.failures.clear()
    fake_pay._new_trade(earlier.out_trade_no, 400)
    fake_pay.codepay_plan = CodepayPlan()
    calls_before = len(fake_pay.calls)

    response = till(sale)

    assert response.status_code == 200
    assert [name for name, _ in fake_pay.calls[calls_before:]] == ["query", "reverse", "codepay"]
    first, second = Payment.objects.order_by("pk")
    assert (first.status, second.status) == ("closed", "succeeded")


def test_a_second_scan_while_one_runs_is_refused(fake_pay, till, sale):
    cache.add(f"wechat-pay:codepay:{sale.pk}", "1")

    response = till(sale)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "payment_in_progress"
    assert fake_pay.calls == []
    assert Payment.objects.count() == 0


def test_an_online_order_is_not_paid_with_a_code(fake_pay, till, shop_store, water, lina):
    online = checkout_place(
        channel=Channel.MINI_SHOP,
        store=shop_store,
        fulfilment=Fulfilment.PICKUP,
        lines=[BasketLine(water.pk, 1)],
        client_reference="online-1",
        member=lina,
    )

    response = till(online)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_a_counter_sale"
    assert fake_pay.calls == []
    assert Payment.objects.count() == 0


@pytest.mark.parametrize("code", ["", "12345", "194567890123456789", "13456789012345678x"])
def test_a_malformed_code_is_a_validation_error(fake_pay, till, sale, code):
    response = till(sale, code)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert list(response.json()["error"]["fields"]) == ["auth_code"]
    assert fake_pay.calls == []


def test_another_stores_clerk_does_not_find_the_sale(fake_pay, client, sale, store_b):
    client.force_login(factories.StaffRoleFactory(role="clerk", store=store_b).user)

    response = client.post(
        f"/api/staff/v1/orders/{sale.pk}/pay-by-code/",
        {"auth_code": CODE},
        content_type="application/json",
    )

    assert response.status_code == 404
    assert fake_pay.calls == []
    assert Payment.objects.count() == 0


def test_staff_without_the_permission_are_refused(fake_pay, client, sale):
    nobody = factories.UserFactory()
    client.force_login(nobody)

    response = client.post(
        f"/api/staff/v1/orders/{sale.pk}/pay-by-code/",
        {"auth_code": CODE},
        content_type="application/json",
    )

    assert response.status_code == 403
    assert fake_pay.calls == []
    sale.refresh_from_db()
    assert sale.status == S.PENDING_PAYMENT


def test_a_manager_elsewhere_acts_here_by_the_role_held_here(fake_pay, client, sale, store_b):
    # A clerk of store A who manages store B scans at A: A's clerk role allows it
    user = factories.StaffRoleFactory(role="store_manager", store=store_b).user
    factories.StaffRoleFactory(role="clerk", store=sale.store, user=user)
    client.force_login(user)

    response = client.post(
        f"/api/staff/v1/orders/{sale.pk}/pay-by-code/",
        {"auth_code": CODE},
        content_type="application/json",
    )

    assert response.status_code == 200
    assert response.json()["status"] == "completed"


def test_the_staff_schema_documents_the_endpoint(client, hq_user):
    client.force_login(hq_user)

    schema = client.get("/api/schema/?format=json").json()

    operation = schema["paths"]["/api/staff/v1/orders/{id}/pay-by-code/"]["post"]
    assert sorted(operation["responses"]) == ["200", "400", "403", "404", "409", "415", "503"]


def test_a_paid_trade_that_does_not_match_the_sale_is_not_taken_as_payment(
    fake_pay, till, sale, water, shop_store
):
    # WeChat answers for another merchant (a misconfigured till): nothing is confirmed
    real_trade = fake_pay.trade
    fake_pay.trade = lambda out_trade_no, **changes: real_trade(
        out_trade_no, **{**changes, "mch_id": "1230000109"}
    )

    response = till(sale)

    assert response.status_code == 409
    payment = Payment.objects.get()
    assert response.json()["error"] == {
        "code": "codepay_not_confirmed",
        "message": "WeChat took the payment but it could not be matched to this sale: "
        "wrong_merchant",
        "fields": {"out_trade_no": [payment.out_trade_no]},
    }
    assert payment.status == "pending"
    sale.refresh_from_db()
    assert sale.status == S.PENDING_PAYMENT
    assert stock(water, shop_store) == (50, 2)
