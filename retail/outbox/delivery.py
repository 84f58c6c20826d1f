"""Delivering: claim a delivery, call its handler with no lock and no transaction held, record
what happened. And the sweeper, which re-sends what is due and nobody holds.

The database is the schedule; a task message only rings the bell. Every message is checked
against the row when it arrives (``_claim``), so a repeated, late or early message does nothing,
and a lost one only delays the delivery until the sweeper notices.
"""

import logging
import random
import time
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError

from retail.models import OutboxAttempt, OutboxDelivery
from retail.outbox.registry import Outcome, Verdict, retry, subscriber_named

logger = logging.getLogger(__name__)
# Celery's default retries a refused publish three times (0.6 s); one quick retry is enough
# for a connection dropped in the pool.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}

State = OutboxDelivery.State
Attempt = OutboxAttempt.Outcome

LOST_ERROR = "The worker vanished while the handler ran (its lease expired)."
# An error is kept for people to read: a receiver's whole HTML error page is not.
ERROR_MAX_LENGTH = 2000


class Result(StrEnum):
    """What one run of the delivery task did."""

    DELIVERED = "delivered"
    FAILED = "failed"  # recorded; the next attempt is scheduled
    DEAD = "dead"
    BLOCKED = "blocked"  # an earlier delivery of the same aggregate is still open: it waits
    SKIPPED = "skipped"  # not due, held by another worker, already finished, or gone


def _lease(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)


def delivery_send(delivery_id: int, *, eta: datetime | None = None) -> None:
    """Queue the task that attempts the delivery. Losing this message only delays it. One
    quick retry at most: the sweeper is the real one."""
    from retail.tasks import deliver_outbox  # retail.tasks imports this module

    options = {"queue": settings.OUTBOX_QUEUE} if settings.OUTBOX_QUEUE else {}
    deliver_outbox.apply_async((delivery_id,), eta=eta, retry_policy=PUBLISH_RETRY, **options)


class _Broker:
    """When the broker last refused a message, in this process: for
    ``OUTBOX_BROKER_PAUSE_SECONDS`` after it, deliveries are left to the sweeper without
    trying, so a request that publishes several events does not wait on each while the broker
    is away (0.6 s a delivery with Celery's default publish retries, measured)."""

    down_until = 0.0
    clock = staticmethod(time.monotonic)


def delivery_queue(delivery_id: int, *, eta: datetime | None = None) -> None:
    """``delivery_send``, where a broker that is down (Redis restarting) fails nothing: the
    delivery keeps its lease and the sweeper sends it once the lease ends. One warning line
    when the broker is found down, not a traceback per delivery."""
    if _Broker.clock() < _Broker.down_until:
        logger.info("outbox: the broker is down; delivery %s is left to the sweeper", delivery_id)
        return
    try:
        delivery_send(delivery_id, eta=eta)
    except (OperationalError, OSError) as error:
        _Broker.down_until = _Broker.clock() + settings.OUTBOX_BROKER_PAUSE_SECONDS
        logger.warning(
            "outbox: could not queue delivery %s (%s: %s); it and the deliveries of the next "
            "%g s are left to the sweeper, which sends them after their lease",
            delivery_id,
            type(error).__name__,
            error,
            settings.OUTBOX_BROKER_PAUSE_SECONDS,
        )


def outbox_retry_delay(attempt: int) -> timedelta:
    """Exponential backoff with jitter after failed attempt number ``attempt``.

    The ceiling doubles with each attempt up to ``OUTBOX_BACKOFF_MAX_SECONDS``; the delay is
    drawn from its upper half, so retries of many deliveries spread out yet none comes back
    sooner than half its ceiling.
    """
    exponent = min(max(attempt, 1) - 1, 32)
    ceiling = min(
        settings.OUTBOX_BACKOFF_MAX_SECONDS, settings.OUTBOX_BACKOFF_BASE_SECONDS * 2**exponent
    )
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311 - not a secret


def _earlier_open(*, subscriber, aggregate_type, aggregate_id, event_id) -> QuerySet:
    """Deliveries to the same subscriber of earlier events of the same aggregate that are not
    finished. A dead one is finished: it no longer holds the later ones back."""
    return OutboxDelivery.objects.filter(
        subscriber=subscriber,
        event__aggregate_type=aggregate_type,
        event__aggregate_id=aggregate_id,
        event_id__lt=event_id,
        state__in=OutboxDelivery.OPEN_STATES,
    )


def _claim(delivery_id: int, now: datetime) -> tuple[OutboxDelivery, OutboxAttempt] | Result:
    """Take the delivery if it is due and free: ``in_flight`` with a lease, one attempt row."""
    with transaction.atomic():
        delivery = (
            OutboxDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("event")
            .filter(
                pk=delivery_id,
                state__in=[State.PENDING, State.FAILED],
                next_attempt_at__lte=now,
            )
            .first()
        )
        if delivery is None:
            return Result.SKIPPED
        event = delivery.event
        if _earlier_open(
            subscriber=delivery.subscriber,
            aggregate_type=event.aggregate_type,
            aggregate_id=event.aggregate_id,
            event_id=event.pk,
        ).exists():
            # The earlier one's completion sends this one (_release_successor).
            return Result.BLOCKED
        delivery.state = State.IN_FLIGHT
        delivery.attempts += 1
        delivery.lease_until = _lease(now)
        delivery.save(update_fields=["state", "attempts", "lease_until", "updated_at"])
        attempt = OutboxAttempt.objects.create(
            delivery=delivery, number=delivery.attempts, started_at=now
        )
    return delivery, attempt


def _call(delivery: OutboxDelivery) -> Outcome:
    subscriber = subscriber_named(delivery.subscriber)
    if subscriber is None:
        return retry(f"No handler is registered for {delivery.subscriber!r} in this process.")
    try:
        outcome = subscriber.handler(delivery.event)
    except Exception as error:  # a handler's failure is an outcome, not the worker's
        logger.warning(
            "outbox: %s failed on event %s",
            delivery.subscriber,
            delivery.event.event_id,
            exc_info=True,
        )
        return retry(f"{type(error).__name__}: {error}")
    if not isinstance(outcome, Outcome):
        return retry(f"The handler returned {outcome!r} instead of an Outcome.")
    return outcome


def _record(
    delivery: OutboxDelivery, attempt: OutboxAttempt, outcome: Outcome, *, duration_ms: int
) -> Result:
    now = timezone.now()
    error = outcome.error[:ERROR_MAX_LENGTH]
    next_attempt_at = None
    if outcome.verdict == Verdict.DONE:
        result = Result.DELIVERED
        changes = {"state": State.DELIVERED, "delivered_at": now, "lease_until": None}
    elif outcome.verdict == Verdict.RETRY and delivery.attempts < delivery.attempt_limit:
        result = Result.FAILED
        next_attempt_at = now + outbox_retry_delay(delivery.attempts)
        # The retry message carries an ETA: until it is due (and a lease after), it holds the
        # delivery and the sweeper leaves it alone.
        changes = {
            "state": State.FAILED,
            "next_attempt_at": next_attempt_at,
            "lease_until": _lease(next_attempt_at),
        }
    else:
        result = Result.DEAD
        changes = {"state": State.DEAD, "lease_until": None}

    with transaction.atomic():
        OutboxAttempt.objects.filter(pk=attempt.pk).update(
            outcome=outcome.verdict,
            error=error,
            status_code=outcome.status_code,
            duration_ms=duration_ms,
        )
        # Unless a later attempt began meanwhile (our lease expired and the sweeper let another
        # worker take over), this attempt is the latest word on the delivery.
        recorded = (
            OutboxDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts)
            .exclude(state=State.DELIVERED)
            .update(
                **changes,
                last_error=error,
                last_status_code=outcome.status_code,
                updated_at=now,
            )
        )
    if not recorded:
        return Result.SKIPPED
    if result == Result.DEAD:
        logger.warning(
            "outbox: delivery %s to %s is dead after %d attempts: %s",
            delivery.pk,
            delivery.subscriber,
            delivery.attempts,
            error,
        )
    if next_attempt_at is not None:
        delivery_queue(delivery.pk, eta=next_attempt_at)
    else:
        _release_successor(delivery, now)
    return result


def _release_successor(delivery: OutboxDelivery, now: datetime) -> None:
    """Send the next open delivery of the same aggregate to the same subscriber, which waited."""
    event = delivery.event
    successor = (
        OutboxDelivery.objects.filter(
            subscriber=delivery.subscriber,
            event__aggregate_type=event.aggregate_type,
            event__aggregate_id=event.aggregate_id,
            event_id__gt=event.pk,
            state__in=OutboxDelivery.OPEN_STATES,
        )
        .order_by("event_id")
        .values("pk", "state", "next_attempt_at")
        .first()
    )
    if successor is None or successor["state"] == State.IN_FLIGHT:
        return
    if successor["next_attempt_at"] > now:
        return  # it has a retry message of its own on the way
    OutboxDelivery.objects.filter(pk=successor["pk"]).update(lease_until=_lease(now))
    delivery_queue(successor["pk"])


def outbox_delivery_attempt(*, delivery_id: int) -> Result:
    """One attempt at one delivery, if it is due and free. Safe to call any number of times."""
    claimed = _claim(delivery_id, timezone.now())
    if isinstance(claimed, Result):
        return claimed
    delivery, attempt = claimed
    started = time.monotonic()
    outcome = _call(delivery)
    duration_ms = round((time.monotonic() - started) * 1000)
    return _record(delivery, attempt, outcome, duration_ms=duration_ms)


# --- The sweeper -------------------------------------------------------------------------------


def _recover_lost(now: datetime, limit: int) -> int:
    """``in_flight`` deliveries whose lease expired lost their worker: their running attempt is
    ``lost`` and they are due again at once (the lease was their wait), or dead if that was
    their last attempt."""
    with transaction.atomic():
        lost = list(
            OutboxDelivery.objects.select_for_update(skip_locked=True)
            .filter(state=State.IN_FLIGHT, lease_until__lt=now)
            .order_by("lease_until", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if not lost:
            return 0
        OutboxAttempt.objects.filter(delivery__in=lost, outcome=Attempt.RUNNING).update(
            outcome=Attempt.LOST, error=LOST_ERROR
        )
        common = {
            "lease_until": None,
            "last_error": LOST_ERROR,
            "last_status_code": None,
            "updated_at": now,
        }
        OutboxDelivery.objects.filter(pk__in=lost, attempts__lt=F("attempt_limit")).update(
            state=State.FAILED, next_attempt_at=now, **common
        )
        OutboxDelivery.objects.filter(pk__in=lost, attempts__gte=F("attempt_limit")).update(
            state=State.DEAD, **common
        )
    logger.warning("outbox: %d deliveries lost their worker and are due again", len(lost))
    return len(lost)


def _send_due(now: datetime, limit: int) -> list[int]:
    """Send what is due, free (no lease: no message on its way) and not waiting for an earlier
    delivery of its aggregate."""
    with transaction.atomic():
        due = list(
            OutboxDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state__in=[State.PENDING, State.FAILED], next_attempt_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
            .filter(
                ~Exists(
                    _earlier_open(
                        subscriber=OuterRef("subscriber"),
                        aggregate_type=OuterRef("event__aggregate_type"),
                        aggregate_id=OuterRef("event__aggregate_id"),
                        event_id=OuterRef("event_id"),
                    )
                )
            )
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if due:
            OutboxDelivery.objects.filter(pk__in=due).update(lease_until=_lease(now))
    for delivery_id in due:
        delivery_queue(delivery_id)
    return due


def outbox_sweep(*, limit: int | None = None) -> list[int]:
    """Run by beat: recover deliveries whose worker vanished, then send every due delivery that
    nobody holds. Returns the ids sent."""
    now = timezone.now()
    limit = limit or settings.OUTBOX_SWEEP_BATCH
    _recover_lost(now, limit)
    return _send_due(now, limit)
