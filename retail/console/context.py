"""What every console page's frame shows: the store, the stores she may switch to, the
sections she may open."""

from collections.abc import Callable
from urllib.parse import quote

from django.http import HttpRequest
from django.urls import reverse

from retail.access import is_hq, stores_for
from retail.console.nav import nav_for

_SLOT = "__store_code__"


def dashboard_urls() -> Callable[[str], str]:
    """A store's dashboard URL by its code, from one ``reverse()`` for every store: HQ's
    pages list every store (the switcher, the all-stores table), and a ``{% url %}`` per
    store cost 0.3 s of each page at 1,000 stores."""
    template = reverse("console:dashboard", kwargs={"store_code": _SLOT})
    return lambda code: template.replace(_SLOT, quote(code, safe=""))


def console_frame(request: HttpRequest, *, section: str) -> dict:
    store = getattr(request, "console_store", None)
    user = request.user
    stores = list(stores_for(user).filter(active=True).order_by("code"))
    url_of = dashboard_urls()
    for each in stores:
        each.console_url = url_of(each.code)
    return {
        "console_store": store,
        "console_stores": stores,
        "console_is_hq": is_hq(user),
        "console_nav": nav_for(user, store),
        "console_section": section,
    }
