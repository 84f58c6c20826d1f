"""Forms of the stock pages. Scanner first: goods are entered in a box, one line per SKU, a
barcode (or SKU code) then a quantity; a scanner ends each scan with Enter, so scanning the same
item again adds a line that counts one more."""

import re
import uuid
from dataclasses import dataclass

from django import forms
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from inventory.models import StockCountLine, TransferLine
from retail.models import SKU, Store

MAX_QUANTITY = 99_999
_SEPARATORS = re.compile(r"[\s,，*×]+")


@dataclass(frozen=True)
class EnteredLine:
    sku: SKU
    quantity: int


def _parse(text: str, *, quantities: bool) -> list[tuple[str, int]]:
    """``[(token, quantity)]`` in the order typed; a token is a barcode or an SKU code. Without
    ``quantities`` any number of tokens may share a line and each counts once."""
    entries: list[tuple[str, int]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        parts = [part for part in _SEPARATORS.split(raw.strip()) if part]
        if not parts:
            continue
        if not quantities:
            entries.extend((part.upper(), 1) for part in parts)
            continue
        if len(parts) > 2:
            raise forms.ValidationError(
                _("Line %(number)d: write a barcode or SKU code, then a quantity.")
                % {"number": number},
                code="bad_line",
            )
        quantity = 1
        if len(parts) == 2:
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= MAX_QUANTITY:
                raise forms.ValidationError(
                    _("Line %(number)d: the quantity must be a whole number from 1 to %(max)d.")
                    % {"number": number, "max": MAX_QUANTITY},
                    code="bad_quantity",
                )
            quantity = int(parts[1])
        entries.append((parts[0].upper(), quantity))
    return entries


class LinesField(forms.CharField):
    """A box of lines -> ``[EnteredLine]``, one per SKU (a SKU entered twice adds up), in the
    order first entered. The SKUs are read in one query."""

    widget = forms.Textarea(
        attrs={"rows": 8, "autocomplete": "off", "spellcheck": "false", "class": "lines"}
    )

    def __init__(self, *, quantities: bool = True, **kwargs) -> None:
        self.quantities = quantities
        super().__init__(**kwargs)

    def clean(self, value) -> list[EnteredLine]:
        text = super().clean(value)
        entries = _parse(text or "", quantities=self.quantities)
        if not entries:
            if self.required:
                raise forms.ValidationError(self.error_messages["required"], code="required")
            return []
        tokens = {token for token, _quantity in entries}
        by_token: dict[str, SKU] = {}
        for sku in SKU.objects.filter(Q(barcode__in=tokens) | Q(code__in=tokens)).select_related(
            "product"
        ):
            by_token.setdefault(sku.code, sku)
            # A barcode names its SKU before any code does.
            by_token[sku.barcode] = sku
        unknown = [
            token for token in dict.fromkeys(t for t, _q in entries) if token not in by_token
        ]
        if unknown:
            raise forms.ValidationError(
                _("Unknown barcode or SKU code: %(codes)s.") % {"codes": ", ".join(unknown)},
                code="unknown_sku",
            )
        totals: dict[int, EnteredLine] = {}
        for token, quantity in entries:
            sku = by_token[token]
            before = totals.get(sku.pk)
            totals[sku.pk] = EnteredLine(sku, quantity + (before.quantity if before else 0))
        too_many = [line.sku.code for line in totals.values() if line.quantity > MAX_QUANTITY]
        if too_many:
            raise forms.ValidationError(
                _("At most %(max)d units per SKU: %(codes)s.")
                % {"max": MAX_QUANTITY, "codes": ", ".join(too_many)},
                code="too_many",
            )
        return list(totals.values())


def _new_key() -> uuid.UUID:
    return uuid.uuid4()


class IdempotentForm(forms.Form):
    """Carries a key made when the form is shown: sending the same form twice (a double click,
    a resend after a lost answer) books once."""

    key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("key", _new_key())


class StockSearchForm(forms.Form):
    q = forms.CharField(
        label=gettext_lazy("Name, barcode or SKU code"),
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"}),
    )
    low = forms.BooleanField(label=gettext_lazy("Low stock only"), required=False)


class ReceiptForm(IdempotentForm):
    lines = LinesField(
        label=gettext_lazy("Goods received"),
        help_text=gettext_lazy(
            "One line per SKU: barcode or SKU code, then the quantity (1 when left out). "
            "Scanning an item again adds one."
        ),
        widget=forms.Textarea(
            attrs={
                "rows": 10,
                "autofocus": True,
                "autocomplete": "off",
                "spellcheck": "false",
                "class": "lines",
            }
        ),
    )
    reference = forms.CharField(
        label=gettext_lazy("Delivery note number"), required=False, max_length=64
    )


DAMAGE_REASONS = [
    gettext_lazy("damaged"),
    gettext_lazy("expired"),
    gettext_lazy("lost"),
]


class DamageForm(IdempotentForm):
    quantity = forms.IntegerField(
        label=gettext_lazy("Quantity"), min_value=1, max_value=MAX_QUANTITY
    )
    reason = forms.CharField(
        label=gettext_lazy("Reason"),
        max_length=64,
        widget=forms.TextInput(attrs={"list": "damage-reasons", "autocomplete": "off"}),
    )


class TransferForm(forms.Form):
    to_store = forms.ModelChoiceField(label=gettext_lazy("To store"), queryset=Store.objects.none())
    lines = LinesField(
        label=gettext_lazy("Goods to send"),
        help_text=gettext_lazy(
            "One line per SKU: barcode or SKU code, then the quantity (1 when left out)."
        ),
    )
    note = forms.CharField(label=gettext_lazy("Note"), required=False, max_length=200)

    def __init__(self, *args, store: Store, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Goods may go to any open store of the chain, not only the sender's own.
        self.fields["to_store"].queryset = (
            Store.objects.filter(active=True).exclude(pk=store.pk).order_by("code")
        )


class TransferReceiveForm(forms.Form):
    """One "received" box per line, filled with what was sent."""

    def __init__(self, *args, lines: list[TransferLine], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lines = lines
        for line in lines:
            self.fields[self._name(line)] = forms.IntegerField(
                label=line.sku.code,
                min_value=0,
                max_value=line.quantity_sent,
                initial=line.quantity_sent,
            )

    @staticmethod
    def _name(line: TransferLine) -> str:
        return f"received_{line.sku_id}"

    def rows(self) -> list[tuple[TransferLine, forms.BoundField]]:
        return [(line, self[self._name(line)]) for line in self.lines]

    def received(self) -> dict[int, int]:
        return {line.sku_id: self.cleaned_data[self._name(line)] for line in self.lines}


class CountStartForm(forms.Form):
    ALL = "all"
    CHOSEN = "chosen"

    scope = forms.ChoiceField(
        label=gettext_lazy("What to count"),
        choices=[
            (ALL, gettext_lazy("Every SKU the store keeps")),
            (CHOSEN, gettext_lazy("These SKUs")),
        ],
        initial=CHOSEN,
        widget=forms.RadioSelect,
    )
    skus = LinesField(
        label=gettext_lazy("SKUs to count"),
        help_text=gettext_lazy("Barcodes or SKU codes, scanned or typed."),
        quantities=False,
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 5, "autocomplete": "off", "spellcheck": "false", "class": "lines"}
        ),
    )
    note = forms.CharField(label=gettext_lazy("Note"), required=False, max_length=200)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("scope") == self.CHOSEN and "skus" in cleaned and not cleaned["skus"]:
            self.add_error("skus", _("Name at least one SKU, or count every SKU."))
        return cleaned


class CountLinesForm(forms.Form):
    """What staff found: a box per line of the sheet (left empty: not counted now) and a box for
    more SKUs, scanned unit by unit or with their quantity."""

    more = LinesField(
        label=gettext_lazy("More SKUs counted"),
        help_text=gettext_lazy(
            "Barcode or SKU code, then the quantity counted (scanning an item again adds one)."
        ),
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false", "class": "lines"}
        ),
    )

    def __init__(self, *args, lines: list[StockCountLine], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lines = lines
        for line in lines:
            self.fields[self._name(line)] = forms.IntegerField(
                label=line.sku.code,
                min_value=0,
                max_value=MAX_QUANTITY,
                required=False,
                widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
            )

    @staticmethod
    def _name(line: StockCountLine) -> str:
        return f"counted_{line.sku_id}"

    def rows(self) -> list[tuple[StockCountLine, forms.BoundField]]:
        return [(line, self[self._name(line)]) for line in self.lines]

    def clean(self):
        cleaned = super().clean()
        typed = {line.sku_id for line in self.lines if cleaned.get(self._name(line)) is not None}
        twice = [line.sku.code for line in cleaned.get("more") or [] if line.sku.pk in typed]
        if twice:
            self.add_error(
                "more",
                _("Counted twice, above and here: %(codes)s. Enter each SKU once.")
                % {"codes": ", ".join(twice)},
            )
        return cleaned

    def counted(self) -> list[tuple[int, int]]:
        """``[(sku_id, counted)]`` of what was entered now."""
        entered = [
            (line.sku_id, self.cleaned_data[self._name(line)])
            for line in self.lines
            if self.cleaned_data.get(self._name(line)) is not None
        ]
        entered += [(line.sku.pk, line.quantity) for line in self.cleaned_data["more"]]
        return entered
