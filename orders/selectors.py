"""Reads of orders for staff, narrowed to the stores each staff member works in.

An order of a store the user does not belong to does not exist for her: the lookups here raise
``Http404`` for it exactly as for an unknown id.
"""

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, F, Prefetch, QuerySet, Sum
from django.shortcuts import get_object_or_404

from orders.models import (
    AfterSale,
    AfterSaleLine,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    Refund,
    Review,
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


# --- Store ratings: the figures of the mini-shop's store cards -----------------------------------


class StoreRating(NamedTuple):
    # One decimal, rounded half up; None without reviews.
    avg_rating: Decimal | None
    review_count: int
    # What completed orders came to after refunds, on average, in whole fen rounded half up;
    # None without completed orders.
    avg_order_value_fen: int | None


def store_ratings(*, store_ids: Iterable[int]) -> dict[int, StoreRating]:
    """Each store's average rating, number of reviews and average order value, for every id
    asked (zeros and Nones for a store without any). Two queries, however many stores."""
    ids = list(store_ids)
    reviews = {
        row["store_id"]: (row["stars"], row["count"])
        for row in Review.objects.filter(store_id__in=ids)
        .values("store_id")
        .annotate(stars=Sum("rating"), count=Count("pk"))
        .order_by()
    }
    orders = {
        row["store_id"]: (row["value"], row["count"])
        for row in Order.objects.filter(store_id__in=ids, status=Order.Status.COMPLETED)
        .values("store_id")
        .annotate(value=Sum(F("paid_fen") - F("refunded_fen")), count=Count("pk"))
        .order_by()
    }
    ratings = {}
    for store_id in ids:
        stars, reviewed = reviews.get(store_id, (0, 0))
        value, completed = orders.get(store_id, (0, 0))
        ratings[store_id] = StoreRating(
            avg_rating=(
                (Decimal(stars) / reviewed).quantize(Decimal("0.1"), ROUND_HALF_UP)
                if reviewed
                else None
            ),
            review_count=reviewed,
            avg_order_value_fen=(2 * value + completed) // (2 * completed) if completed else None,
        )
    return ratings
