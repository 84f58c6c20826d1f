"""Console after-sales: the store's open requests with their order, lines and amounts; a
manager approves, rejects and takes goods back (restock and refund); a clerk is refused with
nothing changed; another store's request is a 404; refusals are shown as the service words
them."""

import html
import re

import pytest

from inventory.models import StockItem, StockMovement
from inventory.services import StockLine, stock_receive
from orders.aftersales import after_sale_approve, after_sale_reject, after_sale_request
from orders.models import AfterSale, Channel, Fulfilment, Order, OrderEvent, Refund
from orders.pricing import BasketLine
from orders.services import checkout_place, pickup_handover
from tests import factories

pytestmark = pytest.mark.django_db

URL = "/console/{store}/aftersales/"


@pytest.fixture(autouse=True)
def _english(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


class AftersalesPay:
    """A provider that confirms later and refunds at once (as WeChat Pay answers)."""

    name = "aftersales_pay"
    confirms_immediately = False

    def start(self, payment):
        from orders.payments import StartResult

        return StartResult(client_parameters={}, provider_data={})

    def refund(self, refund):
        from orders.payments import RefundResult

        return RefundResult(status="succeeded", provider_refund_id=f"wx-{refund.out_refund_no}")


@pytest.fixture
def aftersales_pay():
    from orders import payments

    provider = AftersalesPay()
    payments.provider_register(provider)
    yield provider
    payments._providers.pop(provider.name)


@pytest.fixture
def aftersales_goods(store_a, store_b):
    """Water at 2.00 and milk at 12.50; 10 of each at store A and at store B."""
    water = factories.SKUFactory(price_fen=200, product__name="矿泉水", code="WATER-550")
    milk = factories.SKUFactory(price_fen=1250, product__name="鲜牛奶", code="MILK-1L")
    for store in (store_a, store_b):
        stock_receive(
            store=store,
            lines=[StockLine(water, 10), StockLine(milk, 10)],
            idempotency_key=f"seed-{store.code}",
        )
    return water, milk


@pytest.fixture
def collected(aftersales_goods, aftersales_pay, django_capture_on_commit_callbacks):
    """``collected(store, (sku, qty), ...)``: a paid mini-shop pickup order, handed over."""
    from orders.payments import payment_confirm, payment_start

    member = factories.MemberFactory()
    counter = iter(range(1, 1000))

    def _collected(store, *lines):
        order = checkout_place(
            lines=[BasketLine(sku.pk, quantity) for sku, quantity in lines],
            channel=Channel.MINI_SHOP,
            fulfilment=Fulfilment.PICKUP,
            store=store,
            member=member,
            client_reference=f"aftersales-{next(counter)}",
        )
        payment, _start = payment_start(order=order, provider="aftersales_pay")
        with django_capture_on_commit_callbacks(execute=True):
            payment_confirm(
                provider="aftersales_pay",
                out_trade_no=payment.out_trade_no,
                transaction_id=f"tx-{payment.out_trade_no}",
                amount_fen=payment.amount_fen,
                payload={},
            )
        order.refresh_from_db()
        return pickup_handover(store=store, pickup_code=order.pickup_code, actor=None)

    return _collected


def _key(order: Order, sku) -> str:
    return order.lines.get(sku=sku).line_key


def _request(order, kind, *lines, reason="不想要了"):
    return after_sale_request(
        order=order, kind=kind, lines=[(_key(order, sku), qty) for sku, qty in lines], reason=reason
    )


def _messages(response) -> list[tuple[str, str]]:
    block = re.search(r'<ul class="messages"[^>]*>(.*?)</ul>', response.content.decode(), re.S)
    if block is None:
        return []
    return [
        (tags, html.unescape(text))
        for tags, text in re.findall(r'<li class="([^"]*)">(.*?)</li>', block.group(1), re.S)
    ]


def _on_hand(store, sku) -> int:
    return StockItem.objects.get(store=store, sku=sku).on_hand


def _snapshot(after_sale: AfterSale) -> tuple:
    after_sale.refresh_from_db()
    return (
        after_sale.status,
        after_sale.decided_by_id,
        after_sale.decided_at,
        after_sale.decision_note,
        after_sale.restocked_at,
    )


@pytest.fixture
def board(collected, aftersales_goods, store_a, store_b, manager_a):
    """Store A: one request to decide (1 milk, refund only), one approved return awaiting its
    goods (2 water), one rejected (closed); store B: one request to decide."""
    water, milk = aftersales_goods
    first = collected(store_a, (water, 3), (milk, 2))
    second = collected(store_a, (water, 2))
    third = collected(store_a, (milk, 1))
    other = collected(store_b, (milk, 1))
    to_decide = _request(first, "refund_only", (milk, 1), (water, 1), reason="临期")
    awaiting = _request(second, "return_and_refund", (water, 2), reason="买多了")
    after_sale_approve(after_sale=awaiting, actor=manager_a, note="请寄回")
    rejected = _request(third, "refund_only", (milk, 1))
    after_sale_reject(after_sale=rejected, actor=manager_a, note="已拆封")
    elsewhere = _request(other, "refund_only", (milk, 1))
    return {
        "first": first,
        "second": second,
        "to_decide": to_decide,
        "awaiting": awaiting,
        "rejected": rejected,
        "elsewhere": elsewhere,
    }


def test_the_page_lists_the_stores_open_requests_with_lines_and_amounts(client, manager_a, board):
    client.force_login(manager_a)

    response = client.get(URL.format(store="SH001"))

    assert response.status_code == 200
    context = response.context
    assert [r.pk for r in context["to_decide"]] == [board["to_decide"].pk]
    assert [r.pk for r in context["awaiting_goods"]] == [board["awaiting"].pk]
    assert context["refunding"] == []
    to_decide = context["to_decide"][0]
    assert to_decide.amount_fen == 1450
    assert to_decide.console_lines == [
        {
            "product_name": "鲜牛奶",
            "sku_code": "MILK-1L",
            "quantity": 1,
            "bought": 2,
            "unit_price_fen": 1250,
            "amount_fen": 1250,
        },
        {
            "product_name": "矿泉水",
            "sku_code": "WATER-550",
            "quantity": 1,
            "bought": 3,
            "unit_price_fen": 200,
            "amount_fen": 200,
        },
    ]
    page = response.content.decode()
    assert page.count('data-after-sale="') == 2
    assert f'data-after-sale="{board["rejected"].pk}"' not in page
    assert f'data-after-sale="{board["elsewhere"].pk}"' not in page
    assert f"Order {board['first'].number}" in page
    assert '<strong class="money" data-amount>¥14.50</strong>' in page
    assert '<strong class="money" data-amount>¥4.00</strong>' in page
    assert "Approve and refund" in page
    assert "Goods received: restock and refund" in page


def _open_requests(collected, store, goods, count):
    water, milk = goods
    for _ in range(count):
        order = collected(store, (water, 1), (milk, 1))
        _request(order, "refund_only", (water, 1), (milk, 1))


def test_the_page_costs_the_same_queries_for_one_request_or_many(
    client, manager_a, collected, aftersales_goods, store_a, django_assert_num_queries
):
    client.force_login(manager_a)
    _open_requests(collected, store_a, aftersales_goods, 1)
    # session, user, roles, store; requests, their lines, their refunds; frame: stores.
    with django_assert_num_queries(8):
        few = client.get(URL.format(store="SH001"))
    _open_requests(collected, store_a, aftersales_goods, 4)
    with django_assert_num_queries(8):
        many = client.get(URL.format(store="SH001"))

    assert (len(few.context["to_decide"]), len(many.context["to_decide"])) == (1, 5)


def test_approving_a_refund_only_request_refunds_it(
    client, manager_a, board, django_capture_on_commit_callbacks
):
    request, order = board["to_decide"], board["first"]
    client.force_login(manager_a)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/console/SH001/aftersales/{request.pk}/approve/", {"note": "同意"}, follow=True
        )

    request.refresh_from_db()
    order.refresh_from_db()
    assert response.redirect_chain == [("/console/SH001/aftersales/", 302)]
    assert _messages(response) == [
        ("success", f"Approved: ¥14.50 is being refunded for order {order.number}.")
    ]
    assert (request.status, request.decided_by, request.decision_note) == (
        "refunded",
        manager_a,
        "同意",
    )
    assert list(Refund.objects.values_list("order", "amount_fen", "status", "after_sale")) == [
        (order.pk, 1450, "succeeded", request.pk)
    ]
    assert (order.status, order.refunded_fen) == ("completed", 1450)
    assert [r.pk for r in response.context["to_decide"]] == []


def test_a_return_is_approved_then_its_goods_restocked_and_refunded(
    client, manager_a, collected, aftersales_goods, store_a, django_capture_on_commit_callbacks
):
    water, _milk = aftersales_goods
    order = collected(store_a, (water, 3))
    request = _request(order, "return_and_refund", (water, 2), reason="买多了")
    client.force_login(manager_a)
    assert _on_hand(store_a, water) == 7

    approved = client.post(f"/console/SH001/aftersales/{request.pk}/approve/", follow=True)

    request.refresh_from_db()
    assert _messages(approved) == [
        (
            "success",
            f"Approved: order {order.number} is refunded when its goods are back in the store.",
        )
    ]
    assert (request.status, request.decided_by) == ("approved", manager_a)
    assert Refund.objects.count() == 0
    assert _on_hand(store_a, water) == 7
    assert [r.pk for r in approved.context["awaiting_goods"]] == [request.pk]

    # The refund goes to the provider after commit: the page after the redirect shows it on
    # its way, no longer awaiting the goods.
    with django_capture_on_commit_callbacks() as after_commit:
        received = client.post(f"/console/SH001/aftersales/{request.pk}/receive/", follow=True)

    request.refresh_from_db()
    assert _messages(received) == [
        ("success", f"Goods of order {order.number} are back in stock; ¥4.00 is being refunded.")
    ]
    assert request.status == "approved"
    assert request.restocked_at is not None
    assert received.context["awaiting_goods"] == []
    assert [r.pk for r in received.context["refunding"]] == [request.pk]
    assert 'data-refund="pending">processing</span>' in received.content.decode()

    for callback in after_commit:
        callback()

    request.refresh_from_db()
    order.refresh_from_db()
    assert request.status == "refunded"
    assert _on_hand(store_a, water) == 9
    assert list(
        StockMovement.objects.filter(reason="return").values_list(
            "stock_item__store", "stock_item__sku", "quantity", "reference", "actor"
        )
    ) == [(store_a.pk, water.pk, 2, order.number, manager_a.pk)]
    assert list(Refund.objects.values_list("amount_fen", "status", "after_sale")) == [
        (400, "succeeded", request.pk)
    ]
    assert order.refunded_fen == 400
    assert client.get(URL.format(store="SH001")).context["refunding"] == []


def test_goods_received_twice_restock_and_refund_once(
    client, manager_a, collected, aftersales_goods, store_a
):
    """A second click before the refund is confirmed is refused: one return, one refund
    (the payment would have room for a second one)."""
    water, milk = aftersales_goods
    order = collected(store_a, (water, 3), (milk, 1))
    request = _request(order, "return_and_refund", (water, 1))
    after_sale_approve(after_sale=request, actor=manager_a)
    client.force_login(manager_a)

    first = client.post(f"/console/SH001/aftersales/{request.pk}/receive/", follow=True)
    second = client.post(f"/console/SH001/aftersales/{request.pk}/receive/", follow=True)

    assert _messages(first) == [
        ("success", f"Goods of order {order.number} are back in stock; ¥2.00 is being refunded.")
    ]
    assert _messages(second) == [("error", "This request is not waiting for goods.")]
    assert _on_hand(store_a, water) == 10 - 3 + 1
    assert list(
        StockMovement.objects.filter(reason="return").values_list("quantity", flat=True)
    ) == [1]
    assert list(Refund.objects.values_list("amount_fen", "status", "after_sale")) == [
        (200, "pending", request.pk)
    ]


def test_rejecting_needs_a_reason_and_changes_no_money(client, manager_a, board):
    request, order = board["to_decide"], board["first"]
    client.force_login(manager_a)
    before = _snapshot(request)

    without = client.post(
        f"/console/SH001/aftersales/{request.pk}/reject/", {"note": "  "}, follow=True
    )
    after_refusal = _snapshot(request)
    rejected = client.post(
        f"/console/SH001/aftersales/{request.pk}/reject/", {"note": "已拆封，不能退"}, follow=True
    )

    request.refresh_from_db()
    order.refresh_from_db()
    assert _messages(without) == [("error", "Say why the request is rejected.")]
    assert after_refusal == before
    assert _messages(rejected) == [("success", f"Rejected the request of order {order.number}.")]
    assert (request.status, request.decided_by, request.decision_note) == (
        "rejected",
        manager_a,
        "已拆封，不能退",
    )
    assert Refund.objects.count() == 0
    assert order.refunded_fen == 0


def test_refusals_are_shown_and_change_nothing(client, manager_a, board, store_a, aftersales_goods):
    water, _milk = aftersales_goods
    client.force_login(manager_a)
    to_decide, rejected = board["to_decide"], board["rejected"]
    states = (_snapshot(to_decide), _snapshot(rejected))
    events, on_hand = OrderEvent.objects.count(), _on_hand(store_a, water)

    not_awaiting = client.post(f"/console/SH001/aftersales/{to_decide.pk}/receive/", follow=True)
    decided = client.post(f"/console/SH001/aftersales/{rejected.pk}/approve/", follow=True)
    too_long = client.post(
        f"/console/SH001/aftersales/{to_decide.pk}/approve/", {"note": "x" * 201}, follow=True
    )

    assert _messages(not_awaiting) == [("error", "This request is not waiting for goods.")]
    assert _messages(decided) == [("error", "This request was already decided.")]
    assert _messages(too_long) == [
        ("error", "Ensure this value has at most 200 characters (it has 201).")
    ]
    assert (_snapshot(to_decide), _snapshot(rejected)) == states
    assert (OrderEvent.objects.count(), _on_hand(store_a, water)) == (events, on_hand)
    assert Refund.objects.count() == 0


@pytest.mark.parametrize("action", ["approve", "reject", "receive"])
def test_a_clerk_cannot_approve_reject_or_receive(
    client, clerk_a, board, store_a, aftersales_goods, action
):
    """The issue's "a clerk cannot approve refunds": a 403 and nothing changed."""
    water, _milk = aftersales_goods
    client.force_login(clerk_a)
    target = board["awaiting"] if action == "receive" else board["to_decide"]
    before = _snapshot(target)
    events, on_hand = OrderEvent.objects.count(), _on_hand(store_a, water)

    response = client.post(f"/console/SH001/aftersales/{target.pk}/{action}/", {"note": "好"})
    page = client.get(URL.format(store="SH001"))

    assert (response.status_code, page.status_code) == (403, 403)
    assert _snapshot(target) == before
    assert Refund.objects.count() == 0
    assert (OrderEvent.objects.count(), _on_hand(store_a, water)) == (events, on_hand)


def test_another_stores_request_is_a_404_and_unchanged(client, manager_a, board):
    elsewhere = board["elsewhere"]
    client.force_login(manager_a)
    before = _snapshot(elsewhere)

    through_own_store = client.post(f"/console/SH001/aftersales/{elsewhere.pk}/approve/")
    through_theirs = client.post(f"/console/SH002/aftersales/{elsewhere.pk}/approve/")
    unknown = client.post("/console/SH001/aftersales/999999/reject/", {"note": "x"})

    assert (through_own_store.status_code, through_theirs.status_code, unknown.status_code) == (
        404,
        404,
        404,
    )
    assert _snapshot(elsewhere) == before
    assert Refund.objects.count() == 0


def test_actions_take_post_only(client, manager_a, board):
    request = board["to_decide"]
    client.force_login(manager_a)
    before = _snapshot(request)

    response = client.get(f"/console/SH001/aftersales/{request.pk}/approve/")

    assert response.status_code == 405
    assert _snapshot(request) == before
