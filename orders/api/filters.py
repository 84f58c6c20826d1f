import django_filters
from django import forms
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from orders.models import Channel, Fulfilment, Order, OrderStatus


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(django_filters.NumberFilter):
    """A whole number: "1.5" is refused rather than read as 1."""

    field_class = forms.IntegerField


class OrderFilter(django_filters.FilterSet):
    """The list is scoped to the user's stores before it is filtered: ``store`` outside them
    finds nothing."""

    status = django_filters.MultipleChoiceFilter(
        choices=OrderStatus.choices, help_text="Repeat for several: `?status=paid&status=shipped`."
    )
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    fulfilment = django_filters.ChoiceFilter(choices=Fulfilment.choices)
    store = IdFilter(field_name="store_id", help_text="A store id.")
    created_after = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Created at or after (ISO 8601)."
    )
    created_before = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="Created before (ISO 8601)."
    )
    q = django_filters.CharFilter(
        method="search",
        max_length=20,
        help_text="The start of an order number, or a whole pickup code.",
    )

    class Meta:
        model = Order
        fields = ["status", "channel", "fulfilment", "store", "created_after", "created_before"]

    def search(self, queryset: QuerySet[Order], name: str, value: str) -> QuerySet[Order]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(number__startswith=value) | Q(pickup_code=value))
