"""Requests and responses of the partner sandbox: a few lines over WSGI, no framework."""

import json
from dataclasses import dataclass, field
from html import escape
from http import HTTPStatus
from typing import Any


class BadRequest(Exception):
    """A control request the sandbox cannot act on (400 with a JSON reason)."""


@dataclass
class Request:
    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case

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
            path=environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace"),
            body=body,
            headers=headers,
        )

    def control_json(self) -> dict[str, Any]:
        """The JSON object of a control request; an empty body means ``{}``."""
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body.decode("utf-8"))
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


def html_page(title: str, body: str) -> Response:
    markup = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:1.5em;max-width:80em}"
        "table{border-collapse:collapse;width:100%;margin-bottom:1.5em}td,th{border:1px solid "
        "#ccc;padding:.3em;vertical-align:top;text-align:left;font-size:.9em}pre{margin:0;"
        "white-space:pre-wrap;word-break:break-all;max-width:40em}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return Response(200, markup.encode("utf-8"), "text/html; charset=utf-8")
