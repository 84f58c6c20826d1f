from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = _("Orders")

    def ready(self) -> None:
        from members.services.identity import (
            member_erase_participant_register,
            member_merge_participant_register,
        )
        from orders.member_merge import orders_member_erase, orders_member_move, reviews_member_move
        from retail.access import Role, grant_role_permissions

        member_merge_participant_register("orders", orders_member_move)
        member_merge_participant_register("reviews", reviews_member_move)
        member_erase_participant_register("orders", orders_member_erase)

        seeing = {
            "orders.view_order",
            "orders.view_orderevent",
            "orders.view_payment",
            "orders.view_refund",
            "orders.view_aftersale",
            "orders.view_shipment",
            "members.view_member",
        }
        # Fulfilling: marking ready, handing over pickups, shipping.
        fulfilling = {"orders.change_order", "orders.add_shipment"}
        # Money back is a manager's call.
        refunding = {"orders.add_refund", "orders.change_aftersale", "orders.view_paymentissue"}
        # Selling at the counter (the console's POS).
        selling = {"orders.add_order"}
        grant_role_permissions(Role.CLERK, seeing | fulfilling | selling)
        grant_role_permissions(Role.STORE_MANAGER, seeing | fulfilling | selling | refunding)

        from orders.console.nav import register

        register()
