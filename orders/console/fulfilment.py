"""Console: ship from store.

- The queue: the store's paid delivery orders not yet fully shipped, oldest payment first.
  Orders routed to a fulfilment partner are not the store's to ship: the partners app records
  the routing as an ``order.routed`` event on the order's own timeline, which is what the queue
  leaves out (orders never imports partners).
- The pick list: every unshipped line of the chosen orders (all in the queue when none is
  chosen) summed by SKU, with product name, spec and barcode, to print.
- Per order, pack and ship: carrier, tracking number and the lines in the parcel (all unshipped
  ones ticked; untick some to split) -> ``orders.services.shipment_create``; the order is
  ``shipped`` when its last line leaves. The service's refusals (tracking number taken, order
  not shippable, lines not this order's or shipped already) are shown and change nothing.

Carrier codes are the ones WeChat's shipping upload understands: each is a key of
``WECHAT_DELIVERY_IDS`` or, for the store's own riders, in ``WECHAT_SAME_CITY_CARRIERS``.
"""

from django import forms
from django.contrib import messages
from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from orders.models import Fulfilment, Order, OrderEvent, OrderLine, Shipment
from orders.services import shipment_create
from retail.console import console_view
from retail.console.context import console_frame
from retail.errors import BusinessError
from retail.models import Store

PERMISSION = "orders.add_shipment"
S = Order.Status
ROUTED = "order.routed"
# The queue and a pick list take at most this many orders, oldest first.
QUEUE_LIMIT = 200

CARRIERS = (
    ("SF", gettext_lazy("SF Express")),
    ("ZTO", gettext_lazy("ZTO Express")),
    ("YTO", gettext_lazy("YTO Express")),
    ("STO", gettext_lazy("STO Express")),
    ("YD", gettext_lazy("Yunda Express")),
    ("JTSD", gettext_lazy("J&T Express")),
    ("EMS", gettext_lazy("EMS (China Post)")),
    ("JD", gettext_lazy("JD Logistics")),
    ("STORE", gettext_lazy("Same-city delivery by the store")),
)
CARRIER_NAMES = dict(CARRIERS)


def carrier_name(code: str) -> str:
    return str(CARRIER_NAMES.get(code, code))


class ShipForm(forms.Form):
    carrier_code = forms.ChoiceField(label=gettext_lazy("Carrier"), choices=CARRIERS)
    tracking_number = forms.CharField(label=gettext_lazy("Tracking number"), max_length=64)


def _routed() -> Exists:
    return Exists(OrderEvent.objects.filter(order=OuterRef("pk"), kind=ROUTED))


def _queue(store: Store) -> QuerySet[Order]:
    """The store's paid delivery orders still to ship, not routed to a partner, oldest first.
    A partly shipped order stays ``paid`` until its last line leaves, so it is here too."""
    return (
        Order.objects.filter(store=store, fulfilment=Fulfilment.DELIVERY, status=S.PAID)
        .exclude(_routed())
        .order_by("paid_at", "pk")
    )


@console_view(PERMISSION)
def page(request: HttpRequest, store_code: str) -> HttpResponse:
    store = request.console_store
    orders = list(
        _queue(store).prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.order_by("pk"))
        )[: QUEUE_LIMIT + 1]
    )
    more = len(orders) > QUEUE_LIMIT
    orders = orders[:QUEUE_LIMIT]
    for order in orders:
        lines = list(order.lines.all())
        order.to_ship = [line for line in lines if not line.shipped]
        order.units_to_ship = sum(line.quantity for line in order.to_ship)
        order.lines_shipped = len(lines) - len(order.to_ship)
    context = {
        **console_frame(request, section="fulfilment"),
        "orders": orders,
        "more": more,
        "queue_limit": QUEUE_LIMIT,
        "units_to_ship": sum(order.units_to_ship for order in orders),
    }
    return render(request, "console/fulfilment.html", context)


@console_view(PERMISSION)
def pick_list(request: HttpRequest, store_code: str) -> HttpResponse:
    store = request.console_store
    chosen = [
        value
        for value in request.GET.getlist("order")
        if value.isascii() and value.isdigit() and len(value) <= 18
    ]
    queue = _queue(store)
    if chosen:
        queue = queue.filter(pk__in=chosen)
    orders = list(queue.only("pk", "number", "paid_at")[:QUEUE_LIMIT])
    rows = list(
        OrderLine.objects.filter(order__in=[order.pk for order in orders], shipped=False)
        .values("sku_id", "sku__code", "sku__barcode", "sku__product__name", "sku__attributes")
        .annotate(quantity=Sum("quantity"), orders=Count("order", distinct=True))
        .order_by("sku__product__name", "sku__code")
    )
    for row in rows:
        row["spec"] = " / ".join(str(value) for value in (row["sku__attributes"] or {}).values())
    context = {
        **console_frame(request, section="fulfilment"),
        "orders": orders,
        "chosen": bool(chosen),
        "rows": rows,
        "units": sum(row["quantity"] for row in rows),
        "printed_at": timezone.now(),
    }
    return render(request, "console/fulfilment_pick_list.html", context)


def _order_page(
    request: HttpRequest,
    order_id: int,
    *,
    form: ShipForm | None = None,
    ticked: list[str] | None = None,
    refusal: str = "",
) -> HttpResponse:
    """The order with its pack-and-ship form; after a refused shipment, the form as it was
    sent and why it was refused (on the page, not as a message: a message added while
    rendering would show again on the next page)."""
    store = request.console_store
    order = get_object_or_404(
        Order.objects.select_related("member").prefetch_related(
            Prefetch("lines", queryset=OrderLine.objects.select_related("sku").order_by("pk")),
            Prefetch(
                "shipments",
                queryset=Shipment.objects.select_related("created_by")
                .prefetch_related(Prefetch("lines", queryset=OrderLine.objects.order_by("pk")))
                .order_by("shipped_at", "pk"),
            ),
        ),
        pk=order_id,
        store=store,
    )
    routed = OrderEvent.objects.filter(order=order, kind=ROUTED).order_by("pk").first()
    lines = list(order.lines.all())
    shipments = list(order.shipments.all())
    for shipment in shipments:
        shipment.carrier_name = carrier_name(shipment.carrier_code)
    shippable = (
        order.fulfilment == Fulfilment.DELIVERY and order.status == S.PAID and routed is None
    )
    to_ship = [line for line in lines if not line.shipped]
    ticked = {line.line_key for line in to_ship} if ticked is None else set(ticked)
    context = {
        **console_frame(request, section="fulfilment"),
        "order": order,
        "lines": lines,
        "ticked": ticked,
        "shipments": shipments,
        "routed": routed,
        "shippable": shippable,
        "form": form or ShipForm(),
        "refusal": refusal,
    }
    return render(request, "console/fulfilment_order.html", context)


@console_view(PERMISSION)
def order_page(request: HttpRequest, store_code: str, order_id: int) -> HttpResponse:
    return _order_page(request, order_id)


@console_view(PERMISSION)
@require_POST
def ship(request: HttpRequest, store_code: str, order_id: int) -> HttpResponse:
    store = request.console_store
    order = get_object_or_404(
        Order.objects.only("pk", "number", "store_id").annotate(routed=_routed()),
        pk=order_id,
        store=store,
    )
    form = ShipForm(request.POST)
    line_keys = request.POST.getlist("lines")
    if not form.is_valid():
        return _order_page(request, order.pk, form=form, ticked=line_keys)
    if order.routed:
        refusal = _("This order is fulfilled by a partner: it is not shipped from the store.")
        return _order_page(request, order.pk, form=form, ticked=line_keys, refusal=refusal)
    carrier, tracking = form.cleaned_data["carrier_code"], form.cleaned_data["tracking_number"]
    recorded_before = Shipment.objects.filter(
        order=order, carrier_code=carrier, tracking_number=tracking
    ).exists()
    try:
        shipment_create(
            order=order.pk,
            carrier_code=carrier,
            tracking_number=tracking,
            line_keys=line_keys,
            actor=request.user,
        )
    except BusinessError as error:
        return _order_page(request, order.pk, form=form, ticked=line_keys, refusal=error.message)
    names = {"number": order.number, "carrier": carrier_name(carrier), "tracking": tracking}
    if recorded_before:
        messages.info(request, _("Parcel %(carrier)s %(tracking)s was recorded already.") % names)
        return redirect("console:fulfilment-order", store_code=store.code, order_id=order.pk)
    left = OrderLine.objects.filter(order=order, shipped=False).count()
    if left == 0:
        messages.success(request, _("Order %(number)s shipped: %(carrier)s %(tracking)s.") % names)
        return redirect("console:fulfilment", store_code=store.code)
    messages.success(
        request,
        ngettext(
            "Parcel %(carrier)s %(tracking)s of order %(number)s recorded; %(left)d line still "
            "to ship.",
            "Parcel %(carrier)s %(tracking)s of order %(number)s recorded; %(left)d lines still "
            "to ship.",
            left,
        )
        % {**names, "left": left},
    )
    return redirect("console:fulfilment-order", store_code=store.code, order_id=order.pk)


urlpatterns = [
    path("fulfilment/", page, name="fulfilment"),
    path("fulfilment/pick-list/", pick_list, name="pick-list"),
    path("fulfilment/<int:order_id>/", order_page, name="fulfilment-order"),
    path("fulfilment/<int:order_id>/ship/", ship, name="fulfilment-ship"),
]
