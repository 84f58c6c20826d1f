"""Who may do what, and in which stores.

A staff member's roles (``StaffRole``) are the one source of truth for both questions:

* ``StoreRoleBackend`` turns roles into Django permissions, so the admin, DRF and the console
  all ask ``user.has_perm(...)`` and nobody maintains groups by hand;
* ``stores_for`` and ``scope_to_stores`` narrow any queryset to the stores a user belongs to.

Apps add their own permissions with ``grant_role_permissions`` in their ``ready()``.
"""

from typing import TypeVar

from django.contrib.auth.models import AnonymousUser, Permission, User
from django.db.models import Model, QuerySet

from retail.models import StaffRole, Store

Role = StaffRole.Role

_CATALOGUE_VIEW = {
    "retail.view_category",
    "retail.view_product",
    "retail.view_sku",
}

# HQ admins hold every permission; store roles hold these, and what apps add with
# grant_role_permissions() when they start.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.STORE_MANAGER: frozenset(
        _CATALOGUE_VIEW | {"retail.view_store", "retail.change_store", "retail.view_staffrole"}
    ),
    Role.CLERK: frozenset(_CATALOGUE_VIEW | {"retail.view_store"}),
}


def grant_role_permissions(role: str, permissions: set[str]) -> None:
    """Called from an app's ``ready()``: the core needs to know no app to serve its roles."""
    ROLE_PERMISSIONS[role] = ROLE_PERMISSIONS.get(role, frozenset()) | frozenset(permissions)


_ROLES_ATTR = "_retail_staff_roles"
_PERMS_ATTR = "_retail_role_permissions"

M = TypeVar("M", bound=Model)


def staff_roles(user: User | AnonymousUser) -> list[StaffRole]:
    """The user's roles, read once per user object (one query per request at most)."""
    if not user.is_authenticated or not user.is_active:
        return []
    if not hasattr(user, _ROLES_ATTR):
        setattr(user, _ROLES_ATTR, list(StaffRole.objects.filter(user=user)))
    return getattr(user, _ROLES_ATTR)


def _holds_hq_role(user: User | AnonymousUser) -> bool:
    return any(role.role == Role.HQ_ADMIN for role in staff_roles(user))


def is_hq(user: User | AnonymousUser) -> bool:
    """HQ admins and superusers work across all stores."""
    if user.is_authenticated and user.is_active and user.is_superuser:
        return True
    return _holds_hq_role(user)


def store_ids_for(user: User | AnonymousUser) -> set[int] | None:
    """The ids of the user's stores, or None for HQ, which means every store."""
    if is_hq(user):
        return None
    return {role.store_id for role in staff_roles(user)}


def stores_for(user: User | AnonymousUser) -> QuerySet[Store]:
    ids = store_ids_for(user)
    stores = Store.objects.all()
    return stores if ids is None else stores.filter(pk__in=ids)


def scope_to_stores(
    queryset: QuerySet[M], user: User | AnonymousUser, *, store_field: str = "store"
) -> QuerySet[M]:
    """Narrow ``queryset`` to rows whose ``store_field`` is one of the user's stores."""
    ids = store_ids_for(user)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{store_field}__in": ids})


def can_access_store(user: User | AnonymousUser, store_id: int) -> bool:
    ids = store_ids_for(user)
    return ids is None or store_id in ids


def has_store_perm(user: User | AnonymousUser, perm: str, store_id: int) -> bool:
    """Whether the user holds ``perm`` *in this store*: a clerk here who manages another
    store acts here as a clerk. HQ holds every permission everywhere."""
    if not (user.is_authenticated and user.is_active):
        return False
    if is_hq(user):
        return user.has_perm(perm)
    return any(
        role.store_id == store_id and perm in ROLE_PERMISSIONS.get(role.role, frozenset())
        for role in staff_roles(user)
    )


def store_ids_with_perm(user: User | AnonymousUser, perm: str) -> set[int] | None:
    """The stores where the user holds ``perm``; None for HQ, which means every store."""
    if is_hq(user):
        return None
    return {
        role.store_id
        for role in staff_roles(user)
        if perm in ROLE_PERMISSIONS.get(role.role, frozenset())
    }


class StoreRoleBackend:
    """Grants permissions from staff roles. Authenticates nobody: ModelBackend does that."""

    def authenticate(self, request, **credentials) -> None:
        return None

    def get_user(self, user_id: int) -> None:
        return None

    def get_all_permissions(self, user, obj=None) -> set[str]:
        if not hasattr(user, _PERMS_ATTR):
            setattr(user, _PERMS_ATTR, _role_permissions(staff_roles(user)))
        return getattr(user, _PERMS_ATTR)

    def has_perm(self, user, perm: str, obj=None) -> bool:
        if _holds_hq_role(user):
            return True
        return perm in self.get_all_permissions(user, obj)

    def has_module_perms(self, user, app_label: str) -> bool:
        if _holds_hq_role(user):
            return True
        prefix = f"{app_label}."
        return any(perm.startswith(prefix) for perm in self.get_all_permissions(user))


def _role_permissions(roles: list[StaffRole]) -> set[str]:
    if any(role.role == Role.HQ_ADMIN for role in roles):
        return {
            f"{app_label}.{codename}"
            for app_label, codename in Permission.objects.values_list(
                "content_type__app_label", "codename"
            )
        }
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(role.role, frozenset())
    return granted
