"""Orders in the admin, as each role sees them: scoped to the staff member's stores, amounts in
yuan, every record read-only, and actions that call the services; a refused action shows a
message and changes nothing."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from inventory.models import StockItem, StockMovement
from members.models import Member
from orders.aftersales import after_sale_approve, after_sale_request
from orders.models import (
    AfterSale,
    Fulfilment,
    Order,
    OrderEvent,
    PaymentIssue,
    Refund,
    Shipment,
    ShippingRule,
)
from orders.payments import payment_confirm, refund_create
from orders.services import pickup_handover, shipment_create
from retail.errors import BusinessError
from retail.models import OutboxEvent
from tests import factories

pytestmark = pytest.mark.django_db

S = Order.Status
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


# --- Helpers -----------------------------------------------------------------------------------


def browser(user) -> Client:
    """A signed-in client of its own per user, reading the admin in English."""
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def url(name: str, *args) -> str:
    return reverse(f"admin:{name}", args=args)


def listed(response) -> list:
    return list(response.context["cl"].result_list)


def flashed(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def run_action(client: Client, model: str, action: str, objects, **extra):
    return client.post(
        url(f"orders_{model}_changelist"),
        {"action": action, "_selected_action": [obj.pk for obj in objects], **extra},
    )


def cells(page: str, column: str) -> list[str]:
    """The values one column of the change list shows, top to bottom."""
    return re.findall(rf'<t[dh] class="field-{column}[^"]*">(?:<a [^>]*>)?(.*?)<', page)


def inline_cells(page: str, column: str) -> list[str]:
    """The read-only values an inline table shows in one column, top to bottom."""
    return re.findall(rf'<td class="field-{column}">\s*<p>(.*?)</p>', page, re.DOTALL)


def stock(store, sku) -> tuple[int, int]:
    item = StockItem.objects.get(store=store, sku=sku)
    return item.on_hand, item.reserved


def books(*orders: Order) -> list[tuple]:
    """What an order action could change, to assert that a refused one changed nothing."""
    return [
        (
            Order.objects.get(pk=order.pk).status,
            order.events.count(),
            OutboxEvent.objects.filter(aggregate_type="order", aggregate_id=str(order.pk)).count(),
            StockMovement.objects.count(),
            list(StockItem.objects.order_by("pk").values_list("on_hand", "reserved")),
        )
        for order in orders
    ]


@pytest.fixture
def manager_b(store_b):
    return factories.StaffRoleFactory(role="store_manager", store=store_b).user


@pytest.fixture
def busy(place, pay, shop, water, milk, clerk_a, manager_a):
    """A delivery order with a row of every kind: paid, half shipped, partly refunded, an
    after-sales request."""
    with time_machine.travel(T0, tick=False):
        order = place((water, 2), (milk, 1), fulfilment=Fulfilment.DELIVERY)
        pay(order)
        water_line = order.lines.order_by("pk").first()
        shipment_create(
            order=order,
            carrier_code="SF",
            tracking_number="SF1234567890",
            line_keys=[water_line.line_key],
            actor=clerk_a,
        )
        refund_create(order=order, amount_fen=250, reason="少发", actor=manager_a)
        after_sale_request(
            order=order, kind="refund_only", lines=[(water_line.line_key, 1)], reason="破损"
        )
    order.refresh_from_db()
    return order


# --- Orders: list, search, page ----------------------------------------------------------------


def test_the_order_list_shows_the_clerks_store_with_totals_in_yuan(
    clerk_a, place, water, milk, store_b
):
    with time_machine.travel(T0, tick=False):
        order = place((water, 2), (milk, 1))
    factories.OrderFactory(store=store_b)

    response = browser(clerk_a).get(url("orders_order_changelist"))

    assert response.status_code == 200
    assert listed(response) == [order]
    page = response.content.decode()
    assert cells(page, "number") == [order.number]
    assert cells(page, "store") == ["SH001 静安寺店"]
    assert cells(page, "channel") == ["WeChat mini-shop"]
    assert cells(page, "fulfilment") == ["pickup at a store"]
    assert cells(page, "status") == ["pending payment"]
    assert cells(page, "total") == ["16.50"]
    assert cells(page, "created_at") == ["Nov. 25, 2026, 10 a.m."]


def test_hq_sees_every_order_and_filters_by_store_and_status(hq_user, store_a, store_b):
    paid_a = factories.OrderFactory(store=store_a, status=S.PAID)
    pending_a = factories.OrderFactory(store=store_a)
    paid_b = factories.OrderFactory(store=store_b, status=S.PAID)
    client = browser(hq_user)
    changelist = url("orders_order_changelist")

    everything = client.get(changelist)
    only_b = client.get(changelist, {"store__id__exact": store_b.pk})
    only_paid = client.get(changelist, {"status__exact": "paid"})

    assert listed(everything) == [paid_b, pending_a, paid_a]
    assert listed(only_b) == [paid_b]
    assert listed(only_paid) == [paid_b, paid_a]


def test_orders_are_found_by_number_pickup_code_or_member_mobile(
    manager_a, place, water, member, store_b
):
    order = place((water, 1))
    other = place((water, 1), member=factories.MemberFactory(mobile="13711112222"))
    factories.OrderFactory(store=store_b, number=f"{order.number[:6]}9999999999")
    client = browser(manager_a)

    def found(term: str) -> list[Order]:
        return listed(client.get(url("orders_order_changelist"), {"q": term}))

    assert found(order.number[:12]) == [order]
    assert found(order.number[:6]) == [other, order]
    assert found(order.pickup_code) == [order]
    assert found("13711112222") == [other]
    assert found("1371111") == []


def test_the_order_page_is_read_only_in_yuan_with_every_record(manager_a, busy, water, milk):
    response = browser(manager_a).get(url("orders_order_change", busy.pk))

    assert response.status_code == 200
    assert response.context["adminform"].form.fields == {}
    page = response.content.decode()
    assert 'name="_save"' not in page
    readonly = {
        field.field["name"]: str(field.contents())
        for fieldset in response.context["adminform"]
        for line in fieldset
        for field in line
    }
    assert {
        name: readonly[name]
        for name in ["subtotal", "discount", "shipping", "total", "paid", "refunded"]
    } == {
        "subtotal": "16.50",
        "discount": "0.00",
        "shipping": "6.00",
        "total": "22.50",
        "paid": "22.50",
        "refunded": "0.00",
    }
    assert readonly["delivery_address"] == "王小明 13912345678 上海市上海市静安区愚园路168号5楼"
    assert inline_cells(page, "product_name") == ["矿泉水", "鲜牛奶"]
    assert inline_cells(page, "unit_price") == ["2.00", "12.50"]
    assert inline_cells(page, "line_total") == ["4.00", "12.50"]
    assert inline_cells(page, "spec") == ["550ml", "550ml"]
    assert inline_cells(page, "kind") == [
        "order.created",
        "order.paid",
        "order.partially_shipped",
        "refund.requested",
        "after_sale.requested",
    ]
    [payment] = busy.payments.all()
    assert inline_cells(page, "out_trade_no") == [payment.out_trade_no]
    assert inline_cells(page, "out_refund_no") == [Refund.objects.get().out_refund_no]
    assert inline_cells(page, "amount") == ["22.50", "2.50"]
    assert inline_cells(page, "tracking_number") == ["SF1234567890"]
    assert inline_cells(page, "line_keys") == [busy.lines.order_by("pk").first().line_key]


def test_a_clerk_sees_the_order_lines_too(clerk_a, busy):
    page = browser(clerk_a).get(url("orders_order_change", busy.pk)).content.decode()

    assert inline_cells(page, "product_name") == ["矿泉水", "鲜牛奶"]


def test_nobody_adds_edits_or_deletes_an_order(hq_user, place, water):
    order = place((water, 1))
    client = browser(hq_user)
    before = books(order)

    add = client.get(url("orders_order_add"))
    edit = client.post(url("orders_order_change", order.pk), {"status": "paid", "note": "改"})
    delete = client.post(url("orders_order_delete", order.pk), {"post": "yes"})

    assert (add.status_code, edit.status_code, delete.status_code) == (403, 403, 403)
    assert books(order) == before
    assert Order.objects.get(pk=order.pk).note == ""


def test_another_stores_order_cannot_be_opened(manager_a, store_b):
    theirs = factories.OrderFactory(store=store_b)

    response = browser(manager_a).get(url("orders_order_change", theirs.pk))

    # Django answers an object outside the queryset with a redirect to the index.
    assert (response.status_code, response.url) == (302, reverse("admin:index"))


# --- Orders: actions ---------------------------------------------------------------------------


def test_a_clerk_cancels_unpaid_orders_and_a_paid_one_is_refused(clerk_a, place, pay, shop, water):
    unpaid = place((water, 2))
    paid = place((water, 1))
    pay(paid)

    response = run_action(browser(clerk_a), "order", "cancel_unpaid", [unpaid, paid])

    assert response.status_code == 302
    assert flashed(response) == [
        f"{paid.number}: A paid order is cancelled by refunding it.",
        "1 order cancelled.",
    ]
    assert Order.objects.get(pk=unpaid.pk).status == S.CANCELLED
    assert stock(shop, water) == (10, 1)
    event = OrderEvent.objects.filter(order=unpaid).last()
    assert (event.kind, event.actor, event.actor_kind) == ("order.cancelled", clerk_a, "staff")
    assert (Order.objects.get(pk=paid.pk).status, paid.events.count()) == (S.PAID, 2)


def test_a_refused_cancel_changes_nothing_at_all(clerk_a, place, pay, water):
    paid = place((water, 1))
    pay(paid)
    before = books(paid)

    response = run_action(browser(clerk_a), "order", "cancel_unpaid", [paid])

    assert flashed(response) == [f"{paid.number}: A paid order is cancelled by refunding it."]
    assert books(paid) == before


def test_paid_pickup_orders_are_marked_ready_and_a_delivery_order_is_refused(
    clerk_a, place, pay, water
):
    pickup = place((water, 1))
    delivery = place((water, 1), fulfilment=Fulfilment.DELIVERY)
    pay(pickup)
    pay(delivery)
    before = books(delivery)

    response = run_action(browser(clerk_a), "order", "mark_ready", [pickup, delivery])

    assert flashed(response) == [
        f"{delivery.number}: An order that is “paid” cannot become “ready for pickup” this way.",
        "1 order ready for pickup.",
    ]
    assert Order.objects.get(pk=pickup.pk).status == S.READY_FOR_PICKUP
    assert books(delivery) == before


def test_actions_reach_only_the_users_own_orders(clerk_a, place, water, store_b):
    theirs = factories.OrderFactory(store=store_b)
    before = books(theirs)

    response = run_action(browser(clerk_a), "order", "cancel_unpaid", [theirs])

    # The action runs on the selection within the user's queryset: nothing.
    assert (response.status_code, flashed(response)) == (302, [])
    assert books(theirs) == before


# --- After-sales -------------------------------------------------------------------------------


@pytest.fixture
def collected(place, pay, shop, water, clerk_a):
    """A pickup order of 2 waters, paid and collected."""
    order = place((water, 2))
    pay(order)
    pickup_handover(store=shop, pickup_code=order.pickup_code, actor=clerk_a)
    return order


def ask(order, kind: str) -> AfterSale:
    line_key = order.lines.get().line_key
    return after_sale_request(order=order, kind=kind, lines=[(line_key, 1)], reason="破损")


def decisions() -> list[tuple]:
    return list(
        AfterSale.objects.order_by("pk").values_list("status", "decision_note", "decided_by")
    )


def test_the_after_sales_list_and_page_show_amounts_in_yuan(manager_a, collected):
    request = ask(collected, "refund_only")
    client = browser(manager_a)

    listing = client.get(url("orders_aftersale_changelist"))
    page = client.get(url("orders_aftersale_change", request.pk))

    assert listing.status_code == 200
    assert listed(listing) == [request]
    assert cells(listing.content.decode(), "amount") == ["2.00"]
    assert page.status_code == 200
    assert inline_cells(page.content.decode(), "line_key") == [collected.lines.get().line_key]


def test_a_manager_approves_requests_and_a_decided_one_is_refused(manager_a, collected, place):
    request = ask(collected, "refund_only")

    approved = run_action(browser(manager_a), "aftersale", "approve_requests", [request])
    again = run_action(browser(manager_a), "aftersale", "approve_requests", [request])

    assert flashed(approved) == ["1 request approved."]
    assert flashed(again) == [f"{request}: This request was already decided."]
    assert decisions() == [("approved", "", manager_a.pk)]
    assert list(Refund.objects.values_list("after_sale", "amount_fen", "status")) == [
        (request.pk, 200, "pending")
    ]


def test_rejecting_asks_why_first(manager_a, collected):
    request = ask(collected, "refund_only")
    client = browser(manager_a)

    form = run_action(client, "aftersale", "reject_requests", [request])

    assert form.status_code == 200
    page = form.content.decode()
    assert "Reject after-sales requests" in page
    assert f"<li>{request}: 破损</li>" in page
    assert f'<input type="hidden" name="_selected_action" value="{request.pk}">' in page
    assert decisions() == [("requested", "", None)]


def test_a_rejection_without_a_reason_is_asked_again_and_changes_nothing(manager_a, collected):
    request = ask(collected, "refund_only")

    response = run_action(
        browser(manager_a), "aftersale", "reject_requests", [request], apply="yes", note=""
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"note": ["This field is required."]}
    assert decisions() == [("requested", "", None)]


def test_a_manager_rejects_with_a_reason(manager_a, collected):
    request = ask(collected, "refund_only")

    response = run_action(
        browser(manager_a),
        "aftersale",
        "reject_requests",
        [request],
        apply="yes",
        note="已过退货期",
    )

    assert response.status_code == 302
    assert flashed(response) == ["1 request rejected."]
    assert decisions() == [("rejected", "已过退货期", manager_a.pk)]
    assert Refund.objects.count() == 0


def test_returned_goods_are_received_and_unapproved_ones_refused(manager_a, collected, shop, water):
    request = ask(collected, "return_and_refund")

    early = run_action(browser(manager_a), "aftersale", "receive_returns", [request])
    assert flashed(early) == [f"{request}: This request is not waiting for goods."]
    assert (stock(shop, water), Refund.objects.count()) == ((8, 0), 0)

    after_sale_approve(after_sale=request, actor=manager_a)
    received = run_action(browser(manager_a), "aftersale", "receive_returns", [request])

    assert flashed(received) == ["1 return received."]
    assert stock(shop, water) == (9, 0)
    assert list(Refund.objects.values_list("after_sale", "amount_fen")) == [(request.pk, 200)]


def test_a_clerk_sees_after_sales_but_may_not_decide(clerk_a, collected):
    request = ask(collected, "refund_only")
    client = browser(clerk_a)

    listing = client.get(url("orders_aftersale_changelist"))
    response = run_action(client, "aftersale", "approve_requests", [request])

    assert listing.status_code == 200
    assert list(listing.context["cl"].model_admin.get_actions(listing.wsgi_request)) == []
    # Without an action to offer, the admin shows the list again and runs nothing.
    assert (response.status_code, flashed(response)) == (200, [])
    assert decisions() == [("requested", "", None)]


def test_another_stores_after_sales_are_not_listed(manager_b, collected):
    ask(collected, "refund_only")

    response = browser(manager_b).get(url("orders_aftersale_changelist"))

    assert listed(response) == []


# --- Refunds, payment issues, shipping rules, members -------------------------------------------


def test_refunds_are_listed_read_only_in_yuan(manager_a, manager_b, busy):
    refund = Refund.objects.get()
    client = browser(manager_a)

    listing = client.get(url("orders_refund_changelist"))
    page = client.get(url("orders_refund_change", refund.pk))
    theirs = browser(manager_b).get(url("orders_refund_changelist"))

    assert listed(listing) == [refund]
    assert cells(listing.content.decode(), "amount") == ["2.50"]
    assert (page.status_code, 'name="_save"' in page.content.decode()) == (200, False)
    assert listed(theirs) == []


def test_payment_issues_are_for_managers_of_the_store_and_hq(
    manager_a, clerk_a, hq_user, place, pay, water, english
):
    order = place((water, 1))
    payment = pay(order)
    with pytest.raises(BusinessError, match="transaction"):
        payment_confirm(
            provider="fakepay",
            out_trade_no=payment.out_trade_no,
            transaction_id="tx-other",
            amount_fen=1,
        )
    with pytest.raises(BusinessError, match="No such payment"):
        payment_confirm(
            provider="fakepay", out_trade_no="P-unknown", transaction_id="t", amount_fen=1
        )
    mismatch, unknown = PaymentIssue.objects.order_by("pk")

    mine = browser(manager_a).get(url("orders_paymentissue_changelist"))
    everything = browser(hq_user).get(url("orders_paymentissue_changelist"))
    page = browser(manager_a).get(url("orders_paymentissue_change", mismatch.pk))
    refused = browser(clerk_a).get(url("orders_paymentissue_changelist"))

    assert listed(mine) == [mismatch]
    assert listed(everything) == [unknown, mismatch]
    assert cells(everything.content.decode(), "amount") == ["0.01", "0.01"]
    assert page.status_code == 200
    assert refused.status_code == 403


def test_hq_sets_a_stores_delivery_fee_in_yuan(hq_user, store_a):
    client = browser(hq_user)

    response = client.post(
        url("orders_shippingrule_add"),
        {"store": store_a.pk, "fee_fen": "6.50", "free_from_fen": ""},
    )

    assert response.status_code == 302
    rule = ShippingRule.objects.get()
    assert (rule.store, rule.fee_fen, rule.free_from_fen) == (store_a, 650, None)
    listing = client.get(url("orders_shippingrule_changelist")).content.decode()
    assert (cells(listing, "fee"), cells(listing, "free_from")) == (["6.50"], ["—"])
    form = client.get(url("orders_shippingrule_change", rule.pk)).content.decode()
    assert 'name="fee_fen" value="6.50"' in form


def test_a_fee_with_three_decimals_is_refused(hq_user, store_a):
    response = browser(hq_user).post(
        url("orders_shippingrule_add"),
        {"store": store_a.pk, "fee_fen": "6.505", "free_from_fen": "39"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "fee_fen": ["Ensure that there are no more than 2 decimal places."]
    }
    assert ShippingRule.objects.count() == 0


def test_store_managers_do_not_touch_shipping_rules(manager_a, store_a):
    ShippingRule.objects.create(store=store_a, fee_fen=600)
    client = browser(manager_a)

    assert client.get(url("orders_shippingrule_changelist")).status_code == 403
    assert client.post(url("orders_shippingrule_add"), {"store": store_a.pk}).status_code == 403


def test_members_are_found_by_the_tail_of_their_mobile(clerk_a, member, store_a):
    # Store staff see the members whose home store is theirs.
    Member.objects.filter(pk=member.pk).update(home_store=store_a)
    other = factories.MemberFactory(mobile="13711112222", name="王芳", home_store=store_a)
    factories.MemberFactory(mobile="13711113333", name="别家会员")
    client = browser(clerk_a)

    everyone = client.get(url("members_member_changelist"))
    by_tail = client.get(url("members_member_changelist"), {"q": "2222"})
    page = client.get(url("members_member_change", member.pk))

    assert listed(everyone) == [other, member]
    assert listed(by_tail) == [other]
    assert (page.status_code, 'name="_save"' in page.content.decode()) == (200, False)
    assert Member.objects.get(pk=member.pk).name == "李娜"


# --- Every page renders ------------------------------------------------------------------------


def test_every_orders_admin_page_renders_for_hq(hq_user, busy, collected):
    ShippingRule.objects.create(store=busy.store, fee_fen=600, free_from_fen=3900)
    after_sale = AfterSale.objects.get(order=busy)
    client = browser(hq_user)
    pages = [
        url("orders_order_changelist"),
        url("orders_order_change", busy.pk),
        url("orders_order_change", collected.pk),
        url("orders_aftersale_changelist"),
        url("orders_aftersale_change", after_sale.pk),
        url("orders_refund_changelist"),
        url("orders_refund_change", Refund.objects.get().pk),
        url("orders_paymentissue_changelist"),
        url("orders_shippingrule_changelist"),
        url("orders_shippingrule_add"),
        url("orders_shippingrule_change", ShippingRule.objects.get().pk),
        url("members_member_changelist"),
        url("members_member_change", busy.member_id),
        url("app_list", "orders"),
    ]

    statuses = {page: client.get(page).status_code for page in pages}

    assert set(statuses.values()) == {200}
    assert Shipment.objects.count() == 1
