"""The till's submission arriving many times at once, on PostgreSQL, each copy a request of
its own on a connection of its own (a double click, a scanner's repeated Enter, a browser
that resends): one sale, one payment, one ledger movement per line."""

import pytest
from django.db import connection
from django.test import Client

from inventory.models import StockMovement
from members.models import Member, PointsEntry
from orders.models import Order, OrderEvent, Payment
from tests.console.test_pos import CASH, REF, WECHAT, member_sale, receipt_location, stock
from tests.inventory.test_concurrency import WON, race, tally

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: set DATABASE_URL (.ci/run does)",
    ),
    pytest.mark.django_db(transaction=True),
]


def copies(user, path: str, fields: dict, count: int):
    """``count`` requests posting the same fields, each from its own client signed in as
    ``user`` (one session, as the tabs of one browser)."""
    signed_in = Client()
    signed_in.force_login(user)
    session = signed_in.cookies

    def post():
        client = Client(HTTP_ACCEPT_LANGUAGE="en")
        client.cookies = session
        response = client.post(path, fields)
        return response.status_code, response.get("Location")

    return [post] * count


def test_eight_copies_of_one_cash_sale_at_once_are_one_sale(
    clerk_a, store_a, pos_goods, pos_member
):
    rice, oil = pos_goods
    fields = member_sale(pos_member, store_a, tendered="120")

    outcomes = race(copies(clerk_a, CASH, fields, 8), workers=8)

    order = Order.objects.get()
    assert order.client_reference == REF
    assert tally(outcomes) == {WON: 8}
    assert {result for _kind, result in outcomes} == {(302, receipt_location(order))}
    assert (order.status, order.total_fen, order.paid_fen) == ("completed", 11686, 11686)
    assert Payment.objects.filter(status="succeeded").count() == Payment.objects.count() == 1
    assert sorted(
        StockMovement.objects.filter(reason="counter_sale").values_list(
            "stock_item__sku__code", "quantity"
        )
    ) == [("OIL-5L", -1), ("RICE-5KG", -2)]
    assert (stock(rice, store_a), stock(oil, store_a)) == ((18, 0), (19, 0))
    assert OrderEvent.objects.filter(kind="order.completed").count() == 1
    assert sorted(PointsEntry.objects.values_list("reason", "points")) == [
        ("adjust", 1000),
        ("earn", 140),
        ("redeem", -500),
    ]
    assert Member.objects.get(pk=pos_member.pk).points_balance == 640


def test_two_copies_of_one_payment_code_charge_it_once(
    clerk_a, store_a, pos_goods, pos_member, pos_wechat_pay
):
    """The shopper confirms on her phone after three queries; the second copy finds the first
    charging the code and answers with its outcome."""
    rice, oil = pos_goods
    code = pos_wechat_pay.code(outcome="userpaying", paid_after_queries=3)
    fields = member_sale(pos_member, store_a, auth_code=code)

    outcomes = race(copies(clerk_a, WECHAT, fields, 2), workers=2)

    order = Order.objects.get()
    assert tally(outcomes) == {WON: 2}
    assert {result for _kind, result in outcomes} == {(302, receipt_location(order))}
    assert order.status == "completed"
    payment = Payment.objects.get()
    assert (payment.provider, payment.status) == ("wechat_pay", "succeeded")
    assert pos_wechat_pay.codepays() == 1
    assert StockMovement.objects.filter(reason="counter_sale").count() == 2
    assert (stock(rice, store_a), stock(oil, store_a)) == ((18, 0), (19, 0))
