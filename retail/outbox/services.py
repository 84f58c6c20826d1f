"""Writing to the outbox: publishing an event inside the caller's transaction, staff retries,
and trimming the attempt history."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models, transaction
from django.db.models import Case, F, When
from django.db.transaction import TransactionManagementError
from django.utils import timezone
from django.utils.translation import gettext as _

from retail.errors import BusinessError
from retail.models import OutboxAttempt, OutboxDelivery, OutboxEvent
from retail.outbox.delivery import delivery_queue
from retail.outbox.registry import subscribers_for

State = OutboxDelivery.State


def _send_after_commit(delivery_id: int) -> None:
    """Queue the delivery's task once the transaction commits (a broker that is down must not
    fail a change already committed: see ``delivery_queue``)."""
    transaction.on_commit(lambda: delivery_queue(delivery_id))


def outbox_publish(
    *,
    event_type: str,
    aggregate_type: str,
    aggregate_id: str | int,
    payload: dict[str, Any],
) -> OutboxEvent:
    """Record an event and one delivery per interested subscriber, in the caller's
    transaction; each delivery is queued once that transaction commits.

    Events of one aggregate must be published in the order they happen, which callers get by
    holding the aggregate's row lock (``order_transition`` does): deliveries of one aggregate to
    one subscriber go out in event order.
    """
    if not transaction.get_connection().in_atomic_block:
        raise TransactionManagementError(
            "outbox_publish() must run inside the caller's transaction.atomic(): the event "
            "commits with the change it reports, or not at all."
        )
    event = OutboxEvent.objects.create(
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        payload=payload,
    )
    subscribers = subscribers_for(event)
    if not subscribers:
        return event
    now = event.created_at
    deliveries = OutboxDelivery.objects.bulk_create(
        [
            OutboxDelivery(
                event=event,
                subscriber=subscriber.name,
                attempt_limit=settings.OUTBOX_MAX_ATTEMPTS,
                next_attempt_at=now,
                # The message sent at commit holds it; the sweeper steps in if it is lost.
                lease_until=now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS),
                created_at=now,
            )
            for subscriber in subscribers
        ]
    )
    for delivery in deliveries:
        _send_after_commit(delivery.pk)
    return event


def outbox_delivery_retry(*, delivery: OutboxDelivery, actor: User) -> OutboxDelivery:
    """Staff send a failed or dead delivery again now. A dead one gets a new round of
    ``OUTBOX_MAX_ATTEMPTS`` attempts; a failed one keeps its remaining attempts."""
    now = timezone.now()
    with transaction.atomic():
        retried = OutboxDelivery.objects.filter(
            pk=delivery.pk, state__in=[State.FAILED, State.DEAD]
        ).update(
            attempt_limit=Case(
                When(state=State.DEAD, then=F("attempts") + settings.OUTBOX_MAX_ATTEMPTS),
                default=F("attempt_limit"),
                output_field=models.PositiveIntegerField(),
            ),
            state=State.PENDING,
            next_attempt_at=now,
            lease_until=now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS),
            retried_by=actor,
            retried_at=now,
            updated_at=now,
        )
        if not retried:
            raise BusinessError(
                "outbox_delivery_not_retryable",
                _("Only a failed or dead delivery can be retried."),
                fields={"state": [delivery.state]},
            )
        _send_after_commit(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def outbox_attempts_trim() -> int:
    """Delete attempts older than ``OUTBOX_ATTEMPT_RETENTION_DAYS``; the deliveries keep their
    last error and status code."""
    cutoff = timezone.now() - timedelta(days=settings.OUTBOX_ATTEMPT_RETENTION_DAYS)
    deleted, _by_model = OutboxAttempt.objects.filter(started_at__lt=cutoff).delete()
    return deleted
