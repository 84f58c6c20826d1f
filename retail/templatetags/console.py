"""Template filters of the console: money as staff read it."""

from django import template

from retail.money import fen_to_yuan

register = template.Library()


@register.filter
def yuan(fen: int | None) -> str:
    """``1990`` -> ``¥19.90``; nothing for None or an empty value."""
    if fen is None or fen == "":
        return ""
    return f"¥{fen_to_yuan(int(fen))}"
