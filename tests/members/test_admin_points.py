"""Points, spend and tiers in the admin: HQ reads the ledger and adjusts points through the
service; store staff see none of it; nobody edits or deletes an entry."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from members.models import Member, PointsEntry
from members.services.points import member_order_completed, points_adjust
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
ADD_URL = reverse("admin:members_pointsentry_add")


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def member():
    return MemberFactory(mobile="13900000001", name="李娜")


def client_for(user) -> Client:
    # English pages, so that messages can be asserted word for word.
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def test_hq_adjusts_points_through_the_service(member, hq_user):
    response = client_for(hq_user).post(
        ADD_URL, {"member": member.pk, "points": "150", "note": "工单 T-9"}
    )

    entry = PointsEntry.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:members_pointsentry_changelist")
    assert (entry.reason, entry.reference, entry.points, entry.actor, entry.remaining) == (
        "adjust",
        "工单 T-9",
        150,
        hq_user,
        150,
    )
    assert Member.objects.get(pk=member.pk).points_balance == 150
    assert LogEntry.objects.get().action_flag == ADDITION


def test_taking_more_than_the_balance_shows_a_message_and_changes_nothing(member, hq_user, english):
    client = client_for(hq_user)

    response = client.post(ADD_URL, {"member": member.pk, "points": "-5", "note": "T-1"})

    assert response.status_code == 302
    assert response.url == ADD_URL
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Not enough points: 0 available, 5 needed."
    ]
    assert (PointsEntry.objects.count(), LogEntry.objects.count()) == (0, 0)


def test_zero_points_are_refused_by_the_form(member, hq_user, english):
    response = client_for(hq_user).post(
        ADD_URL, {"member": member.pk, "points": "0", "note": "T-1"}
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "points": ["The number of points must not be zero."]
    }
    assert PointsEntry.objects.count() == 0


def test_an_entry_reads_but_cannot_be_changed_or_deleted(member, hq_user):
    entry = points_adjust(member=member, points=20, note="T-1", actor=hq_user)
    client = client_for(hq_user)
    url = reverse("admin:members_pointsentry_change", args=[entry.pk])

    page = client.get(url)
    posted = client.post(url, {"points": "999"})
    deleted = client.post(
        reverse("admin:members_pointsentry_delete", args=[entry.pk]), {"post": "yes"}
    )

    assert page.status_code == 200
    assert "T-1" in page.content.decode()
    assert (posted.status_code, deleted.status_code) == (403, 403)
    assert PointsEntry.objects.get().points == 20


def test_the_lists_of_entries_spend_and_tiers_show(member, hq_user):
    member_order_completed(member_id=member.pk, order_reference="SO1", amount_fen=12_345, at=NOW)
    client = client_for(hq_user)

    pages = [
        client.get(reverse(f"admin:members_{model}_changelist"))
        for model in ("pointsentry", "spendentry", "tier")
    ]

    assert [page.status_code for page in pages] == [200, 200, 200]
    assert "123.45" in pages[1].content.decode()
    assert "1000.00" in pages[2].content.decode()


def test_store_staff_see_no_points_admin(member, manager_a):
    client = client_for(manager_a)

    assert client.get(reverse("admin:members_pointsentry_changelist")).status_code == 403
    assert client.post(ADD_URL, {"member": member.pk, "points": "5", "note": "x"}).status_code == (
        403
    )
    assert PointsEntry.objects.count() == 0
