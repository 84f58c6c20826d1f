"""The inventory app's console section, registered from ``InventoryConfig.ready``."""

from django.utils.translation import gettext_lazy as _

from retail.console import NavEntry, console_nav_register


def register() -> None:
    console_nav_register(NavEntry("stock", _("Stock"), "stock", "inventory.view_stockitem", 50))
