"""The shopper's address book: at most ``SHOP_MAX_ADDRESSES`` addresses, exactly one of them the
default while she has any.

Each write first locks the member's row (only locks it: members' fields are written by
members' services), so two writes of one shopper queue even when she has no address yet to
lock, and the limit and the default are decided on what the first one left. The database
holds the "one default" rule too (``address_one_default``).
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from members.models import Member
from retail.errors import BusinessError
from wechat.models import Address

SHOP_MAX_ADDRESSES = 20
ADDRESS_FIELDS = ("name", "mobile", "province", "city", "district", "detail")
COORDINATES = ("latitude", "longitude")


def _refuse(code: str, message: str, *, status_code: int | None = None, **fields: str):
    return BusinessError(
        code, message, fields={k: [v] for k, v in fields.items()}, status_code=status_code
    )


def _locked_book(member: Member) -> list[Address]:
    """The member's addresses, read under her row's lock; call inside a transaction."""
    Member.objects.select_for_update().filter(pk=member.pk).values_list("pk", flat=True).get()
    return list(Address.objects.filter(member=member).order_by("pk"))


def _validated(address: Address) -> None:
    """The model's own validators (mobile number, lengths); coordinates come in pairs."""
    try:
        address.full_clean(exclude=["member", "is_default"])
    except ValidationError as invalid:
        raise BusinessError(
            "validation_error",
            _("Some fields are not valid."),
            fields={
                field: [str(m) for m in messages]
                for field, messages in invalid.message_dict.items()
            },
            status_code=400,
        ) from None
    if (address.latitude is None) != (address.longitude is None):
        raise _refuse(
            "validation_error",
            _("Give both latitude and longitude, or neither."),
            status_code=400,
            latitude="",
        )


def _not_found(address_id: int) -> BusinessError:
    return _refuse(
        "address_not_found", _("No such address."), status_code=404, address=str(address_id)
    )


def _clear_default(member: Member, *, keep: int | None = None) -> None:
    # ``updated_at`` says when the shopper last edited an address: losing the mark is not that.
    Address.objects.filter(member=member, is_default=True).exclude(pk=keep).update(is_default=False)


def address_create(*, member: Member, is_default: bool = False, **fields: Any) -> Address:
    """A new address; the first one is the default whatever was asked. ``address_limit``
    (409) beyond ``SHOP_MAX_ADDRESSES``."""
    unknown = set(fields) - {*ADDRESS_FIELDS, *COORDINATES}
    if unknown:
        raise TypeError(f"unknown address fields: {sorted(unknown)}")
    with transaction.atomic():
        book = _locked_book(member)
        if len(book) >= SHOP_MAX_ADDRESSES:
            raise _refuse(
                "address_limit",
                _("An address book holds at most %(count)d addresses.")
                % {"count": SHOP_MAX_ADDRESSES},
            )
        address = Address(member=member, **fields)
        _validated(address)
        address.is_default = is_default or not book
        if address.is_default:
            _clear_default(member)
        address.save()
        return address


def address_update(
    *, member: Member, address_id: int, is_default: bool | None = None, **fields: Any
) -> Address:
    """Change some fields of one of the member's addresses. Making it the default takes the
    mark from the other; the default cannot be un-made (choose another one instead):
    ``default_required`` (400)."""
    unknown = set(fields) - {*ADDRESS_FIELDS, *COORDINATES}
    if unknown:
        raise TypeError(f"unknown address fields: {sorted(unknown)}")
    with transaction.atomic():
        book = {address.pk: address for address in _locked_book(member)}
        address = book.get(address_id)
        if address is None:
            raise _not_found(address_id)
        if is_default is False and address.is_default:
            raise _refuse(
                "default_required",
                _("Choose another default address instead."),
                status_code=400,
                is_default="false",
            )
        for field, value in fields.items():
            setattr(address, field, value)
        _validated(address)
        if is_default and not address.is_default:
            _clear_default(member, keep=address.pk)
            address.is_default = True
        address.save()
        return address


def address_delete(*, member: Member, address_id: int) -> None:
    """Remove one of the member's addresses; when it was the default, the most recently
    changed of the others becomes the default."""
    with transaction.atomic():
        book = {address.pk: address for address in _locked_book(member)}
        address = book.pop(address_id, None)
        if address is None:
            raise _not_found(address_id)
        address.delete()
        if address.is_default and book:
            successor = max(book.values(), key=lambda other: (other.updated_at, other.pk))
            Address.objects.filter(pk=successor.pk).update(is_default=True)
