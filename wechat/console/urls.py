"""The WeChat app's console pages, under ``/console/<store_code>/wechat/``."""

from django.urls import path

from wechat.console import views

urlpatterns = [
    path("pos/code/", views.pos_pay_by_code, name="pos-wechat"),
]
