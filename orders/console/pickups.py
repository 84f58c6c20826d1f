"""Console: pickups.

The shopper shows her 6-digit pickup code at the store. Staff type or scan it and the page
shows the order it opens (lines, member, status) to check against the goods; "Hand over" then
calls ``orders.services.pickup_handover``: the stock is consumed and the order completed, and
its ``order.completed`` outbox event is how WeChat hears of it. A code that opens no order
waiting at this store is a clear refusal and changes nothing.

Below the code box, the store's paid pickup orders to prepare ("Mark ready":
``orders.services.order_mark_ready``) and the orders packed and waiting for their shoppers,
oldest first. The lists show no pickup codes: the code is the shopper's proof.
"""

import re
import unicodedata
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from orders.models import Fulfilment, Order, OrderLine
from orders.services import order_mark_ready, pickup_handover
from retail.console import console_view
from retail.console.context import console_frame
from retail.errors import BusinessError
from retail.models import Store

PERMISSION = "orders.change_order"
S = Order.Status
# Each list shows at most this many orders, oldest first.
LIST_LIMIT = 100
PICKUP_CODE = re.compile(r"[0-9]{6}")


def _normalised_code(text: str) -> str:
    """What a scanner or a keyboard gave, as the code is stored: full-width digits (a Chinese
    input method) made ASCII, spaces dropped."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


class CodeForm(forms.Form):
    code = forms.CharField(label=gettext_lazy("Pickup code"), max_length=20)

    def clean_code(self) -> str:
        code = _normalised_code(self.cleaned_data["code"])
        if not PICKUP_CODE.fullmatch(code):
            raise forms.ValidationError(gettext_lazy("A pickup code is 6 digits."))
        return code


class HandoverForm(CodeForm):
    # The order the clerk checked: handing over is refused if the code now opens another.
    order = forms.CharField(max_length=20)


def _lines() -> Prefetch:
    return Prefetch("lines", queryset=OrderLine.objects.order_by("pk"))


def _waiting(store: Store, code: str) -> Order | None:
    """The order waiting at ``store`` under ``code`` (codes are unique among a store's open
    pickup orders), with its member and lines."""
    return (
        Order.objects.filter(
            store=store,
            pickup_code=code,
            fulfilment=Fulfilment.PICKUP,
            status__in=[S.PAID, S.READY_FOR_PICKUP],
        )
        .select_related("member")
        .prefetch_related(_lines())
        .first()
    )


def _not_waiting_message(store: Store, code: str) -> str:
    unpaid = Order.objects.filter(
        store=store, pickup_code=code, fulfilment=Fulfilment.PICKUP, status=S.PENDING_PAYMENT
    ).exists()
    if unpaid:
        return _("The order with this code is not paid yet: it cannot be handed over.")
    return _("No order waiting for pickup has this code at this store.")


def _listed(store: Store, status: str) -> tuple[list[Order], bool]:
    """The store's pickup orders in ``status``, oldest payment first, and whether more wait
    than are shown."""
    orders = list(
        Order.objects.filter(store=store, fulfilment=Fulfilment.PICKUP, status=status)
        .select_related("member")
        .prefetch_related(_lines())
        .order_by("paid_at", "pk")[: LIST_LIMIT + 1]
    )
    return orders[:LIST_LIMIT], len(orders) > LIST_LIMIT


def _page_url(store: Store, code: str = "") -> str:
    url = reverse("console:pickups", kwargs={"store_code": store.code})
    return f"{url}?{urlencode({'code': code})}" if code else url


@console_view(PERMISSION)
def page(request: HttpRequest, store_code: str) -> HttpResponse:
    store = request.console_store
    form = CodeForm(request.GET if "code" in request.GET else None)
    found, lookup_error = None, ""
    if form.is_bound and form.is_valid():
        code = form.cleaned_data["code"]
        found = _waiting(store, code)
        if found is None:
            # Shown on this page, not as a message: a message added while rendering would
            # show again on the next page.
            lookup_error = _not_waiting_message(store, code)
    to_prepare, more_to_prepare = _listed(store, S.PAID)
    waiting, more_waiting = _listed(store, S.READY_FOR_PICKUP)
    context = {
        **console_frame(request, section="pickups"),
        "form": form,
        "found": found,
        "lookup_error": lookup_error,
        "to_prepare": to_prepare,
        "more_to_prepare": more_to_prepare,
        "waiting": waiting,
        "more_waiting": more_waiting,
        "list_limit": LIST_LIMIT,
    }
    return render(request, "console/pickups.html", context)


@console_view(PERMISSION)
@require_POST
def handover(request: HttpRequest, store_code: str) -> HttpResponse:
    store = request.console_store
    form = HandoverForm(request.POST)
    if not form.is_valid():
        errors = form.errors.get("code") or [_("Check the order before handing it over.")]
        messages.error(request, errors[0])
        return redirect(_page_url(store))
    code, number = form.cleaned_data["code"], form.cleaned_data["order"]
    current = _waiting(store, code)
    if current is None:
        messages.error(request, _not_waiting_message(store, code))
        return redirect(_page_url(store))
    if current.number != number:
        messages.error(
            request, _("This code now opens another order than the one checked: check it again.")
        )
        return redirect(_page_url(store, code))
    try:
        order = pickup_handover(store=store, pickup_code=code, actor=request.user)
    except BusinessError as error:
        messages.error(request, error.message)
        return redirect(_page_url(store))
    messages.success(
        request,
        _("Order %(number)s handed over: the goods left the store and the order is completed.")
        % {"number": order.number},
    )
    return redirect(_page_url(store))


@console_view(PERMISSION)
@require_POST
def mark_ready(request: HttpRequest, store_code: str, order_id: int) -> HttpResponse:
    store = request.console_store
    order = get_object_or_404(
        Order.objects.only("pk", "number", "status", "store_id"),
        pk=order_id,
        store=store,
        fulfilment=Fulfilment.PICKUP,
    )
    if order.status == S.READY_FOR_PICKUP:
        messages.info(request, _("Order %(number)s is ready already.") % {"number": order.number})
        return redirect(_page_url(store))
    try:
        order_mark_ready(order=order.pk, actor=request.user)
    except BusinessError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("Order %(number)s is ready: it waits for its shopper.") % {"number": order.number},
        )
    return redirect(_page_url(store))


urlpatterns = [
    path("pickups/", page, name="pickups"),
    path("pickups/handover/", handover, name="pickup-handover"),
    path("pickups/<int:order_id>/ready/", mark_ready, name="pickup-ready"),
]
