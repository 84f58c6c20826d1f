from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from retail.access import stores_for
from retail.models import SKU, Store


def store_list(*, user: User | AnonymousUser) -> QuerySet[Store]:
    """The stores the user belongs to (all of them for HQ)."""
    return stores_for(user).order_by("code")


def sku_list() -> QuerySet[SKU]:
    return SKU.objects.select_related("product", "product__category")
