"""wechat/client.py against the sandbox over a real socket: results, errors, the shared access
token, refresh and retry rules, timeouts, and the Redis token store when REDIS_URL is set."""

import json
import os
import re
import socket
import threading
import time

import pytest
import redis
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from tests.wechat.conftest import CHEN, LIN, WANG
from wechat import client
from wechat.client import CacheTokenStorage, RedisTokenStorage, WeChatError
from wechat.sandbox import SANDBOX_APP_ID, SANDBOX_APP_SECRET

STABLE = "/cgi-bin/stable_token"
LOGIN = "/sns/jscode2session"
PHONE = "/wxa/business/getuserphonenumber"
SUBSCRIBE = "/cgi-bin/message/subscribe/send"
SHIPPING = "/wxa/sec/order/upload_shipping_info"
DELIVERY_LIST = "/cgi-bin/express/delivery/open_msg/get_delivery_list"
REDIS_URL = os.environ.get("REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set")


def paths(wx):
    return [call["path"] for call in wx.calls()]


def answers(wx, path):
    return [call["answer"].get("errcode", 0) for call in wx.calls(path)]


def raised(call, *args, **kwargs) -> WeChatError:
    with pytest.raises(WeChatError) as caught:
        call(*args, **kwargs)
    return caught.value


def stored_token(settings):
    return cache.get(f"{settings.WECHAT_TOKEN_KEY_PREFIX}:{SANDBOX_APP_ID}_access_token")


# --- results --------------------------------------------------------------------------------


def test_code_to_session_needs_no_access_token(wx):
    answer = client.code_to_session(wx.js_code(LIN))

    assert set(answer) == {"openid", "session_key", "unionid"}
    assert (answer["openid"], answer["unionid"]) == (LIN, "uSbx_LinXiaomei0000000000001")
    assert paths(wx) == [LOGIN]
    assert "access_token" not in wx.calls()[0]["query"]


@pytest.mark.parametrize(
    ("code", "errcode", "errmsg"), [("0" * 32, 40029, "invalid code"), ("", 41008, "missing code")]
)
def test_code_to_session_refusals_are_not_retryable(wx, code, errcode, errmsg):
    error = raised(client.code_to_session, code)

    assert (error.errcode, error.errmsg, error.retryable) == (errcode, errmsg, False)
    assert str(error) == f"WeChat error {errcode}: {errmsg}"
    assert paths(wx) == [LOGIN]


def test_login_rate_limit_is_retryable_later_not_now(wx):
    wx.fault(path=LOGIN, mode="errcode", errcode=45011)

    error = raised(client.code_to_session, wx.js_code(CHEN))

    assert (error.errcode, error.retryable) == (45011, True)
    assert paths(wx) == [LOGIN]


def test_phone_number_fetches_one_stable_token_and_returns_phone_info(wx, settings):
    phone = client.phone_number(wx.phone_code(WANG))

    assert phone["purePhoneNumber"] == "13900139002"
    assert phone["phoneNumber"] == "13900139002"
    assert phone["countryCode"] == 86
    assert phone["watermark"]["appid"] == SANDBOX_APP_ID
    assert paths(wx) == [STABLE, PHONE]
    token_call, phone_call = wx.calls()
    assert token_call["body"] == {
        "grant_type": "client_credential",
        "appid": SANDBOX_APP_ID,
        "secret": SANDBOX_APP_SECRET,
        "force_refresh": False,
    }
    assert phone_call["query"] == {"access_token": token_call["answer"]["access_token"]}
    assert stored_token(settings) == token_call["answer"]["access_token"]


def test_a_phone_number_watermarked_for_another_app_is_refused(wx, sandbox, monkeypatch):
    client.delivery_list()
    monkeypatch.setattr(sandbox.miniprogram, "app_id", "wx0000000000000000")

    error = raised(client.phone_number, wx.phone_code(LIN))

    assert (error.errcode, error.errmsg, error.retryable) == (
        None,
        "the phone number is watermarked for another app",
        False,
    )


def test_phone_code_refused_is_not_retryable(wx):
    error = raised(client.phone_number, "f" * 32)

    assert (error.errcode, error.errmsg, error.retryable) == (40029, "invalid code", False)


def test_send_subscribe_message_sends_wechats_fields(wx, settings):
    settings.WECHAT_MINIPROGRAM_STATE = "trial"
    wx.allow(LIN, "sandbox-order-shipped")
    data = {
        "character_string1": "SO202603010001",
        "thing2": "中通快递",
        "character_string3": "ZT7700000001",
        "time4": "2026-03-01 10:15",
    }

    answer = client.send_subscribe_message(
        openid=LIN, template_id="sandbox-order-shipped", data=data, page="pages/order?id=1"
    )

    assert answer == {"errcode": 0, "errmsg": "ok"}
    assert wx.calls(SUBSCRIBE)[0]["body"] == {
        "touser": LIN,
        "template_id": "sandbox-order-shipped",
        "data": {keyword: {"value": value} for keyword, value in data.items()},
        "miniprogram_state": "trial",
        "lang": "zh_CN",
        "page": "pages/order?id=1",
    }


def test_a_subscribe_message_the_shopper_did_not_allow_is_given_up_at_once(wx):
    data = {"character_string1": "SO1", "amount2": "12.50", "thing3": "静安寺店", "time4": "10:15"}

    error = raised(
        client.send_subscribe_message, openid=LIN, template_id="sandbox-order-paid", data=data
    )

    assert (error.errcode, error.errmsg, error.retryable) == (
        43101,
        "user refuse to accept the msg",
        False,
    )
    assert answers(wx, SUBSCRIBE) == [43101]


SHIPMENT = {
    "payer_openid": LIN,
    "transaction_id": "4200002026030100000001",
    "shipping_list": [
        {"tracking_no": "ZT7700000001", "express_company": "ZTO", "item_desc": "有机牛奶 x2"}
    ],
}


def test_upload_shipping_info_sends_wechats_fields(wx):
    result = client.upload_shipping_info(**SHIPMENT)

    assert result == {"already_uploaded": False}
    body = wx.calls(SHIPPING)[0]["body"]
    upload_time = body.pop("upload_time")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00", upload_time)
    assert body == {
        "order_key": {"order_number_type": 2, "transaction_id": "4200002026030100000001"},
        "logistics_type": 1,
        "delivery_mode": 1,
        "shipping_list": SHIPMENT["shipping_list"],
        "payer": {"openid": LIN},
    }


def test_uploading_what_wechat_already_holds_is_recognised_as_done(wx):
    client.upload_shipping_info(**SHIPMENT)

    again = client.upload_shipping_info(**SHIPMENT)

    assert again == {"already_uploaded": True}
    assert answers(wx, SHIPPING) == [0, 10060023]
    shipments = wx.get("/sandbox/shipments").json()["shipments"]
    assert shipments["transaction_id:4200002026030100000001"]["uploads"] == 1


def test_upload_shipping_info_by_merchant_order_and_split(wx):
    parcel = {
        "tracking_no": "SF1000000001",
        "express_company": "SF",
        "item_desc": "包裹 1",
        "contact": {"receiver_contact": "138****8001"},
    }

    result = client.upload_shipping_info(
        payer_openid=LIN,
        mchid="1900000109",
        out_trade_no="SO202603010002",
        shipping_list=[parcel],
        delivery_mode=2,
        is_all_delivered=False,
    )

    assert result == {"already_uploaded": False}
    body = wx.calls(SHIPPING)[0]["body"]
    assert body["order_key"] == {
        "order_number_type": 1,
        "mchid": "1900000109",
        "out_trade_no": "SO202603010002",
    }
    assert (body["delivery_mode"], body["is_all_delivered"]) == (2, False)


def test_upload_shipping_info_refusals_raise(wx):
    client.upload_shipping_info(**SHIPMENT)
    other = {**SHIPMENT, "payer_openid": WANG, "shipping_list": [{"item_desc": "x"}]}

    error = raised(client.upload_shipping_info, **{**other, "logistics_type": 4})

    assert (error.errcode, error.retryable) == (10060031, False)


def test_upload_shipping_info_needs_the_payment(wx):
    with pytest.raises(ValueError, match="name the payment"):
        client.upload_shipping_info(payer_openid=LIN, mchid="1900000109", shipping_list=[])
    assert wx.calls() == []


def test_delivery_list_returns_the_carriers(wx):
    carriers = client.delivery_list()

    assert len(carriers) == 8
    assert carriers[0] == {"delivery_id": "SF", "delivery_name": "顺丰速运"}


# --- the access token -----------------------------------------------------------------------


def test_the_token_is_fetched_once_and_reused(wx):
    client.delivery_list()
    client.delivery_list()
    client.phone_number(wx.phone_code(LIN))

    assert paths(wx) == [STABLE, DELIVERY_LIST, DELIVERY_LIST, PHONE]


def test_two_processes_share_one_token(wx):
    web, worker = client.build_client(), client.build_client()

    web.delivery_list()
    worker.phone_number(wx.phone_code(LIN))

    assert web is not worker
    assert paths(wx) == [STABLE, DELIVERY_LIST, PHONE]


@pytest.mark.parametrize("storage", ["cache", pytest.param("redis", marks=needs_redis)])
def test_processes_starting_together_fetch_one_token(wx, settings, storage, redis_tokens):
    if storage == "redis":
        settings.REDIS_URL = REDIS_URL
    # A slow token endpoint: every process is waiting for the token at the same time.
    wx.fault(path=STABLE, mode="timeout", seconds=0.2)
    processes = [client.build_client() for _ in range(8)]
    barrier = threading.Barrier(len(processes))
    results = []

    def work(process):
        barrier.wait()
        results.append(len(process.delivery_list()))

    threads = [threading.Thread(target=work, args=(process,)) for process in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert results == [8] * 8
    assert len(wx.calls(STABLE)) == 1
    assert len(wx.calls(DELIVERY_LIST)) == 8


def test_processes_meeting_an_expired_token_together_refresh_it_once(wx, sandbox):
    processes = [client.build_client() for _ in range(8)]
    processes[0].delivery_list()
    sandbox.advance_clock(7200)  # WeChat expires the token before our copy does
    barrier = threading.Barrier(len(processes))
    results = []

    def work(process):
        barrier.wait()
        results.append(len(process.delivery_list()))

    threads = [threading.Thread(target=work, args=(process,)) for process in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert results == [8] * 8
    assert len(wx.calls(STABLE)) == 2


def test_an_expired_token_is_refreshed_once_and_the_call_repeated(wx, settings):
    client.delivery_list()
    old = stored_token(settings)
    wx.fault(path=PHONE, mode="expire_token")

    phone = client.phone_number(wx.phone_code(LIN))

    assert phone["purePhoneNumber"] == "13800138001"
    assert paths(wx) == [STABLE, DELIVERY_LIST, PHONE, STABLE, PHONE]
    assert answers(wx, PHONE) == [42001, 0]
    new = stored_token(settings)
    assert new != old
    assert wx.calls(PHONE)[1]["query"] == {"access_token": new}


def test_a_token_refused_twice_is_refreshed_only_once(wx):
    wx.fault(path=DELIVERY_LIST, mode="errcode", errcode=40001, times=2)

    error = raised(client.delivery_list)

    assert (error.errcode, error.retryable) == (40001, True)
    assert paths(wx) == [STABLE, DELIVERY_LIST, STABLE, DELIVERY_LIST]


def test_the_ordinary_token_when_stable_token_is_off(wx, settings):
    settings.WECHAT_STABLE_TOKEN = False

    client.delivery_list()

    assert paths(wx) == ["/cgi-bin/token", DELIVERY_LIST]
    assert wx.calls("/cgi-bin/token")[0]["query"] == {
        "grant_type": "client_credential",
        "appid": SANDBOX_APP_ID,
        "secret": SANDBOX_APP_SECRET,
    }


def test_a_wrong_secret_is_not_retryable(wx, settings):
    settings.WECHAT_APP_SECRET = "guessed"

    error = raised(client.delivery_list)

    assert (error.errcode, error.errmsg, error.retryable) == (40125, "invalid appsecret", False)
    assert paths(wx) == [STABLE]


def test_wechatpys_own_calls_reach_the_sandbox_too(wx):
    wechatpy = client.get_client()

    fetched = wechatpy.fetch_access_token()
    session = wechatpy.wxa.code_to_session(wx.js_code(LIN))

    assert session["openid"] == LIN
    assert paths(wx) == [STABLE, LOGIN]
    assert fetched == {"access_token": wx.calls(STABLE)[0]["answer"]["access_token"]}


# --- retries --------------------------------------------------------------------------------


def test_busy_wechat_is_tried_again_until_it_answers(wx):
    wx.fault(path=DELIVERY_LIST, mode="busy", times=2)

    carriers = client.delivery_list()

    assert len(carriers) == 8
    assert answers(wx, DELIVERY_LIST) == [-1, -1, 0]


def test_busy_wechat_is_tried_as_often_as_configured(wx, settings):
    settings.WECHAT_RETRY_ATTEMPTS = 4
    wx.fault(path=LOGIN, mode="busy", times=5)

    error = raised(client.code_to_session, wx.js_code(LIN))

    assert (error.errcode, error.errmsg, error.retryable) == (-1, "system error", True)
    assert answers(wx, LOGIN) == [-1, -1, -1, -1]


def test_a_busy_token_endpoint_is_tried_again(wx):
    wx.fault(path=STABLE, mode="busy")

    client.delivery_list()

    assert paths(wx) == [STABLE, STABLE, DELIVERY_LIST]


def test_backoff_doubles_between_tries(wx, settings):
    settings.WECHAT_RETRY_BACKOFF_SECONDS = 0.1
    wx.fault(path=LOGIN, mode="busy", times=3)
    started = time.monotonic()

    raised(client.code_to_session, "any")

    # Waits drawn from [0.05, 0.1] and [0.1, 0.2].
    assert 0.15 <= time.monotonic() - started < 0.6


# --- timeouts and the network ---------------------------------------------------------------


def test_a_call_that_times_out_is_retryable_later_and_not_repeated_now(wx, settings):
    settings.WECHAT_TIMEOUT_SECONDS = 0.3
    client.delivery_list()
    wx.fault(path=PHONE, mode="timeout", seconds=3)
    started = time.monotonic()

    error = raised(client.phone_number, wx.phone_code(LIN))

    assert time.monotonic() - started < 1
    assert (error.errcode, error.errmsg, error.retryable) == (
        None,
        "no answer from WeChat within 0.3 s",
        True,
    )
    assert len(wx.calls(PHONE)) == 1


def test_the_token_fetch_has_a_timeout_too(wx, settings):
    settings.WECHAT_TIMEOUT_SECONDS = 0.3
    wx.fault(path=STABLE, mode="timeout", seconds=3)
    started = time.monotonic()

    error = raised(client.delivery_list)

    assert time.monotonic() - started < 1
    assert (error.errcode, error.retryable) == (None, True)
    assert paths(wx) == [STABLE]


@pytest.fixture
def canned():
    """A bare TCP server answering every connection with fixed bytes (or hanging up at
    once), counting connections: what a broken proxy in front of WeChat does."""
    listeners = []

    def start(answer: bytes | None):
        listener = socket.create_server(("127.0.0.1", 0))
        connections = []

        def serve():
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                connections.append(connection)
                connection.recv(65536)
                if answer:
                    connection.sendall(answer)
                connection.close()

        threading.Thread(target=serve, daemon=True).start()
        listeners.append(listener)
        return f"http://127.0.0.1:{listener.getsockname()[1]}/", connections

    yield start
    for listener in listeners:
        listener.close()


def test_a_dropped_connection_is_tried_again(settings, canned):
    settings.WECHAT_API_BASE_URL, connections = canned(None)

    error = raised(client.code_to_session, "any")

    assert error.errmsg.startswith("cannot reach WeChat: ")
    assert (error.errcode, error.retryable) == (None, True)
    assert len(connections) == 3


def test_a_refused_connection_is_tried_again(settings):
    closed = socket.create_server(("127.0.0.1", 0))
    settings.WECHAT_API_BASE_URL = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    closed.close()

    error = raised(client.code_to_session, "any")

    assert error.errmsg.startswith("cannot reach WeChat: ")
    assert error.retryable is True


@pytest.mark.parametrize(
    ("status", "tries", "retryable"), [(502, 3, True), (503, 3, True), (404, 1, False)]
)
def test_http_errors_are_retried_only_when_the_server_failed(
    settings, canned, status, tries, retryable
):
    answer = f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
    settings.WECHAT_API_BASE_URL, connections = canned(answer)

    error = raised(client.code_to_session, "any")

    assert (error.errcode, error.errmsg, error.retryable) == (None, f"HTTP {status}", retryable)
    assert len(connections) == tries


def test_an_answer_that_is_not_json_is_retryable(settings, canned):
    body = b"<html>gateway</html>"
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        len(body),
        body,
    )
    settings.WECHAT_API_BASE_URL, connections = canned(answer)

    error = raised(client.code_to_session, "any")

    assert (error.errcode, error.errmsg, error.retryable) == (
        None,
        "the answer is not a JSON object",
        True,
    )
    assert len(connections) == 1


# --- building the client --------------------------------------------------------------------


def test_one_client_per_process_rebuilt_when_the_settings_change(settings):
    first = client.get_client()

    assert client.get_client() is first
    settings.WECHAT_TIMEOUT_SECONDS = 1.5
    second = client.get_client()
    assert second is not first
    assert second.timeout == 1.5
    assert second.API_BASE_URL == f"{settings.WECHAT_API_BASE_URL}cgi-bin/"
    assert second.wxa.API_BASE_URL == settings.WECHAT_API_BASE_URL
    assert isinstance(second.session, CacheTokenStorage)


@pytest.mark.parametrize("missing", ["WECHAT_APP_ID", "WECHAT_APP_SECRET"])
def test_without_app_id_or_secret_the_client_refuses_to_start_unless_debug(settings, wx, missing):
    setattr(settings, missing, "")
    settings.DEBUG = False

    with pytest.raises(ImproperlyConfigured, match="WECHAT_APP_ID and WECHAT_APP_SECRET"):
        client.code_to_session("any")
    assert wx.calls() == []
    settings.DEBUG = True
    assert isinstance(client.get_client(), client.MiniProgramClient)


# --- the token in Redis ---------------------------------------------------------------------


@pytest.fixture
def redis_tokens(settings):
    """The Redis holding the tokens when REDIS_URL is set; this test's keys removed after."""
    if not REDIS_URL:
        yield None
        return
    connection = redis.Redis.from_url(REDIS_URL)
    yield connection
    for key in connection.scan_iter(f"{settings.WECHAT_TOKEN_KEY_PREFIX}:*"):
        connection.delete(key)


@needs_redis
def test_with_redis_the_token_lives_in_redis_for_all_processes(wx, settings, redis_tokens):
    settings.REDIS_URL = REDIS_URL
    web, worker = client.build_client(), client.build_client()

    web.delivery_list()
    worker.phone_number(wx.phone_code(LIN))

    key = f"{settings.WECHAT_TOKEN_KEY_PREFIX}:{SANDBOX_APP_ID}_access_token"
    token = wx.calls(STABLE)[0]["answer"]["access_token"]
    assert isinstance(web.session, RedisTokenStorage)
    assert json.loads(redis_tokens.get(key)) == token
    # Refreshed five minutes before WeChat's two hours run out.
    assert 6890 <= redis_tokens.ttl(key) <= 6900
    assert list(redis_tokens.scan_iter(f"{settings.WECHAT_TOKEN_KEY_PREFIX}:*")) == [key.encode()]
    assert stored_token(settings) is None
    assert paths(wx) == [STABLE, DELIVERY_LIST, PHONE]


@needs_redis
def test_with_redis_an_expired_token_is_replaced_in_redis(wx, settings, redis_tokens):
    settings.REDIS_URL = REDIS_URL
    client.delivery_list()
    wx.fault(path=DELIVERY_LIST, mode="expire_token")

    client.delivery_list()

    key = f"{settings.WECHAT_TOKEN_KEY_PREFIX}:{SANDBOX_APP_ID}_access_token"
    assert json.loads(redis_tokens.get(key)) == wx.calls(STABLE)[1]["answer"]["access_token"]
    assert paths(wx) == [STABLE, DELIVERY_LIST, DELIVERY_LIST, STABLE, DELIVERY_LIST]
