"""Who fulfils a paid delivery order: its store, or a partner another app decides on.

Apps that take orders off a store's hands (``partners``) register a router from their
``ready()``; ``orders`` never imports them. When a delivery order is paid, every router is
asked inside the payment's transaction, under the order's lock, so the decision commits with
the payment and comes before any later change of the order. A router records its decision on
the order's timeline itself (``orders.transitions.order_event_record``) and must not call the
network.
"""

from collections.abc import Callable

from orders.models import Order

Router = Callable[[Order], None]

_routers: dict[str, Router] = {}


def order_router_register(name: str, router: Router) -> None:
    _routers[name] = router


def order_route(order: Order) -> None:
    """Ask every router about a delivery order that has just been paid (called with the order
    locked, in the payment's transaction)."""
    for router in _routers.values():
        router(order)
