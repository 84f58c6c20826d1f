"""``manage.py sales_rollup [--rebuild]``: run the daily sales roll-up now (the beat task runs it
every five minutes) and say what it did. ``--rebuild`` recomputes every closed day of all
history, for instance after orders were written with a past ``updated_at`` (the demo seeds)."""

from typing import Any

from django.core.management.base import BaseCommand

from orders.sales_rollup import SHANGHAI, sales_rollup


class Command(BaseCommand):
    help = "Roll up the console dashboard's daily sales of closed days (orders.DailySales)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--rebuild", action="store_true", help="recompute every closed day of all history"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = sales_rollup(rebuild=options["rebuild"])
        if result.rebuilt:
            done = "Rebuilt every closed day"
        elif result.new_days:
            first, last = result.new_days[0], result.new_days[-1]
            days = f"{first}" if first == last else f"{first} to {last}"
            done = f"Rolled up {len(result.new_days)} new day(s) ({days})"
        else:
            done = "No new closed day"
        if result.changed_since is not None:
            done += (
                f"; recomputed {result.changed_pairs} store-day(s) whose orders changed since "
                f"{result.changed_since.astimezone(SHANGHAI).isoformat(timespec='seconds')}"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"{done}; {result.rows_written} row(s) written; complete through "
                f"{result.complete_through}."
            )
        )
