"""The inventory app's console pages, under ``/console/<store_code>/stock/``."""

from django.urls import path

from inventory.console import views

urlpatterns = [
    path("", views.stock_list, name="stock"),
    path("sku/<str:sku_code>/", views.stock_sku, name="stock_sku"),
    path("sku/<str:sku_code>/damage/", views.stock_damage, name="stock_damage"),
    path("receipts/", views.stock_receipt, name="stock_receipt"),
    path("transfers/", views.transfer_list, name="stock_transfers"),
    path("transfers/new/", views.transfer_new, name="stock_transfer_new"),
    path("transfers/<int:pk>/", views.transfer_detail, name="stock_transfer"),
    path("transfers/<int:pk>/send/", views.transfer_send_view, name="stock_transfer_send"),
    path(
        "transfers/<int:pk>/receive/",
        views.transfer_receive_partial,
        name="stock_transfer_receive",
    ),
    path(
        "transfers/<int:pk>/receive-all/",
        views.transfer_receive_all,
        name="stock_transfer_receive_all",
    ),
    path("counts/", views.count_list, name="stock_counts"),
    path("counts/start/", views.count_start, name="stock_count_start"),
    path("counts/<int:pk>/", views.count_sheet, name="stock_count"),
    path("counts/<int:pk>/enter/", views.count_enter, name="stock_count_enter"),
    path("counts/<int:pk>/apply/", views.count_apply, name="stock_count_apply"),
]
