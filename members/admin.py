"""Members in the admin, as each role sees them.

Staff see the members whose home store is one of theirs; members who joined online and never
came to a counter belong to HQ. A mobile number shows in full only to whoever holds
``members.view_full_mobile`` in the member's home store (managers, HQ); clerks see
``139****5678``, in the list, on the page and in her identities. Nothing about a member is typed
here: her identities, points and coupons are records the services wrote, and the two actions
(export her data, erase it) call ``members.services.identity``.
"""

import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponse
from django.template import engines
from django.template.response import TemplateResponse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from members.models import Coupon, Identity, Member, MemberMerge, PointsEntry, mask_mobile
from members.services.identity import member_erase, member_export
from retail.access import has_store_perm, store_ids_with_perm
from retail.admin import StoreScopedAdmin

LATEST_SHOWN = 50
FULL_MOBILE = "members.view_full_mobile"


def _full_mobile_shown(request, member: Member | None) -> bool:
    if member is None:
        return False
    store_ids = store_ids_with_perm(request.user, FULL_MOBILE)
    return store_ids is None or member.home_store_id in store_ids


class LatestFormSet(BaseInlineFormSet):
    """Only the newest ``LATEST_SHOWN`` rows: a member's history can be long."""

    def get_queryset(self):
        if not hasattr(self, "_latest"):
            self._latest = super().get_queryset()[:LATEST_SHOWN]
        return self._latest


class MemberRecordInline(admin.TabularInline):
    """Records of the member, read-only, seen by whoever sees the member."""

    extra = 0
    can_delete = False

    def get_fields(self, request, obj=None):
        return self.readonly_fields

    def has_view_permission(self, request, obj=None):
        return self.admin_site.get_model_admin(Member).has_view_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class IdentityInline(MemberRecordInline):
    model = Identity
    readonly_fields = ["kind", "app_id", "openid", "unionid", "phone", "phone_masked", "created_at"]

    def get_fields(self, request, obj=None):
        hidden = "phone_masked" if _full_mobile_shown(request, obj) else "phone"
        return [field for field in self.readonly_fields if field != hidden]

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("pk")

    @admin.display(description=_("phone"))
    def phone_masked(self, identity: Identity) -> str:
        return mask_mobile(identity.phone) or self.get_empty_value_display()


class PointsEntryInline(MemberRecordInline):
    model = PointsEntry
    formset = LatestFormSet
    verbose_name_plural = _("latest points entries")
    readonly_fields = [
        "created_at",
        "reason",
        "reference",
        "points",
        "balance_after",
        "remaining",
        "expires_at",
        "actor",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor").order_by("-created_at", "-pk")


class CouponInline(MemberRecordInline):
    model = Coupon
    formset = LatestFormSet
    verbose_name_plural = _("latest coupons")
    readonly_fields = [
        "template",
        "code",
        "status",
        "valid_from",
        "valid_until",
        "order_reference",
        "issued_at",
        "used_at",
    ]

    def get_queryset(self, request):
        return (
            super().get_queryset(request).select_related("template").order_by("-issued_at", "-pk")
        )


class MergeInline(MemberRecordInline):
    model = MemberMerge
    fk_name = "target"
    verbose_name_plural = _("members merged into this one")
    readonly_fields = ["source", "reason", "moved", "created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("source").order_by("pk")


ERASE_TEMPLATE = """{% extends "admin/base_site.html" %}
{% load i18n admin_urls %}
{% block breadcrumbs %}
<div class="breadcrumbs">
<a href="{% url 'admin:index' %}">{% translate 'Home' %}</a>
&rsaquo; <a href="{% url opts|admin_urlname:'changelist' %}">
  {{ opts.verbose_name_plural|capfirst }}</a>
&rsaquo; {{ title }}
</div>
{% endblock %}
{% block content %}
<form method="post">{% csrf_token %}
<p>{{ warning }}</p>
<ul>{% for member in queryset %}<li>#{{ member.pk }} {{ member }}</li>{% endfor %}</ul>
{% for member in queryset %}
<input type="hidden" name="{{ checkbox_name }}" value="{{ member.pk }}">
{% endfor %}
<input type="hidden" name="action" value="erase_members">
<input type="hidden" name="apply" value="yes">
<div class="submit-row"><input type="submit" class="default" value="{{ submit_label }}"></div>
</form>
{% endblock %}
"""


@admin.register(Member)
class MemberAdmin(StoreScopedAdmin):
    """Members as staff look them up: by mobile number (its tail is enough), name or referral
    code."""

    store_field = "home_store"
    # The first column is swapped per request for one that shows each row's number as the
    # user may see it (``get_list_display``).
    list_display = [
        "mobile_masked",
        "name",
        "tier",
        "home_store",
        "joined_channel",
        "points_balance",
        "created_at",
    ]
    list_select_related = ["tier", "home_store"]
    list_filter = ["tier", "joined_channel"]
    search_fields = ["mobile", "name", "=referral_code"]
    readonly_fields = [
        "mobile",
        "mobile_masked",
        "name",
        "birthday",
        "tier",
        "home_store",
        "joined_channel",
        "referrer",
        "referral_code",
        "points_balance",
        "merged_into",
        "created_at",
        "updated_at",
        "erased_at",
        "erased_by",
    ]
    inlines = [IdentityInline, PointsEntryInline, CouponInline, MergeInline]
    actions = ["export_member", "erase_members"]

    def get_list_display(self, request):
        full_in = store_ids_with_perm(request.user, FULL_MOBILE)

        @admin.display(description=_("mobile number"), ordering="mobile")
        def mobile(member: Member) -> str | None:
            shown = full_in is None or member.home_store_id in full_in
            return (member.mobile if shown else member.masked_mobile) or None

        return [mobile, *self.list_display[1:]]

    def get_fields(self, request, obj=None):
        hidden = "mobile_masked" if _full_mobile_shown(request, obj) else "mobile"
        return [field for field in self.readonly_fields if field != hidden]

    @admin.display(description=_("mobile number"), ordering="mobile")
    def mobile_masked(self, member: Member) -> str:
        return member.masked_mobile or self.get_empty_value_display()

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_export_permission(self, request) -> bool:
        return request.user.has_perm("members.export_member")

    def has_erase_permission(self, request) -> bool:
        return request.user.has_perm("members.erase_member")

    @admin.action(description=_("Export the selected member's data (JSON)"), permissions=["export"])
    def export_member(self, request, queryset):
        members = list(queryset[:2])
        if len(members) != 1:
            messages.error(request, gettext("Export one member at a time."))
            return None
        member = members[0]
        if not has_store_perm(request.user, "members.export_member", member.home_store_id):
            messages.error(request, gettext("You may not export this member's data."))
            return None
        body = json.dumps(member_export(member=member), ensure_ascii=False, indent=2)
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="member-{member.pk}.json"'
        return response

    @admin.action(
        description=_("Erase the selected members' personal data…"), permissions=["erase"]
    )
    def erase_members(self, request, queryset):
        """Asks first: erasing cannot be undone."""
        members = list(queryset.order_by("pk"))
        if "apply" not in request.POST:
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": gettext("Erase members' personal data"),
                "warning": gettext(
                    "Name, mobile number, birthday and every login of these members will be "
                    "removed for good. Their orders and points history stay, anonymous."
                ),
                "queryset": members,
                "checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "submit_label": gettext("Erase"),
            }
            return TemplateResponse(request, engines["django"].from_string(ERASE_TEMPLATE), context)
        done = 0
        for member in members:
            if not has_store_perm(request.user, "members.erase_member", member.home_store_id):
                messages.error(
                    request, gettext("You may not erase member #%(id)d.") % {"id": member.pk}
                )
                continue
            member_erase(member=member, actor=request.user)
            self.log_change(request, member, gettext("Personal data erased."))
            done += 1
        if done:
            messages.success(
                request,
                ngettext("%(count)d member erased.", "%(count)d members erased.", done)
                % {"count": done},
            )
        return None


# Points, spend and tiers, and coupons and promotions, keep their admin classes in modules of
# their own.
from members import admin_coupons, admin_points  # noqa: E402, F401
