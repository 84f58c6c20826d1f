"""Who a member is: sign-up at the counter, WeChat login, binding a phone (and the merge it may
cause), the member code the counter scans, and export and erasure of personal data.

**One person, one member.** A phone number belongs to one member (``Member.mobile`` and its
phone ``Identity``, both unique) and a WeChat openid to one member per app. Sign-up and login
find before they create, and a racing duplicate hits the unique constraint, rolls back its
savepoint and finds the winner's member: repeating them, even at the same instant, returns one
member.

**Merge.** When a member binds a phone that another member already holds (she signed up at the
counter, then logged in to the mini-shop), the member holding the phone survives and the other
merges into it: points (lot by lot, keeping their expiry, through ``points_merge_move``),
coupons, spend, identities, referrals and whatever the registered participants move (orders,
reviews: ``member_merge_participant_register``). A ``MemberMerge`` row records the counts. The
merged member keeps its row (its ledger entries and the audit point at it) with
``merged_into`` set and no mobile; its identities now belong to the survivor, so a later login
with them finds the survivor. Both rows are locked in primary-key order first, and the merge is
decided again under the locks, so two merges racing make one.

Lock order: members in primary-key order, then the rows the participants move (orders). Orders'
own code locks an order before its member; a merge racing an order change of the merged member
can therefore deadlock, and the database then refuses one of them, which its caller retries.
"""

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import (
    Coupon,
    Identity,
    JoinedChannel,
    Member,
    MemberMerge,
    PointsEntry,
    SpendEntry,
    mobile_validator,
)
from members.services.points import points_merge_move
from retail.access import has_store_perm
from retail.errors import BusinessError
from retail.models import Store

# No 0/O or 1/I: the code is read aloud and typed from posters. 32^8 ≈ 10^12 codes.
REFERRAL_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REFERRAL_CODE_LENGTH = 8

MEMBER_CODE_SALT = "members.member_code"

# A unique key taken by a racer: find again, then try again (a fresh referral code, too).
_ATTEMPTS = 3


class _Moved(Exception):
    """What a decision rested on changed before the locks were taken: decide again."""


def _retrying(attempt: Callable[[], Member]) -> Member:
    """Run ``attempt`` in a savepoint of its own; when a racer took a unique key first, or moved
    the ground under a decision, run it again: this time it finds the racer's work. The last
    failure is raised."""
    failures = 0
    while True:
        try:
            with transaction.atomic():
                return attempt()
        except (IntegrityError, _Moved):
            failures += 1
            if failures == _ATTEMPTS:
                raise


MergeMover = Callable[..., int]
_merge_participants: dict[str, MergeMover] = {}


def member_merge_participant_register(name: str, mover: MergeMover) -> None:
    """Called from an app's ``ready()``: ``mover(source_id=..., target_id=...)`` moves that
    app's rows of the merged member to the survivor, inside the merge's transaction, and returns
    how many it moved (recorded under ``name`` in ``MemberMerge.moved``). Members import no app:
    apps that point at members register here. Registering a name again replaces it."""
    _merge_participants[name] = mover


Eraser = Callable[..., int]
_erase_participants: dict[str, Eraser] = {}


def member_erase_participant_register(name: str, eraser: Eraser) -> None:
    """Called from an app's ``ready()``: ``eraser(member_ids=[...])`` removes the personal data
    that app keeps about those members (an order's delivery address, say), inside the erasure's
    transaction, and returns how many rows it touched."""
    _erase_participants[name] = eraser


# --- Sign-up and login --------------------------------------------------------------------


def member_signup_at_counter(
    *, mobile: str, name: str = "", store: Store, actor: User | None
) -> Member:
    """The member with this phone number, or a new one joined at ``store``'s counter. ``actor``
    (the clerk) needs ``members.add_member`` in that store. A member found without a home store
    (she joined online) gets this one."""
    mobile = _valid_mobile(mobile)
    if actor is not None and not has_store_perm(actor, "members.add_member", store.pk):
        raise BusinessError(
            "permission_denied",
            _("You may not sign up members at this store."),
            status_code=403,
        )
    name = name.strip()
    if len(name) > Member._meta.get_field("name").max_length:
        raise BusinessError(
            "name_invalid",
            _("A name has at most 50 characters."),
            fields={"name": [name]},
            status_code=400,
        )

    def signup() -> Member:
        member = Member.objects.filter(mobile=mobile).first()
        if member is None:
            member = _member_create(
                mobile=mobile, name=name, home_store=store, joined_channel=JoinedChannel.COUNTER
            )
            Identity.objects.create(member=member, kind=Identity.Kind.PHONE, phone=mobile)
        elif member.home_store_id is None:
            Member.objects.filter(pk=member.pk, home_store__isnull=True).update(
                home_store=store, updated_at=timezone.now()
            )
            member.home_store = store
        return member

    return _retrying(signup)


def member_login_wechat(*, app_id: str, openid: str, unionid: str = "") -> Member:
    """The member behind this WeChat openid; else the member another app of ours knows by the
    same unionid (the openid is added to her); else a new member who joined in the mini-shop.
    A member merged into another answers with the survivor."""
    if not app_id or not openid:
        raise BusinessError(
            "wechat_identity_invalid",
            _("A WeChat login needs the app id and the openid."),
            fields={"openid": [openid]},
            status_code=400,
        )
    known = _member_by_openid(app_id=app_id, openid=openid, unionid=unionid)
    if known is not None:
        return known

    def login() -> Member:
        known = _member_by_openid(app_id=app_id, openid=openid, unionid=unionid)
        if known is not None:
            return known
        member = _member_by_unionid(unionid) if unionid else None
        if member is None:
            member = _member_create(joined_channel=JoinedChannel.MINI_SHOP)
        Identity.objects.create(
            member=member,
            kind=Identity.Kind.WECHAT,
            app_id=app_id,
            openid=openid,
            unionid=unionid,
        )
        return member

    return _retrying(login)


def _member_by_openid(*, app_id: str, openid: str, unionid: str) -> Member | None:
    identity = (
        Identity.objects.select_related("member")
        .filter(kind=Identity.Kind.WECHAT, app_id=app_id, openid=openid)
        .first()
    )
    if identity is None:
        return None
    if unionid and not identity.unionid:
        Identity.objects.filter(pk=identity.pk).update(unionid=unionid)
    return _survivor(identity.member)


def _member_by_unionid(unionid: str) -> Member | None:
    sibling = (
        Identity.objects.select_related("member")
        .filter(kind=Identity.Kind.WECHAT, unionid=unionid)
        .order_by("pk")
        .first()
    )
    return None if sibling is None else _survivor(sibling.member)


def _member_create(**fields: Any) -> Member:
    code = "".join(secrets.choice(REFERRAL_CODE_ALPHABET) for _ in range(REFERRAL_CODE_LENGTH))
    return Member.objects.create(referral_code=code, **fields)


def _survivor(member: Member) -> Member:
    while member.merged_into_id is not None:
        member = Member.objects.get(pk=member.merged_into_id)
    return member


def _valid_mobile(mobile: str) -> str:
    mobile = (mobile or "").strip()
    try:
        mobile_validator(mobile)
    except ValidationError as invalid:
        raise BusinessError(
            "mobile_invalid",
            invalid.messages[0],
            fields={"mobile": [mobile]},
            status_code=400,
        ) from None
    return mobile


# --- Binding a phone, merging -------------------------------------------------------------


def member_bind_phone(*, member: Member, mobile: str) -> Member:
    """Give ``member`` this (verified) phone number and return the member who now holds it.

    If another member holds it, ``member`` merges into her and she is returned. Binding the
    number the member already has, or binding again after the merge, returns the same member
    and changes nothing. A member who has another number is refused (``mobile_already_bound``);
    so is an erased member (``member_erased``)."""
    mobile = _valid_mobile(mobile)
    return _retrying(lambda: _bind_phone(member_id=member.pk, mobile=mobile))


def _bind_phone(*, member_id: int, mobile: str) -> Member:
    member_id = _survivor(Member.objects.get(pk=member_id)).pk
    holder_id = Member.objects.filter(mobile=mobile).values_list("pk", flat=True).first()
    locked = {
        row.pk: row
        for row in Member.objects.select_for_update(of=("self",))
        .select_related("tier")
        .filter(pk__in={member_id, holder_id} - {None})
        .order_by("pk")
    }
    me = locked[member_id]
    if me.merged_into_id is not None:
        raise _Moved
    if me.erased_at is not None:
        raise BusinessError(
            "member_erased", _("This member's personal data has been erased."), status_code=410
        )
    if me.mobile == mobile:
        return me
    if me.mobile:
        raise BusinessError(
            "mobile_already_bound",
            _("This member already has another mobile number."),
            fields={"mobile": [mobile]},
        )
    if holder_id is None:
        now = timezone.now()
        Member.objects.filter(pk=me.pk).update(mobile=mobile, updated_at=now)
        Identity.objects.create(member=me, kind=Identity.Kind.PHONE, phone=mobile)
        me.mobile, me.updated_at = mobile, now
        return me
    holder = locked[holder_id]
    if holder.mobile != mobile:
        raise _Moved
    return _members_merge(source=me, target=holder, reason="phone_bound")


def _members_merge(*, source: Member, target: Member, reason: str) -> Member:
    """Merge ``source`` into ``target``; the caller holds both rows locked."""
    merge = MemberMerge.objects.create(source=source, target=target, reason=reason)
    reference = f"merge:{merge.pk}"
    moved: dict[str, int] = {
        "points": points_merge_move(source=source, target=target, reference=reference),
        "coupons": _coupons_move(source=source, target=target, reference=reference),
        "spend": SpendEntry.objects.filter(member=source).update(member=target),
        "identities": Identity.objects.filter(member=source).update(member=target),
        "referrals": Member.objects.filter(referrer=source)
        .exclude(pk=target.pk)
        .update(referrer=target),
    }
    for name, mover in sorted(_merge_participants.items()):
        moved[name] = mover(source_id=source.pk, target_id=target.pk)

    now = timezone.now()
    # What the survivor lacks, the merged member's profile fills in; a higher tier carries over.
    # Not the referrer: the survivor's first paid order would credit a referral twice.
    filled: dict[str, Any] = {
        field: getattr(source, field)
        for field in ("name", "birthday", "home_store_id")
        if not getattr(target, field) and getattr(source, field)
    }
    if source.tier is not None and (
        target.tier is None or source.tier.threshold_fen > target.tier.threshold_fen
    ):
        filled["tier"] = source.tier
    Member.objects.filter(pk=target.pk).update(updated_at=now, **filled)
    for field, value in filled.items():
        setattr(target, field, value)
    Member.objects.filter(pk=source.pk).update(merged_into=target, mobile=None, updated_at=now)
    source.merged_into, source.mobile = target, None
    MemberMerge.objects.filter(pk=merge.pk).update(moved=moved)
    return target


def _coupons_move(*, source: Member, target: Member, reference: str) -> int:
    """Every coupon of ``source``, whatever its status (a locked one follows its order). A
    coupon issued for a reason the survivor also got one for (both claimed the same template)
    is kept, under the merge's reference, so that the two stay distinct."""
    held = set(Coupon.objects.filter(member=target).values_list("template_id", "issue_reference"))
    coupons = list(
        Coupon.objects.filter(member=source).values_list("pk", "template_id", "issue_reference")
    )
    for pk, template_id, issue_reference in coupons:
        if (template_id, issue_reference) in held:
            Coupon.objects.filter(pk=pk).update(member=target, issue_reference=f"{reference}:{pk}")
    Coupon.objects.filter(member=source).update(member=target)
    return len(coupons)


# --- Member code --------------------------------------------------------------------------


def _code_signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=MEMBER_CODE_SALT)


def member_code_issue(*, member: Member) -> str:
    """A short signed code for the mini-shop to show as a QR code (about 55 characters): the
    member's id and the second it was issued, signed with ``SECRET_KEY`` under a salt of its
    own. The mini-shop asks for a new one every minute; each is good for
    ``MEMBER_CODE_TTL_SECONDS``."""
    member = _survivor(member)
    if member.erased_at is not None:
        raise BusinessError(
            "member_erased", _("This member's personal data has been erased."), status_code=410
        )
    return _code_signer().sign(signing.b62_encode(member.pk))


def member_code_resolve(*, code: str) -> Member:
    """The member a scanned code names (the survivor, if she was merged since). An old code is
    refused with ``member_code_expired``, anything not issued by us with
    ``member_code_invalid``."""
    try:
        value = _code_signer().unsign(
            (code or "").strip(), max_age=settings.MEMBER_CODE_TTL_SECONDS
        )
    except signing.SignatureExpired:
        raise BusinessError(
            "member_code_expired",
            _("This member code has expired: ask for a fresh one."),
            fields={"code": [code]},
            status_code=400,
        ) from None
    except signing.BadSignature:
        raise _code_invalid(code) from None
    member = Member.objects.select_related("tier").filter(pk=signing.b62_decode(value)).first()
    if member is None:
        raise _code_invalid(code)
    member = _survivor(member)
    if member.erased_at is not None:
        raise _code_invalid(code)
    return member


def _code_invalid(code: str) -> BusinessError:
    return BusinessError(
        "member_code_invalid",
        _("This is not a valid member code."),
        fields={"code": [code]},
        status_code=400,
    )


# --- Privacy ------------------------------------------------------------------------------


def _at(moment: datetime | None) -> str | None:
    return None if moment is None else timezone.localtime(moment).isoformat()


def member_export(*, member: Member) -> dict[str, Any]:
    """Everything the platform keeps about the member, unmasked (it is hers): profile,
    identities, points history, coupons and the members merged into her. Five queries."""
    member = Member.objects.select_related("tier", "home_store").get(pk=member.pk)
    return {
        "member": {
            "id": member.pk,
            "mobile": member.mobile,
            "name": member.name,
            "birthday": member.birthday.isoformat() if member.birthday else None,
            "tier": member.tier.name if member.tier else None,
            "home_store": member.home_store.name if member.home_store else None,
            "joined_channel": member.joined_channel,
            "referral_code": member.referral_code,
            "referrer_id": member.referrer_id,
            "points_balance": member.points_balance,
            "joined_at": _at(member.created_at),
            "erased_at": _at(member.erased_at),
        },
        "identities": [
            {
                "kind": identity.kind,
                "app_id": identity.app_id,
                "openid": identity.openid,
                "unionid": identity.unionid,
                "phone": identity.phone,
                "added_at": _at(identity.created_at),
            }
            for identity in member.identities.order_by("pk")
        ],
        "points": [
            {
                "at": _at(entry.created_at),
                "reason": entry.reason,
                "reference": entry.reference,
                "points": entry.points,
                "balance_after": entry.balance_after,
                "expires_at": _at(entry.expires_at),
                "unspent": entry.remaining,
            }
            for entry in PointsEntry.objects.filter(member=member).order_by("created_at", "pk")
        ],
        "coupons": [
            {
                "code": coupon.code,
                "name": coupon.template.name,
                "status": coupon.status,
                "valid_from": _at(coupon.valid_from),
                "valid_until": _at(coupon.valid_until),
                "order": coupon.order_reference,
                "issued_at": _at(coupon.issued_at),
                "used_at": _at(coupon.used_at),
            }
            for coupon in member.coupons.select_related("template").order_by("issued_at", "pk")
        ],
        "merged_from": [
            {"member_id": merge.source_id, "at": _at(merge.created_at), "moved": merge.moved}
            for merge in member.merges.order_by("created_at", "pk")
        ],
    }


def member_erase(*, member: Member, actor: User | None) -> Member:
    """Remove the member's personal data on her request: name, mobile, birthday, referral code
    and every identity (so no login finds her again), also from the members merged into her.
    Her row stays, anonymous, with its points history, coupons and orders (which the books
    need). Erasing again changes nothing."""
    with transaction.atomic():
        locked = Member.objects.select_for_update().get(pk=member.pk)
        if locked.erased_at is None:
            now = timezone.now()
            merged_ids = list(
                Member.objects.filter(merged_into=locked).values_list("pk", flat=True)
            )
            Identity.objects.filter(member_id__in=[locked.pk, *merged_ids]).delete()
            for _name, eraser in sorted(_erase_participants.items()):
                eraser(member_ids=[locked.pk, *merged_ids])
            Member.objects.filter(pk__in=[locked.pk, *merged_ids]).update(
                name="",
                mobile=None,
                birthday=None,
                referral_code=None,
                erased_at=now,
                erased_by=actor,
                updated_at=now,
            )
    member.refresh_from_db()
    return member


def member_referrer_set(*, member: Member, referrer: Member) -> bool:
    """Name ``referrer`` as the member's referrer, once: a member who has one keeps it (returns
    False). The caller decides who may name one (a new member, before her first order) and holds
    the member's row lock."""
    if referrer.pk == member.pk:
        raise BusinessError(
            "referral_self", _("This is your own referral code."), fields={"code": [""]}
        )
    return bool(
        Member.objects.filter(pk=member.pk, referrer__isnull=True).update(
            referrer=referrer, updated_at=timezone.now()
        )
    )
