"""The shop API's own OpenAPI schema: generated from ``wechat.api.schema_urls`` (the shop API
at its real prefix) and left out of the staff/partner schema at /api/schema/."""

SHOP_PREFIX = "/api/shop/v1/"

SHOP_SCHEMA_SETTINGS = {
    "TITLE": "Mini-shop API",
    "DESCRIPTION": (
        "What the WeChat mini-program and the H5 shop call. Log in with `POST login/` "
        "(wx.login()'s code), then send `Authorization: Bearer <token>`. Money is in fen. "
        'Every error is `{"error": {"code", "message", "fields"}}`; `message` follows '
        "`Accept-Language` (zh-hans, en), `code` is stable."
    ),
    "PREPROCESSING_HOOKS": [],
    # ENUM_NAME_OVERRIDES are the main settings' (drf-spectacular caches them per process,
    # whichever schema is generated first): the shop's enums are named there.
}


def without_shop_endpoints(endpoints):
    """Preprocessing hook of the main schema: the shop API has its own."""
    return [endpoint for endpoint in endpoints if not endpoint[0].startswith(SHOP_PREFIX)]
