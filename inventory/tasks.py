from celery import shared_task

from inventory.services import stock_release_expired


@shared_task(
    name="inventory.release_expired_holds",
    ignore_result=True,
    soft_time_limit=50,
    time_limit=60,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=3,
)
def release_expired_holds() -> int:
    return stock_release_expired()
