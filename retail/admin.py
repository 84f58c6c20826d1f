from django.contrib import admin, messages
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export.admin import ImportExportModelAdmin

from retail import services
from retail.access import has_store_perm, is_hq, scope_to_stores, store_ids_with_perm
from retail.errors import BusinessError
from retail.forms import YuanField
from retail.models import (
    SKU,
    Category,
    OutboxAttempt,
    OutboxDelivery,
    OutboxEvent,
    Product,
    StaffRole,
    Store,
)
from retail.money import fen_to_yuan
from retail.outbox import outbox_delivery_retry
from retail.resources import ProductResource, SKUResource

admin.site.site_header = _("Retail platform")
admin.site.site_title = _("Retail platform")
admin.site.index_title = _("Administration")


class StoreScopedAdmin(admin.ModelAdmin):
    """An admin whose rows belong to stores: staff see and pick only their own stores.

    Later apps' admins (stock, orders, ...) inherit this and name their ``store_field``.
    """

    store_field = "store"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return scope_to_stores(queryset, request.user, store_field=self.store_field)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Store:
            # Only stores where the user may create or change such rows, by her role there.
            adding = store_ids_with_perm(request.user, self._perm("add"))
            changing = store_ids_with_perm(request.user, self._perm("change"))
            if adding is None or changing is None:
                kwargs["queryset"] = Store.objects.all()
            else:
                kwargs["queryset"] = Store.objects.filter(pk__in=adding | changing)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _perm(self, action: str) -> str:
        return f"{self.opts.app_label}.{action}_{self.opts.model_name}"

    def store_id_of(self, obj) -> int:
        """The store a row belongs to, following ``store_field`` (``stock_item__store``...)."""
        *path, last = self.store_field.split("__")
        for step in path:
            obj = getattr(obj, step)
        return obj.pk if last == "pk" else getattr(obj, f"{last}_id")

    # Changing or deleting a row takes the permission in the row's own store.
    def has_change_permission(self, request, obj=None):
        if not super().has_change_permission(request, obj):
            return False
        return obj is None or has_store_perm(
            request.user, self._perm("change"), self.store_id_of(obj)
        )

    def has_delete_permission(self, request, obj=None):
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or has_store_perm(
            request.user, self._perm("delete"), self.store_id_of(obj)
        )


@admin.register(Store)
class StoreAdmin(StoreScopedAdmin):
    store_field = "pk"
    list_display = ["code", "name", "kind", "city", "district", "hours", "services", "active"]
    list_filter = ["kind", "city", "active", "offers_pickup", "offers_ship_from_store"]
    search_fields = ["code", "name", "address", "district"]
    fieldsets = [
        (None, {"fields": ["code", "name", "kind", "active", "phone"]}),
        (
            _("Address"),
            {"fields": ["province", "city", "district", "address", "latitude", "longitude"]},
        ),
        (_("Hours"), {"fields": ["opens_at", "closes_at"]}),
        (
            _("Services"),
            {
                "fields": [
                    "offers_pickup",
                    "offers_ship_from_store",
                    "offers_counter_sales",
                    "delivery_radius_m",
                ]
            },
        ),
    ]

    @admin.display(description=_("hours"))
    def hours(self, store: Store) -> str:
        if store.opens_at == store.closes_at:
            return _("24 hours")
        return f"{store.opens_at:%H:%M}-{store.closes_at:%H:%M}"

    @admin.display(description=_("services"))
    def services(self, store: Store) -> str:
        offered = [
            label
            for offers, label in [
                (store.offers_pickup, _("pickup")),
                (store.offers_ship_from_store, _("ship-from-store")),
                (store.offers_counter_sales, _("counter")),
            ]
            if offers
        ]
        if store.delivery_radius_m:
            offered.append(_("delivery %(km)g km") % {"km": store.delivery_radius_m / 1000})
        return " · ".join(str(label) for label in offered) or "—"

    def get_readonly_fields(self, request, obj=None):
        # Identity and opening or closing a store are decisions of HQ.
        return [] if is_hq(request.user) else ["code", "kind", "active"]


class PriceInYuan:
    """Staff type prices in yuan; the model keeps fen."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "price_fen":
            return YuanField(required=True)
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class SKUInline(PriceInYuan, admin.TabularInline):
    model = SKU
    extra = 0
    fields = ["code", "barcode", "attributes", "price_fen", "active"]


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "parent", "sort_order", "active"]
    list_filter = ["active", "parent"]
    list_select_related = ["parent"]
    search_fields = ["code", "name"]
    autocomplete_fields = ["parent"]


@admin.register(Product)
class ProductAdmin(ImportExportModelAdmin):
    resource_classes = [ProductResource]
    list_display = ["code", "name", "category", "brand", "unit", "active"]
    list_filter = ["active", "category"]
    list_select_related = ["category"]
    search_fields = ["code", "name", "brand", "skus__barcode"]
    autocomplete_fields = ["category"]
    inlines = [SKUInline]


@admin.register(SKU)
class SKUAdmin(PriceInYuan, ImportExportModelAdmin):
    resource_classes = [SKUResource]
    list_display = ["code", "product", "spec_label", "barcode", "price", "active"]
    list_filter = ["active", "product__category"]
    list_select_related = ["product"]
    search_fields = ["code", "barcode", "product__name", "product__code"]
    autocomplete_fields = ["product"]

    @admin.display(description=_("price (yuan)"), ordering="price_fen")
    def price(self, sku: SKU) -> str:
        return fen_to_yuan(sku.price_fen)

    @admin.display(description=_("spec"))
    def spec_label(self, sku: SKU) -> str:
        return sku.spec_label


@admin.register(StaffRole)
class StaffRoleAdmin(StoreScopedAdmin):
    list_display = ["user", "role", "store", "created_at"]
    list_filter = ["role", "store"]
    list_select_related = ["user", "store"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "store__code"]
    autocomplete_fields = ["user"]

    def save_model(self, request, obj, form, change):
        services.staff_role_save(role=obj)


# --- Outbox: what went out to WeChat and partners, and what did not -----------------------------


class HQOnly:
    """Outbox rows span every store and carry shoppers' data: HQ and superusers only, and
    read-only (the outbox writes them; staff only retry)."""

    def has_module_permission(self, request):
        return is_hq(request.user)

    def has_view_permission(self, request, obj=None):
        return is_hq(request.user)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class OutboxAttemptInline(HQOnly, admin.TabularInline):
    model = OutboxAttempt
    fields = ["number", "started_at", "duration_ms", "outcome", "status_code", "error"]
    readonly_fields = fields
    ordering = ["-number"]
    extra = 0


class OutboxDeliveryInline(HQOnly, admin.TabularInline):
    model = OutboxDelivery
    fields = ["subscriber", "state", "attempts", "next_attempt_at", "delivered_at", "last_error"]
    readonly_fields = fields
    ordering = ["subscriber"]
    extra = 0
    show_change_link = True


@admin.register(OutboxEvent)
class OutboxEventAdmin(HQOnly, admin.ModelAdmin):
    list_display = ["event_id", "event_type", "aggregate_type", "aggregate_id", "created_at"]
    list_filter = ["event_type", "aggregate_type"]
    search_fields = ["=event_id", "=aggregate_id"]
    date_hierarchy = "created_at"
    fields = ["event_id", "event_type", "aggregate_type", "aggregate_id", "payload", "created_at"]
    readonly_fields = fields
    inlines = [OutboxDeliveryInline]


@admin.register(OutboxDelivery)
class OutboxDeliveryAdmin(HQOnly, admin.ModelAdmin):
    list_display = [
        "pk",
        "event_type",
        "aggregate",
        "subscriber",
        "state",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "error",
        "delivered_at",
    ]
    list_filter = ["subscriber", "state"]
    list_select_related = ["event"]
    search_fields = ["=event__event_id", "=event__aggregate_id"]
    fields = [
        "event",
        "subscriber",
        "state",
        "attempts",
        "attempt_limit",
        "next_attempt_at",
        "lease_until",
        "last_status_code",
        "last_error",
        "delivered_at",
        "retried_by",
        "retried_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    inlines = [OutboxAttemptInline]
    actions = ["retry_deliveries"]

    @admin.display(description=_("event type"), ordering="event__event_type")
    def event_type(self, delivery: OutboxDelivery) -> str:
        return delivery.event.event_type

    @admin.display(description=_("aggregate"))
    def aggregate(self, delivery: OutboxDelivery) -> str:
        return f"{delivery.event.aggregate_type}:{delivery.event.aggregate_id}"

    @admin.display(description=_("last error"))
    def error(self, delivery: OutboxDelivery) -> str:
        return Truncator(delivery.last_error).chars(80)

    def has_retry_permission(self, request) -> bool:
        return is_hq(request.user)

    @admin.action(description=_("Retry the selected deliveries now"), permissions=["retry"])
    def retry_deliveries(self, request, queryset):
        retried = refused = 0
        for delivery in queryset:
            try:
                outbox_delivery_retry(delivery=delivery, actor=request.user)
            except BusinessError:
                refused += 1
            else:
                retried += 1
                self.log_change(request, delivery, [{"changed": {"fields": ["state"]}}])
        if retried:
            self.message_user(
                request,
                ngettext(
                    "%(count)d delivery will be sent again.",
                    "%(count)d deliveries will be sent again.",
                    retried,
                )
                % {"count": retried},
                messages.SUCCESS,
            )
        if refused:
            self.message_user(
                request,
                ngettext(
                    "%(count)d delivery was not failed or dead and was left as it was.",
                    "%(count)d deliveries were not failed or dead and were left as they were.",
                    refused,
                )
                % {"count": refused},
                messages.WARNING,
            )
