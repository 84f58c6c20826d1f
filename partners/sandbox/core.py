"""The partner sandbox as one WSGI application: the pushes it received, the log of every push
call, its faults and its callbacks to our API, all behind one lock so the threaded server can
answer calls in parallel.

Endpoints:

- ``POST /pushes``: a push from us. Verified with ``partners.signing`` (401 with a JSON
  ``reason`` when it does not hold), recorded once per ``X-Partner-Event-Id`` (a repeat answers
  200 ``duplicate`` and records nothing new). An ``order.paid`` push schedules the callbacks.
- ``GET /sandbox/``: the pushes, callbacks, calls and faults as a page.
- ``GET /sandbox/pushes``: the same as JSON.
- ``GET|POST|DELETE /sandbox/faults``: list, add (``{"mode": "down"|"error"|"slow",
  "times": n, "seconds": s}``) or clear the faults; a fault answers the next ``times`` pushes
  with 503 (down) or 500 (error), or holds them ``seconds`` before answering (slow).
- ``POST /sandbox/reset``: forget everything and cancel the pending callbacks.

Callbacks (best effort, every attempt and answer recorded): ``ship_delay`` seconds after an
``order.paid`` push, ``POST {api_base}/api/partner/v1/orders/{number}/shipments/`` with
``carrier_code`` and ``tracking_number`` (no lines: the whole order); once that is accepted,
``deliver_delay`` seconds later ``POST .../delivery-events/`` with ``{"status": "delivered"}``.
Both carry ``Authorization: Bearer <api key>`` and an ``Idempotency-Key`` that stays the same
across retries. A 5xx or a network error is retried (``callback_attempts`` in all,
``retry_seconds`` apart); a 4xx is not.

The order number is read from the push body's ``data.order.number`` (or ``order.number``,
``data.number``, ``order_number``, ``number``: the payload is not settled yet).
"""

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

from partners import signing
from partners.sandbox.http import BadRequest, Request, Response, html_page, json_response

logger = logging.getLogger("partners.sandbox")

FAULT_MODES = ("down", "error", "slow")
FAULT_STATUS = {"down": 503, "error": 500}
MAX_SLOW_SECONDS = 120.0
MAX_ANSWER_CHARS = 2000


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


def _order_number(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    candidates = []
    data = payload.get("data")
    if isinstance(data, dict):
        if isinstance(data.get("order"), dict):
            candidates.append(data["order"].get("number"))
        candidates.append(data.get("number"))
    if isinstance(payload.get("order"), dict):
        candidates.append(payload["order"].get("number"))
    candidates += [payload.get("order_number"), payload.get("number")]
    for candidate in candidates:
        if isinstance(candidate, str | int) and str(candidate):
            return str(candidate)
    return None


class Sandbox:
    def __init__(
        self,
        *,
        secret: str,
        api_base: str | None = None,
        api_key: str | None = None,
        ship_delay: float = 2.0,
        deliver_delay: float = 5.0,
        carrier_code: str = "SF",
        tolerance: int = signing.DEFAULT_TOLERANCE,
        callback_attempts: int = 3,
        retry_seconds: float = 1.0,
        callback_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ):
        self.secret = secret
        self.api_base = api_base.rstrip("/") if api_base else None
        self.api_key = api_key
        self.ship_delay = ship_delay
        self.deliver_delay = deliver_delay
        self.carrier_code = carrier_code
        self.tolerance = tolerance
        self.callback_attempts = max(1, callback_attempts)
        self.retry_seconds = retry_seconds
        self.callback_timeout = callback_timeout
        self.clock = clock
        self.lock = threading.RLock()
        self._closed = threading.Event()
        self._timers: set[threading.Timer] = set()
        self._clear()

    def _clear(self) -> None:
        self._pushes: dict[str, dict[str, Any]] = {}  # by event id, in arrival order
        self._calls: list[dict[str, Any]] = []
        self._faults: list[dict[str, Any]] = []
        self._callbacks: list[dict[str, Any]] = []
        self._ids = {"call": 0, "fault": 0, "callback": 0, "tracking": 0}

    # -- lifecycle ----------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self._cancel_timers()
            self._clear()
        self._closed.clear()

    def close(self) -> None:
        """Cancel the pending callbacks and release pushes held by a slow fault."""
        self._closed.set()
        with self.lock:
            self._cancel_timers()

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # -- WSGI ---------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        request = Request.from_environ(environ)
        routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("POST", "/pushes"): self._receive,
            ("GET", "/sandbox/"): self._page,
            ("GET", "/sandbox/pushes"): lambda _: json_response(self.snapshot()),
            ("GET", "/sandbox/faults"): lambda _: json_response({"faults": self.faults()}),
            ("POST", "/sandbox/faults"): self._add_fault,
            ("DELETE", "/sandbox/faults"): self._clear_faults,
            ("POST", "/sandbox/reset"): self._reset,
        }
        handler = routes.get((request.method, request.path))
        if handler is None:
            if any(path == request.path for _, path in routes):
                response = json_response({"error": f"{request.method} is not allowed here"}, 405)
            else:
                response = json_response({"error": f"nothing at {request.path}"}, 404)
        else:
            try:
                response = handler(request)
            except BadRequest as exc:
                response = json_response({"error": str(exc)}, 400)
            except Exception as exc:
                logger.exception("sandbox error on %s %s", request.method, request.path)
                response = json_response({"error": f"sandbox error: {exc!r}"}, 500)
        start_response(response.wsgi_status(), response.wsgi_headers())
        return [response.body]

    # -- pushes -------------------------------------------------------------------------------

    def _receive(self, request: Request) -> Response:
        event_id = request.headers.get(signing.EVENT_ID_HEADER.lower(), "")
        event_type = request.headers.get(signing.EVENT_HEADER.lower(), "")
        with self.lock:
            self._ids["call"] += 1
            call = {
                "id": self._ids["call"],
                "time": _iso(self.clock()),
                "event_id": event_id,
                "event_type": event_type,
                "status": None,
                "reason": None,
            }
            self._calls.append(call)
            fault = self._take_fault()
        if fault is not None and fault["mode"] == "slow":
            self._closed.wait(fault["seconds"])
        elif fault is not None:
            return self._answer(call, FAULT_STATUS[fault["mode"]], fault["mode"])
        try:
            signing.verify(self.secret, request.headers, request.body, self.clock(), self.tolerance)
        except signing.SignatureError as exc:
            return self._answer(call, 401, exc.reason, exc.detail)
        if not event_id or not event_type:
            return self._answer(call, 400, "missing", "the event and event id headers are required")
        try:
            payload = json.loads(request.body.decode("utf-8"))
        except ValueError:
            return self._answer(call, 400, "bad_body", "the body is not JSON")
        with self.lock:
            known = self._pushes.get(event_id)
            if known is not None:
                known["repeats"] += 1
                return self._answer(call, 200, "duplicate")
            number = _order_number(payload)
            self._pushes[event_id] = {
                "event_id": event_id,
                "event_type": event_type,
                "received_at": call["time"],
                "order_number": number,
                "body": payload,
                "repeats": 0,
            }
            if event_type == "order.paid" and number and self.api_base:
                self._schedule(self._new_callback("shipment", event_id, number), self.ship_delay)
        return self._answer(call, 200, "accepted")

    def _answer(self, call: dict[str, Any], status: int, reason: str, detail: str = "") -> Response:
        with self.lock:
            call["status"], call["reason"] = status, reason
        if status == 200:
            return json_response({"status": reason})
        return json_response({"error": detail or reason, "reason": reason}, status)

    # -- faults -------------------------------------------------------------------------------

    def _take_fault(self) -> dict[str, Any] | None:
        if not self._faults:
            return None
        fault = self._faults[0]
        fault["times"] -= 1
        if fault["times"] <= 0:
            self._faults.pop(0)
        return dict(fault)

    def faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(fault) for fault in self._faults]

    def add_fault(self, mode: str, times: int = 1, seconds: float | None = None) -> dict[str, Any]:
        if mode not in FAULT_MODES:
            raise BadRequest(f"mode must be one of {', '.join(FAULT_MODES)}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise BadRequest("times must be a whole number of at least 1")
        if mode == "slow":
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not 0 < seconds <= MAX_SLOW_SECONDS
            ):
                raise BadRequest(f"a slow fault needs seconds between 0 and {MAX_SLOW_SECONDS}")
        elif seconds is not None:
            raise BadRequest(f"a {mode} fault takes no seconds")
        with self.lock:
            self._ids["fault"] += 1
            fault = {"id": self._ids["fault"], "mode": mode, "times": times, "seconds": seconds}
            self._faults.append(fault)
            return dict(fault)

    def _add_fault(self, request: Request) -> Response:
        spec = request.control_json()
        unknown = set(spec) - {"mode", "times", "seconds"}
        if unknown:
            raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}")
        fault = self.add_fault(spec.get("mode", ""), spec.get("times", 1), spec.get("seconds"))
        return json_response(fault, 201)

    def _clear_faults(self, request: Request) -> Response:
        with self.lock:
            cleared = len(self._faults)
            self._faults.clear()
        return json_response({"cleared": cleared})

    def _reset(self, request: Request) -> Response:
        self.reset()
        return json_response({"reset": True})

    # -- callbacks ----------------------------------------------------------------------------

    def _new_callback(self, kind: str, event_id: str, number: str) -> dict[str, Any]:
        self._ids["callback"] += 1
        path = "shipments" if kind == "shipment" else "delivery-events"
        if kind == "shipment":
            self._ids["tracking"] += 1
            body: dict[str, Any] = {
                "carrier_code": self.carrier_code,
                "tracking_number": f"SBX{self._ids['tracking']:09d}",
            }
        else:
            body = {"status": "delivered"}
        callback = {
            "id": self._ids["callback"],
            "kind": kind,
            "event_id": event_id,
            "order_number": number,
            "url": f"{self.api_base}/api/partner/v1/orders/{quote(number, safe='')}/{path}/",
            "body": body,
            "idempotency_key": f"sandbox-{event_id}-{kind}",
            "state": "scheduled",
            "due_at": None,
            "attempts": [],
        }
        self._callbacks.append(callback)
        return callback

    def _schedule(self, callback: dict[str, Any], delay: float) -> None:
        if self._closed.is_set():
            callback["state"] = "cancelled"
            return
        callback["due_at"] = _iso(self.clock() + delay)
        timer = threading.Timer(delay, self._send, args=(callback,))
        timer.daemon = True
        timer.name = f"partner-sandbox-{callback['kind']}-{callback['id']}"
        self._timers.add(timer)
        callback["_timer"] = timer
        timer.start()

    def _send(self, callback: dict[str, Any]) -> None:
        with self.lock:
            self._timers.discard(callback.pop("_timer", None))
            if callback["state"] != "scheduled" or self._closed.is_set():
                return
            callback["state"] = "sending"
        request = urllib.request.Request(  # noqa: S310 (our own API base, http or https)
            callback["url"],
            data=json.dumps(callback["body"]).encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Bearer {self.api_key or ''}",
                "Idempotency-Key": callback["idempotency_key"],
            },
        )
        attempt: dict[str, Any] = {"at": _iso(self.clock()), "status": None, "answer": None}
        try:
            with urllib.request.urlopen(request, timeout=self.callback_timeout) as answer:  # noqa: S310
                attempt["status"] = answer.status
                attempt["answer"] = answer.read().decode("utf-8", "replace")[:MAX_ANSWER_CHARS]
        except urllib.error.HTTPError as exc:
            attempt["status"] = exc.code
            attempt["answer"] = exc.read().decode("utf-8", "replace")[:MAX_ANSWER_CHARS]
        except (OSError, ValueError) as exc:
            attempt["error"] = repr(exc)
        status = attempt["status"]
        with self.lock:
            if not any(known is callback for known in self._callbacks):  # reset meanwhile
                return
            callback["attempts"].append(attempt)
            if status is not None and 200 <= status < 300:
                callback["state"] = "sent"
                if callback["kind"] == "shipment":
                    delivery = self._new_callback(
                        "delivery", callback["event_id"], callback["order_number"]
                    )
                    self._schedule(delivery, self.deliver_delay)
            elif (status is None or status >= 500) and len(
                callback["attempts"]
            ) < self.callback_attempts:
                callback["state"] = "scheduled"
                self._schedule(callback, self.retry_seconds)
            else:
                callback["state"] = "failed"
        logger.info(
            "%s callback for order %s: %s", callback["kind"], callback["order_number"], status
        )

    # -- views --------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return json.loads(
                json.dumps(
                    {
                        "pushes": list(self._pushes.values()),
                        "calls": self._calls,
                        "callbacks": [
                            {k: v for k, v in cb.items() if not k.startswith("_")}
                            for cb in self._callbacks
                        ],
                        "faults": self._faults,
                    }
                )
            )

    def _page(self, request: Request) -> Response:
        state = self.snapshot()

        def table(headings: list[str], rows: list[list[Any]]) -> str:
            head = "".join(f"<th>{escape(h)}</th>" for h in headings)
            body = "".join(
                "<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows
            )
            return f"<table><tr>{head}</tr>{body or '<tr><td>none</td></tr>'}</table>"

        def pre(value: Any) -> str:
            return f"<pre>{escape(json.dumps(value, ensure_ascii=False, indent=1))}</pre>"

        pushes = table(
            ["received", "event", "event id", "order", "repeats", "body"],
            [
                [
                    escape(p["received_at"]),
                    escape(p["event_type"]),
                    escape(p["event_id"]),
                    escape(p["order_number"] or ""),
                    p["repeats"],
                    pre(p["body"]),
                ]
                for p in reversed(state["pushes"])
            ],
        )
        callbacks = table(
            ["#", "kind", "order", "state", "url", "body", "attempts"],
            [
                [
                    c["id"],
                    escape(c["kind"]),
                    escape(c["order_number"]),
                    escape(c["state"]),
                    escape(c["url"]),
                    pre(c["body"]),
                    pre(c["attempts"]),
                ]
                for c in reversed(state["callbacks"])
            ],
        )
        calls = table(
            ["#", "time", "event", "event id", "status", "reason"],
            [
                [
                    c["id"],
                    escape(c["time"]),
                    escape(c["event_type"]),
                    escape(c["event_id"]),
                    c["status"],
                    escape(c["reason"] or ""),
                ]
                for c in reversed(state["calls"])
            ],
        )
        faults = table(
            ["#", "mode", "times left", "seconds"],
            [[f["id"], escape(f["mode"]), f["times"], f["seconds"] or ""] for f in state["faults"]],
        )
        return html_page(
            "Partner sandbox",
            f"<h2>Pushes</h2>{pushes}<h2>Callbacks to our API</h2>{callbacks}"
            f"<h2>Push calls</h2>{calls}<h2>Faults</h2>{faults}",
        )
