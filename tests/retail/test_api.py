"""The staff API and the one error format, for 400, 403, 404 and 409."""

import io
import json

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from retail import errors
from retail.errors import BusinessError, api_exception_handler
from retail.models import SKU
from tests.factories import ProductFactory, SKUFactory, StoreFactory

pytestmark = pytest.mark.django_db


def new_sku(**overrides):
    return {
        "product": "P0001",
        "code": "P0001-01",
        "barcode": "6921168509256",
        "price_fen": 200,
        "attributes": {"规格": "550ml"},
        **overrides,
    }


def test_validation_error_shape(client, hq_user, english):
    ProductFactory(code="P0001")
    client.force_login(hq_user)

    response = client.post(
        "/api/staff/v1/skus/",
        new_sku(price_fen=-5, product="NOPE"),
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "validation_error",
            "message": "Some fields are not valid.",
            "fields": {
                "product": ["Object with code=NOPE does not exist."],
                "price_fen": ["Ensure this value is greater than or equal to 0."],
            },
        }
    }
    assert SKU.objects.count() == 0


def test_model_validation_comes_back_in_the_same_shape(client, hq_user, english):
    ProductFactory(code="P0001")
    client.force_login(hq_user)

    response = client.post(
        "/api/staff/v1/skus/",
        new_sku(barcode="6921168509257"),
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "barcode": ["The barcode's check digit is wrong."]
    }
    assert SKU.objects.count() == 0


def test_permission_denied_shape(client, clerk_a):
    ProductFactory(code="P0001")
    client.force_login(clerk_a)

    response = client.post(
        "/api/staff/v1/skus/",
        new_sku(),
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 403
    assert response.json() == {
        "error": {
            "code": "permission_denied",
            "message": "You do not have permission to perform this action.",
            "fields": {},
        }
    }
    assert SKU.objects.count() == 0


def test_anonymous_is_refused_in_the_same_shape(client):
    response = client.get("/api/staff/v1/stores/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_authenticated"


def test_another_stores_record_is_a_404(client, manager_a, store_b):
    client.force_login(manager_a)

    response = client.get(f"/api/staff/v1/stores/{store_b.pk}/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not found.", "fields": {}}
    }


def test_unknown_api_url_is_a_json_404(client):
    response = client.get("/api/staff/v1/nothing-here/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not found.", "fields": {}}
    }


def test_duplicate_barcode_is_refused_with_the_field(client, hq_user, english):
    SKUFactory(barcode="6921168509256", product=ProductFactory(code="P0001"))
    client.force_login(hq_user)

    response = client.post(
        "/api/staff/v1/skus/",
        new_sku(code="P0001-09"),
        content_type="application/json",
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "barcode": ["SKU with this Barcode already exists."]
    }
    assert SKU.objects.count() == 1


def test_error_messages_follow_the_language(client, clerk_a):
    client.force_login(clerk_a)

    response = client.post("/api/staff/v1/skus/", {}, content_type="application/json")

    assert response.json()["error"]["message"] == "您没有执行该操作的权限。"


def test_hq_creates_a_sku(client, hq_user):
    ProductFactory(code="P0001", name="饮用天然水")
    client.force_login(hq_user)

    response = client.post("/api/staff/v1/skus/", new_sku(), content_type="application/json")

    assert response.status_code == 201
    body = response.json()
    del body["id"]
    assert body == {
        "code": "P0001-01",
        "barcode": "6921168509256",
        "product_code": "P0001",
        "product_name": "饮用天然水",
        "category": SKU.objects.get().product.category.code,
        "attributes": {"规格": "550ml"},
        "price_fen": 200,
        "active": True,
    }


def test_store_list_is_scoped(client, manager_a, store_a, store_b):
    client.force_login(manager_a)

    response = client.get("/api/staff/v1/stores/")

    assert [store["code"] for store in response.json()["results"]] == ["SH001"]


def test_store_list_query_count_does_not_grow_with_stores(client, hq_user):
    StoreFactory.create_batch(30)
    client.force_login(hq_user)

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/staff/v1/stores/")

    assert len(response.json()["results"]) == 30
    # session, user, staff roles, ModelBackend's user and group permissions, stores
    assert len(queries) == 6


def test_sku_list_query_count_does_not_grow_with_skus(client, clerk_a):
    SKUFactory.create_batch(25)
    client.force_login(clerk_a)

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/staff/v1/skus/?page_size=20")

    assert len(response.json()["results"]) == 20
    # session, user, staff roles, ModelBackend's user and group permissions,
    # SKUs joined with product and category
    assert len(queries) == 6


def test_sku_list_filters(client, clerk_a):
    water = SKUFactory(product=ProductFactory(name="饮用天然水"), barcode="6921168509256")
    SKUFactory(product=ProductFactory(name="纯牛奶"))
    client.force_login(clerk_a)

    by_name = client.get("/api/staff/v1/skus/", {"q": "天然水"}).json()["results"]
    by_barcode = client.get("/api/staff/v1/skus/", {"barcode": "6921168509256"}).json()["results"]

    assert [sku["code"] for sku in by_name] == [water.code]
    assert [sku["code"] for sku in by_barcode] == [water.code]


def test_malformed_json_is_a_parse_error(client, hq_user, english):
    client.force_login(hq_user)

    response = client.post("/api/staff/v1/skus/", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert SKU.objects.count() == 0


def test_wrong_method_is_a_405_in_the_same_shape(client, hq_user):
    client.force_login(hq_user)

    response = client.delete("/api/staff/v1/stores/")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_store_detail_query_count(client, manager_a, store_a):
    client.force_login(manager_a)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/api/staff/v1/stores/{store_a.pk}/")

    assert response.json()["code"] == "SH001"
    # session, user, staff roles, ModelBackend's user and group permissions, the store
    assert len(queries) == 6


def test_sku_detail_query_count(client, clerk_a):
    sku = SKUFactory(price_fen=1990)
    client.force_login(clerk_a)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/api/staff/v1/skus/{sku.pk}/")

    assert response.json()["price_fen"] == 1990
    # session, user, staff roles, ModelBackend's user and group permissions,
    # the SKU joined with product and category
    assert len(queries) == 6


def test_the_openapi_schema_is_valid_and_warning_free():
    out = io.StringIO()

    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)

    assert "/api/staff/v1/skus/" in out.getvalue()


def test_a_business_error_keeps_its_code_fields_and_status():
    refusal = BusinessError("out_of_stock", "Only 2 left.", fields={"quantity": ["Only 2 left."]})

    response = api_exception_handler(refusal, {})

    assert response.status_code == 409
    assert response.data == {
        "error": {
            "code": "out_of_stock",
            "message": "Only 2 left.",
            "fields": {"quantity": ["Only 2 left."]},
        }
    }


def test_an_unexpected_exception_is_left_to_django_as_a_500():
    assert api_exception_handler(ZeroDivisionError(), {}) is None


def test_djangos_own_error_pages_answer_json_under_api_and_html_elsewhere(rf, english):
    api_500 = errors.server_error(rf.get("/api/staff/v1/skus/"))
    page_500 = errors.server_error(rf.get("/admin/"))
    api_400 = errors.bad_request(rf.get("/api/staff/v1/skus/"), None)

    assert api_500.status_code == 500
    assert json.loads(api_500.content) == {
        "error": {
            "code": "server_error",
            "message": "Something went wrong on our side.",
            "fields": {},
        }
    }
    assert page_500["Content-Type"].startswith("text/html")
    assert json.loads(api_400.content)["error"]["code"] == "bad_request"
