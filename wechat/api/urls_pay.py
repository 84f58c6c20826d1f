"""Paying with WeChat Pay (wechat/api/pay.py), under /api/shop/v1/."""

from django.urls import path

from wechat.api import pay

urlpatterns = [
    path("orders/<str:number>/pay/", pay.OrderPayView.as_view(), name="order-pay"),
]
