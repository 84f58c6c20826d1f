from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InventoryConfig(AppConfig):
    name = "inventory"
    verbose_name = _("Inventory")

    def ready(self) -> None:
        from retail.access import Role, grant_role_permissions

        seeing = {
            "inventory.view_stockitem",
            "inventory.view_stockmovement",
            "inventory.view_reservation",
            "inventory.view_transfer",
            "inventory.view_stockcount",
        }
        # Receipts, transfers, counts and write-offs change the books: a manager's call.
        changing = {
            "inventory.change_stockitem",
            "inventory.add_transfer",
            "inventory.change_transfer",
            "inventory.add_stockcount",
            "inventory.change_stockcount",
        }
        grant_role_permissions(Role.CLERK, seeing)
        grant_role_permissions(Role.STORE_MANAGER, seeing | changing)

        from inventory.console.nav import register

        register()
