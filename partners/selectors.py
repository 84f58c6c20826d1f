"""Reads of the partner API: a partner's orders and the stock it may sell or fulfil."""

from collections.abc import Sequence
from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet
from django.utils.translation import gettext as _

from inventory.selectors import availability_for_skus
from orders.models import Order, Shipment
from partners.models import Partner, PartnerOrder
from retail.errors import BusinessError
from retail.models import SKU, Store


def partner_orders(*, partner: Partner, updated_since: datetime | None = None) -> QuerySet[Order]:
    """The orders the partner fulfils or sold, with what the API shows of each: a fixed number
    of queries whatever the page."""
    orders = (
        Order.objects.filter(pk__in=PartnerOrder.objects.filter(partner=partner).values("order_id"))
        .select_related("store")
        .prefetch_related(
            "lines",
            Prefetch(
                "shipments",
                queryset=Shipment.objects.prefetch_related("lines").order_by("pk"),
            ),
            Prefetch(
                "partner_links",
                queryset=PartnerOrder.objects.filter(partner=partner).order_by("role"),
                to_attr="links_of_partner",
            ),
        )
    )
    if updated_since is not None:
        orders = orders.filter(updated_at__gte=updated_since)
    return orders


def partner_order(*, partner: Partner, number: str) -> Order:
    order = partner_orders(partner=partner).filter(number=number).first()
    if order is None:
        raise BusinessError("not_found", _("No such order among this partner's."), status_code=404)
    return order


def partner_stores(*, partner: Partner) -> QuerySet[Store]:
    """Active stores the partner serves (its stores and cities; every store when it names
    neither)."""
    stores = Store.objects.filter(active=True)
    store_ids = list(partner.stores.values_list("pk", flat=True))
    if store_ids or partner.cities:
        stores = stores.filter(Q(pk__in=store_ids) | Q(city__in=partner.cities))
    return stores.order_by("code")


def partner_stock(
    *, partner: Partner, store_codes: Sequence[str], sku_codes: Sequence[str]
) -> list[dict]:
    """Units available online for each (store, SKU) asked, among the partner's stores; unknown
    codes are refused with the codes named."""
    stores = {
        store.code: store for store in partner_stores(partner=partner).filter(code__in=store_codes)
    }
    skus = {sku.code: sku for sku in SKU.objects.filter(code__in=sku_codes, active=True)}
    for field, asked, known in (("store", store_codes, stores), ("sku", sku_codes, skus)):
        unknown = [code for code in asked if code not in known]
        if unknown:
            raise BusinessError(
                f"{field}_not_found",
                _("No such store or SKU among this partner's."),
                fields={field: [", ".join(unknown)[:200]]},
                status_code=404,
            )
    units = availability_for_skus(
        sku_ids=[sku.pk for sku in skus.values()],
        store_ids=[store.pk for store in stores.values()],
        online=True,
    )
    return [
        {
            "store": store_code,
            "sku": sku_code,
            "available": units[stores[store_code].pk, skus[sku_code].pk],
        }
        for store_code in store_codes
        for sku_code in sku_codes
    ]
