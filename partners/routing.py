"""Routing paid delivery orders to fulfilment partners (``RoutingRule``).

``partner_route_order`` is registered with ``orders.routing`` and runs in the payment's
transaction with the order locked: the first matching rule's partner gets the order (a
``PartnerOrder`` of role ``fulfil``) and the decision goes on the order's timeline as
``order.routed``. Its outbox event is what the partner's ``order.paid`` push is made from
(``partners.pushes``).
"""

from django.db.models import Prefetch, Q

from orders.models import ActorKind, Order
from orders.transitions import order_event_record
from partners.models import Partner, PartnerOrder, RoutingRule
from retail.models import Store

FULFILLING_KINDS = (Partner.Kind.FULFILMENT, Partner.Kind.BOTH)


def partner_serves(partner: Partner, store: Store) -> bool:
    """A partner serves the stores it names and the stores in the cities it names; one that
    names neither serves every store."""
    store_ids = {served.pk for served in partner.stores.all()}
    if not store_ids and not partner.cities:
        return True
    return store.pk in store_ids or store.city in partner.cities


def rule_matches(rule: RoutingRule, order: Order) -> bool:
    store = order.store
    return (
        (not rule.store_kind or store.kind == rule.store_kind)
        and (not rule.without_ship_from_store or not store.offers_ship_from_store)
        and (not rule.channels or order.channel in rule.channels)
        and (not rule.stores.all() or store.pk in {chosen.pk for chosen in rule.stores.all()})
        and partner_serves(rule.partner, store)
    )


def rules_in_force():
    """Active rules of active fulfilment partners, in the order they are tried, with what
    matching needs: three queries in all."""
    return (
        RoutingRule.objects.filter(active=True, partner__active=True)
        .filter(Q(partner__kind__in=FULFILLING_KINDS))
        .select_related("partner")
        .prefetch_related(
            Prefetch("stores", queryset=Store.objects.only("pk")),
            Prefetch("partner__stores", queryset=Store.objects.only("pk")),
        )
        .order_by("priority", "pk")
    )


def partner_route_order(order: Order) -> PartnerOrder | None:
    """Give a just-paid delivery order to the first partner whose rule matches; None when its
    store fulfils it. An order routed already keeps its partner."""
    routed = PartnerOrder.objects.filter(order=order, role=PartnerOrder.Role.FULFIL).first()
    if routed is not None:
        return routed
    rule = next((rule for rule in rules_in_force() if rule_matches(rule, order)), None)
    if rule is None:
        return None
    link = PartnerOrder.objects.create(
        partner=rule.partner, order=order, role=PartnerOrder.Role.FULFIL, rule=rule
    )
    order_event_record(
        order=order,
        kind="order.routed",
        actor=None,
        actor_kind=ActorKind.SYSTEM,
        note=rule.partner.name,
        data={"partner_id": rule.partner.pk, "partner": rule.partner.name, "rule_id": rule.pk},
    )
    return link
