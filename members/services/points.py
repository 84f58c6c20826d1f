"""Points, spend and tiers, referrals.

**The ledger.** Every change of a member's points is one ``PointsEntry``, unique per (member,
reason, reference): a repeat returns the first entry and changes nothing. ``_points_apply`` is
the only code that writes entries or ``Member.points_balance``: under the member's row lock it
writes the entry with its ``balance_after`` and moves the balance in one guarded UPDATE, and
the database refuses a balance below zero as well.

**Lots and expiry.** A credit (earn, referral, staff adjustment, merge) is a *lot*: it expires
at ``expires_at`` (by default ``MEMBER_POINTS_EXPIRE_DAYS`` after it was credited) and
``remaining`` says how much of it is still unspent. A debit (redeem, expire, earn reversed,
merge out, a negative adjustment) spends lots oldest expiry first. So at all times the
remaining of a member's lots sums to her balance, which ``points_audit`` checks.
A restored redemption (the order was cancelled) refills the lots it came from: room is given
back to the lots spent last (latest expiry first), which leaves the lots as if the redemption
had never happened, so cancelling an order never extends the life of points. Whatever finds no
room (the redemption was made by a member merged into this one) becomes a new lot.

**Orders.** ``orders`` calls the ``member_order_*`` hooks inside its own transactions, holding
the order's lock; each is idempotent by its ledger keys. Order numbers are unique, so entries
for an order are found by reference whoever holds them (a merge moves orders to the survivor,
while the entries stay with the member that made them).

- Completed: a ``SpendEntry`` (reference: the order number) for the amount paid and not
  refunded, points earned at the tier held before the order
  (``floor(fen × MEMBER_POINTS_PER_YUAN × multiplier / 10 000)``), and an upgrade at once when
  the spend within ``MEMBER_TIER_WINDOW_DAYS`` now reaches a higher tier (never a downgrade:
  the nightly ``tiers_recalculate`` does those).
- Refunded after completion: a negative ``SpendEntry`` dated like the order's (so it leaves the
  rolling window with it) and the earned points taken back in proportion. Both use the
  cumulative refunded amount, ``<order>:refund:<fen refunded so far>``, and the points due are
  ``floor(earned × refunded so far / spent) - floor(earned × refunded before / spent)``, so
  partial refunds add up to exactly the points earned. Points never go below zero: when the
  member has already spent them, what is there is taken and the rest is forgiven. A refund
  before completion needs nothing here: the completed amount is already net of it.
- Paid: the member's first paid order credits her referrer ``MEMBER_REFERRAL_POINTS`` once
  (reference ``referral:<member id>``).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Case, F, Q, Sum, Value, When, Window
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import Member, PointsEntry, SpendEntry, Tier
from members.selectors import (
    member_window_spend,
    member_window_spend_subquery,
    tier_for_spend,
)
from retail.errors import BusinessError

R = PointsEntry.Reason

# A credit of these reasons is a lot of its own; a restored redemption refills lots instead.
_LOT_REASONS = (R.EARN, R.REFERRAL, R.ADJUST, R.MERGE_IN)
_FIFO = (F("expires_at").asc(nulls_last=True), F("pk").asc())
_LIFO = (F("expires_at").desc(nulls_first=True), F("pk").desc())


# --- The one door to the ledger ------------------------------------------------------------


def _member_locked(member: Member | int) -> Member:
    """The member row under lock, with its tier; a member merged into another stands for the
    survivor (a hook may arrive for an order placed before the merge)."""
    member_id = member if isinstance(member, int) else member.pk
    while True:
        locked = (
            Member.objects.select_for_update(of=("self",)).select_related("tier").get(pk=member_id)
        )
        if locked.merged_into_id is None:
            return locked
        member_id = locked.merged_into_id


def _points_apply(
    *,
    member: Member,
    points: int,
    reason: str,
    reference: str,
    actor: User | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[PointsEntry, bool]:
    """Write one entry for ``member``, whose row the caller holds locked. Returns the entry and
    whether it is new: a repeat of (reason, reference) returns the first entry untouched."""
    existing = PointsEntry.objects.filter(
        member_id=member.pk, reason=reason, reference=reference
    ).first()
    if existing is not None:
        return existing, False
    if points == 0:
        raise BusinessError("points_zero", _("The number of points must not be zero."))
    now = now or timezone.now()
    moved = Member.objects.filter(pk=member.pk, points_balance__gte=max(-points, 0)).update(
        points_balance=F("points_balance") + points
    )
    if not moved:
        raise BusinessError(
            "insufficient_points",
            _("Not enough points: %(balance)d available, %(points)d needed.")
            % {"balance": member.points_balance, "points": -points},
            fields={"points": [str(-points)]},
        )
    member.points_balance += points
    entry = PointsEntry(
        member_id=member.pk,
        reason=reason,
        reference=reference,
        points=points,
        balance_after=member.points_balance,
        actor=actor,
    )
    if points < 0:
        _lots_spend(member_id=member.pk, points=-points)
    elif reason in _LOT_REASONS:
        entry.expires_at = expires_at or now + timedelta(days=settings.MEMBER_POINTS_EXPIRE_DAYS)
        entry.remaining = points
    else:
        left = _lots_refill(member_id=member.pk, points=points)
        if left:
            entry.expires_at = expires_at or now + timedelta(
                days=settings.MEMBER_POINTS_EXPIRE_DAYS
            )
            entry.remaining = left
    entry.save(force_insert=True)
    return entry, True


def _lots_spend(*, member_id: int, points: int) -> None:
    """Take ``points`` from the member's lots, oldest expiry first: one read of the lots
    needed, one write."""
    lots = list(
        PointsEntry.objects.filter(member_id=member_id, remaining__gt=0)
        .annotate(before=Window(Sum("remaining"), order_by=_FIFO) - F("remaining"))
        .filter(before__lt=points)
        .order_by(*_FIFO)
        .only("pk", "remaining")
    )
    for lot in lots:
        taken = min(lot.remaining, points)
        lot.remaining -= taken
        points -= taken
    if points:
        raise BusinessError(
            "points_drift",
            _("The member's points lots do not cover her balance; run points_audit."),
        )
    PointsEntry.objects.bulk_update(lots, ["remaining"])


def _lots_refill(*, member_id: int, points: int) -> int:
    """Give ``points`` back to the lots spent last (latest expiry first). Returns what found no
    room."""
    room = F("points") - F("remaining")
    lots = list(
        PointsEntry.objects.filter(
            member_id=member_id, reason__in=_LOT_REASONS, remaining__lt=F("points")
        )
        .annotate(before=Window(Sum(room), order_by=_LIFO) - room)
        .filter(before__lt=points)
        .order_by(*_LIFO)
        .only("pk", "points", "remaining")
    )
    for lot in lots:
        given = min(lot.points - lot.remaining, points)
        lot.remaining += given
        points -= given
    if lots:
        PointsEntry.objects.bulk_update(lots, ["remaining"])
    return points


def points_apply(
    *,
    member: Member | int,
    points: int,
    reason: str,
    reference: str,
    actor: User | None = None,
    expires_at: datetime | None = None,
) -> PointsEntry:
    """Credit (``points > 0``) or debit the member's points for ``reason`` and ``reference``,
    once: a repeat returns the first entry. A debit beyond the balance is refused with
    ``insufficient_points`` and changes nothing. A ``Member`` passed in sees its new balance."""
    with transaction.atomic():
        locked = _member_locked(member)
        entry, _new = _points_apply(
            member=locked,
            points=points,
            reason=reason,
            reference=reference,
            actor=actor,
            expires_at=expires_at,
        )
    _refresh(member, locked)
    return entry


def _refresh(member: Member | int, locked: Member) -> None:
    if isinstance(member, Member) and member.pk == locked.pk:
        member.points_balance = locked.points_balance


# --- Checkout (called by the pricing and checkout code) ----------------------------------------


def points_redeem(*, member: Member | int, points: int, order_reference: str) -> PointsEntry:
    """Spend ``points`` (> 0) as money off order ``order_reference``, inside the checkout's
    transaction. Refused with ``insufficient_points`` beyond the balance; a repeat for the same
    order returns the first redemption."""
    if points <= 0:
        raise BusinessError(
            "points_not_positive",
            _("The number of points must be greater than zero."),
            fields={"points": [str(points)]},
        )
    return points_apply(member=member, points=-points, reason=R.REDEEM, reference=order_reference)


def points_restore_redeem(*, member: Member | int, order_reference: str) -> PointsEntry | None:
    """Give back the points redeemed on order ``order_reference`` (cancelled) to ``member``,
    once; None when the order redeemed none. The points return to the lots they came from."""
    with transaction.atomic():
        locked = _member_locked(member)
        redeemed = (
            PointsEntry.objects.filter(reason=R.REDEEM, reference=order_reference)
            .values_list("points", flat=True)
            .first()
        )
        if redeemed is None:
            return None
        entry, _new = _points_apply(
            member=locked,
            points=-redeemed,
            reason=R.REDEEM_RESTORED,
            reference=order_reference,
        )
    _refresh(member, locked)
    return entry


# --- Staff --------------------------------------------------------------------------------


def points_adjust(*, member: Member | int, points: int, note: str, actor: User) -> PointsEntry:
    """A staff correction or gift. ``note`` (why, e.g. a ticket number) is the entry's
    reference: submitting the same note twice records it once, and the same note with other
    points is refused with ``points_adjust_note_used``. A credit expires like earned points."""
    note = note.strip()
    if not note or len(note) > PointsEntry._meta.get_field("reference").max_length:
        raise BusinessError(
            "points_adjust_note_invalid",
            _("Say why, in at most 64 characters."),
            fields={"note": [note]},
            status_code=400,
        )
    with transaction.atomic():
        locked = _member_locked(member)
        entry, new = _points_apply(
            member=locked, points=points, reason=R.ADJUST, reference=note, actor=actor
        )
        if not new and entry.points != points:
            raise BusinessError(
                "points_adjust_note_used",
                _("This member already has an adjustment with this note."),
                fields={"note": [note]},
            )
    _refresh(member, locked)
    return entry


# --- Merging members (called by identity's merge) -----------------------------------------------


def points_merge_move(*, source: Member, target: Member, reference: str) -> int:
    """Move all of ``source``'s points to ``target``, lot by lot with their expiry, inside the
    merge's transaction (which holds both rows locked). Returns the points moved; a repeat of
    ``reference`` moves nothing."""
    with transaction.atomic():
        locked = {
            member.pk: member
            for member in Member.objects.select_for_update()
            .filter(pk__in=[source.pk, target.pk])
            .order_by("pk")
        }
        source_locked, target_locked = locked[source.pk], locked[target.pk]
        lots = list(
            PointsEntry.objects.filter(member_id=source.pk, remaining__gt=0)
            .order_by(*_FIFO)
            .values_list("pk", "remaining", "expires_at")
        )
        total = sum(remaining for _pk, remaining, _expires in lots)
        if total == 0:
            return 0
        _entry, new = _points_apply(
            member=source_locked, points=-total, reason=R.MERGE_OUT, reference=reference
        )
        if not new:
            return 0
        Member.objects.filter(pk=target.pk).update(points_balance=F("points_balance") + total)
        balance = target_locked.points_balance
        entries = []
        for pk, remaining, expires_at in lots:
            balance += remaining
            entries.append(
                PointsEntry(
                    member_id=target.pk,
                    reason=R.MERGE_IN,
                    reference=f"{reference}:{pk}",
                    points=remaining,
                    balance_after=balance,
                    expires_at=expires_at,
                    remaining=remaining,
                )
            )
        PointsEntry.objects.bulk_create(entries)
    source.points_balance, target.points_balance = 0, balance
    return total


# --- Order hooks (orders calls these inside its transactions) ----------------------------------


def member_order_paid(*, member_id: int, order_reference: str) -> None:
    """An order of the member was paid: credit her referrer on her first paid order."""
    referrer_id = Member.objects.filter(pk=member_id).values_list("referrer_id", flat=True).get()
    if referrer_id is None or settings.MEMBER_REFERRAL_POINTS <= 0:
        return
    with transaction.atomic():
        referrer = _member_locked(referrer_id)
        if referrer.pk == member_id:
            return
        _points_apply(
            member=referrer,
            points=settings.MEMBER_REFERRAL_POINTS,
            reason=R.REFERRAL,
            reference=f"referral:{member_id}",
        )


def member_order_completed(
    *, member_id: int, order_reference: str, amount_fen: int, at: datetime
) -> None:
    """An order was completed: record the spend, earn points, upgrade the tier at once."""
    with transaction.atomic():
        member = _member_locked(member_id)
        if SpendEntry.objects.filter(reference=order_reference).exists():
            return
        SpendEntry.objects.create(
            member_id=member.pk, reference=order_reference, amount_fen=amount_fen, at=at
        )
        multiplier = member.tier.points_multiplier if member.tier else 100
        earned = amount_fen * settings.MEMBER_POINTS_PER_YUAN * multiplier // 10_000
        if earned > 0:
            _points_apply(
                member=member, points=earned, reason=R.EARN, reference=order_reference, now=at
            )
        _tier_upgrade(member=member, at=at)


def _tier_upgrade(*, member: Member, at: datetime) -> None:
    reached = tier_for_spend(member_window_spend(member=member, now=at))
    if reached is not None and (
        member.tier is None or reached.threshold_fen > member.tier.threshold_fen
    ):
        Member.objects.filter(pk=member.pk).update(tier=reached)
        member.tier = reached


def member_order_refunded(
    *, member_id: int, order_reference: str, refunded_fen: int, paid_fen: int
) -> None:
    """Money went back for an order: take back the points it earned in proportion, and the
    spend. ``refunded_fen`` is this refund's amount; orders calls once per refund."""
    refund_prefix = f"{order_reference}:refund:"
    with transaction.atomic():
        member = _member_locked(member_id)
        spent_at, spent, refunded_before = None, 0, 0
        for reference, amount, at in SpendEntry.objects.filter(
            Q(reference=order_reference) | Q(reference__startswith=refund_prefix)
        ).values_list("reference", "amount_fen", "at"):
            if reference == order_reference:
                spent_at, spent = at, amount
            else:
                refunded_before -= amount
        if spent_at is None:
            return
        refunded = min(refunded_before + refunded_fen, spent)
        if refunded <= refunded_before:
            return
        reference = f"{refund_prefix}{refunded}"
        SpendEntry.objects.create(
            member_id=member.pk,
            reference=reference,
            amount_fen=refunded_before - refunded,
            at=spent_at,
        )
        earned = (
            PointsEntry.objects.filter(reason=R.EARN, reference=order_reference)
            .values_list("points", flat=True)
            .first()
        )
        if not earned:
            return
        due = earned * refunded // spent - earned * refunded_before // spent
        taken = min(due, member.points_balance)
        if taken > 0:
            _points_apply(member=member, points=-taken, reason=R.EARN_REVERSED, reference=reference)


# --- Beat tasks ----------------------------------------------------------------------------


def points_expire(*, now: datetime | None = None) -> int:
    """Expire what is left of lots whose time has come: one entry per member and day
    (``expire:<date>``), each member in a transaction of her own. Returns the points expired.
    Lots refilled after today's entry wait for tomorrow's."""
    now = now or timezone.now()
    reference = f"expire:{timezone.localdate(now).isoformat()}"
    due = (
        PointsEntry.objects.filter(remaining__gt=0, expires_at__lte=now)
        .values("member_id")
        .annotate(points=Sum("remaining"))
        .order_by("member_id")
    )
    expired = 0
    for row in due:
        with transaction.atomic():
            member = _member_locked(row["member_id"])
            if member.pk != row["member_id"]:
                continue
            points = (
                PointsEntry.objects.filter(
                    member_id=member.pk, remaining__gt=0, expires_at__lte=now
                ).aggregate(points=Sum("remaining"))["points"]
                or 0
            )
            if points == 0:
                continue
            _entry, new = _points_apply(
                member=member, points=-points, reason=R.EXPIRE, reference=reference, now=now
            )
            expired += points if new else 0
    return expired


def tiers_recalculate(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Set every member's tier from her spend within the rolling window, up or down: per batch
    of members one read (with the spend) and at most one write. Returns how many changed."""
    now = now or timezone.now()
    tiers = list(Tier.objects.order_by("threshold_fen"))
    if not tiers:
        return 0
    changed, after = 0, 0
    while True:
        with transaction.atomic():
            batch = list(
                Member.objects.select_for_update(of=("self",))
                .filter(pk__gt=after, merged_into__isnull=True)
                .annotate(window_spend=Coalesce(member_window_spend_subquery(now=now), 0))
                .order_by("pk")
                .values_list("pk", "tier_id", "window_spend")[:batch_size]
            )
            if not batch:
                return changed
            moves: dict[int, list[int]] = {}
            for pk, tier_id, spend in batch:
                reached = _tier_of(tiers, spend)
                reached_id = reached.pk if reached else None
                if reached_id != tier_id:
                    moves.setdefault(reached_id, []).append(pk)
            if moves:
                Member.objects.filter(pk__in=[pk for pks in moves.values() for pk in pks]).update(
                    tier_id=Case(
                        *(When(pk__in=pks, then=Value(tier_id)) for tier_id, pks in moves.items())
                    )
                )
                changed += sum(len(pks) for pks in moves.values())
            after = batch[-1][0]


def _tier_of(tiers: list[Tier], spend: int) -> Tier | None:
    reached = None
    for tier in tiers:
        if tier.threshold_fen <= spend:
            reached = tier
    return reached
