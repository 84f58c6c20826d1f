"""The outbox with eager Celery: publishing, one attempt at a time, backoff, order per
aggregate, the sweeper, staff retries and the admin. The same paths under a real worker, Redis
and PostgreSQL are in test_outbox_worker.py."""

import time
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.transaction import TransactionManagementError
from django.urls import reverse

from retail.celery import app as celery_app
from retail.errors import BusinessError
from retail.models import OutboxAttempt, OutboxDelivery, OutboxEvent
from retail.outbox import (
    Result,
    done,
    give_up,
    outbox_delivery_attempt,
    outbox_delivery_retry,
    outbox_publish,
    outbox_retry_delay,
    outbox_sweep,
    registry,
    retry,
    subscribe,
)
from retail.outbox import delivery as delivery_module
from retail.tasks import deliver_outbox, sweep_outbox, trim_outbox_attempts
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

State = OutboxDelivery.State
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
LEASE = timedelta(seconds=120)


@pytest.fixture(autouse=True)
def _no_other_subscribers(monkeypatch):
    """Each test registers its own receivers; the apps' real subscribers stay out."""
    monkeypatch.setattr(registry, "_subscribers", {})


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def top_jitter(monkeypatch):
    """Backoff at the top of its jitter range, so retry times are exact."""
    monkeypatch.setattr(delivery_module, "random", SimpleNamespace(uniform=lambda low, high: high))


class Receiver:
    """The far end of a subscriber: records what it is sent, answers from a script (an
    exception in the script is raised), and answers done once the script runs out."""

    def __init__(self, name, event_types, *, script=(), accepts=None):
        self.name = name
        self.script = list(script)
        self.received: list[tuple[str, str]] = []
        subscribe(name, event_types=event_types, handler=self.handle, accepts=accepts)

    def handle(self, event):
        self.received.append((event.event_type, event.aggregate_id))
        answer = self.script.pop(0) if self.script else done()
        if isinstance(answer, Exception):
            raise answer
        return answer


def publish(event_type="paid", aggregate_id=7, payload=None, **kwargs) -> OutboxEvent:
    with transaction.atomic():
        return outbox_publish(
            event_type=event_type,
            aggregate_type=kwargs.get("aggregate_type", "order"),
            aggregate_id=aggregate_id,
            payload=payload if payload is not None else {"order": {"id": aggregate_id}},
        )


def published(capture, **kwargs) -> OutboxEvent:
    """Publish and commit, which queues (and, eagerly, runs) the deliveries."""
    with capture(execute=True):
        return publish(**kwargs)


def delivery_of(event: OutboxEvent, subscriber: str) -> OutboxDelivery:
    return OutboxDelivery.objects.get(event=event, subscriber=subscriber)


def attempt_rows(delivery: OutboxDelivery) -> list[tuple]:
    return list(
        OutboxAttempt.objects.filter(delivery=delivery)
        .order_by("number")
        .values_list("number", "outcome", "error", "status_code")
    )


def numbers(delivery: OutboxDelivery) -> tuple:
    delivery.refresh_from_db()
    return (
        delivery.state,
        delivery.attempts,
        delivery.next_attempt_at,
        delivery.lease_until,
        delivery.last_error,
        delivery.last_status_code,
        delivery.delivered_at,
    )


# --- Publishing --------------------------------------------------------------------------------


def test_publish_writes_the_event_and_a_delivery_per_interested_subscriber(
    clock, django_capture_on_commit_callbacks
):
    Receiver("wechat", {"paid", "shipped"})
    Receiver("partner-a", {"paid"}, accepts=lambda e: e.payload["partner"] == "a")
    Receiver("partner-b", {"paid"}, accepts=lambda e: e.payload["partner"] == "b")
    Receiver("members", {"completed"})

    with django_capture_on_commit_callbacks() as queued:
        event = publish("paid", aggregate_id=7, payload={"partner": "a", "total_fen": 1990})

    event.refresh_from_db()
    assert (event.event_type, event.aggregate_type, event.aggregate_id, event.payload) == (
        "paid",
        "order",
        "7",
        {"partner": "a", "total_fen": 1990},
    )
    assert event.created_at == T0
    assert event.event_id.version == 4
    assert list(
        OutboxDelivery.objects.filter(event=event)
        .order_by("subscriber")
        .values_list(
            "subscriber", "state", "attempts", "attempt_limit", "next_attempt_at", "lease_until"
        )
    ) == [
        ("partner-a", "pending", 0, 12, T0, T0 + LEASE),
        ("wechat", "pending", 0, 12, T0, T0 + LEASE),
    ]
    assert OutboxEvent.objects.count() == 1
    assert len(queued) == 2


def test_an_event_nobody_wants_is_kept_without_deliveries(django_capture_on_commit_callbacks):
    Receiver("wechat", {"shipped"})

    with django_capture_on_commit_callbacks() as queued:
        event = publish("paid")

    assert OutboxEvent.objects.filter(pk=event.pk).exists()
    assert OutboxDelivery.objects.count() == 0
    assert queued == []


def test_a_rolled_back_change_publishes_nothing(django_capture_on_commit_callbacks):
    wechat = Receiver("wechat", {"paid"})

    with (
        django_capture_on_commit_callbacks(execute=True) as queued,
        pytest.raises(RuntimeError, match="payment failed"),
        transaction.atomic(),
    ):
        outbox_publish(event_type="paid", aggregate_type="order", aggregate_id=7, payload={})
        raise RuntimeError("payment failed")

    assert OutboxEvent.objects.count() == 0
    assert OutboxDelivery.objects.count() == 0
    assert queued == []
    assert wechat.received == []


def test_a_broker_that_is_down_fails_no_committed_change(
    clock, monkeypatch, django_capture_on_commit_callbacks, caplog, settings
):
    """The task is queued after commit: with the broker down the change stands, the delivery
    waits for the sweeper, and one warning line says so (no traceback per event). For
    ``OUTBOX_BROKER_PAUSE_SECONDS`` after, the process does not try the broker (a request that
    publishes several events would wait on each), then tries again."""
    settings.OUTBOX_BROKER_PAUSE_SECONDS = 5
    monkeypatch.setattr(delivery_module._Broker, "down_until", 0.0)
    tried = []

    def broker_down(delivery_id, eta=None):
        tried.append(delivery_id)
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    monkeypatch.setattr(delivery_module, "delivery_send", broker_down)
    Receiver("wechat", {"paid"})
    Receiver("partner", {"paid"})

    with django_capture_on_commit_callbacks(execute=True) as queued:
        event = publish("paid", aggregate_id=7)
    pause_left = delivery_module._Broker.down_until - time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        publish("paid", aggregate_id=8)
    delivery_module._Broker.down_until = time.monotonic() - 0.001  # the pause is over
    with django_capture_on_commit_callbacks(execute=True):
        last = publish("paid", aggregate_id=9)

    assert len(queued) == 2
    assert 4.5 < pause_left <= 5
    first, second, third, fourth, fifth, sixth = OutboxDelivery.objects.order_by("pk")
    assert (first.event, fifth.event) == (event, last)
    assert {d.state for d in (first, second, third, fourth, fifth, sixth)} == {"pending"}
    assert tried == [first.pk, fifth.pk]
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        (
            "WARNING",
            f"outbox: could not queue delivery {first.pk} (ConnectionRefusedError: [Errno 111] "
            "Connection refused); it and the deliveries of the next 5 s are left to the "
            "sweeper, which sends them after their lease",
            None,
        ),
        ("INFO", f"outbox: the broker is down; delivery {second.pk} is left to the sweeper", None),
        ("INFO", f"outbox: the broker is down; delivery {third.pk} is left to the sweeper", None),
        ("INFO", f"outbox: the broker is down; delivery {fourth.pk} is left to the sweeper", None),
        (
            "WARNING",
            f"outbox: could not queue delivery {fifth.pk} (ConnectionRefusedError: [Errno 111] "
            "Connection refused); it and the deliveries of the next 5 s are left to the "
            "sweeper, which sends them after their lease",
            None,
        ),
        ("INFO", f"outbox: the broker is down; delivery {sixth.pk} is left to the sweeper", None),
    ]


@pytest.mark.django_db(transaction=True)
def test_publishing_outside_a_transaction_is_refused():
    Receiver("wechat", {"paid"})

    with pytest.raises(TransactionManagementError, match=r"inside the caller's transaction"):
        outbox_publish(event_type="paid", aggregate_type="order", aggregate_id=7, payload={})

    assert OutboxEvent.objects.count() == 0


def test_publishing_costs_two_queries_whatever_the_number_of_subscribers(
    django_assert_num_queries, django_capture_on_commit_callbacks
):
    for name in ("wechat", "partner-a", "partner-b"):
        Receiver(name, {"paid"})

    with django_capture_on_commit_callbacks(), django_assert_num_queries(2):
        outbox_publish(event_type="paid", aggregate_type="order", aggregate_id=7, payload={})

    assert OutboxDelivery.objects.count() == 3


def test_subscriber_names_are_unique_and_event_types_a_collection():
    subscribe("wechat", event_types={"paid"}, handler=done)

    with pytest.raises(ImproperlyConfigured, match="Another outbox subscriber"):
        subscribe("wechat", event_types={"paid"}, handler=give_up)
    with pytest.raises(ImproperlyConfigured, match="collection of event types"):
        subscribe("partner", event_types="paid", handler=done)
    with pytest.raises(ImproperlyConfigured, match="1 to 64 characters"):
        subscribe("p" * 65, event_types={"paid"}, handler=done)
    # The same registration again (an app's ready() run twice) is harmless.
    subscribe("wechat", event_types={"paid"}, handler=done)

    assert sorted(registry._subscribers) == ["wechat"]


# --- One attempt -------------------------------------------------------------------------------


def test_a_done_delivery_is_delivered_once(clock, django_capture_on_commit_callbacks):
    wechat = Receiver("wechat", {"paid"})

    event = published(django_capture_on_commit_callbacks)

    delivery = delivery_of(event, "wechat")
    assert numbers(delivery) == ("delivered", 1, T0, None, "", None, T0)
    assert attempt_rows(delivery) == [(1, "done", "", None)]
    assert wechat.received == [("paid", "7")]
    # A repeated message (the sweeper's, a redelivery) finds it delivered and does nothing.
    assert outbox_delivery_attempt(delivery_id=delivery.pk) == Result.SKIPPED
    assert wechat.received == [("paid", "7")]
    assert OutboxAttempt.objects.count() == 1


def test_retry_later_schedules_the_next_attempt_with_backoff(
    clock, top_jitter, django_capture_on_commit_callbacks
):
    wechat = Receiver("wechat", {"paid"}, script=[retry("HTTP 503 from api.weixin.qq.com", 503)])

    event = published(django_capture_on_commit_callbacks)

    delivery = delivery_of(event, "wechat")
    first_retry = T0 + timedelta(seconds=10)
    assert numbers(delivery) == (
        "failed",
        1,
        first_retry,
        first_retry + LEASE,
        "HTTP 503 from api.weixin.qq.com",
        503,
        None,
    )
    assert attempt_rows(delivery) == [(1, "retry", "HTTP 503 from api.weixin.qq.com", 503)]
    # The retry message, run at once by eager Celery, came too early and did nothing.
    assert wechat.received == [("paid", "7")]

    clock.move_to(first_retry)
    assert outbox_delivery_attempt(delivery_id=delivery.pk) == Result.DELIVERED

    assert numbers(delivery) == ("delivered", 2, first_retry, None, "", None, first_retry)
    assert attempt_rows(delivery) == [
        (1, "retry", "HTTP 503 from api.weixin.qq.com", 503),
        (2, "done", "", None),
    ]
    assert wechat.received == [("paid", "7"), ("paid", "7")]


def test_give_up_makes_the_delivery_dead_at_once(clock, django_capture_on_commit_callbacks):
    Receiver("wechat", {"paid"}, script=[give_up("errcode 43101: user refused", 400)])

    event = published(django_capture_on_commit_callbacks)

    delivery = delivery_of(event, "wechat")
    assert numbers(delivery) == ("dead", 1, T0, None, "errcode 43101: user refused", 400, None)
    assert attempt_rows(delivery) == [(1, "give_up", "errcode 43101: user refused", 400)]


def test_a_handler_that_raises_counts_as_retry_later(
    clock, top_jitter, django_capture_on_commit_callbacks
):
    Receiver("wechat", {"paid"}, script=[ConnectionError("connection refused")])

    event = published(django_capture_on_commit_callbacks)

    delivery = delivery_of(event, "wechat")
    error = "ConnectionError: connection refused"
    retry_at = T0 + timedelta(seconds=10)
    assert numbers(delivery) == ("failed", 1, retry_at, retry_at + LEASE, error, None, None)
    assert attempt_rows(delivery) == [(1, "retry", error, None)]


def test_a_handler_that_answers_no_outcome_counts_as_retry_later(
    clock, django_capture_on_commit_callbacks
):
    Receiver("wechat", {"paid"}, script=[None])

    event = published(django_capture_on_commit_callbacks)

    assert attempt_rows(delivery_of(event, "wechat")) == [
        (1, "retry", "The handler returned None instead of an Outcome.", None)
    ]


def test_a_subscriber_missing_from_the_worker_counts_as_retry_later(
    clock, django_capture_on_commit_callbacks
):
    Receiver("wechat", {"paid"})
    with django_capture_on_commit_callbacks():
        event = publish()
    del registry._subscribers["wechat"]

    assert outbox_delivery_attempt(delivery_id=delivery_of(event, "wechat").pk) == Result.FAILED

    assert attempt_rows(delivery_of(event, "wechat")) == [
        (1, "retry", "No handler is registered for 'wechat' in this process.", None)
    ]


def test_a_long_error_is_kept_to_its_first_two_thousand_characters(
    clock, django_capture_on_commit_callbacks
):
    page = "<html>" + "x" * 5000
    Receiver("wechat", {"paid"}, script=[give_up(page, 400)])

    event = published(django_capture_on_commit_callbacks)

    delivery = delivery_of(event, "wechat")
    assert delivery.last_error == page[:2000]
    assert attempt_rows(delivery) == [(1, "give_up", page[:2000], 400)]


def test_the_attempt_records_how_long_the_handler_took(
    clock, monkeypatch, django_capture_on_commit_callbacks
):
    ticks = iter([100.0, 100.2504])
    monkeypatch.setattr(delivery_module, "time", SimpleNamespace(monotonic=lambda: next(ticks)))
    Receiver("wechat", {"paid"})

    event = published(django_capture_on_commit_callbacks)

    assert list(
        OutboxAttempt.objects.filter(delivery__event=event).values_list("started_at", "duration_ms")
    ) == [(T0, 250)]


def test_a_delivery_is_dead_after_the_last_attempt(
    clock, settings, top_jitter, django_capture_on_commit_callbacks
):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    Receiver("wechat", {"paid"}, script=[retry("timeout")] * 5)
    event = published(django_capture_on_commit_callbacks)
    delivery = delivery_of(event, "wechat")

    results = []
    for _ in range(2):
        clock.move_to(delivery.next_attempt_at)
        results.append(outbox_delivery_attempt(delivery_id=delivery.pk))
        delivery.refresh_from_db()

    assert results == [Result.FAILED, Result.DEAD]
    assert numbers(delivery) == ("dead", 3, T0 + timedelta(seconds=30), None, "timeout", None, None)
    assert attempt_rows(delivery) == [(n, "retry", "timeout", None) for n in (1, 2, 3)]
    # Nothing runs it again, however late the message.
    clock.shift(timedelta(days=1))
    assert outbox_delivery_attempt(delivery_id=delivery.pk) == Result.SKIPPED
    assert OutboxAttempt.objects.filter(delivery=delivery).count() == 3


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half(monkeypatch):
    ceilings = [10, 20, 40, 80, 160, 320, 640, 1280, 1800, 1800, 1800]
    draws = {
        attempt: {outbox_retry_delay(attempt).total_seconds() for _ in range(200)}
        for attempt in range(1, 12)
    }

    for attempt, ceiling in enumerate(ceilings, start=1):
        assert ceiling / 2 <= min(draws[attempt]) <= max(draws[attempt]) <= ceiling
        assert len(draws[attempt]) > 150  # jittered, not a fixed delay
    for pick, expected in [(min, [c / 2 for c in ceilings]), (max, ceilings)]:
        monkeypatch.setattr(delivery_module, "random", SimpleNamespace(uniform=pick))
        assert [outbox_retry_delay(a).total_seconds() for a in range(1, 12)] == expected
    assert outbox_retry_delay(10_000) == timedelta(seconds=1800)


def test_one_delivery_costs_eleven_queries(
    django_assert_num_queries, django_capture_on_commit_callbacks
):
    Receiver("wechat", {"paid"})
    with django_capture_on_commit_callbacks():
        event = publish()
    delivery = delivery_of(event, "wechat")

    # Claim: savepoint, lock the row with its event, earlier-open check, update, attempt row,
    # release. Record: savepoint, attempt, delivery, release. Then look for a waiting successor.
    with django_assert_num_queries(11):
        assert outbox_delivery_attempt(delivery_id=delivery.pk) == Result.DELIVERED


# --- Order per aggregate -----------------------------------------------------------------------


def test_a_later_event_of_the_same_order_waits_for_the_earlier_one(
    clock, top_jitter, django_capture_on_commit_callbacks
):
    wechat = Receiver("wechat", {"paid", "shipped"}, script=[retry("HTTP 502", 502)])
    members = Receiver("members", {"shipped"})

    paid = published(django_capture_on_commit_callbacks, event_type="paid", aggregate_id=7)
    shipped = published(django_capture_on_commit_callbacks, event_type="shipped", aggregate_id=7)
    other_order = published(django_capture_on_commit_callbacks, event_type="paid", aggregate_id=8)

    waiting = delivery_of(shipped, "wechat")
    assert numbers(waiting) == ("pending", 0, T0, T0 + LEASE, "", None, None)
    assert attempt_rows(waiting) == []
    assert outbox_delivery_attempt(delivery_id=waiting.pk) == Result.BLOCKED
    # Other orders and other subscribers do not wait.
    assert delivery_of(other_order, "wechat").state == State.DELIVERED
    assert delivery_of(shipped, "members").state == State.DELIVERED

    clock.move_to(T0 + timedelta(seconds=10))
    assert outbox_delivery_attempt(delivery_id=delivery_of(paid, "wechat").pk) == Result.DELIVERED

    # The earlier delivery's success sent the waiting one.
    assert numbers(waiting)[:2] == ("delivered", 1)
    assert wechat.received == [("paid", "7"), ("paid", "8"), ("paid", "7"), ("shipped", "7")]
    assert members.received == [("shipped", "7")]


def test_a_dead_delivery_does_not_hold_back_later_ones(clock, django_capture_on_commit_callbacks):
    wechat = Receiver("wechat", {"paid", "shipped"}, script=[give_up("invalid openid", 400)])

    paid = published(django_capture_on_commit_callbacks, event_type="paid")
    shipped = published(django_capture_on_commit_callbacks, event_type="shipped")

    assert delivery_of(paid, "wechat").state == State.DEAD
    assert delivery_of(shipped, "wechat").state == State.DELIVERED
    assert wechat.received == [("paid", "7"), ("shipped", "7")]


# --- The sweeper -------------------------------------------------------------------------------


def test_the_sweeper_sends_what_is_due_and_unheld_and_recovers_lost_workers(
    clock, django_capture_on_commit_callbacks
):
    wechat = Receiver("wechat", {"paid", "shipped"})
    with django_capture_on_commit_callbacks():  # every message lost
        events = {name: publish(aggregate_id=name) for name in "abcdefghi"}
        blocked = publish(event_type="shipped", aggregate_id="d")
    deliveries = {name: delivery_of(event, "wechat") for name, event in events.items()}
    deliveries["blocked"] = delivery_of(blocked, "wechat")
    now = T0 + timedelta(minutes=5)

    def given(name, **fields):
        OutboxDelivery.objects.filter(pk=deliveries[name].pk).update(**fields)

    # "a": pending, its message lost; the lease taken when publishing has expired.
    given("b", lease_until=now + timedelta(seconds=1))  # pending, its message on the way
    given("c", state="failed", attempts=1, next_attempt_at=now, lease_until=now)  # due
    given("d", state="failed", attempts=1, next_attempt_at=now + timedelta(seconds=1))
    given("e", state="in_flight", attempts=1, lease_until=now - timedelta(seconds=1))
    OutboxAttempt.objects.create(delivery=deliveries["e"], number=1, started_at=T0)
    given("f", state="in_flight", attempts=1, lease_until=now + timedelta(seconds=1))
    given("g", state="delivered", attempts=1, delivered_at=T0, lease_until=None)
    given("h", state="dead", attempts=12, lease_until=None)
    given("i", next_attempt_at=now + timedelta(seconds=1), lease_until=None)  # not yet due
    # "blocked": pending and unheld, but an earlier delivery of order d is still open.
    clock.move_to(now)

    with django_capture_on_commit_callbacks(execute=True):
        sent = outbox_sweep()

    assert sent == [deliveries[name].pk for name in ("a", "c", "e")]
    assert sorted(wechat.received) == [("paid", "a"), ("paid", "c"), ("paid", "e")]
    states = {name: numbers(delivery)[:2] for name, delivery in deliveries.items()}
    assert states == {
        "a": ("delivered", 1),
        "b": ("pending", 0),
        "c": ("delivered", 2),
        "d": ("failed", 1),
        "e": ("delivered", 2),
        "f": ("in_flight", 1),
        "g": ("delivered", 1),
        "h": ("dead", 12),
        "i": ("pending", 0),
        "blocked": ("pending", 0),
    }
    assert attempt_rows(deliveries["e"]) == [
        (1, "lost", "The worker vanished while the handler ran (its lease expired).", None),
        (2, "done", "", None),
    ]


def test_a_lost_worker_on_the_last_attempt_leaves_the_delivery_dead(
    clock, django_capture_on_commit_callbacks
):
    wechat = Receiver("wechat", {"paid"})
    with django_capture_on_commit_callbacks():
        event = publish()
    delivery = delivery_of(event, "wechat")
    OutboxDelivery.objects.filter(pk=delivery.pk).update(
        state="in_flight", attempts=12, lease_until=T0 + LEASE
    )
    OutboxAttempt.objects.create(delivery=delivery, number=12, started_at=T0)
    clock.move_to(T0 + LEASE + timedelta(seconds=1))

    assert outbox_sweep() == []

    lost = "The worker vanished while the handler ran (its lease expired)."
    assert numbers(delivery) == ("dead", 12, T0, None, lost, None, None)
    assert attempt_rows(delivery) == [(12, "lost", lost, None)]
    assert wechat.received == []


def test_the_sweeper_sends_at_most_a_batch_and_holds_what_it_sent(
    clock, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """With the worker down, messages pile up in the broker: each sweep sends a delivery
    once per lease, not once per sweep."""
    settings.OUTBOX_SWEEP_BATCH = 2
    queued_in_broker = []
    monkeypatch.setattr(
        delivery_module, "delivery_send", lambda pk, eta=None: queued_in_broker.append(pk)
    )
    Receiver("wechat", {"paid"})
    with django_capture_on_commit_callbacks():
        ids = [delivery_of(publish(aggregate_id=n), "wechat").pk for n in range(3)]
    clock.move_to(T0 + LEASE)

    sweeps = [outbox_sweep(), outbox_sweep(), outbox_sweep()]
    clock.move_to(T0 + 2 * LEASE)
    sweeps.append(outbox_sweep())

    assert sweeps == [ids[:2], ids[2:], [], ids[:2]]
    assert queued_in_broker == ids + ids[:2]
    assert list(OutboxDelivery.objects.order_by("pk").values_list("state", "lease_until")) == [
        ("pending", T0 + 3 * LEASE),
        ("pending", T0 + 3 * LEASE),
        ("pending", T0 + 2 * LEASE),
    ]


def test_the_beat_tasks_run_the_sweeper_and_the_trim(clock, django_capture_on_commit_callbacks):
    wechat = Receiver("wechat", {"paid"})
    with django_capture_on_commit_callbacks():
        publish()
    clock.move_to(T0 + LEASE)

    assert sweep_outbox.delay().get() == 1
    assert trim_outbox_attempts.delay().get() == 0
    assert wechat.received == [("paid", "7")]
    schedule = celery_app.conf.beat_schedule
    assert schedule["outbox-sweep"] == {
        "task": "retail.outbox_sweep",
        "schedule": 15.0,
        "options": {"expires": 14},
    }
    assert schedule["outbox-trim-attempts"]["task"] == "retail.outbox_trim_attempts"


def test_celery_keeps_deliveries_across_a_killed_worker(settings):
    conf = celery_app.conf

    assert (conf.task_acks_late, conf.task_reject_on_worker_lost) == (True, True)
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_cancel_long_running_tasks_on_connection_loss is True
    assert (deliver_outbox.acks_late, deliver_outbox.reject_on_worker_lost) == (True, True)
    assert (deliver_outbox.soft_time_limit, deliver_outbox.time_limit) == (60, 90)
    assert settings.OUTBOX_LEASE_SECONDS > deliver_outbox.time_limit
    if settings.REDIS_URL:
        visibility = conf.broker_transport_options["visibility_timeout"]
        assert visibility == 7200 > settings.OUTBOX_BACKOFF_MAX_SECONDS


def test_attempts_older_than_the_retention_are_trimmed(
    clock, settings, django_capture_on_commit_callbacks
):
    settings.OUTBOX_ATTEMPT_RETENTION_DAYS = 30
    Receiver("wechat", {"paid"})
    event = published(django_capture_on_commit_callbacks)
    delivery = delivery_of(event, "wechat")
    for number, age in [(2, timedelta(days=30, seconds=1)), (3, timedelta(days=29))]:
        OutboxAttempt.objects.create(
            delivery=delivery, number=number, started_at=T0 - age, outcome="retry"
        )

    assert trim_outbox_attempts.delay().get() == 1

    assert sorted(OutboxAttempt.objects.values_list("number", flat=True)) == [1, 3]
    assert numbers(delivery)[:2] == ("delivered", 1)


# --- Staff retry -------------------------------------------------------------------------------


def test_staff_retry_a_dead_delivery_with_a_new_round_of_attempts(
    clock, hq_user, django_capture_on_commit_callbacks
):
    wechat = Receiver("wechat", {"paid"}, script=[give_up("errcode 40003: invalid openid", 400)])
    event = published(django_capture_on_commit_callbacks)
    delivery = delivery_of(event, "wechat")
    clock.move_to(T0 + timedelta(hours=1))

    with django_capture_on_commit_callbacks() as queued:
        retried = outbox_delivery_retry(delivery=delivery, actor=hq_user)

    later = T0 + timedelta(hours=1)
    assert (retried.state, retried.attempts, retried.attempt_limit) == ("pending", 1, 13)
    assert (retried.next_attempt_at, retried.lease_until) == (later, later + LEASE)
    assert (retried.retried_by, retried.retried_at) == (hq_user, later)
    assert len(queued) == 1

    queued[0]()

    assert numbers(delivery) == ("delivered", 2, later, None, "", None, later)
    assert wechat.received == [("paid", "7"), ("paid", "7")]


def test_staff_retry_a_failed_delivery_now_keeps_its_attempt_limit(
    clock, hq_user, django_capture_on_commit_callbacks
):
    Receiver("wechat", {"paid"}, script=[retry("timeout")])
    event = published(django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        outbox_delivery_retry(delivery=delivery_of(event, "wechat"), actor=hq_user)

    delivery = delivery_of(event, "wechat")
    assert (delivery.state, delivery.attempts, delivery.attempt_limit) == ("delivered", 2, 12)


@pytest.mark.parametrize("state", ["pending", "in_flight", "delivered"])
def test_staff_cannot_retry_a_delivery_that_is_not_failed_or_dead(
    state, clock, hq_user, django_capture_on_commit_callbacks
):
    Receiver("wechat", {"paid"})
    with django_capture_on_commit_callbacks():
        event = publish()
    delivery = delivery_of(event, "wechat")
    OutboxDelivery.objects.filter(pk=delivery.pk).update(
        state=state, delivered_at=T0 if state == "delivered" else None
    )
    delivery.refresh_from_db()
    before = numbers(delivery)

    with django_capture_on_commit_callbacks() as queued, pytest.raises(BusinessError) as refused:
        outbox_delivery_retry(delivery=delivery, actor=hq_user)

    assert refused.value.code == "outbox_delivery_not_retryable"
    assert refused.value.fields == {"state": [state]}
    assert numbers(delivery) == before
    assert (delivery.retried_by, delivery.attempt_limit) == (None, 12)
    assert queued == []


# --- Admin -------------------------------------------------------------------------------------


@pytest.fixture
def dead_and_delivered(clock, django_capture_on_commit_callbacks):
    Receiver("wechat", {"paid"}, script=[give_up("errcode 43101: user refused", 400)])
    Receiver("partner-a", {"paid"})
    event = published(django_capture_on_commit_callbacks)
    return delivery_of(event, "wechat"), delivery_of(event, "partner-a")


def test_hq_lists_deliveries_by_subscriber_and_state(client, hq_user, dead_and_delivered):
    dead, delivered = dead_and_delivered
    client.force_login(hq_user)
    url = reverse("admin:retail_outboxdelivery_changelist")

    everything = client.get(url)
    dead_only = client.get(url, {"state": "dead"})
    partner_only = client.get(url, {"subscriber": "partner-a"})

    assert everything.status_code == 200
    assert list(everything.context["cl"].result_list) == [dead, delivered]
    assert list(dead_only.context["cl"].result_list) == [dead]
    assert list(partner_only.context["cl"].result_list) == [delivered]
    assert "errcode 43101: user refused" in everything.content.decode()


def test_hq_sees_a_delivery_with_its_attempts_read_only(client, hq_user, dead_and_delivered):
    dead, _delivered = dead_and_delivered
    client.force_login(hq_user)

    response = client.get(reverse("admin:retail_outboxdelivery_change", args=[dead.pk]))
    event = client.get(reverse("admin:retail_outboxevent_change", args=[dead.event_id]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "errcode 43101: user refused" in page
    assert 'name="_save"' not in page
    assert [form.original.number for form in response.context["inline_admin_formsets"][0]] == [1]
    assert event.status_code == 200
    assert str(dead.event.event_id) in event.content.decode()


@pytest.mark.parametrize("model", ["outboxdelivery", "outboxevent"])
def test_store_staff_do_not_see_the_outbox(client, manager_a, dead_and_delivered, model):
    client.force_login(manager_a)

    response = client.get(reverse(f"admin:retail_{model}_changelist"))

    assert response.status_code == 403


def test_hq_retries_dead_deliveries_from_the_list(
    client, english, dead_and_delivered, django_capture_on_commit_callbacks
):
    dead, delivered = dead_and_delivered
    superuser = UserFactory(is_superuser=True)
    client.force_login(superuser)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:retail_outboxdelivery_changelist"),
            {"action": "retry_deliveries", "_selected_action": [dead.pk, delivered.pk]},
            follow=True,
            HTTP_ACCEPT_LANGUAGE="en",
        )

    assert [str(m) for m in response.context["messages"]] == [
        "1 delivery will be sent again.",
        "1 delivery was not failed or dead and was left as it was.",
    ]
    dead.refresh_from_db()
    assert (dead.state, dead.attempts, dead.retried_by) == ("delivered", 2, superuser)
    assert numbers(delivered)[:2] == ("delivered", 1)


def test_store_staff_cannot_post_the_retry_action(client, manager_a, dead_and_delivered):
    dead, _delivered = dead_and_delivered
    client.force_login(manager_a)

    response = client.post(
        reverse("admin:retail_outboxdelivery_changelist"),
        {"action": "retry_deliveries", "_selected_action": [dead.pk]},
    )

    assert response.status_code == 403
    dead.refresh_from_db()
    assert (dead.state, dead.attempts, dead.retried_by) == ("dead", 1, None)


@pytest.mark.parametrize("orders", [1, 10])
def test_the_delivery_list_costs_nine_queries_however_many_rows(
    orders, client, hq_user, django_assert_num_queries, django_capture_on_commit_callbacks
):
    Receiver("wechat", {"paid"})
    Receiver("partner-a", {"paid"})
    for order in range(orders):
        published(django_capture_on_commit_callbacks, aggregate_id=order)
    client.force_login(hq_user)
    url = reverse("admin:retail_outboxdelivery_changelist")

    # Session, user, roles; two counts (filtered and total); the user's and groups' own
    # permissions (the sidebar's other apps); the page of rows with their events in one
    # query; the subscriber filter's choices.
    with django_assert_num_queries(9):
        response = client.get(url)

    assert len(response.context["cl"].result_list) == 2 * orders
