"""Console: aftersales (being built for issue 9)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from retail.console import console_view
from retail.console.context import console_frame

PERMISSION = "orders.change_aftersale"


@console_view(PERMISSION)
def page(request: HttpRequest, store_code: str) -> HttpResponse:
    return render(request, "console/placeholder.html", console_frame(request, section="aftersales"))


urlpatterns = [path("aftersales/", page, name="aftersales")]
