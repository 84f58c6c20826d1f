"""Orders' part in merging and erasing members (``members.services.identity``): the merged member's
orders and reviews move to the survivor. Registered in ``OrdersConfig.ready``; members import
no orders code."""

from django.utils import timezone

from orders.models import Order, Review


def orders_member_move(*, source_id: int, target_id: int) -> int:
    return Order.objects.filter(member_id=source_id).update(
        member_id=target_id, updated_at=timezone.now()
    )


def reviews_member_move(*, source_id: int, target_id: int) -> int:
    return Review.objects.filter(member_id=source_id).update(member_id=target_id)


# What an address snapshot keeps after erasure: where the goods went, not to whom.
ANONYMOUS_ADDRESS_FIELDS = ("province", "city", "district")


def orders_member_erase(*, member_ids: list[int]) -> int:
    """The erased members' orders keep their numbers and amounts (the books need them); the
    recipient's name, mobile and street address leave the snapshots."""
    orders = list(
        Order.objects.filter(member_id__in=member_ids).exclude(address={}).only("pk", "address")
    )
    for order in orders:
        order.address = {
            key: order.address[key] for key in ANONYMOUS_ADDRESS_FIELDS if key in order.address
        }
    Order.objects.bulk_update(orders, ["address"], batch_size=500)
    return len(orders)
