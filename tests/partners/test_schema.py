"""The partner API's own OpenAPI schema: valid, generated without warnings, every operation
with its refusals documented, the push scheme described; the staff schema leaves it out."""

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import patched_settings
from drf_spectacular.validation import validate_schema

from partners.api.schema import PARTNER_SCHEMA_SETTINGS

API = "/api/partner/v1/"


@pytest.mark.django_db
def test_the_partner_schema_lists_every_operation_with_its_errors(client):
    response = client.get(API + "schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert schema["info"]["title"] == "Partner API"
    assert sorted((path, method) for path, item in schema["paths"].items() for method in item) == [
        ("/api/partner/v1/orders/", "get"),
        ("/api/partner/v1/orders/", "post"),
        ("/api/partner/v1/orders/{number}/", "get"),
        ("/api/partner/v1/orders/{number}/acknowledge/", "post"),
        ("/api/partner/v1/orders/{number}/cancel/", "post"),
        ("/api/partner/v1/orders/{number}/delivery-events/", "post"),
        ("/api/partner/v1/orders/{number}/shipments/", "post"),
        ("/api/partner/v1/stock/", "get"),
    ]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"401", "429"} <= set(responses), (path, method)
            assert operation["security"] == [{"partnerKey": []}], (path, method)
    create = schema["paths"][API + "orders/"]["post"]
    assert [(p["name"], p["in"], p["required"]) for p in create["parameters"]] == [
        ("Idempotency-Key", "header", True)
    ]
    assert "`idempotency_key_reused`" in create["responses"]["422"]["description"]
    assert schema["components"]["securitySchemes"]["partnerKey"] == {
        "type": "http",
        "scheme": "bearer",
    }
    description = schema["info"]["description"]
    for words in ("X-Partner-Signature: v1=<hex>", "`<timestamp>.<raw body>`", "300 s"):
        assert words in description


def test_the_partner_schema_is_generated_without_warnings_or_errors():
    GENERATOR_STATS.reset()
    with patched_settings(PARTNER_SCHEMA_SETTINGS):
        schema = SchemaGenerator(urlconf="partners.api.schema_urls").get_schema(public=True)

    validate_schema(schema)
    assert not GENERATOR_STATS, (
        dict(GENERATOR_STATS._warn_cache),
        dict(GENERATOR_STATS._error_cache),
    )


@pytest.mark.django_db
def test_the_staff_schema_leaves_the_partner_api_out_and_the_docs_page_renders(client):
    main = client.get("/api/schema/", {"format": "json"}).json()
    docs = client.get(API + "docs/")

    assert not [path for path in main["paths"] if path.startswith(API)]
    assert docs.status_code == 200
    assert b"/api/partner/v1/schema/" in docs.content
