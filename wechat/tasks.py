from celery import shared_task

from wechat.services.recommendations import bought_together_recompute


@shared_task(
    name="wechat.recompute_bought_together",
    ignore_result=True,
    soft_time_limit=600,
    time_limit=660,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=3,
)
def recompute_bought_together() -> int:
    return bought_together_recompute()
