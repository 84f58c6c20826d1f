from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from partners.api import views
from partners.api.schema import PARTNER_SCHEMA_SETTINGS

app_name = "partner-api"

urlpatterns = [
    path("orders/", views.OrderListView.as_view(), name="order-list"),
    path("orders/<str:number>/", views.OrderDetailView.as_view(), name="order-detail"),
    path("orders/<str:number>/acknowledge/", views.AcknowledgeView.as_view(), name="acknowledge"),
    path("orders/<str:number>/shipments/", views.ShipmentsView.as_view(), name="shipments"),
    path(
        "orders/<str:number>/delivery-events/",
        views.DeliveryEventsView.as_view(),
        name="delivery-events",
    ),
    path("orders/<str:number>/cancel/", views.CancelView.as_view(), name="cancel"),
    path("stock/", views.StockView.as_view(), name="stock"),
    path(
        "schema/",
        SpectacularAPIView.as_view(
            urlconf="partners.api.schema_urls",
            custom_settings=PARTNER_SCHEMA_SETTINGS,
            authentication_classes=[],
            permission_classes=[],
        ),
        name="schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(
            url_name="partner-api:schema", authentication_classes=[], permission_classes=[]
        ),
        name="docs",
    ),
]
