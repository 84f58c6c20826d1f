"""Requests, responses and routes of the sandbox: a few lines over WSGI, no framework."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl


class BadRequest(Exception):
    """A control request the sandbox cannot act on (400 with a JSON reason)."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    # Header names in lower case; the query string as sent (signed requests sign it as is);
    # the values of a route path's ``{name}`` segments.
    headers: dict[str, str] = field(default_factory=dict)
    query_string: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> "Request":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = {
            name[5:].replace("_", "-").lower(): value
            for name, value in environ.items()
            if name.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        return cls(
            method=environ["REQUEST_METHOD"].upper(),
            # WSGI hands the path over as latin-1 decoded bytes.
            path=environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace"),
            query=dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)),
            body=body,
            headers=headers,
            query_string=environ.get("QUERY_STRING", ""),
        )

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON. WeChat reads the body as JSON whatever the Content-Type says
        (wechatpy sends none), so the sandbox does too."""
        return json.loads(self.body.decode("utf-8"))

    def control_json(self) -> dict[str, Any]:
        """The JSON object of a control request; empty body means ``{}``."""
        if not self.body.strip():
            return {}
        try:
            data = self.json()
        except ValueError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
        return data


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def wsgi_status(self) -> str:
        return f"{self.status} {HTTPStatus(self.status).phrase}"

    def wsgi_headers(self) -> list[tuple[str, str]]:
        return [
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(self.body))),
            *self.headers,
        ]


def json_response(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return Response(status, body, "application/json; charset=utf-8")


def html_response(markup: str, status: int = 200) -> Response:
    return Response(status, markup.encode("utf-8"), "text/html; charset=utf-8")


def redirect_response(location: str) -> Response:
    return Response(302, b"", "text/plain; charset=utf-8", [("Location", location)])


def html_page(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:1.5em;max-width:70em}"
        "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3em;"
        "vertical-align:top;text-align:left;font-size:.9em}pre{margin:0;white-space:pre-wrap;"
        "word-break:break-all;max-width:40em}a.user{display:block;border:1px solid #07c160;"
        "border-radius:.4em;padding:.8em;margin:.6em 0;text-decoration:none;color:inherit}"
        ".error{color:#c00}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """One endpoint. A recorded route is a WeChat endpoint: its calls go to the call log and
    faults apply to it; the sandbox's own control pages and endpoints are not recorded. A
    ``{name}`` segment of the path matches any one segment (``request.params[name]``)."""

    method: str
    path: str
    handler: Handler
    recorded: bool = True
