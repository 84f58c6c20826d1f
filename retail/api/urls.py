from django.urls import path

from retail.api import views

app_name = "staff-api"

urlpatterns = [
    path("stores/", views.StoreListView.as_view(), name="store-list"),
    path("stores/<int:pk>/", views.StoreDetailView.as_view(), name="store-detail"),
    path("skus/", views.SKUListView.as_view(), name="sku-list"),
    path("skus/<int:pk>/", views.SKUDetailView.as_view(), name="sku-detail"),
]
