"""The shopper's orders through the shop API: her list (every channel, cursor pages, a fixed
number of queries however many lines), one order's page with its timeline, shipments and
payments, and what she may do with it: cancel unpaid, confirm receipt, ask for after-sales,
review. Another shopper's order does not exist for her (404) and stays untouched; every
refusal leaves the order as it was."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from inventory.models import StockItem, StockMovement
from members.models import Coupon, PointsEntry
from members.services.coupons import coupon_claim
from members.services.points import points_apply
from orders.models import AfterSale, Channel, Fulfilment, Order, OrderEvent, Review
from orders.payments import refund_create
from orders.pricing import BasketLine
from orders.services import (
    checkout_place,
    order_cancel,
    order_mark_ready,
    pickup_handover,
    shipment_create,
)
from orders.transitions import Cause
from tests import factories
from tests.members.factories import CouponTemplateFactory

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)
S = Order.Status
ADDRESS = {
    "name": "林小美",
    "mobile": "13800138001",
    "province": "上海市",
    "city": "上海市",
    "district": "静安区",
    "detail": "愚园路168号5楼",
}


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def water(stocked):
    return stocked(name="矿泉水", price_fen=200, on_hand=50)


@pytest.fixture
def milk(stocked):
    return stocked(name="鲜牛奶", price_fen=1250, on_hand=20)


@pytest.fixture
def me(shop_api, lina):
    return shop_api(lina)


@pytest.fixture
def place(shop_store):
    """Place an order for a member at store A, as checkout does (pickup by default)."""
    counter = iter(range(1, 10_000))

    def _place(member, *lines, fulfilment=Fulfilment.PICKUP, channel=Channel.MINI_SHOP, **kwargs):
        if fulfilment == Fulfilment.DELIVERY:
            kwargs.setdefault("address", ADDRESS)
        return checkout_place(
            channel=channel,
            store=shop_store,
            fulfilment=fulfilment,
            lines=[BasketLine(sku.pk, quantity) for sku, quantity in lines],
            client_reference=f"ref-{next(counter)}",
            member=None if channel == Channel.COUNTER else member,
            **kwargs,
        )

    return _place


def error(response) -> tuple:
    body = response.json()["error"]
    return response.status_code, body["code"], body["fields"]


def books(order: Order) -> tuple:
    """Everything an action could change, to show that a refused one changed nothing."""
    order.refresh_from_db()
    return (
        order.status,
        order.paid_fen,
        order.refunded_fen,
        OrderEvent.objects.count(),
        AfterSale.objects.count(),
        Review.objects.count(),
        StockMovement.objects.count(),
        list(StockItem.objects.order_by("pk").values_list("on_hand", "reserved")),
        list(Coupon.objects.order_by("pk").values_list("status", flat=True)),
        PointsEntry.objects.count(),
    )


def at(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).isoformat()


# --- The list -----------------------------------------------------------------------------------


def test_the_list_shows_her_orders_newest_first_and_nobody_elses(
    me, lina, place, water, milk, shop_store, clock
):
    first = place(lina, (water, 2))
    clock.shift(timedelta(minutes=5))
    second = place(lina, (milk, 1), (water, 3))
    place(factories.MemberFactory(), (water, 1))

    response = me.get("orders/")

    assert response.status_code == 200
    body = response.json()
    assert (body["next"], body["previous"]) == (None, None)
    assert body["results"][1] == {
        "number": first.number,
        "status": "pending_payment",
        "status_label": "pending payment",
        "channel": "mini_shop",
        "fulfilment": "pickup",
        "store": {"id": shop_store.pk, "code": "SH001", "name": "静安寺店"},
        "units": 2,
        "total_fen": 400,
        "lines": [
            {
                "line_key": f"{first.number}-1",
                "sku_id": water.pk,
                "sku_code": water.code,
                "product_name": "矿泉水",
                "attributes": {"规格": "550ml"},
                "unit_price_fen": 200,
                "quantity": 2,
                "discount_fen": 0,
                "total_fen": 400,
                "shipped": False,
            }
        ],
        "created_at": at(T0),
        "expires_at": at(T0 + timedelta(minutes=30)),
        "can_cancel": True,
        "can_confirm_receipt": False,
        "can_review": False,
    }
    assert [(row["number"], row["units"], row["total_fen"]) for row in body["results"]] == [
        (second.number, 4, 1850),
        (first.number, 2, 400),
    ]


def test_counter_sales_of_the_member_are_in_her_list_too(me, lina, shop_store, water):
    counter = factories.OrderFactory(
        store=shop_store, member=lina, channel=Channel.COUNTER, fulfilment=Fulfilment.COUNTER
    )

    assert [row["number"] for row in me.get("orders/").json()["results"]] == [counter.number]


def test_the_list_pages_by_cursor(me, lina, place, water, clock):
    numbers = []
    for _minute in range(5):
        numbers.append(place(lina, (water, 1)).number)
        clock.shift(timedelta(minutes=1))

    page_one = me.get("orders/", {"page_size": 2}).json()
    page_two = me.get(page_one["next"].split("/api/shop/v1/")[1]).json()

    newest_first = numbers[::-1]
    assert [row["number"] for row in page_one["results"]] == newest_first[:2]
    assert [row["number"] for row in page_two["results"]] == newest_first[2:4]


def test_the_list_filters_by_status(me, lina, place, water, pay_order):
    unpaid = place(lina, (water, 1))
    paid = pay_order(place(lina, (water, 2)))
    cancelled = order_cancel(order=place(lina, (water, 3)), cause=Cause.SHOPPER)

    only_paid = me.get("orders/", {"status": "paid"}).json()["results"]
    two = me.get("orders/?status=paid&status=cancelled").json()["results"]
    bad = me.get("orders/", {"status": "lost"})

    assert [row["number"] for row in only_paid] == [paid.number]
    assert {row["number"] for row in two} == {paid.number, cancelled.number}
    assert unpaid.number not in {row["number"] for row in two}
    assert error(bad)[:2] == (400, "validation_error")


def test_a_page_of_orders_costs_the_same_queries_however_many_lines(
    me, lina, place, stocked, water, django_assert_num_queries
):
    place(lina, (water, 1))
    # The token, the page of orders with store and review, their lines.
    with django_assert_num_queries(3):
        assert len(me.get("orders/").json()["results"]) == 1
    skus = [stocked(name=f"商品{n}", price_fen=100 + n, on_hand=10) for n in range(6)]
    for _order in range(4):
        place(lina, *[(sku, 1) for sku in skus])

    with django_assert_num_queries(3):
        page = me.get("orders/").json()["results"]
    assert [len(row["lines"]) for row in page] == [6, 6, 6, 6, 1]


def test_the_list_needs_a_login(client):
    response = client.get("/api/shop/v1/orders/", HTTP_ACCEPT_LANGUAGE="en")

    assert error(response)[:2] == (401, "not_authenticated")


# --- One order ----------------------------------------------------------------------------------


@pytest.fixture
def shipped(lina, place, water, milk, pay_order, clock):
    """A delivery order of 2 × 矿泉水 and 1 × 鲜牛奶 (16.50 + 6.00 delivery), paid at 10:01,
    its water shipped at 11:00 (SF1001) and its milk at 12:00 (SF1002)."""
    order = place(lina, (water, 2), (milk, 1), fulfilment=Fulfilment.DELIVERY, note="放门口")
    clock.shift(timedelta(minutes=1))
    pay_order(order)
    clock.move_to(T0 + timedelta(hours=1))
    shipment_create(
        order=order, carrier_code="SF", tracking_number="SF1001", line_keys=[f"{order.number}-1"]
    )
    clock.move_to(T0 + timedelta(hours=2))
    shipment_create(order=order, carrier_code="SF", tracking_number="SF1002")
    order.refresh_from_db()
    return order


def test_her_order_shows_lines_timeline_shipments_and_payments(
    me, shipped, shop_store, water, milk
):
    number = shipped.number

    response = me.get(f"orders/{number}/")

    assert response.status_code == 200
    body = response.json()
    payment = shipped.payments.get()
    assert body == {
        "number": number,
        "status": "shipped",
        "status_label": "shipped",
        "channel": "mini_shop",
        "fulfilment": "delivery",
        "store": {"id": shop_store.pk, "code": "SH001", "name": "静安寺店"},
        "units": 3,
        "total_fen": 2250,
        "lines": [
            {
                "line_key": f"{number}-1",
                "sku_id": water.pk,
                "sku_code": water.code,
                "product_name": "矿泉水",
                "attributes": {"规格": "550ml"},
                "unit_price_fen": 200,
                "quantity": 2,
                "discount_fen": 0,
                "total_fen": 400,
                "shipped": True,
            },
            {
                "line_key": f"{number}-2",
                "sku_id": milk.pk,
                "sku_code": milk.code,
                "product_name": "鲜牛奶",
                "attributes": {"规格": "550ml"},
                "unit_price_fen": 1250,
                "quantity": 1,
                "discount_fen": 0,
                "total_fen": 1250,
                "shipped": True,
            },
        ],
        "created_at": at(T0),
        "expires_at": at(T0 + timedelta(minutes=30)),
        "can_cancel": False,
        "can_confirm_receipt": True,
        "can_review": False,
        "subtotal_fen": 1650,
        "discount_fen": 0,
        "shipping_fen": 600,
        "pricing": {
            "promotion_fen": 0,
            "tier_fen": 0,
            "coupon_fen": 0,
            "points_fen": 0,
            "shipping_discount_fen": 0,
        },
        "coupon_code": "",
        "points_redeemed": 0,
        "paid_fen": 2250,
        "refunded_fen": 0,
        "address": ADDRESS,
        "pickup_code": "",
        "note": "放门口",
        "paid_at": at(T0 + timedelta(minutes=1)),
        "closed_at": None,
        # Titles follow the shopper's language; notes are as recorded (the causes, in the
        # shop's default Chinese).
        "timeline": [
            {
                "kind": "order.created",
                "title": "Order placed",
                "from_status": "",
                "to_status": "pending_payment",
                "note": "",
                "at": at(T0),
            },
            {
                "kind": "order.paid",
                "title": "paid",
                "from_status": "pending_payment",
                "to_status": "paid",
                "note": "付款成功",
                "at": at(T0 + timedelta(minutes=1)),
            },
            {
                "kind": "order.partially_shipped",
                "title": "Part of the order shipped",
                "from_status": "",
                "to_status": "",
                "note": "",
                "at": at(T0 + timedelta(hours=1)),
            },
            {
                "kind": "order.shipped",
                "title": "shipped",
                "from_status": "paid",
                "to_status": "shipped",
                "note": "商品已发货",
                "at": at(T0 + timedelta(hours=2)),
            },
        ],
        "shipments": [
            {
                "carrier_code": "SF",
                "tracking_number": "SF1001",
                "shipped_at": at(T0 + timedelta(hours=1)),
                "line_keys": [f"{number}-1"],
            },
            {
                "carrier_code": "SF",
                "tracking_number": "SF1002",
                "shipped_at": at(T0 + timedelta(hours=2)),
                "line_keys": [f"{number}-2"],
            },
        ],
        "payment": {
            "total_fen": 2250,
            "paid_fen": 2250,
            "refunded_fen": 0,
            "payments": [
                {
                    "provider": "shoppay",
                    "amount_fen": 2250,
                    "status": "succeeded",
                    "created_at": at(T0 + timedelta(minutes=1)),
                    "paid_at": at(T0 + timedelta(minutes=1)),
                }
            ],
            "refunds": [],
        },
        "after_sales": [],
        "review": None,
        "can_request_after_sale": True,
    }
    assert payment.status == "succeeded"


def test_a_paid_pickup_order_shows_its_pickup_code(me, lina, place, water, pay_order):
    order = pay_order(place(lina, (water, 1)))

    body = me.get(f"orders/{order.number}/").json()

    assert (body["status"], body["pickup_code"]) == ("paid", order.pickup_code)
    assert len(order.pickup_code) == 6


def test_another_shoppers_order_is_a_404_like_an_unknown_one(me, place, water):
    theirs = place(factories.MemberFactory(), (water, 1))

    answers = [me.get(f"orders/{theirs.number}/"), me.get("orders/261125000000000/")]

    assert [error(answer) for answer in answers] == [(404, "not_found", {})] * 2


def test_one_order_costs_a_fixed_number_of_queries_however_many_lines(
    me, lina, place, stocked, shipped, pay_order, django_assert_num_queries
):
    skus = [stocked(name=f"商品{n}", price_fen=100 + n, on_hand=10) for n in range(6)]
    bigger = pay_order(place(lina, *[(sku, 2) for sku in skus], fulfilment=Fulfilment.DELIVERY))
    shipment_create(order=bigger, carrier_code="SF", tracking_number="SF2001")
    for order in (shipped, bigger):
        me.post(
            f"orders/{order.number}/after-sales/",
            {
                "kind": "refund_only",
                "lines": [{"line_key": f"{order.number}-1", "quantity": 1}],
                "reason": "少了一件",
            },
        )

    # The token, the order with store and review, then its lines, events, payments, refunds,
    # after-sales and their lines, shipments and their lines.
    for order in (shipped, bigger):
        with django_assert_num_queries(10):
            body = me.get(f"orders/{order.number}/").json()
        assert len(body["after_sales"]) == 1


# --- Cancel -------------------------------------------------------------------------------------


def test_she_cancels_her_unpaid_order_and_gets_stock_coupon_and_points_back(
    me, lina, place, water, shop_store
):
    points_apply(member=lina, points=300, reason="adjust", reference="seed")
    lina.refresh_from_db()
    coupon = coupon_claim(member=lina, template=CouponTemplateFactory(amount_fen=100))
    order = place(lina, (water, 5), coupon_code=coupon.code, points_to_redeem=200)
    assert StockItem.objects.get(sku=water).reserved == 5

    response = me.post(f"orders/{order.number}/cancel/")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["can_cancel"]) == ("cancelled", False)
    assert body["timeline"][-1]["kind"] == "order.cancelled"
    assert StockItem.objects.get(sku=water).reserved == 0
    coupon.refresh_from_db()
    lina.refresh_from_db()
    assert (coupon.status, lina.points_balance) == ("available", 300)
    assert order.events.get(kind="order.cancelled").actor_kind == "shopper"


def test_cancelling_twice_changes_nothing(me, lina, place, water):
    order = place(lina, (water, 1))
    me.post(f"orders/{order.number}/cancel/")
    before = books(order)

    response = me.post(f"orders/{order.number}/cancel/")

    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    assert books(order) == before


def test_a_paid_order_is_not_cancelled(me, lina, place, water, pay_order):
    order = pay_order(place(lina, (water, 1)))
    before = books(order)

    response = me.post(f"orders/{order.number}/cancel/")

    assert error(response) == (409, "order_paid", {"status": ["paid"]})
    assert books(order) == before


def test_she_cannot_cancel_another_shoppers_order(me, place, water):
    theirs = place(factories.MemberFactory(), (water, 1))
    before = books(theirs)

    response = me.post(f"orders/{theirs.number}/cancel/")

    assert error(response) == (404, "not_found", {})
    assert books(theirs) == before


# --- Confirm receipt ----------------------------------------------------------------------------


def test_confirming_receipt_of_a_shipped_order_completes_it(me, lina, shipped):
    response = me.post(f"orders/{shipped.number}/confirm-receipt/")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["can_review"]) == ("completed", True)
    assert [event["kind"] for event in body["timeline"][-2:]] == [
        "order.delivered",
        "order.completed",
    ]
    # Completion earns points: 22.50 paid, one point a yuan.
    lina.refresh_from_db()
    assert lina.points_balance == 22


def test_an_unshipped_order_cannot_be_confirmed(me, lina, place, water, pay_order):
    order = pay_order(place(lina, (water, 1)))
    before = books(order)

    response = me.post(f"orders/{order.number}/confirm-receipt/")

    assert error(response) == (409, "illegal_transition", {"status": ["paid"]})
    assert books(order) == before


def test_another_shoppers_order_cannot_be_confirmed(shop_api, shipped):
    stranger = shop_api(factories.MemberFactory())
    before = books(shipped)

    response = stranger.post(f"orders/{shipped.number}/confirm-receipt/")

    assert error(response) == (404, "not_found", {})
    assert books(shipped) == before


# --- After-sales --------------------------------------------------------------------------------


def test_she_asks_for_money_back_on_a_line_of_a_paid_order(me, shipped):
    asked = {
        "kind": "return_and_refund",
        "lines": [{"line_key": f"{shipped.number}-2", "quantity": 1}],
        "reason": "包装破损",
    }

    response = me.post(f"orders/{shipped.number}/after-sales/", asked)

    assert response.status_code == 201
    body = response.json()
    request = AfterSale.objects.get()
    assert body["after_sales"] == [
        {
            "id": request.pk,
            "kind": "return_and_refund",
            "status": "requested",
            "reason": "包装破损",
            "amount_fen": 1250,
            "lines": [{"line_key": f"{shipped.number}-2", "quantity": 1}],
            "decision_note": "",
            "created_at": at(T0 + timedelta(hours=2)),
            "decided_at": None,
        }
    ]
    assert body["can_request_after_sale"] is False
    assert body["timeline"][-1]["kind"] == "after_sale.requested"


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        (
            {"kind": "refund_only", "lines": [{"line_key": "nope", "quantity": 1}], "reason": "x"},
            (400, "invalid_lines", {"line_key": ["nope"]}),
        ),
        (
            {"kind": "refund_only", "lines": [{"line_key": "LINE1", "quantity": 3}], "reason": "x"},
            (400, "invalid_quantity", {"line_key": ["LINE1"], "quantity": ["3"]}),
        ),
        (
            {"kind": "swap", "lines": [{"line_key": "LINE1", "quantity": 1}], "reason": "x"},
            (400, "validation_error", {"kind": ['"swap" is not a valid choice.']}),
        ),
        (
            {"kind": "refund_only", "lines": [], "reason": "x"},
            (
                400,
                "validation_error",
                {"lines": {"non_field_errors": ["This list may not be empty."]}},
            ),
        ),
    ],
)
def test_a_bad_after_sales_request_is_refused_and_nothing_changes(me, shipped, asked, expected):
    for line in asked["lines"]:
        line["line_key"] = line["line_key"].replace("LINE1", f"{shipped.number}-1")
    fields = expected[2]
    if "line_key" in fields:
        fields["line_key"] = [
            key.replace("LINE1", f"{shipped.number}-1") for key in fields["line_key"]
        ]
    before = books(shipped)

    response = me.post(f"orders/{shipped.number}/after-sales/", asked)

    assert error(response) == expected
    assert books(shipped) == before


def test_an_unpaid_order_has_no_after_sales(me, lina, place, water):
    order = place(lina, (water, 1))
    before = books(order)

    response = me.post(
        f"orders/{order.number}/after-sales/",
        {
            "kind": "refund_only",
            "lines": [{"line_key": f"{order.number}-1", "quantity": 1}],
            "reason": "不要了",
        },
    )

    assert error(response) == (409, "order_not_paid", {"status": ["pending_payment"]})
    assert books(order) == before


def test_a_second_open_request_is_refused(me, shipped):
    asked = {
        "kind": "refund_only",
        "lines": [{"line_key": f"{shipped.number}-1", "quantity": 1}],
        "reason": "少了一瓶",
    }
    me.post(f"orders/{shipped.number}/after-sales/", asked)
    before = books(shipped)

    response = me.post(f"orders/{shipped.number}/after-sales/", asked)

    assert error(response) == (409, "after_sale_open", {"order": [shipped.number]})
    assert books(shipped) == before


def test_she_cannot_ask_for_after_sales_on_another_shoppers_order(shop_api, shipped):
    stranger = shop_api(factories.MemberFactory())
    before = books(shipped)

    response = stranger.post(
        f"orders/{shipped.number}/after-sales/",
        {
            "kind": "refund_only",
            "lines": [{"line_key": f"{shipped.number}-1", "quantity": 1}],
            "reason": "x",
        },
    )

    assert error(response) == (404, "not_found", {})
    assert books(shipped) == before


def test_a_refund_shows_in_the_payment_summary(me, shipped):
    refund_create(order=shipped, amount_fen=400, reason="少发一瓶", actor=None)

    body = me.get(f"orders/{shipped.number}/").json()

    assert body["payment"]["refunds"] == [
        {
            "amount_fen": 400,
            "status": "pending",
            "reason": "少发一瓶",
            "created_at": at(T0 + timedelta(hours=2)),
            "succeeded_at": None,
        }
    ]


# --- Review -------------------------------------------------------------------------------------


@pytest.fixture
def completed(lina, place, water, pay_order, shop_store):
    """A pickup order of 矿泉水, paid and picked up."""
    order = pay_order(place(lina, (water, 1)))
    order_mark_ready(order=order, actor=None)
    pickup_handover(store=shop_store, pickup_code=order.pickup_code, actor=None)
    order.refresh_from_db()
    return order


def test_she_reviews_her_completed_order_once(me, lina, completed):
    response = me.post(f"orders/{completed.number}/review/", {"rating": 5, "text": "很新鲜"})
    again = me.post(f"orders/{completed.number}/review/", {"rating": 1})

    assert response.status_code == 201
    body = response.json()
    assert body["review"] == {"rating": 5, "text": "很新鲜", "created_at": at(T0)}
    assert body["can_review"] is False
    assert error(again) == (409, "review_exists", {"order": [completed.number]})
    assert list(Review.objects.values_list("member", "rating")) == [(lina.pk, 5)]


def test_a_review_needs_one_to_five_stars(me, completed):
    before = books(completed)

    response = me.post(f"orders/{completed.number}/review/", {"rating": 6})

    assert error(response) == (400, "validation_error", {"rating": ["Give one to five stars."]})
    assert books(completed) == before


def test_an_order_not_completed_cannot_be_reviewed(me, lina, place, water):
    order = place(lina, (water, 1))
    before = books(order)

    response = me.post(f"orders/{order.number}/review/", {"rating": 4})

    assert error(response) == (409, "review_not_allowed", {"order": [order.number]})
    assert books(order) == before


def test_she_cannot_review_another_shoppers_order(shop_api, completed):
    stranger = shop_api(factories.MemberFactory())
    before = books(completed)

    response = stranger.post(f"orders/{completed.number}/review/", {"rating": 1})

    assert error(response) == (404, "not_found", {})
    assert books(completed) == before
