from celery import shared_task

from retail.health import beat_heartbeat_record


@shared_task(name="retail.beat_heartbeat", ignore_result=True, soft_time_limit=20, time_limit=30)
def beat_heartbeat() -> None:
    """Run by beat through a worker: its freshness proves both are alive."""
    beat_heartbeat_record()
