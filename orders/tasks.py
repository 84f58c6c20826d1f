from celery import shared_task

from orders.payments import refund_submit, refunds_resubmit_stale
from orders.sales_rollup import sales_rollup
from orders.services import orders_auto_complete, orders_expire_unpaid

BEAT_TASK_OPTIONS = {
    "ignore_result": True,
    "soft_time_limit": 50,
    "time_limit": 60,
    "autoretry_for": (Exception,),
    "retry_backoff": True,
    "max_retries": 3,
}


@shared_task(name="orders.expire_unpaid", **BEAT_TASK_OPTIONS)
def expire_unpaid() -> int:
    return orders_expire_unpaid()


@shared_task(name="orders.auto_complete", **BEAT_TASK_OPTIONS)
def auto_complete() -> int:
    return orders_auto_complete()


@shared_task(name="orders.submit_refund", **BEAT_TASK_OPTIONS)
def submit_refund(refund_id: int) -> None:
    refund_submit(refund_id=refund_id)


@shared_task(name="orders.resubmit_stale_refunds", **BEAT_TASK_OPTIONS)
def resubmit_stale_refunds() -> int:
    return refunds_resubmit_stale()


@shared_task(name="orders.sales_rollup", **BEAT_TASK_OPTIONS)
def roll_up_sales() -> int:
    """Keeps ``DailySales`` true (``orders.sales_rollup``); returns the rows written."""
    return sales_rollup().rows_written
