"""The daily sales roll-up: ``DailySales`` kept true for closed local days, so the console
dashboard's last 30 days read a few rows per store and day instead of every order.

A run (the beat task every five minutes, or ``manage.py sales_rollup``), under the lock of the
one ``SalesRollupState`` row:

1. rolls up the closed days (before today, Asia/Shanghai) after ``complete_through``; on the
   first run the dashboard's last ``HISTORY_DAYS`` days, or all history with ``rebuild``;
2. recomputes the (store, day) pairs of days already rolled up whose orders changed
   (``updated_at``) since the last run started, less ``MARGIN``: a refund lowers the day in
   which its order was paid, possibly weeks ago. Every write of ``paid_fen``, ``refunded_fen``
   or ``paid_at`` stamps ``updated_at`` (``orders.payments``, ``orders.transitions``);
3. replaces those rows (delete, insert) and moves ``complete_through`` and ``watermark``, all
   in one transaction.

Between two runs a past day's figure may miss the refunds of the last few minutes; the
dashboard reads today (and any day not rolled up yet) from the orders.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import reduce
from operator import or_
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from orders.models import DailySales, Order, SalesRollupState

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The days the console dashboard charts (today included); a first run rolls up the closed ones.
HISTORY_DAYS = 30


def local_day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=SHANGHAI)


# Longer than any transaction that writes an order: one stamps ``updated_at`` before it
# commits, so a run may not see a change stamped just before it started.
MARGIN = timedelta(minutes=10)
# Days per grouped query and per delete (an OR of that many day ranges).
DAYS_PER_QUERY = 100


@dataclass
class RollupResult:
    rebuilt: bool
    new_days: list[date]  # closed days rolled up for the first time, oldest first
    changed_pairs: int  # (store, day) pairs recomputed because their orders changed
    rows_written: int
    complete_through: date | None
    changed_since: datetime | None


def _state_locked() -> SalesRollupState:
    locked = SalesRollupState.objects.select_for_update()
    state = locked.filter(pk=SalesRollupState.SINGLETON).first()
    if state is None:
        # Two first runs at once: one inserts, the other finds it.
        SalesRollupState.objects.get_or_create(pk=SalesRollupState.SINGLETON)
        state = locked.get(pk=SalesRollupState.SINGLETON)
    return state


def _day_range(first: date, last: date) -> Q:
    return Q(paid_at__gte=local_day_start(first), paid_at__lt=local_day_start(last + timedelta(1)))


def _changed_pairs(*, since: datetime, through: date) -> dict[date, set[int]]:
    """Stores by day, of days up to ``through``, whose orders changed at or after ``since``."""
    pairs: dict[date, set[int]] = {}
    rows = (
        Order.objects.order_by()
        .filter(updated_at__gte=since, paid_at__lt=local_day_start(through + timedelta(1)))
        .annotate(day=TruncDate("paid_at", tzinfo=SHANGHAI))
        .values_list("store_id", "day")
        .distinct()
    )
    for store_id, day in rows:
        pairs.setdefault(day, set()).add(store_id)
    return pairs


def _chunks(items: list, size: int) -> list[list]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _recompute(*, scopes: list[tuple[Q, Q]], now: datetime) -> int:
    """Replaces the ``DailySales`` of each scope, given as (orders filter, rows filter)."""
    rows = []
    for chunk in _chunks(scopes, DAYS_PER_QUERY):
        grouped = (
            Order.objects.order_by()
            .filter(reduce(or_, (orders for orders, _rows in chunk)))
            .annotate(day=TruncDate("paid_at", tzinfo=SHANGHAI))
            .values("store_id", "day", "channel")
            .annotate(orders=Count("pk"), paid=Sum("paid_fen"), refunded=Sum("refunded_fen"))
        )
        rows.extend(grouped)
        DailySales.objects.filter(reduce(or_, (rows for _orders, rows in chunk))).delete()
    DailySales.objects.bulk_create(
        DailySales(
            store_id=row["store_id"],
            day=row["day"],
            channel=row["channel"],
            orders=row["orders"],
            paid_fen=row["paid"],
            refunded_fen=row["refunded"],
            computed_at=now,
        )
        for row in rows
    )
    return len(rows)


def sales_rollup(*, now: datetime | None = None, rebuild: bool = False) -> RollupResult:
    """Brings ``DailySales`` up to date as of ``now``; ``rebuild`` recomputes all history.
    Idempotent; a second run at once waits for the first's lock, then finds little to do."""
    with transaction.atomic():
        state = _state_locked()
        started = now or timezone.now()
        last_closed = started.astimezone(SHANGHAI).date() - timedelta(days=1)
        done = state.complete_through
        if rebuild:
            done = None
            first_new = None
        elif done is None:
            first_new = last_closed - timedelta(days=HISTORY_DAYS - 2)
        else:
            first_new = done + timedelta(days=1)

        scopes: list[tuple[Q, Q]] = []
        new_days: list[date] = []
        if rebuild:
            scopes.append((Q(paid_at__lt=local_day_start(last_closed + timedelta(1))), Q()))
        elif first_new <= last_closed:
            new_days = [
                first_new + timedelta(days=n) for n in range((last_closed - first_new).days + 1)
            ]
            scopes.append(
                (_day_range(first_new, last_closed), Q(day__gte=first_new, day__lte=last_closed))
            )
        changed_since = None
        changed = 0
        if not rebuild and done is not None and state.watermark is not None:
            changed_since = state.watermark - MARGIN
            pairs = _changed_pairs(since=changed_since, through=done)
            for day, store_ids in sorted(pairs.items()):
                stores = sorted(store_ids)
                changed += len(stores)
                scopes.append(
                    (_day_range(day, day) & Q(store_id__in=stores), Q(day=day, store_id__in=stores))
                )
        rows_written = _recompute(scopes=scopes, now=started) if scopes else 0

        complete_through = max(filter(None, (done, last_closed)))
        SalesRollupState.objects.filter(pk=state.pk).update(
            complete_through=complete_through, watermark=started
        )
    return RollupResult(
        rebuilt=rebuild,
        new_days=new_days,
        changed_pairs=changed,
        rows_written=rows_written,
        complete_through=complete_through,
        changed_since=changed_since,
    )
