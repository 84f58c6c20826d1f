"""``/console/``: the entrance, then each app's pages under ``<store_code>/``."""

from django.urls import include, path

from retail.console.views import console_home

app_name = "console"

urlpatterns = [
    path("", console_home, name="home"),
    path("<str:store_code>/", include("orders.console.urls")),
    path("<str:store_code>/stock/", include("inventory.console.urls")),
    path("<str:store_code>/wechat/", include("wechat.console.urls")),
]
