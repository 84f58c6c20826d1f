from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from retail.money import fen_to_yuan, yuan_to_fen


class YuanField(forms.DecimalField):
    """A price typed by staff in yuan ("12.50") and stored in fen (1250)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("label", _("price (yuan)"))
        super().__init__(max_digits=12, decimal_places=2, min_value=Decimal(0), **kwargs)

    def prepare_value(self, value):
        # The model hands over fen; a redisplayed form hands back what was typed.
        return fen_to_yuan(value) if isinstance(value, int) else value

    def clean(self, value) -> int | None:
        yuan = super().clean(value)
        return None if yuan is None else yuan_to_fen(yuan)
