"""The Celery app. The beat schedule lives here and nowhere else."""

import os

from celery import Celery, bootsteps
from celery.schedules import crontab

from retail.startup import require_secret_key

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retail.settings")

app = Celery("retail")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class RequireSecrets(bootsteps.Step):
    """A worker without its secrets stops before it consumes anything."""

    def __init__(self, worker, **kwargs) -> None:
        require_secret_key()
        super().__init__(worker, **kwargs)


app.steps["worker"].add(RequireSecrets)


app.conf.beat_schedule = {
    "beat-heartbeat": {
        "task": "retail.beat_heartbeat",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    # Re-sends outbox deliveries that are due and nobody holds (lost messages, dead workers).
    "outbox-sweep": {
        "task": "retail.outbox_sweep",
        "schedule": 15.0,
        "options": {"expires": 14},
    },
    "outbox-trim-attempts": {
        "task": "retail.outbox_trim_attempts",
        "schedule": 3600.0,
        "options": {"expires": 3500},
    },
    "release-expired-stock-holds": {
        "task": "inventory.release_expired_holds",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "expire-unpaid-orders": {
        "task": "orders.expire_unpaid",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "resubmit-stale-refunds": {
        "task": "orders.resubmit_stale_refunds",
        "schedule": 300.0,
        "options": {"expires": 290},
    },
    # The console dashboard's past days (orders.sales_rollup): a refund shows on its order's
    # past day within five minutes.
    "sales-rollup": {
        "task": "orders.sales_rollup",
        "schedule": 300.0,
        "options": {"expires": 290},
    },
    "auto-complete-delivered-orders": {
        "task": "orders.auto_complete",
        "schedule": 3600.0,
        "options": {"expires": 3500},
    },
    # Nightly, Shanghai time (the app's timezone): points past their expiry, then tiers from
    # the rolling window of spend.
    "expire-points": {
        "task": "members.expire_points",
        "schedule": crontab(hour=0, minute=30),
        "options": {"expires": 3600},
    },
    "recalculate-tiers": {
        "task": "members.recalculate_tiers",
        "schedule": crontab(hour=1, minute=0),
        "options": {"expires": 3600},
    },
    # Every hour at :05 (Shanghai); a member's birthday coupon is issued once a year anyway.
    "issue-birthday-coupons": {
        "task": "members.issue_birthday_coupons",
        "schedule": crontab(minute=5),
        "options": {"expires": 3000},
    },
    # WeChat Pay: ask WeChat about payments whose notify never came; close at WeChat the
    # trades of orders that expired or were cancelled unpaid.
    "wechat-pay-reconcile": {
        "task": "wechat.pay_reconcile",
        "schedule": 120.0,
        "options": {"expires": 110},
    },
    "wechat-pay-close-unpaid": {
        "task": "wechat.pay_close_unpaid",
        "schedule": 120.0,
        "options": {"expires": 110},
    },
    # Nightly at 03:15 (Shanghai): the mini-shop's "bought together" recommendations.
    "recompute-bought-together": {
        "task": "wechat.recompute_bought_together",
        "schedule": crontab(hour=3, minute=15),
        "options": {"expires": 3600},
    },
}
