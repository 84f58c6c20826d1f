"""The dashboard's figures for one store, or for every store at once (HQ).

Every figure is computed by the database (``Sum``/``Count``, ``TruncHour``/``TruncDate`` in
Asia/Shanghai), so the page costs the same number of queries whatever the number of orders:
eight for a store, seven for all stores (pinned in ``tests/console/test_dashboard.py``).

The last 30 days read the closed days up to ``SalesRollupState.complete_through`` from
``DailySales`` (kept by ``orders.sales_rollup``, the beat task every five minutes) and the days
after it, today at least, from the orders: one query for how far the roll-up has got, one UNION
for the days. Never run (no state row): every day from the orders. The figures are the same
either way, except that a refund of an order paid on a past day reaches that day at the next
run, at most five minutes later.

Definitions:

* **Sales of a day** are the orders *paid* that local day (``paid_at``, Asia/Shanghai), each
  counted at what was paid less what has been refunded of it so far (``paid_fen -
  refunded_fen``): a refund lowers the day, and the hour, in which its order was paid. An
  order counts once, in its channel, whatever its status now (a fully refunded order counts
  as an order with a net of zero).
* **Waiting to be fulfilled**: paid delivery orders the store ships itself (not handed to a
  partner: no ``order.routed`` event) and paid pickup orders not yet ready; **with a
  partner**: paid delivery orders a partner fulfils, not shipped yet; **pickups waiting**:
  ``ready_for_pickup``.
* **Outbox trouble**: deliveries ``failed`` (will retry) or ``dead`` of events about the
  store's orders (``aggregate_type`` ``order``, ``aggregate_id`` one of the store's order ids);
  for all stores, every failed or dead delivery, whatever it is about.
* **Low stock**: ``inventory.selectors.low_stock`` for a store (one query); not computed for
  all stores, where it would cost a query per store.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    When,
)
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, TruncDate, TruncHour
from django.utils import timezone
from django.utils.timesince import timesince

from inventory.selectors import ReorderSuggestion, low_stock
from orders.models import (
    Channel,
    DailySales,
    Fulfilment,
    Order,
    OrderEvent,
    OrderStatus,
    SalesRollupState,
)
from orders.sales_rollup import HISTORY_DAYS, SHANGHAI, local_day_start
from retail.models import OutboxDelivery, Store

LIST_LIMIT = 8
ROUTED_EVENT = "order.routed"

S = OrderStatus
TROUBLE = (OutboxDelivery.State.FAILED, OutboxDelivery.State.DEAD)


@dataclass
class ChannelSales:
    channel: str
    label: str
    orders: int = 0
    paid_fen: int = 0
    refunded_fen: int = 0

    @property
    def net_fen(self) -> int:
        return self.paid_fen - self.refunded_fen


@dataclass
class StoreRow:
    """One store's line in HQ's all-stores table."""

    store_id: int
    code: str
    name: str
    orders: int = 0
    paid_fen: int = 0
    refunded_fen: int = 0
    to_ship: int = 0
    with_partner: int = 0
    to_prepare: int = 0
    ready: int = 0
    url: str = ""  # the store's dashboard, set by the view

    @property
    def net_fen(self) -> int:
        return self.paid_fen - self.refunded_fen

    @property
    def waiting(self) -> int:
        return self.to_ship + self.to_prepare


@dataclass
class Queue:
    to_ship: int = 0
    with_partner: int = 0
    to_prepare: int = 0
    ready: int = 0

    @property
    def waiting(self) -> int:
        """What the store itself has to do before the shopper gets the goods."""
        return self.to_ship + self.to_prepare


@dataclass
class Dashboard:
    store: Store | None
    today: date
    channels: list[ChannelSales]
    hourly_net_fen: list[int]
    days: list[tuple[date, int, int]]  # (day, orders, net fen), oldest first, today last
    queue: Queue
    waiting_orders: list[Order]
    low_stock: list[ReorderSuggestion] | None
    outbox_failed: int
    outbox_dead: int
    outbox_recent: list[OutboxDelivery]
    stores: list[StoreRow] = field(default_factory=list)

    @property
    def orders(self) -> int:
        return sum(row.orders for row in self.channels)

    @property
    def paid_fen(self) -> int:
        return sum(row.paid_fen for row in self.channels)

    @property
    def refunded_fen(self) -> int:
        return sum(row.refunded_fen for row in self.channels)

    @property
    def net_fen(self) -> int:
        return self.paid_fen - self.refunded_fen

    def chart_data(self) -> dict:
        """What the page's script draws, passed with ``json_script``: fen, not yuan."""
        return {
            "hours": [f"{hour:02d}" for hour in range(24)],
            "hourly": self.hourly_net_fen,
            "channels": [row.label for row in self.channels],
            "channel_net": [row.net_fen for row in self.channels],
            "days": [day.strftime("%m-%d") for day, _orders, _net in self.days],
            "daily": [net for _day, _orders, net in self.days],
            "daily_orders": [orders for _day, orders, _net in self.days],
        }


def _rolled_up_through() -> date | None:
    """The last day ``orders.sales_rollup`` has completed; None if it never ran."""
    return (
        SalesRollupState.objects.filter(pk=SalesRollupState.SINGLETON)
        .values_list("complete_through", flat=True)
        .first()
    )


def _store_orders(store: Store | None) -> QuerySet[Order]:
    orders = Order.objects.order_by()
    return orders if store is None else orders.filter(store=store)


def _routed() -> Exists:
    return Exists(OrderEvent.objects.filter(order=OuterRef("pk"), kind=ROUTED_EVENT))


def _queue_aggregates() -> dict:
    paid_delivery = Q(status=S.PAID, fulfilment=Fulfilment.DELIVERY)
    return {
        "to_ship": Count("pk", filter=paid_delivery & Q(routed=False)),
        "with_partner": Count("pk", filter=paid_delivery & Q(routed=True)),
        "to_prepare": Count("pk", filter=Q(status=S.PAID, fulfilment=Fulfilment.PICKUP)),
        "ready": Count("pk", filter=Q(status=S.READY_FOR_PICKUP)),
    }


def _waiting_filter() -> Q:
    return Q(status=S.PAID, fulfilment__in=(Fulfilment.DELIVERY, Fulfilment.PICKUP)) | Q(
        status=S.READY_FOR_PICKUP
    )


def dashboard_data(
    *, store: Store | None, now: datetime | None = None, listed_stores: Iterable[Store] = ()
) -> Dashboard:
    """The dashboard of ``store`` (None: every store) as of ``now``. For all stores, each of
    ``listed_stores`` gets a line in the stores table even on a day without orders."""
    now = now or timezone.now()
    today = now.astimezone(SHANGHAI).date()
    day_start = local_day_start(today)
    day_end = local_day_start(today + timedelta(days=1))
    orders = _store_orders(store)

    # 1. Today by hour and channel: the cards, the channel table and both of today's charts.
    channels = {value: ChannelSales(value, str(label)) for value, label in Channel.choices}
    hourly = [0] * 24
    today_rows = (
        orders.filter(paid_at__gte=day_start, paid_at__lt=day_end)
        .annotate(hour=TruncHour("paid_at", tzinfo=SHANGHAI))
        .values("hour", "channel")
        .annotate(orders=Count("pk"), paid=Sum("paid_fen"), refunded=Sum("refunded_fen"))
    )
    for row in today_rows:
        sales = channels.setdefault(row["channel"], ChannelSales(row["channel"], row["channel"]))
        sales.orders += row["orders"]
        sales.paid_fen += row["paid"]
        sales.refunded_fen += row["refunded"]
        hourly[row["hour"].astimezone(SHANGHAI).hour] += row["paid"] - row["refunded"]

    # 2. The last HISTORY_DAYS local days, today included: the closed days rolled up
    # (``DailySales``) from there, the others (today at least) from the orders, in one query.
    history_first = today - timedelta(days=HISTORY_DAYS - 1)
    live_from = history_first
    rolled_through = _rolled_up_through()
    parts = []
    if rolled_through is not None:
        rolled_through = min(rolled_through, today - timedelta(days=1))
        live_from = max(history_first, rolled_through + timedelta(days=1))
        if rolled_through >= history_first:
            rolled = DailySales.objects.order_by().filter(
                day__gte=history_first, day__lte=rolled_through
            )
            parts.append(
                (rolled if store is None else rolled.filter(store=store))
                .values("day")
                .annotate(orders=Sum("orders"), net=Sum(F("paid_fen") - F("refunded_fen")))
            )
    parts.append(
        orders.filter(paid_at__gte=local_day_start(live_from), paid_at__lt=day_end)
        .annotate(day=TruncDate("paid_at", tzinfo=SHANGHAI))
        .values("day")
        .annotate(orders=Count("pk"), net=Sum(F("paid_fen") - F("refunded_fen")))
    )
    by_day = {
        row["day"]: (row["orders"], row["net"])
        for row in (parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0])
    }
    days = []
    for offset in range(HISTORY_DAYS - 1, -1, -1):
        day = today - timedelta(days=offset)
        day_orders, net = by_day.get(day, (0, 0))
        days.append((day, day_orders, net))

    # 3. What waits: counts (per store for HQ's table), then the oldest waiting orders.
    waiting = orders.filter(_waiting_filter()).alias(routed=_routed())
    stores: list[StoreRow] = []
    if store is None:
        queue = Queue()
        paid_today = Q(paid_at__gte=day_start, paid_at__lt=day_end)
        rows = (
            Order.objects.order_by()
            .filter(paid_today | _waiting_filter())
            .alias(routed=_routed())
            .values("store_id", "store__code", "store__name")
            .annotate(
                orders=Count("pk", filter=paid_today),
                paid_fen=Sum("paid_fen", filter=paid_today, default=0),
                refunded_fen=Sum("refunded_fen", filter=paid_today, default=0),
                **_queue_aggregates(),
            )
        )
        lines = {
            one.pk: StoreRow(store_id=one.pk, code=one.code, name=one.name) for one in listed_stores
        }
        for row in rows:
            lines[row["store_id"]] = StoreRow(
                store_id=row["store_id"],
                code=row["store__code"],
                name=row["store__name"],
                **{key: row[key] for key in ("orders", "paid_fen", "refunded_fen")},
                **{key: row[key] for key in ("to_ship", "with_partner", "to_prepare", "ready")},
            )
        stores = sorted(lines.values(), key=lambda line: line.code)
        for line in stores:
            queue.to_ship += line.to_ship
            queue.with_partner += line.with_partner
            queue.to_prepare += line.to_prepare
            queue.ready += line.ready
    else:
        queue = Queue(**waiting.aggregate(**_queue_aggregates()))
    waiting_orders = list(
        waiting.filter(routed=False).select_related("store").order_by("paid_at", "pk")[:LIST_LIMIT]
    )
    for order in waiting_orders:
        # "2 hours", "3 days": the largest unit is enough at a glance.
        order.waited = timesince(order.paid_at, now, depth=1)

    # 4. Stock to reorder (one query), for a store only.
    suggestions = None if store is None else low_stock(store=store, now=now)

    # 5. Outbox deliveries in trouble: how many, then the latest few.
    deliveries = OutboxDelivery.objects.order_by().filter(state__in=TROUBLE)
    if store is not None:
        # From the few troubled deliveries to their events (by key) and on to the order (by
        # key), rather than from the store's every order id as text to the events: the order's
        # id is the event's aggregate_id read as a number, for order events only (CASE keeps
        # the cast away from other aggregates' ids).
        order_id = Case(
            When(
                event__aggregate_type="order",
                then=Cast("event__aggregate_id", BigIntegerField()),
            ),
            default=None,
        )
        deliveries = deliveries.alias(order_id=order_id).filter(
            Exists(Order.objects.filter(pk=OuterRef("order_id"), store=store))
        )
    trouble = dict(deliveries.values_list("state").annotate(count=Count("pk")))
    recent = list(
        deliveries.select_related("event")
        .defer("event__payload")
        # The order number from the event's snapshot (KT() cannot follow the foreign key).
        .annotate(order_number=KeyTextTransform("number", KeyTransform("order", "event__payload")))
        .order_by("-updated_at", "-pk")[:LIST_LIMIT]
    )

    return Dashboard(
        store=store,
        today=today,
        channels=list(channels.values()),
        hourly_net_fen=hourly,
        days=days,
        queue=queue,
        waiting_orders=waiting_orders,
        low_stock=suggestions,
        outbox_failed=trouble.get(OutboxDelivery.State.FAILED, 0),
        outbox_dead=trouble.get(OutboxDelivery.State.DEAD, 0),
        outbox_recent=recent,
        stores=stores,
    )
