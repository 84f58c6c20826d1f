import django_filters
from django.db.models import QuerySet

from retail.models import Category, Product, Store
from wechat import selectors


class ProductFilter(django_filters.FilterSet):
    """Filters of the catalogue. ``store`` chooses the store whose stock is shown (and that
    ``in_stock`` looks at); it does not narrow the list by itself."""

    store = django_filters.ModelChoiceFilter(
        queryset=selectors.shop_stores(),
        method="chosen_store",
        help_text="The chosen store's id: its stock is shown with each SKU.",
    )
    category = django_filters.ModelChoiceFilter(
        queryset=selectors.shop_categories(),
        method="in_category",
        help_text="A category id: its products and its subcategories' products.",
    )
    q = django_filters.CharFilter(
        method="search",
        max_length=50,
        help_text="Words of the name, brand or category; or a product code, SKU code or barcode.",
    )
    in_stock = django_filters.BooleanFilter(
        method="available",
        help_text="true: only products the chosen store can sell now, or the warehouses ship.",
    )
    online = django_filters.BooleanFilter(
        method="available_online",
        help_text="true: only products the warehouses can ship now.",
    )

    class Meta:
        model = Product
        fields = ["store", "category", "q", "in_stock", "online"]

    def chosen_store(self, queryset: QuerySet, name: str, value: Store) -> QuerySet:
        return queryset

    def in_category(self, queryset: QuerySet, name: str, value: Category) -> QuerySet:
        return selectors.shop_products_in_category(queryset, value)

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if not value.strip():
            return queryset
        return selectors.shop_products_matching(queryset, value)

    def available(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if not value:
            return queryset
        store = self.form.cleaned_data.get("store")
        return selectors.shop_products_available(queryset, store=store, online=True)

    def available_online(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if not value:
            return queryset
        return selectors.shop_products_available(queryset, store=None, online=True)
