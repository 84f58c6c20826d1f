from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportModelAdmin

from retail import services
from retail.access import is_hq, scope_to_stores, stores_for
from retail.forms import YuanField
from retail.models import SKU, Category, Product, StaffRole, Store
from retail.money import fen_to_yuan
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
            kwargs["queryset"] = stores_for(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


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
