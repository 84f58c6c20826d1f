"""A sales channel's create sent many times at once with one Idempotency-Key, over HTTP, on
PostgreSQL: threads with connections of their own race through the partner API, and one order
comes of it, paid once, its stock reserved once."""

import pytest
from django.db import connection
from django.test import Client

from inventory.models import Reservation, StockItem
from orders.models import Order, OrderEvent, Payment
from partners import services
from partners.models import PartnerOrder
from tests.inventory.test_concurrency import WON, race, tally
from tests.partners.conftest import ADDRESS

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: set DATABASE_URL (.ci/run does)",
    ),
    pytest.mark.django_db(transaction=True),
]

BODY = {
    "store": "WH01",
    "fulfilment": "delivery",
    "lines": [{"sku": "RICE-5KG", "quantity": 2}, {"sku": "OIL-5L", "quantity": 1}],
    "address": ADDRESS,
}


def test_one_idempotency_key_sent_from_many_threads_makes_one_order(channel, goods):
    raw, _key = services.partner_api_key_issue(partner=channel)

    def create():
        response = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").post(
            "/api/partner/v1/orders/",
            BODY,
            content_type="application/json",
            headers={"Idempotency-Key": "mt-race-000001"},
        )
        return response.status_code, response.json().get("number")

    outcomes = race([create] * 8, workers=8)

    assert tally(outcomes) == {WON: 8}
    answers = [answer for _kind, answer in outcomes]
    order = Order.objects.get()
    assert sorted(status for status, _number in answers) == [200] * 7 + [201]
    assert {number for _status, number in answers} == {order.number}
    assert (order.status, order.paid_fen, order.total_fen) == ("paid", 13880, 13880)
    link = PartnerOrder.objects.get()
    assert (link.partner, link.role, link.idempotency_key) == (channel, "sell", "mt-race-000001")
    payment = Payment.objects.get()
    assert (payment.provider, payment.status, payment.amount_fen) == ("partner", "succeeded", 13880)
    assert list(
        StockItem.objects.filter(store__code="WH01")
        .order_by("sku__code")
        .values_list("sku__code", "on_hand", "reserved")
    ) == [("OIL-5L", 20, 1), ("RICE-5KG", 20, 2)]
    assert sorted(Reservation.objects.values_list("quantity", "status")) == [
        (1, "committed"),
        (2, "committed"),
    ]
    assert list(order.events.values_list("kind", flat=True)) == ["order.created", "order.paid"]
    assert OrderEvent.objects.count() == 2
