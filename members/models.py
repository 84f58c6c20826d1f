"""The member: one shopper across the counter, the mini-shop and partners.

Orders point at a member; identities, points, tiers and coupons arrive with the members issue.
"""

from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

mobile_validator = RegexValidator(
    r"^1[3-9]\d{9}$", _("Enter a mainland China mobile number (11 digits starting with 1).")
)


class Member(models.Model):
    mobile = models.CharField(
        _("mobile number"),
        max_length=11,
        unique=True,
        null=True,
        blank=True,
        validators=[mobile_validator],
    )
    name = models.CharField(_("name"), max_length=50, blank=True)
    created_at = models.DateTimeField(_("joined at"), auto_now_add=True)

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or self.mobile or f"#{self.pk}"
