"""The console's navigation: apps register their sections; each page shows the ones the user
may open in the store at hand."""

from dataclasses import dataclass

from django.urls import reverse
from django.utils.functional import Promise

from retail.access import has_store_perm


@dataclass(frozen=True)
class NavEntry:
    key: str
    label: str | Promise
    url_name: str  # under the "console" namespace, taking the store code
    permission: str
    order: int = 100
    # Shown for HQ's "all stores" view too.
    all_stores: bool = False


_entries: dict[str, NavEntry] = {}


def console_nav_register(entry: NavEntry) -> None:
    _entries[entry.key] = entry


def nav_for(user, store) -> list[dict]:
    """The sections ``user`` may open at ``store`` (None: HQ's all-stores view)."""
    entries = sorted(_entries.values(), key=lambda entry: (entry.order, entry.key))
    shown = []
    for entry in entries:
        if store is None:
            if not entry.all_stores or not user.has_perm(entry.permission):
                continue
            code = "all"
        else:
            if not has_store_perm(user, entry.permission, store.pk):
                continue
            code = store.code
        shown.append(
            {
                "key": entry.key,
                "label": entry.label,
                "url": reverse(f"console:{entry.url_name}", kwargs={"store_code": code}),
            }
        )
    return shown
