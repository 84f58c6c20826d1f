from django.urls import path

from orders.api import views

app_name = "staff-orders"

urlpatterns = [
    path("", views.OrderListView.as_view(), name="order-list"),
    path("handover/", views.OrderHandoverView.as_view(), name="order-handover"),
    path("<int:pk>/", views.OrderDetailView.as_view(), name="order-detail"),
    path("<int:pk>/cancel/", views.OrderCancelView.as_view(), name="order-cancel"),
    path("<int:pk>/mark-ready/", views.OrderMarkReadyView.as_view(), name="order-mark-ready"),
    path("<int:pk>/ship/", views.OrderShipView.as_view(), name="order-ship"),
    path("<int:pk>/address/", views.OrderAddressView.as_view(), name="order-address"),
    path(
        "<int:pk>/mark-delivered/",
        views.OrderMarkDeliveredView.as_view(),
        name="order-mark-delivered",
    ),
    path("<int:pk>/refund/", views.OrderRefundView.as_view(), name="order-refund"),
    path(
        "after-sales/<int:pk>/approve/",
        views.AfterSaleApproveView.as_view(),
        name="after-sale-approve",
    ),
    path(
        "after-sales/<int:pk>/reject/",
        views.AfterSaleRejectView.as_view(),
        name="after-sale-reject",
    ),
    path(
        "after-sales/<int:pk>/receive-return/",
        views.AfterSaleReceiveReturnView.as_view(),
        name="after-sale-receive-return",
    ),
]
