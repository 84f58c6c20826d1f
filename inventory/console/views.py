"""The stock pages of the console: the store's stock, a SKU's ledger and reservations, goods
receipts, damage write-offs, transfers between stores and stock counts.

Every number of stock changes through ``inventory.services`` and ``inventory.operations``,
which write the ledger; these views check who may act (``console_view``: the role held in the
store of the URL), read, and show a service's refusal as a message with nothing changed. A
document of another store is a 404, as the store itself would be.
"""

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from inventory.console.forms import (
    DAMAGE_REASONS,
    CountLinesForm,
    CountStartForm,
    DamageForm,
    ReceiptForm,
    StockSearchForm,
    TransferForm,
    TransferReceiveForm,
)
from inventory.models import Reservation, StockCount, StockItem, Transfer
from inventory.operations import (
    stock_count_apply,
    stock_count_set_lines,
    stock_count_start,
    transfer_create,
    transfer_receive,
    transfer_send,
)
from inventory.selectors import low_stock, stock_at_store
from inventory.services import StockLine, stock_receive, stock_write_off
from retail.console import console_view
from retail.console.access import may
from retail.console.context import console_frame
from retail.errors import BusinessError
from retail.models import SKU

STOCK_PAGE_SIZE = 50
LEDGER_PAGE_SIZE = 50
DOCUMENT_PAGE_SIZE = 30
RESERVATIONS_SHOWN = 100


# --- Shared ------------------------------------------------------------------------------------


def _page(request: HttpRequest, queryset: QuerySet, per_page: int) -> Page:
    """A page of ``queryset`` by ``?page=`` (a number out of range gives the last page): a count
    and a slice, whatever the size."""
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def _context(request: HttpRequest, tab: str, **page) -> dict:
    """The console frame, the stock section's tabs and what the user may do in this store (from
    her roles, read once per request)."""
    return {
        **console_frame(request, section="stock"),
        "stock_tab": tab,
        "may_adjust": may(request, "inventory.change_stockitem"),
        "may_add_transfer": may(request, "inventory.add_transfer"),
        "may_change_transfer": may(request, "inventory.change_transfer"),
        "may_add_count": may(request, "inventory.add_stockcount"),
        "may_change_count": may(request, "inventory.change_stockcount"),
        **page,
    }


def _refusal_text(error: BusinessError) -> str:
    """The service's message, naming the SKU at fault when there is one."""
    sku_ids = error.fields.get("sku")
    if not sku_ids:
        return error.message
    codes = SKU.objects.filter(pk__in=sku_ids).order_by("code").values_list("code", flat=True)
    return f"{error.message} ({_('SKU')}: {', '.join(codes)})"


def _url(name: str, request: HttpRequest, **kwargs) -> str:
    return reverse(f"console:{name}", kwargs={"store_code": request.console_store.code, **kwargs})


# --- The store's stock -------------------------------------------------------------------------


@console_view("inventory.view_stockitem")
def stock_list(request: HttpRequest, store_code: str) -> HttpResponse:
    """The store's stock rows by SKU code, 50 a page, searched by name, barcode or code, with
    the low-stock flag and suggested order of ``low_stock``. Queries: a count, the page, and
    the low-stock reading, whatever the number of SKUs."""
    store = request.console_store
    search = StockSearchForm(request.GET)
    query, low_only = "", False
    if search.is_valid():
        query, low_only = search.cleaned_data["q"].strip(), search.cleaned_data["low"]
    items = stock_at_store(store=store)
    if query:
        items = items.filter(
            Q(sku__code__icontains=query)
            | Q(sku__barcode__startswith=query)
            | Q(sku__product__name__icontains=query)
        )
    low = {suggestion.stock_item.pk: suggestion for suggestion in low_stock(store=store)}
    if low_only:
        items = items.filter(pk__in=list(low))
    page = _page(request, items, STOCK_PAGE_SIZE)
    rows = [(item, low.get(item.pk)) for item in page.object_list]
    if query and page.paginator.count == 1:
        # A scanned barcode (or a code typed in full) goes straight to its SKU.
        sku = rows[0][0].sku
        if query.upper() in (sku.code, sku.barcode):
            return redirect(_url("stock_sku", request, sku_code=sku.code))
    return render(
        request,
        "console/stock.html",
        _context(
            request,
            "list",
            search=search,
            query=query,
            low_only=low_only,
            page=page,
            rows=rows,
            low_count=len(low),
        ),
    )


def _stock_item(request: HttpRequest, sku_code: str) -> StockItem:
    return get_object_or_404(
        StockItem.objects.select_related("sku__product"),
        store=request.console_store,
        sku__code=sku_code,
    )


def _sku_page(
    request: HttpRequest, item: StockItem, damage_form: DamageForm | None = None
) -> HttpResponse:
    ledger = _page(
        request,
        item.movements.select_related("actor").order_by("-created_at", "-pk"),
        LEDGER_PAGE_SIZE,
    )
    reservations = list(
        item.reservations.filter(status__in=Reservation.ACTIVE).order_by("-created_at", "-pk")[
            :RESERVATIONS_SHOWN
        ]
    )
    context = _context(
        request,
        "list",
        item=item,
        ledger=ledger,
        reservations=reservations,
        reservations_shown=RESERVATIONS_SHOWN,
        damage_reasons=DAMAGE_REASONS,
    )
    if context["may_adjust"]:
        context["damage_form"] = damage_form or DamageForm()
    return render(request, "console/stock_sku.html", context)


@console_view("inventory.view_stockitem")
def stock_sku(request: HttpRequest, store_code: str, sku_code: str) -> HttpResponse:
    """One SKU in this store: its numbers, its ledger (newest first, 50 a page) and the
    reservations that make up ``reserved``."""
    return _sku_page(request, _stock_item(request, sku_code))


@console_view("inventory.change_stockitem")
@require_POST
def stock_damage(request: HttpRequest, store_code: str, sku_code: str) -> HttpResponse:
    """Write off damaged, expired or lost units; the reason goes into the ledger's reference.
    Units reserved for orders cannot be written off (``insufficient_stock``)."""
    item = _stock_item(request, sku_code)
    form = DamageForm(request.POST)
    if not form.is_valid():
        return _sku_page(request, item, damage_form=form)
    quantity = form.cleaned_data["quantity"]
    started = timezone.now()
    try:
        [movement] = stock_write_off(
            store=request.console_store,
            lines=[StockLine(item.sku_id, quantity)],
            idempotency_key=str(form.cleaned_data["key"]),
            actor=request.user,
            reference=form.cleaned_data["reason"],
        )
    except BusinessError as error:
        messages.error(request, _refusal_text(error))
    else:
        if movement.created_at < started:
            messages.info(
                request, _("This write-off was booked already; nothing was booked again.")
            )
        else:
            messages.success(
                request,
                ngettext(
                    "%(count)d unit of %(sku)s written off.",
                    "%(count)d units of %(sku)s written off.",
                    quantity,
                )
                % {"count": quantity, "sku": item.sku.code},
            )
    return redirect(_url("stock_sku", request, sku_code=item.sku.code))


# --- Goods receipts ----------------------------------------------------------------------------


@console_view("inventory.change_stockitem")
def stock_receipt(request: HttpRequest, store_code: str) -> HttpResponse:
    """Goods from a supplier: scanned or typed lines, booked as one receipt under the key the
    form was shown with, so sending the same form again books nothing more."""
    form = ReceiptForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        lines = form.cleaned_data["lines"]
        started = timezone.now()
        try:
            movements = stock_receive(
                store=request.console_store,
                lines=[StockLine(line.sku.pk, line.quantity) for line in lines],
                idempotency_key=str(form.cleaned_data["key"]),
                actor=request.user,
                reference=form.cleaned_data["reference"],
            )
        except BusinessError as error:
            messages.error(request, _refusal_text(error))
        else:
            _report_receipt(request, lines, movements, started)
            return redirect(_url("stock_receipt", request))
    return render(request, "console/stock_receipt.html", _context(request, "receipt", form=form))


def _report_receipt(request, lines, movements, started) -> None:
    """What was booked; a form sent again finds its first booking and says so."""
    booked_before = {m.stock_item.sku_id for m in movements if m.created_at < started}
    if not booked_before:
        messages.success(
            request,
            _("Receipt booked: %(lines)s.")
            % {"lines": ", ".join(f"{line.sku.code} ×{line.quantity}" for line in lines)},
        )
    elif len(booked_before) == len(movements):
        messages.info(request, _("This receipt was booked already; nothing was booked again."))
    else:
        codes = [line.sku.code for line in lines if line.sku.pk in booked_before]
        messages.warning(
            request,
            _("Part of this receipt was booked already and was not booked again: %(codes)s.")
            % {"codes": ", ".join(codes)},
        )


# --- Transfers ---------------------------------------------------------------------------------


def _store_transfers(request: HttpRequest) -> QuerySet[Transfer]:
    """Transfers this store sends or receives; a transfer belongs to both of its stores."""
    store = request.console_store
    return Transfer.objects.filter(Q(from_store=store) | Q(to_store=store)).select_related(
        "from_store", "to_store"
    )


@console_view("inventory.view_transfer")
def transfer_list(request: HttpRequest, store_code: str) -> HttpResponse:
    page = _page(
        request, _store_transfers(request).order_by("-created_at", "-pk"), DOCUMENT_PAGE_SIZE
    )
    return render(
        request, "console/stock_transfers.html", _context(request, "transfers", page=page)
    )


@console_view("inventory.add_transfer")
def transfer_new(request: HttpRequest, store_code: str) -> HttpResponse:
    """A draft transfer from this store: nothing moves until it is sent."""
    store = request.console_store
    form = TransferForm(request.POST or None, store=store)
    if request.method == "POST" and form.is_valid():
        try:
            transfer = transfer_create(
                from_store=store,
                to_store=form.cleaned_data["to_store"],
                lines=[
                    StockLine(line.sku.pk, line.quantity) for line in form.cleaned_data["lines"]
                ],
                actor=request.user,
                note=form.cleaned_data["note"],
            )
        except BusinessError as error:
            messages.error(request, _refusal_text(error))
        else:
            messages.success(
                request, _("%(transfer)s saved as a draft.") % {"transfer": _number(transfer)}
            )
            return redirect(_url("stock_transfer", request, pk=transfer.pk))
    return render(
        request, "console/stock_transfer_new.html", _context(request, "transfers", form=form)
    )


def _number(transfer: Transfer) -> str:
    return f"TR{transfer.pk:06d}"


@console_view("inventory.view_transfer")
def transfer_detail(request: HttpRequest, store_code: str, pk: int) -> HttpResponse:
    store = request.console_store
    transfer = get_object_or_404(_store_transfers(request), pk=pk)
    lines = list(transfer.lines.select_related("sku__product").order_by("sku__code"))
    context = _context(request, "transfers", transfer=transfer, number=_number(transfer))
    context.update(
        lines=lines,
        sent_units=sum(line.quantity_sent for line in lines),
        received_units=sum(line.quantity_received or 0 for line in lines),
        missing_units=sum(line.discrepancy or 0 for line in lines),
        can_send=(
            transfer.status == Transfer.Status.DRAFT
            and transfer.from_store_id == store.pk
            and context["may_change_transfer"]
        ),
        can_receive=(
            transfer.status == Transfer.Status.IN_TRANSIT
            and transfer.to_store_id == store.pk
            and context["may_change_transfer"]
        ),
    )
    return render(request, "console/stock_transfer.html", context)


@console_view("inventory.change_transfer")
@require_POST
def transfer_send_view(request: HttpRequest, store_code: str, pk: int) -> HttpResponse:
    """Only the sending store sends: the goods leave its books, every line or none."""
    transfer = get_object_or_404(Transfer, pk=pk, from_store=request.console_store)
    if transfer.status == Transfer.Status.IN_TRANSIT:
        messages.info(
            request,
            _("%(transfer)s was sent already; nothing changed.") % {"transfer": _number(transfer)},
        )
        return redirect(_url("stock_transfer", request, pk=transfer.pk))
    try:
        transfer_send(transfer=transfer, actor=request.user)
    except BusinessError as error:
        messages.error(request, _refusal_text(error))
    else:
        messages.success(request, _("%(transfer)s sent.") % {"transfer": _number(transfer)})
    return redirect(_url("stock_transfer", request, pk=transfer.pk))


def _receivable(request: HttpRequest, pk: int) -> Transfer:
    # Only the receiving store receives: at the sender's console this is no page of its own.
    return get_object_or_404(
        Transfer.objects.select_related("from_store", "to_store"),
        pk=pk,
        to_store=request.console_store,
    )


def _report_received(request: HttpRequest, transfer: Transfer, missing: int) -> None:
    if missing:
        messages.warning(
            request,
            ngettext(
                "%(transfer)s received; %(missing)d unit did not arrive.",
                "%(transfer)s received; %(missing)d units did not arrive.",
                missing,
            )
            % {"transfer": _number(transfer), "missing": missing},
        )
    else:
        messages.success(
            request, _("%(transfer)s received in full.") % {"transfer": _number(transfer)}
        )


@console_view("inventory.change_transfer")
@require_POST
def transfer_receive_all(request: HttpRequest, store_code: str, pk: int) -> HttpResponse:
    transfer = _receivable(request, pk)
    if transfer.status == Transfer.Status.RECEIVED:
        messages.info(
            request,
            _("%(transfer)s was received already; nothing changed.")
            % {"transfer": _number(transfer)},
        )
        return redirect(_url("stock_transfer", request, pk=transfer.pk))
    try:
        transfer_receive(transfer=transfer, received=None, actor=request.user)
    except BusinessError as error:
        messages.error(request, _refusal_text(error))
    else:
        _report_received(request, transfer, 0)
    return redirect(_url("stock_transfer", request, pk=transfer.pk))


@console_view("inventory.change_transfer")
def transfer_receive_partial(request: HttpRequest, store_code: str, pk: int) -> HttpResponse:
    """Record what arrived line by line; what did not stays on the line as its discrepancy."""
    transfer = _receivable(request, pk)
    detail = _url("stock_transfer", request, pk=transfer.pk)
    if transfer.status != Transfer.Status.IN_TRANSIT:
        messages.error(request, _("Only a transfer in transit can be received."))
        return redirect(detail)
    lines = list(transfer.lines.select_related("sku__product").order_by("sku__code"))
    form = TransferReceiveForm(request.POST or None, lines=lines)
    if request.method == "POST" and form.is_valid():
        received = form.received()
        try:
            transfer_receive(transfer=transfer, received=received, actor=request.user)
        except BusinessError as error:
            messages.error(request, _refusal_text(error))
        else:
            missing = sum(line.quantity_sent for line in lines) - sum(received.values())
            _report_received(request, transfer, missing)
            return redirect(detail)
    return render(
        request,
        "console/stock_transfer_receive.html",
        _context(request, "transfers", transfer=transfer, number=_number(transfer), form=form),
    )


# --- Stock counts ------------------------------------------------------------------------------


def _count_number(count: StockCount) -> str:
    return f"SC{count.pk:06d}"


def _counts_page(request: HttpRequest, form: CountStartForm | None) -> HttpResponse:
    counts = (
        StockCount.objects.filter(store=request.console_store)
        .select_related("created_by")
        .order_by("-created_at", "-pk")
    )
    context = _context(request, "counts", page=_page(request, counts, DOCUMENT_PAGE_SIZE))
    if context["may_add_count"]:
        context["form"] = form or CountStartForm()
    return render(request, "console/stock_counts.html", context)


@console_view("inventory.view_stockcount")
def count_list(request: HttpRequest, store_code: str) -> HttpResponse:
    return _counts_page(request, None)


@console_view("inventory.add_stockcount")
@require_POST
def count_start(request: HttpRequest, store_code: str) -> HttpResponse:
    """A count sheet for the SKUs named (or every SKU the store keeps), each line written at
    the books' figure: a line nobody counts books nothing; a figure typed later takes a fresh
    reading of the books."""
    form = CountStartForm(request.POST)
    if not form.is_valid():
        return _counts_page(request, form)
    data = form.cleaned_data
    chosen = data["scope"] == CountStartForm.CHOSEN
    try:
        count, sku_ids = stock_count_start(
            store=request.console_store,
            actor=request.user,
            note=data["note"],
            sku_ids=[line.sku.pk for line in data["skus"]] if chosen else None,
        )
    except BusinessError as error:
        form.add_error(None, error.message)
        return _counts_page(request, form)
    messages.success(
        request,
        ngettext(
            "%(count)s started with %(lines)d SKU.",
            "%(count)s started with %(lines)d SKUs.",
            len(sku_ids),
        )
        % {"count": _count_number(count), "lines": len(sku_ids)},
    )
    return redirect(_url("stock_count", request, pk=count.pk))


def _store_count(request: HttpRequest, pk: int) -> StockCount:
    return get_object_or_404(
        StockCount.objects.select_related("created_by"), pk=pk, store=request.console_store
    )


def _count_lines(count: StockCount) -> list:
    return list(count.lines.select_related("sku__product").order_by("sku__code"))


def _sheet_page(
    request: HttpRequest, count: StockCount, lines: list, form: CountLinesForm | None
) -> HttpResponse:
    context = _context(request, "counts", count=count, number=_count_number(count), lines=lines)
    context["adjusting"] = sum(1 for line in lines if line.difference)
    if count.status == StockCount.Status.OPEN and context["may_change_count"]:
        context["form"] = form or CountLinesForm(lines=lines)
    return render(request, "console/stock_count.html", context)


@console_view("inventory.view_stockcount")
def count_sheet(request: HttpRequest, store_code: str, pk: int) -> HttpResponse:
    count = _store_count(request, pk)
    return _sheet_page(request, count, _count_lines(count), None)


@console_view("inventory.change_stockcount")
@require_POST
def count_enter(request: HttpRequest, store_code: str, pk: int) -> HttpResponse:
    """Write down what was found; only the figures entered now take a reading of the books."""
    count = _store_count(request, pk)
    lines = _count_lines(count)
    form = CountLinesForm(request.POST, lines=lines)
    if not form.is_valid():
        return _sheet_page(request, count, lines, form)
    entered = form.counted()
    try:
        stock_count_set_lines(count=count, lines=entered)
    except BusinessError as error:
        messages.error(request, _refusal_text(error))
    else:
        messages.success(
            request,
            ngettext(
                "%(lines)d count written down.", "%(lines)d counts written down.", len(entered)
            )
            % {"lines": len(entered)},
        )
    return redirect(_url("stock_count", request, pk=count.pk))


@console_view("inventory.change_stockcount")
@require_POST
def count_apply(request: HttpRequest, store_code: str, pk: int) -> HttpResponse:
    """Book each line's difference from the books of its moment; a refusal books nothing."""
    count = _store_count(request, pk)
    if count.status == StockCount.Status.APPLIED:
        messages.info(
            request,
            _("%(count)s was applied already; nothing changed.") % {"count": _count_number(count)},
        )
        return redirect(_url("stock_count", request, pk=count.pk))
    try:
        applied = stock_count_apply(count=count, actor=request.user)
    except BusinessError as error:
        messages.error(request, _refusal_text(error))
    else:
        adjusted = sum(1 for line in applied.lines.all() if line.difference)
        messages.success(
            request,
            ngettext(
                "%(count)s applied: %(lines)d SKU adjusted.",
                "%(count)s applied: %(lines)d SKUs adjusted.",
                adjusted,
            )
            % {"count": _count_number(count), "lines": adjusted},
        )
    return redirect(_url("stock_count", request, pk=count.pk))
