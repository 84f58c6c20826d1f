from django.contrib import admin, messages
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from partners import services
from partners.models import Partner, PartnerApiKey, PartnerOrder, PartnerPush, RoutingRule
from retail.access import is_hq
from retail.errors import BusinessError


class HQOnlyPartners:
    """Partners span every store and their keys open the partner API: HQ and superusers only.
    Nothing is deleted: a key is revoked, a partner switched off."""

    def has_module_permission(self, request):
        return is_hq(request.user)

    def has_view_permission(self, request, obj=None):
        return is_hq(request.user)

    def has_add_permission(self, request, obj=None):
        return is_hq(request.user)

    def has_change_permission(self, request, obj=None):
        return is_hq(request.user)

    def has_delete_permission(self, request, obj=None):
        return False


class PartnerApiKeyInline(HQOnlyPartners, admin.TabularInline):
    model = PartnerApiKey
    fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    extra = 0

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Partner)
class PartnerAdmin(HQOnlyPartners, admin.ModelAdmin):
    list_display = ["name", "kind", "active", "webhook_url", "live_keys"]
    list_filter = ["kind", "active"]
    search_fields = ["name"]
    fields = [
        "name",
        "kind",
        "active",
        "webhook_url",
        "stores",
        "cities",
        "signing_secret_rotated_at",
    ]
    readonly_fields = ["signing_secret_rotated_at"]
    filter_horizontal = ["stores"]
    # Webhooks are HTTPS; a URL typed without a scheme is taken as one.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    inlines = [PartnerApiKeyInline]
    actions = ["issue_api_key", "rotate_signing_secret"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("api_keys")

    @admin.display(description=_("live keys"))
    def live_keys(self, partner: Partner) -> int:
        return sum(1 for key in partner.api_keys.all() if key.revoked_at is None)

    def save_model(self, request, obj, form, change):
        raw = services.partner_save(partner=obj)
        if raw is not None:
            self._show_once(request, _("Signing secret of %(partner)s"), obj, raw)

    def _show_once(self, request, label, partner: Partner, raw: str) -> None:
        self.message_user(
            request,
            _("%(label)s: %(raw)s — shown this once, copy it now.")
            % {"label": label % {"partner": partner.name}, "raw": raw},
            messages.WARNING,
        )

    @admin.action(description=_("Issue a new API key"), permissions=["change"])
    def issue_api_key(self, request, queryset):
        for partner in queryset:
            try:
                raw, key = services.partner_api_key_issue(partner=partner)
            except BusinessError as refused:
                self.message_user(request, refused.message, messages.ERROR)
            else:
                self.log_change(request, partner, _("Issued API key %s…") % key.prefix)
                self._show_once(request, _("New API key of %(partner)s"), partner, raw)

    @admin.action(description=_("Rotate the signing secret"), permissions=["change"])
    def rotate_signing_secret(self, request, queryset):
        for partner in queryset:
            raw = services.partner_signing_secret_rotate(partner=partner)
            self.log_change(request, partner, _("Rotated the signing secret"))
            self._show_once(request, _("New signing secret of %(partner)s"), partner, raw)


@admin.register(PartnerApiKey)
class PartnerApiKeyAdmin(HQOnlyPartners, admin.ModelAdmin):
    list_display = ["prefix", "partner", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["partner", "revoked_at"]
    list_select_related = ["partner"]
    search_fields = ["prefix", "partner__name"]
    fields = ["partner", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    actions = ["revoke_keys"]

    def has_add_permission(self, request, obj=None):
        # Keys are issued from the partner's list, where the raw key can be shown once.
        return False

    @admin.action(description=_("Revoke the selected keys"), permissions=["change"])
    def revoke_keys(self, request, queryset):
        revoked = refused = 0
        for key in queryset:
            try:
                services.partner_api_key_revoke(key=key)
            except BusinessError:
                refused += 1
            else:
                revoked += 1
                self.log_change(request, key, _("Revoked"))
        if revoked:
            self.message_user(
                request,
                ngettext("%(count)d key revoked.", "%(count)d keys revoked.", revoked)
                % {"count": revoked},
                messages.SUCCESS,
            )
        if refused:
            self.message_user(
                request,
                ngettext(
                    "%(count)d key was already revoked.",
                    "%(count)d keys were already revoked.",
                    refused,
                )
                % {"count": refused},
                messages.WARNING,
            )


class RoutingRuleInline(HQOnlyPartners, admin.TabularInline):
    model = RoutingRule
    fields = ["name", "priority", "active", "store_kind", "without_ship_from_store", "channels"]
    extra = 0
    show_change_link = True


PartnerAdmin.inlines = [RoutingRuleInline, PartnerApiKeyInline]


@admin.register(RoutingRule)
class RoutingRuleAdmin(HQOnlyPartners, admin.ModelAdmin):
    list_display = [
        "name",
        "partner",
        "priority",
        "active",
        "store_kind",
        "without_ship_from_store",
    ]
    list_filter = ["active", "partner", "store_kind"]
    list_select_related = ["partner"]
    list_editable = ["priority", "active"]
    search_fields = ["name", "partner__name"]
    filter_horizontal = ["stores"]
    fields = [
        "name",
        "partner",
        "priority",
        "active",
        "store_kind",
        "without_ship_from_store",
        "stores",
        "channels",
    ]

    def has_delete_permission(self, request, obj=None):
        # Rules that no longer apply are switched off; a deleted one would leave the orders it
        # routed pointing at nothing.
        return False


class ReadOnlyHQ(HQOnlyPartners):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PartnerOrder)
class PartnerOrderAdmin(ReadOnlyHQ, admin.ModelAdmin):
    """Which partner fulfils or sold which order, and by which rule."""

    list_display = ["order", "partner", "role", "rule", "acknowledged_at", "created_at"]
    list_filter = ["role", "partner"]
    list_select_related = ["order", "partner", "rule"]
    search_fields = ["order__number", "partner__name", "idempotency_key"]
    date_hierarchy = "created_at"
    fields = [
        "order",
        "partner",
        "role",
        "rule",
        "idempotency_key",
        "acknowledged_at",
        "created_at",
    ]
    readonly_fields = fields


@admin.register(PartnerPush)
class PartnerPushAdmin(ReadOnlyHQ, admin.ModelAdmin):
    """What each partner answered to each push; a failed one is sent again by retrying its
    outbox delivery."""

    list_display = [
        "event_type",
        "order_number",
        "partner",
        "status",
        "attempts",
        "status_code",
        "updated_at",
    ]
    list_filter = ["status", "event_type", "partner"]
    list_select_related = ["partner"]
    search_fields = ["order_number", "event_id"]
    date_hierarchy = "created_at"
    fields = [
        "partner",
        "event_id",
        "event_type",
        "order_number",
        "status",
        "attempts",
        "status_code",
        "answer",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
