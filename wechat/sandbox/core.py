"""The sandbox as one WSGI application: the WeChat services it plays, the call log, faults and
its clock, all behind one lock so the threaded server can answer calls in parallel.

A *service* (``Service`` below) is one WeChat host the sandbox plays. Today there is one, the
mini-program platform; WeChat Pay v2 (XML) and v3 (JSON, signed) join ``Sandbox.services`` the
same way, on the same port under their own paths (``/pay/...``, ``/v3/...``), answering faults
in their own protocol.
"""

import json
import logging
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol

from wechat.sandbox import data
from wechat.sandbox.control import Control
from wechat.sandbox.http import BadRequest, Request, Response, Route, json_response
from wechat.sandbox.miniprogram import MiniProgram
from wechat.sandbox.pay_v2 import PayV2
from wechat.sandbox.pay_v3 import PayV3

logger = logging.getLogger("wechat.sandbox")

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
MAX_FAULT_SECONDS = 600


class Service(Protocol):
    fault_modes: frozenset[str]  # which of busy, errcode, timeout, expire_token it can play

    def routes(self) -> list[Route]: ...

    def error_response(self, errcode: int, errmsg: str | None = None) -> Response:
        """How this protocol says "failed" (a fault's busy or errcode answer)."""

    def expire_credentials(self, request: Request) -> Response:
        """The expire_token fault: expire what the request authenticates with, and answer as
        WeChat answers an expired credential."""

    def reset(self) -> None: ...


@dataclass
class Fault:
    id: int
    path: str
    mode: str  # busy | errcode | timeout | expire_token
    times: int  # how many more calls it answers
    errcode: int | None = None
    errmsg: str | None = None
    seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sandbox:
    def __init__(
        self,
        *,
        app_id: str = data.SANDBOX_APP_ID,
        app_secret: str = data.SANDBOX_APP_SECRET,
        users: tuple[data.WeChatUser, ...] = data.DEFAULT_USERS,
        templates: dict[str, dict[str, Any]] | None = None,
        carriers: tuple[tuple[str, str], ...] = data.DEFAULT_CARRIERS,
        max_calls: int = 1000,
    ):
        self.lock = threading.RLock()
        self._calls: deque[dict[str, Any]] = deque(maxlen=max_calls)
        self._faults: list[Fault] = []
        self._ids = {"call": 0, "fault": 0}
        self._clock_offset = 0.0
        self._wake = threading.Event()
        self.miniprogram = MiniProgram(
            self,
            app_id=app_id,
            app_secret=app_secret,
            users=users,
            templates=templates or data.DEFAULT_TEMPLATES,
            carriers=carriers,
        )
        self.pay_v2 = PayV2(self, app_id=app_id, users=users)
        self.pay_v3 = PayV3(self, app_id=app_id, users=users)
        self.services: list[Service] = [self.miniprogram, self.pay_v2, self.pay_v3]
        self._routes: dict[str, dict[str, tuple[Service | Control, Route]]] = {}
        # Paths with {name} segments, tried in order after the exact paths.
        self._patterns: list[tuple[re.Pattern[str], str]] = []
        for service in [*self.services, Control(self)]:
            for route in service.routes():
                if route.path not in self._routes and "{" in route.path:
                    self._patterns.append((_path_pattern(route.path), route.path))
                self._routes.setdefault(route.path, {})[route.method] = (service, route)

    # --- the clock ----------------------------------------------------------------------------

    def now(self) -> float:
        """Sandbox time: wall time, moved forward by ``advance_clock`` (token and code expiry)."""
        with self.lock:
            return time.time() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        with self.lock:
            self._clock_offset += seconds

    # --- state --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget calls, faults, tokens, codes, subscriptions and shipments; keep the users."""
        with self.lock:
            self._calls.clear()
            self._faults.clear()
            self._ids = {"call": 0, "fault": 0}
            self._clock_offset = 0.0
            # Calls held by a timeout fault answer now.
            self._wake.set()
            self._wake = threading.Event()
            for service in self.services:
                service.reset()

    def wake_sleepers(self) -> None:
        with self.lock:
            self._wake.set()

    def calls(self, *, path: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Recorded calls, oldest first (the last ``limit`` of them)."""
        with self.lock:
            found = [dict(call) for call in self._calls if path is None or call["path"] == path]
        return found[-limit:] if limit else found

    def faults(self) -> list[dict[str, Any]]:
        with self.lock:
            return [fault.as_dict() for fault in self._faults]

    def add_fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        """A fault on a path (``/v3/pay/transactions/out-trade-no/A1``) or on a route's pattern
        (``/v3/pay/transactions/out-trade-no/{out_trade_no}``: every path it matches)."""
        path, mode = spec.get("path"), spec.get("mode")
        owner, _params = self._match(path) if isinstance(path, str) else ({}, {})
        routes = list(owner.values()) if owner else []
        if not routes or not routes[0][1].recorded:
            raise BadRequest(f"no WeChat endpoint at {path!r}")
        service = routes[0][0]
        if mode not in service.fault_modes:
            raise BadRequest(f"mode must be one of {sorted(service.fault_modes)}")
        times = spec.get("times", 1)
        if not _positive_int(times):
            raise BadRequest("times must be a positive integer")
        fault = Fault(id=0, path=path, mode=mode, times=times)
        if mode == "errcode":
            errcode = spec.get("errcode")
            if not isinstance(errcode, int) or isinstance(errcode, bool) or errcode == 0:
                raise BadRequest("errcode must be a non-zero integer")
            fault.errcode = errcode
            fault.errmsg = spec.get("errmsg")
        if mode == "timeout":
            seconds = spec.get("seconds")
            if (
                not isinstance(seconds, int | float)
                or isinstance(seconds, bool)
                or not 0 < seconds <= MAX_FAULT_SECONDS
            ):
                raise BadRequest(f"seconds must be a number in (0, {MAX_FAULT_SECONDS}]")
            fault.seconds = float(seconds)
        with self.lock:
            self._ids["fault"] += 1
            fault.id = self._ids["fault"]
            self._faults.append(fault)
        return fault.as_dict()

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def _take_fault(self, path: str, route_path: str) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.path in (path, route_path):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # --- WSGI ---------------------------------------------------------------------------------

    def _match(self, path: str) -> tuple[dict[str, tuple[Any, Route]], dict[str, str]]:
        if path in self._routes:
            return self._routes[path], {}
        for pattern, route_path in self._patterns:
            found = pattern.fullmatch(path)
            if found:
                return self._routes[route_path], found.groupdict()
        return {}, {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        request = Request.from_environ(environ)
        methods, request.params = self._match(request.path)
        if request.method in methods:
            service, route = methods[request.method]
            if route.recorded:
                response = self._answer_recorded(service, route, request)
            else:
                response = self._answer(route, request)
        elif methods:
            response = json_response({"error": f"{request.method} is not allowed here"}, 405)
        elif request.path.startswith("/sandbox"):
            response = json_response({"error": f"no sandbox page at {request.path}"}, 404)
        else:
            # A WeChat endpoint the sandbox does not play: recorded, so it shows in the log.
            route = Route(request.method, request.path, _not_played)
            response = self._answer_recorded(None, route, request)
        start_response(response.wsgi_status(), response.wsgi_headers())
        return [response.body]

    def _answer(self, route: Route, request: Request) -> Response:
        try:
            return route.handler(request)
        except BadRequest as exc:
            return json_response({"error": str(exc)}, 400)
        except Exception as exc:
            logger.exception("sandbox error on %s %s", request.method, request.path)
            return json_response({"error": f"sandbox error: {exc!r}"}, 500)

    def _answer_recorded(self, service: Service | None, route: Route, request: Request) -> Response:
        started = time.monotonic()
        with self.lock:
            self._ids["call"] += 1
            call = {
                "id": self._ids["call"],
                "time": datetime.fromtimestamp(self.now(), UTC).astimezone(CHINA).isoformat(),
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "body": _readable(request.text),
                "status": None,
                "answer": None,
                "duration_ms": None,
                "fault": None,
            }
            self._calls.append(call)
            wake = self._wake
        fault = self._take_fault(request.path, route.path) if service is not None else None
        if fault is None or fault.mode == "timeout":
            if fault is not None:
                wake.wait(fault.seconds)
            response = self._answer(route, request)
        elif fault.mode == "busy":
            response = service.error_response(-1)
        elif fault.mode == "errcode":
            response = service.error_response(fault.errcode, fault.errmsg)
        else:
            response = service.expire_credentials(request)
        with self.lock:
            call.update(
                status=response.status,
                answer=_readable(response.body.decode("utf-8", "replace")),
                duration_ms=round((time.monotonic() - started) * 1000, 1),
                fault=fault.mode if fault else None,
            )
        answer = call["answer"]
        # WeChat Pay v3 names its errors "code".
        errcode = answer.get("errcode", answer.get("code", 0)) if isinstance(answer, dict) else "-"
        logger.info(
            "%s %s -> %s errcode %s", request.method, request.path, response.status, errcode
        )
        return response


def _path_pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", path)
    regex = "".join(
        f"(?P<{part}>[^/]+)" if index % 2 else re.escape(part) for index, part in enumerate(parts)
    )
    return re.compile(regex)


def _not_played(request: Request) -> Response:
    return json_response({"error": f"the sandbox does not play {request.path}"}, 404)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _readable(text: str) -> Any:
    """A body as the call log keeps it: JSON when it is JSON, else the text."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
