"""The urlconf the shop's schema is generated from: the shop API alone, at its real prefix."""

from django.urls import include, path

from wechat.api.schema import SHOP_PREFIX

urlpatterns = [path(SHOP_PREFIX.lstrip("/"), include("wechat.api.urls"))]
