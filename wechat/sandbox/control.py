"""The sandbox's own pages and control endpoints, under ``/sandbox/``: what WeChat's apps do
on the shopper's phone (log in as a user, share the phone number, allow a subscribe message),
what it received, and the knobs tests turn (faults, clock, reset). Not recorded in the log."""

import json
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from wechat.sandbox.http import (
    BadRequest,
    Request,
    Response,
    Route,
    html_page,
    html_response,
    json_response,
    redirect_response,
)

if TYPE_CHECKING:
    from wechat.sandbox.core import Sandbox

SHOWN_CALLS = 200


class Control:
    def __init__(self, sandbox: "Sandbox"):
        self.sandbox = sandbox
        self.miniprogram = sandbox.miniprogram

    def routes(self) -> list[Route]:
        routes = [
            ("GET", "/", lambda request: redirect_response("/sandbox/")),
            ("GET", "/sandbox/", self.overview),
            ("GET", "/sandbox/calls", self.calls),
            ("GET", "/sandbox/users", self.users),
            ("POST", "/sandbox/codes", self.js_code),
            ("POST", "/sandbox/phone-codes", self.phone_code),
            ("GET", "/sandbox/subscriptions", self.subscriptions),
            ("POST", "/sandbox/subscriptions", self.allow_subscription),
            ("GET", "/sandbox/shipments", self.shipments),
            ("GET", "/sandbox/faults", self.faults),
            ("POST", "/sandbox/faults", self.add_fault),
            ("DELETE", "/sandbox/faults", self.clear_faults),
            ("POST", "/sandbox/clock", self.advance_clock),
            ("POST", "/sandbox/reset", self.reset),
            ("GET", "/sandbox/login", self.login_page),
            ("GET", "/sandbox/login/pick", self.login_pick),
            ("GET", "/sandbox/phone", self.phone_page),
            ("GET", "/sandbox/phone/allow", self.phone_allow),
            ("GET", "/sandbox/phone/deny", self.phone_deny),
        ]
        return [Route(method, path, handler, recorded=False) for method, path, handler in routes]

    # --- JSON control endpoints ---------------------------------------------------------------

    def calls(self, request: Request) -> Response:
        limit = request.query.get("limit")
        if limit is not None and not limit.isdigit():
            raise BadRequest("limit must be a number")
        calls = self.sandbox.calls(
            path=request.query.get("path") or None, limit=int(limit) if limit else None
        )
        return json_response({"calls": calls})

    def users(self, request: Request) -> Response:
        users = [user.as_dict() for user in self.miniprogram.users.values()]
        return json_response({"users": users})

    def js_code(self, request: Request) -> Response:
        openid = request.control_json().get("openid")
        return json_response({"code": self.miniprogram.mint_js_code(openid)})

    def phone_code(self, request: Request) -> Response:
        openid = request.control_json().get("openid")
        return json_response({"code": self.miniprogram.mint_phone_code(openid)})

    def subscriptions(self, request: Request) -> Response:
        return json_response({"subscriptions": self.miniprogram.subscriptions()})

    def allow_subscription(self, request: Request) -> Response:
        body = request.control_json()
        remaining = self.miniprogram.allow_subscription(
            body.get("openid"), body.get("template_id"), body.get("times", 1)
        )
        return json_response(
            {"openid": body["openid"], "template_id": body["template_id"], "remaining": remaining}
        )

    def shipments(self, request: Request) -> Response:
        return json_response({"shipments": self.miniprogram.shipments()})

    def faults(self, request: Request) -> Response:
        return json_response({"faults": self.sandbox.faults()})

    def add_fault(self, request: Request) -> Response:
        return json_response({"fault": self.sandbox.add_fault(request.control_json())}, 201)

    def clear_faults(self, request: Request) -> Response:
        self.sandbox.clear_faults()
        return json_response({"faults": []})

    def advance_clock(self, request: Request) -> Response:
        seconds = request.control_json().get("advance_seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
            raise BadRequest("advance_seconds must be a positive number")
        self.sandbox.advance_clock(seconds)
        return json_response({"now": self.sandbox.now()})

    def reset(self, request: Request) -> Response:
        self.sandbox.reset()
        return json_response({"reset": True})

    # --- what WeChat shows the shopper --------------------------------------------------------

    def login_page(self, request: Request) -> Response:
        redirect, state = _redirect_target(request), request.query.get("state", "")
        users = "".join(
            f"<a class='user' href='/sandbox/login/pick?"
            f"{escape(urlencode({'openid': user.openid, 'redirect': redirect, 'state': state}))}'>"
            f"<b>{escape(user.nickname)}</b><br><small>openid {escape(user.openid)} · "
            f"unionid {escape(user.unionid or '-')} · phone {escape(user.phone or '-')}</small></a>"
            for user in self.miniprogram.users.values()
        )
        where = (
            f"<p>After the pick you go back to <code>{escape(redirect)}</code> with "
            "<code>?code=</code>, the one-time code <code>wx.login()</code> would give.</p>"
            if redirect
            else "<p>No <code>redirect</code> given: the code is shown here.</p>"
        )
        return html_response(html_page("Pick a WeChat user", where + users))

    def login_pick(self, request: Request) -> Response:
        code = self.miniprogram.mint_js_code(request.query.get("openid"))
        return self._back(request, "Login code", code=code)

    def phone_page(self, request: Request) -> Response:
        user = self.miniprogram.user(request.query.get("openid"))
        query = urlencode(
            {
                "openid": user.openid,
                "redirect": _redirect_target(request),
                "state": request.query.get("state", ""),
            }
        )
        if user.phone is None:
            body = f"<p class='error'>{escape(user.nickname)} has no phone number in WeChat.</p>"
        else:
            body = (
                f"<p>The mini-program asks for {escape(user.nickname)}'s phone number "
                f"<b>{escape(user.phone[:3])}****{escape(user.phone[-4:])}</b>.</p>"
                f"<a class='user' href='/sandbox/phone/allow?{escape(query)}'>Allow</a>"
            )
        body += f"<a class='user' href='/sandbox/phone/deny?{escape(query)}'>Deny</a>"
        return html_response(html_page("Share your phone number", body))

    def phone_allow(self, request: Request) -> Response:
        code = self.miniprogram.mint_phone_code(request.query.get("openid"))
        return self._back(request, "Phone code", code=code)

    def phone_deny(self, request: Request) -> Response:
        return self._back(request, "Phone number refused", error="user_deny")

    def _back(self, request: Request, title: str, **params: str) -> Response:
        redirect = _redirect_target(request)
        if not redirect:
            shown = "".join(
                f"<p>{name}: <code>{escape(value)}</code></p>" for name, value in params.items()
            )
            return html_response(html_page(title, shown))
        parts = urlsplit(redirect)
        query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
        if request.query.get("state"):
            query.append(("state", request.query["state"]))
        return redirect_response(urlunsplit(parts._replace(query=urlencode(query))))

    # --- what the sandbox received ------------------------------------------------------------

    def overview(self, request: Request) -> Response:
        miniprogram = self.miniprogram
        users = "".join(
            f"<tr><td>{escape(user.nickname)}</td><td>{escape(user.openid)}</td>"
            f"<td>{escape(user.unionid or '-')}</td><td>{escape(user.phone or '-')}</td></tr>"
            for user in miniprogram.users.values()
        )
        faults = "".join(
            f"<li>{escape(fault['path'])}: {escape(_fault_text(fault))}</li>"
            for fault in self.sandbox.faults()
        )
        calls = "".join(
            f"<tr><td>{call['id']}</td><td>{escape(call['time'][11:23])}</td>"
            f"<td>{escape(call['method'])} {escape(call['path'])}</td>"
            f"<td>{_shown(call['query'])}</td><td>{_shown(call['body'])}</td>"
            f"<td>{call['status'] or '…'}</td><td>{_shown(call['answer'])}</td>"
            f"<td>{call['duration_ms'] if call['duration_ms'] is not None else ''}</td>"
            f"<td>{escape(call['fault'] or '')}</td></tr>"
            for call in reversed(self.sandbox.calls(limit=SHOWN_CALLS))
        )
        body = (
            f"<p>Mini-program app id <code>{escape(miniprogram.app_id)}</code>. "
            "<a href='/sandbox/login'>Log in as a WeChat user</a> · "
            "<a href='/sandbox/calls'>calls as JSON</a> · "
            "<a href='/sandbox/shipments'>shipments</a> · "
            "<a href='/sandbox/subscriptions'>subscriptions</a> · "
            "<a href='/sandbox/'>refresh</a></p>"
            "<h2>Users</h2><table><tr><th>nickname</th><th>openid</th><th>unionid</th>"
            f"<th>phone</th></tr>{users}</table>"
            f"<h2>Faults</h2><ul>{faults or '<li>none</li>'}</ul>"
            f"<h2>Calls (newest first, last {SHOWN_CALLS})</h2>"
            "<table><tr><th>#</th><th>time</th><th>call</th><th>query</th><th>body</th>"
            "<th>status</th><th>answer</th><th>ms</th><th>fault</th></tr>"
            f"{calls or '<tr><td colspan=9>no calls yet</td></tr>'}</table>"
        )
        return html_response(html_page("WeChat sandbox", body))


def _redirect_target(request: Request) -> str:
    redirect = request.query.get("redirect", "")
    if redirect and urlsplit(redirect).scheme not in ("http", "https"):
        raise BadRequest("redirect must be an absolute http(s) URL")
    return redirect


def _fault_text(fault: dict[str, Any]) -> str:
    detail = {"errcode": f" {fault['errcode']}", "timeout": f" {fault['seconds']} s"}
    return f"{fault['mode']}{detail.get(fault['mode'], '')}, {fault['times']} more"


def _shown(value: Any) -> str:
    """A logged value for the page: long strings (access tokens, session keys) shortened."""
    if value is None:
        return ""

    def shorten(item: Any) -> Any:
        if isinstance(item, str) and len(item) > 48:
            return f"{item[:20]}…{item[-6:]}"
        if isinstance(item, dict):
            return {key: shorten(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [shorten(inner) for inner in item]
        return item

    text = json.dumps(shorten(value), ensure_ascii=False, indent=1)
    return f"<pre>{escape(text)}</pre>"
