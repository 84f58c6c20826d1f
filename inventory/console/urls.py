"""The inventory app's console pages, under ``/console/<store_code>/stock/``."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from retail.console import console_view
from retail.console.context import console_frame


@console_view("inventory.view_stockitem")
def page(request: HttpRequest, store_code: str) -> HttpResponse:
    return render(request, "console/placeholder.html", console_frame(request, section="stock"))


urlpatterns = [path("", page, name="stock")]
