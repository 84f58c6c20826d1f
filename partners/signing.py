"""The signature on our pushes to partners, as documented for them; pure Python, no Django, so
the partner sandbox (and any partner) can use it as it is.

Every push carries four headers:

- ``X-Partner-Event``: the event type (``order.paid``, ...)
- ``X-Partner-Event-Id``: the event's stable id (a retry sends the same id)
- ``X-Partner-Timestamp``: when it was signed, in unix seconds
- ``X-Partner-Signature``: ``v1=<hex HMAC-SHA256 over "<timestamp>.<raw body>" with the secret>``

A receiver recomputes the HMAC over the raw body bytes (before parsing any JSON), compares in
constant time, and refuses a timestamp more than ``tolerance`` seconds from its own clock. The
signature header may hold several comma-separated ``v1=`` values (while a secret is rotated);
one match is enough. The signature is checked before the timestamp: a push signed with another
secret is ``bad_signature`` however old it is.
"""

import hashlib
import hmac
from collections.abc import Mapping

EVENT_HEADER = "X-Partner-Event"
EVENT_ID_HEADER = "X-Partner-Event-Id"
TIMESTAMP_HEADER = "X-Partner-Timestamp"
SIGNATURE_HEADER = "X-Partner-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300


class SignatureError(Exception):
    """A push whose signature does not hold; ``reason`` is missing, bad_signature or
    stale_timestamp."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Partner-Signature`` value for ``body`` signed at ``timestamp``."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    digest = hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def signed_headers(
    secret: str | bytes,
    event_type: str,
    event_id: str,
    timestamp: int,
    body: bytes,
    previous_secrets: tuple[str | bytes, ...] = (),
) -> dict[str, str]:
    """All four push headers for one push. While a secret is being rotated the push is also
    signed with the ``previous_secrets``: one ``v1=`` value each, after the current one's."""
    signatures = [sign(key, timestamp, body) for key in (secret, *previous_secrets)]
    return {
        EVENT_HEADER: event_type,
        EVENT_ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(int(timestamp)),
        SIGNATURE_HEADER: ", ".join(signatures),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value.strip()
    return ""


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Raise ``SignatureError`` unless ``headers`` sign ``body`` with ``secret`` within
    ``tolerance`` seconds of ``now``. Header names are matched case-insensitively."""
    raw_timestamp = _header(headers, TIMESTAMP_HEADER)
    raw_signature = _header(headers, SIGNATURE_HEADER)
    if not raw_timestamp or not raw_signature:
        raise SignatureError("missing", "the timestamp and signature headers are required")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise SignatureError(
            "missing", f"the timestamp {raw_timestamp!r} is not a number"
        ) from None
    expected = sign(secret, timestamp, body)
    offered = [part.strip() for part in raw_signature.split(",")]
    if not any(hmac.compare_digest(expected, part) for part in offered):
        raise SignatureError("bad_signature", "no v1 signature matches the body")
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            "stale_timestamp", f"signed at {timestamp}, {int(now - timestamp)}s from now"
        )
