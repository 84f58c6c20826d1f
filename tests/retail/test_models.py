from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from retail.models import SKU, StaffRole, Store
from tests.factories import SKUFactory, StoreFactory, UserFactory

SHANGHAI = ZoneInfo("Asia/Shanghai")
pytestmark = pytest.mark.django_db


def test_duplicate_barcode_is_refused_by_the_database():
    first = SKUFactory(barcode="6901234567892")

    with pytest.raises(IntegrityError), transaction.atomic():
        SKUFactory(barcode="6901234567892")

    assert list(SKU.objects.values_list("pk", flat=True)) == [first.pk]


def test_duplicate_barcode_is_refused_by_validation():
    SKUFactory(barcode="6901234567892")
    second = SKUFactory.build(barcode="6901234567892", product=SKUFactory().product)

    with pytest.raises(ValidationError) as refused:
        second.full_clean()

    assert list(refused.value.message_dict) == ["barcode"]


def test_negative_price_is_refused_by_the_database():
    sku = SKUFactory(price_fen=990)

    with pytest.raises(IntegrityError), transaction.atomic():
        SKU.objects.filter(pk=sku.pk).update(price_fen=-1)

    sku.refresh_from_db()
    assert sku.price_fen == 990


def test_zero_price_is_allowed_for_gifts():
    assert SKUFactory(price_fen=0).price_fen == 0


@pytest.mark.parametrize(
    ("barcode", "message"),
    [
        ("6901234567891", "The barcode's check digit is wrong."),
        ("69012345678", "A barcode is 8, 12, 13 or 14 digits."),
        ("69O1234567892", "A barcode is 8, 12, 13 or 14 digits."),
    ],
)
def test_a_malformed_barcode_is_refused(barcode, message, english):
    sku = SKUFactory.build(barcode=barcode, product=SKUFactory().product)

    with pytest.raises(ValidationError) as refused:
        sku.full_clean()

    assert refused.value.message_dict["barcode"] == [message]


def test_a_warehouse_cannot_offer_pickup():
    with pytest.raises(IntegrityError), transaction.atomic():
        StoreFactory(kind=Store.Kind.WAREHOUSE, offers_pickup=True, offers_counter_sales=False)

    assert Store.objects.count() == 0


def test_a_warehouse_may_ship():
    warehouse = StoreFactory(
        kind=Store.Kind.WAREHOUSE,
        offers_pickup=False,
        offers_counter_sales=False,
        offers_ship_from_store=True,
    )

    assert warehouse.kind == "warehouse"


def test_latitude_out_of_range_is_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        StoreFactory(latitude=91)

    assert Store.objects.count() == 0


def test_hq_role_belongs_to_no_store():
    user = UserFactory()
    store = StoreFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        StaffRole.objects.create(user=user, role=StaffRole.Role.HQ_ADMIN, store=store)
    with pytest.raises(IntegrityError), transaction.atomic():
        StaffRole.objects.create(user=user, role=StaffRole.Role.CLERK, store=None)

    assert StaffRole.objects.count() == 0


def test_one_role_per_user_and_store():
    user = UserFactory()
    store = StoreFactory()
    StaffRole.objects.create(user=user, role=StaffRole.Role.CLERK, store=store)

    with pytest.raises(IntegrityError), transaction.atomic():
        StaffRole.objects.create(user=user, role=StaffRole.Role.STORE_MANAGER, store=store)

    assert list(StaffRole.objects.values_list("role", flat=True)) == ["clerk"]


@pytest.mark.parametrize(
    ("opens", "closes", "local", "is_open"),
    [
        (time(9), time(22), datetime(2026, 11, 25, 8, 59, tzinfo=SHANGHAI), False),
        (time(9), time(22), datetime(2026, 11, 25, 9, 0, tzinfo=SHANGHAI), True),
        (time(9), time(22), datetime(2026, 11, 25, 22, 0, tzinfo=SHANGHAI), False),
        (time(7), time(1), datetime(2026, 11, 25, 0, 30, tzinfo=SHANGHAI), True),
        (time(7), time(1), datetime(2026, 11, 25, 3, 0, tzinfo=SHANGHAI), False),
        (time(7), time(1), datetime(2026, 11, 25, 23, 0, tzinfo=SHANGHAI), True),
        (time(0), time(0), datetime(2026, 11, 25, 4, 0, tzinfo=SHANGHAI), True),
    ],
)
def test_opening_hours_are_read_in_shanghai_time(opens, closes, local, is_open):
    store = Store(opens_at=opens, closes_at=closes)
    # The same moment given in UTC: the store still judges it by Shanghai's clock.
    moment = local.astimezone(ZoneInfo("UTC"))

    assert store.is_open_at(moment) is is_open
