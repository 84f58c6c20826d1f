"""Money is an integer number of fen. These are the only conversions to and from yuan text."""

from decimal import Decimal, InvalidOperation

FEN_PER_YUAN = 100


def yuan_to_fen(text: str | int | Decimal) -> int:
    """Parse a yuan amount written by a person ("12.5", "12.50", "12") into fen, exactly.

    Refuses a third decimal rather than rounding it away: a price is never silently changed.
    """
    try:
        amount = Decimal(str(text).strip().replace(",", "").removeprefix("¥"))
    except InvalidOperation as error:
        raise ValueError(f"{text!r} is not an amount of yuan") from error
    if not amount.is_finite():
        raise ValueError(f"{text!r} is not an amount of yuan")
    fen = amount * FEN_PER_YUAN
    if fen != fen.to_integral_value():
        raise ValueError(f"{text!r} has more than two decimals")
    return int(fen)


def fen_to_yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{cents:02d}"
