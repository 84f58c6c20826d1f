from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PartnersConfig(AppConfig):
    name = "partners"
    verbose_name = _("Partners")

    def ready(self) -> None:
        # Registers the bearer-key scheme with drf-spectacular.
        from orders.payments import provider_register
        from orders.routing import order_router_register
        from partners import auth  # noqa: F401
        from partners.pushes import push_subscribe
        from partners.routing import partner_route_order
        from partners.settlement import PartnerSettlementProvider

        order_router_register("partners", partner_route_order)
        provider_register(PartnerSettlementProvider())
        push_subscribe()
