"""``manage.py inventory_audit [--store CODE]``: prove every stock row against its ledger and
its reservations. Exits 0 when all agree and 1 on any drift, so cron or CI can raise the alarm.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from inventory.audit import Drift, inventory_drift, stock_item_count
from retail.models import Store


def _table_line(
    store: str, sku: str, expected: str, found: str, difference: str, check: str
) -> str:
    # The check's label goes last: translated, its double-width characters would skew columns.
    return f"{store:<12} {sku:<22} {expected:>9} {found:>9} {difference:>10}  {check}"


def _drift_line(drift: Drift) -> str:
    return _table_line(
        drift.store_code,
        drift.sku_code,
        str(drift.expected),
        str(drift.found),
        f"{drift.difference:+d}",
        str(drift.check.label),
    )


class Command(BaseCommand):
    help = (
        "Check that each stock row's on hand equals its ledger total and its reserved equals its "
        "active reservations. Exits with status 1 when any drift is found."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--store", metavar="CODE", help="Audit only the store with this code.")

    def handle(self, *args: Any, store: str | None, **options: Any) -> None:
        audited_store = None
        if store is not None:
            audited_store = Store.objects.filter(code=store).first()
            if audited_store is None:
                raise CommandError(_("No store has the code %(code)s.") % {"code": store})

        checked = stock_item_count(store=audited_store)
        drifts = 0
        for drift in inventory_drift(store=audited_store):
            if not drifts:
                self._write_table_head()
            self.stdout.write(self.style.ERROR(_drift_line(drift)))
            drifts += 1

        checked_text = ngettext(
            "checked %(count)d stock item", "checked %(count)d stock items", checked
        ) % {"count": checked}
        if not drifts:
            self.stdout.write(
                self.style.SUCCESS(_("%(checked)s, no drift") % {"checked": checked_text})
            )
            return
        raise CommandError(
            ngettext(
                "%(checked)s, found %(count)d drift", "%(checked)s, found %(count)d drifts", drifts
            )
            % {"checked": checked_text, "count": drifts}
        )

    def _write_table_head(self) -> None:
        self.stdout.write(
            _(
                "Inventory drift. Expected: what the ledger or the held and committed "
                "reservations add up to. Found: what the stock row says."
            )
        )
        self.stdout.write(
            _table_line(
                _("store"), _("SKU"), _("expected"), _("found"), _("difference"), _("check")
            )
        )
