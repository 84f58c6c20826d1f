"""Coupons: issued by claim, staff grant, birthday and referral; redeemed once, at checkout or
at the counter; given back when the order is cancelled.

A template is never issued beyond ``total_quantity``: every issue takes its coupons with one
guarded ``UPDATE ... SET issued_count = issued_count + n WHERE issued_count + n <=
total_quantity``, so racers queue on the template row and the loser sees the winner's count.
The per-member limit of a claim is counted under the member's row lock.

A coupon goes from ``available`` straight to ``used`` when an order is placed with it (its
``order_reference`` names the order), and back to ``available`` when that order is
cancelled, unpaid or refunded in full; a coupon whose validity ended meanwhile becomes
``void`` instead. There is no separate paid step: orders tell members about payment through
the points hooks, and a coupon on an unpaid order must not be usable elsewhere anyway.
"""

import secrets
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import Coupon, CouponGrant, CouponTemplate, Member, Tier
from members.services.points import points_restore_redeem
from retail.errors import BusinessError
from retail.models import Store

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 12


def _refuse(code: str, message: str, *, status_code: int | None = None, **fields: str):
    return BusinessError(
        code, message, fields={k: [v] for k, v in fields.items()}, status_code=status_code
    )


def _new_code() -> str:
    """12 characters without 0/O and 1/I: easy to read out at the counter, 32^12 to guess."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def _validity(template: CouponTemplate, now: datetime) -> tuple[datetime, datetime]:
    start = max(now, template.valid_from)
    end = template.valid_until
    if template.valid_days:
        end = min(end, start + timedelta(days=template.valid_days))
    return start, end


def _take(template: CouponTemplate, count: int) -> bool:
    """Count ``count`` more coupons as issued, unless that would pass the total."""
    return (
        CouponTemplate.objects.filter(
            pk=template.pk, issued_count__lte=F("total_quantity") - count
        ).update(issued_count=F("issued_count") + count)
        == 1
    )


def _issue(template: CouponTemplate, member_ids: Iterable[int], reference: str, now) -> list:
    start, end = _validity(template, now)
    return Coupon.objects.bulk_create(
        Coupon(
            template=template,
            member_id=member_id,
            code=_new_code(),
            valid_from=start,
            valid_until=end,
            issue_reference=reference,
        )
        for member_id in member_ids
    )


def _check_window(template: CouponTemplate, now: datetime) -> None:
    if now < template.valid_from:
        raise _refuse(
            "coupon_not_started",
            _("These coupons are not handed out yet."),
            template=str(template.pk),
        )
    if now >= template.valid_until:
        raise _refuse(
            "coupon_expired",
            _("These coupons are no longer handed out."),
            template=str(template.pk),
        )


def _sold_out(template: CouponTemplate) -> BusinessError:
    return _refuse(
        "coupon_sold_out", _("Not enough of these coupons are left."), template=str(template.pk)
    )


# --- Issue -------------------------------------------------------------------------------------


def coupon_claim(
    *, member: Member, template: CouponTemplate | int, now: datetime | None = None
) -> Coupon:
    """The member takes one coupon of a claim-type template, within its window, its
    per-member limit and its total quantity."""
    now = now or timezone.now()
    template_id = template if isinstance(template, int) else template.pk
    with transaction.atomic():
        holder = Member.objects.select_for_update().get(pk=member.pk)
        template = CouponTemplate.objects.get(pk=template_id)
        if template.issued_by != CouponTemplate.IssuedBy.CLAIM or not template.active:
            raise _refuse(
                "coupon_not_claimable",
                _("These coupons cannot be claimed."),
                template=str(template.pk),
            )
        _check_window(template, now)
        held = Coupon.objects.filter(template=template, member=holder).count()
        if held >= template.per_member_limit:
            raise _refuse(
                "coupon_limit_reached",
                _("You have claimed %(count)d of these coupons already.") % {"count": held},
                template=str(template.pk),
            )
        if not _take(template, 1):
            raise _sold_out(template)
        # The n-th claim: the reference is unique per member and template, so even a claim
        # slipping past the lock could not exceed the limit.
        [coupon] = _issue(template, [holder.pk], f"claim:{held + 1}", now)
        return coupon


def coupon_grant(
    *,
    template: CouponTemplate | int,
    reference: str,
    actor: User | None,
    members: Iterable[Member] | None = None,
    tier: Tier | None = None,
    home_store: Store | None = None,
    joined_channel: str = "",
    now: datetime | None = None,
) -> CouponGrant:
    """Staff give one coupon of a grant-type template to each member chosen: the ``members``
    listed, or everyone of a ``tier``, a ``home_store`` and/or a ``joined_channel``. The grant
    is all or nothing (too few coupons left: none are issued) and happens once per
    ``reference``: a repeat returns the first grant. Merged and erased members get nothing."""
    now = now or timezone.now()
    reference = reference.strip()
    if not 0 < len(reference) <= 48:
        raise _refuse(
            "invalid_grant_reference",
            _("A batch reference of 1 to 48 characters is required."),
            status_code=400,
            reference=reference[:48],
        )
    segment: dict = {}
    recipients = Member.objects.filter(merged_into__isnull=True, erased_at__isnull=True)
    if members is not None:
        segment["members"] = sorted({member.pk for member in members})
        recipients = recipients.filter(pk__in=segment["members"])
    if tier is not None:
        segment["tier"] = tier.code
        recipients = recipients.filter(tier=tier)
    if home_store is not None:
        segment["home_store"] = home_store.code
        recipients = recipients.filter(home_store=home_store)
    if joined_channel:
        segment["joined_channel"] = joined_channel
        recipients = recipients.filter(joined_channel=joined_channel)
    if not segment:
        raise _refuse(
            "grant_needs_segment",
            _("Choose the members: a list, a tier, a home store or a channel."),
            status_code=400,
            members="",
        )
    template_id = template if isinstance(template, int) else template.pk
    with transaction.atomic():
        # Grants of one template queue here, so a repeated reference sees the first grant.
        template = CouponTemplate.objects.select_for_update().get(pk=template_id)
        first = CouponGrant.objects.filter(template=template, reference=reference).first()
        if first is not None:
            return first
        if template.issued_by != CouponTemplate.IssuedBy.GRANT or not template.active:
            raise _refuse(
                "coupon_not_grantable",
                _("These coupons are not for staff to grant."),
                template=str(template.pk),
            )
        if now >= template.valid_until:
            raise _refuse(
                "coupon_expired",
                _("These coupons are no longer handed out."),
                template=str(template.pk),
            )
        member_ids = list(recipients.order_by("pk").values_list("pk", flat=True))
        if not member_ids:
            raise _refuse(
                "grant_nobody", _("No member matches this choice."), status_code=400, members=""
            )
        if not _take(template, len(member_ids)):
            raise _sold_out(template)
        _issue(template, member_ids, f"grant:{reference}", now)
        return CouponGrant.objects.create(
            template=template,
            reference=reference,
            segment=segment,
            issued=len(member_ids),
            actor=actor,
        )


def _birthdays(today: date) -> Q:
    born_today = Q(birthday__month=today.month, birthday__day=today.day)
    leap = today.year % 4 == 0 and (today.year % 100 != 0 or today.year % 400 == 0)
    if (today.month, today.day) == (2, 28) and not leap:
        born_today |= Q(birthday__month=2, birthday__day=29)
    return born_today


def coupons_issue_birthday(*, today: date, now: datetime | None = None) -> int:
    """Give every member whose birthday is ``today`` (29 February: on the 28th in other years)
    one coupon of each active birthday template, once a year (``birthday:<year>``); returns
    how many were issued. Safe to run as often as wanted. A template running short gives
    what it has left, lowest member ids first."""
    now = now or timezone.now()
    reference = f"birthday:{today.year}"
    templates = (
        CouponTemplate.objects.filter(
            issued_by=CouponTemplate.IssuedBy.BIRTHDAY,
            active=True,
            valid_from__lte=now,
            valid_until__gt=now,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    issued = 0
    for template_id in templates:
        with transaction.atomic():
            template = CouponTemplate.objects.select_for_update().get(pk=template_id)
            already = Coupon.objects.filter(
                template=template, member=OuterRef("pk"), issue_reference=reference
            )
            left = template.total_quantity - template.issued_count
            member_ids = list(
                Member.objects.filter(
                    _birthdays(today), merged_into__isnull=True, erased_at__isnull=True
                )
                .exclude(Exists(already))
                .order_by("pk")
                .values_list("pk", flat=True)[:left]
            )
            if member_ids and _take(template, len(member_ids)):
                issued += len(_issue(template, member_ids, reference, now))
    return issued


def coupon_issue_referral(
    *, member: Member, friend_id: int, now: datetime | None = None
) -> list[Coupon]:
    """Reward ``member`` for the friend she brought: one coupon of each active referral
    template, once per friend (``referral:<friend id>``). A template with none left gives
    nothing. Returns the member's coupons for this friend, old or new."""
    now = now or timezone.now()
    reference = f"referral:{friend_id}"
    templates = (
        CouponTemplate.objects.filter(
            issued_by=CouponTemplate.IssuedBy.REFERRAL,
            active=True,
            valid_from__lte=now,
            valid_until__gt=now,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    with transaction.atomic():
        # Templates locked in primary-key order: two rewards at once queue, never deadlock.
        for template_id in templates:
            template = CouponTemplate.objects.select_for_update().get(pk=template_id)
            given = Coupon.objects.filter(
                template=template, member=member, issue_reference=reference
            ).exists()
            if not given and _take(template, 1):
                _issue(template, [member.pk], reference, now)
        return list(Coupon.objects.filter(member=member, issue_reference=reference).order_by("pk"))


# --- Redeem and give back ----------------------------------------------------------------------


def coupon_redeem(*, coupon: Coupon, member: Member, order_reference: str, now: datetime) -> None:
    """Spend the coupon on the order ``order_reference``, inside the checkout's transaction.
    One guarded UPDATE: of two orders racing for one coupon, the second is refused."""
    spent = Coupon.objects.filter(
        pk=coupon.pk,
        member=member,
        status=Coupon.Status.AVAILABLE,
        valid_from__lte=now,
        valid_until__gt=now,
    ).update(status=Coupon.Status.USED, order_reference=order_reference, used_at=now)
    if not spent:
        raise _refuse("coupon_used", _("This coupon has been used."), coupon_code=coupon.code)


def member_order_cancelled(*, member_id: int, order_reference: str) -> None:
    """An order was cancelled (unpaid, expired, or refunded in full before the goods left):
    its coupon comes back (or becomes void if its validity ended) and so do the points
    redeemed on it. Runs in the order's transaction; repeating it changes nothing."""
    now = timezone.now()
    # The member row first, then the coupon: the order checkout takes them in.
    points_restore_redeem(member=member_id, order_reference=order_reference)
    # By the order number alone (unique), whoever holds the coupon after a merge.
    spent = Coupon.objects.filter(status=Coupon.Status.USED, order_reference=order_reference)
    spent.filter(valid_until__lte=now).update(status=Coupon.Status.VOID)
    spent.filter(valid_until__gt=now).update(
        status=Coupon.Status.AVAILABLE, order_reference="", used_at=None
    )
