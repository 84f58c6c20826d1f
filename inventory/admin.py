"""Stock in the admin, as each role sees it.

Staff see their own stores' rows only (``StoreScopedAdmin``); a transfer belongs to both of its
stores. No number of stock is ever typed here: sending, receiving and applying a count are
buttons that call the services in ``inventory.operations``, which write the ledger. A refusal
is shown as a message, never as an error page.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from inventory.models import (
    Reservation,
    StockCount,
    StockCountLine,
    StockItem,
    StockMovement,
    Transfer,
    TransferLine,
)
from inventory.operations import (
    stock_count_apply,
    stock_count_create,
    stock_count_remove_line,
    stock_count_set_line,
    stock_item_update_settings,
    transfer_create,
    transfer_receive,
    transfer_revise,
    transfer_send,
)
from inventory.services import StockLine
from retail.access import has_store_perm, store_ids_for, stores_for
from retail.admin import StoreScopedAdmin
from retail.errors import BusinessError
from retail.models import SKU, Store

LEDGER_ROWS_SHOWN = 50


class UserStoreFilter(admin.RelatedFieldListFilter):
    """Offers only the user's own stores: the names of the others are not hers to browse."""

    def field_choices(self, field, request, model_admin):
        return [(store.pk, str(store)) for store in stores_for(request.user)]


def _error_text(error: BusinessError) -> str:
    """The service's message, naming the SKU at fault when there is one."""
    sku_ids = error.fields.get("sku")
    if not sku_ids:
        return error.message
    codes = SKU.objects.filter(pk__in=sku_ids).values_list("code", flat=True)
    return f"{error.message} ({gettext('SKU')}: {', '.join(codes)})"


class RefusalsAsMessages:
    """A service refusing a save shows as a message on the same page, not as a server error.

    The admin's own transaction around the save has rolled back by the time this catches.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except BusinessError as error:
            messages.error(request, _error_text(error))
            return HttpResponseRedirect(request.get_full_path())


def _adopt(form_instance, saved) -> None:
    """Point the admin's unsaved form instance at the row a service created, so that the
    history entry and the redirect after "save" find it."""
    form_instance.pk = saved.pk
    form_instance._state.adding = False


# --- Stock rows, ledger, reservations --------------------------------------------------------


@admin.register(StockItem)
class StockItemAdmin(RefusalsAsMessages, StoreScopedAdmin):
    list_display = [
        "store",
        "sku",
        "on_hand",
        "reserved",
        "available",
        "available_online",
        "safety_stock",
    ]
    list_filter = [("store", UserStoreFilter)]
    list_select_related = ["store", "sku__product"]
    search_fields = ["sku__code", "sku__barcode", "sku__product__name"]
    fields = [
        "store",
        "sku",
        "on_hand",
        "reserved",
        "available",
        "available_online",
        "safety_stock",
        "lead_time_days",
        "review_days",
        "pack_size",
        "updated_at",
        "latest_movements",
    ]
    # The numbers change only through the ledger; staff tune how the row is kept.
    readonly_fields = [
        "store",
        "sku",
        "on_hand",
        "reserved",
        "available",
        "available_online",
        "updated_at",
        "latest_movements",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("store", "sku__product")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("available"))
    def available(self, item: StockItem) -> int:
        return item.available

    @admin.display(description=_("available online"))
    def available_online(self, item: StockItem) -> int:
        return item.available_online

    @admin.display(description=_("latest movements"))
    def latest_movements(self, item: StockItem) -> str:
        movements = list(
            item.movements.select_related("actor").order_by("-created_at", "-pk")[
                :LEDGER_ROWS_SHOWN
            ]
        )
        if not movements:
            return gettext("No movements yet.")
        headings = [
            gettext("at"),
            gettext("reason"),
            gettext("quantity"),
            gettext("on hand after"),
            gettext("by"),
            gettext("reference"),
        ]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    timezone.localtime(movement.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                    movement.get_reason_display(),
                    f"{movement.quantity:+d}",
                    movement.on_hand_after,
                    movement.actor or "—",
                    movement.reference or "—",
                )
                for movement in movements
            ),
        )
        all_rows = reverse("admin:inventory_stockmovement_changelist")
        return format_html(
            '<table class="ledger"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>'
            '<p><a href="{}?stock_item__id__exact={}">{}</a></p>',
            format_html_join("", "<th>{}</th>", ((heading,) for heading in headings)),
            rows,
            all_rows,
            item.pk,
            gettext("All movements of this item"),
        )

    def save_model(self, request, obj, form, change):
        stock_item_update_settings(
            item=obj,
            safety_stock=obj.safety_stock,
            lead_time_days=obj.lead_time_days,
            review_days=obj.review_days,
            pack_size=obj.pack_size,
        )


class ReadOnlyAdmin(StoreScopedAdmin):
    """Records written by the services alone: staff look, nobody edits."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StockMovement)
class StockMovementAdmin(ReadOnlyAdmin):
    store_field = "stock_item__store"
    list_display = [
        "created_at",
        "store",
        "sku",
        "reason",
        "quantity",
        "on_hand_after",
        "actor",
        "reference",
    ]
    list_filter = ["reason", ("stock_item__store", UserStoreFilter)]
    list_select_related = ["stock_item__store", "stock_item__sku__product", "actor"]
    search_fields = ["stock_item__sku__code", "stock_item__sku__barcode"]

    @admin.display(description=_("store"), ordering="stock_item__store__code")
    def store(self, movement: StockMovement) -> Store:
        return movement.stock_item.store

    @admin.display(description=_("SKU"), ordering="stock_item__sku__code")
    def sku(self, movement: StockMovement) -> SKU:
        return movement.stock_item.sku


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    store_field = "stock_item__store"
    list_display = ["line_key", "store", "sku", "quantity", "status", "expires_at", "created_at"]
    list_filter = ["status", ("stock_item__store", UserStoreFilter)]
    list_select_related = ["stock_item__store", "stock_item__sku__product"]
    search_fields = ["line_key", "stock_item__sku__code"]

    @admin.display(description=_("store"), ordering="stock_item__store__code")
    def store(self, reservation: Reservation) -> Store:
        return reservation.stock_item.store

    @admin.display(description=_("SKU"), ordering="stock_item__sku__code")
    def sku(self, reservation: Reservation) -> SKU:
        return reservation.stock_item.sku


# --- Documents: transfers and counts -----------------------------------------------------------


class DocumentLineInline(admin.TabularInline):
    """The lines of a document, seen with it and editable exactly when it is. The document's
    admin writes them through its services; the line model needs no permissions of its own."""

    extra = 0
    autocomplete_fields = ["sku"]
    editable_fields: list[str]
    closed_fields: list[str]

    def _document_admin(self) -> admin.ModelAdmin:
        return self.admin_site.get_model_admin(self.parent_model)

    def _editable(self, request, obj) -> bool:
        document_admin = self._document_admin()
        if obj is None:
            return document_admin.has_add_permission(request)
        return document_admin.has_change_permission(request, obj)

    def has_view_permission(self, request, obj=None):
        return self._document_admin().has_view_permission(request, obj)

    def has_add_permission(self, request, obj):
        return self._editable(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(request, obj)

    def get_fields(self, request, obj=None):
        return self.editable_fields if self._editable(request, obj) else self.closed_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if self._editable(request, obj) else self.closed_fields


def _filled_line_forms(formsets) -> list[forms.ModelForm]:
    """The inline rows staff filled in (an untouched extra row has no data)."""
    return [form for formset in formsets for form in formset.forms if form.cleaned_data]


class TransferLineInline(DocumentLineInline):
    model = TransferLine
    editable_fields = ["sku", "quantity_sent"]
    closed_fields = ["sku", "quantity_sent", "quantity_received", "discrepancy"]

    def get_min_num(self, request, obj=None, **kwargs):
        return 1 if self._editable(request, obj) else 0

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.validate_min = True
        return formset

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "quantity_sent":
            kwargs["min_value"] = 1
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description=_("discrepancy"))
    def discrepancy(self, line: TransferLine) -> int | str:
        return "—" if line.discrepancy is None else line.discrepancy


class TransferReceiptForm(forms.Form):
    """One "received" box per line, filled with what was sent."""

    def __init__(self, *args, lines: list[TransferLine], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lines = lines
        for line in lines:
            self.fields[self._name(line)] = forms.IntegerField(
                label=str(line.sku),
                min_value=0,
                max_value=line.quantity_sent,
                initial=line.quantity_sent,
            )

    @staticmethod
    def _name(line: TransferLine) -> str:
        return f"received_{line.sku_id}"

    def rows(self) -> list[tuple[TransferLine, forms.BoundField]]:
        return [(line, self[self._name(line)]) for line in self.lines]

    def received(self) -> dict[int, int]:
        return {line.sku_id: self.cleaned_data[self._name(line)] for line in self.lines}


RECEIPT_TEMPLATE = """{% extends "admin/base_site.html" %}
{% load i18n admin_urls %}
{% block breadcrumbs %}
<div class="breadcrumbs">
<a href="{% url 'admin:index' %}">{% translate 'Home' %}</a>
&rsaquo; <a href="{% url 'admin:app_list' app_label=opts.app_label %}">
  {{ opts.app_config.verbose_name }}</a>
&rsaquo; <a href="{% url opts|admin_urlname:'changelist' %}">
  {{ opts.verbose_name_plural|capfirst }}</a>
&rsaquo; <a href="{% url opts|admin_urlname:'change' transfer.pk|admin_urlquote %}">
  {{ transfer }}</a>
&rsaquo; {{ title }}
</div>
{% endblock %}
{% block content %}
<form method="post">{% csrf_token %}
{{ form.non_field_errors }}
<table>
<thead><tr>
  <th>{{ sku_heading }}</th><th>{{ sent_heading }}</th><th>{{ received_heading }}</th>
</tr></thead>
<tbody>
{% for line, field in form.rows %}
<tr>
  <td>{{ line.sku }}</td><td>{{ line.quantity_sent }}</td>
  <td>{{ field.errors }}{{ field }}</td>
</tr>
{% endfor %}
</tbody>
</table>
<div class="submit-row"><input type="submit" class="default" value="{{ submit_label }}"></div>
</form>
{% endblock %}
"""


@admin.register(Transfer)
class TransferAdmin(RefusalsAsMessages, StoreScopedAdmin):
    # The sender's document: changed and deleted by the sender's staff.
    store_field = "from_store"
    list_display = ["number", "from_store", "to_store", "status", "created_at", "sent_at"]
    list_filter = [
        "status",
        ("from_store", UserStoreFilter),
        ("to_store", UserStoreFilter),
    ]
    list_select_related = ["from_store", "to_store"]
    search_fields = ["note", "lines__sku__code"]
    inlines = [TransferLineInline]
    actions = ["send_transfers", "receive_transfers_in_full"]
    draft_fields = ["from_store", "to_store", "note"]
    record_fields = ["status", "created_by", "created_at", "sent_at", "received_at"]

    def get_queryset(self, request):
        # A transfer belongs to both ends: the sender sends it, the receiver receives it.
        queryset = admin.ModelAdmin.get_queryset(self, request).select_related(
            "from_store", "to_store"
        )
        store_ids = store_ids_for(request.user)
        if store_ids is None:
            return queryset
        return queryset.filter(Q(from_store__in=store_ids) | Q(to_store__in=store_ids))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "to_store":
            # Goods may go to any open store of the chain, not only the sender's own.
            kwargs["queryset"] = Store.objects.filter(active=True)
            return admin.ModelAdmin.formfield_for_foreignkey(self, db_field, request, **kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.draft_fields
        return self.draft_fields + self.get_readonly_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if obj.status == Transfer.Status.IN_TRANSIT and self._may_receive(request, obj):
            return [*self.record_fields, "receipt"]
        return self.record_fields

    # A draft is the sender's to edit; once sent, the transfer is a record.
    def has_change_permission(self, request, obj=None):
        if not super().has_change_permission(request, obj):
            return False
        return obj is None or (
            obj.status == Transfer.Status.DRAFT
            and has_store_perm(request.user, "inventory.change_transfer", obj.from_store_id)
        )

    def has_delete_permission(self, request, obj=None):
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or obj.status == Transfer.Status.DRAFT

    # By the role in the store concerned: managing one store does not make a clerk of
    # another able to send its goods away.
    def _may_send(self, request, transfer: Transfer) -> bool:
        return has_store_perm(request.user, "inventory.change_transfer", transfer.from_store_id)

    def _may_receive(self, request, transfer: Transfer) -> bool:
        return has_store_perm(request.user, "inventory.change_transfer", transfer.to_store_id)

    @admin.display(description=_("number"), ordering="pk")
    def number(self, transfer: Transfer) -> str:
        return f"TR{transfer.pk:06d}"

    @admin.display(description=_("receipt"))
    def receipt(self, transfer: Transfer) -> str:
        """Shown (by get_readonly_fields) to the receiving store while the goods travel."""
        return format_html(
            '<a class="button" href="{}">{}</a>',
            reverse("admin:inventory_transfer_receive", args=[transfer.pk]),
            gettext("Record what arrived"),
        )

    def save_model(self, request, obj, form, change):
        """Nothing yet: a transfer is written together with its lines, in save_related."""

    def save_related(self, request, form, formsets, change):
        transfer = form.instance
        lines = [
            StockLine(line_form.cleaned_data["sku"], line_form.cleaned_data["quantity_sent"])
            for line_form in _filled_line_forms(formsets)
            if not line_form.cleaned_data.get("DELETE")
        ]
        if change:
            transfer_revise(
                transfer=transfer,
                from_store=transfer.from_store,
                to_store=transfer.to_store,
                lines=lines,
                note=transfer.note,
            )
        else:
            created = transfer_create(
                from_store=transfer.from_store,
                to_store=transfer.to_store,
                lines=lines,
                actor=request.user,
                note=transfer.note,
            )
            _adopt(transfer, created)

    def construct_change_message(self, request, form, formsets, add=False):
        # The lines were written by a service, not by the formsets.
        return super().construct_change_message(request, form, [], add)

    @admin.action(description=_("Send selected transfers"), permissions=["change"])
    def send_transfers(self, request, queryset):
        sent = 0
        for transfer in queryset.order_by("pk"):
            if not self._may_send(request, transfer):
                messages.error(
                    request,
                    f"{transfer}: {gettext('Only the sending store can send a transfer.')}",
                )
                continue
            try:
                transfer_send(transfer=transfer, actor=request.user)
            except BusinessError as error:
                messages.error(request, f"{transfer}: {_error_text(error)}")
            else:
                sent += 1
        if sent:
            messages.success(
                request,
                ngettext("%(count)d transfer sent.", "%(count)d transfers sent.", sent)
                % {"count": sent},
            )

    @admin.action(description=_("Receive selected transfers in full"), permissions=["change"])
    def receive_transfers_in_full(self, request, queryset):
        received = 0
        for transfer in queryset.order_by("pk"):
            if not self._may_receive(request, transfer):
                messages.error(
                    request,
                    f"{transfer}: {gettext('Only the receiving store can receive a transfer.')}",
                )
                continue
            try:
                transfer_receive(transfer=transfer, received=None, actor=request.user)
            except BusinessError as error:
                messages.error(request, f"{transfer}: {_error_text(error)}")
            else:
                received += 1
        if received:
            messages.success(
                request,
                ngettext("%(count)d transfer received.", "%(count)d transfers received.", received)
                % {"count": received},
            )

    def get_urls(self):
        receive = path(
            "<path:object_id>/receive/",
            self.admin_site.admin_view(self.receive_view),
            name="inventory_transfer_receive",
        )
        return [receive, *super().get_urls()]

    def receive_view(self, request, object_id):
        """Record what arrived line by line; what did not becomes the line's discrepancy."""
        transfer = self.get_object(request, unquote(object_id))
        if transfer is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self._may_receive(request, transfer):
            raise PermissionDenied
        change_url = reverse("admin:inventory_transfer_change", args=[transfer.pk])
        if transfer.status != Transfer.Status.IN_TRANSIT:
            messages.error(request, gettext("Only a transfer in transit can be received."))
            return HttpResponseRedirect(change_url)

        lines = list(transfer.lines.select_related("sku__product").order_by("sku__code"))
        form = TransferReceiptForm(request.POST or None, lines=lines)
        if request.method == "POST" and form.is_valid():
            try:
                transfer_receive(transfer=transfer, received=form.received(), actor=request.user)
            except BusinessError as error:
                messages.error(request, _error_text(error))
            else:
                missing = sum(line.quantity_sent for line in lines) - sum(form.received().values())
                messages.success(
                    request,
                    gettext("%(transfer)s received; %(missing)d units did not arrive.")
                    % {"transfer": transfer, "missing": missing},
                )
                return HttpResponseRedirect(change_url)

        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Receive %(transfer)s") % {"transfer": transfer},
            "transfer": transfer,
            "form": form,
            "sku_heading": gettext("SKU"),
            "sent_heading": gettext("quantity sent"),
            "received_heading": gettext("quantity received"),
            "submit_label": gettext("Record receipt"),
        }
        template = engines["django"].from_string(RECEIPT_TEMPLATE)
        return TemplateResponse(request, template, context)


class StockCountLineInline(DocumentLineInline):
    model = StockCountLine
    extra = 1
    editable_fields = ["sku", "counted"]
    closed_fields = ["sku", "counted", "expected", "difference"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "counted":
            kwargs["min_value"] = 0
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_extra(self, request, obj=None, **kwargs):
        return self.extra if self._editable(request, obj) else 0

    @admin.display(description=_("difference"))
    def difference(self, line: StockCountLine) -> int | str:
        return "—" if line.difference is None else f"{line.difference:+d}"


@admin.register(StockCount)
class StockCountAdmin(RefusalsAsMessages, StoreScopedAdmin):
    list_display = ["number", "store", "status", "created_by", "created_at", "applied_at"]
    list_filter = ["status", ("store", UserStoreFilter)]
    list_select_related = ["store", "created_by"]
    inlines = [StockCountLineInline]
    actions = ["apply_counts"]
    fields = ["store", "note", "status", "created_by", "created_at", "applied_at"]

    def get_readonly_fields(self, request, obj=None):
        record = ["status", "created_by", "created_at", "applied_at"]
        # Once a sheet exists, its store is what was counted: only the lines change.
        return record if obj is None else ["store", "note", *record]

    def has_change_permission(self, request, obj=None):
        if not super().has_change_permission(request, obj):
            return False
        return obj is None or obj.status == StockCount.Status.OPEN

    def has_delete_permission(self, request, obj=None):
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or obj.status == StockCount.Status.OPEN

    @admin.display(description=_("number"), ordering="pk")
    def number(self, count: StockCount) -> str:
        return f"SC{count.pk:06d}"

    def save_model(self, request, obj, form, change):
        if not change:
            _adopt(obj, stock_count_create(store=obj.store, actor=request.user, note=obj.note))

    def save_related(self, request, form, formsets, change):
        count = form.instance
        line_forms = _filled_line_forms(formsets)
        # Removals first: two rows swapping their SKUs must not remove what the other just set.
        for line_form in line_forms:
            row = line_form.cleaned_data
            previous_sku = line_form.initial.get("sku")
            if previous_sku is not None and (row.get("DELETE") or previous_sku != row["sku"].pk):
                stock_count_remove_line(count=count, sku=previous_sku)
        # Only rows staff touched: setting a line again takes a fresh reading of the books,
        # which for an untouched line would drop the sales made since it was counted.
        for line_form in line_forms:
            row = line_form.cleaned_data
            if not row.get("DELETE") and line_form.has_changed():
                stock_count_set_line(count=count, sku=row["sku"], counted=row["counted"])

    def construct_change_message(self, request, form, formsets, add=False):
        # The lines were written by a service, not by the formsets.
        return super().construct_change_message(request, form, [], add)

    @admin.action(description=_("Apply selected counts"), permissions=["change"])
    def apply_counts(self, request, queryset):
        applied = 0
        for count in queryset.order_by("pk"):
            try:
                stock_count_apply(count=count, actor=request.user)
            except BusinessError as error:
                messages.error(request, f"{count}: {_error_text(error)}")
            else:
                applied += 1
        if applied:
            messages.success(
                request,
                ngettext("%(count)d count applied.", "%(count)d counts applied.", applied)
                % {"count": applied},
            )
