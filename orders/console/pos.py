"""Console: pos (being built for issue 9)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from retail.console import console_view
from retail.console.context import console_frame

PERMISSION = "orders.add_order"


@console_view(PERMISSION)
def page(request: HttpRequest, store_code: str) -> HttpResponse:
    return render(request, "console/placeholder.html", console_frame(request, section="pos"))


urlpatterns = [path("pos/", page, name="pos")]
