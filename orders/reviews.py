"""Reviews: after an order is completed, its member rates it (1 to 5 stars, a short text),
once. Each store's average rating and average order value (``orders.selectors.store_ratings``)
feed the store cards of the mini-shop."""

from django.db import transaction
from django.utils.translation import gettext as _

from members.models import Member
from orders.models import Order, Review
from orders.transitions import order_locked
from retail.errors import BusinessError

REVIEW_TEXT_MAX = Review._meta.get_field("text").max_length


def order_review_create(
    *, order: Order | int, member: Member, rating: int, text: str = ""
) -> Review:
    """The member's review of her completed order. Refused with ``review_not_allowed`` for an
    order that is not hers or not completed, ``review_exists`` for a second review, and
    ``validation_error`` (400) for a rating outside 1-5 or a text over 500 characters."""
    text = (text or "").strip()
    fields: dict[str, list[str]] = {}
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        fields["rating"] = [_("Give one to five stars.")]
    if len(text) > REVIEW_TEXT_MAX:
        fields["text"] = [_("A review has at most 500 characters.")]
    if fields:
        raise BusinessError(
            "validation_error", _("Some fields are not valid."), fields=fields, status_code=400
        )
    with transaction.atomic():
        # The order's lock makes a second review of it wait for the first and see it.
        locked = order_locked(order)
        if locked.member_id != member.pk or locked.status != Order.Status.COMPLETED:
            raise BusinessError(
                "review_not_allowed",
                _("Only the member who placed an order can review it, once it is completed."),
                fields={"order": [locked.number]},
            )
        if Review.objects.filter(order=locked).exists():
            raise _review_exists(locked)
        return Review.objects.create(
            order=locked, store_id=locked.store_id, member=member, rating=rating, text=text
        )


def _review_exists(order: Order) -> BusinessError:
    return BusinessError(
        "review_exists",
        _("This order has been reviewed already."),
        fields={"order": [order.number]},
    )
