"""The partner API's own OpenAPI schema (``/api/partner/v1/schema/``), generated from
``partners.api.schema_urls`` and left out of the staff schema."""

PARTNER_PREFIX = "/api/partner/v1/"

PARTNER_SCHEMA_SETTINGS = {
    "TITLE": "Partner API",
    "DESCRIPTION": (
        "For logistics partners and sales channels. Send `Authorization: Bearer <key>` "
        "(keys are issued by HQ and shown once). Money is in fen, times are ISO 8601 with "
        'their offset. Every error is `{"error": {"code", "message", "fields"}}` with a stable '
        "`code`. Calls are limited per key (429 `throttled`, `Retry-After`).\n\n"
        "**Pushes.** We `POST` order events to the partner's webhook URL: a JSON body "
        '`{"id", "type", "created_at", "data": {"order": {...}}}` (`order.refunded` adds '
        "`data.refund.amount_fen`) with the headers `X-Partner-Event` (the type), "
        "`X-Partner-Event-Id` (stable across retries: a repeat is done already), "
        "`X-Partner-Timestamp` (unix seconds) and `X-Partner-Signature: v1=<hex>`, the "
        "HMAC-SHA256 of `<timestamp>.<raw body>` with the partner's signing secret. Verify it "
        "on the raw bytes in constant time and refuse timestamps more than 300 s off. Answer "
        "2xx when you have it; 408, 429, 5xx or no answer is retried with backoff for about "
        "two hours; any other answer is not retried. Types: fulfilment partners get "
        "`order.paid` (fulfil it), `order.cancelled`, `order.refunded`, "
        "`order.address_changed`; sales channels get `order.paid`, `order.shipped`, "
        "`order.delivered`, `order.completed`, `order.cancelled`, `order.refunded` for their "
        "orders. See docs/partners.md for the guide."
    ),
    "PREPROCESSING_HOOKS": [],
}


def without_partner_endpoints(endpoints):
    """Preprocessing hook of the main schema: the partner API has its own."""
    return [endpoint for endpoint in endpoints if not endpoint[0].startswith(PARTNER_PREFIX)]
