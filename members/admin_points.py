"""Points, spend and tiers in the admin (HQ: store roles are granted none of it).

The ledger is read-only: no entry is typed or edited here. "Add points entry" is the staff
adjustment, which goes through ``points_adjust`` like every other change of points; a refusal
(not enough points, a note already used) shows as a message on the same page.
"""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.utils.translation import gettext_lazy as _

from members.models import PointsEntry, SpendEntry, Tier
from members.services.points import points_adjust
from retail.errors import BusinessError
from retail.money import fen_to_yuan


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    """The ladder members climb. A changed threshold applies at the next nightly recalculation
    (and to orders completed from now on)."""

    list_display = [
        "name",
        "code",
        "threshold",
        "discount_percent",
        "points_multiplier",
        "member_count",
    ]
    ordering = ["threshold_fen"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("members"))

    @admin.display(description=_("spend needed"), ordering="threshold_fen")
    def threshold(self, tier: Tier) -> str:
        return fen_to_yuan(tier.threshold_fen)

    @admin.display(description=_("members"), ordering="member_count")
    def member_count(self, tier: Tier) -> int:
        return tier.member_count


class PointsAdjustForm(forms.ModelForm):
    note = forms.CharField(
        label=_("why"),
        max_length=PointsEntry._meta.get_field("reference").max_length,
        help_text=_("A ticket number or a short reason; the same note twice is recorded once."),
    )

    class Meta:
        model = PointsEntry
        fields = ["member", "points"]
        help_texts = {"points": _("Positive to give points, negative to take them.")}

    def clean_points(self) -> int:
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError(_("The number of points must not be zero."))
        return points


@admin.register(PointsEntry)
class PointsEntryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "member",
        "reason",
        "reference",
        "points",
        "balance_after",
        "remaining",
        "expires_at",
        "actor",
    ]
    list_filter = ["reason"]
    search_fields = ["member__mobile", "reference"]
    list_select_related = ["member", "actor"]
    raw_id_fields = ["member"]
    readonly_fields = list_display
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = PointsAdjustForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ["member", "points", "note"] if obj is None else self.list_display

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except BusinessError as error:
            # The admin's transaction around the save has rolled back by now.
            messages.error(request, error.message)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change) -> None:
        entry = points_adjust(
            member=form.cleaned_data["member"],
            points=form.cleaned_data["points"],
            note=form.cleaned_data["note"],
            actor=request.user,
        )
        # The admin logs and redirects to the object it saved: let it be the service's entry.
        for field in PointsEntry._meta.concrete_fields:
            setattr(obj, field.attname, getattr(entry, field.attname))
        obj._state.adding = False


@admin.register(SpendEntry)
class SpendEntryAdmin(admin.ModelAdmin):
    """What counts towards tiers: completed orders, less their refunds."""

    list_display = ["at", "member", "reference", "amount"]
    search_fields = ["member__mobile", "reference"]
    list_select_related = ["member"]
    date_hierarchy = "at"
    show_full_result_count = False

    @admin.display(description=_("amount"), ordering="amount_fen")
    def amount(self, entry: SpendEntry) -> str:
        return fen_to_yuan(entry.amount_fen)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
