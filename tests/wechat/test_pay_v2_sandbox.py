"""The sandbox's WeChat Pay v2 side over HTTP, as WeChat's merchants and tests talk to it: XML
answers signed both ways (checked with wechatpy's signer, not the sandbox's), the checks WeChat
makes before the business, faults, the control endpoints, the cashier and the pages."""

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac, dict_to_xml

from tests.wechat.conftest import CHEN, LIN
from tests.wechat.test_pay_v2 import Receiver
from wechat.pay import v2
from wechat.sandbox import SANDBOX_APP_ID
from wechat.sandbox.pay_v2 import SANDBOX_MCH_ID, SANDBOX_V2_API_KEY

KEY = SANDBOX_V2_API_KEY
NOTIFY_PATH = "/wechat/pay/notify/v2/"


@pytest.fixture(scope="module")
def receiver_server():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def receiver(receiver_server):
    """A stand-in for the platform's notify endpoints (what it received, what it answers)."""
    receiver_server.reset()
    yield receiver_server
    receiver_server.reset()


def signed_xml(fields: dict, *, key: str = KEY, sign_type: str | None = None) -> bytes:
    data = {"appid": SANDBOX_APP_ID, "mch_id": SANDBOX_MCH_ID, "nonce_str": "n" * 32, **fields}
    if sign_type:
        data["sign_type"] = sign_type
    data = {name: value for name, value in data.items() if value is not None}
    signer = calculate_signature_hmac if sign_type == "HMAC-SHA256" else calculate_signature
    return dict_to_xml(data, signer(data, key)).encode()


def post(wx, path: str, body: bytes, *, sign_type: str = "MD5") -> dict[str, str]:
    """POST ``body`` to a v2 endpoint; the answer's fields, its signature checked."""
    response = wx.http.post(wx.url + path.lstrip("/"), data=body, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    fields = v2.parse_xml(response.content)
    if fields["return_code"] == "SUCCESS":
        unsigned = {name: value for name, value in fields.items() if name != "sign"}
        signer = calculate_signature_hmac if sign_type == "HMAC-SHA256" else calculate_signature
        assert fields["sign"] == signer(unsigned, KEY)
        assert (fields["appid"], fields["mch_id"]) == (SANDBOX_APP_ID, SANDBOX_MCH_ID)
    return fields


def call(wx, path: str, fields: dict, **signing) -> dict[str, str]:
    return post(
        wx, path, signed_xml(fields, **signing), sign_type=signing.get("sign_type") or "MD5"
    )


def order(wx, number: str = "P1", **overrides) -> dict[str, str]:
    fields = {
        "body": "燕麦拿铁",
        "out_trade_no": number,
        "total_fee": "1800",
        "spbill_create_ip": "203.0.113.7",
        "notify_url": "http://127.0.0.1:9/wechat/pay/notify/v2/",
        "trade_type": "JSAPI",
        "openid": LIN,
        **overrides,
    }
    return call(wx, "/pay/unifiedorder", fields)


def refusal(fields: dict[str, str]) -> tuple[str, str, str]:
    return fields["result_code"], fields["err_code"], fields["err_code_des"]


def control(wx, path: str, body=None, status: int = 200) -> dict:
    response = wx.post(f"/sandbox/pay/v2/{path}", body)
    assert response.status_code == status, response.text
    return response.json()


# --- what WeChat checks before the business ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "post数据为空"),
        (b"out_trade_no=P1", "XML格式错误"),
        (b"<xml><a>1</a>", "XML格式错误"),
        (b"<!DOCTYPE xml [<!ENTITY e 'x'>]><xml><a>&e;</a></xml>", "XML格式错误"),
        (
            signed_xml({"mch_id": "1900000000", "out_trade_no": "P1"}),
            "商户号mch_id不存在或格式错误",
        ),
        (signed_xml({"out_trade_no": "P1"}, key="0" * 32), "签名错误"),
        (signed_xml({"out_trade_no": "P1"}, sign_type="SHA1"), "签名类型sign_type错误"),
        (signed_xml({"out_trade_no": "P1"}).replace(b"P1", b"P2"), "签名错误"),
    ],
)
def test_what_cannot_be_read_or_verified_is_return_code_fail(wx, body, message):
    answer = post(wx, "/pay/orderquery", body)

    assert answer == {"return_code": "FAIL", "return_msg": message}


def test_another_app_of_the_merchant_is_appid_mchid_not_match(wx):
    answer = call(wx, "/pay/orderquery", {"appid": "wx0000000000000000", "out_trade_no": "P1"})

    assert refusal(answer) == ("FAIL", "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")


@pytest.mark.parametrize("missing", ["body", "out_trade_no", "total_fee", "notify_url", "openid"])
def test_a_missing_field_is_lack_params(wx, missing):
    answer = order(wx, **{missing: None})

    assert answer["err_code"] == "LACK_PARAMS"
    assert missing in answer["err_code_des"]


@pytest.mark.parametrize(
    ("override", "des"),
    [
        ({"total_fee": "0"}, "total_fee参数格式错误"),
        ({"total_fee": "-5"}, "total_fee参数格式错误"),
        ({"total_fee": "18.00"}, "total_fee参数格式错误"),
        ({"total_fee": "0180"}, "total_fee参数格式错误"),
        ({"out_trade_no": "P" * 33}, "out_trade_no参数格式错误"),
        ({"out_trade_no": "P 1"}, "out_trade_no参数格式错误"),
        ({"body": "燕" * 43}, "body参数长度有误"),
        (
            {"notify_url": "http://127.0.0.1:9/n?order=1"},
            "notify_url参数格式错误（须为不带参数的http(s)地址）",
        ),
        (
            {"notify_url": "ftp://127.0.0.1/n"},
            "notify_url参数格式错误（须为不带参数的http(s)地址）",
        ),
        ({"trade_type": "NATIVE"}, "沙箱只支持trade_type=JSAPI"),
        ({"openid": "oSbx5t1_Stranger000000000009"}, "appid和openid不匹配"),
        ({"time_expire": "2026-11-25"}, "time_expire时间格式错误"),
    ],
)
def test_unifiedorder_checks_its_fields(wx, sandbox, override, des):
    answer = order(wx, **override)

    assert refusal(answer) == ("FAIL", "PARAM_ERROR", des)
    assert sandbox.pay_v2._trades == {}


def test_an_hmac_sha256_request_gets_an_hmac_sha256_answer(wx):
    answer = call(wx, "/pay/orderquery", {"out_trade_no": "P1"}, sign_type="HMAC-SHA256")

    assert refusal(answer) == ("FAIL", "ORDERNOTEXIST", "此交易订单号不存在")


def test_every_call_is_recorded_with_its_xml(wx):
    order(wx)

    [logged] = wx.calls("/pay/unifiedorder")
    assert v2.parse_xml(logged["body"])["out_trade_no"] == "P1"
    assert v2.parse_xml(logged["answer"])["result_code"] == "SUCCESS"
    assert logged["status"] == 200


# --- the merchant's endpoints --------------------------------------------------------------------


def test_unifiedorder_answers_a_prepay_id_and_keeps_the_trade(wx, sandbox):
    answer = order(wx)

    assert set(answer) == {
        "return_code",
        "return_msg",
        "appid",
        "mch_id",
        "nonce_str",
        "sign",
        "result_code",
        "trade_type",
        "prepay_id",
    }
    assert re.fullmatch(r"wx\d{14}[0-9a-f]{16}", answer["prepay_id"])
    listed = wx.get("/sandbox/pay/v2/trades").json()
    assert listed == {
        "trades": [
            {
                "out_trade_no": "P1",
                "trade_type": "JSAPI",
                "trade_state": "NOTPAY",
                "openid": LIN,
                "body": "燕麦拿铁",
                "total_fee": 1800,
                "transaction_id": "",
                "prepay_id": answer["prepay_id"],
                "notify_url": "http://127.0.0.1:9/wechat/pay/notify/v2/",
                "time_end": "",
                "refunded_fee": 0,
                "refunds": [],
            }
        ],
        "refunds": [],
    }


def test_a_trade_is_found_by_its_transaction_id(wx, sandbox):
    order(wx)
    paid = control(wx, "pay", {"out_trade_no": "P1", "notify": False})["trade"]

    answer = call(wx, "/pay/orderquery", {"transaction_id": paid["transaction_id"]})
    unknown = call(wx, "/pay/orderquery", {"transaction_id": "4200000000000000000000000000"})

    assert (answer["out_trade_no"], answer["trade_state"], answer["cash_fee"]) == (
        "P1",
        "SUCCESS",
        "1800",
    )
    assert unknown["err_code"] == "ORDERNOTEXIST"


def test_a_trade_past_its_time_expire_cannot_be_paid(wx, sandbox):
    order(wx, time_expire="20200101000000")

    refused = control(wx, "pay", {"out_trade_no": "P1"}, status=400)
    page = wx.http.post(f"{wx.url}sandbox/pay/v2/P1", data={}, timeout=5)

    assert refused == {"error": "trade P1 expired (time_expire), not payable"}
    assert page.status_code == 409
    assert sandbox.pay_v2._trades["P1"].state == "NOTPAY"


def test_a_payment_code_trade_is_reversed_not_closed(wx, sandbox):
    code = control(wx, "payment-codes", {}, status=201)["auth_code"]
    fields = {"body": "柜台", "out_trade_no": "C1", "total_fee": "500"}
    call(wx, "/pay/micropay", {**fields, "spbill_create_ip": "10.0.0.8", "auth_code": code})

    answer = call(wx, "/pay/closeorder", {"out_trade_no": "C1"})

    assert refusal(answer) == ("FAIL", "TRADE_ERROR", "付款码支付的订单请调用撤销订单接口")


def micropay(wx, code: str, number: str = "C1", total: str = "500") -> dict[str, str]:
    fields = {"body": "柜台", "out_trade_no": number, "total_fee": total}
    return call(wx, "/pay/micropay", {**fields, "spbill_create_ip": "10.0.0.8", "auth_code": code})


def test_micropay_refuses_what_is_not_the_same_payment(wx):
    userpaying = control(wx, "payment-codes", {"outcome": "userpaying"}, status=201)["auth_code"]
    other = control(wx, "payment-codes", {}, status=201)["auth_code"]
    micropay(wx, userpaying)

    amount = micropay(wx, userpaying, total="501")
    payer = micropay(wx, other)
    malformed = micropay(wx, "9912345678", number="C2")

    assert amount["err_code"] == "OUT_TRADE_NO_USED"
    assert payer["err_code"] == "BUYER_MISMATCH"
    assert malformed["err_code"] == "AUTH_CODE_INVALID"


def test_a_refunded_payment_code_trade_cannot_be_reversed_and_a_revoked_one_not_refunded(wx):
    paid = control(wx, "payment-codes", {}, status=201)["auth_code"]
    revoked = control(wx, "payment-codes", {}, status=201)["auth_code"]
    micropay(wx, paid, number="C1")
    micropay(wx, revoked, number="C2")
    refund = {"total_fee": "500", "refund_fee": "100"}
    call(wx, "/secapi/pay/refund", {"out_trade_no": "C1", "out_refund_no": "R1", **refund})
    call(wx, "/secapi/pay/reverse", {"out_trade_no": "C2"})

    reversed_ = call(wx, "/secapi/pay/reverse", {"out_trade_no": "C1"})
    refunded = call(
        wx, "/secapi/pay/refund", {"out_trade_no": "C2", "out_refund_no": "R2", **refund}
    )

    assert refusal(reversed_) == ("FAIL", "TRADE_ERROR", "订单已发生退款，不能撤销")
    assert refusal(refunded) == ("FAIL", "ERROR", "订单已撤销")


def test_a_payment_code_trade_is_reversed_within_seven_days(wx, sandbox):
    micropay(wx, control(wx, "payment-codes", {}, status=201)["auth_code"])
    sandbox.advance_clock(7 * 86400 + 1)

    answer = call(wx, "/secapi/pay/reverse", {"out_trade_no": "C1"})

    assert refusal(answer) == ("FAIL", "REVERSE_EXPIRE", "订单已经超过撤销时限")


def test_a_closed_refund_gives_its_amount_back(wx, sandbox):
    order(wx)
    control(wx, "pay", {"out_trade_no": "P1", "notify": False})
    refund = {"out_trade_no": "P1", "total_fee": "1800", "refund_fee": "1800"}
    call(wx, "/secapi/pay/refund", {**refund, "out_refund_no": "R1"})
    control(wx, "refund-result", {"out_refund_no": "R1", "status": "CLOSED"})

    again = call(wx, "/secapi/pay/refund", {**refund, "out_refund_no": "R2"})
    state = call(wx, "/pay/orderquery", {"out_trade_no": "P1"})["trade_state"]

    assert again["result_code"] == "SUCCESS"
    assert state == "REFUND"
    refunds = wx.get("/sandbox/pay/v2/trades").json()["refunds"]
    assert [(r["out_refund_no"], r["refund_status"]) for r in refunds] == [
        ("R1", "REFUNDCLOSE"),
        ("R2", "PROCESSING"),
    ]


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "err_code", "des"),
    [
        ({"mode": "busy"}, "SYSTEMERROR", "系统错误"),
        (
            {"mode": "errcode", "errcode": 1, "errmsg": "USERPAYING"},
            "USERPAYING",
            "需要用户输入支付密码",
        ),
        ({"mode": "errcode", "errcode": 7, "errmsg": "no such code"}, "SYSTEMERROR", "系统错误"),
    ],
)
def test_a_fault_answers_a_signed_refusal(wx, spec, err_code, des):
    wx.fault(path="/pay/unifiedorder", **spec)

    answer = order(wx)

    assert refusal(answer) == ("FAIL", err_code, des)
    assert [call["fault"] for call in wx.calls("/pay/unifiedorder")] == [spec["mode"]]
    assert order(wx)["result_code"] == "SUCCESS"


def test_v2_has_no_access_token_to_expire(wx):
    response = wx.post("/sandbox/faults", {"path": "/pay/micropay", "mode": "expire_token"})

    assert response.status_code == 400
    assert response.json() == {"error": "mode must be one of ['busy', 'errcode', 'timeout']"}


# --- control endpoints ---------------------------------------------------------------------------


def test_pay_without_notify_and_then_not_again(wx, receiver):
    order(wx, notify_url=f"{receiver.url}{NOTIFY_PATH}")

    paid = control(wx, "pay", {"out_trade_no": "P1", "notify": False})
    again = control(wx, "pay", {"out_trade_no": "P1"}, status=400)

    assert paid["notifies"] == []
    assert paid["trade"]["trade_state"] == "SUCCESS"
    assert re.fullmatch(r"4200001234\d{18}", paid["trade"]["transaction_id"])
    assert re.fullmatch(r"\d{14}", paid["trade"]["time_end"])
    assert again == {"error": "trade P1 is SUCCESS, not payable"}
    assert receiver.bodies() == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"out_trade_no": "P404"}, "no trade 'P404' in the sandbox"),
        ({"out_trade_no": "P1", "notify": "no"}, "notify must be a boolean"),
    ],
)
def test_pay_refuses(wx, body, error):
    order(wx)

    assert control(wx, "pay", body, status=400) == {"error": error}


def test_a_payment_code_trade_paid_on_request_sends_no_notify(wx, sandbox, receiver):
    code = control(wx, "payment-codes", {"outcome": "userpaying"}, status=201)["auth_code"]
    assert micropay(wx, code)["err_code"] == "USERPAYING"

    paid = control(wx, "pay", {"out_trade_no": "C1"})

    assert (paid["trade"]["trade_state"], paid["notifies"]) == ("SUCCESS", [])
    assert call(wx, "/pay/orderquery", {"out_trade_no": "C1"})["trade_state"] == "SUCCESS"


def test_a_notify_can_be_had_unsent(wx, receiver):
    order(wx, notify_url=f"{receiver.url}{NOTIFY_PATH}")
    control(wx, "pay", {"out_trade_no": "P1", "notify": False})

    answer = control(wx, "notify", {"out_trade_no": "P1", "deliver": False, "copies": 2})

    first, second = answer["requests"]
    assert first == second
    assert first["url"] == f"{receiver.url}{NOTIFY_PATH}"
    assert first["headers"] == {"Content-Type": "text/xml; charset=utf-8"}
    assert (first["event_type"], first["out_trade_no"], first["variant"]) == (
        "TRANSACTION.SUCCESS",
        "P1",
        None,
    )
    assert v2.signature_valid(v2.parse_xml(first["body"].encode()), KEY)
    assert receiver.bodies() == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "out_trade_no or out_refund_no is required"),
        ({"out_trade_no": "P1", "forge": "teleport"}, "forge must be one of"),
        ({"out_trade_no": "P1", "copies": 0}, "copies must be an integer in [1, 200]"),
        ({"out_trade_no": "P1", "copies": 201}, "copies must be an integer in [1, 200]"),
        ({"out_trade_no": "P1", "delay_seconds": 601}, "delay_seconds must be in [0, 600]"),
        ({"out_trade_no": "P1", "delay_seconds": "1"}, "delay_seconds must be a number"),
        ({"out_trade_no": "P1", "amount_fen": 0}, "amount_fen must be a positive integer"),
        ({"out_trade_no": "P1"}, "trade P1 was never paid"),
        ({"out_trade_no": "P1", "forge": "ciphertext"}, "a pay notify is signed, not encrypted"),
        ({"out_trade_no": "P404"}, "no trade 'P404' in the sandbox (give amount_fen"),
        ({"out_trade_no": "P404", "amount_fen": 5}, "no http(s) notify URL"),
        ({"out_refund_no": "R404"}, "no refund 'R404' in the sandbox"),
    ],
)
def test_notify_refuses(wx, body, error):
    order(wx)

    answer = control(wx, "notify", body, status=400)

    assert answer["error"].startswith(error)


def test_the_configured_notify_url_wins_over_the_requests(wx, receiver):
    order(wx)
    config = control(wx, "config", {"notify_url": f"{receiver.url}/elsewhere/"})

    paid = control(wx, "pay", {"out_trade_no": "P1"})

    assert config == {
        "mch_id": SANDBOX_MCH_ID,
        "appid": SANDBOX_APP_ID,
        "api_key_file": "wechat/sandbox/keys/v2_api_key.txt",
        "notify_url": f"{receiver.url}/elsewhere/",
        "refund_notify_url": None,
        "forge_responses": 0,
    }
    assert [record["url"] for record in paid["notifies"]] == [f"{receiver.url}/elsewhere/"]
    assert [path for path, _h, _b in receiver.received] == ["/elsewhere/"]
    assert control(wx, "config", {"notify_url": None})["notify_url"] is None
    assert wx.get("/sandbox/pay/v2/config").json()["notify_url"] is None


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"colour": "red"}, "unknown settings ['colour']"),
        ({"notify_url": "file:///etc/passwd"}, "notify_url must be an http(s) URL or null"),
        ({"refund_notify_url": 5}, "refund_notify_url must be an http(s) URL or null"),
        ({"forge_responses": -1}, "forge_responses must be a non-negative integer"),
    ],
)
def test_config_refuses(wx, body, error):
    assert control(wx, "config", body, status=400) == {"error": error}


def test_an_unreachable_platform_is_recorded(wx):
    order(wx, notify_url="http://127.0.0.1:9/wechat/pay/notify/v2/")

    [record] = control(wx, "pay", {"out_trade_no": "P1"})["notifies"]

    assert (record["status"], record["answer"], record["delivered"]) == (None, None, False)
    assert record["error"]


def test_a_platform_answering_500_is_not_delivered(wx, receiver):
    order(wx, notify_url=f"{receiver.url}{NOTIFY_PATH}")
    receiver.answer = (500, "text/plain", b"oops")

    [record] = control(wx, "pay", {"out_trade_no": "P1"})["notifies"]

    assert (record["status"], record["answer"], record["delivered"]) == (500, "oops", False)


def test_many_copies_go_at_once(wx, receiver):
    order(wx, notify_url=f"{receiver.url}{NOTIFY_PATH}")
    control(wx, "pay", {"out_trade_no": "P1", "notify": False})

    sent = control(wx, "notify", {"out_trade_no": "P1", "copies": 20})["notifies"]

    assert [record["delivered"] for record in sent] == [True] * 20
    assert len(set(receiver.bodies(NOTIFY_PATH))) == 1
    assert len(receiver.bodies(NOTIFY_PATH)) == 20
    assert [r["id"] for r in wx.get("/sandbox/pay/v2/notifies").json()["notifies"]] == list(
        range(1, 21)
    )


def refund_of(wx, receiver=None, amount: str = "600") -> None:
    notify_url = f"{receiver.url}/wechat/pay/notify/v2/refund/" if receiver else None
    order(wx)
    control(wx, "pay", {"out_trade_no": "P1", "notify": False})
    fields = {"out_trade_no": "P1", "out_refund_no": "R1", "total_fee": "1800"}
    call(wx, "/secapi/pay/refund", {**fields, "refund_fee": amount, "notify_url": notify_url})


def test_refund_result_takes_the_v3_words_too(wx, receiver):
    refund_of(wx, receiver)

    answer = control(wx, "refund-result", {"out_refund_no": "R1", "status": "ABNORMAL"})

    assert answer["refund"]["refund_status"] == "CHANGE"
    assert [n["event_type"] for n in answer["notifies"]] == ["REFUND.CHANGE"]


def test_a_refund_without_a_notify_url_settles_quietly(wx, receiver):
    refund_of(wx)

    answer = control(wx, "refund-result", {"out_refund_no": "R1", "status": "SUCCESS"})

    assert answer["notifies"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", answer["refund"]["success_time"])
    assert receiver.bodies() == []


def test_the_configured_refund_notify_url_is_used(wx, receiver):
    refund_of(wx)
    control(wx, "config", {"refund_notify_url": f"{receiver.url}/refunds/"})

    control(wx, "refund-result", {"out_refund_no": "R1", "status": "SUCCESS"})

    assert [path for path, _h, _b in receiver.received] == ["/refunds/"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"out_refund_no": "R1", "status": "DONE"}, "status must be one of"),
        ({"out_refund_no": "R404", "status": "SUCCESS"}, "no refund 'R404' in the sandbox"),
        ({"out_refund_no": "R1", "status": "SUCCESS", "notify": 1}, "notify must be a boolean"),
    ],
)
def test_refund_result_refuses(wx, body, error):
    refund_of(wx)

    assert control(wx, "refund-result", body, status=400)["error"].startswith(error)


def test_a_settled_refund_is_not_settled_again_but_can_notify_again(wx, receiver):
    refund_of(wx, receiver)
    control(wx, "refund-result", {"out_refund_no": "R1", "status": "SUCCESS"})

    again = control(wx, "refund-result", {"out_refund_no": "R1", "status": "CLOSED"}, status=400)
    resent = control(wx, "notify", {"out_refund_no": "R1"})

    assert again == {"error": "refund R1 is already SUCCESS"}
    assert [n["event_type"] for n in resent["notifies"]] == ["REFUND.SUCCESS"]
    assert len(receiver.bodies()) == 2


def test_a_refund_still_processing_has_no_notify(wx):
    refund_of(wx)

    assert control(wx, "notify", {"out_refund_no": "R1"}, status=400) == {
        "error": "refund R1 is still PROCESSING"
    }


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"openid": "oSbx5t1_Stranger000000000009"}, "no WeChat user with openid"),
        ({"outcome": "maybe"}, "outcome must be one of"),
        ({"outcome": "paid", "paid_after_queries": 2}, "paid_after_queries is a positive integer"),
        ({"outcome": "userpaying", "paid_after_queries": 0}, "paid_after_queries is a positive"),
        ({"reverse_recalls": -1}, "reverse_recalls must be a non-negative integer"),
    ],
)
def test_payment_codes_refuse(wx, body, error):
    assert control(wx, "payment-codes", body, status=400)["error"].startswith(error)


def test_a_payment_code_is_eighteen_digits_and_pays_as_its_user(wx):
    code = control(wx, "payment-codes", {"openid": CHEN}, status=201)["auth_code"]

    answer = micropay(wx, code)

    assert re.fullmatch(r"13\d{16}", code)
    assert (answer["result_code"], answer["openid"], answer["trade_type"]) == (
        "SUCCESS",
        CHEN,
        "MICROPAY",
    )


def test_reset_forgets_trades_notifies_and_config_and_drops_late_notifies(wx, sandbox, receiver):
    order(wx, notify_url=f"{receiver.url}{NOTIFY_PATH}")
    control(wx, "pay", {"out_trade_no": "P1"})
    control(wx, "config", {"forge_responses": 3})
    control(wx, "notify", {"out_trade_no": "P1", "delay_seconds": 0.3})

    assert wx.post("/sandbox/reset").status_code == 200
    time.sleep(0.5)

    assert wx.get("/sandbox/pay/v2/trades").json() == {"trades": [], "refunds": []}
    assert wx.get("/sandbox/pay/v2/notifies").json() == {"notifies": []}
    assert wx.get("/sandbox/pay/v2/config").json()["forge_responses"] == 0
    assert len(receiver.bodies()) == 1


# --- pages ----------------------------------------------------------------------------------------


def test_the_cashier_shows_the_order_and_pays_it_back_to_the_shop(wx, sandbox, receiver):
    order(wx, notify_url=f"{receiver.url}{NOTIFY_PATH}")

    page = wx.get("/sandbox/pay/v2/P1", redirect="https://shop.example/paid?x=1")
    answer = wx.http.post(
        f"{wx.url}sandbox/pay/v2/P1",
        data={"redirect": "https://shop.example/paid?x=1"},
        allow_redirects=False,
        timeout=5,
    )

    assert page.status_code == 200
    assert "燕麦拿铁" in page.text
    assert "¥18.00" in page.text
    assert "林小美" in page.text
    assert "value='https://shop.example/paid?x=1'" in page.text
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert (location.netloc, location.path) == ("shop.example", "/paid")
    assert parse_qs(location.query) == {"x": ["1"], "out_trade_no": ["P1"], "result": ["paid"]}
    assert sandbox.pay_v2._trades["P1"].state == "SUCCESS"
    assert len(receiver.bodies(NOTIFY_PATH)) == 1


def test_the_cashier_without_a_redirect_shows_the_notify(wx, receiver):
    order(wx, notify_url=f"{receiver.url}{NOTIFY_PATH}")

    page = wx.http.post(f"{wx.url}sandbox/pay/v2/P1", data={}, timeout=5)

    assert page.status_code == 200
    assert "支付成功 Paid ¥18.00" in page.text
    assert "answered 200 (received)" in page.text


def test_the_cashier_of_a_paid_or_unknown_trade(wx):
    order(wx)
    control(wx, "pay", {"out_trade_no": "P1", "notify": False})

    paid = wx.get("/sandbox/pay/v2/P1")
    unknown = wx.get("/sandbox/pay/v2/P404")
    bad_redirect = wx.http.post(
        f"{wx.url}sandbox/pay/v2/P1", data={"redirect": "javascript:alert(1)"}, timeout=5
    )

    assert paid.status_code == 200
    assert "This trade is <b>SUCCESS</b>." in paid.text
    assert "<form" not in paid.text
    assert unknown.status_code == 404
    assert bad_redirect.status_code == 400


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"timeStamp": "1"}, "timeStamp, nonceStr, package, signType and paySign are all needed"),
        (
            {"timeStamp": "1", "nonceStr": "n", "package": "prepay_id=wx1", "signType": "MD5"}
            | {"paySign": "X"},
            "package is not this trade&#x27;s prepay_id",
        ),
    ],
)
def test_the_cashier_checks_the_payment_parameters(wx, params, error):
    order(wx)

    page = wx.get("/sandbox/pay/v2/P1", **params)

    assert page.status_code == 400
    assert error in page.text


def test_a_prepay_id_is_good_for_two_hours(wx, sandbox, settings):
    prepay_id = order(wx)["prepay_id"]
    parameters = {
        "appId": SANDBOX_APP_ID,
        "timeStamp": "1795600000",
        "nonceStr": "n" * 32,
        "package": f"prepay_id={prepay_id}",
        "signType": "MD5",
    }
    parameters["paySign"] = calculate_signature(parameters, KEY)
    assert wx.get("/sandbox/pay/v2/P1", **parameters).status_code == 200
    sandbox.advance_clock(7200)

    page = wx.get("/sandbox/pay/v2/P1", **parameters)

    assert page.status_code == 400
    assert "the prepay_id expired (two hours)" in page.text


def test_the_index_page_lists_trades_refunds_and_notifies_and_settles_refunds(wx, receiver):
    refund_of(wx, receiver)

    page = wx.get("/sandbox/pay/v2/")
    settled = wx.http.post(
        f"{wx.url}sandbox/pay/v2/refunds/R1",
        data={"status": "SUCCESS"},
        allow_redirects=False,
        timeout=5,
    )
    after = wx.get("/sandbox/pay/v2/")

    assert page.status_code == 200
    assert "<a href='/sandbox/pay/v2/P1'>P1</a>" in page.text
    assert "<button name='status' value='REFUNDCLOSE'>REFUNDCLOSE</button>" in page.text
    assert (settled.status_code, settled.headers["Location"]) == (302, "/sandbox/pay/v2/")
    assert "REFUND.SUCCESS" in after.text
    assert "200 (received)" in after.text
    assert "<button name='status'" not in after.text


def test_the_payment_code_page_shows_a_code_that_pays(wx):
    page = wx.get("/sandbox/pay/v2/payment-code", openid=CHEN, outcome="paid")

    [code] = re.findall(r"<code>(13\d{16})</code>", page.text)
    assert "陈静 (no unionid)'s payment code (paid)" in page.text
    assert micropay(wx, code)["openid"] == CHEN


def test_controls_answer_json_errors_for_bad_json(wx):
    response = requests.post(f"{wx.url}sandbox/pay/v2/pay", data=b"{", timeout=5)

    assert response.status_code == 400
    assert response.json()["error"].startswith("the body is not JSON")
