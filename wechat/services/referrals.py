"""Referrals from the share link: a friend who opens the shop through a member's link and
joins names that member as her referrer, once. The referrer is credited on the friend's first
paid order (``members.services.points.member_order_paid``).

Only a new member may name a referrer: one without a referrer and without any order, in any
channel. Otherwise an existing customer could pick a referrer after the fact and hand out the
reward.
"""

from django.db import transaction
from django.utils.translation import gettext as _

from members.models import Member
from members.services.identity import member_referrer_set
from orders.models import Order
from retail.errors import BusinessError

REFERRAL_CODE_MAX = Member._meta.get_field("referral_code").max_length


def _refuse(error: str, message: str, code: str, *, status_code: int | None = None):
    """A refusal naming the referral ``code`` the shopper gave as the field at fault."""
    return BusinessError(error, message, fields={"code": [code]}, status_code=status_code)


def referral_apply(*, member: Member, code: str) -> Member:
    """Make the member whose referral ``code`` this is ``member``'s referrer, and return her.

    Refused: an unknown code, or one of a merged or erased member (``referral_code_unknown``,
    404); the member's own code (``referral_self``); a member who has a referrer
    (``referrer_already_set``) or an order (``referral_too_late``); a code of a member she
    referred herself (``referral_circular``). Nothing changes on a refusal. Decided under the
    member's row lock, so two calls racing set one referrer.
    """
    code = (code or "").strip().upper()
    referrer = (
        Member.objects.filter(
            referral_code=code, merged_into__isnull=True, erased_at__isnull=True
        ).first()
        if code and len(code) <= REFERRAL_CODE_MAX
        else None
    )
    if referrer is None:
        raise _refuse(
            "referral_code_unknown",
            _("No member has this referral code."),
            code[:REFERRAL_CODE_MAX],
            status_code=404,
        )
    with transaction.atomic():
        locked = Member.objects.select_for_update().get(pk=member.pk)
        if referrer.pk == locked.pk:
            raise _refuse("referral_self", _("This is your own referral code."), code)
        if locked.referrer_id is not None:
            raise _refuse(
                "referrer_already_set", _("You were referred by someone already."), code=code
            )
        if referrer.referrer_id == locked.pk:
            raise _refuse("referral_circular", _("You referred this member yourself."), code)
        if Order.objects.filter(member=locked).exists():
            raise _refuse(
                "referral_too_late",
                _("Referrals count for new members, before their first order."),
                code=code,
            )
        member_referrer_set(member=locked, referrer=referrer)
    member.referrer = referrer
    return referrer
