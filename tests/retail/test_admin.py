"""The admin as each role sees it: scoped to the staff member's stores, HQ sees all."""

from datetime import time

import pytest
from django.urls import reverse

from retail.models import StaffRole, Store
from tests.factories import SKUFactory, StaffRoleFactory, StoreFactory

pytestmark = pytest.mark.django_db


def changelist(client, model: str) -> str:
    return client.get(reverse(f"admin:retail_{model}_changelist")).content.decode()


def test_manager_sees_only_her_store(client, manager_a, store_a, store_b):
    client.force_login(manager_a)

    page = changelist(client, "store")

    assert "静安寺店" in page
    assert "人民广场店" not in page


def test_manager_cannot_open_another_store(client, manager_a, store_b):
    client.force_login(manager_a)

    response = client.get(reverse("admin:retail_store_change", args=[store_b.pk]))

    # Django answers an object outside the queryset with a redirect to the index.
    assert response.status_code == 302
    assert response.url == reverse("admin:index")


def test_manager_cannot_change_another_store(client, manager_a, store_b):
    client.force_login(manager_a)

    client.post(
        reverse("admin:retail_store_change", args=[store_b.pk]),
        {"name": "改名", "phone": "021-00000000"},
    )

    store_b.refresh_from_db()
    assert store_b.name == "人民广场店"


def test_manager_edits_her_store_but_not_its_code(client, manager_a, store_a):
    client.force_login(manager_a)
    form = {
        "code": "HACKED",
        "name": "静安寺旗舰店",
        "phone": "021-62880000",
        "province": store_a.province,
        "city": store_a.city,
        "district": store_a.district,
        "address": store_a.address,
        "latitude": "31.223500",
        "longitude": "121.445900",
        "opens_at": "08:00",
        "closes_at": "23:00",
        "offers_pickup": "on",
        "delivery_radius_m": "3000",
    }

    response = client.post(reverse("admin:retail_store_change", args=[store_a.pk]), form)

    assert response.status_code == 302
    store_a.refresh_from_db()
    assert (store_a.code, store_a.name, store_a.delivery_radius_m) == (
        "SH001",
        "静安寺旗舰店",
        3000,
    )


def test_manager_cannot_add_a_store(client, manager_a):
    client.force_login(manager_a)

    response = client.get(reverse("admin:retail_store_add"))

    assert response.status_code == 403


def test_hq_sees_every_store(client, hq_user, store_a, store_b):
    client.force_login(hq_user)

    page = changelist(client, "store")

    assert "静安寺店" in page
    assert "人民广场店" in page


def test_staff_roles_are_scoped_too(client, manager_a, store_a, store_b):
    clerk_b = StaffRoleFactory(role=StaffRole.Role.CLERK, store=store_b).user
    clerk_a = StaffRoleFactory(role=StaffRole.Role.CLERK, store=store_a).user
    client.force_login(manager_a)

    page = changelist(client, "staffrole")

    assert clerk_a.username in page
    assert clerk_b.username not in page


def test_clerk_sees_catalogue_but_cannot_change_it(client, clerk_a):
    sku = SKUFactory(price_fen=350)
    client.force_login(clerk_a)

    assert client.get(reverse("admin:retail_sku_change", args=[sku.pk])).status_code == 200
    response = client.post(
        reverse("admin:retail_sku_change", args=[sku.pk]),
        {"product": sku.product_id, "code": sku.code, "barcode": sku.barcode, "price_fen": "1"},
    )

    assert response.status_code == 403
    sku.refresh_from_db()
    assert sku.price_fen == 350


def test_hq_assigning_a_role_lets_the_user_into_the_admin(client, hq_user, store_a):
    newcomer = StaffRoleFactory.build().user
    newcomer.is_staff = False
    newcomer.save()
    client.force_login(hq_user)

    response = client.post(
        reverse("admin:retail_staffrole_add"),
        {"user": newcomer.pk, "role": "clerk", "store": store_a.pk},
    )

    assert response.status_code == 302
    newcomer.refresh_from_db()
    assert newcomer.is_staff is True
    assert list(newcomer.staff_roles.values_list("role", "store__code")) == [("clerk", "SH001")]


def test_admin_speaks_chinese_by_default_and_english_on_request(client, hq_user):
    client.force_login(hq_user)
    url = reverse("admin:retail_store_changelist")

    chinese = client.get(url).content.decode()
    english = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    client.post(reverse("set_language"), {"language": "en", "next": url})
    chosen = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()

    assert "选择 门店 来修改" in chinese
    assert "Select store to change" in english
    assert "Select store to change" in chosen


def test_store_count_unchanged_after_refusals(client, manager_a, store_a, store_b):
    client.force_login(manager_a)

    client.post(reverse("admin:retail_store_add"), {"code": "SH999", "name": "新店"})
    client.post(reverse("admin:retail_store_delete", args=[store_a.pk]), {"post": "yes"})

    assert sorted(Store.objects.values_list("code", flat=True)) == ["SH001", "SH002"]


def test_store_list_shows_hours_and_services_at_a_glance(client, hq_user):
    StoreFactory(
        code="SH010",
        opens_at=time(0),
        closes_at=time(0),
        offers_ship_from_store=True,
        delivery_radius_m=3500,
    )
    StoreFactory(code="SH011", opens_at=time(7), closes_at=time(1), offers_pickup=False)
    client.force_login(hq_user)

    page = changelist(client, "store")

    assert "24 小时" in page
    assert "自提 · 门店发货 · 收银 · 配送 3.5 公里" in page
    assert "07:00-01:00" in page
    assert "收银</td>" in page


def test_the_home_page_leads_to_admin_docs_and_health(client):
    page = client.get("/").content.decode()

    assert "新零售平台" in page
    assert 'href="/admin/"' in page
    assert 'href="/api/docs/"' in page
    assert 'href="/health/"' in page


def sku_form(sku, price: str) -> dict[str, str]:
    return {
        "product": str(sku.product_id),
        "code": sku.code,
        "barcode": sku.barcode,
        "attributes": '{"规格": "550ml"}',
        "price_fen": price,
        "active": "on",
    }


def test_hq_types_prices_in_yuan(client, hq_user):
    sku = SKUFactory(price_fen=200)
    client.force_login(hq_user)
    url = reverse("admin:retail_sku_change", args=[sku.pk])

    shown = client.get(url).content.decode()
    response = client.post(url, sku_form(sku, "12.50"))

    assert 'value="2.00"' in shown
    assert response.status_code == 302
    sku.refresh_from_db()
    assert sku.price_fen == 1250


@pytest.mark.parametrize(
    ("typed", "error"), [("12.345", "确认小数不超过 2 位."), ("-1", "确保该值大于或等于0。")]
)
def test_a_price_with_fractions_of_a_fen_or_below_zero_is_refused(client, hq_user, typed, error):
    sku = SKUFactory(price_fen=200)
    client.force_login(hq_user)

    response = client.post(reverse("admin:retail_sku_change", args=[sku.pk]), sku_form(sku, typed))

    assert response.status_code == 200
    assert error in response.content.decode()
    sku.refresh_from_db()
    assert sku.price_fen == 200


def test_an_hq_role_with_a_store_is_a_form_error_not_a_crash(client, hq_user, store_a):
    newcomer = StaffRoleFactory.build().user
    newcomer.save()
    client.force_login(hq_user)

    response = client.post(
        reverse("admin:retail_staffrole_add"),
        {"user": newcomer.pk, "role": "hq_admin", "store": store_a.pk},
    )

    assert response.status_code == 200
    assert "总部管理员不属于任何门店；店长或店员必须属于一个门店。" in response.content.decode()
    assert newcomer.staff_roles.count() == 0
