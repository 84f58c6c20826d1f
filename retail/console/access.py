"""Who may open a console page: a signed-in staff member with the page's permission in the
store named by the URL (``has_store_perm``: the role held in *that* store). A store that is not
hers is a 404, as in the API: staff do not learn what other stores hold; a store of hers where
her role lacks the permission is a 403. HQ may also use ``all`` for every store at once where a
page allows it."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from retail.access import can_access_store, has_store_perm, is_hq
from retail.models import Store

ALL_STORES = "all"


def console_view(
    permission: str, *, all_stores: bool = False
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorate a console view taking ``store_code``: it gets ``request.console_store`` (the
    ``Store``, or None for HQ's ``all``) and runs only for staff holding ``permission`` there."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, store_code: str, *args, **kwargs) -> HttpResponse:
            user = request.user
            if not user.is_authenticated or not user.is_staff:
                return redirect_to_login(request.get_full_path())
            if store_code == ALL_STORES:
                if not (all_stores and is_hq(user)):
                    raise Http404
                if not user.has_perm(permission):
                    raise PermissionDenied
                request.console_store = None
            else:
                store = get_object_or_404(Store, code=store_code)
                if not can_access_store(user, store.pk):
                    raise Http404
                if not has_store_perm(user, permission, store.pk):
                    raise PermissionDenied
                request.console_store = store
            return view(request, store_code, *args, **kwargs)

        wrapped.console_permission = permission
        return wrapped

    return decorate


def may(request: HttpRequest, permission: str) -> bool:
    """Whether the user holds ``permission`` in the page's store (for showing buttons; the
    action's own view checks again)."""
    store = getattr(request, "console_store", None)
    if store is None:
        return request.user.has_perm(permission) and is_hq(request.user)
    return has_store_perm(request.user, permission, store.pk)
