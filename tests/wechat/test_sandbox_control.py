"""The sandbox as tests and people drive it: the call log and its page, faults, the "pick a
WeChat user" and phone pages, reset and clock, thread safety, and the command line."""

import html
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.wechat.conftest import LIN, WANG, ZHAO, SandboxHTTP
from wechat import client
from wechat.client import WeChatError
from wechat.sandbox import SANDBOX_APP_ID, SANDBOX_APP_SECRET, Sandbox, SandboxServer

LOGIN = "/sns/jscode2session"
DELIVERY_LIST = "/cgi-bin/express/delivery/open_msg/get_delivery_list"
ROOT = Path(__file__).resolve().parents[2]


def login(wx, code):
    params = {
        "appid": SANDBOX_APP_ID,
        "secret": SANDBOX_APP_SECRET,
        "js_code": code,
        "grant_type": "authorization_code",
    }
    return wx.get(LOGIN, **params).json()


# --- the call log ---------------------------------------------------------------------------


def test_every_wechat_call_is_recorded_with_what_was_answered(wx):
    token = wx.token()
    wx.post(DELIVERY_LIST, {"probe": "体"}, access_token=token)

    calls = wx.calls(DELIVERY_LIST)

    assert len(calls) == 1
    call = calls[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+08:00", call.pop("time"))
    assert isinstance(call.pop("duration_ms"), float)
    assert call == {
        "id": 2,
        "method": "POST",
        "path": DELIVERY_LIST,
        "query": {"access_token": token},
        "body": {"probe": "体"},
        "status": 200,
        "answer": wx.post(DELIVERY_LIST, {}, access_token=token).json(),
        "fault": None,
    }


def test_calls_are_listed_oldest_first_filtered_by_path_and_limited(wx):
    wx.token()
    login(wx, "unknown-1")
    login(wx, "unknown-2")
    wx.js_code(LIN)  # control endpoints are not recorded

    every = wx.calls()
    logins = wx.calls(LOGIN)
    last = wx.get("/sandbox/calls", path=LOGIN, limit=1).json()["calls"]

    assert [(call["id"], call["path"]) for call in every] == [
        (1, "/cgi-bin/token"),
        (2, LOGIN),
        (3, LOGIN),
    ]
    assert [call["query"]["js_code"] for call in logins] == ["unknown-1", "unknown-2"]
    assert [call["id"] for call in last] == [3]
    assert wx.get("/sandbox/calls", limit="all").status_code == 400


def test_a_wechat_path_the_sandbox_does_not_play_is_recorded_as_404(wx):
    response = wx.post("/cgi-bin/message/custom/send", {"touser": LIN})

    assert response.status_code == 404
    assert response.json() == {"error": "the sandbox does not play /cgi-bin/message/custom/send"}
    assert [(call["path"], call["status"]) for call in wx.calls()] == [
        ("/cgi-bin/message/custom/send", 404)
    ]


def test_the_call_log_is_bounded():
    server = SandboxServer(Sandbox(max_calls=3)).start()
    try:
        wx = SandboxHTTP(server.url)
        for number in range(5):
            login(wx, f"code-{number}")

        assert [call["id"] for call in wx.calls()] == [3, 4, 5]
    finally:
        server.stop()


def test_the_page_shows_calls_newest_first_escaped_with_tokens_shortened(wx):
    token = wx.token()
    wx.post(
        "/wxa/business/getuserphonenumber",
        {"code": "<script>alert(1)</script>"},
        access_token=token,
    )
    wx.fault(path=LOGIN, mode="busy", times=2)
    wx.fault(path=LOGIN, mode="errcode", errcode=45011)
    wx.fault(path=DELIVERY_LIST, mode="timeout", seconds=1.5)

    page = wx.get("/sandbox/")

    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>" not in page.text
    assert token not in page.text
    assert f"{token[:20]}…{token[-6:]}" in page.text
    assert page.text.index("/wxa/business/getuserphonenumber") < page.text.index("/cgi-bin/token")
    assert f"<li>{LOGIN}: busy, 2 more</li>" in page.text
    assert f"<li>{LOGIN}: errcode 45011, 1 more</li>" in page.text
    assert f"<li>{DELIVERY_LIST}: timeout 1.5 s, 1 more</li>" in page.text
    assert "oSbx5t1_LinXiaomei00000000001" in page.text


def test_root_leads_to_the_page_and_unknown_pages_and_methods_are_refused(wx):
    root = wx.http.get(wx.url, allow_redirects=False, timeout=5)
    unknown = wx.get("/sandbox/nothing")
    wrong_method = wx.http.delete(wx.url + "sandbox/calls", timeout=5)

    assert (root.status_code, root.headers["Location"]) == (302, "/sandbox/")
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"error": "no sandbox page at /sandbox/nothing"},
    )
    assert (wrong_method.status_code, wrong_method.json()) == (
        405,
        {"error": "DELETE is not allowed here"},
    )
    assert wx.calls() == []


# --- faults ---------------------------------------------------------------------------------


def test_busy_fault_answers_minus_one_then_wechat_answers_again(wx):
    code = wx.js_code(LIN)
    fault = wx.fault(path=LOGIN, mode="busy", times=2)

    answers = [login(wx, code) for _ in range(3)]

    assert fault == {
        "id": 1,
        "path": LOGIN,
        "mode": "busy",
        "times": 2,
        "errcode": None,
        "errmsg": None,
        "seconds": None,
    }
    assert answers[:2] == [{"errcode": -1, "errmsg": "system error"}] * 2
    assert answers[2]["openid"] == LIN
    assert [call["fault"] for call in wx.calls(LOGIN)] == ["busy", "busy", None]
    assert wx.get("/sandbox/faults").json() == {"faults": []}


def test_errcode_fault_answers_the_code_with_its_message_or_wechats(wx):
    wx.fault(path=DELIVERY_LIST, mode="errcode", errcode=45009)
    wx.fault(path=DELIVERY_LIST, mode="errcode", errcode=40001, errmsg="made up")
    token = wx.token()

    first = wx.post(DELIVERY_LIST, {}, access_token=token).json()
    second = wx.post(DELIVERY_LIST, {}, access_token=token).json()

    assert first == {"errcode": 45009, "errmsg": "reach max api daily quota limit"}
    assert second == {"errcode": 40001, "errmsg": "made up"}
    assert wx.post(DELIVERY_LIST, {}, access_token=token).json()["errcode"] == 0


def test_timeout_fault_holds_the_answer_then_answers(wx):
    code = wx.js_code(LIN)
    wx.fault(path=LOGIN, mode="timeout", seconds=0.4)
    params = {
        "appid": SANDBOX_APP_ID,
        "secret": SANDBOX_APP_SECRET,
        "js_code": code,
        "grant_type": "authorization_code",
    }

    with pytest.raises(requests.ReadTimeout):
        wx.http.get(wx.url + LOGIN.lstrip("/"), params=params, timeout=0.1)
    held = wx.calls(LOGIN)
    time.sleep(0.5)
    answered = wx.calls(LOGIN)

    assert [(call["status"], call["answer"], call["fault"]) for call in held] == [
        (None, None, None)
    ]
    assert answered[0]["status"] == 200
    assert answered[0]["fault"] == "timeout"
    assert answered[0]["duration_ms"] >= 400
    # WeChat acted although the caller had given up: the code is used.
    assert answered[0]["answer"]["openid"] == LIN
    assert login(wx, code)["errcode"] == 40163


def test_expire_token_fault_expires_the_token_it_meets(wx):
    token = wx.token()
    wx.fault(path=DELIVERY_LIST, mode="expire_token")

    first = wx.post(DELIVERY_LIST, {}, access_token=token).json()
    second = wx.post(DELIVERY_LIST, {}, access_token=token).json()

    assert first == second == {"errcode": 42001, "errmsg": "access_token expired"}
    assert wx.post(DELIVERY_LIST, {}, access_token=wx.token()).json()["errcode"] == 0


def test_faults_are_listed_and_cleared(wx):
    wx.fault(path=LOGIN, mode="busy", times=3)
    wx.fault(path=DELIVERY_LIST, mode="timeout", seconds=5)

    listed = wx.get("/sandbox/faults").json()["faults"]
    cleared = wx.http.delete(wx.url + "sandbox/faults", timeout=5).json()

    assert [(fault["id"], fault["path"], fault["mode"], fault["times"]) for fault in listed] == [
        (1, LOGIN, "busy", 3),
        (2, DELIVERY_LIST, "timeout", 1),
    ]
    assert listed[1]["seconds"] == 5.0
    assert cleared == {"faults": []}
    assert login(wx, "nope") == {"errcode": 40029, "errmsg": "invalid code"}


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"path": "/nope", "mode": "busy"}, "no WeChat endpoint at '/nope'"),
        ({"path": "/sandbox/codes", "mode": "busy"}, "no WeChat endpoint at '/sandbox/codes'"),
        (
            {"path": LOGIN, "mode": "explode"},
            "mode must be one of ['busy', 'errcode', 'expire_token', 'timeout']",
        ),
        ({"path": LOGIN, "mode": "busy", "times": 0}, "times must be a positive integer"),
        ({"path": LOGIN, "mode": "errcode"}, "errcode must be a non-zero integer"),
        (
            {"path": LOGIN, "mode": "errcode", "errcode": "40029"},
            "errcode must be a non-zero integer",
        ),
        ({"path": LOGIN, "mode": "timeout", "seconds": 0}, "seconds must be a number in (0, 600]"),
        (
            {"path": LOGIN, "mode": "timeout", "seconds": 601},
            "seconds must be a number in (0, 600]",
        ),
    ],
)
def test_a_fault_the_sandbox_cannot_play_is_refused(wx, spec, error):
    response = wx.post("/sandbox/faults", spec)

    assert (response.status_code, response.json()) == (400, {"error": error})
    assert wx.get("/sandbox/faults").json() == {"faults": []}


def test_a_control_body_that_is_not_a_json_object_is_refused(wx):
    not_json = wx.http.post(wx.url + "sandbox/faults", data=b"busy", timeout=5)
    a_list = wx.post("/sandbox/codes", [LIN])

    assert not_json.status_code == 400
    assert not_json.json()["error"].startswith("the body is not JSON")
    assert (a_list.status_code, a_list.json()) == (400, {"error": "the body must be a JSON object"})


# --- the shopper's side: pick a user, share the phone ---------------------------------------


def links(page: str, prefix: str) -> list[str]:
    return [html.unescape(href) for href in re.findall(rf"href='({prefix}[^']*)'", page)]


def test_login_page_picks_a_user_and_sends_a_one_time_code_back(wx):
    page = wx.get("/sandbox/login", redirect="http://shop.test/login/done?next=/cart", state="s1")
    users = links(page.text, "/sandbox/login/pick")

    assert page.status_code == 200
    assert len(users) == 5
    assert "林小美" in page.text
    lin_link = next(link for link in users if LIN in link)
    back = wx.http.get(wx.url + lin_link.lstrip("/"), allow_redirects=False, timeout=5)

    assert back.status_code == 302
    location = urlsplit(back.headers["Location"])
    query = parse_qs(location.query)
    assert (location.scheme, location.netloc, location.path) == ("http", "shop.test", "/login/done")
    assert set(query) == {"next", "code", "state"}
    assert (query["next"], query["state"]) == (["/cart"], ["s1"])
    code = query["code"][0]
    assert client.code_to_session(code)["openid"] == LIN
    with pytest.raises(WeChatError) as used:
        client.code_to_session(code)
    assert (used.value.errcode, used.value.errmsg, used.value.retryable) == (
        40163,
        "code been used",
        False,
    )


def test_login_page_without_redirect_shows_the_code(wx):
    page = wx.get("/sandbox/login")
    pick = links(page.text, "/sandbox/login/pick")[1]

    shown = wx.get(pick)

    code = re.search(r"code: <code>([0-9a-f]{32})</code>", shown.text).group(1)
    assert login(wx, code)["openid"] == WANG


def test_login_page_only_sends_back_to_web_addresses(wx):
    response = wx.get("/sandbox/login", redirect="javascript:alert(1)")

    assert (response.status_code, response.json()) == (
        400,
        {"error": "redirect must be an absolute http(s) URL"},
    )


def test_phone_page_shares_the_number_through_a_one_time_code(wx):
    page = wx.get("/sandbox/phone", openid=LIN, redirect="http://shop.test/me")

    assert "138****8001" in page.text
    allow = links(page.text, "/sandbox/phone/allow")[0]
    back = wx.http.get(wx.url + allow.lstrip("/"), allow_redirects=False, timeout=5)
    query = parse_qs(urlsplit(back.headers["Location"]).query)
    assert client.phone_number(query["code"][0])["purePhoneNumber"] == "13800138001"


def test_phone_page_can_be_refused_and_knows_users_without_a_phone(wx):
    page = wx.get("/sandbox/phone", openid=ZHAO, redirect="http://shop.test/me?tab=1")
    deny = links(page.text, "/sandbox/phone/deny")[0]

    back = wx.http.get(wx.url + deny.lstrip("/"), allow_redirects=False, timeout=5)

    assert "has no phone number in WeChat" in page.text
    assert links(page.text, "/sandbox/phone/allow") == []
    assert back.headers["Location"] == "http://shop.test/me?tab=1&error=user_deny"


# --- reset, clock, threads ------------------------------------------------------------------


def test_reset_forgets_calls_faults_tokens_codes_and_allowances(wx, sandbox):
    token = wx.token()
    code = wx.js_code(LIN)
    wx.allow(LIN, "sandbox-order-paid")
    wx.fault(path=LOGIN, mode="busy")
    sandbox.advance_clock(3600)

    assert wx.post("/sandbox/reset").json() == {"reset": True}

    assert wx.calls() == []
    assert wx.get("/sandbox/faults").json() == {"faults": []}
    assert wx.get("/sandbox/subscriptions").json() == {"subscriptions": []}
    assert abs(sandbox.now() - time.time()) < 1
    assert wx.post(DELIVERY_LIST, {}, access_token=token).json()["errcode"] == 40001
    assert login(wx, code) == {"errcode": 40029, "errmsg": "invalid code"}


def test_reset_releases_a_call_held_by_a_timeout_fault(wx, sandbox):
    wx.fault(path=LOGIN, mode="timeout", seconds=30)
    done = []
    caller = threading.Thread(target=lambda: done.append(login(wx, "held")))
    caller.start()
    for _ in range(100):
        if wx.calls(LOGIN):
            break
        time.sleep(0.01)
    started = time.monotonic()

    sandbox.reset()
    caller.join(5)

    assert time.monotonic() - started < 1
    assert done == [{"errcode": 40029, "errmsg": "invalid code"}]


@pytest.mark.parametrize("body", [{}, {"advance_seconds": 0}, {"advance_seconds": True}])
def test_the_clock_only_moves_forward(wx, body):
    response = wx.post("/sandbox/clock", body)

    assert (response.status_code, response.json()) == (
        400,
        {"error": "advance_seconds must be a positive number"},
    )


def test_the_clock_moves_forward(wx, sandbox):
    before = sandbox.now()

    now = wx.post("/sandbox/clock", {"advance_seconds": 7200}).json()["now"]

    assert 7200 <= now - before < 7201


def test_one_code_exchanged_by_twenty_threads_at_once_logs_in_once(wx, sandbox_server):
    code = wx.js_code(LIN)
    barrier = threading.Barrier(20)
    answers = []

    def exchange():
        own = SandboxHTTP(sandbox_server.url)
        barrier.wait()
        answers.append(login(own, code))

    threads = [threading.Thread(target=exchange) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert sorted(answer.get("errcode", 0) for answer in answers) == [0] + [40163] * 19
    assert sorted(call["id"] for call in wx.calls(LOGIN)) == list(range(1, 21))


# --- the command line -----------------------------------------------------------------------


def test_command_line_serves_the_sandbox_with_its_own_users(tmp_path):
    users = tmp_path / "users.json"
    users.write_text(
        json.dumps([{"openid": "oCustom", "nickname": "自定义", "phone": "13500135000"}]),
        encoding="utf-8",
    )
    process = subprocess.Popen(  # noqa: S603 (our own module, fixed arguments)
        [sys.executable, "-m", "wechat.sandbox", "--port", "0", "--users", str(users), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()
        url = re.fullmatch(r"WeChat sandbox for app (\S+) on (http://\S+/)sandbox/\n", banner)
        assert url.group(1) == SANDBOX_APP_ID
        wx = SandboxHTTP(url.group(2))

        assert login(wx, wx.js_code("oCustom"))["openid"] == "oCustom"
        assert wx.post("/sandbox/codes", {"openid": LIN}).status_code == 400
    finally:
        process.terminate()
        process.wait(5)
