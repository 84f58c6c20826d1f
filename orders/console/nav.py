"""The orders app's console sections, registered from ``OrdersConfig.ready``."""

from django.utils.translation import gettext_lazy as _

from retail.console import NavEntry, console_nav_register


def register() -> None:
    for entry in (
        NavEntry("dashboard", _("Dashboard"), "dashboard", "orders.view_order", 10, True),
        NavEntry("pos", _("Counter sale"), "pos", "orders.add_order", 20),
        NavEntry("pickups", _("Pickups"), "pickups", "orders.change_order", 30),
        NavEntry("fulfilment", _("Ship from store"), "fulfilment", "orders.add_shipment", 40),
        NavEntry("aftersales", _("After-sales"), "aftersales", "orders.change_aftersale", 60),
        NavEntry("sync", _("Sync health"), "sync", "orders.view_order", 70, True),
    ):
        console_nav_register(entry)
