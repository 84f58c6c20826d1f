from celery import shared_task
from django.utils import timezone

from members.services.coupons import coupons_issue_birthday
from members.services.points import points_expire, tiers_recalculate

# Nightly work over every member: long limits, and safe to run again after a failure (expiry is
# one entry per member and day, the tier recalculation sets what the spend says).
NIGHTLY_TASK_OPTIONS = {
    "ignore_result": True,
    "soft_time_limit": 1700,
    "time_limit": 1800,
    "autoretry_for": (Exception,),
    "retry_backoff": True,
    "max_retries": 3,
}


@shared_task(name="members.expire_points", **NIGHTLY_TASK_OPTIONS)
def expire_points() -> int:
    return points_expire()


@shared_task(name="members.recalculate_tiers", **NIGHTLY_TASK_OPTIONS)
def recalculate_tiers() -> int:
    return tiers_recalculate()


# Hourly rather than nightly: a missed run catches up within the hour, and a member gets one
# birthday coupon per template and year however often it runs.
@shared_task(name="members.issue_birthday_coupons", **NIGHTLY_TASK_OPTIONS)
def issue_birthday_coupons() -> int:
    return coupons_issue_birthday(today=timezone.localdate())
