"""The push signature scheme (partners.signing) and the partner sandbox over real sockets: it
verifies pushes (tampered, stale, wrong secret refused with 401 and a reason), records each
event once, plays faults, and calls a fake partner API back with a shipment and a delivery."""

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from partners import signing
from partners.sandbox import Sandbox, SandboxServer

SECRET = "whsec_sandbox_test_secret"
API_KEY = "pk_test_0123456789"
NOW = 1_795_000_000  # 2026-11-18


# -- the signature scheme ---------------------------------------------------------------------


def test_sign_is_hmac_sha256_over_timestamp_dot_body():
    body = b'{"id":"evt_1"}'
    expected = hmac.new(SECRET.encode(), b"1795000000." + body, hashlib.sha256).hexdigest()

    assert signing.sign(SECRET, NOW, body) == f"v1={expected}"
    assert signing.sign(SECRET.encode(), NOW, body) == f"v1={expected}"
    assert signing.signed_headers(SECRET, "order.paid", "evt_1", NOW, body) == {
        "X-Partner-Event": "order.paid",
        "X-Partner-Event-Id": "evt_1",
        "X-Partner-Timestamp": "1795000000",
        "X-Partner-Signature": f"v1={expected}",
    }


def test_verify_accepts_a_good_signature_any_header_case_and_a_rotated_secret():
    body = b'{"id":"evt_1"}'
    headers = signing.signed_headers(SECRET, "order.paid", "evt_1", NOW, body)
    lower = {name.lower(): value for name, value in headers.items()}
    rotated = dict(headers)
    rotated["X-Partner-Signature"] = (
        f"{signing.sign('old-secret', NOW, body)}, {headers['X-Partner-Signature']}"
    )

    assert signing.verify(SECRET, headers, body, now=NOW) is None
    assert signing.verify(SECRET, lower, body, now=NOW + 300) is None
    assert signing.verify(SECRET, rotated, body, now=NOW - 300) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h, b: (h, b + b" "), "bad_signature"),
        (lambda h, b: (h, b.replace(b"evt_1", b"evt_2")), "bad_signature"),
        (lambda h, b: ({**h, "X-Partner-Timestamp": str(NOW + 1)}, b), "bad_signature"),
        (lambda h, b: ({**h, "X-Partner-Signature": "v1=" + "0" * 64}, b), "bad_signature"),
        (
            lambda h, b: ({**h, "X-Partner-Signature": h["X-Partner-Signature"][3:]}, b),
            "bad_signature",
        ),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-Partner-Signature"}, b), "missing"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-Partner-Timestamp"}, b), "missing"),
        (lambda h, b: ({**h, "X-Partner-Timestamp": "soon"}, b), "missing"),
    ],
)
def test_verify_refuses_a_changed_push(change, reason):
    body = b'{"id":"evt_1"}'
    headers, changed_body = change(
        signing.signed_headers(SECRET, "order.paid", "evt_1", NOW, body), body
    )

    with pytest.raises(signing.SignatureError) as refused:
        signing.verify(SECRET, headers, changed_body, now=NOW)
    assert refused.value.reason == reason


def test_verify_refuses_a_wrong_secret_and_a_timestamp_outside_the_tolerance():
    body = b"{}"
    headers = signing.signed_headers(SECRET, "order.paid", "evt_1", NOW, body)

    with pytest.raises(signing.SignatureError) as wrong:
        signing.verify("another-secret", headers, body, now=NOW)
    with pytest.raises(signing.SignatureError) as old:
        signing.verify(SECRET, headers, body, now=NOW + 301)
    with pytest.raises(signing.SignatureError) as future:
        signing.verify(SECRET, headers, body, now=NOW - 301)
    with pytest.raises(signing.SignatureError) as tight:
        signing.verify(SECRET, headers, body, now=NOW + 11, tolerance=10)

    assert wrong.value.reason == "bad_signature"
    assert (old.value.reason, future.value.reason, tight.value.reason) == ("stale_timestamp",) * 3
    assert str(old.value) == "stale_timestamp: signed at 1795000000, 301s from now"


# -- a fake partner API for the callbacks -----------------------------------------------------


class FakeApi:
    """Records every request; answers with the queued statuses, then 201."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with api.lock:
                    api.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers.items()),
                            "body": json.loads(body),
                        }
                    )
                    status = api.statuses.pop(0) if api.statuses else 201
                answer = json.dumps({"answered": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    yield fake
    fake.stop()


@pytest.fixture
def start_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    servers: list[SandboxServer] = []

    def start(**options: Any) -> SandboxServer:
        options.setdefault("secret", SECRET)
        options.setdefault("ship_delay", 0.05)
        options.setdefault("deliver_delay", 0.05)
        options.setdefault("retry_seconds", 0.05)
        server = SandboxServer(Sandbox(**options)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def partner(start_sandbox) -> SandboxServer:
    """A sandbox with no API to call back."""
    return start_sandbox()


def paid(number: str = "SO202611250001", event_id: str = "evt_1") -> bytes:
    return json.dumps(
        {"id": event_id, "type": "order.paid", "data": {"order": {"number": number}}}
    ).encode()


def push(
    server: SandboxServer,
    body: bytes,
    *,
    event_type: str = "order.paid",
    event_id: str = "evt_1",
    secret: str = SECRET,
    timestamp: int | None = None,
    sent_body: bytes | None = None,
) -> requests.Response:
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = signing.signed_headers(secret, event_type, event_id, stamp, body)
    headers["Content-Type"] = "application/json"
    return requests.post(
        server.url + "pushes",
        data=body if sent_body is None else sent_body,
        headers=headers,
        timeout=5,
    )


def state(server: SandboxServer) -> dict[str, Any]:
    return requests.get(server.url + "sandbox/pushes", timeout=5).json()


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


# -- receiving pushes -------------------------------------------------------------------------


def test_a_signed_push_is_accepted_and_recorded(partner):
    response = push(partner, paid())

    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    recorded = state(partner)
    assert [{k: v for k, v in p.items() if k != "received_at"} for p in recorded["pushes"]] == [
        {
            "event_id": "evt_1",
            "event_type": "order.paid",
            "order_number": "SO202611250001",
            "body": {
                "id": "evt_1",
                "type": "order.paid",
                "data": {"order": {"number": "SO202611250001"}},
            },
            "repeats": 0,
        }
    ]
    assert [(c["id"], c["event_id"], c["status"], c["reason"]) for c in recorded["calls"]] == [
        (1, "evt_1", 200, "accepted")
    ]
    assert recorded["callbacks"] == []  # no API base: nothing to call back


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"sent_body": paid(number="SO202611259999")}, "bad_signature"),
        ({"timestamp": int(time.time()) - 301}, "stale_timestamp"),
        ({"timestamp": int(time.time()) + 3600}, "stale_timestamp"),
        ({"secret": "not-the-partner-secret"}, "bad_signature"),
    ],
    ids=["tampered-body", "stale", "future", "wrong-secret"],
)
def test_a_push_that_does_not_verify_is_refused_with_401_and_not_recorded(
    start_sandbox, api, options, reason
):
    server = start_sandbox(api_base=api.url, api_key=API_KEY, ship_delay=0.01)

    response = push(server, paid(), **options)

    assert response.status_code == 401
    assert response.json()["reason"] == reason
    time.sleep(0.1)  # a callback would have gone by now
    recorded = state(server)
    assert recorded["pushes"] == []
    assert recorded["callbacks"] == []
    assert [(c["status"], c["reason"]) for c in recorded["calls"]] == [(401, reason)]
    assert api.requests == []


def test_a_push_without_the_signature_headers_is_refused_as_missing(partner):
    response = requests.post(partner.url + "pushes", data=paid(), timeout=5)

    assert response.status_code == 401
    assert response.json() == {
        "error": "the timestamp and signature headers are required",
        "reason": "missing",
    }
    assert state(partner)["pushes"] == []


def test_a_signed_push_without_an_event_id_or_with_a_body_that_is_not_json_is_a_400(partner):
    no_id = push(partner, paid(), event_id="")
    not_json = push(partner, b"not json", event_id="evt_2")

    assert (no_id.status_code, no_id.json()["reason"]) == (400, "missing")
    assert (not_json.status_code, not_json.json()["reason"]) == (400, "bad_body")
    assert state(partner)["pushes"] == []


def test_a_repeated_event_is_answered_200_and_fulfilled_once(start_sandbox, api):
    server = start_sandbox(api_base=api.url, api_key=API_KEY)

    first = push(server, paid())
    again = push(server, paid())  # a retry: same event id, signed again
    other = push(server, paid(number="SO202611250002", event_id="evt_2"), event_id="evt_2")

    assert [r.json() for r in (first, again, other)] == [
        {"status": "accepted"},
        {"status": "duplicate"},
        {"status": "accepted"},
    ]
    wait_until(lambda: len(api.requests) == 4)
    time.sleep(0.15)  # no third shipment or delivery comes late
    recorded = state(server)
    assert [(p["event_id"], p["repeats"]) for p in recorded["pushes"]] == [
        ("evt_1", 1),
        ("evt_2", 0),
    ]
    assert sorted(r["path"] for r in api.requests) == [
        "/api/partner/v1/orders/SO202611250001/delivery-events/",
        "/api/partner/v1/orders/SO202611250001/shipments/",
        "/api/partner/v1/orders/SO202611250002/delivery-events/",
        "/api/partner/v1/orders/SO202611250002/shipments/",
    ]


def test_only_an_order_paid_push_is_called_back(start_sandbox, api):
    server = start_sandbox(api_base=api.url, api_key=API_KEY, ship_delay=0.01)

    cancelled = push(server, b'{"data":{"order":{"number":"SO1"}}}', event_type="order.cancelled")

    assert cancelled.json() == {"status": "accepted"}
    time.sleep(0.1)
    assert state(server)["callbacks"] == []
    assert api.requests == []


# -- faults -----------------------------------------------------------------------------------


def test_down_answers_503_for_n_pushes_then_the_retry_is_accepted_once(partner):
    added = requests.post(
        partner.url + "sandbox/faults", json={"mode": "down", "times": 2}, timeout=5
    )

    answers = [push(partner, paid()) for _ in range(3)]

    assert (added.status_code, added.json()) == (
        201,
        {"id": 1, "mode": "down", "times": 2, "seconds": None},
    )
    assert [(r.status_code, r.json()) for r in answers] == [
        (503, {"error": "down", "reason": "down"}),
        (503, {"error": "down", "reason": "down"}),
        (200, {"status": "accepted"}),
    ]
    recorded = state(partner)
    assert [(p["event_id"], p["repeats"]) for p in recorded["pushes"]] == [("evt_1", 0)]
    assert [c["status"] for c in recorded["calls"]] == [503, 503, 200]
    assert recorded["faults"] == []


def test_error_answers_500_and_faults_are_used_in_order(partner):
    requests.post(partner.url + "sandbox/faults", json={"mode": "error"}, timeout=5)
    requests.post(partner.url + "sandbox/faults", json={"mode": "down", "times": 1}, timeout=5)

    statuses = [push(partner, paid()).status_code for _ in range(3)]

    assert statuses == [500, 503, 200]


def test_slow_holds_the_push_then_answers(partner):
    requests.post(partner.url + "sandbox/faults", json={"mode": "slow", "seconds": 0.3}, timeout=5)

    started = time.monotonic()
    slow = push(partner, paid())
    held = time.monotonic() - started
    started = time.monotonic()
    quick = push(partner, paid(event_id="evt_2"), event_id="evt_2")
    not_held = time.monotonic() - started

    assert (slow.status_code, quick.status_code) == (200, 200)
    assert held >= 0.3
    assert not_held < 0.2
    assert [p["event_id"] for p in state(partner)["pushes"]] == ["evt_1", "evt_2"]


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"mode": "busy"}, "mode must be one of down, error, slow"),
        ({"mode": "down", "times": 0}, "times must be a whole number of at least 1"),
        ({"mode": "down", "times": "2"}, "times must be a whole number of at least 1"),
        ({"mode": "slow"}, "a slow fault needs seconds between 0 and 120.0"),
        ({"mode": "slow", "seconds": 1000}, "a slow fault needs seconds between 0 and 120.0"),
        ({"mode": "error", "seconds": 1}, "a error fault takes no seconds"),
        ({"mode": "down", "path": "/x"}, "unknown fields: path"),
    ],
)
def test_a_fault_the_sandbox_cannot_play_is_refused(partner, spec, error):
    response = requests.post(partner.url + "sandbox/faults", json=spec, timeout=5)

    assert (response.status_code, response.json()) == (400, {"error": error})
    assert requests.get(partner.url + "sandbox/faults", timeout=5).json() == {"faults": []}


def test_faults_are_listed_and_cleared(partner):
    requests.post(partner.url + "sandbox/faults", json={"mode": "down", "times": 5}, timeout=5)

    listed = requests.get(partner.url + "sandbox/faults", timeout=5).json()
    cleared = requests.delete(partner.url + "sandbox/faults", timeout=5).json()

    assert listed == {"faults": [{"id": 1, "mode": "down", "times": 5, "seconds": None}]}
    assert cleared == {"cleared": 1}
    assert push(partner, paid()).status_code == 200


# -- callbacks to our API ---------------------------------------------------------------------


def test_an_order_paid_push_is_shipped_then_delivered_with_the_api_key(start_sandbox, api):
    server = start_sandbox(
        api_base=api.url + "/", api_key=API_KEY, ship_delay=0.1, deliver_delay=0.1
    )

    started = time.monotonic()
    push(server, paid())
    assert api.requests == []  # not before the delay
    wait_until(lambda: len(api.requests) == 2)
    elapsed = time.monotonic() - started

    assert elapsed >= 0.2
    shipment, delivery = api.requests
    assert shipment["path"] == "/api/partner/v1/orders/SO202611250001/shipments/"
    assert shipment["body"] == {"carrier_code": "SF", "tracking_number": "SBX000000001"}
    assert delivery["path"] == "/api/partner/v1/orders/SO202611250001/delivery-events/"
    assert delivery["body"] == {"status": "delivered"}
    for sent, kind in ((shipment, "shipment"), (delivery, "delivery")):
        assert sent["headers"]["Authorization"] == f"Bearer {API_KEY}"
        assert sent["headers"]["Content-Type"] == "application/json"
        assert sent["headers"]["Idempotency-Key"] == f"sandbox-evt_1-{kind}"
    wait_until(lambda: [c["state"] for c in state(server)["callbacks"]] == ["sent", "sent"])
    callbacks = state(server)["callbacks"]
    assert [(c["kind"], c["url"], len(c["attempts"])) for c in callbacks] == [
        ("shipment", api.url + "/api/partner/v1/orders/SO202611250001/shipments/", 1),
        ("delivery", api.url + "/api/partner/v1/orders/SO202611250001/delivery-events/", 1),
    ]
    assert [(a["status"], a["answer"]) for c in callbacks for a in c["attempts"]] == [
        (201, '{"answered": 201}'),
        (201, '{"answered": 201}'),
    ]


def test_a_callback_answered_5xx_is_retried_and_a_4xx_is_not(start_sandbox, api):
    server = start_sandbox(api_base=api.url, api_key=API_KEY, callback_attempts=3)
    api.statuses = [503, 201, 404]  # shipment 503 then 201; delivery 404

    push(server, paid())
    wait_until(lambda: [c["state"] for c in state(server)["callbacks"]] == ["sent", "failed"])
    time.sleep(0.15)  # the 404 is not retried

    callbacks = state(server)["callbacks"]
    assert [[a["status"] for a in c["attempts"]] for c in callbacks] == [[503, 201], [404]]
    assert callbacks[1]["attempts"][0]["answer"] == '{"answered": 404}'
    assert len(api.requests) == 3
    assert api.requests[0]["body"] == api.requests[1]["body"]  # a retry sends the same shipment
    assert api.requests[0]["headers"]["Idempotency-Key"] == "sandbox-evt_1-shipment"
    assert api.requests[1]["headers"]["Idempotency-Key"] == "sandbox-evt_1-shipment"


def test_an_unreachable_api_is_recorded_and_given_up_after_the_attempts(start_sandbox):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{probe.getsockname()[1]}"
    server = start_sandbox(api_base=unreachable, api_key=API_KEY, callback_attempts=2)

    push(server, paid())
    wait_until(lambda: [c["state"] for c in state(server)["callbacks"]] == ["failed"])

    (callback,) = state(server)["callbacks"]
    assert callback["kind"] == "shipment"
    assert [a["status"] for a in callback["attempts"]] == [None, None]
    assert all("ConnectionRefusedError" in a["error"] for a in callback["attempts"])


def test_reset_forgets_everything_and_cancels_pending_callbacks(start_sandbox, api):
    server = start_sandbox(api_base=api.url, api_key=API_KEY, ship_delay=0.2)
    push(server, paid())
    requests.post(server.url + "sandbox/faults", json={"mode": "down"}, timeout=5)

    reset = requests.post(server.url + "sandbox/reset", timeout=5)
    time.sleep(0.3)

    assert reset.json() == {"reset": True}
    assert state(server) == {"pushes": [], "calls": [], "callbacks": [], "faults": []}
    assert api.requests == []


# -- pages, routes and the command ------------------------------------------------------------


def test_the_page_shows_pushes_callbacks_calls_and_faults(start_sandbox, api):
    server = start_sandbox(api_base=api.url, api_key=API_KEY)
    push(server, paid(number="SO<b>1"))
    push(server, b"{}", secret="wrong", event_id="evt_x")
    wait_until(lambda: len(api.requests) == 2)

    page = requests.get(server.url + "sandbox/", timeout=5)

    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    for text in ("<h1>Partner sandbox</h1>", "evt_1", "evt_x", "bad_signature", "SO&lt;b&gt;1"):
        assert text in page.text
    assert "SO<b>1" not in page.text
    assert "/orders/SO%3Cb%3E1/shipments/" in page.text


def test_unknown_paths_and_methods(partner):
    missing = requests.get(partner.url + "elsewhere", timeout=5)
    wrong_method = requests.get(partner.url + "pushes", timeout=5)

    assert (missing.status_code, missing.json()) == (404, {"error": "nothing at /elsewhere"})
    assert (wrong_method.status_code, wrong_method.json()) == (
        405,
        {"error": "GET is not allowed here"},
    )


def test_python_m_partners_sandbox_serves_pushes():
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "partners.sandbox", "--port", "0", "--secret", SECRET, "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = line.split("pushes to ")[1].split(",")[0]
        body = paid()
        headers = signing.signed_headers(SECRET, "order.paid", "evt_1", int(time.time()), body)
        response = requests.post(url, data=body, headers=headers, timeout=5)
        log = requests.get(url.replace("pushes", "sandbox/pushes"), timeout=5).json()
    finally:
        process.terminate()
        process.wait(timeout=5)

    assert line.startswith("Partner sandbox: pushes to http://127.0.0.1:")
    assert response.json() == {"status": "accepted"}
    assert [p["event_id"] for p in log["pushes"]] == ["evt_1"]
