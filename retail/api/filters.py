import django_filters

from retail.models import SKU


class SKUFilter(django_filters.FilterSet):
    category = django_filters.CharFilter(field_name="product__category__code")
    product = django_filters.CharFilter(field_name="product__code")
    q = django_filters.CharFilter(field_name="product__name", lookup_expr="icontains")

    class Meta:
        model = SKU
        fields = ["barcode", "active"]
