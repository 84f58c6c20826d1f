"""Console: after-sales. A manager sees the store's open requests (to decide, awaiting the
goods, refund on its way) with their order, lines and amounts; approves or rejects them with a
note, and takes returned goods back into stock (which refunds). Every action is a POST that
needs ``orders.change_aftersale`` in the page's store (clerks: 403); a request of another store
is a 404. Refusals of ``orders.aftersales`` are shown as they are and change nothing."""

from django import forms
from django.contrib import messages
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from orders.aftersales import (
    OPEN_REQUESTS,
    after_sale_approve,
    after_sale_receive_return,
    after_sale_reject,
)
from orders.models import AfterSale, AfterSaleLine, Refund
from retail.console import console_view
from retail.console.context import console_frame
from retail.errors import BusinessError
from retail.templatetags.console import yuan

PERMISSION = "orders.change_aftersale"
# Open requests are at most one per order; the page shows the oldest this many.
PAGE_LIMIT = 100

Kind = AfterSale.Kind
Status = AfterSale.Status


class NoteForm(forms.Form):
    note = forms.CharField(label=gettext_lazy("Note"), max_length=200, required=False, strip=True)


def _open_requests(store) -> tuple[list[AfterSale], bool]:
    """The store's open requests, oldest first, with order, lines and refunds: three queries
    whatever their number."""
    requests = list(
        AfterSale.objects.filter(order__store=store, status__in=OPEN_REQUESTS)
        .select_related("order", "decided_by")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=AfterSaleLine.objects.select_related("order_line").order_by("pk"),
            ),
            Prefetch("refunds", queryset=Refund.objects.order_by("pk")),
        )
        .order_by("created_at", "pk")[: PAGE_LIMIT + 1]
    )
    more = len(requests) > PAGE_LIMIT
    requests = requests[:PAGE_LIMIT]
    for item in requests:
        item.console_lines = [
            {
                "product_name": line.order_line.product_name,
                "sku_code": line.order_line.sku_code,
                "quantity": line.quantity,
                "bought": line.order_line.quantity,
                "unit_price_fen": line.order_line.unit_price_fen,
                # What these units were paid for, as the request computed it.
                "amount_fen": line.order_line.total_fen * line.quantity // line.order_line.quantity,
            }
            for line in item.lines.all()
        ]
        item.console_refunds = list(item.refunds.all())
    return requests, more


def _awaits_goods(after_sale: AfterSale) -> bool:
    return (
        after_sale.status == Status.APPROVED
        and after_sale.kind == Kind.RETURN_AND_REFUND
        and after_sale.restocked_at is None
    )


@console_view(PERMISSION)
def page(request: HttpRequest, store_code: str) -> HttpResponse:
    requests, more = _open_requests(request.console_store)
    context = console_frame(request, section="aftersales")
    context.update(
        {
            "to_decide": [r for r in requests if r.status == Status.REQUESTED],
            "awaiting_goods": [r for r in requests if _awaits_goods(r)],
            # Approved (and goods back, for a return): the refund is with the provider.
            "refunding": [
                r for r in requests if r.status == Status.APPROVED and not _awaits_goods(r)
            ],
            "more": more,
            "page_limit": PAGE_LIMIT,
            "note_max": NoteForm.base_fields["note"].max_length,
        }
    )
    return render(request, "console/aftersales.html", context)


def _request_of_store(request: HttpRequest, pk: int) -> AfterSale:
    """The request, if its order belongs to the page's store; another store's is a 404."""
    try:
        return AfterSale.objects.select_related("order").get(
            pk=pk, order__store=request.console_store
        )
    except AfterSale.DoesNotExist:
        raise Http404 from None


def _back(store_code: str) -> HttpResponse:
    return redirect(reverse("console:aftersales", kwargs={"store_code": store_code}))


def _note(request: HttpRequest) -> str | None:
    form = NoteForm(request.POST)
    if form.is_valid():
        return form.cleaned_data["note"]
    for errors in form.errors.values():
        for error in errors:
            messages.error(request, error)
    return None


@console_view(PERMISSION)
@require_POST
def approve(request: HttpRequest, store_code: str, pk: int) -> HttpResponse:
    after_sale = _request_of_store(request, pk)
    note = _note(request)
    if note is None:
        return _back(store_code)
    try:
        after_sale_approve(after_sale=after_sale, actor=request.user, note=note)
    except BusinessError as refused:
        messages.error(request, refused.message)
        return _back(store_code)
    number = after_sale.order.number
    if after_sale.kind == Kind.REFUND_ONLY:
        text = _("Approved: %(amount)s is being refunded for order %(number)s.") % {
            "amount": yuan(after_sale.amount_fen),
            "number": number,
        }
    else:
        text = _("Approved: order %(number)s is refunded when its goods are back in the store.") % {
            "number": number
        }
    messages.success(request, text)
    return _back(store_code)


@console_view(PERMISSION)
@require_POST
def reject(request: HttpRequest, store_code: str, pk: int) -> HttpResponse:
    after_sale = _request_of_store(request, pk)
    note = _note(request)
    if note is None:
        return _back(store_code)
    try:
        after_sale_reject(after_sale=after_sale, actor=request.user, note=note)
    except BusinessError as refused:
        messages.error(request, refused.message)
        return _back(store_code)
    messages.success(
        request,
        _("Rejected the request of order %(number)s.") % {"number": after_sale.order.number},
    )
    return _back(store_code)


@console_view(PERMISSION)
@require_POST
def receive(request: HttpRequest, store_code: str, pk: int) -> HttpResponse:
    after_sale = _request_of_store(request, pk)
    try:
        after_sale_receive_return(after_sale=after_sale, actor=request.user)
    except BusinessError as refused:
        messages.error(request, refused.message)
        return _back(store_code)
    messages.success(
        request,
        _("Goods of order %(number)s are back in stock; %(amount)s is being refunded.")
        % {"number": after_sale.order.number, "amount": yuan(after_sale.amount_fen)},
    )
    return _back(store_code)


urlpatterns = [
    path("aftersales/", page, name="aftersales"),
    path("aftersales/<int:pk>/approve/", approve, name="aftersales_approve"),
    path("aftersales/<int:pk>/reject/", reject, name="aftersales_reject"),
    path("aftersales/<int:pk>/receive/", receive, name="aftersales_receive"),
]
