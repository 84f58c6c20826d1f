"""Reads of orders for staff, narrowed to the stores each staff member works in.

An order of a store the user does not belong to does not exist for her: the lookups here raise
``Http404`` for it exactly as for an unknown id.
"""

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from orders.models import (
    AfterSale,
    AfterSaleLine,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    Refund,
    Shipment,
)
from retail.access import scope_to_stores
from retail.models import OutboxDelivery

AnyUser = User | AnonymousUser


def order_list(*, user: AnyUser) -> QuerySet[Order]:
    """The user's stores' orders (every order for HQ), with store and member for the list."""
    return scope_to_stores(Order.objects.select_related("store", "member"), user)


def order_detail(*, user: AnyUser, order_id: int) -> Order:
    """One order with everything its page shows: lines, timeline, payments, refunds,
    after-sales, shipments, and ``outbox_deliveries`` (where its events went outside).

    The number of queries is fixed, however many lines or events the order has."""
    order = get_object_or_404(
        order_list(user=user)
        .select_related("created_by")
        .prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.order_by("pk")),
            Prefetch("events", queryset=OrderEvent.objects.select_related("actor").order_by("pk")),
            Prefetch("payments", queryset=Payment.objects.order_by("pk")),
            Prefetch(
                "refunds", queryset=Refund.objects.select_related("created_by").order_by("pk")
            ),
            Prefetch(
                "after_sales",
                queryset=AfterSale.objects.select_related("decided_by")
                .prefetch_related(
                    Prefetch(
                        "lines",
                        queryset=AfterSaleLine.objects.select_related("order_line").order_by("pk"),
                    )
                )
                .order_by("pk"),
            ),
            Prefetch(
                "shipments",
                queryset=Shipment.objects.select_related("created_by")
                .prefetch_related(
                    Prefetch("lines", queryset=OrderLine.objects.only("pk", "line_key"))
                )
                .order_by("shipped_at", "pk"),
            ),
        ),
        pk=order_id,
    )
    order.outbox_deliveries = list(order_outbox_deliveries(order_id=order.pk))
    return order


def order_outbox_deliveries(*, order_id: int) -> QuerySet[OutboxDelivery]:
    """Where the order's events went: one row per event and subscriber, oldest event first."""
    return (
        OutboxDelivery.objects.filter(
            event__aggregate_type="order", event__aggregate_id=str(order_id)
        )
        .select_related("event")
        .order_by("event_id", "subscriber")
    )


def order_in_scope(*, user: AnyUser, order_id: int) -> Order:
    """The bare order row, for an action to hand to its service (which locks it again)."""
    return get_object_or_404(scope_to_stores(Order.objects.all(), user), pk=order_id)


def after_sale_in_scope(*, user: AnyUser, after_sale_id: int) -> AfterSale:
    return get_object_or_404(
        scope_to_stores(AfterSale.objects.all(), user, store_field="order__store"),
        pk=after_sale_id,
    )
