"""Catalogue spreadsheets: a good file imports, a file with one bad row imports nothing."""

import io

import pytest
import tablib
from django.urls import reverse

from retail.models import SKU, Product
from retail.resources import SKUResource
from tests.factories import CategoryFactory, ProductFactory, SKUFactory

pytestmark = pytest.mark.django_db

HEADERS = ["code", "product", "barcode", "attributes", "price_yuan", "active"]


def sku_sheet(*rows) -> tablib.Dataset:
    return tablib.Dataset(*rows, headers=HEADERS)


def csv_upload(dataset: tablib.Dataset, name: str = "skus.csv") -> io.BytesIO:
    upload = io.BytesIO(dataset.export("csv").encode())
    upload.name = name
    return upload


@pytest.fixture
def water():
    return ProductFactory(code="P0001", name="饮用天然水")


def test_a_good_sheet_creates_and_updates(water):
    SKUFactory(product=water, code="P0001-01", barcode="6921168509256", price_fen=150)
    sheet = sku_sheet(
        ["P0001-01", "P0001", "6921168509256", '{"规格": "550ml"}', "2.00", "1"],
        ["P0001-02", "P0001", "6921168558032", '{"规格": "1.5L"}', "4.5", "1"],
    )

    result = SKUResource().import_data(sheet, dry_run=False)

    assert not result.has_errors() and not result.has_validation_errors()
    assert list(SKU.objects.order_by("code").values_list("code", "price_fen", "attributes")) == [
        ("P0001-01", 200, {"规格": "550ml"}),
        ("P0001-02", 450, {"规格": "1.5L"}),
    ]


def test_one_bad_row_imports_nothing_and_names_the_row(water, english):
    sheet = sku_sheet(
        ["P0001-01", "P0001", "6921168509256", "", "2.00", "1"],
        ["P0001-02", "P0001", "6921168558032", "", "4.555", "1"],
        ["P0001-03", "P0009", "6921168558049", "", "9.90", "1"],
    )

    result = SKUResource().import_data(sheet, dry_run=False)

    assert SKU.objects.count() == 0
    errors = {row.number: row.error_dict for row in result.invalid_rows}
    assert sorted(errors) == [2, 3]
    assert errors[2]["price_fen"] == ["4.555 is not a price in yuan."]
    assert errors[3]["product"] == ["No product with code P0009."]


def test_a_bad_barcode_is_a_row_error(water, english):
    sheet = sku_sheet(["P0001-01", "P0001", "6921168509257", "", "2.00", "1"])

    result = SKUResource().import_data(sheet, dry_run=False)

    assert SKU.objects.count() == 0
    [row] = result.invalid_rows
    assert row.number == 1
    assert row.error_dict["barcode"] == ["The barcode's check digit is wrong."]


def test_admin_import_reports_the_bad_row_and_imports_nothing(client, hq_user, water):
    client.force_login(hq_user)
    sheet = sku_sheet(
        ["P0001-01", "P0001", "6921168509256", "", "2.00", "1"],
        ["P0001-02", "P0001", "6921168558032", "", "-3", "1"],
    )

    response = client.post(
        reverse("admin:retail_sku_import"),
        {"format": "0", "resource": "0", "import_file": csv_upload(sheet)},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "Some rows failed to validate" in page
    assert [row.number for row in response.context["result"].invalid_rows] == [2]
    assert "A price cannot be negative." in page
    assert "Confirm import" not in page
    assert SKU.objects.count() == 0


def test_admin_import_then_confirm_writes_the_rows(client, hq_user):
    CategoryFactory(code="DRINK-WATER", name="饮用水")
    client.force_login(hq_user)
    sheet = tablib.Dataset(
        ["P0100", "纯净水", "DRINK-WATER", "娃哈哈", "瓶", "", "1"],
        headers=["code", "name", "category", "brand", "unit", "description", "active"],
    )

    preview = client.post(
        reverse("admin:retail_product_import"),
        {"format": "0", "resource": "0", "import_file": csv_upload(sheet, "products.csv")},
    )
    assert Product.objects.count() == 0
    confirm = preview.context["confirm_form"].initial
    done = client.post(reverse("admin:retail_product_process_import"), confirm)

    assert done.status_code == 302
    assert list(Product.objects.values_list("code", "name", "category__code", "brand")) == [
        ("P0100", "纯净水", "DRINK-WATER", "娃哈哈")
    ]


def test_only_hq_may_import(client, manager_a):
    client.force_login(manager_a)

    assert client.get(reverse("admin:retail_sku_import")).status_code == 403


def test_export_writes_prices_in_yuan(client, hq_user, water):
    SKUFactory(product=water, code="P0001-01", barcode="6921168509256", price_fen=1990)

    dataset = SKUResource().export()

    assert dataset.dict == [
        {
            "code": "P0001-01",
            "product": "P0001",
            "product_name": "饮用天然水",
            "barcode": "6921168509256",
            "attributes": '{"规格": "550ml"}',
            "price_yuan": "19.90",
            "active": "1",
        }
    ]
