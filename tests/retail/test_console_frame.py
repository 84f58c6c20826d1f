"""The console's frame: who may open which store's pages, and the sections each role sees."""

import pytest

from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


def nav_keys(response) -> list[str]:
    return [entry["key"] for entry in response.context["console_nav"]]


def test_anonymous_is_sent_to_sign_in(client, store_a):
    home = client.get("/console/")
    page = client.get("/console/SH001/dashboard/")

    assert (home.status_code, home["Location"]) == (302, "/admin/login/?next=/console/")
    assert (page.status_code, page["Location"]) == (
        302,
        "/admin/login/?next=/console/SH001/dashboard/",
    )


def test_a_clerk_lands_on_her_store_and_sees_a_clerks_sections(client, clerk_a):
    client.force_login(clerk_a)

    home = client.get("/console/")
    page = client.get("/console/SH001/dashboard/")

    assert (home.status_code, home["Location"]) == (302, "/console/SH001/dashboard/")
    assert page.status_code == 200
    assert nav_keys(page) == ["dashboard", "pos", "pickups", "fulfilment", "stock", "sync"]
    assert [store.code for store in page.context["console_stores"]] == ["SH001"]


def test_a_manager_also_sees_after_sales(client, manager_a):
    client.force_login(manager_a)

    page = client.get("/console/SH001/dashboard/")

    assert nav_keys(page) == [
        "dashboard",
        "pos",
        "pickups",
        "fulfilment",
        "stock",
        "aftersales",
        "sync",
    ]


def test_another_stores_pages_are_a_404_and_a_missing_permission_a_403(client, clerk_a, store_b):
    client.force_login(clerk_a)

    other = client.get("/console/SH002/dashboard/")
    unknown = client.get("/console/NOPE/dashboard/")
    all_stores = client.get("/console/all/dashboard/")
    refunds = client.get("/console/SH001/aftersales/")

    assert (other.status_code, unknown.status_code, all_stores.status_code) == (404, 404, 404)
    assert refunds.status_code == 403


def test_a_role_in_one_store_does_not_carry_to_another(client, store_a, store_b):
    """A manager at B who is a clerk at A acts at A as a clerk."""
    user = factories.StaffRoleFactory(role="store_manager", store=store_b).user
    factories.StaffRoleFactory(role="clerk", store=store_a, user=user)
    client.force_login(user)

    at_a = client.get("/console/SH001/aftersales/")
    at_b = client.get("/console/SH002/aftersales/")

    assert (at_a.status_code, at_b.status_code) == (403, 200)


def test_hq_lands_on_all_stores_and_may_open_any(client, hq_user, store_a, store_b):
    client.force_login(hq_user)

    home = client.get("/console/")
    page = client.get("/console/all/dashboard/")
    store = client.get("/console/SH002/aftersales/")

    assert (home.status_code, home["Location"]) == (302, "/console/all/dashboard/")
    assert page.status_code == 200
    assert nav_keys(page) == ["dashboard", "sync"]
    assert store.status_code == 200
    assert [s.code for s in page.context["console_stores"]] == ["SH001", "SH002"]


def test_staff_without_a_role_get_a_clear_page(client):
    user = factories.UserFactory(is_staff=True)
    client.force_login(user)

    response = client.get("/console/")

    assert response.status_code == 403
    assert b"No store to work in" in response.content
