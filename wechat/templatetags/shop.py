"""What the H5 shop's templates need to show money and distances."""

from django import template
from django.utils.translation import gettext as _

from retail.templatetags.console import yuan

register = template.Library()


# The one money filter, shared with the console.
register.filter("yuan", yuan)


@register.filter
def distance(metres: int | None) -> str:
    """``850`` -> ``850 m``, ``12345`` -> ``12.3 km``."""
    if metres is None or metres == "":
        return ""
    metres = int(metres)
    if metres < 1000:
        return _("%(count)d m") % {"count": metres}
    return _("%(count)s km") % {"count": f"{metres / 1000:.1f}"}


@register.filter
def initial(product) -> str:
    """The character a product's placeholder picture shows: the first of its name after the
    brand (products are named "邻鲜优选 山东烟台红富士苹果")."""
    name = product.name
    if product.brand and name.startswith(product.brand):
        name = name[len(product.brand) :]
    name = name.strip() or product.name
    return name[:1]
