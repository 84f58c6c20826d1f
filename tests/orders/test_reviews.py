"""Reviews of completed orders, once per order by its member, and the store figures they feed:
average rating, number of reviews, average order value."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from orders.models import Channel, Fulfilment, Order, Review
from orders.payments import counter_sale_pay_cash
from orders.reviews import order_review_create
from orders.selectors import StoreRating, store_ratings
from retail.errors import BusinessError
from tests import factories

pytestmark = pytest.mark.django_db

S = Order.Status


@pytest.fixture
def completed(shop, member):
    """A completed mini-shop order of the member at store A."""
    return factories.OrderFactory(
        store=shop, member=member, status=S.COMPLETED, paid_fen=1000, total_fen=1000
    )


def refused(call) -> BusinessError:
    with pytest.raises(BusinessError) as caught:
        call()
    return caught.value


def reviews() -> list[tuple]:
    return list(
        Review.objects.order_by("pk").values_list("order_id", "member_id", "rating", "text")
    )


def test_the_member_reviews_her_completed_order(completed, member, shop):
    review = order_review_create(order=completed, member=member, rating=4, text="  送货很快  ")

    review.refresh_from_db()
    assert (review.order_id, review.store_id, review.member_id, review.rating, review.text) == (
        completed.pk,
        shop.pk,
        member.pk,
        4,
        "送货很快",
    )


def test_a_counter_sale_completed_at_the_till_can_be_reviewed(place, water, member, clerk_a):
    order = place(
        (water, 2),
        channel=Channel.COUNTER,
        fulfilment=Fulfilment.COUNTER,
        member=member,
        actor=clerk_a,
    )
    counter_sale_pay_cash(order=order, tendered_fen=400, actor=clerk_a)

    order_review_create(order=order.pk, member=member, rating=5)

    assert reviews() == [(order.pk, member.pk, 5, "")]


@pytest.mark.parametrize(
    "status", [S.PENDING_PAYMENT, S.PAID, S.READY_FOR_PICKUP, S.SHIPPED, S.DELIVERED, S.CANCELLED]
)
def test_an_order_not_completed_cannot_be_reviewed(shop, member, status):
    order = factories.OrderFactory(store=shop, member=member, status=status)

    error = refused(lambda: order_review_create(order=order, member=member, rating=5))

    assert (error.code, error.status_code, error.fields) == (
        "review_not_allowed",
        409,
        {"order": [order.number]},
    )
    assert reviews() == []


def test_someone_elses_order_cannot_be_reviewed(completed):
    stranger = factories.MemberFactory()

    error = refused(lambda: order_review_create(order=completed, member=stranger, rating=1))

    assert error.code == "review_not_allowed"
    assert reviews() == []


def test_an_order_without_a_member_cannot_be_reviewed(shop, member):
    order = factories.OrderFactory(store=shop, status=S.COMPLETED)

    assert refused(lambda: order_review_create(order=order, member=member, rating=3)).code == (
        "review_not_allowed"
    )


def test_an_order_is_reviewed_once(completed, member):
    order_review_create(order=completed, member=member, rating=2, text="一般")

    error = refused(lambda: order_review_create(order=completed, member=member, rating=5))

    assert (error.code, error.status_code) == ("review_exists", 409)
    assert reviews() == [(completed.pk, member.pk, 2, "一般")]


@pytest.mark.parametrize(
    ("rating", "text", "fields"),
    [
        (0, "", ["rating"]),
        (6, "", ["rating"]),
        ("5", "", ["rating"]),
        (True, "", ["rating"]),
        (5, "好" * 501, ["text"]),
        (9, "好" * 501, ["rating", "text"]),
    ],
)
def test_a_rating_outside_one_to_five_or_a_long_text_is_refused(
    completed, member, rating, text, fields
):
    error = refused(
        lambda: order_review_create(order=completed, member=member, rating=rating, text=text)
    )

    assert (error.code, error.status_code, sorted(error.fields)) == (
        "validation_error",
        400,
        fields,
    )
    assert reviews() == []


def test_five_hundred_characters_are_enough(completed, member):
    order_review_create(order=completed, member=member, rating=5, text="好" * 500)

    assert len(Review.objects.get().text) == 500


def test_the_database_refuses_a_rating_outside_one_to_five(completed, member, shop):
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.create(order=completed, store=shop, member=member, rating=6)


# --- Store figures --------------------------------------------------------------------------


def _completed(store, member, paid_fen: int, refunded_fen: int = 0) -> Order:
    return factories.OrderFactory(
        store=store,
        member=member,
        status=S.COMPLETED,
        subtotal_fen=paid_fen,
        total_fen=paid_fen,
        paid_fen=paid_fen,
        refunded_fen=refunded_fen,
    )


def test_store_ratings_average_the_reviews_and_the_completed_orders(
    shop, store_b, member, django_assert_num_queries
):
    for rating, paid, refunded in [(5, 1000, 0), (4, 2599, 100), (4, 3000, 0)]:
        order = _completed(shop, member, paid, refunded)
        order_review_create(order=order, member=member, rating=rating)
    _completed(shop, member, 2000)  # completed, not reviewed: counts for the order value
    factories.OrderFactory(store=shop, member=member, status=S.PAID, paid_fen=1000)
    factories.OrderFactory(store=shop, member=member, status=S.CANCELLED)
    quiet = factories.StoreFactory()
    order_review_create(order=_completed(store_b, member, 999), member=member, rating=1)

    with django_assert_num_queries(2):
        ratings = store_ratings(store_ids=[shop.pk, store_b.pk, quiet.pk])

    # 13 / 3 = 4.33 stars; (1000 + 2499 + 3000 + 2000) / 4 = 2124.75 fen.
    assert ratings == {
        shop.pk: StoreRating(Decimal("4.3"), 3, 2125),
        store_b.pk: StoreRating(Decimal("1.0"), 1, 999),
        quiet.pk: StoreRating(None, 0, None),
    }


def test_store_ratings_round_half_up(shop, member):
    for rating, paid in [(5, 1000), (4, 1001), (4, 1000), (4, 1000)]:
        order_review_create(order=_completed(shop, member, paid), member=member, rating=rating)

    # 17 / 4 = 4.25 stars; 4001 / 4 = 1000.25 fen. And 1001 / 2 = 500.5 fen below.
    assert store_ratings(store_ids=[shop.pk]) == {shop.pk: StoreRating(Decimal("4.3"), 4, 1000)}
    other = factories.StoreFactory()
    _completed(other, member, 1000)
    _completed(other, member, 1)
    assert store_ratings(store_ids=[other.pk])[other.pk].avg_order_value_fen == 501


def test_store_ratings_of_no_store_ask_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert store_ratings(store_ids=[]) == {}
