"""The shopper's address book through the shop API: add, read, change, remove; at most 20
addresses and exactly one default while she has any. Another shopper's address is a 404 and
stays untouched; every refusal changes nothing."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from tests import factories
from wechat.models import Address
from wechat.services.addresses import SHOP_MAX_ADDRESSES

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)
HOME = {
    "name": "林小美",
    "mobile": "13800138001",
    "province": "上海市",
    "city": "上海市",
    "district": "静安区",
    "detail": "愚园路168号5楼",
}
OFFICE = {**HOME, "district": "黄浦区", "detail": "南京东路100号", "mobile": "13800138002"}


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def me(shop_api, lina):
    return shop_api(lina)


def error(response) -> tuple:
    body = response.json()["error"]
    return response.status_code, body["code"], body["fields"]


def book(member) -> list[tuple]:
    return list(
        Address.objects.filter(member=member)
        .order_by("pk")
        .values_list("pk", "district", "mobile", "is_default")
    )


def test_her_first_address_is_the_default(me, lina):
    response = me.post("addresses/", {**HOME, "latitude": "31.221500", "longitude": "121.436100"})

    assert response.status_code == 201
    address = Address.objects.get()
    assert response.json() == {
        "id": address.pk,
        **HOME,
        "latitude": 31.2215,
        "longitude": 121.4361,
        "is_default": True,
        "updated_at": "2026-11-25T10:00:00+08:00",
    }
    assert address.member == lina


def test_a_new_default_takes_the_mark_from_the_old_one(me, lina, clock):
    home = me.post("addresses/", HOME).json()
    clock.shift(timedelta(minutes=1))
    plain = me.post("addresses/", OFFICE).json()
    clock.shift(timedelta(minutes=1))

    chosen = me.post("addresses/", {**OFFICE, "district": "徐汇区", "is_default": True}).json()

    assert plain["is_default"] is False
    assert [row[3] for row in book(lina)] == [False, False, True]
    listed = me.get("addresses/").json()
    assert [row["id"] for row in listed] == [chosen["id"], plain["id"], home["id"]]


def test_changing_an_address_and_making_it_the_default(me, lina):
    home = me.post("addresses/", HOME).json()
    office = me.post("addresses/", OFFICE).json()

    response = me.patch(
        f"addresses/{office['id']}/", {"detail": "南京东路200号", "is_default": True}
    )

    assert response.status_code == 200
    assert (response.json()["detail"], response.json()["is_default"]) == ("南京东路200号", True)
    assert book(lina) == [
        (home["id"], "静安区", "13800138001", False),
        (office["id"], "黄浦区", "13800138002", True),
    ]


def test_the_default_cannot_be_unmade_only_replaced(me, lina):
    home = me.post("addresses/", HOME).json()
    before = book(lina)

    response = me.patch(f"addresses/{home['id']}/", {"is_default": False})

    assert error(response) == (400, "default_required", {"is_default": ["false"]})
    assert book(lina) == before


def test_removing_the_default_makes_the_latest_changed_one_the_default(me, lina, clock):
    home = me.post("addresses/", HOME).json()
    clock.shift(timedelta(minutes=1))
    office = me.post("addresses/", OFFICE).json()
    clock.shift(timedelta(minutes=1))
    other = me.post("addresses/", {**OFFICE, "district": "徐汇区"}).json()
    clock.shift(timedelta(minutes=1))
    me.patch(f"addresses/{office['id']}/", {"detail": "南京东路300号"})

    response = me.delete(f"addresses/{home['id']}/")

    assert response.status_code == 204
    assert [(row[0], row[3]) for row in book(lina)] == [(office["id"], True), (other["id"], False)]


def test_the_book_holds_at_most_twenty_addresses(me, lina):
    for _number in range(SHOP_MAX_ADDRESSES):
        assert me.post("addresses/", HOME).status_code == 201
    before = book(lina)

    response = me.post("addresses/", OFFICE)

    assert error(response) == (409, "address_limit", {})
    assert book(lina) == before
    assert len(before) == 20


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mobile": "12345"}, "mobile"),
        ({"name": ""}, "name"),
        ({"detail": "号" * 201}, "detail"),
        ({"latitude": "91"}, "latitude"),
    ],
)
def test_an_invalid_address_is_refused_and_nothing_is_added(me, lina, change, field):
    response = me.post("addresses/", {**HOME, **change})

    status_code, code, fields = error(response)
    assert (status_code, code, list(fields)) == (400, "validation_error", [field])
    assert book(lina) == []


def test_an_invalid_change_is_refused_and_nothing_changes(me, lina):
    home = me.post("addresses/", HOME).json()
    before = book(lina)

    bad_mobile = me.patch(f"addresses/{home['id']}/", {"mobile": "23800138001"})
    half_a_place = me.patch(f"addresses/{home['id']}/", {"latitude": "31.2"})

    assert error(bad_mobile) == (
        400,
        "validation_error",
        {"mobile": ["Enter a mainland China mobile number (11 digits starting with 1)."]},
    )
    assert error(half_a_place) == (400, "validation_error", {"latitude": [""]})
    assert book(lina) == before


def test_another_shoppers_address_is_a_404_and_stays_as_it_was(me, lina):
    stranger = factories.MemberFactory()
    theirs = Address.objects.create(member=stranger, is_default=True, **HOME)
    before = book(stranger)

    answers = [
        me.get(f"addresses/{theirs.pk}/"),
        me.patch(f"addresses/{theirs.pk}/", {"detail": "改掉"}),
        me.delete(f"addresses/{theirs.pk}/"),
    ]

    assert [error(answer)[:2] for answer in answers] == [
        (404, "not_found"),
        (404, "address_not_found"),
        (404, "address_not_found"),
    ]
    assert book(stranger) == before
    assert me.get("addresses/").json() == []


def test_one_address_reads_back(me):
    home = me.post("addresses/", HOME).json()

    response = me.get(f"addresses/{home['id']}/")

    assert (response.status_code, response.json()) == (200, home)


def test_the_address_book_needs_a_login(client):
    response = client.get("/api/shop/v1/addresses/", HTTP_ACCEPT_LANGUAGE="en")

    assert error(response)[:2] == (401, "not_authenticated")
