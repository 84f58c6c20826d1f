from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MembersConfig(AppConfig):
    name = "members"
    verbose_name = _("Members")

    def ready(self) -> None:
        from retail.access import Role, grant_role_permissions

        # Both roles look members up and sign them up at the counter.
        counter = {"members.view_member", "members.add_member"}
        # Full mobile numbers and data exports are a manager's call; erasing a member is HQ's.
        managing = {"members.view_full_mobile", "members.export_member"}
        grant_role_permissions(Role.CLERK, counter)
        grant_role_permissions(Role.STORE_MANAGER, counter | managing)
