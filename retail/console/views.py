"""The console's entrance: ``/console/`` sends staff to their first store's first page (HQ to
all stores)."""

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from retail.access import is_hq, stores_for
from retail.console.nav import nav_for


def console_home(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not user.is_authenticated or not user.is_staff:
        return redirect_to_login(request.get_full_path())
    if is_hq(user):
        entries = nav_for(user, None)
        if entries:
            return redirect(entries[0]["url"])
    for store in stores_for(user).filter(active=True).order_by("code"):
        entries = nav_for(user, store)
        if entries:
            return redirect(entries[0]["url"])
    return render(request, "console/no_store.html", status=403)
