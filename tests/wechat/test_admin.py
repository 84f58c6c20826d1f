"""HQ sees what was told to WeChat; store staff do not."""

import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from wechat.models import SyncCall

pytestmark = pytest.mark.django_db


@pytest.fixture
def refused_message():
    return SyncCall.objects.create(
        event_id=uuid.uuid4(),
        kind=SyncCall.Kind.MESSAGE,
        order_number="2611250000000042",
        state=SyncCall.State.REFUSED,
        calls=1,
        errcode=43101,
        error="user refuse to accept the msg",
        updated_at=timezone.now(),
    )


def test_hq_finds_a_refused_message_by_order_number(client, hq_user, refused_message):
    client.force_login(hq_user)

    listed = client.get(reverse("admin:wechat_synccall_changelist"), {"q": "0042"})
    page = client.get(reverse("admin:wechat_synccall_change", args=[refused_message.pk]))

    assert list(listed.context["cl"].result_list) == [refused_message]
    assert (page.status_code, 'name="_save"' in page.content.decode()) == (200, False)


def test_store_staff_do_not_see_the_sync_calls(client, manager_a, refused_message):
    client.force_login(manager_a)

    response = client.get(reverse("admin:wechat_synccall_changelist"))

    assert response.status_code == 403
