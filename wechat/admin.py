from django.contrib import admin

from retail.admin import HQOnly
from wechat.models import SyncCall


@admin.register(SyncCall)
class SyncCallAdmin(HQOnly, admin.ModelAdmin):
    """What was told to WeChat about each order event (shipping info, subscribe messages) and
    what WeChat answered: HQ's view when a shopper says WeChat shows no shipment."""

    list_display = ["order_number", "kind", "state", "calls", "errcode", "error", "updated_at"]
    list_filter = ["kind", "state"]
    search_fields = ["order_number", "event_id"]
    readonly_fields = [
        "event_id",
        "kind",
        "order_number",
        "state",
        "calls",
        "errcode",
        "error",
        "request",
        "created_at",
        "updated_at",
    ]
