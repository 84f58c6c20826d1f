"""Routing paid delivery orders to fulfilment partners (partners.routing): the first rule by
priority whose conditions hold and whose partner serves the order's store wins, the decision
is a ``PartnerOrder`` and an ``order.routed`` event, and it is taken once."""

import itertools

import pytest
from django.core.exceptions import ValidationError

from inventory.services import StockLine, stock_receive
from orders.models import Order, OrderEvent
from orders.payments import payment_confirm, payment_start
from orders.pricing import BasketLine
from orders.services import checkout_place
from partners import services
from partners.models import PartnerOrder, RoutingRule
from partners.routing import partner_route_order
from retail.models import OutboxEvent
from tests import factories
from tests.partners.conftest import ADDRESS

pytestmark = pytest.mark.django_db

_references = itertools.count(1)


@pytest.fixture
def stores(warehouse, store_a, store_b, goods):
    """The warehouse; store A ships parcels itself; store B only delivers in its radius; a
    Hangzhou store delivering in its radius. Each has rice and oil."""
    store_a.offers_ship_from_store = True
    store_a.save(update_fields=["offers_ship_from_store"])
    store_b.delivery_radius_m = 3000
    store_b.save(update_fields=["delivery_radius_m"])
    hangzhou = factories.StoreFactory(
        code="HZ001", name="西湖店", province="浙江省", city="杭州市", delivery_radius_m=3000
    )
    rice, oil = goods
    for store in (store_b, hangzhou):
        stock_receive(
            store=store,
            lines=[StockLine(rice, 20), StockLine(oil, 20)],
            idempotency_key=f"seed-{store.code}",
        )
    return {"WH01": warehouse, "SH001": store_a, "SH002": store_b, "HZ001": hangzhou}


@pytest.fixture
def paid(testpay, member, goods):
    """An order at ``store``, paid through a provider confirming later: routing runs in the
    payment. After-commit work (pushes) is not run, so no partner is called."""

    def _paid(store, *, channel="mini_shop", fulfilment="delivery"):
        order = checkout_place(
            channel=channel,
            store=store,
            fulfilment=fulfilment,
            lines=[BasketLine(goods[0].pk, 1)],
            client_reference=f"route-{next(_references)}",
            member=None if channel == "partner" else member,
            address=ADDRESS if fulfilment == "delivery" else None,
        )
        payment, _start = payment_start(order=order, provider=testpay)
        payment_confirm(
            provider=testpay,
            out_trade_no=payment.out_trade_no,
            transaction_id=f"tx-{payment.out_trade_no}",
            amount_fen=payment.amount_fen,
        )
        order.refresh_from_db()
        assert order.status == "paid"
        return order

    return _paid


def partner(name, kind="fulfilment", *, stores=(), cities=(), active=True):
    created, _secret = services.partner_create(
        name=name, kind=kind, stores=stores, cities=cities, active=active
    )
    return created


def rule(owner, priority=100, *, stores=(), **conditions):
    created = RoutingRule.objects.create(
        name=f"{owner.name} {priority}", partner=owner, priority=priority, **conditions
    )
    created.stores.set(stores)
    return created


def routed_to(order) -> str | None:
    link = PartnerOrder.objects.filter(order=order, role="fulfil").select_related("partner")
    return link.first().partner.name if link.exists() else None


def test_the_first_matching_rule_by_priority_wins(stores, paid):
    everywhere = partner("达达")
    courier_b = partner("闪送")
    rule(everywhere, 20)
    first = rule(courier_b, 10)
    rule(everywhere, 1, store_kind="store")  # tried first, does not match a warehouse order
    rule(partner("UU跑腿"), 10)  # same priority as the winner, created later

    order = paid(stores["WH01"])

    link = PartnerOrder.objects.get(order=order)
    assert (link.partner.name, link.role, link.rule_id) == ("闪送", "fulfil", first.pk)


@pytest.mark.parametrize(
    ("conditions", "routed", "not_routed"),
    [
        ({"store_kind": "warehouse"}, ["WH01"], ["SH001", "SH002"]),
        ({"store_kind": "store"}, ["SH001", "SH002"], ["WH01"]),
        ({"without_ship_from_store": True}, ["WH01", "SH002"], ["SH001"]),
        ({"stores": ["SH002", "WH01"]}, ["WH01", "SH002"], ["SH001"]),
        ({"store_kind": "store", "without_ship_from_store": True}, ["SH002"], ["WH01", "SH001"]),
        ({}, ["WH01", "SH001", "SH002"], []),
    ],
)
def test_a_rule_routes_the_stores_its_conditions_name(stores, paid, conditions, routed, not_routed):
    chosen = [stores[code] for code in conditions.pop("stores", [])]
    rule(partner("达达"), stores=chosen, **conditions)

    outcome = {code: routed_to(paid(stores[code])) for code in routed + not_routed}

    assert outcome == {**dict.fromkeys(routed, "达达"), **dict.fromkeys(not_routed)}


def test_a_rule_with_channels_routes_only_orders_of_those_channels(stores, paid):
    rule(partner("达达"), channels=["h5", "partner"])

    h5 = paid(stores["WH01"], channel="h5")
    by_partner = paid(stores["WH01"], channel="partner")
    mini_shop = paid(stores["WH01"], channel="mini_shop")

    assert (routed_to(h5), routed_to(by_partner), routed_to(mini_shop)) == ("达达", "达达", None)


def test_a_partner_serves_the_stores_and_the_cities_it_names(stores, paid):
    rule(partner("杭州配送", cities=["杭州市"]), 1)
    rule(partner("人民广场配送", stores=[stores["SH002"]]), 2)
    rule(partner("静安配送", stores=[stores["SH001"]], cities=["杭州市"]), 3)

    outcome = {code: routed_to(paid(stores[code])) for code in ("HZ001", "SH002", "SH001", "WH01")}

    assert outcome == {
        "HZ001": "杭州配送",
        "SH002": "人民广场配送",
        "SH001": "静安配送",
        "WH01": None,  # in Shanghai, named by none of them
    }


def test_a_partner_naming_no_store_and_no_city_serves_every_store(stores, paid):
    rule(partner("全国配送"))

    outcome = {code: routed_to(paid(stores[code])) for code in ("HZ001", "SH002", "WH01")}

    assert outcome == dict.fromkeys(("HZ001", "SH002", "WH01"), "全国配送")


def test_inactive_rules_and_inactive_partners_are_skipped(stores, paid):
    rule(partner("停用的伙伴", active=False), 1)
    rule(partner("规则停用"), 2, active=False)
    rule(partner("顺丰"), 3)

    assert routed_to(paid(stores["WH01"])) == "顺丰"


def test_a_sales_channel_is_never_routed_orders_but_a_partner_doing_both_is(stores, paid):
    rule(partner("美团闪购", "sales_channel"), 1)
    first = paid(stores["WH01"])
    rule(partner("京东到家", "both"), 2)
    second = paid(stores["WH01"])

    assert (routed_to(first), routed_to(second)) == (None, "京东到家")


def test_pickup_orders_are_never_routed(stores, paid):
    rule(partner("全国配送"))

    order = paid(stores["SH001"], fulfilment="pickup")

    assert PartnerOrder.objects.count() == 0
    assert not OrderEvent.objects.filter(kind="order.routed").exists()
    assert not OutboxEvent.objects.filter(event_type="order.routed").exists()
    assert order.events.filter(kind="order.paid").count() == 1


def test_routing_again_keeps_the_first_partner(stores, paid):
    first_rule = rule(partner("达达"), 10)
    order = paid(stores["WH01"])
    first_link = PartnerOrder.objects.get(order=order)
    first_rule.active = False
    first_rule.save()
    rule(partner("闪送"), 1)

    again = partner_route_order(Order.objects.get(pk=order.pk))

    assert again == first_link
    assert list(PartnerOrder.objects.values_list("partner__name", "rule_id")) == [
        ("达达", first_rule.pk)
    ]
    assert order.events.filter(kind="order.routed").count() == 1
    assert OutboxEvent.objects.filter(event_type="order.routed").count() == 1


def test_the_decision_is_a_partner_order_and_an_order_routed_event(stores, paid):
    courier = partner("顺丰同城")
    chosen = rule(courier, 10, store_kind="warehouse")

    order = paid(stores["WH01"])

    link = PartnerOrder.objects.get()
    assert (link.partner, link.order, link.role, link.rule) == (courier, order, "fulfil", chosen)
    assert (link.idempotency_key, link.request_digest, link.acknowledged_at) == ("", "", None)
    event = order.events.get(kind="order.routed")
    assert (
        event.from_status,
        event.to_status,
        event.actor,
        event.actor_kind,
        event.note,
        event.data,
    ) == (
        "",
        "",
        None,
        "system",
        "顺丰同城",
        {"partner_id": courier.pk, "partner": "顺丰同城", "rule_id": chosen.pk},
    )
    # Recorded after the payment, in its transaction: the order is paid in the snapshot.
    assert list(order.events.values_list("kind", flat=True)) == [
        "order.created",
        "order.paid",
        "order.routed",
    ]
    published = OutboxEvent.objects.get(event_type="order.routed")
    assert (published.aggregate_type, published.aggregate_id) == ("order", str(order.pk))
    assert published.payload["event"]["data"] == event.data
    assert published.payload["order"]["status"] == "paid"
    assert published.payload["order"]["number"] == order.number


def test_no_matching_rule_leaves_the_order_to_its_store(stores, paid):
    rule(partner("达达"), store_kind="store")

    order = paid(stores["WH01"])

    assert PartnerOrder.objects.count() == 0
    assert not order.events.filter(kind="order.routed").exists()
    assert not OutboxEvent.objects.filter(event_type="order.routed").exists()
    assert partner_route_order(Order.objects.get(pk=order.pk)) is None


@pytest.mark.parametrize("extra_rules", [0, 6])
def test_routing_an_order_costs_the_same_queries_however_many_rules(
    stores, paid, django_assert_num_queries, extra_rules
):
    order = paid(stores["SH002"])  # no rule yet: its store fulfils it
    for index in range(extra_rules):
        rule(
            partner(f"伙伴{index}", stores=[stores["SH001"], stores["WH01"]]),
            index,
            stores=[stores["WH01"], stores["HZ001"]],
        )
    winner = rule(partner("人民广场配送", stores=[stores["SH002"]]), 50)
    locked = Order.objects.select_related("store").get(pk=order.pk)

    # The existing link; rules, their stores, their partners' stores; the link; the event, the
    # order's lines and shipments for the snapshot, the outbox event and its deliveries.
    with django_assert_num_queries(10):
        link = partner_route_order(locked)

    assert (link.partner.name, link.rule) == ("人民广场配送", winner)


def test_a_rule_names_known_channels_only(courier, english):
    unknown = RoutingRule(name="x", partner=courier, channels=["mini_shop", "taobao"])
    not_a_list = RoutingRule(name="y", partner=courier, channels="mini_shop")

    for refused in (unknown, not_a_list):
        with pytest.raises(ValidationError) as error:
            refused.clean()
        assert error.value.message_dict == {
            "channels": ["A list of channels among: counter, h5, mini_shop, partner."]
        }
    RoutingRule(name="z", partner=courier, channels=["mini_shop", "partner"]).clean()
    RoutingRule(name="z", partner=courier, channels=[]).clean()
