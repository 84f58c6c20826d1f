from celery import shared_task

from wechat.pay.services import payments_close_unpaid, payments_reconcile
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


# WeChat Pay reconciliation (wechat/pay/services.py): each run stops taking new payments after
# 90 s, well inside its time limits, and leaves the rest to the next run.
PAY_BEAT_OPTIONS = {
    "ignore_result": True,
    "soft_time_limit": 110,
    "time_limit": 120,
    "autoretry_for": (Exception,),
    "retry_backoff": True,
    "max_retries": 3,
}


@shared_task(name="wechat.pay_reconcile", **PAY_BEAT_OPTIONS)
def pay_reconcile() -> dict:
    return dict(payments_reconcile())


@shared_task(name="wechat.pay_close_unpaid", **PAY_BEAT_OPTIONS)
def pay_close_unpaid() -> dict:
    return dict(payments_close_unpaid())
