"""Orders in the admin: records to read, and a few buttons that call the services.

Nothing about an order is typed here: its rows are written by ``orders.services``,
``orders.payments`` and ``orders.aftersales``, which the actions call; a refusal shows as a
message and changes nothing. Staff see their own stores' orders only; amounts are in yuan.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template import engines
from django.template.response import TemplateResponse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from inventory.admin import ReadOnlyAdmin, UserStoreFilter
from orders import aftersales, services
from orders.models import (
    ActorKind,
    AfterSale,
    AfterSaleLine,
    DailySales,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    PaymentIssue,
    Refund,
    Shipment,
    ShippingRule,
)
from orders.transitions import Cause
from retail.admin import StoreScopedAdmin
from retail.errors import BusinessError
from retail.forms import YuanField
from retail.money import fen_to_yuan


def _yuan(fen: int | None) -> str:
    return "—" if fen is None else fen_to_yuan(fen)


def _for_each(request, queryset, service) -> int:
    """Calls ``service`` for each selected row; a refusal becomes an error message naming the
    row and leaves it as it was. Returns how many rows the service accepted."""
    done = 0
    for row in queryset.order_by("pk"):
        try:
            service(row)
        except BusinessError as error:
            messages.error(request, f"{row}: {error.message}")
        else:
            done += 1
    return done


def _report(request, message: str, done: int) -> None:
    if done:
        messages.success(request, message % {"count": done})


class RecordInline(admin.TabularInline):
    """A read-only table of records an order's services wrote."""

    extra = 0
    can_delete = False

    def get_fields(self, request, obj=None):
        return self.readonly_fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class PartOfParentInline(RecordInline):
    """Rows that are part of the parent record (its lines): seen by whoever sees the parent,
    without a permission of their own."""

    def has_view_permission(self, request, obj=None):
        return self.admin_site.get_model_admin(self.parent_model).has_view_permission(request, obj)


# --- Orders ------------------------------------------------------------------------------------


class OrderLineInline(PartOfParentInline):
    model = OrderLine
    readonly_fields = [
        "sku_code",
        "product_name",
        "spec",
        "unit_price",
        "quantity",
        "discount",
        "line_total",
        "line_key",
        "shipped",
    ]

    @admin.display(description=_("spec"))
    def spec(self, line: OrderLine) -> str:
        return " ".join(str(value) for value in line.attributes.values()) or "—"

    @admin.display(description=_("unit price (yuan)"))
    def unit_price(self, line: OrderLine) -> str:
        return _yuan(line.unit_price_fen)

    @admin.display(description=_("discount (yuan)"))
    def discount(self, line: OrderLine) -> str:
        return _yuan(line.discount_fen)

    @admin.display(description=_("line total (yuan)"))
    def line_total(self, line: OrderLine) -> str:
        return _yuan(line.total_fen)


class OrderEventInline(RecordInline):
    model = OrderEvent
    readonly_fields = [
        "created_at",
        "kind",
        "from_status",
        "to_status",
        "actor_kind",
        "actor",
        "note",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor").order_by("pk")


class PaymentInline(RecordInline):
    model = Payment
    readonly_fields = [
        "provider",
        "out_trade_no",
        "transaction_id",
        "amount",
        "status",
        "created_at",
        "paid_at",
    ]

    @admin.display(description=_("amount (yuan)"))
    def amount(self, payment: Payment) -> str:
        return _yuan(payment.amount_fen)


class RefundInline(RecordInline):
    model = Refund
    fk_name = "order"
    readonly_fields = [
        "out_refund_no",
        "amount",
        "reason",
        "status",
        "error",
        "created_by",
        "created_at",
        "succeeded_at",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")

    @admin.display(description=_("amount (yuan)"))
    def amount(self, refund: Refund) -> str:
        return _yuan(refund.amount_fen)


class ShipmentInline(RecordInline):
    model = Shipment
    readonly_fields = ["carrier_code", "tracking_number", "shipped_at", "line_keys", "created_by"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by").prefetch_related("lines")

    @admin.display(description=_("lines"))
    def line_keys(self, shipment: Shipment) -> str:
        return ", ".join(line.line_key for line in shipment.lines.all())


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ["number", "store", "channel", "fulfilment", "status", "total", "created_at"]
    list_filter = ["status", "channel", "fulfilment", ("store", UserStoreFilter), "created_at"]
    list_select_related = ["store"]
    search_fields = ["^number", "=pickup_code", "=member__mobile"]
    actions = ["cancel_unpaid", "mark_ready"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "number",
                    "status",
                    "channel",
                    "fulfilment",
                    "store",
                    "member",
                    "pickup_code",
                    "note",
                ]
            },
        ),
        (
            _("Amounts (yuan)"),
            {"fields": ["subtotal", "discount", "shipping", "total", "paid", "refunded"]},
        ),
        (_("Delivery"), {"fields": ["delivery_address"]}),
        (
            _("Record"),
            {
                "fields": [
                    "client_reference",
                    "created_by",
                    "created_at",
                    "expires_at",
                    "paid_at",
                    "closed_at",
                    "updated_at",
                ]
            },
        ),
    ]
    readonly_fields = [field for _name, options in fieldsets for field in options["fields"]]
    inlines = [OrderLineInline, OrderEventInline, PaymentInline, RefundInline, ShipmentInline]

    def has_fulfil_permission(self, request) -> bool:
        return request.user.has_perm("orders.change_order")

    @admin.display(description=_("subtotal"))
    def subtotal(self, order: Order) -> str:
        return _yuan(order.subtotal_fen)

    @admin.display(description=_("discount"))
    def discount(self, order: Order) -> str:
        return _yuan(order.discount_fen)

    @admin.display(description=_("delivery fee"))
    def shipping(self, order: Order) -> str:
        return _yuan(order.shipping_fen)

    @admin.display(description=_("total (yuan)"), ordering="total_fen")
    def total(self, order: Order) -> str:
        return _yuan(order.total_fen)

    @admin.display(description=_("paid"))
    def paid(self, order: Order) -> str:
        return _yuan(order.paid_fen)

    @admin.display(description=_("refunded"))
    def refunded(self, order: Order) -> str:
        return _yuan(order.refunded_fen)

    @admin.display(description=_("delivery address"))
    def delivery_address(self, order: Order) -> str:
        address = order.address
        if not address:
            return "—"
        place = "".join(
            address.get(part, "") for part in ("province", "city", "district", "detail")
        )
        return f"{address.get('name', '')} {address.get('mobile', '')} {place}"

    @admin.action(description=_("Cancel selected unpaid orders"), permissions=["fulfil"])
    def cancel_unpaid(self, request, queryset):
        done = _for_each(
            request,
            queryset,
            lambda order: services.order_cancel(
                order=order, cause=Cause.STAFF, actor=request.user, actor_kind=ActorKind.STAFF
            ),
        )
        _report(
            request,
            ngettext("%(count)d order cancelled.", "%(count)d orders cancelled.", done),
            done,
        )

    @admin.action(description=_("Mark selected orders ready for pickup"), permissions=["fulfil"])
    def mark_ready(self, request, queryset):
        done = _for_each(
            request,
            queryset,
            lambda order: services.order_mark_ready(order=order, actor=request.user),
        )
        _report(
            request,
            ngettext(
                "%(count)d order ready for pickup.", "%(count)d orders ready for pickup.", done
            ),
            done,
        )


# --- After-sales -------------------------------------------------------------------------------


class AfterSaleLineInline(PartOfParentInline):
    model = AfterSaleLine
    readonly_fields = ["order_line", "line_key", "quantity"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("order_line")

    @admin.display(description=_("line key"))
    def line_key(self, line: AfterSaleLine) -> str:
        return line.order_line.line_key


class RejectionForm(forms.Form):
    note = forms.CharField(label=_("Why is it rejected?"), max_length=200)


REJECTION_TEMPLATE = """{% extends "admin/base_site.html" %}
{% load i18n admin_urls %}
{% block breadcrumbs %}
<div class="breadcrumbs">
<a href="{% url 'admin:index' %}">{% translate 'Home' %}</a>
&rsaquo; <a href="{% url opts|admin_urlname:'changelist' %}">
  {{ opts.verbose_name_plural|capfirst }}</a>
&rsaquo; {{ title }}
</div>
{% endblock %}
{% block content %}
<form method="post">{% csrf_token %}
<ul>{% for after_sale in queryset %}<li>{{ after_sale }}: {{ after_sale.reason }}</li>{% endfor %}
</ul>
{{ form.as_p }}
{% for after_sale in queryset %}
<input type="hidden" name="{{ checkbox_name }}" value="{{ after_sale.pk }}">
{% endfor %}
<input type="hidden" name="action" value="reject_requests">
<input type="hidden" name="apply" value="yes">
<div class="submit-row"><input type="submit" class="default" value="{{ submit_label }}"></div>
</form>
{% endblock %}
"""


@admin.register(AfterSale)
class AfterSaleAdmin(ReadOnlyAdmin):
    store_field = "order__store"
    list_display = ["order", "kind", "status", "amount", "created_at", "decided_at"]
    list_filter = ["status", "kind", ("order__store", UserStoreFilter)]
    list_select_related = ["order"]
    search_fields = ["^order__number"]
    fields = readonly_fields = [
        "order",
        "kind",
        "status",
        "reason",
        "amount",
        "decided_by",
        "decision_note",
        "created_at",
        "decided_at",
        "restocked_at",
    ]
    inlines = [AfterSaleLineInline]
    actions = ["approve_requests", "reject_requests", "receive_returns"]

    def has_decide_permission(self, request) -> bool:
        return request.user.has_perm("orders.change_aftersale")

    @admin.display(description=_("refund amount (yuan)"), ordering="amount_fen")
    def amount(self, after_sale: AfterSale) -> str:
        return _yuan(after_sale.amount_fen)

    @admin.action(description=_("Approve selected requests"), permissions=["decide"])
    def approve_requests(self, request, queryset):
        done = _for_each(
            request,
            queryset,
            lambda row: aftersales.after_sale_approve(after_sale=row, actor=request.user),
        )
        _report(
            request,
            ngettext("%(count)d request approved.", "%(count)d requests approved.", done),
            done,
        )

    @admin.action(description=_("Reject selected requests…"), permissions=["decide"])
    def reject_requests(self, request, queryset):
        """Asks why first: the reason goes to the shopper."""
        form = RejectionForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            note = form.cleaned_data["note"]
            done = _for_each(
                request,
                queryset,
                lambda row: aftersales.after_sale_reject(
                    after_sale=row, actor=request.user, note=note
                ),
            )
            _report(
                request,
                ngettext("%(count)d request rejected.", "%(count)d requests rejected.", done),
                done,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Reject after-sales requests"),
            "queryset": queryset.select_related("order").order_by("pk"),
            "form": form,
            "checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "submit_label": gettext("Reject"),
        }
        template = engines["django"].from_string(REJECTION_TEMPLATE)
        return TemplateResponse(request, template, context)

    @admin.action(description=_("Goods of selected returns arrived"), permissions=["decide"])
    def receive_returns(self, request, queryset):
        done = _for_each(
            request,
            queryset,
            lambda row: aftersales.after_sale_receive_return(after_sale=row, actor=request.user),
        )
        _report(
            request,
            ngettext("%(count)d return received.", "%(count)d returns received.", done),
            done,
        )


# --- Money records -----------------------------------------------------------------------------


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    store_field = "order__store"
    list_display = [
        "out_refund_no",
        "order",
        "amount",
        "status",
        "reason",
        "created_by",
        "created_at",
        "succeeded_at",
    ]
    list_filter = ["status", ("order__store", UserStoreFilter)]
    list_select_related = ["order", "created_by"]
    search_fields = ["=out_refund_no", "^order__number"]
    fields = readonly_fields = [
        "out_refund_no",
        "order",
        "payment",
        "after_sale",
        "amount",
        "reason",
        "status",
        "error",
        "provider_refund_id",
        "created_by",
        "created_at",
        "succeeded_at",
    ]

    @admin.display(description=_("amount (yuan)"), ordering="amount_fen")
    def amount(self, refund: Refund) -> str:
        return _yuan(refund.amount_fen)


@admin.register(PaymentIssue)
class PaymentIssueAdmin(ReadOnlyAdmin):
    """Refused confirmations. One for an unknown trade number belongs to no store: HQ's."""

    store_field = "payment__order__store"
    list_display = ["created_at", "provider", "out_trade_no", "code", "amount", "payment"]
    list_filter = ["code", "provider"]
    list_select_related = ["payment"]
    search_fields = ["=out_trade_no"]
    fields = readonly_fields = [
        "created_at",
        "provider",
        "out_trade_no",
        "code",
        "amount",
        "payment",
        "raw_payload",
    ]

    @admin.display(description=_("amount (yuan)"), ordering="amount_fen")
    def amount(self, issue: PaymentIssue) -> str:
        return _yuan(issue.amount_fen)


@admin.register(DailySales)
class DailySalesAdmin(ReadOnlyAdmin):
    """The dashboard's roll-up (``orders.sales_rollup``): HQ's (no store role may view it)."""

    list_display = ["day", "store", "channel", "orders", "paid", "refunded", "computed_at"]
    list_filter = ["channel", ("store", UserStoreFilter)]
    list_select_related = ["store"]
    search_fields = ["store__code", "store__name"]
    date_hierarchy = "day"
    fields = readonly_fields = [
        "day",
        "store",
        "channel",
        "orders",
        "paid",
        "refunded",
        "computed_at",
    ]

    @admin.display(description=_("paid (yuan)"), ordering="paid_fen")
    def paid(self, row: DailySales) -> str:
        return _yuan(row.paid_fen)

    @admin.display(description=_("refunded (yuan)"), ordering="refunded_fen")
    def refunded(self, row: DailySales) -> str:
        return _yuan(row.refunded_fen)


# --- Configuration -----------------------------------------------------------------------------


@admin.register(ShippingRule)
class ShippingRuleAdmin(StoreScopedAdmin):
    """A store's delivery fee, kept by HQ (store roles hold no permission on it)."""

    list_display = ["store", "fee", "free_from"]
    list_select_related = ["store"]
    search_fields = ["store__code", "store__name"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "fee_fen":
            return YuanField(label=_("delivery fee (yuan)"))
        if db_field.name == "free_from_fen":
            return YuanField(
                label=_("free delivery from (yuan)"),
                required=False,
                help_text=_("Empty: never free."),
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description=_("delivery fee (yuan)"), ordering="fee_fen")
    def fee(self, rule: ShippingRule) -> str:
        return _yuan(rule.fee_fen)

    @admin.display(description=_("free delivery from (yuan)"), ordering="free_from_fen")
    def free_from(self, rule: ShippingRule) -> str:
        return _yuan(rule.free_from_fen)
