"""Console sync health: a store sees the outbox deliveries of its orders' events, counted by
subscriber and state, the failing and dead ones listed, each with its attempts; managers and
HQ retry a failed or dead one (clerks see but are refused, another store's delivery is a 404);
HQ's all-stores page shows every delivery, other aggregates too. The list costs the same
queries for few deliveries or many."""

import html
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction

from retail.models import OutboxAttempt, OutboxDelivery, OutboxEvent
from retail.outbox import done, give_up, outbox_publish, registry, subscribe
from tests import factories

pytestmark = pytest.mark.django_db

State = OutboxDelivery.State
SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)
NO_RETRY = "Retry now"


@pytest.fixture(autouse=True)
def _english(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture(autouse=True)
def _no_subscribers(monkeypatch):
    """The rows here are written by the tests; the apps' real subscribers stay out."""
    monkeypatch.setattr(registry, "_subscribers", {})


def _event(event_type: str, aggregate_id, aggregate_type: str = "order") -> OutboxEvent:
    return OutboxEvent.objects.create(
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        payload={},
        created_at=T0,
    )


def _delivery(event: OutboxEvent, subscriber: str, state: str, **fields) -> OutboxDelivery:
    fields.setdefault("attempt_limit", 12)
    if state == State.DELIVERED:
        fields.setdefault("delivered_at", T0)
    return OutboxDelivery.objects.create(event=event, subscriber=subscriber, state=state, **fields)


@pytest.fixture
def sync_rows(store_a, store_b):
    """Store A: two orders, five deliveries (one delivered, one failed, one dead, one pending,
    one in another subscriber delivered); store B: one dead; a member event: one dead."""
    first = factories.OrderFactory(store=store_a, number="2611259000000001")
    second = factories.OrderFactory(store=store_a, number="2611259000000002")
    theirs = factories.OrderFactory(store=store_b, number="2611259000000003")
    paid, shipped = _event("order.paid", first.pk), _event("order.shipped", first.pk)
    second_paid, their_paid = _event("order.paid", second.pk), _event("order.paid", theirs.pk)
    member = _event("member.merged", 77, aggregate_type="member")
    rows = {
        "delivered": _delivery(paid, "wechat_shipping", State.DELIVERED, attempts=1),
        "dead": _delivery(
            paid,
            "partner_pushes",
            State.DEAD,
            attempts=12,
            last_error="HTTP 400: unknown order",
            last_status_code=400,
        ),
        "failed": _delivery(
            shipped,
            "wechat_shipping",
            State.FAILED,
            attempts=3,
            next_attempt_at=T0 + timedelta(minutes=2),
            last_error="ConnectionError: timed out",
        ),
        "pending": _delivery(second_paid, "wechat_shipping", State.PENDING),
        "messages": _delivery(second_paid, "wechat_messages", State.DELIVERED, attempts=1),
        "theirs": _delivery(their_paid, "wechat_shipping", State.DEAD, attempts=12),
        "member": _delivery(member, "crm", State.DEAD, attempts=1, last_error="gone"),
    }
    OutboxAttempt.objects.bulk_create(
        [
            OutboxAttempt(
                delivery=rows["dead"],
                number=11,
                started_at=T0,
                duration_ms=120,
                outcome="retry",
                error="HTTP 503",
                status_code=503,
            ),
            OutboxAttempt(
                delivery=rows["dead"],
                number=12,
                started_at=T0 + timedelta(minutes=30),
                duration_ms=80,
                outcome="give_up",
                error="HTTP 400: unknown order",
                status_code=400,
            ),
        ]
    )
    rows.update(first=first, second=second, theirs_order=theirs)
    return rows


def _messages(response) -> list[tuple[str, str]]:
    block = re.search(r'<ul class="messages"[^>]*>(.*?)</ul>', response.content.decode(), re.S)
    if block is None:
        return []
    return [
        (tags, html.unescape(text))
        for tags, text in re.findall(r'<li class="([^"]*)">(.*?)</li>', block.group(1), re.S)
    ]


def _counts(response) -> list[tuple]:
    return [
        (row["subscriber"], [count for _state, count in row["states"]], row["total"])
        for row in response.context["counts"]
    ]


def _listed(response) -> list[tuple]:
    return [
        (
            d.pk,
            d.subscriber,
            d.event.event_type,
            d.console_order[0] if d.console_order else None,
            d.state,
            d.attempts,
            d.last_status_code,
            d.last_error,
        )
        for d in response.context["deliveries"]
    ]


def _state(delivery: OutboxDelivery) -> tuple:
    delivery.refresh_from_db()
    return (
        delivery.state,
        delivery.attempts,
        delivery.attempt_limit,
        delivery.next_attempt_at,
        delivery.retried_by_id,
        delivery.retried_at,
    )


def test_a_store_sees_its_orders_deliveries_by_subscriber_and_state(client, clerk_a, sync_rows):
    client.force_login(clerk_a)

    response = client.get("/console/SH001/sync/")

    assert response.status_code == 200
    # Columns: pending, in flight, delivered, failed, dead.
    assert _counts(response) == [
        ("partner_pushes", [0, 0, 0, 0, 1], 1),
        ("wechat_messages", [0, 0, 1, 0, 0], 1),
        ("wechat_shipping", [1, 0, 1, 1, 0], 3),
    ]
    assert response.context["total"] == 5
    assert response.context["failing_count"] == 2
    assert _listed(response) == [
        (
            sync_rows["failed"].pk,
            "wechat_shipping",
            "order.shipped",
            "2611259000000001",
            "failed",
            3,
            None,
            "ConnectionError: timed out",
        ),
        (
            sync_rows["dead"].pk,
            "partner_pushes",
            "order.paid",
            "2611259000000001",
            "dead",
            12,
            400,
            "HTTP 400: unknown order",
        ),
    ]
    page = response.content.decode()
    # The next attempt, in the store's time zone, for the failed one; none for the dead one.
    assert "<td>2026-11-25 10:02:00</td>" in page
    assert "HTTP 400: unknown order" in page
    assert 'data-count="dead"><div class="label">dead</div><div class="value">1</div>' in page
    # A clerk looks but may not send again.
    assert response.context["may_retry"] is False
    assert NO_RETRY not in page


def test_the_list_filters_by_state_and_subscriber(client, manager_a, sync_rows):
    client.force_login(manager_a)

    delivered = client.get("/console/SH001/sync/?state=delivered&subscriber=wechat_shipping")
    bogus = client.get("/console/SH001/sync/?state=bogus")

    assert [d.pk for d in delivered.context["deliveries"]] == [sync_rows["delivered"].pk]
    assert "<h2>Deliveries: delivered · wechat_shipping</h2>" in delivered.content.decode()
    assert bogus.context["state"] == ""
    assert [d.pk for d in bogus.context["deliveries"]] == [
        sync_rows["failed"].pk,
        sync_rows["dead"].pk,
    ]


def test_hq_sees_every_delivery_across_stores_and_aggregates(client, hq_user, sync_rows):
    client.force_login(hq_user)

    response = client.get("/console/all/sync/")

    assert response.status_code == 200
    assert _counts(response) == [
        ("crm", [0, 0, 0, 0, 1], 1),
        ("partner_pushes", [0, 0, 0, 0, 1], 1),
        ("wechat_messages", [0, 0, 1, 0, 0], 1),
        ("wechat_shipping", [1, 0, 1, 1, 1], 4),
    ]
    assert [(d.pk, d.console_order) for d in response.context["deliveries"]] == [
        (sync_rows["member"].pk, None),
        (sync_rows["theirs"].pk, ("2611259000000003", "SH002")),
        (sync_rows["failed"].pk, ("2611259000000001", "SH001")),
        (sync_rows["dead"].pk, ("2611259000000001", "SH001")),
    ]
    page = response.content.decode()
    assert "<td>member:77</td>" in page
    assert response.context["may_retry"] is True
    assert page.count(NO_RETRY) == 4


def _more_rows(store, count):
    for n in range(count):
        order = factories.OrderFactory(store=store)
        event = _event("order.paid", order.pk)
        _delivery(event, "wechat_shipping", State.DEAD, attempts=12, last_error=f"boom {n}")
        _delivery(event, "partner_pushes", State.FAILED, attempts=2)


@pytest.mark.parametrize(
    ("user", "url", "queries", "listed"),
    [
        # session, user, roles, store; counts, list, order numbers; frame: stores.
        ("clerk_a", "/console/SH001/sync/", 8, 2),
        # session, user, roles; Django's own permissions (the user's, her groups'); counts,
        # list, order numbers; frame: stores.
        ("hq_user", "/console/all/sync/", 9, 4),
    ],
)
def test_the_list_costs_the_same_queries_for_few_or_many(
    client, request, sync_rows, store_a, django_assert_num_queries, user, url, queries, listed
):
    client.force_login(request.getfixturevalue(user))

    with django_assert_num_queries(queries):
        few = client.get(url)
    _more_rows(store_a, 30)
    with django_assert_num_queries(queries):
        many = client.get(url)

    assert (len(few.context["deliveries"]), len(many.context["deliveries"])) == (
        listed,
        listed + 60,
    )
    assert (few.context["total"], many.context["total"]) == (
        few.context["total"],
        few.context["total"] + 60,
    )


def test_the_list_shows_the_latest_hundred(client, clerk_a, store_a):
    order = factories.OrderFactory(store=store_a)
    OutboxDelivery.objects.bulk_create(
        OutboxDelivery(
            event=_event("order.paid", order.pk),
            subscriber="wechat_shipping",
            state="dead",
            attempts=12,
            attempt_limit=12,
        )
        for _ in range(101)
    )
    newest = OutboxDelivery.objects.order_by("-pk").values_list("pk", flat=True)
    client.force_login(clerk_a)

    response = client.get("/console/SH001/sync/")

    assert response.context["failing_count"] == 101
    assert [d.pk for d in response.context["deliveries"]] == list(newest[:100])
    assert "Showing the latest 100." in response.content.decode()


def test_a_deliverys_page_shows_its_attempts(client, clerk_a, sync_rows):
    client.force_login(clerk_a)
    dead = sync_rows["dead"]

    response = client.get(f"/console/SH001/sync/{dead.pk}/")

    assert response.status_code == 200
    assert [
        (a.number, a.outcome, a.status_code, a.error, a.duration_ms)
        for a in response.context["attempts"]
    ] == [
        (12, "give_up", 400, "HTTP 400: unknown order", 80),
        (11, "retry", 503, "HTTP 503", 120),
    ]
    page = response.content.decode()
    assert f"<h1>Delivery {dead.pk} to partner_pushes</h1>" in page
    assert "<dd data-order>2611259000000001</dd>" in page
    assert "<dd data-attempts>12/12</dd>" in page
    assert "<td>2026-11-25 10:30:00</td>" in page
    assert "<td>given up</td>" in page
    assert NO_RETRY not in page


def test_another_stores_or_another_aggregates_delivery_is_a_404(client, manager_a, sync_rows):
    client.force_login(manager_a)

    theirs = client.get(f"/console/SH001/sync/{sync_rows['theirs'].pk}/")
    member = client.get(f"/console/SH001/sync/{sync_rows['member'].pk}/")
    their_store = client.get(f"/console/SH002/sync/{sync_rows['theirs'].pk}/")

    assert (theirs.status_code, member.status_code, their_store.status_code) == (404, 404, 404)


def test_a_manager_retries_a_dead_delivery_with_a_fresh_round(
    client, manager_a, sync_rows, settings
):
    dead = sync_rows["dead"]
    client.force_login(manager_a)

    response = client.post(f"/console/SH001/sync/{dead.pk}/retry/", follow=True)

    dead.refresh_from_db()
    assert response.redirect_chain == [(f"/console/SH001/sync/{dead.pk}/", 302)]
    assert _messages(response) == [
        ("success", f"Delivery {dead.pk} to partner_pushes will be sent again now.")
    ]
    assert (dead.state, dead.attempts, dead.attempt_limit, dead.retried_by) == (
        "pending",
        12,
        12 + settings.OUTBOX_MAX_ATTEMPTS,
        manager_a,
    )
    assert dead.retried_at is not None
    assert dead.next_attempt_at == dead.retried_at


def test_a_failed_delivery_is_retried_now_and_keeps_its_remaining_attempts(
    client, manager_a, sync_rows
):
    failed = sync_rows["failed"]
    client.force_login(manager_a)

    client.post(f"/console/SH001/sync/{failed.pk}/retry/")

    failed.refresh_from_db()
    assert (failed.state, failed.attempts, failed.attempt_limit, failed.retried_by) == (
        "pending",
        3,
        12,
        manager_a,
    )
    assert failed.next_attempt_at == failed.retried_at


def test_a_delivered_one_is_not_retried_and_the_refusal_is_shown(client, manager_a, sync_rows):
    delivered = sync_rows["delivered"]
    client.force_login(manager_a)
    before = _state(delivered)

    response = client.post(f"/console/SH001/sync/{delivered.pk}/retry/", follow=True)

    assert _messages(response) == [("error", "Only a failed or dead delivery can be retried.")]
    assert _state(delivered) == before


def test_a_clerk_may_not_retry(client, clerk_a, sync_rows, store_a, store_b):
    """Also a manager of another store who is a clerk here: her role here decides."""
    dead, failed = sync_rows["dead"], sync_rows["failed"]
    both = factories.StaffRoleFactory(role="store_manager", store=store_b).user
    factories.StaffRoleFactory(role="clerk", store=store_a, user=both)
    before = (_state(dead), _state(failed))

    client.force_login(clerk_a)
    as_clerk = client.post(f"/console/SH001/sync/{dead.pk}/retry/")
    client.force_login(both)
    as_clerk_here = client.post(f"/console/SH001/sync/{failed.pk}/retry/")
    at_her_store = client.get("/console/SH002/sync/")

    assert (as_clerk.status_code, as_clerk_here.status_code) == (403, 403)
    assert (_state(dead), _state(failed)) == before
    assert at_her_store.context["may_retry"] is True


def test_another_stores_delivery_is_not_retried(client, manager_a, sync_rows):
    theirs, member = sync_rows["theirs"], sync_rows["member"]
    client.force_login(manager_a)
    before = (_state(theirs), _state(member))

    through_own_store = client.post(f"/console/SH001/sync/{theirs.pk}/retry/")
    through_theirs = client.post(f"/console/SH002/sync/{theirs.pk}/retry/")
    not_an_order = client.post(f"/console/SH001/sync/{member.pk}/retry/")
    through_all = client.post(f"/console/all/sync/{theirs.pk}/retry/")

    assert [
        through_own_store.status_code,
        through_theirs.status_code,
        not_an_order.status_code,
        through_all.status_code,
    ] == [404, 404, 404, 404]
    assert (_state(theirs), _state(member)) == before


def test_hq_retries_any_delivery_from_all_stores(client, hq_user, sync_rows):
    member = sync_rows["member"]
    client.force_login(hq_user)

    response = client.post(f"/console/all/sync/{member.pk}/retry/", follow=True)

    member.refresh_from_db()
    assert response.redirect_chain == [(f"/console/all/sync/{member.pk}/", 302)]
    assert _messages(response) == [
        ("success", f"Delivery {member.pk} to crm will be sent again now.")
    ]
    assert (member.state, member.attempt_limit, member.retried_by) == ("pending", 13, hq_user)


def test_retry_takes_post_only(client, manager_a, sync_rows):
    dead = sync_rows["dead"]
    client.force_login(manager_a)
    before = _state(dead)

    response = client.get(f"/console/SH001/sync/{dead.pk}/retry/")

    assert response.status_code == 405
    assert _state(dead) == before


def test_a_retried_dead_delivery_is_sent_again_and_arrives(
    client, manager_a, store_a, django_capture_on_commit_callbacks
):
    """End to end with a real subscriber: it refuses once (dead), staff retry, it arrives."""
    answers = [give_up("HTTP 422: bad payload", 422), done()]
    subscribe("console_sync_probe", event_types={"order.paid"}, handler=lambda e: answers.pop(0))
    order = factories.OrderFactory(store=store_a)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        outbox_publish(
            event_type="order.paid",
            aggregate_type="order",
            aggregate_id=str(order.pk),
            payload={"order": {"id": order.pk}},
        )
    delivery = OutboxDelivery.objects.get(subscriber="console_sync_probe")
    client.force_login(manager_a)
    listed = client.get("/console/SH001/sync/")
    assert [(d.pk, d.state, d.last_status_code) for d in listed.context["deliveries"]] == [
        (delivery.pk, "dead", 422)
    ]

    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/console/SH001/sync/{delivery.pk}/retry/")

    delivery.refresh_from_db()
    page = client.get(f"/console/SH001/sync/{delivery.pk}/")
    assert (delivery.state, delivery.attempts, delivery.attempt_limit) == ("delivered", 2, 13)
    assert [(a.number, a.outcome, a.status_code) for a in page.context["attempts"]] == [
        (2, "done", None),
        (1, "give_up", 422),
    ]
    assert client.get("/console/SH001/sync/").context["deliveries"] == []
