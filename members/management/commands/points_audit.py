"""``manage.py points_audit``: prove every member's points balance against her ledger. Exits 0
when all agree and 1 on any drift, so cron or CI can raise the alarm.

Three sums must equal ``Member.points_balance``: the points of all her entries, the unspent
``remaining`` of her lots, and her last entry's ``balance_after``. One query for the whole
check, whatever the number of members.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from members.selectors import PointsDrift, points_drift


def _table_line(member: str, balance: str, ledger: str, lots: str, last: str) -> str:
    return f"{member:>10} {balance:>12} {ledger:>12} {lots:>12} {last:>12}"


def _drift_line(drift: PointsDrift) -> str:
    return _table_line(
        str(drift.member_id),
        str(drift.balance),
        str(drift.ledger),
        str(drift.lots),
        str(drift.last_balance_after),
    )


class Command(BaseCommand):
    help = (
        "Check that each member's points balance equals the sum of her points entries, the "
        "unspent points of her lots and her last entry's balance. Exits with status 1 on drift."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        drifts = 0
        for drift in points_drift():
            if not drifts:
                self.stdout.write(
                    _("Points drift: the balance should equal each of the three sums after it.")
                )
                self.stdout.write(
                    _table_line(
                        _("member"), _("balance"), _("ledger"), _("unspent"), _("last entry")
                    )
                )
            self.stdout.write(self.style.ERROR(_drift_line(drift)))
            drifts += 1
        if not drifts:
            self.stdout.write(self.style.SUCCESS(_("Points: no drift.")))
            return
        raise CommandError(
            ngettext("Points: %(count)d member drifts.", "Points: %(count)d members drift.", drifts)
            % {"count": drifts}
        )
