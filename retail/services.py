from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from retail.errors import BusinessError
from retail.models import SKU, Product, StaffRole, Store


def _refuse_invalid(error: ValidationError) -> BusinessError:
    return BusinessError(
        "validation_error",
        _("Some fields are not valid."),
        fields={
            field: [str(m) for m in messages] for field, messages in error.message_dict.items()
        },
        status_code=400,
    )


def sku_create(
    *,
    product: Product,
    code: str,
    barcode: str,
    price_fen: int,
    attributes: dict[str, str] | None = None,
    active: bool = True,
) -> SKU:
    """Add a sellable variant. Constraints are checked first for a clear error, and again by
    the database, which settles a race between two staff adding the same barcode."""
    sku = SKU(
        product=product,
        code=code,
        barcode=barcode,
        price_fen=price_fen,
        attributes=attributes or {},
        active=active,
    )
    try:
        sku.full_clean()
    except ValidationError as error:
        raise _refuse_invalid(error) from error
    try:
        with transaction.atomic():
            sku.save()
    except IntegrityError as error:
        raise BusinessError(
            "duplicate_sku",
            _("A SKU with this code or barcode already exists."),
            fields={"barcode": [_("Already in use.")]},
        ) from error
    return sku


@transaction.atomic
def staff_role_save(*, role: StaffRole) -> StaffRole:
    """Save a role and let its holder into the staff pages: a role without admin access is
    of no use to anyone."""
    role.save()
    user = role.user
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return role


def staff_role_assign(*, user: User, role: str, store: Store | None = None) -> StaffRole:
    """Give ``user`` a role (in ``store`` for store roles); assigning it again changes nothing."""
    existing = StaffRole.objects.filter(user=user, role=role, store=store).first()
    return existing or staff_role_save(role=StaffRole(user=user, role=role, store=store))
