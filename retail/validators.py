from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

GTIN_LENGTHS = (8, 12, 13, 14)


def gtin_check_digit(body: str) -> int:
    """The GS1 check digit for the digits before it (EAN-8, UPC-A, EAN-13, GTIN-14)."""
    total = sum(int(digit) * (3 if index % 2 == 0 else 1) for index, digit in enumerate(body[::-1]))
    return (10 - total % 10) % 10


def validate_gtin(value: str) -> None:
    if not value.isdigit() or len(value) not in GTIN_LENGTHS:
        raise ValidationError(_("A barcode is 8, 12, 13 or 14 digits."), code="invalid_barcode")
    if gtin_check_digit(value[:-1]) != int(value[-1]):
        raise ValidationError(_("The barcode's check digit is wrong."), code="invalid_barcode")
