"""Members in the admin, as each role sees them: scoped to the staff member's stores by home
store, mobile numbers masked for clerks, identities, points and coupons read-only, and the
export and erase actions calling the services; a refused action changes nothing."""

import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from members.models import Member, PointsEntry
from members.services.identity import (
    member_bind_phone,
    member_export,
    member_login_wechat,
    member_signup_at_counter,
)
from members.services.points import points_apply
from tests import factories
from tests.members.factories import CouponFactory

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)
R = PointsEntry.Reason


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(T0, tick=False):
        yield


def browser(user) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def url(name: str, *args) -> str:
    return reverse(f"admin:members_{name}", args=args)


def listed(response) -> list:
    return list(response.context["cl"].result_list)


def flashed(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def cells(page: str, column: str) -> list[str]:
    return re.findall(rf'<t[dh] class="field-{column}[^"]*">(?:<a [^>]*>)?(.*?)<', page)


def inline_cells(page: str, column: str) -> list[str]:
    return re.findall(rf'<td class="field-{column}">\s*<p>(.*?)</p>', page, re.DOTALL)


def field_value(page: str, field: str) -> str:
    found = re.search(
        rf'<div class="[^"]*field-{field}[^"]*">.*?<div class="readonly">(.*?)</div>',
        page,
        re.DOTALL,
    )
    return found.group(1) if found else ""


def offered_actions(client: Client) -> list[str]:
    form = client.get(url("member_changelist")).context["action_form"]
    return [] if form is None else [name for name, _label in form.fields["action"].choices][1:]


def run_action(client: Client, action: str, members, **extra):
    return client.post(
        url("member_changelist"),
        {"action": action, "_selected_action": [member.pk for member in members], **extra},
    )


@pytest.fixture
def here(store_a):
    """王芳, signed up at store A (13912345678), then her WeChat login with a coupon bound the same
    phone: one member with two identities, the coupon and 300 points."""
    member = member_signup_at_counter(mobile="13912345678", name="王芳", store=store_a, actor=None)
    points_apply(member=member, points=300, reason=R.EARN, reference="2611250000000001")
    wechat = member_login_wechat(app_id="wx-app", openid="o-1")
    CouponFactory(member=wechat, code="CPNWECHAT001")
    member_bind_phone(member=wechat, mobile="13912345678")
    return Member.objects.get(pk=member.pk)


@pytest.fixture
def there(store_b):
    return member_signup_at_counter(mobile="13800000002", name="李娜", store=store_b, actor=None)


@pytest.fixture
def online():
    """Joined in the mini-shop and never came to a counter: HQ's."""
    member = member_login_wechat(app_id="wx-app", openid="o-3")
    return member_bind_phone(member=member, mobile="13700000003")


# --- Lists and pages ------------------------------------------------------------------------


def test_a_clerk_lists_her_stores_members_with_masked_numbers(here, there, online, clerk_a):
    response = browser(clerk_a).get(url("member_changelist"))

    page = response.content.decode()
    assert [member.pk for member in listed(response)] == [here.pk]
    assert cells(page, "mobile") == ["139****5678"]
    assert "13912345678" not in page


def test_a_manager_sees_her_stores_members_numbers_in_full(here, there, online, manager_a):
    response = browser(manager_a).get(url("member_changelist"))

    assert [member.pk for member in listed(response)] == [here.pk]
    assert cells(response.content.decode(), "mobile") == ["13912345678"]


def test_hq_sees_every_member_in_full(here, there, online, hq_user):
    merged = Member.objects.get(merged_into=here)

    response = browser(hq_user).get(url("member_changelist"))

    assert [member.pk for member in listed(response)] == [online.pk, there.pk, merged.pk, here.pk]
    assert cells(response.content.decode(), "mobile") == [
        "13700000003",
        "13800000002",
        "-",
        "13912345678",
    ]


def test_each_number_shows_as_the_role_in_its_members_store_allows(here, there, clerk_a, store_b):
    factories.StaffRoleFactory(user=clerk_a, role="store_manager", store=store_b)

    response = browser(clerk_a).get(url("member_changelist"))

    assert [member.pk for member in listed(response)] == [there.pk, here.pk]
    assert cells(response.content.decode(), "mobile") == ["13800000002", "139****5678"]


def test_a_clerk_finds_a_member_by_the_tail_of_her_number(here, clerk_a):
    response = browser(clerk_a).get(url("member_changelist"), {"q": "5678"})

    assert [member.pk for member in listed(response)] == [here.pk]


def test_a_clerks_member_page_masks_the_number_everywhere(here, clerk_a):
    response = browser(clerk_a).get(url("member_change", here.pk))

    page = response.content.decode()
    assert response.status_code == 200
    assert "13912345678" not in page
    assert field_value(page, "mobile_masked") == "139****5678"
    assert inline_cells(page, "kind") == ["phone", "WeChat"]
    assert inline_cells(page, "phone_masked") == ["139****5678", "-"]
    assert inline_cells(page, "openid") == ["-", "o-1"]
    assert inline_cells(page, "reference") == ["2611250000000001"]
    assert inline_cells(page, "balance_after") == ["300"]
    assert inline_cells(page, "code") == ["CPNWECHAT001"]
    assert len(inline_cells(page, "moved")) == 1


def test_a_managers_member_page_shows_the_number(here, manager_a):
    page = browser(manager_a).get(url("member_change", here.pk)).content.decode()

    assert field_value(page, "mobile") == "13912345678"
    assert inline_cells(page, "phone") == ["13912345678", "-"]


def test_the_page_shows_the_latest_fifty_points_entries(here, manager_a):
    for number in range(2, 57):
        with time_machine.travel(T0 + timedelta(minutes=number), tick=False):
            points_apply(member=here, points=1, reason=R.EARN, reference=f"ref-{number:02d}")

    page = browser(manager_a).get(url("member_change", here.pk)).content.decode()

    assert inline_cells(page, "reference") == [f"ref-{number:02d}" for number in range(56, 6, -1)]


def test_members_of_other_stores_and_online_members_do_not_exist_for_a_clerk(
    there, online, clerk_a
):
    client = browser(clerk_a)

    for member in (there, online):
        response = client.get(url("member_change", member.pk))
        assert (response.status_code, response.url) == (302, reverse("admin:index"))


def test_nobody_adds_edits_or_deletes_a_member_here(here, hq_user):
    client = browser(hq_user)

    assert client.get(url("member_add")).status_code == 403
    assert client.get(url("member_delete", here.pk)).status_code == 403
    response = client.post(url("member_change", here.pk), {"name": "改名"})
    assert response.status_code == 403
    assert Member.objects.get(pk=here.pk).name == "王芳"


# --- Actions --------------------------------------------------------------------------------


def test_each_role_is_offered_the_actions_it_may_take(here, clerk_a, manager_a, hq_user):
    assert offered_actions(browser(clerk_a)) == []
    assert offered_actions(browser(manager_a)) == ["export_member"]
    assert offered_actions(browser(hq_user)) == ["export_member", "erase_members"]


def test_a_manager_downloads_a_members_data(here, manager_a):
    response = run_action(browser(manager_a), "export_member", [here])

    assert response.status_code == 200
    assert (response["Content-Type"], response["Content-Disposition"]) == (
        "application/json; charset=utf-8",
        f'attachment; filename="member-{here.pk}.json"',
    )
    assert json.loads(response.content) == member_export(member=here)
    assert "王芳" in response.content.decode()


def test_one_member_is_exported_at_a_time(here, manager_a, store_a):
    other = member_signup_at_counter(mobile="13900000009", store=store_a, actor=None)

    response = run_action(browser(manager_a), "export_member", [here, other], follow=True)

    assert flashed(response) == ["Export one member at a time."]
    assert response["Content-Type"].startswith("text/html")


def test_a_clerk_cannot_export(here, clerk_a):
    response = run_action(browser(clerk_a), "export_member", [here])

    # She has no actions: the post shows the list again.
    assert (response.status_code, response["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert [member.pk for member in listed(response)] == [here.pk]


def test_erasing_asks_first_and_changes_nothing_until_confirmed(here, hq_user):
    response = run_action(browser(hq_user), "erase_members", [here])

    page = response.content.decode()
    assert response.status_code == 200
    assert "will be removed for good" in page
    assert f"#{here.pk} 王芳" in page
    assert Member.objects.get(pk=here.pk).erased_at is None


def test_hq_erases_a_member_once_confirmed(here, hq_user):
    response = run_action(browser(hq_user), "erase_members", [here], apply="yes")

    erased = Member.objects.get(pk=here.pk)
    assert response.status_code == 302
    assert flashed(response) == ["1 member erased."]
    assert (erased.name, erased.mobile, erased.erased_at, erased.erased_by_id) == (
        "",
        None,
        T0,
        hq_user.pk,
    )
    assert erased.identities.count() == 0
    assert list(LogEntry.objects.values_list("object_id", "object_repr", "change_message")) == [
        (str(here.pk), f"#{here.pk}", "Personal data erased.")
    ]


def test_a_manager_cannot_erase(here, manager_a):
    response = run_action(browser(manager_a), "erase_members", [here], apply="yes")

    assert response.status_code == 302
    assert Member.objects.get(pk=here.pk).erased_at is None
    assert LogEntry.objects.count() == 0
