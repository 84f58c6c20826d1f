"""Console: dashboard (being built for issue 9)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from retail.console import console_view
from retail.console.context import console_frame

PERMISSION = "orders.view_order"


@console_view(PERMISSION, all_stores=True)
def page(request: HttpRequest, store_code: str) -> HttpResponse:
    return render(request, "console/placeholder.html", console_frame(request, section="dashboard"))


urlpatterns = [path("dashboard/", page, name="dashboard")]
