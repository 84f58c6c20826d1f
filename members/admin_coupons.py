"""Admin for coupon templates, coupons, grants and promotions (HQ marketing).

Templates and promotions are settings staff edit directly; the database refuses what does not
add up (a window ending before it starts, fewer coupons than already issued). Coupons
themselves are only read here: they are issued and spent through ``members.services.coupons``,
and staff grant a template to members on its own page, which calls ``coupon_grant``.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from members.models import (
    Coupon,
    CouponGrant,
    CouponTemplate,
    JoinedChannel,
    Member,
    Promotion,
    PromotionPrice,
    Tier,
)
from members.services.coupons import coupon_grant
from retail.errors import BusinessError
from retail.models import Store
from retail.money import fen_to_yuan


class CouponInline(admin.TabularInline):
    """A member's coupons, read-only (for the member admin)."""

    model = Coupon
    fields = ["code", "template", "status", "valid_until", "order_reference", "issue_reference"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class CouponGrantInline(admin.TabularInline):
    model = CouponGrant
    fields = ["reference", "segment", "issued", "actor", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CouponTemplate)
class CouponTemplateAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "value",
        "issued_by",
        "scope",
        "valid_from",
        "valid_until",
        "issued",
        "active",
    ]
    list_filter = ["kind", "issued_by", "scope", "active"]
    search_fields = ["name"]
    filter_horizontal = ["stores", "categories", "skus"]
    readonly_fields = ["issued_count", "grant_link", "created_at"]
    inlines = [CouponGrantInline]
    fieldsets = [
        (None, {"fields": ["name", "kind", "issued_by", "active"]}),
        (
            _("value"),
            {"fields": ["amount_fen", "threshold_fen", "percent_off", "cap_fen"]},
        ),
        (_("where and on what"), {"fields": ["scope", "stores", "categories", "skus"]}),
        (
            _("validity and quantity"),
            {
                "fields": [
                    "valid_from",
                    "valid_until",
                    "valid_days",
                    "per_member_limit",
                    "total_quantity",
                    "issued_count",
                    "grant_link",
                    "created_at",
                ]
            },
        ),
    ]

    @admin.display(description=_("value"))
    def value(self, template: CouponTemplate) -> str:
        kind = CouponTemplate.Kind
        if template.kind == kind.FREE_SHIPPING:
            return gettext("free delivery")
        if template.kind == kind.PERCENT:
            text = f"{template.percent_off}%"
            if template.cap_fen is not None:
                text += " ≤ ¥" + fen_to_yuan(template.cap_fen)
        else:
            text = "¥" + fen_to_yuan(template.amount_fen)
        if template.threshold_fen:
            text = f"¥{fen_to_yuan(template.threshold_fen)} → {text}"
        return text

    @admin.display(description=_("issued"), ordering="issued_count")
    def issued(self, template: CouponTemplate) -> str:
        return f"{template.issued_count} / {template.total_quantity}"

    @admin.display(description=_("grant"))
    def grant_link(self, template: CouponTemplate) -> str:
        if template.pk is None or template.issued_by != CouponTemplate.IssuedBy.GRANT:
            return "—"
        url = reverse("admin:members_coupontemplate_grant", args=[template.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Grant to members…"))

    def get_urls(self):
        grant = path(
            "<path:object_id>/grant/",
            self.admin_site.admin_view(self.grant_view),
            name="members_coupontemplate_grant",
        )
        return [grant, *super().get_urls()]

    def grant_view(self, request, object_id):
        """Choose the members (a list of mobile numbers, a tier, a home store, a channel) and
        a batch reference; ``coupon_grant`` issues one coupon to each, once per reference."""
        template = self.get_object(request, unquote(object_id))
        if template is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, template):
            raise PermissionDenied
        change_url = reverse("admin:members_coupontemplate_change", args=[template.pk])
        form = CouponGrantForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                grant = coupon_grant(template=template, actor=request.user, **form.segment())
            except BusinessError as error:
                messages.error(request, error.message)
            else:
                messages.success(
                    request,
                    gettext("Grant “%(reference)s”: %(count)d coupons issued.")
                    % {"reference": grant.reference, "count": grant.issued},
                )
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Grant %(template)s") % {"template": template},
            "template_obj": template,
            "form": form,
            "submit_label": gettext("Grant"),
        }
        page = engines["django"].from_string(GRANT_TEMPLATE)
        return TemplateResponse(request, page, context)


GRANT_TEMPLATE = """{% extends "admin/base_site.html" %}
{% load i18n admin_urls %}
{% block breadcrumbs %}
<div class="breadcrumbs">
<a href="{% url 'admin:index' %}">{% translate 'Home' %}</a>
&rsaquo; <a href="{% url 'admin:app_list' app_label=opts.app_label %}">
  {{ opts.app_config.verbose_name }}</a>
&rsaquo; <a href="{% url opts|admin_urlname:'changelist' %}">
  {{ opts.verbose_name_plural|capfirst }}</a>
&rsaquo; <a href="{% url opts|admin_urlname:'change' template_obj.pk|admin_urlquote %}">
  {{ template_obj }}</a>
&rsaquo; {{ title }}
</div>
{% endblock %}
{% block content %}
<form method="post">{% csrf_token %}
{{ form.non_field_errors }}
<table>{{ form.as_table }}</table>
<div class="submit-row"><input type="submit" class="default" value="{{ submit_label }}"></div>
</form>
{% endblock %}
"""


class CouponGrantForm(forms.Form):
    reference = forms.CharField(
        label=_("batch reference"),
        max_length=48,
        help_text=_("Granting the same reference again issues nothing more."),
    )
    mobiles = forms.CharField(
        label=_("mobile numbers"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("One per line; or leave empty and choose by tier, store or channel."),
    )
    tier = forms.ModelChoiceField(Tier.objects.all(), label=_("tier"), required=False)
    home_store = forms.ModelChoiceField(
        Store.objects.filter(active=True), label=_("home store"), required=False
    )
    joined_channel = forms.ChoiceField(
        label=_("joined through"),
        choices=[("", "—"), *JoinedChannel.choices],
        required=False,
    )

    def clean_mobiles(self) -> list[Member] | None:
        numbers = [line.strip() for line in self.cleaned_data["mobiles"].splitlines()]
        numbers = [number for number in numbers if number]
        if not numbers:
            return None
        members = list(Member.objects.filter(mobile__in=numbers))
        unknown = sorted(set(numbers) - {member.mobile for member in members})
        if unknown:
            raise forms.ValidationError(
                gettext("No member has these numbers: %(numbers)s")
                % {"numbers": ", ".join(unknown)}
            )
        return members

    def segment(self) -> dict:
        data = self.cleaned_data
        return {
            "reference": data["reference"],
            "members": data["mobiles"],
            "tier": data["tier"],
            "home_store": data["home_store"],
            "joined_channel": data["joined_channel"],
        }


@admin.register(Coupon)
class CouponAdmin(admin.ModelAdmin):
    """Issued coupons, read-only: services issue, spend and give them back."""

    list_display = [
        "code",
        "template",
        "member",
        "status",
        "valid_until",
        "order_reference",
        "issue_reference",
    ]
    list_filter = ["status", "template__kind", "template__issued_by"]
    list_select_related = ["template", "member"]
    search_fields = ["=code", "=order_reference", "=member__mobile", "template__name"]
    readonly_fields = [
        "code",
        "template",
        "member",
        "status",
        "valid_from",
        "valid_until",
        "order_reference",
        "issue_reference",
        "issued_at",
        "used_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CouponGrant)
class CouponGrantAdmin(admin.ModelAdmin):
    list_display = ["template", "reference", "issued", "actor", "created_at"]
    list_select_related = ["template", "actor"]
    search_fields = ["reference", "template__name"]
    readonly_fields = ["template", "reference", "segment", "issued", "actor", "created_at"]
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class PromotionPriceInline(admin.TabularInline):
    model = PromotionPrice
    autocomplete_fields = ["sku"]
    extra = 1


@admin.register(Promotion)
class PromotionAdmin(admin.ModelAdmin):
    """Price campaigns: percentage off the products chosen, or member prices per SKU."""

    list_display = ["name", "kind", "percent_off", "scope", "starts_at", "ends_at", "active"]
    list_filter = ["kind", "scope", "active"]
    search_fields = ["name"]
    filter_horizontal = ["stores", "products"]
    inlines = [PromotionPriceInline]
