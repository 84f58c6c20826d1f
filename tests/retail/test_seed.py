"""``manage.py seed_demo``: a believable, valid demo chain that every re-run leaves as it is."""

import io
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from retail.models import SKU, Category, Product, StaffRole, Store
from retail.validators import validate_gtin

PASSWORD = "retail-demo-2026"
SEEDED_MODELS = (Store, Category, Product, SKU, User, StaffRole)

# Rough city limits, to catch a coordinate typed into the wrong city (or swapped lat/lng).
CITY_BOUNDS = {
    "上海市": ((Decimal("30.68"), Decimal("31.88")), (Decimal("120.85"), Decimal("122.20"))),
    "杭州市": ((Decimal("29.18"), Decimal("30.57")), (Decimal("118.34"), Decimal("120.73"))),
}


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """PBKDF2 takes half a second a hash; what is tested here does not depend on the hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every column of every seeded table, password hashes and timestamps included."""
    return {
        model.__name__: list(model._default_manager.order_by("pk").values_list())
        for model in SEEDED_MODELS
    }


@pytest.mark.django_db
def test_seed_creates_the_demo_chain() -> None:
    seed()

    assert Store.objects.filter(kind="store").count() == 9
    assert Store.objects.filter(kind="warehouse").count() == 1
    assert set(Store.objects.values_list("city", flat=True)) == {"上海市", "杭州市"}
    assert Category.objects.count() == 32
    assert Category.objects.filter(parent=None).count() == 7
    assert Product.objects.count() == 129
    assert SKU.objects.count() == 214
    assert User.objects.count() == 21
    assert StaffRole.objects.count() == 21
    assert StaffRole.objects.filter(role="hq_admin", store=None).count() == 1
    for store in Store.objects.all():
        assert StaffRole.objects.filter(store=store, role="store_manager").count() == 1
        assert StaffRole.objects.filter(store=store, role="clerk").count() == 1


@pytest.mark.django_db
def test_stores_are_valid_and_where_they_say() -> None:
    seed()

    for store in Store.objects.all():
        store.full_clean()
        assert 18 <= store.latitude <= 54 and 73 <= store.longitude <= 135, store
        (south, north), (west, east) = CITY_BOUNDS[store.city]
        assert south <= store.latitude <= north and west <= store.longitude <= east, store
    hours = {(store.opens_at, store.closes_at) for store in Store.objects.all()}
    assert any(opens == closes for opens, closes in hours), "one store is open 24 hours"
    assert any(closes < opens for opens, closes in hours), "one store closes after midnight"
    warehouse = Store.objects.get(kind="warehouse")
    assert warehouse.offers_ship_from_store
    assert not (warehouse.offers_pickup or warehouse.offers_counter_sales)
    assert warehouse.delivery_radius_m == 0


@pytest.mark.django_db
def test_every_seeded_row_passes_validation() -> None:
    seed()

    for model in SEEDED_MODELS:
        for instance in model._default_manager.all():
            instance.full_clean()
    barcodes = list(SKU.objects.values_list("barcode", flat=True))
    assert len(set(barcodes)) == len(barcodes)
    for barcode in barcodes:
        validate_gtin(barcode)
        assert len(barcode) == 13 and barcode.startswith("69"), barcode
    for product in Product.objects.prefetch_related("skus").select_related("category"):
        assert product.category.parent_id is not None, "products hang off leaf categories"
        skus = list(product.skus.all())
        assert 1 <= len(skus) <= 4, product
        assert all(sku.code.startswith(f"{product.code}-") for sku in skus)
        assert len({sku.spec_label for sku in skus}) == len(skus), "variants differ by spec"
        assert all(sku.price_fen > 0 for sku in skus)


@pytest.mark.django_db
def test_second_run_changes_nothing() -> None:
    seed()
    before = snapshot()

    output = seed()

    assert snapshot() == before
    assert "(0 created, 0 updated)" in output


@pytest.mark.django_db
def test_output_lists_the_logins() -> None:
    output = seed()

    assert "hq " in output
    assert "clerk_sh001 " in output
    assert "mgr_wh_sh01 " in output
    assert PASSWORD in output
    assert "http://127.0.0.1:8000/admin/" in output
    assert len(seed("--quiet").strip().splitlines()) == 1


@pytest.mark.django_db
def test_rerun_restores_edited_rows() -> None:
    seed()
    sku = SKU.objects.get(code="P0001-01")
    price = sku.price_fen
    SKU.objects.filter(pk=sku.pk).update(price_fen=1, active=False)
    Store.objects.filter(code="SH001").update(name="改过的名字", delivery_radius_m=9000)
    StaffRole.objects.filter(user__username="clerk_sh001").update(role="store_manager")
    clerk = User.objects.get(username="clerk_sh001")
    clerk.set_password("something-else-42")
    clerk.save()

    output = seed()

    sku.refresh_from_db()
    assert (sku.price_fen, sku.active) == (price, True)
    assert Store.objects.get(code="SH001").name == "邻鲜超市 静安寺店"
    assert Store.objects.get(code="SH001").delivery_radius_m == 3000
    assert list(StaffRole.objects.filter(user=clerk).values_list("role", flat=True)) == ["clerk"]
    assert Client().login(username="clerk_sh001", password=PASSWORD)
    # The SKU, the store and the clerk are updated; the clerk's role is replaced.
    assert "(1 created, 4 updated)" in output


@pytest.mark.django_db
def test_demo_logins_work_with_role_permissions() -> None:
    seed()

    assert Client().login(username="hq", password=PASSWORD)
    assert User.objects.get(username="hq").has_perm("retail.add_sku")
    clerk = User.objects.get(username="clerk_hz001")
    assert clerk.is_staff
    assert not clerk.has_perm("retail.add_sku")
    assert clerk.has_perm("retail.view_sku")


@pytest.mark.django_db
def test_password_option_sets_every_demo_password() -> None:
    seed()

    output = seed("--password", "another-demo-pw-7")

    assert "another-demo-pw-7" in output
    assert Client().login(username="mgr_sh002", password="another-demo-pw-7")
    assert not Client().login(username="mgr_sh002", password=PASSWORD)
