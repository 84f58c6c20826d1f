"""What every console page's frame shows: the store, the stores she may switch to, the
sections she may open."""

from django.http import HttpRequest

from retail.access import is_hq, stores_for
from retail.console.nav import nav_for


def console_frame(request: HttpRequest, *, section: str) -> dict:
    store = getattr(request, "console_store", None)
    user = request.user
    return {
        "console_store": store,
        "console_stores": list(stores_for(user).filter(active=True).order_by("code")),
        "console_is_hq": is_hq(user),
        "console_nav": nav_for(user, store),
        "console_section": section,
    }
