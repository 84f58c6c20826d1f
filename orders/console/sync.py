"""Console: sync health. What the outbox sent (or failed to send) to WeChat and partners about
the store's orders: deliveries counted by subscriber and state, the failing and dead ones with
their last error, each delivery with its attempts, and "retry now" for a failed or dead one.

A store's page shows the deliveries of events about its orders (``aggregate_type`` ``order``,
``aggregate_id`` one of its orders' ids); HQ's all-stores page shows every delivery, other
aggregates included. Everyone who sees the store's orders may look; retrying is for the
store's managers and HQ (``may_retry``). The list costs the same number of queries whatever
the number of deliveries."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import CharField, Count, QuerySet
from django.db.models.functions import Cast
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from orders.models import Order
from retail.access import Role, has_store_perm, is_hq, staff_roles
from retail.console import console_view
from retail.console.context import console_frame
from retail.errors import BusinessError
from retail.models import OutboxDelivery, Store
from retail.outbox import outbox_delivery_retry

PERMISSION = "orders.view_order"
# Retrying sends something to the outside world again: managers of the store and HQ, who also
# hold the orders' change permission there. Clerks see the page but not the button.
RETRY_PERMISSION = "orders.change_order"
LIST_LIMIT = 100
ATTEMPTS_LIMIT = 100

State = OutboxDelivery.State
FAILING = (State.FAILED, State.DEAD)
STATES = list(State)


def may_retry(user, store: Store | None) -> bool:
    """Whether ``user`` may send a delivery of ``store`` (None: any store, HQ's view) again:
    HQ, or a manager of that very store holding ``RETRY_PERMISSION`` there."""
    if store is None:
        return is_hq(user) and user.has_perm(RETRY_PERMISSION)
    if not has_store_perm(user, RETRY_PERMISSION, store.pk):
        return False
    return is_hq(user) or any(
        role.role == Role.STORE_MANAGER and role.store_id == store.pk for role in staff_roles(user)
    )


def store_deliveries(store: Store | None) -> QuerySet[OutboxDelivery]:
    """Deliveries of events about ``store``'s orders; every delivery for None (HQ)."""
    deliveries = OutboxDelivery.objects.all()
    if store is None:
        return deliveries
    order_ids = (
        Order.objects.filter(store=store)
        .annotate(aggregate_key=Cast("pk", output_field=CharField()))
        .values("aggregate_key")
    )
    return deliveries.filter(event__aggregate_type="order", event__aggregate_id__in=order_ids)


def _counts(deliveries: QuerySet[OutboxDelivery]) -> tuple[list[dict], dict[str, int]]:
    """One row per subscriber: its deliveries by state (in the states' order) and in all."""
    table: dict[str, dict[str, int]] = {}
    for subscriber, state, count in (
        deliveries.order_by()
        .values("subscriber", "state")
        .annotate(count=Count("pk"))
        .values_list("subscriber", "state", "count")
    ):
        table.setdefault(subscriber, {})[state] = count
    rows = [
        {
            "subscriber": subscriber,
            "states": [(state, by_state.get(state, 0)) for state in STATES],
            "total": sum(by_state.values()),
        }
        for subscriber, by_state in sorted(table.items())
    ]
    totals = {
        state.value: sum(row["states"][i][1] for row in rows) for i, state in enumerate(STATES)
    }
    return rows, totals


def _order_numbers(deliveries: list[OutboxDelivery]) -> None:
    """Give each delivery of an order event ``console_order`` = (number, store code): one query."""
    ids = {
        int(delivery.event.aggregate_id)
        for delivery in deliveries
        if delivery.event.aggregate_type == "order" and delivery.event.aggregate_id.isdigit()
    }
    orders = {
        pk: (number, code)
        for pk, number, code in Order.objects.filter(pk__in=ids).values_list(
            "pk", "number", "store__code"
        )
    }
    for delivery in deliveries:
        event = delivery.event
        key = int(event.aggregate_id) if event.aggregate_id.isdigit() else None
        delivery.console_order = orders.get(key) if event.aggregate_type == "order" else None


@console_view(PERMISSION, all_stores=True)
def page(request: HttpRequest, store_code: str) -> HttpResponse:
    store = request.console_store
    deliveries = store_deliveries(store)
    rows, totals = _counts(deliveries)

    state = request.GET.get("state", "")
    subscriber = request.GET.get("subscriber", "")
    listed = deliveries.filter(state=state) if state in State.values else None
    if listed is None:
        state = ""
        listed = deliveries.filter(state__in=FAILING)
    if subscriber:
        listed = listed.filter(subscriber=subscriber)
    shown = list(listed.select_related("event").order_by("-pk")[: LIST_LIMIT + 1])
    more = len(shown) > LIST_LIMIT
    shown = shown[:LIST_LIMIT]
    _order_numbers(shown)

    context = console_frame(request, section="sync")
    context.update(
        {
            "counts": rows,
            "totals": [(s, totals[s.value]) for s in STATES],
            "total": sum(totals.values()),
            "failing_count": totals[State.FAILED] + totals[State.DEAD],
            "states": STATES,
            "state": state,
            "state_label": State(state).label if state else "",
            "store_code": store_code,
            "subscriber": subscriber,
            "deliveries": shown,
            "more": more,
            "list_limit": LIST_LIMIT,
            "may_retry": may_retry(request.user, store),
            "retryable": FAILING,
        }
    )
    return render(request, "console/sync.html", context)


def _delivery_of_store(request: HttpRequest, pk: int) -> OutboxDelivery:
    try:
        return (
            store_deliveries(request.console_store).select_related("event", "retried_by").get(pk=pk)
        )
    except OutboxDelivery.DoesNotExist:
        raise Http404 from None


@console_view(PERMISSION, all_stores=True)
def delivery(request: HttpRequest, store_code: str, pk: int) -> HttpResponse:
    found = _delivery_of_store(request, pk)
    _order_numbers([found])
    attempts = list(found.attempt_log.order_by("-number")[:ATTEMPTS_LIMIT])
    context = console_frame(request, section="sync")
    context.update(
        {
            "delivery": found,
            "store_code": store_code,
            "attempts": attempts,
            "attempts_limit": ATTEMPTS_LIMIT,
            "may_retry": may_retry(request.user, request.console_store),
            "retryable": found.state in FAILING,
        }
    )
    return render(request, "console/sync_delivery.html", context)


@console_view(RETRY_PERMISSION, all_stores=True)
@require_POST
def retry(request: HttpRequest, store_code: str, pk: int) -> HttpResponse:
    if not may_retry(request.user, request.console_store):
        raise PermissionDenied
    found = _delivery_of_store(request, pk)
    try:
        outbox_delivery_retry(delivery=found, actor=request.user)
    except BusinessError as refused:
        messages.error(request, refused.message)
    else:
        messages.success(
            request,
            _("Delivery %(id)s to %(subscriber)s will be sent again now.")
            % {"id": found.pk, "subscriber": found.subscriber},
        )
    return redirect(
        reverse("console:sync_delivery", kwargs={"store_code": store_code, "pk": found.pk})
    )


urlpatterns = [
    path("sync/", page, name="sync"),
    path("sync/<int:pk>/", delivery, name="sync_delivery"),
    path("sync/<int:pk>/retry/", retry, name="sync_retry"),
]
