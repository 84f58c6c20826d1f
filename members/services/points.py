"""Points, spend and tiers, referrals (being written)."""

from datetime import datetime


def member_order_paid(*, member_id: int, order_reference: str) -> None:
    """An order of the member was paid: credit her referrer on her first paid order."""


def member_order_completed(
    *, member_id: int, order_reference: str, amount_fen: int, at: datetime
) -> None:
    """An order was completed: record the spend, earn points, upgrade the tier at once."""


def member_order_refunded(
    *, member_id: int, order_reference: str, refunded_fen: int, paid_fen: int
) -> None:
    """Money went back for an order: take back the points it earned in proportion, and the spend."""
