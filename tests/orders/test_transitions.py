"""The state machine: every allowed move, every forbidden one, and one door for the status."""

import ast
import itertools
from pathlib import Path

import pytest

from orders.models import ActorKind, Fulfilment, Order, OrderEvent
from orders.transitions import TRANSITIONS, Cause, order_transition
from retail.errors import BusinessError
from retail.models import OutboxEvent
from tests import factories

S = Order.Status
ROOT = Path(__file__).resolve().parents[2]

ALLOWED = [
    (from_status, to, cause, fulfilment)
    for (from_status, to), rule in TRANSITIONS.items()
    for cause in sorted(rule.causes)
    for fulfilment in sorted(rule.fulfilments or Fulfilment.values)
]


def test_the_table_is_the_documented_machine():
    assert {pair: sorted(rule.causes) for pair, rule in TRANSITIONS.items()} == {
        ("pending_payment", "paid"): ["payment"],
        ("pending_payment", "cancelled"): ["expiry", "shopper", "staff"],
        ("paid", "ready_for_pickup"): ["ready"],
        ("paid", "shipped"): ["shipment"],
        ("paid", "completed"): ["counter_sale"],
        ("paid", "cancelled"): ["refund"],
        ("ready_for_pickup", "completed"): ["pickup"],
        ("ready_for_pickup", "cancelled"): ["refund"],
        ("shipped", "delivered"): ["delivery"],
        ("delivered", "completed"): ["auto_complete", "receipt_confirmed"],
    }
    assert {
        pair: sorted(rule.fulfilments) for pair, rule in TRANSITIONS.items() if rule.fulfilments
    } == {
        ("paid", "ready_for_pickup"): ["pickup"],
        ("paid", "shipped"): ["delivery"],
        ("paid", "completed"): ["counter"],
    }


@pytest.mark.django_db
@pytest.mark.parametrize(("from_status", "to", "cause", "fulfilment"), ALLOWED)
def test_allowed_transition_moves_writes_an_event_and_an_outbox_event(
    from_status, to, cause, fulfilment
):
    order = factories.OrderFactory(status=from_status, fulfilment=fulfilment)
    staff = factories.UserFactory()

    moved = order_transition(
        order=order, to=to, cause=cause, actor=staff, actor_kind=ActorKind.STAFF
    )

    order.refresh_from_db()
    assert (moved.status, order.status) == (to, to)
    event = OrderEvent.objects.get(order=order)
    assert (event.kind, event.from_status, event.to_status, event.actor, event.data) == (
        f"order.{to}",
        from_status,
        to,
        staff,
        {"cause": cause},
    )
    outbox = OutboxEvent.objects.get(aggregate_type="order", aggregate_id=order.pk)
    assert outbox.event_type == f"order.{to}"
    assert outbox.payload["order"]["status"] == to
    assert outbox.payload["order"]["number"] == order.number
    assert (order.paid_at is not None) == (to == S.PAID)
    assert (order.closed_at is not None) == (to in (S.COMPLETED, S.CANCELLED))


FORBIDDEN = [
    (from_status, to)
    for from_status, to in itertools.product(S.values, S.values)
    if (from_status, to) not in TRANSITIONS
]


@pytest.mark.django_db
@pytest.mark.parametrize(("from_status", "to"), FORBIDDEN)
def test_forbidden_transition_is_refused_and_changes_nothing(from_status, to):
    order = factories.OrderFactory(status=from_status)
    every_cause = list(Cause.values)

    for cause in every_cause:
        with pytest.raises(BusinessError) as refused:
            order_transition(order=order, to=to, cause=cause)
        assert refused.value.code == "illegal_transition"
        assert refused.value.fields == {"status": [from_status]}

    order.refresh_from_db()
    assert order.status == from_status
    assert OrderEvent.objects.count() == 0
    assert OutboxEvent.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("from_status", "to", "cause", "fulfilment"),
    [
        ("pending_payment", "cancelled", "refund", "delivery"),  # wrong cause
        ("paid", "cancelled", "staff", "delivery"),  # paid orders cancel only by refund
        ("paid", "shipped", "shipment", "pickup"),  # pickup orders are not shipped
        ("paid", "ready_for_pickup", "ready", "delivery"),
        ("paid", "completed", "counter_sale", "delivery"),
    ],
)
def test_allowed_pair_with_the_wrong_cause_or_fulfilment_is_refused(
    from_status, to, cause, fulfilment
):
    order = factories.OrderFactory(status=from_status, fulfilment=fulfilment)

    with pytest.raises(BusinessError) as refused:
        order_transition(order=order, to=to, cause=cause)

    assert refused.value.code == "illegal_transition"
    order.refresh_from_db()
    assert order.status == from_status
    assert OrderEvent.objects.count() == 0


@pytest.mark.django_db
def test_transition_uses_the_status_in_the_database_not_the_callers_copy():
    order = factories.OrderFactory(status=S.PENDING_PAYMENT)
    stale = Order.objects.get(pk=order.pk)
    order_transition(order=order, to=S.CANCELLED, cause=Cause.SHOPPER)

    with pytest.raises(BusinessError) as refused:
        order_transition(order=stale, to=S.PAID, cause=Cause.PAYMENT)

    assert refused.value.fields == {"status": ["cancelled"]}
    assert Order.objects.get(pk=order.pk).status == S.CANCELLED


# --- One door ----------------------------------------------------------------------------------


def _status_writes(path: Path) -> list[str]:
    """Places in ``path`` that write an order's status: ``<x>.status = ...`` on a name that
    says order, ``Order.objects....update(status=...)``, ``bulk_update(..., ["status"])``,
    and ``Order(...)`` / ``Order.objects.create(...)`` with a status."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def chain_root(node: ast.AST) -> str:
        while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
            node = node.func if isinstance(node, ast.Call) else node.value
        return node.id if isinstance(node, ast.Name) else ""

    def where(node: ast.AST) -> str:
        return f"{path.relative_to(ROOT)}:{node.lineno}"

    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                elements = target.elts if isinstance(target, ast.Tuple) else [target]
                for element in elements:
                    if (
                        isinstance(element, ast.Attribute)
                        and element.attr == "status"
                        and "order" in chain_root(element).lower()
                    ):
                        found.append(where(node))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method, root = node.func.attr, chain_root(node.func)
            keywords = {kw.arg for kw in node.keywords}
            # ``**changes`` (keyword None) could hold a status: it counts.
            if (
                root == "Order"
                and method in {"update", "create", "get_or_create", "update_or_create"}
                and (keywords & {"status", "defaults", None})
            ):
                found.append(where(node))
            if method == "bulk_update" and "status" in ast.unparse(node):
                found.append(where(node))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "Order"
            and any(kw.arg == "status" for kw in node.keywords)
        ):
            found.append(where(node))
    return found


def test_only_order_transition_writes_the_order_status():
    apps = ["retail", "inventory", "orders", "members", "wechat", "partners"]
    writes = [
        place
        for app in apps
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts
        for place in _status_writes(path)
    ]
    transitions = (ROOT / "orders" / "transitions.py").read_text().splitlines()
    outside = [
        place
        for place in writes
        if not place.startswith("orders/transitions.py:")
        or "def order_transition" not in "\n".join(transitions[: int(place.split(":")[1])])
    ]
    assert outside == []
    # The door itself is found, so the scan does see status writes.
    assert [place.split(":")[0] for place in writes] == ["orders/transitions.py"]


def test_the_scan_catches_a_status_write(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    offender = tmp_path / "offender.py"
    offender.write_text(
        "order.status = 'paid'\n"
        "Order.objects.filter(pk=1).update(status='paid')\n"
        "Order.objects.bulk_update(orders, ['status'])\n"
        "Order(status='paid')\n"
        "Order.objects.filter(pk=1).update(**changes)\n"
        "payment.status = 'succeeded'\n"
    )
    assert _status_writes(offender) == [
        "offender.py:1",
        "offender.py:2",
        "offender.py:3",
        "offender.py:4",
        "offender.py:5",
    ]
