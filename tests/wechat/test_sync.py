"""wechat/sync.py: order status out to WeChat through the outbox, against the sandbox over a real
socket. Shipping-info uploads (one parcel, split parcels up to 15, pickup, same-city, only
orders paid with WeChat Pay, carriers mapped to WeChat's delivery ids), subscribe messages
(paid, shipped, ready for pickup, refunded; 43101 given up and recorded once), WeChat busy or
timing out for a while (the delivery retries, then completes), and never the same event twice
at WeChat (counted in the sandbox's call log), whatever runs again."""

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
import time_machine
from django.conf import settings as django_settings

from members.services.identity import member_login_wechat
from orders.models import Channel, Fulfilment, Payment
from orders.payments import payment_confirm, refund_confirm, refund_create
from orders.pricing import BasketLine
from orders.services import checkout_place, order_mark_ready, pickup_handover, shipment_create
from retail.models import OutboxAttempt, OutboxDelivery, OutboxEvent
from retail.outbox import Result, done, outbox_delivery_attempt, outbox_delivery_retry, outbox_sweep
from tests import factories
from tests.wechat.conftest import LIN
from wechat import client, sync
from wechat.models import SyncCall
from wechat.sandbox import SANDBOX_APP_ID
from wechat.sandbox.data import DEFAULT_TEMPLATES

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)
TX = "4200002026112500000000000001"
UPLOAD = "/wxa/sec/order/upload_shipping_info"
SEND = "/cgi-bin/message/subscribe/send"
ADDRESS = {
    "name": "林小美",
    "mobile": "13800138001",
    "province": "上海市",
    "city": "上海市",
    "district": "静安区",
    "detail": "愚园路168号5楼",
}
UNANSWERED = (
    "WeChat may have sent this message already, so it is not sent again automatically "
    "(a shopper must not get it twice); retry the delivery to send it anyway"
)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def messages(settings):
    """The sandbox's templates, as the demo (DEBUG) configures them."""
    from retail import settings as project_settings

    settings.WECHAT_SUBSCRIBE_TEMPLATES = project_settings._SANDBOX_SUBSCRIBE_TEMPLATES


@pytest.fixture
def shopper(db):
    """林小美 as the mini-shop's login makes her: a member with her WeChat identity."""
    return member_login_wechat(app_id=SANDBOX_APP_ID, openid=LIN)


@pytest.fixture
def milk(stocked):
    return stocked(name="鲜牛奶", price_fen=1250, on_hand=20)


@pytest.fixture
def water(stocked):
    return stocked(name="矿泉水", price_fen=200, on_hand=50)


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Commit as a service does: the outbox's deliveries run (eager Celery) on the way out."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def place(shop_store, shopper):
    numbers = iter(range(1, 1000))

    def _place(*lines, fulfilment=Fulfilment.DELIVERY, channel=Channel.MINI_SHOP, member=None):
        return checkout_place(
            channel=channel,
            store=shop_store,
            fulfilment=fulfilment,
            lines=[BasketLine(sku.pk, quantity) for sku, quantity in lines],
            client_reference=f"sync-{next(numbers)}",
            member=member or shopper,
            address=ADDRESS if fulfilment == Fulfilment.DELIVERY else None,
        )

    return _place


@pytest.fixture
def pay(commit):
    """Paid with WeChat Pay, as its notify confirms it: the succeeded payment carries WeChat's
    transaction id (the provider itself is tested in test_pay_*)."""

    def _pay(order, transaction_id=TX):
        payment = Payment.objects.create(
            order=order,
            provider=sync.WECHAT_PAY,
            out_trade_no=f"P{order.number}",
            amount_fen=order.total_fen,
        )
        with commit():
            payment_confirm(
                provider=sync.WECHAT_PAY,
                out_trade_no=payment.out_trade_no,
                transaction_id=transaction_id,
                amount_fen=payment.amount_fen,
            )
        order.refresh_from_db()
        return order

    return _pay


@pytest.fixture
def ship(commit):
    def _ship(order, carrier, tracking, line_keys=None):
        with commit():
            return shipment_create(
                order=order, carrier_code=carrier, tracking_number=tracking, line_keys=line_keys
            )

    return _ship


@pytest.fixture
def paid_order(place, pay, milk, water):
    return pay(place((milk, 2), (water, 3)))


def delivery(order, event_type, subscriber=sync.SHIPPING) -> OutboxDelivery:
    return OutboxDelivery.objects.get(
        subscriber=subscriber, event__event_type=event_type, event__aggregate_id=str(order.pk)
    )


def attempts(row: OutboxDelivery) -> list[tuple]:
    return list(
        OutboxAttempt.objects.filter(delivery=row)
        .order_by("number")
        .values_list("outcome", "error")
    )


def state(row: OutboxDelivery) -> tuple:
    row.refresh_from_db()
    return row.state, row.attempts, row.last_error


def records() -> list[tuple]:
    return list(
        SyncCall.objects.order_by("pk").values_list(
            "kind", "order_number", "state", "calls", "errcode", "error"
        )
    )


def answers(wx, path) -> list[tuple]:
    """Each call the sandbox received: (its fault, WeChat's errcode)."""
    return [(call["fault"], call["answer"]["errcode"]) for call in wx.calls(path)]


def shipments(wx) -> dict:
    return wx.get("/sandbox/shipments").json()["shipments"]


def remaining(wx, template_id) -> int:
    subscriptions = wx.get("/sandbox/subscriptions").json()["subscriptions"]
    return sum(s["remaining"] for s in subscriptions if s["template_id"] == template_id)


def run_due(clock, row: OutboxDelivery) -> Result:
    """The next attempt, once its backoff has passed (what the retry's ETA message does)."""
    row.refresh_from_db()
    clock.move_to(row.next_attempt_at + timedelta(seconds=1))
    return outbox_delivery_attempt(delivery_id=row.pk)


def answered(wx, path, count):
    """Wait until the sandbox has answered ``count`` calls of ``path`` (held ones included)."""
    deadline = time.monotonic() + 5
    while sum(call["status"] is not None for call in wx.calls(path)) < count:
        assert time.monotonic() < deadline, wx.calls(path)
        time.sleep(0.01)


def courier(tracking, company, items):
    return {
        "tracking_no": tracking,
        "express_company": company,
        "item_desc": items,
        "contact": {"receiver_contact": "138****8001"},
    }


def upload_body(*, parcels, logistics_type=1, delivery_mode=1, upload_time="10:00:00.000", **more):
    return {
        "order_key": {"order_number_type": 2, "transaction_id": TX},
        "logistics_type": logistics_type,
        "delivery_mode": delivery_mode,
        "shipping_list": parcels,
        "upload_time": f"2026-11-25T{upload_time}+08:00",
        "payer": {"openid": LIN},
        **more,
    }


# --- shipping info ------------------------------------------------------------------------------


def test_a_shipped_order_is_uploaded_and_the_shopper_told(
    wx, paid_order, ship, messages, django_assert_num_queries
):
    wx.allow(LIN, "sandbox-order-shipped")

    ship(paid_order, "SF", "SF1234567890")

    parcel = courier("SF1234567890", "SF", "鲜牛奶×2、矿泉水×3")
    assert [call["body"] for call in wx.calls(UPLOAD)] == [upload_body(parcels=[parcel])]
    assert shipments(wx) == {
        f"transaction_id:{TX}": {
            "order_key": {"order_number_type": 2, "transaction_id": TX},
            "payer_openid": LIN,
            "logistics_type": 1,
            "delivery_mode": 1,
            "is_all_delivered": None,
            "shipping_list": [parcel],
            "last_upload_time": "2026-11-25T10:00:00+08:00",
            "shipped": True,
            "uploads": 1,
            "reuploaded": False,
        }
    }
    number = paid_order.number
    assert [call["body"] for call in wx.calls(SEND)] == [
        {
            "touser": LIN,
            "template_id": "sandbox-order-shipped",
            "page": f"pages/order/detail?number={number}",
            "data": {
                "character_string1": {"value": number},
                "thing2": {"value": "顺丰速运"},
                "character_string3": {"value": "SF1234567890"},
                "time4": {"value": "2026-11-25 10:00"},
            },
            "miniprogram_state": "formal",
            "lang": "zh_CN",
        }
    ]
    assert answers(wx, SEND) == [(None, 0)]
    assert state(delivery(paid_order, "order.shipped")) == ("delivered", 1, "")
    assert state(delivery(paid_order, "order.shipped", sync.MESSAGES)) == ("delivered", 1, "")
    assert records() == [
        ("message", number, "sent", 1, None, ""),
        ("shipping", number, "sent", 1, None, ""),
    ]
    request = SyncCall.objects.get(kind="shipping").request
    assert request == {
        "transaction_id": TX,
        "payer_openid": LIN,
        "upload_time": "2026-11-25T10:00:00.000+08:00",
        "logistics_type": 1,
        "delivery_mode": 1,
        "shipping_list": [parcel],
        "is_all_delivered": None,
    }

    # A delivery that WeChat accepted and that runs again costs three queries, no call.
    event = OutboxEvent.objects.get(event_type="order.shipped")
    with django_assert_num_queries(3):
        assert sync.shipping_deliver(event) == done()
    assert len(wx.calls(UPLOAD)) == 1


def test_split_parcels_are_uploaded_as_they_leave_and_the_last_says_all_delivered(
    wx, paid_order, ship, clock
):
    milk_line, _water_line = paid_order.lines.order_by("pk")

    ship(paid_order, "SF", "SF0001", line_keys=[milk_line.line_key])
    clock.shift(timedelta(minutes=30))
    ship(paid_order, "yto", "YT0002")

    first = courier("SF0001", "SF", "鲜牛奶×2")
    second = courier("YT0002", "YTO", "矿泉水×3")
    assert [call["body"] for call in wx.calls(UPLOAD)] == [
        upload_body(parcels=[first], delivery_mode=2, is_all_delivered=False),
        upload_body(
            parcels=[second], delivery_mode=2, is_all_delivered=True, upload_time="10:30:00.000"
        ),
    ]
    assert answers(wx, UPLOAD) == [(None, 0), (None, 0)]
    shipment = shipments(wx)[f"transaction_id:{TX}"]
    assert (shipment["shipping_list"], shipment["shipped"], shipment["uploads"]) == (
        [first, second],
        True,
        2,
    )
    assert state(delivery(paid_order, "order.partially_shipped")) == ("delivered", 1, "")
    assert state(delivery(paid_order, "order.shipped")) == ("delivered", 1, "")


def test_at_most_fifteen_parcels_the_last_one_ending_the_upload(
    wx, place, pay, ship, stocked, clock
):
    skus = [stocked(name=f"商品{n:02d}", price_fen=100, on_hand=1) for n in range(1, 17)]
    order = pay(place(*[(sku, 1) for sku in skus]))

    for number, line in enumerate(order.lines.order_by("pk"), start=1):
        clock.shift(timedelta(seconds=1))
        ship(order, "ZTO", f"ZT{number:04d}", line_keys=[line.line_key])

    bodies = [call["body"] for call in wx.calls(UPLOAD)]
    assert [(b["shipping_list"][0]["tracking_no"], b["is_all_delivered"]) for b in bodies] == [
        *[(f"ZT{number:04d}", False) for number in range(1, 15)],
        ("ZT0016", True),
    ]
    assert answers(wx, UPLOAD) == [(None, 0)] * 15
    shipment = shipments(wx)[f"transaction_id:{TX}"]
    assert [parcel["item_desc"] for parcel in shipment["shipping_list"]] == [
        *[f"商品{n:02d}×1" for n in range(1, 15)],
        "商品16×1",
    ]
    assert (shipment["shipped"], shipment["uploads"]) == (True, 15)
    # The 15th parcel's event was delivered without a call: its place went to the last one.
    events = OutboxDelivery.objects.filter(subscriber=sync.SHIPPING).order_by("event_id")
    assert [row.state for row in events] == ["delivered"] * 16
    assert SyncCall.objects.count() == 15


def test_a_pickup_order_is_uploaded_when_its_goods_are_ready(wx, place, pay, milk, commit):
    order = pay(place((milk, 1), fulfilment=Fulfilment.PICKUP))

    with commit():
        order_mark_ready(order=order, actor=None)
    with commit():
        pickup_handover(store=order.store, pickup_code=order.pickup_code, actor=None)

    assert [call["body"] for call in wx.calls(UPLOAD)] == [
        upload_body(parcels=[{"item_desc": "鲜牛奶×1"}], logistics_type=4)
    ]
    assert answers(wx, UPLOAD) == [(None, 0)]
    assert state(delivery(order, "order.ready_for_pickup")) == ("delivered", 1, "")
    assert OutboxDelivery.objects.filter(subscriber=sync.SHIPPING).count() == 1


def test_a_same_city_rider_is_uploaded_as_same_city_delivery(wx, paid_order, ship):
    milk_line, _water_line = paid_order.lines.order_by("pk")

    ship(paid_order, "DADA", "DD-88001", line_keys=[milk_line.line_key])
    ship(paid_order, "dada", "DD-88002")

    # Split delivery is for couriers: WeChat hears once, when everything has left.
    assert [call["body"] for call in wx.calls(UPLOAD)] == [
        upload_body(parcels=[{"item_desc": "鲜牛奶×2、矿泉水×3"}], logistics_type=2)
    ]
    assert answers(wx, UPLOAD) == [(None, 0)]
    assert state(delivery(paid_order, "order.partially_shipped")) == ("delivered", 1, "")
    assert state(delivery(paid_order, "order.shipped")) == ("delivered", 1, "")


def test_a_rider_cannot_end_a_split_courier_upload(wx, paid_order, ship, clock):
    milk_line, _water_line = paid_order.lines.order_by("pk")
    ship(paid_order, "SF", "SF0001", line_keys=[milk_line.line_key])
    clock.shift(timedelta(minutes=1))

    ship(paid_order, "STORE", "店员-小王")

    assert answers(wx, UPLOAD) == [(None, 0)]
    assert state(delivery(paid_order, "order.shipped")) == (
        "dead",
        1,
        "The last parcel went with a same-city rider, which cannot end a split courier upload "
        "at WeChat: upload it in the WeChat merchant platform.",
    )


def test_a_carrier_without_a_delivery_id_is_given_up_until_staff_map_it(
    wx, paid_order, ship, commit, settings, hq_user, clock
):
    ship(paid_order, "SHUNFENG", "SF0001")
    row = delivery(paid_order, "order.shipped")

    assert state(row) == (
        "dead",
        1,
        "Carrier SHUNFENG has no WeChat delivery id: add it to WECHAT_DELIVERY_IDS.",
    )
    assert (wx.calls(UPLOAD), records()) == ([], [])

    settings.WECHAT_DELIVERY_IDS = {**settings.WECHAT_DELIVERY_IDS, "SHUNFENG": "SF"}
    clock.shift(timedelta(minutes=5))
    with commit():
        outbox_delivery_retry(delivery=row, actor=hq_user)

    assert state(row) == ("delivered", 2, "")
    assert [call["body"]["shipping_list"] for call in wx.calls(UPLOAD)] == [
        [courier("SF0001", "SF", "鲜牛奶×2、矿泉水×3")]
    ]


def test_every_default_delivery_id_is_one_wechat_knows(wx):
    known = {carrier["delivery_id"] for carrier in client.delivery_list()}

    assert set(django_settings.WECHAT_DELIVERY_IDS.values()) == known
    assert django_settings.WECHAT_DELIVERY_IDS["YUNDA"] == "YD"


def test_an_order_not_paid_with_wechat_pay_is_not_uploaded(
    wx, place, pay_order, ship, milk, commit
):
    order = pay_order(place((milk, 1)))

    ship(order, "SF", "SF0001")

    assert state(delivery(order, "order.shipped")) == ("delivered", 1, "")
    assert (wx.calls(UPLOAD), records()) == ([], [])


def test_partner_orders_are_none_of_wechats_business(wx, place, pay_order, ship, milk, messages):
    order = pay_order(place((milk, 1), channel=Channel.PARTNER))

    ship(order, "SF", "SF0001")

    assert OutboxEvent.objects.filter(aggregate_id=str(order.pk)).count() == 3
    assert OutboxDelivery.objects.filter(subscriber__startswith="wechat_").count() == 0
    assert wx.calls() == []


def test_an_old_event_cannot_overwrite_newer_shipping_information(
    wx, paid_order, ship, commit, clock, hq_user
):
    """A partial parcel refused at first and retried by staff after the whole order shipped:
    its upload time is its event's, earlier than the last upload, so WeChat refuses it and the
    shipped payment's parcels stay as they were (no stale correction uses up the re-upload)."""
    milk_line, _water_line = paid_order.lines.order_by("pk")
    wx.fault(path=UPLOAD, mode="errcode", errcode=10060003)
    ship(paid_order, "SF", "SF0001", line_keys=[milk_line.line_key])
    partial = delivery(paid_order, "order.partially_shipped")
    assert state(partial) == ("dead", 1, "WeChat error 10060003: 支付单已使用重新发货机会")
    clock.shift(timedelta(minutes=1))
    ship(paid_order, "YTO", "YT0002")
    clock.shift(timedelta(minutes=1))

    with commit():
        outbox_delivery_retry(delivery=partial, actor=hq_user)

    assert answers(wx, UPLOAD) == [("errcode", 10060003), (None, 0), (None, 10060014)]
    assert state(partial) == (
        "dead",
        2,
        "WeChat error 10060014: 参数错误, hint: [upload_time must be later than the last upload]",
    )
    shipment = shipments(wx)[f"transaction_id:{TX}"]
    assert (shipment["shipping_list"], shipment["shipped"]) == (
        [courier("YT0002", "YTO", "矿泉水×3")],
        True,
    )


# --- subscribe messages -------------------------------------------------------------------------


def test_paid_ready_for_pickup_and_refunded_messages(
    wx, place, pay, milk, water, commit, messages, manager_a, django_capture_on_commit_callbacks
):
    for template in ("sandbox-order-paid", "sandbox-pickup-ready", "sandbox-order-refunded"):
        wx.allow(LIN, template)
    order = pay(place((milk, 2), (water, 3), fulfilment=Fulfilment.PICKUP))
    with commit():
        order_mark_ready(order=order, actor=None)
    with django_capture_on_commit_callbacks(execute=False):
        refund = refund_create(order=order, amount_fen=1250, reason="少一瓶", actor=manager_a)
    with commit():
        refund_confirm(out_refund_no=refund.out_refund_no, provider_refund_id="503000000001")

    number = order.number
    page = f"pages/order/detail?number={number}"
    assert [
        (c["body"]["template_id"], c["body"]["page"], c["body"]["data"]) for c in wx.calls(SEND)
    ] == [
        (
            "sandbox-order-paid",
            page,
            {
                "character_string1": {"value": number},
                "amount2": {"value": "31.00元"},
                "thing3": {"value": "鲜牛奶等5件"},
                "time4": {"value": "2026-11-25 10:00"},
            },
        ),
        (
            "sandbox-pickup-ready",
            page,
            {
                "character_string1": {"value": number},
                "thing2": {"value": "静安寺店"},
                "phrase3": {"value": "待取货"},
                "time4": {"value": "2026-11-25 10:00"},
            },
        ),
        (
            "sandbox-order-refunded",
            page,
            {
                "character_string1": {"value": number},
                "amount2": {"value": "12.50元"},
                "thing3": {"value": "鲜牛奶等5件"},
                "time4": {"value": "2026-11-25 10:00"},
            },
        ),
    ]
    assert answers(wx, SEND) == [(None, 0)] * 3
    assert [state(row) for row in OutboxDelivery.objects.filter(subscriber=sync.MESSAGES)] == [
        ("delivered", 1, "")
    ] * 3


def test_a_message_the_shopper_did_not_allow_is_given_up_and_recorded_once(
    wx, place, pay, milk, messages, clock
):
    order = pay(place((milk, 1)))
    row = delivery(order, "order.paid", sync.MESSAGES)

    assert state(row) == ("dead", 1, "WeChat error 43101: user refuse to accept the msg")
    assert attempts(row) == [("give_up", "WeChat error 43101: user refuse to accept the msg")]
    assert records() == [
        (
            "message",
            order.number,
            "refused",
            1,
            43101,
            "WeChat error 43101: user refuse to accept the msg",
        )
    ]

    clock.shift(timedelta(hours=3))
    assert outbox_sweep() == []
    assert outbox_delivery_attempt(delivery_id=row.pk) == Result.SKIPPED
    assert answers(wx, SEND) == [(None, 43101)]
    assert state(row) == ("dead", 1, "WeChat error 43101: user refuse to accept the msg")


def test_long_values_are_cut_to_what_the_keyword_takes(wx, place, pay, stocked, messages):
    wx.allow(LIN, "sandbox-order-paid")
    tea = stocked(name="云南普洱熟茶饼357克礼盒装七子饼茶叶", price_fen=19900, on_hand=5)

    order = pay(place((tea, 1)))

    assert wx.calls(SEND)[0]["body"]["data"]["thing3"] == {
        "value": "云南普洱熟茶饼357克礼盒装七子饼茶叶…"
    }
    assert answers(wx, SEND) == [(None, 0)]
    assert state(delivery(order, "order.paid", sync.MESSAGES)) == ("delivered", 1, "")


def test_a_member_without_wechat_gets_no_message(wx, place, pay, milk, messages):
    member = factories.MemberFactory()

    order = pay(place((milk, 1), member=member))

    assert state(delivery(order, "order.paid", sync.MESSAGES)) == ("delivered", 1, "")
    assert (wx.calls(SEND), records()) == ([], [])


def test_a_template_with_an_unknown_field_is_given_up(wx, place, pay, milk, settings):
    settings.WECHAT_SUBSCRIBE_TEMPLATES = {
        "paid": {"template_id": "sandbox-order-paid", "data": {"character_string1": "{order_no}"}}
    }

    order = pay(place((milk, 1)))

    assert state(delivery(order, "order.paid", sync.MESSAGES)) == (
        "dead",
        1,
        "WECHAT_SUBSCRIBE_TEMPLATES['paid'] uses {order_no}; the fields are amount, carrier, "
        "items, number, store, time, tracking_number.",
    )
    assert wx.calls(SEND) == []


def test_messages_not_configured_make_no_deliveries(wx, paid_order, ship):
    ship(paid_order, "SF", "SF0001")

    assert django_settings.WECHAT_SUBSCRIBE_TEMPLATES == {}
    assert OutboxDelivery.objects.filter(subscriber=sync.MESSAGES).count() == 0


def test_the_demo_configures_the_sandbox_templates():
    """With DEBUG (the demo) every message has a sandbox template, keyword for keyword."""
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.WECHAT_SUBSCRIBE_TEMPLATES))"
    )
    environment = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "retail.settings"}
    environment.pop("WECHAT_SUBSCRIBE_TEMPLATES", None)
    printed = subprocess.run(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    ).stdout
    templates = json.loads(printed)

    assert set(templates) == {"paid", "shipped", "pickup_ready", "refunded"}
    for template in templates.values():
        assert list(template["data"]) == DEFAULT_TEMPLATES[template["template_id"]]["keywords"]


# --- WeChat down, and never twice ---------------------------------------------------------------


def test_wechat_busy_for_a_while_then_everything_arrives_once(
    wx, paid_order, ship, messages, clock
):
    wx.allow(LIN, "sandbox-order-shipped", times=2)
    # Three tries per attempt (WECHAT_RETRY_ATTEMPTS): seven busy answers span three attempts.
    wx.fault(path=UPLOAD, mode="busy", times=7)
    wx.fault(path=SEND, mode="busy", times=4)

    ship(paid_order, "SF", "SF0001")
    upload = delivery(paid_order, "order.shipped", sync.SHIPPING)
    message = delivery(paid_order, "order.shipped", sync.MESSAGES)
    assert state(upload)[:2] == state(message)[:2] == ("failed", 1)

    assert run_due(clock, message) == Result.DELIVERED
    assert run_due(clock, upload) == Result.FAILED
    assert run_due(clock, upload) == Result.DELIVERED

    busy = "WeChat error -1: system error"
    assert attempts(upload) == [("retry", busy), ("retry", busy), ("done", "")]
    assert attempts(message) == [("retry", busy), ("done", "")]
    assert answers(wx, UPLOAD) == [("busy", -1)] * 7 + [(None, 0)]
    assert answers(wx, SEND) == [("busy", -1)] * 4 + [(None, 0)]
    assert shipments(wx)[f"transaction_id:{TX}"]["uploads"] == 1
    assert remaining(wx, "sandbox-order-shipped") == 1
    assert records() == [
        ("message", paid_order.number, "sent", 2, None, ""),
        ("shipping", paid_order.number, "sent", 3, None, ""),
    ]


def test_an_upload_that_timed_out_is_sent_again_and_recognised(
    wx, sandbox, paid_order, ship, clock, settings
):
    settings.WECHAT_TIMEOUT_SECONDS = 0.3
    wx.fault(path=UPLOAD, mode="timeout", seconds=5)

    ship(paid_order, "SF", "SF0001")
    row = delivery(paid_order, "order.shipped")
    timed_out = "no answer from WeChat within 0.3 s"
    assert state(row) == ("failed", 1, timed_out)
    assert records() == [("shipping", paid_order.number, "sending", 1, None, timed_out)]
    # WeChat acted on the call after the platform stopped waiting.
    sandbox.wake_sleepers()
    answered(wx, UPLOAD, 1)

    assert run_due(clock, row) == Result.DELIVERED

    assert answers(wx, UPLOAD) == [("timeout", 0), (None, 10060023)]
    assert shipments(wx)[f"transaction_id:{TX}"]["uploads"] == 1
    assert records() == [("shipping", paid_order.number, "sent", 2, 10060023, "")]


def test_a_message_that_timed_out_is_not_sent_again_unless_staff_say_so(
    wx, sandbox, place, pay, milk, messages, clock, settings, commit, hq_user
):
    settings.WECHAT_TIMEOUT_SECONDS = 0.3
    wx.allow(LIN, "sandbox-order-paid", times=2)
    wx.fault(path=SEND, mode="timeout", seconds=5)

    order = pay(place((milk, 1)))
    sandbox.wake_sleepers()
    answered(wx, SEND, 1)
    row = delivery(order, "order.paid", sync.MESSAGES)

    given_up = f"no answer from WeChat within 0.3 s. {UNANSWERED}."
    assert state(row) == ("dead", 1, given_up)
    assert remaining(wx, "sandbox-order-paid") == 1  # she got it, although no answer came
    clock.shift(timedelta(hours=3))
    assert outbox_sweep() == []
    assert answers(wx, SEND) == [("timeout", 0)]

    with commit():
        outbox_delivery_retry(delivery=row, actor=hq_user)

    assert state(row) == ("delivered", 2, "")
    assert answers(wx, SEND) == [("timeout", 0), (None, 0)]
    assert remaining(wx, "sandbox-order-paid") == 0


def test_a_message_is_sent_once_the_token_store_is_back(
    wx, place, pay, milk, messages, clock, monkeypatch
):
    """Redis (the shared token's store) restarting: nothing went out, so the message is
    retried like any failure, not given up as one WeChat may have acted on (found by the
    chaos run's Redis restart)."""
    wx.allow(LIN, "sandbox-order-paid")
    storage = type(client.get_client().session)
    real_get = storage.get

    def unreachable(self, key, default=None):
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379.")

    monkeypatch.setattr(storage, "get", unreachable)
    order = pay(place((milk, 1)))
    row = delivery(order, "order.paid", sync.MESSAGES)

    down = "the WeChat token store is unreachable: Error 111 connecting to 127.0.0.1:6379."
    assert state(row) == ("failed", 1, down)
    assert records() == [("message", order.number, "failed", 1, None, down)]
    assert answers(wx, SEND) == []
    assert remaining(wx, "sandbox-order-paid") == 1

    monkeypatch.setattr(storage, "get", real_get)
    assert run_due(clock, row) == Result.DELIVERED

    assert state(row) == ("delivered", 2, "")
    assert answers(wx, SEND) == [(None, 0)]
    assert remaining(wx, "sandbox-order-paid") == 0
    assert records() == [("message", order.number, "sent", 2, None, "")]


def test_a_delivery_run_again_after_wechat_accepted_calls_no_more(
    wx, paid_order, django_capture_on_commit_callbacks, messages
):
    """A worker made the call and died before the outbox recorded it: the delivery runs
    again (the sweeper found it) and WeChat is not called twice for the event."""
    wx.allow(LIN, "sandbox-order-shipped", times=2)
    with django_capture_on_commit_callbacks(execute=False):
        shipment_create(order=paid_order, carrier_code="SF", tracking_number="SF0001")
    event = OutboxEvent.objects.get(event_type="order.shipped")
    assert sync.shipping_deliver(event) == done()
    assert sync.message_deliver(event) == done()

    for subscriber in (sync.SHIPPING, sync.MESSAGES):
        row = delivery(paid_order, "order.shipped", subscriber)
        assert outbox_delivery_attempt(delivery_id=row.pk) == Result.DELIVERED

    assert answers(wx, UPLOAD) == [(None, 0)]
    assert answers(wx, SEND) == [(None, 0)]
    assert remaining(wx, "sandbox-order-shipped") == 1


@pytest.mark.parametrize(
    ("kind", "subscriber", "outcome", "path_calls"),
    [
        ("shipping", sync.SHIPPING, ("delivered", 1, ""), 1),
        ("message", sync.MESSAGES, ("dead", 1, f"An earlier call got no answer. {UNANSWERED}."), 0),
    ],
)
def test_a_call_left_without_an_answer_by_a_dead_worker(
    wx,
    paid_order,
    django_capture_on_commit_callbacks,
    messages,
    kind,
    subscriber,
    outcome,
    path_calls,
):
    """The worker died during the call: an upload goes again (WeChat recognises a repeat), a
    message does not (the shopper may have it already)."""
    wx.allow(LIN, "sandbox-order-shipped")
    with django_capture_on_commit_callbacks(execute=False):
        shipment_create(order=paid_order, carrier_code="SF", tracking_number="SF0001")
    event = OutboxEvent.objects.get(event_type="order.shipped")
    SyncCall.objects.create(
        event_id=event.event_id,
        kind=kind,
        order_number=paid_order.number,
        state="sending",
        calls=1,
        updated_at=T0,
    )
    row = delivery(paid_order, "order.shipped", subscriber)

    outbox_delivery_attempt(delivery_id=row.pk)

    assert state(row) == outcome
    assert len(wx.calls(UPLOAD if kind == "shipping" else SEND)) == path_calls
