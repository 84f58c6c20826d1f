"""Coupons, promotions and the stacking rule (being written)."""


def member_order_cancelled(*, member_id: int, order_reference: str) -> None:
    """An order was cancelled (unpaid, expired, or refunded in full before the goods left):
    its coupon and redeemed points come back."""
