"""WeChat Pay's services against an in-memory WeChat (``pay_fakes``): the shopper's JSAPI
prepay (created once, reused), the notify endpoints (verified, checked against the payment,
confirmed once through ``payment_confirm``; forged, stale, wrong-amount, unknown and foreign
notifies change nothing), refunds through WeChat and their notifies, and reconciliation (a
notify that never came; trades of orders that expired closed at WeChat)."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.models import Reservation, StockItem
from members.models import Identity
from orders.models import Order, OrderEvent, Payment, PaymentIssue, Refund
from orders.payments import payment_close, provider_get, refund_create, refund_submit
from orders.pricing import BasketLine
from orders.services import checkout_place, orders_expire_unpaid
from retail.celery import app as celery_app
from tests.wechat.pay_fakes import APP_ID, OPENID, fake_pay_installed, notify_body
from wechat import tasks
from wechat.pay import base
from wechat.pay.services import (
    PROVIDER,
    WeChatPayProvider,
    payments_close_unpaid,
    payments_reconcile,
)

pytestmark = pytest.mark.django_db

S = Order.Status
PAY_URL = "orders/{}/pay/"
GOOD = {"HTTP_X_FAKE_SIGNATURE": "good"}


@pytest.fixture
def fake_pay(monkeypatch, settings):
    yield from fake_pay_installed(monkeypatch, settings)


@pytest.fixture
def water(stocked):
    return stocked(name="矿泉水", price_fen=200, on_hand=50)


@pytest.fixture
def shopper(lina):
    Identity.objects.create(member=lina, kind=Identity.Kind.WECHAT, app_id=APP_ID, openid=OPENID)
    return lina


@pytest.fixture
def me(shop_api, shopper):
    return shop_api(shopper)


@pytest.fixture
def order(shop_store, shopper, water):
    """Three waters for pickup: 6.00 yuan, waiting for payment."""
    return checkout_place(
        channel="mini_shop",
        store=shop_store,
        fulfilment="pickup",
        lines=[BasketLine(water.pk, 3)],
        client_reference="pay-1",
        member=shopper,
    )


def started(me, order) -> dict:
    response = me.post(PAY_URL.format(order.number))
    assert response.status_code == 200, response.content
    return response.json()


def send_notify(client, body: bytes, *, version: str = "v3", kind: str = "payment", **headers):
    name = "wechat-pay:notify-" if kind == "payment" else "wechat-pay:refund-notify-"
    return client.post(reverse(name + version), body, content_type="application/json", **headers)


def stock(sku, store):
    item = StockItem.objects.get(sku=sku, store=store)
    return item.on_hand, item.reserved


def reservation_states(order) -> list[str]:
    keys = order.lines.values_list("line_key", flat=True)
    return list(Reservation.objects.filter(line_key__in=keys).values_list("status", flat=True))


# --- Registration and settings -----------------------------------------------------------------


def test_the_provider_is_registered_as_wechat_pay_and_confirms_later():
    provider = provider_get("wechat_pay")

    assert isinstance(provider, WeChatPayProvider)
    assert (provider.name, provider.confirms_immediately) == ("wechat_pay", False)


def test_beat_runs_reconciliation_and_closing_every_two_minutes():
    schedule = celery_app.conf.beat_schedule

    assert schedule["wechat-pay-reconcile"] == {
        "task": "wechat.pay_reconcile",
        "schedule": 120.0,
        "options": {"expires": 110},
    }
    assert schedule["wechat-pay-close-unpaid"] == {
        "task": "wechat.pay_close_unpaid",
        "schedule": 120.0,
        "options": {"expires": 110},
    }


def test_notify_urls_are_under_wechat_pay_notify(settings):
    settings.WECHAT_PAY_NOTIFY_BASE_URL = "https://shop.example.cn/"

    assert base.notify_url("v3") == "https://shop.example.cn/wechat/pay/notify/v3/"
    assert base.notify_url("v2", "refund") == "https://shop.example.cn/wechat/pay/notify/v2/refund/"
    assert reverse("wechat-pay:notify-v3") == "/wechat/pay/notify/v3/"
    assert reverse("wechat-pay:refund-notify-v2") == "/wechat/pay/notify/v2/refund/"


# --- JSAPI prepay: the shopper pays in the mini-program ----------------------------------------


def test_pay_creates_the_wechat_order_once_and_answers_request_payment(fake_pay, me, order):
    # When the shopper taps "pay" twice (she left the payment sheet and came back)
    first = started(me, order)
    again = started(me, order)

    # Then one WeChat order, one payment, the same parameters both times
    payment = Payment.objects.get()
    prepay_id = payment.provider_data["prepay_id"]
    assert (
        first
        == again
        == {
            "order": order.number,
            "provider": "wechat_pay",
            "out_trade_no": payment.out_trade_no,
            "amount_fen": 600,
            "request_payment": {
                "appId": APP_ID,
                "timeStamp": "1795838400",
                "nonceStr": "fake-nonce",
                "package": f"prepay_id={prepay_id}",
                "signType": "RSA",
                "paySign": f"signed-{prepay_id}",
            },
        }
    )
    assert fake_pay.called("jsapi_prepay") == [
        {
            "out_trade_no": payment.out_trade_no,
            "amount_fen": 600,
            "description": f"静安寺店 {order.number}",
            "openid": OPENID,
            "client_ip": "127.0.0.1",
        }
    ]
    assert (payment.provider, payment.status, payment.amount_fen) == ("wechat_pay", "pending", 600)
    assert payment.provider_data == {"prepay_id": prepay_id, "version": "v3"}
    order.refresh_from_db()
    assert order.status == S.PENDING_PAYMENT


def test_asking_again_reuses_the_prepay_in_six_queries(
    fake_pay, me, order, django_assert_num_queries
):
    started(me, order)

    # Token, order, then payment_create's lock and look-up (in a savepoint pair)
    with django_assert_num_queries(6):
        started(me, order)

    assert len(fake_pay.called("jsapi_prepay")) == 1


def test_pay_without_a_wechat_login_is_refused_before_wechat_is_asked(
    fake_pay, shop_api, lina, water, shop_store
):
    # Given a member who never logged in with WeChat (a counter member, say)
    order = checkout_place(
        channel="mini_shop",
        store=shop_store,
        fulfilment="pickup",
        lines=[BasketLine(water.pk, 1)],
        client_reference="no-openid",
        member=lina,
    )

    response = shop_api(lina).post(PAY_URL.format(order.number))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "wechat_openid_missing"
    assert fake_pay.calls == []
    order.refresh_from_db()
    assert order.status == S.PENDING_PAYMENT
    assert list(Payment.objects.values_list("status", "provider_data")) == [("pending", {})]


def test_another_shoppers_order_is_not_found_and_nothing_is_asked(fake_pay, shop_api, order):
    from tests import factories

    stranger = factories.MemberFactory(mobile="13700137003")

    response = shop_api(stranger).post(PAY_URL.format(order.number))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert fake_pay.calls == []
    assert Payment.objects.count() == 0


def test_a_paid_or_expired_order_is_not_payable(fake_pay, me, order):
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    expired = me.post(PAY_URL.format(order.number))
    orders_expire_unpaid()
    cancelled = me.post(PAY_URL.format(order.number))

    assert (expired.status_code, expired.json()["error"]["code"]) == (409, "order_expired")
    assert (cancelled.status_code, cancelled.json()["error"]["code"]) == (409, "order_not_payable")
    assert fake_pay.calls == []
    assert Payment.objects.count() == 0


def test_wechat_down_at_prepay_answers_503_and_the_next_tap_uses_the_same_trade(
    fake_pay, me, order
):
    fake_pay.fail("jsapi_prepay", "SYSTEM_ERROR", retryable=True)

    down = me.post(PAY_URL.format(order.number))
    up = started(me, order)

    assert down.status_code == 503
    assert down.json()["error"] == {
        "code": "wechat_pay_unavailable",
        "message": "WeChat Pay cannot be reached just now; try again in a moment.",
        "fields": {"wechat_code": ["SYSTEM_ERROR"]},
    }
    payment = Payment.objects.get()
    assert up["out_trade_no"] == payment.out_trade_no
    assert [call["out_trade_no"] for call in fake_pay.called("jsapi_prepay")] == [
        payment.out_trade_no
    ] * 2


def test_wechat_refusing_the_prepay_answers_502_with_its_code(fake_pay, me, order, english):
    fake_pay.fail("jsapi_prepay", "PARAM_ERROR", retryable=False)

    response = me.post(PAY_URL.format(order.number))

    assert response.status_code == 502
    assert response.json()["error"] == {
        "code": "wechat_pay_refused",
        "message": "WeChat Pay refused: PARAM_ERROR (fake)",
        "fields": {"wechat_code": ["PARAM_ERROR"]},
    }
    assert Payment.objects.get().status == "pending"


def test_a_prepay_refused_as_already_paid_confirms_the_payment_at_once(fake_pay, me, order):
    # Given the shopper paid, but the notify has not come, and the prepay id was lost
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    fake_pay.pay(payment.out_trade_no)
    Payment.objects.filter(pk=payment.pk).update(provider_data={})

    response = me.post(PAY_URL.format(order.number))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "order_already_paid"
    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.status, payment.transaction_id) == (
        "succeeded",
        fake_pay.trades[payment.out_trade_no]["transaction_id"],
    )
    assert order.status == S.PAID
    assert [name for name, _ in fake_pay.calls] == ["jsapi_prepay", "jsapi_prepay", "query"]


# --- Pay notifies ------------------------------------------------------------------------------


def test_a_pay_notify_marks_the_order_paid_and_commits_its_stock(
    fake_pay, client, me, order, water, shop_store
):
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    trade = fake_pay.pay(payment.out_trade_no)

    response = send_notify(client, notify_body("n-1", trade=trade), **GOOD)

    assert (response.status_code, response.json()) == (200, {"code": "SUCCESS"})
    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.status, payment.transaction_id, payment.raw_payload) == (
        "succeeded",
        trade.transaction_id,
        {"trade_state": "SUCCESS", "out_trade_no": payment.out_trade_no},
    )
    assert (order.status, order.paid_fen) == (S.PAID, 600)
    assert reservation_states(order) == ["committed"]
    assert stock(water, shop_store) == (50, 3)


def test_a_replayed_notify_answers_success_and_changes_nothing(fake_pay, client, me, order):
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    body = notify_body("n-1", trade=fake_pay.pay(payment.out_trade_no))
    send_notify(client, body, **GOOD)
    paid_at = Payment.objects.get().paid_at

    replays = [send_notify(client, body, **GOOD) for _ in range(3)]

    assert [(r.status_code, r.json()) for r in replays] == [(200, {"code": "SUCCESS"})] * 3
    assert Payment.objects.get().paid_at == paid_at
    assert OrderEvent.objects.filter(order=order, kind="order.paid").count() == 1
    assert PaymentIssue.objects.count() == 0


def test_a_replay_costs_six_queries_and_writes_nothing(
    fake_pay, client, me, order, django_assert_num_queries
):
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    body = notify_body("n-1", trade=fake_pay.pay(payment.out_trade_no))
    send_notify(client, body, **GOOD)

    # The payment's state, then payment_confirm's look-up and locks (order, payment)
    with django_assert_num_queries(6) as replay:
        send_notify(client, body, **GOOD)

    statements = [query["sql"].split()[0] for query in replay.captured_queries]
    assert statements == ["SELECT", "SAVEPOINT", "SELECT", "SELECT", "SELECT", "RELEASE"]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [({}, "bad_signature"), ({**GOOD, "HTTP_X_FAKE_STALE": "1"}, "stale_timestamp")],
)
def test_a_forged_or_stale_notify_is_refused_logged_and_changes_nothing(
    fake_pay, client, me, order, water, shop_store, caplog, headers, reason
):
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    body = notify_body("n-1", trade=fake_pay.pay(payment.out_trade_no))

    response = send_notify(client, body, **headers)

    assert response.status_code == 500
    assert response.json() == {"code": "FAIL", "message": reason}
    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.status, order.status, order.paid_fen) == ("pending", S.PENDING_PAYMENT, 0)
    assert stock(water, shop_store) == (50, 3)
    assert reservation_states(order) == ["held"]
    assert PaymentIssue.objects.count() == 0
    assert OrderEvent.objects.filter(order=order).count() == 1
    assert f"v3 payment notify rejected: {reason}" in caplog.text


def test_a_wrong_amount_is_recorded_not_confirmed(fake_pay, client, me, order, caplog):
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    trade = fake_pay.pay(payment.out_trade_no, amount_fen=1)

    response = send_notify(client, notify_body("n-1", trade=trade), **GOOD)

    # WeChat hears success (asking again would not change the answer); staff see the issue
    assert response.status_code == 200
    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.status, order.status, order.paid_fen) == ("pending", S.PENDING_PAYMENT, 0)
    assert list(PaymentIssue.objects.values_list("code", "amount_fen", "payment_id")) == [
        ("amount_mismatch", 1, payment.pk)
    ]
    assert f"trade {payment.out_trade_no} refused: amount_mismatch (amount 1)" in caplog.text


def test_a_notify_for_an_unknown_order_is_recorded_and_changes_nothing(fake_pay, client, order):
    fake_pay.trades["P0000000000000UNKNOWN"] = {"state": "NOTPAY", "amount_fen": 600, "queries": 0}
    trade = fake_pay.pay("P0000000000000UNKNOWN")

    response = send_notify(client, notify_body("n-1", trade=trade), **GOOD)

    assert response.status_code == 200
    assert list(PaymentIssue.objects.values_list("code", "out_trade_no", "payment_id")) == [
        ("unknown_payment", "P0000000000000UNKNOWN", None)
    ]
    assert Payment.objects.count() == 0
    order.refresh_from_db()
    assert order.status == S.PENDING_PAYMENT


@pytest.mark.parametrize(
    ("change", "outcome"),
    [
        ({"app_id": "wx0000000000000000"}, "wrong_app"),
        ({"mch_id": "1230000109"}, "wrong_merchant"),
        ({"state": "PAYERROR"}, "not_paid"),
        ({"transaction_id": ""}, "no_transaction_id"),
    ],
)
def test_a_notify_for_another_app_or_merchant_or_not_paid_changes_nothing(
    fake_pay, client, me, order, caplog, change, outcome
):
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    fake_pay.pay(payment.out_trade_no)
    trade = fake_pay.trade(payment.out_trade_no, **change)

    response = send_notify(client, notify_body("n-7", trade=trade), **GOOD)

    assert response.status_code == 200
    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.status, order.status) == ("pending", S.PENDING_PAYMENT)
    assert PaymentIssue.objects.count() == 0
    assert f"v3 payment notify n-7: {outcome}" in caplog.text


def test_a_notify_we_fail_to_process_answers_failure_so_wechat_sends_it_again(
    fake_pay, client, me, order, monkeypatch
):
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    body = notify_body("n-1", trade=fake_pay.pay(payment.out_trade_no))

    def broken(notice):
        raise RuntimeError("database went away")

    monkeypatch.setattr("wechat.pay.views.notice_settle", broken)
    response = send_notify(client, body, **GOOD)

    assert response.status_code == 500
    assert response.json() == {"code": "FAIL", "message": "not processed, send it again"}
    assert Payment.objects.get().status == "pending"


def test_the_notify_endpoint_takes_only_post(fake_pay, client):
    response = client.get(reverse("wechat-pay:notify-v3"))

    assert response.status_code == 405
    assert fake_pay.calls == []


def test_money_arriving_after_the_order_expired_goes_back_through_wechat(
    fake_pay, client, me, order, water, shop_store, django_capture_on_commit_callbacks
):
    # Given the shopper opened the payment sheet, then the order expired
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    orders_expire_unpaid(now=timezone.now() + timedelta(minutes=31))
    trade = fake_pay.pay(payment.out_trade_no)

    # When WeChat's notify arrives
    with django_capture_on_commit_callbacks(execute=True):
        response = send_notify(client, notify_body("n-1", trade=trade), **GOOD)

    # Then the money goes back: a refund asked of WeChat, pending its notify
    assert response.status_code == 200
    refund = Refund.objects.get()
    assert (refund.amount_fen, refund.status, refund.provider_refund_id) == (600, "pending", None)
    assert fake_pay.called("refund") == [
        {
            "out_trade_no": payment.out_trade_no,
            "out_refund_no": refund.out_refund_no,
            "refund_fen": 600,
            "total_fen": 600,
            # The notify is served in the platform's language.
            "reason": "订单取消后才完成支付。",
        }
    ]
    order.refresh_from_db()
    assert (order.status, order.paid_fen, order.refunded_fen) == (S.CANCELLED, 600, 0)
    assert stock(water, shop_store) == (50, 0)

    # And the refund notify completes it
    state = fake_pay.refund_state(refund.out_refund_no, state="SUCCESS")
    answer = send_notify(client, notify_body("r-1", refund=state), kind="refund", **GOOD)

    assert answer.status_code == 200
    refund.refresh_from_db()
    order.refresh_from_db()
    assert (refund.status, refund.provider_refund_id) == ("succeeded", state.refund_id)
    assert (order.status, order.refunded_fen) == (S.CANCELLED, 600)


# --- Refunds through WeChat --------------------------------------------------------------------


@pytest.fixture
def paid(fake_pay, client, me, order):
    """The order, paid through its notify."""
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    send_notify(client, notify_body("n-1", trade=fake_pay.pay(payment.out_trade_no)), **GOOD)
    order.refresh_from_db()
    return order


def refund_of(paid, amount_fen, capture) -> Refund:
    with capture(execute=True):
        refund = refund_create(order=paid, amount_fen=amount_fen, reason="少了一瓶", actor=None)
    refund.refresh_from_db()
    return refund


def test_a_partial_refund_is_pending_until_its_notify_then_succeeds_once(
    fake_pay, client, paid, django_capture_on_commit_callbacks
):
    refund = refund_of(paid, 200, django_capture_on_commit_callbacks)
    assert (refund.status, refund.provider_refund_id) == ("pending", None)
    assert [call["refund_fen"] for call in fake_pay.called("refund")] == [200]

    body = notify_body("r-1", refund=fake_pay.refund_state(refund.out_refund_no, state="SUCCESS"))
    answers = [send_notify(client, body, kind="refund", **GOOD) for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 200]
    refund.refresh_from_db()
    paid.refresh_from_db()
    assert refund.status == "succeeded"
    assert (paid.status, paid.paid_fen, paid.refunded_fen) == (S.PAID, 600, 200)
    assert OrderEvent.objects.filter(order=paid, kind="refund.succeeded").count() == 1


def test_a_refund_wechat_pays_at_once_succeeds_without_a_notify(
    fake_pay, paid, django_capture_on_commit_callbacks
):
    fake_pay.refund_answer = "SUCCESS"

    refund = refund_of(paid, 600, django_capture_on_commit_callbacks)

    paid.refresh_from_db()
    assert refund.status == "succeeded"
    assert refund.provider_refund_id == fake_pay.refunds[refund.out_refund_no]["refund_id"]
    assert (paid.status, paid.refunded_fen) == (S.CANCELLED, 600)


def test_an_abnormal_refund_notify_fails_the_refund(
    fake_pay, client, paid, django_capture_on_commit_callbacks
):
    refund = refund_of(paid, 600, django_capture_on_commit_callbacks)
    body = notify_body("r-1", refund=fake_pay.refund_state(refund.out_refund_no, state="ABNORMAL"))

    response = send_notify(client, body, kind="refund", **GOOD)

    assert response.status_code == 200
    refund.refresh_from_db()
    paid.refresh_from_db()
    assert (refund.status, refund.error) == ("failed", "WeChat: ABNORMAL")
    assert (paid.status, paid.refunded_fen) == (S.PAID, 0)


@pytest.mark.parametrize(
    ("change", "outcome"),
    [({"amount_fen": 599}, "amount_mismatch"), ({"out_refund_no": "R-NOBODY"}, "unknown_refund")],
)
def test_a_refund_notify_with_a_wrong_amount_or_unknown_refund_changes_nothing(
    fake_pay, client, paid, django_capture_on_commit_callbacks, caplog, change, outcome
):
    refund = refund_of(paid, 600, django_capture_on_commit_callbacks)
    state = fake_pay.refund_state(refund.out_refund_no, state="SUCCESS", **change)

    response = send_notify(client, notify_body("r-9", refund=state), kind="refund", **GOOD)

    assert response.status_code == 200
    refund.refresh_from_db()
    paid.refresh_from_db()
    assert (refund.status, paid.status, paid.refunded_fen) == ("pending", S.PAID, 0)
    assert f"v3 refund notify r-9: {outcome}" in caplog.text


def test_wechat_down_leaves_the_refund_pending_and_a_refusal_fails_it(
    fake_pay, paid, django_capture_on_commit_callbacks
):
    fake_pay.fail("refund", "SYSTEM_ERROR", retryable=True)
    down = refund_of(paid, 100, django_capture_on_commit_callbacks)
    fake_pay.fail("refund", "NOT_ENOUGH", retryable=False)
    refused = refund_of(paid, 100, django_capture_on_commit_callbacks)
    # Asked again later (orders.resubmit_stale_refunds), WeChat takes the first
    again = refund_submit(refund_id=down.pk)

    assert (down.status, down.error) == ("pending", "")
    assert (refused.status, refused.error) == ("failed", "NOT_ENOUGH: NOT_ENOUGH (fake)")
    assert again.status == "pending"
    assert [call["out_refund_no"] for call in fake_pay.called("refund")] == [
        down.out_refund_no,
        refused.out_refund_no,
        down.out_refund_no,
    ]


# --- Reconciliation ----------------------------------------------------------------------------


def later(minutes: float):
    return timezone.now() + timedelta(minutes=minutes)


def test_reconciliation_confirms_a_payment_whose_notify_never_came(
    fake_pay, me, order, water, shop_store
):
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    trade = fake_pay.pay(payment.out_trade_no)

    too_soon = payments_reconcile(now=later(4))
    outcomes = payments_reconcile(now=later(6))
    again = payments_reconcile(now=later(8))

    assert too_soon == {}
    assert outcomes == {"confirmed": 1}
    assert again == {}
    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.status, payment.transaction_id) == ("succeeded", trade.transaction_id)
    assert order.status == S.PAID
    assert reservation_states(order) == ["committed"]
    assert [name for name, _ in fake_pay.calls] == ["jsapi_prepay", "query"]


def test_reconciliation_leaves_an_unpaid_open_order_waiting_and_closes_a_dead_trade(
    fake_pay, me, order
):
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])

    waiting = payments_reconcile(now=later(6))
    fake_pay.trades[payment.out_trade_no]["state"] = "PAYERROR"
    dead = payments_reconcile(now=later(8))

    assert (waiting, dead) == ({"waiting": 1}, {"closed": 1})
    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.status, order.status) == ("closed", S.PENDING_PAYMENT)
    assert OrderEvent.objects.get(kind="payment.closed").note == "WeChat: PAYERROR"
    # The next tap starts a new trade
    assert started(me, order)["out_trade_no"] != payment.out_trade_no


def test_reconciliation_with_wechat_down_changes_nothing(fake_pay, me, order):
    started(me, order)
    fake_pay.fail("query", "SYSTEM_ERROR", retryable=True)

    assert payments_reconcile(now=later(6)) == {"unreachable": 1}
    assert Payment.objects.get().status == "pending"


def test_an_expired_orders_trade_is_closed_at_wechat(fake_pay, me, order, water, shop_store):
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    orders_expire_unpaid(now=later(31))

    outcomes = tasks.pay_close_unpaid.delay().get()

    assert outcomes == {"closed": 1}
    assert fake_pay.trades[payment.out_trade_no]["state"] == "CLOSED"
    assert [name for name, _ in fake_pay.calls] == ["jsapi_prepay", "query", "close"]
    payment.refresh_from_db()
    order.refresh_from_db()
    assert (payment.status, order.status) == ("closed", S.CANCELLED)
    assert stock(water, shop_store) == (50, 0)
    # Closed payments are not asked about again
    assert payments_close_unpaid() == {}


def test_a_trade_paid_just_before_closing_is_confirmed_and_refunded(
    fake_pay, me, order, django_capture_on_commit_callbacks
):
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    orders_expire_unpaid(now=later(31))
    fake_pay.pay(payment.out_trade_no)

    with django_capture_on_commit_callbacks(execute=True):
        outcomes = payments_close_unpaid()

    assert outcomes == {"confirmed": 1}
    assert fake_pay.called("close") == []
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert list(Refund.objects.values_list("amount_fen", "status")) == [(600, "pending")]


def test_closing_races_with_the_shoppers_payment(fake_pay, me, order, monkeypatch):
    # The query says NOTPAY; she pays before the close arrives: WeChat refuses to close
    payment = Payment.objects.get(out_trade_no=started(me, order)["out_trade_no"])
    orders_expire_unpaid(now=later(31))
    real_close = fake_pay.close

    def pay_then_close(*, out_trade_no):
        fake_pay.pay(out_trade_no)
        real_close(out_trade_no=out_trade_no)

    monkeypatch.setattr(fake_pay, "close", pay_then_close)

    assert payments_close_unpaid() == {"confirmed": 1}
    payment.refresh_from_db()
    assert payment.status == "succeeded"


def test_a_payment_never_created_at_wechat_is_closed_locally(fake_pay, me, order):
    fake_pay.fail("jsapi_prepay", "SYSTEM_ERROR", retryable=True)
    me.post(PAY_URL.format(order.number))
    orders_expire_unpaid(now=later(31))

    assert tasks.pay_reconcile.delay().get() == {}
    assert payments_close_unpaid() == {"closed": 1}
    assert Payment.objects.get().status == "closed"
    assert fake_pay.called("close") == []


def test_payment_close_closes_only_a_pending_payment(fake_pay, paid):
    payment = Payment.objects.get()

    same = payment_close(provider=PROVIDER, out_trade_no=payment.out_trade_no, reason="late")

    assert same.status == "succeeded"
    assert OrderEvent.objects.filter(kind="payment.closed").count() == 0


def test_the_shop_schema_documents_the_pay_endpoint(client):
    schema = client.get("/api/shop/v1/schema/?format=json").json()

    operation = schema["paths"]["/api/shop/v1/orders/{number}/pay/"]["post"]
    assert operation["operationId"] == "shop_order_pay"
    assert sorted(operation["responses"]) == ["200", "401", "404", "409", "502", "503"]
    assert "wechat_openid_missing" in json.dumps(operation["responses"]["409"])
