"""The orders app's console pages, under ``/console/<store_code>/``."""

from orders.console import aftersales, dashboard, fulfilment, pickups, pos, sync

urlpatterns = [
    *dashboard.urlpatterns,
    *pos.urlpatterns,
    *pickups.urlpatterns,
    *fulfilment.urlpatterns,
    *aftersales.urlpatterns,
    *sync.urlpatterns,
]
