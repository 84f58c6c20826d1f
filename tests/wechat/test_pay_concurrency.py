"""One genuine pay notify, signed by the sandbox, replayed 100 times at once against the live
server on PostgreSQL (each request a thread and a connection of its own), for both protocol
versions: one payment, one transition, one ``order.paid`` event, every copy answered "received".

SQLite serialises every writer on one file lock, so a race there proves nothing: these run
where the order's row lock has to do the work.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from orders.models import Order, OrderEvent, Payment, PaymentIssue
from orders.pricing import BasketLine
from orders.services import checkout_place
from retail.models import OutboxEvent
from tests.wechat.conftest import LIN
from tests.wechat.test_pay_e2e import received, reservations
from wechat.pay.services import shop_order_pay
from wechat.sandbox import SANDBOX_APP_ID, pay_v2, pay_v3

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: set DATABASE_URL (.ci/run does)",
    ),
    pytest.mark.django_db(transaction=True),
]

COPIES = 100
# Requests in flight at once: enough to pile up on the order's row lock; no more than the live
# server's listen backlog (Django's 10), which drops connections beyond it.
IN_FLIGHT = 10


@pytest.fixture(params=["v3", "v2"])
def version(request, settings, sandbox_server, live_server):
    module = {"v3": pay_v3, "v2": pay_v2}[request.param]
    for name, value in module.platform_settings(sandbox_server.url).items():
        setattr(settings, name, value)
    settings.WECHAT_PAY_VERSION = request.param
    settings.WECHAT_PAY_NOTIFY_BASE_URL = live_server.url
    return request.param


@pytest.fixture
def paid_at_wechat(version, sandbox_server, shop_store, stocked):
    """An order whose payment WeChat took; the sandbox's notify for it, signed, not sent."""
    from members.models import Identity
    from tests import factories

    member = factories.MemberFactory(mobile="13800138001")
    Identity.objects.create(
        member=member, kind=Identity.Kind.WECHAT, app_id=SANDBOX_APP_ID, openid=LIN
    )
    water = stocked(name="矿泉水", price_fen=200, on_hand=50)
    order = checkout_place(
        channel="mini_shop",
        store=shop_store,
        fulfilment="pickup",
        lines=[BasketLine(water.pk, 3)],
        client_reference="race-1",
        member=member,
    )
    started = shop_order_pay(order=order.pk, client_ip="127.0.0.1")
    control = f"{sandbox_server.url}sandbox/pay/{version}/"
    out_trade_no = started.payment.out_trade_no
    paid = requests.post(
        control + "pay", json={"out_trade_no": out_trade_no, "notify": False}, timeout=10
    )
    assert paid.status_code == 200, paid.text
    unsent = requests.post(
        control + "notify", json={"out_trade_no": out_trade_no, "deliver": False}, timeout=10
    )
    assert unsent.status_code == 200, unsent.text
    [notify] = unsent.json()["requests"]
    return order, notify


def replay(notify: dict, copies: int) -> list[dict]:
    """Send the same notify ``copies`` times, ``IN_FLIGHT`` at once, the first wave released
    together; each answer as the sandbox would record it."""
    start = threading.Barrier(min(IN_FLIGHT, copies))
    body = notify["body"].encode("utf-8")

    def send(index: int) -> dict:
        if index < IN_FLIGHT:
            start.wait(timeout=30)
        response = requests.post(notify["url"], data=body, headers=notify["headers"], timeout=30)
        return {"status": response.status_code, "answer": response.text}

    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        return list(pool.map(send, range(copies)))


def test_a_hundred_identical_notifies_at_once_confirm_one_payment_once(version, paid_at_wechat):
    order, notify = paid_at_wechat

    answers = replay(notify, COPIES)

    assert [received(version, answer) for answer in answers] == [True] * COPIES, answers
    order.refresh_from_db()
    assert (order.status, order.paid_fen) == (Order.Status.PAID, 600)
    payment = Payment.objects.get()
    assert payment.status == "succeeded"
    assert OrderEvent.objects.filter(order=order, kind="order.paid").count() == 1
    assert OutboxEvent.objects.filter(event_type="order.paid").count() == 1
    assert PaymentIssue.objects.count() == 0
    assert reservations(order) == ["committed"]
