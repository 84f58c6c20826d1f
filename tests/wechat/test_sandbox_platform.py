"""The sandbox's mini-program endpoints, called over HTTP as WeChat's clients call WeChat: the
answers, fields and error codes of each, and the state they keep."""

import base64
import copy
import time

import pytest

from tests.wechat.conftest import CHEN, LIN, RISKY, WANG, ZHAO
from wechat.sandbox import SANDBOX_APP_ID, SANDBOX_APP_SECRET

CREDENTIALS = {
    "grant_type": "client_credential",
    "appid": SANDBOX_APP_ID,
    "secret": SANDBOX_APP_SECRET,
}
DELIVERY_LIST = "/cgi-bin/express/delivery/open_msg/get_delivery_list"
PHONE = "/wxa/business/getuserphonenumber"
SUBSCRIBE = "/cgi-bin/message/subscribe/send"
SHIPPING = "/wxa/sec/order/upload_shipping_info"


def login(wx, code, **overrides):
    params = {
        "appid": SANDBOX_APP_ID,
        "secret": SANDBOX_APP_SECRET,
        "js_code": code,
        "grant_type": "authorization_code",
        **overrides,
    }
    return wx.get("/sns/jscode2session", **params).json()


# --- access tokens --------------------------------------------------------------------------


def test_token_lasts_two_hours_and_opens_the_platform(wx):
    answer = wx.get("/cgi-bin/token", **CREDENTIALS).json()

    assert set(answer) == {"access_token", "expires_in"}
    assert answer["expires_in"] == 7200
    assert len(answer["access_token"]) == 128
    listed = wx.post(DELIVERY_LIST, {}, access_token=answer["access_token"]).json()
    assert listed["errcode"] == 0


@pytest.mark.parametrize(
    ("override", "errcode", "errmsg"),
    [
        ({"grant_type": "password"}, 40002, "invalid grant_type"),
        ({"appid": "wx0000000000000000"}, 40013, "invalid appid"),
        ({"secret": "guessed"}, 40125, "invalid appsecret"),
    ],
)
def test_token_refuses_wrong_credentials(wx, override, errcode, errmsg):
    answer = wx.get("/cgi-bin/token", **{**CREDENTIALS, **override}).json()

    assert answer == {"errcode": errcode, "errmsg": errmsg}


def test_a_new_token_leaves_the_previous_one_five_minutes(wx, sandbox):
    first, second = wx.token(), wx.token()
    assert first != second

    sandbox.advance_clock(299)
    assert wx.post(DELIVERY_LIST, {}, access_token=first).json()["errcode"] == 0
    sandbox.advance_clock(2)
    assert wx.post(DELIVERY_LIST, {}, access_token=first).json() == {
        "errcode": 40001,
        "errmsg": "invalid credential, access_token is invalid or not latest",
    }
    assert wx.post(DELIVERY_LIST, {}, access_token=second).json()["errcode"] == 0


def test_stable_token_returns_the_same_token_with_what_is_left_of_it(wx, sandbox):
    first = wx.post("/cgi-bin/stable_token", CREDENTIALS).json()
    sandbox.advance_clock(100)
    again = wx.post("/cgi-bin/stable_token", {**CREDENTIALS, "force_refresh": False}).json()

    assert first["expires_in"] == 7200
    assert again == {"access_token": first["access_token"], "expires_in": 7100}


def test_stable_token_is_independent_of_the_ordinary_token(wx):
    stable = wx.post("/cgi-bin/stable_token", CREDENTIALS).json()["access_token"]
    wx.token()
    wx.token()

    assert wx.post(DELIVERY_LIST, {}, access_token=stable).json()["errcode"] == 0


def test_force_refresh_replaces_the_stable_token_at_once(wx):
    old = wx.post("/cgi-bin/stable_token", CREDENTIALS).json()["access_token"]
    new = wx.post("/cgi-bin/stable_token", {**CREDENTIALS, "force_refresh": True}).json()

    assert new["access_token"] != old
    assert new["expires_in"] == 7200
    assert wx.post(DELIVERY_LIST, {}, access_token=old).json()["errcode"] == 40001
    assert wx.post(DELIVERY_LIST, {}, access_token=new["access_token"]).json()["errcode"] == 0


def test_force_refresh_is_limited_to_twenty_a_day(wx, sandbox):
    forced = {**CREDENTIALS, "force_refresh": True}
    answers = [wx.post("/cgi-bin/stable_token", forced).json() for _ in range(21)]

    assert all("access_token" in answer for answer in answers[:20])
    assert answers[20] == {"errcode": 45009, "errmsg": "reach max api daily quota limit"}
    sandbox.advance_clock(86400)
    assert "access_token" in wx.post("/cgi-bin/stable_token", forced).json()


def test_an_expired_stable_token_is_replaced_without_forcing(wx, sandbox):
    old = wx.post("/cgi-bin/stable_token", CREDENTIALS).json()["access_token"]
    sandbox.advance_clock(7200)

    assert wx.post(DELIVERY_LIST, {}, access_token=old).json() == {
        "errcode": 42001,
        "errmsg": "access_token expired",
    }
    new = wx.post("/cgi-bin/stable_token", CREDENTIALS).json()
    assert new["access_token"] != old
    assert new["expires_in"] == 7200


@pytest.mark.parametrize(
    ("body", "errcode", "errmsg"),
    [
        ("not json", 47001, "data format error"),
        ({**CREDENTIALS, "secret": "guessed"}, 40125, "invalid appsecret"),
        (
            {**CREDENTIALS, "force_refresh": "yes"},
            47001,
            "data format error, hint: [force_refresh must be a boolean]",
        ),
    ],
)
def test_stable_token_refuses_bad_requests(wx, body, errcode, errmsg):
    if isinstance(body, str):
        answer = wx.http.post(wx.url + "cgi-bin/stable_token", data=body, timeout=5).json()
    else:
        answer = wx.post("/cgi-bin/stable_token", body).json()

    assert answer == {"errcode": errcode, "errmsg": errmsg}


@pytest.mark.parametrize("path", [PHONE, SUBSCRIBE, SHIPPING, DELIVERY_LIST])
def test_every_token_taking_endpoint_checks_the_token(wx, sandbox, path):
    missing = wx.post(path, {}).json()
    unknown = wx.post(path, {}, access_token="forged").json()
    token = wx.token()
    sandbox.advance_clock(7200)
    expired = wx.post(path, {}, access_token=token).json()

    assert missing == {"errcode": 41001, "errmsg": "access_token missing"}
    assert unknown["errcode"] == 40001
    assert expired == {"errcode": 42001, "errmsg": "access_token expired"}


# --- login ----------------------------------------------------------------------------------


def test_login_code_gives_openid_session_key_and_unionid(wx):
    answer = login(wx, wx.js_code(LIN))

    assert set(answer) == {"openid", "session_key", "unionid"}
    assert answer["openid"] == LIN
    assert answer["unionid"] == "uSbx_LinXiaomei0000000000001"
    assert len(base64.b64decode(answer["session_key"])) == 16


def test_login_of_a_user_without_unionid_has_none(wx):
    answer = login(wx, wx.js_code(CHEN))

    assert set(answer) == {"openid", "session_key"}
    assert answer["openid"] == CHEN


def test_login_code_works_once(wx):
    code = wx.js_code(WANG)

    assert login(wx, code)["openid"] == WANG
    assert login(wx, code) == {"errcode": 40163, "errmsg": "code been used"}


def test_login_code_expires_after_five_minutes(wx, sandbox):
    code = wx.js_code(WANG)
    sandbox.advance_clock(300)

    assert login(wx, code) == {"errcode": 40029, "errmsg": "invalid code"}


@pytest.mark.parametrize(
    ("override", "errcode", "errmsg"),
    [
        ({"js_code": "0" * 32}, 40029, "invalid code"),
        ({"js_code": ""}, 41008, "missing code"),
        ({"appid": "wx0000000000000000"}, 40013, "invalid appid"),
        ({"secret": "guessed"}, 40125, "invalid appsecret"),
        ({"grant_type": "client_credential"}, 40002, "invalid grant_type"),
    ],
)
def test_login_refuses_bad_requests_and_keeps_the_code(wx, override, errcode, errmsg):
    code = wx.js_code(LIN)

    assert login(wx, code, **override) == {"errcode": errcode, "errmsg": errmsg}
    assert login(wx, code)["openid"] == LIN


def test_login_of_a_risky_user_is_refused(wx):
    assert login(wx, wx.js_code(RISKY)) == {"errcode": 40226, "errmsg": "high risk user"}


def test_too_many_logins_a_minute_are_refused_without_using_the_code(wx, sandbox, monkeypatch):
    monkeypatch.setattr(sandbox.miniprogram, "login_limit_per_minute", 2)
    assert login(wx, wx.js_code(LIN))["openid"] == LIN
    assert login(wx, wx.js_code(LIN))["openid"] == LIN
    third = wx.js_code(LIN)

    assert login(wx, third) == {
        "errcode": 45011,
        "errmsg": "api minute-quota reach limit  mustslower  retry next minute",
    }
    assert login(wx, wx.js_code(WANG))["openid"] == WANG
    sandbox.advance_clock(60)
    assert login(wx, third)["openid"] == LIN


# --- phone number ---------------------------------------------------------------------------


def test_phone_code_gives_the_phone_number(wx):
    token = wx.token()
    before = int(time.time())
    answer = wx.post(PHONE, {"code": wx.phone_code(LIN)}, access_token=token).json()

    timestamp = answer["phone_info"]["watermark"].pop("timestamp")
    assert before <= timestamp <= int(time.time())
    assert answer == {
        "errcode": 0,
        "errmsg": "ok",
        "phone_info": {
            "phoneNumber": "13800138001",
            "purePhoneNumber": "13800138001",
            "countryCode": 86,
            "watermark": {"appid": SANDBOX_APP_ID},
        },
    }


def test_phone_code_works_once_and_only_for_five_minutes(wx, sandbox):
    token = wx.token()
    used, late = wx.phone_code(WANG), wx.phone_code(WANG)
    assert wx.post(PHONE, {"code": used}, access_token=token).json()["errcode"] == 0

    assert wx.post(PHONE, {"code": used}, access_token=token).json() == {
        "errcode": 40029,
        "errmsg": "invalid code",
    }
    sandbox.advance_clock(300)
    token = wx.token()
    assert wx.post(PHONE, {"code": late}, access_token=token).json()["errcode"] == 40029


@pytest.mark.parametrize(
    ("body", "errcode"), [({"code": "f" * 32}, 40029), ({}, 47001), ({"code": 7}, 47001)]
)
def test_phone_refuses_bad_codes(wx, body, errcode):
    answer = wx.post(PHONE, body, access_token=wx.token()).json()

    assert answer["errcode"] == errcode


def test_no_phone_code_for_a_user_without_a_phone_or_an_unknown_user(wx):
    no_phone = wx.post("/sandbox/phone-codes", {"openid": ZHAO})
    unknown = wx.post("/sandbox/phone-codes", {"openid": "oNobody"})

    assert no_phone.status_code == 400
    assert no_phone.json() == {"error": f"WeChat user {ZHAO} has no phone number bound"}
    assert unknown.status_code == 400
    assert unknown.json() == {"error": "no WeChat user with openid 'oNobody' in the sandbox"}


# --- subscribe messages ---------------------------------------------------------------------

SHIPPED_DATA = {
    "character_string1": {"value": "SO202603010001"},
    "thing2": {"value": "顺丰速运"},
    "character_string3": {"value": "SF1234567890"},
    "time4": {"value": "2026-03-01 10:15"},
}


def subscribe_body(**overrides):
    return {
        "touser": LIN,
        "template_id": "sandbox-order-shipped",
        "page": "pages/order/detail?id=1",
        "data": copy.deepcopy(SHIPPED_DATA),
        "miniprogram_state": "formal",
        "lang": "zh_CN",
        **overrides,
    }


def test_subscribe_message_needs_the_users_allowance_once_per_message(wx):
    token = wx.token()
    wx.allow(LIN, "sandbox-order-shipped", times=2)

    answers = [wx.post(SUBSCRIBE, subscribe_body(), access_token=token).json() for _ in range(3)]

    assert answers == [
        {"errcode": 0, "errmsg": "ok"},
        {"errcode": 0, "errmsg": "ok"},
        {"errcode": 43101, "errmsg": "user refuse to accept the msg"},
    ]
    assert wx.get("/sandbox/subscriptions").json() == {"subscriptions": []}


def test_subscribe_message_without_allowance_is_refused(wx):
    wx.allow(LIN, "sandbox-order-paid")

    answer = wx.post(SUBSCRIBE, subscribe_body(), access_token=wx.token()).json()

    assert answer == {"errcode": 43101, "errmsg": "user refuse to accept the msg"}


@pytest.mark.parametrize(
    ("overrides", "errcode", "errmsg"),
    [
        ({"touser": "oNobody"}, 40003, "invalid openid"),
        ({"template_id": "unknown"}, 40037, "invalid template_id"),
        ({"miniprogram_state": "beta"}, 47001, "data format error, hint: [miniprogram_state]"),
        ({"lang": "fr_FR"}, 47001, "data format error, hint: [lang]"),
        ({"data": "SO202603010001"}, 47001, "data format error, hint: [data]"),
        (
            {"data": {**SHIPPED_DATA, "thing9": {"value": "x"}}},
            47003,
            "argument invalid!, hint: [data.thing9 is not a keyword of the template]",
        ),
        (
            {"data": {k: v for k, v in SHIPPED_DATA.items() if k != "time4"}},
            47003,
            "argument invalid!, hint: [data.time4.value is empty]",
        ),
        (
            {"data": {**SHIPPED_DATA, "thing2": {"value": "顺" * 21}}},
            47003,
            "argument invalid!, hint: [data.thing2.value invalid for thing]",
        ),
        (
            {"data": {**SHIPPED_DATA, "time4": {"value": "tomorrow"}}},
            47003,
            "argument invalid!, hint: [data.time4.value invalid for time]",
        ),
        (
            {"data": {**SHIPPED_DATA, "character_string1": {"value": "订单1"}}},
            47003,
            "argument invalid!, hint: [data.character_string1.value invalid for character_string]",
        ),
    ],
)
def test_subscribe_message_refuses_bad_messages_and_keeps_the_allowance(
    wx, overrides, errcode, errmsg
):
    wx.allow(LIN, "sandbox-order-shipped")

    answer = wx.post(SUBSCRIBE, subscribe_body(**overrides), access_token=wx.token()).json()

    assert answer == {"errcode": errcode, "errmsg": errmsg}
    assert wx.get("/sandbox/subscriptions").json() == {
        "subscriptions": [{"openid": LIN, "template_id": "sandbox-order-shipped", "remaining": 1}]
    }


def test_subscribe_checks_amount_and_phrase_values(wx):
    token = wx.token()
    wx.allow(WANG, "sandbox-order-paid")
    wx.allow(WANG, "sandbox-pickup-ready")
    paid = {
        "character_string1": {"value": "SO1"},
        "amount2": {"value": "￥12.50"},
        "thing3": {"value": "静安寺店"},
        "time4": {"value": "2026年3月1日 10:15"},
    }
    ready = {
        "character_string1": {"value": "SO1"},
        "thing2": {"value": "静安寺店"},
        "phrase3": {"value": "待取货"},
        "time4": {"value": "10:15"},
    }
    bad_amount = {**paid, "amount2": {"value": "12.505"}}
    bad_phrase = {**ready, "phrase3": {"value": "ready"}}

    def send(template_id, data):
        body = {"touser": WANG, "template_id": template_id, "data": data}
        return wx.post(SUBSCRIBE, body, access_token=token).json()["errcode"]

    assert send("sandbox-order-paid", bad_amount) == 47003
    assert send("sandbox-pickup-ready", bad_phrase) == 47003
    assert send("sandbox-order-paid", paid) == 0
    assert send("sandbox-pickup-ready", ready) == 0


def test_allowing_a_template_checks_user_template_and_times(wx):
    assert wx.post("/sandbox/subscriptions", {"openid": "x", "template_id": "t"}).json() == {
        "error": "no WeChat user with openid 'x' in the sandbox"
    }
    body = {"openid": LIN, "template_id": "t"}
    assert wx.post("/sandbox/subscriptions", body).json() == {
        "error": "no template 't' in the sandbox"
    }
    body = {"openid": LIN, "template_id": "sandbox-order-paid", "times": 0}
    assert wx.post("/sandbox/subscriptions", body).json() == {
        "error": "times must be a positive integer"
    }


# --- order shipping -------------------------------------------------------------------------


def shipping_body(**overrides):
    return {
        "order_key": {"order_number_type": 2, "transaction_id": "4200002026030100000001"},
        "logistics_type": 1,
        "delivery_mode": 1,
        "shipping_list": [
            {
                "tracking_no": "ZT7700000001",
                "express_company": "ZTO",
                "item_desc": "有机牛奶 x2",
                "contact": {"receiver_contact": "138****8001"},
            }
        ],
        "upload_time": "2026-03-01T10:15:30.120+08:00",
        "payer": {"openid": LIN},
        **overrides,
    }


def shipped(wx, key):
    return wx.get("/sandbox/shipments").json()["shipments"][key]


def parcel(number, **overrides):
    return {
        "tracking_no": f"SF10000000{number:02d}",
        "express_company": "SF",
        "item_desc": f"包裹 {number}",
        "contact": {"receiver_contact": "138****8001"},
        **overrides,
    }


def test_shipping_info_is_accepted_once_for_a_unified_delivery(wx):
    answer = wx.post(SHIPPING, shipping_body(), access_token=wx.token()).json()

    assert answer == {"errcode": 0, "errmsg": "ok"}
    shipments = wx.get("/sandbox/shipments").json()["shipments"]
    assert shipments == {
        "transaction_id:4200002026030100000001": {
            "order_key": {"order_number_type": 2, "transaction_id": "4200002026030100000001"},
            "payer_openid": LIN,
            "logistics_type": 1,
            "delivery_mode": 1,
            "is_all_delivered": None,
            "shipping_list": shipping_body()["shipping_list"],
            "last_upload_time": "2026-03-01T10:15:30.120000+08:00",
            "shipped": True,
            "uploads": 1,
            "reuploaded": False,
        }
    }


def test_split_delivery_ships_when_all_parcels_are_in(wx):
    token = wx.token()
    key = {"order_number_type": 1, "mchid": "1900000109", "out_trade_no": "SO202603010002"}
    first = shipping_body(
        order_key=key, delivery_mode=2, is_all_delivered=False, shipping_list=[parcel(1)]
    )
    second = shipping_body(
        order_key=key,
        delivery_mode=2,
        is_all_delivered=True,
        shipping_list=[parcel(2), parcel(3)],
        upload_time="2026-03-01T11:00:00+08:00",
    )

    assert wx.post(SHIPPING, first, access_token=token).json()["errcode"] == 0
    shipment = shipped(wx, "mchid:1900000109:out_trade_no:SO202603010002")
    assert (shipment["shipped"], len(shipment["shipping_list"])) == (False, 1)
    assert wx.post(SHIPPING, second, access_token=token).json()["errcode"] == 0
    shipment = shipped(wx, "mchid:1900000109:out_trade_no:SO202603010002")
    assert (shipment["shipped"], shipment["uploads"]) == (True, 2)
    assert shipment["shipping_list"] == [parcel(1), parcel(2), parcel(3)]


def test_the_same_shipping_info_again_is_recognised_and_changes_nothing(wx):
    token = wx.token()
    wx.post(SHIPPING, shipping_body(), access_token=token)
    again = shipping_body(upload_time="2026-03-01T12:00:00+08:00")

    answer = wx.post(SHIPPING, again, access_token=token).json()

    assert answer == {"errcode": 10060023, "errmsg": "发货信息未更新，拒绝本次上传"}
    shipment = shipped(wx, "transaction_id:4200002026030100000001")
    assert (shipment["uploads"], shipment["reuploaded"]) == (1, False)
    assert shipment["last_upload_time"] == "2026-03-01T10:15:30.120000+08:00"


def test_a_shipped_payment_may_be_corrected_once(wx):
    token = wx.token()
    wx.post(SHIPPING, shipping_body(), access_token=token)
    corrected = shipping_body(
        shipping_list=[{**shipping_body()["shipping_list"][0], "tracking_no": "ZT7700000002"}],
        upload_time="2026-03-01T12:00:00+08:00",
    )
    twice = shipping_body(
        shipping_list=[{**shipping_body()["shipping_list"][0], "tracking_no": "ZT7700000003"}],
        upload_time="2026-03-01T13:00:00+08:00",
    )

    assert wx.post(SHIPPING, corrected, access_token=token).json() == {"errcode": 0, "errmsg": "ok"}
    assert wx.post(SHIPPING, twice, access_token=token).json() == {
        "errcode": 10060003,
        "errmsg": "支付单已使用重新发货机会",
    }
    shipment = shipped(wx, "transaction_id:4200002026030100000001")
    assert shipment["shipping_list"][0]["tracking_no"] == "ZT7700000002"
    assert (shipment["uploads"], shipment["reuploaded"]) == (2, True)


def test_an_upload_must_be_later_than_the_last_and_by_the_same_payer(wx):
    token = wx.token()
    wx.post(SHIPPING, shipping_body(), access_token=token)
    changed = {**shipping_body()["shipping_list"][0], "tracking_no": "ZT7700000009"}

    earlier = shipping_body(shipping_list=[changed], upload_time="2026-03-01T10:15:30+08:00")
    other_payer = shipping_body(
        shipping_list=[changed], payer={"openid": WANG}, upload_time="2026-03-02T00:00:00Z"
    )

    assert wx.post(SHIPPING, earlier, access_token=token).json() == {
        "errcode": 10060014,
        "errmsg": "参数错误, hint: [upload_time must be later than the last upload]",
    }
    assert wx.post(SHIPPING, other_payer, access_token=token).json() == {
        "errcode": 10060031,
        "errmsg": "该笔支付单不属于 openid 所指定的用户",
    }
    shipment = shipped(wx, "transaction_id:4200002026030100000001")
    assert shipment["uploads"] == 1


@pytest.mark.parametrize(
    ("logistics_type", "shipping_list"),
    [
        (2, [{"item_desc": "同城配送：有机牛奶 x2"}]),
        (3, [{"item_desc": "电子礼品卡"}]),
        (4, [{"item_desc": "门店自提：有机牛奶 x2"}]),
    ],
)
def test_non_courier_deliveries_need_no_tracking_number(wx, logistics_type, shipping_list):
    body = shipping_body(logistics_type=logistics_type, shipping_list=shipping_list)

    assert wx.post(SHIPPING, body, access_token=wx.token()).json() == {"errcode": 0, "errmsg": "ok"}


ITEM = shipping_body()["shipping_list"][0]
BAD_TIME = "上传时间非法，请按照 RFC 3339 格式填写"


@pytest.mark.parametrize(
    ("overrides", "errcode", "errmsg"),
    [
        ({"order_key": None}, 47001, "data format error, hint: [order_key]"),
        ({"order_key": {"order_number_type": 3}}, 10060014, "参数错误, hint: [order_key]"),
        (
            {"order_key": {"order_number_type": 1, "out_trade_no": "SO1"}},
            10060014,
            "参数错误, hint: [order_key]",
        ),
        ({"payer": {}}, 47001, "data format error, hint: [payer.openid]"),
        ({"logistics_type": 5}, 10060005, "物流类型有误"),
        ({"logistics_type": "1"}, 10060005, "物流类型有误"),
        ({"delivery_mode": 3}, 268485224, "发货模式非法"),
        (
            {"delivery_mode": 2, "logistics_type": 2, "is_all_delivered": True},
            10060006,
            "非快递发货时不允许分拆发货",
        ),
        ({"delivery_mode": 2}, 10060007, "分拆发货模式下必须填写 is_all_delivered 字段"),
        (
            {"shipping_list": ITEM},
            47001,
            "data format error, hint: [shipping_list must be a non-empty list]",
        ),
        (
            {"shipping_list": []},
            47001,
            "data format error, hint: [shipping_list must be a non-empty list]",
        ),
        (
            {
                "delivery_mode": 2,
                "is_all_delivered": True,
                "shipping_list": [parcel(n) for n in range(16)],
            },
            10060024,
            "物流信息列表太长",
        ),
        (
            {"shipping_list": [parcel(1), parcel(2)]},
            268485228,
            "统一发货模式下，物流信息列表长度必须为 1",
        ),
        ({"shipping_list": [{**ITEM, "item_desc": " "}]}, 10060008, "商品描述字段不能为空"),
        ({"shipping_list": [{**ITEM, "item_desc": "奶" * 121}]}, 10060009, "商品描述字段长度过长"),
        (
            {"shipping_list": [{**ITEM, "tracking_no": ""}]},
            10060014,
            "参数错误, hint: [tracking_no is required for courier delivery]",
        ),
        ({"shipping_list": [{**ITEM, "tracking_no": "9" * 129}]}, 10060026, "物流单号太长"),
        (
            {"shipping_list": [{**ITEM, "express_company": "NOPE"}]},
            10060014,
            "参数错误, hint: [express_company is not a delivery_id]",
        ),
        ({"shipping_list": [{**ITEM, "express_company": "Z" * 129}]}, 10060025, "物流公司编码太长"),
        (
            {"shipping_list": [{**ITEM, "express_company": "SF", "contact": {}}]},
            10060014,
            "参数错误, hint: [contact is required for SF]",
        ),
        ({"upload_time": "2026-03-01T10:15:30"}, 268485216, BAD_TIME),
        ({"upload_time": "2026/03/01 10:15"}, 268485216, BAD_TIME),
        ({"upload_time": 1772331330}, 268485216, BAD_TIME),
    ],
)
def test_shipping_info_is_checked_field_by_field(wx, overrides, errcode, errmsg):
    answer = wx.post(SHIPPING, shipping_body(**overrides), access_token=wx.token()).json()

    assert answer == {"errcode": errcode, "errmsg": errmsg}
    assert wx.get("/sandbox/shipments").json() == {"shipments": {}}


def test_shipping_info_that_is_not_json_is_a_format_error(wx):
    url = f"{wx.url}wxa/sec/order/upload_shipping_info"
    response = wx.http.post(url, params={"access_token": wx.token()}, data=b"<xml/>", timeout=5)

    assert response.json() == {"errcode": 47001, "errmsg": "data format error"}


# --- carriers -------------------------------------------------------------------------------


def test_delivery_list_names_the_carriers(wx):
    answer = wx.post(DELIVERY_LIST, {}, access_token=wx.token()).json()

    assert answer == {
        "errcode": 0,
        "errmsg": "ok",
        "delivery_list": [
            {"delivery_id": "SF", "delivery_name": "顺丰速运"},
            {"delivery_id": "ZTO", "delivery_name": "中通快递"},
            {"delivery_id": "YTO", "delivery_name": "圆通速递"},
            {"delivery_id": "STO", "delivery_name": "申通快递"},
            {"delivery_id": "YD", "delivery_name": "韵达快递"},
            {"delivery_id": "JTSD", "delivery_name": "极兔速递"},
            {"delivery_id": "EMS", "delivery_name": "EMS"},
            {"delivery_id": "JD", "delivery_name": "京东物流"},
        ],
        "count": 8,
    }
