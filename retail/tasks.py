from celery import shared_task

from retail.health import beat_heartbeat_record
from retail.outbox import outbox_attempts_trim, outbox_delivery_attempt, outbox_sweep


@shared_task(name="retail.beat_heartbeat", ignore_result=True, soft_time_limit=20, time_limit=30)
def beat_heartbeat() -> None:
    """Run by beat through a worker: its freshness proves both are alive."""
    beat_heartbeat_record()


# The lease (OUTBOX_LEASE_SECONDS, 120 s by default) outlasts the hard time limit, so the
# sweeper never hands a delivery to a second worker while the first may still be calling out.
@shared_task(
    name="retail.outbox_deliver",
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=60,
    time_limit=90,
)
def deliver_outbox(delivery_id: int) -> str:
    """No retry here: a failed attempt is recorded and rescheduled by the outbox itself."""
    return outbox_delivery_attempt(delivery_id=delivery_id)


@shared_task(name="retail.outbox_sweep", ignore_result=True, soft_time_limit=20, time_limit=30)
def sweep_outbox() -> int:
    return len(outbox_sweep())


@shared_task(
    name="retail.outbox_trim_attempts", ignore_result=True, soft_time_limit=240, time_limit=300
)
def trim_outbox_attempts() -> int:
    return outbox_attempts_trim()
