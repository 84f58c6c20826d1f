"""The "bought together" figures behind recommendations: for each pair of SKUs, how many
orders paid in the last ``SHOP_BOUGHT_TOGETHER_DAYS`` days held both. Recomputed whole by the
beat task ``wechat.recompute_bought_together``; readers see the old figures until it commits.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from orders.models import Order, OrderLine
from wechat.models import BoughtTogether

# Pairs kept per SKU: a page shows a handful, and the table stays small.
PER_SKU = 20
_PAID = [
    Order.Status.PAID,
    Order.Status.READY_FOR_PICKUP,
    Order.Status.SHIPPED,
    Order.Status.DELIVERED,
    Order.Status.COMPLETED,
]


def bought_together_recompute(*, now: datetime | None = None, days: int | None = None) -> int:
    """Replace the figures with those of orders paid (and not cancelled) in the ``days`` before
    ``now``, every channel; return how many pairs are kept. Three queries whatever the number
    of orders: the pairs, counted by the database (an order's lines joined with the same
    order's other lines), the delete, and one insert (batched only by the database's
    parameter limit)."""
    now = now or timezone.now()
    days = settings.SHOP_BOUGHT_TOGETHER_DAYS if days is None else days
    pairs = (
        OrderLine.objects.filter(
            order__status__in=_PAID,
            order__paid_at__gt=now - timedelta(days=days),
            order__paid_at__lte=now,
        )
        .annotate(other_id=F("order__lines__sku_id"))
        .exclude(other_id=F("sku_id"))
        .values("sku_id", "other_id")
        .annotate(orders=Count("order_id", distinct=True))
        .order_by("sku_id", "-orders", "other_id")
    )
    kept: list[BoughtTogether] = []
    per_sku: dict[int, int] = {}
    for row in pairs:
        taken = per_sku.get(row["sku_id"], 0)
        if taken < PER_SKU:
            per_sku[row["sku_id"]] = taken + 1
            kept.append(
                BoughtTogether(
                    sku_id=row["sku_id"],
                    other_id=row["other_id"],
                    orders=row["orders"],
                    computed_at=now,
                )
            )
    with transaction.atomic():
        BoughtTogether.objects.all().delete()
        BoughtTogether.objects.bulk_create(kept)
    return len(kept)
