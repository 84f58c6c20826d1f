"""``manage.py partner_demo_setup``: the demo's fulfilment partner, played by the partner
sandbox (``python -m partners.sandbox``) that ``make demo`` runs beside the platform.

Creates or updates the partner "闪送同城配送 (沙箱)" (fulfilment, serving Shanghai, webhook
``http://127.0.0.1:$PARTNER_SANDBOX_PORT/pushes``) and its two routing rules: delivery orders
from warehouses, and from stores that do not ship parcels themselves. Each run gives it a new
signing secret and a new API key (revoking the keys it had) and writes both to an env file,
``$DATA_DIR/partner-sandbox.env`` unless told otherwise, which the ``partner`` process of
``Procfile.demo`` sources before it starts the sandbox. ``make demo`` runs it after the seeds
and before the processes: run by hand while the sandbox runs, it leaves the sandbox with the old
secret and key until the sandbox is restarted. A demo key is worth nothing elsewhere: the command
refuses to run unless DEBUG is on.
"""

import os
import shlex
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from partners.models import Partner, PartnerApiKey, RoutingRule
from partners.services import (
    partner_api_key_issue,
    partner_api_key_revoke,
    partner_create,
    partner_signing_secret_rotate,
)

PARTNER_NAME = "闪送同城配送 (沙箱)"
CITIES = ["上海市"]
DEFAULT_PORT = "8767"
ENV_FILE_NAME = "partner-sandbox.env"
SECRET_VARIABLE = "PARTNER_SANDBOX_SECRET"  # noqa: S105 (a variable's name)
KEY_VARIABLE = "PARTNER_SANDBOX_API_KEY"
# (name, priority, store kind, only stores without ship-from-store)
RULES = [
    ("沙箱: 仓库发货的配送单", 10, RoutingRule.StoreKind.WAREHOUSE, False),
    ("沙箱: 不自配送门店的配送单", 20, RoutingRule.StoreKind.STORE, True),
]


def sandbox_webhook_url() -> str:
    port = os.environ.get("PARTNER_SANDBOX_PORT") or DEFAULT_PORT
    return f"http://127.0.0.1:{port}/pushes"


class Command(BaseCommand):
    help = (
        "Set up the demo's fulfilment partner for the partner sandbox: partner, routing rules, "
        "a new signing secret and API key, written to an env file. DEBUG only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--env-file",
            help=f"Where to write the secret and key (default: $DATA_DIR/{ENV_FILE_NAME}).",
        )
        parser.add_argument("--quiet", action="store_true", help="Print only the summary line.")

    def handle(self, *args: Any, env_file: str | None, quiet: bool, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "partner_demo_setup sets up the demo's sandbox partner and runs only with "
                "DEBUG on (make demo sets DEBUG=1)."
            )
        path = Path(env_file) if env_file else Path(settings.DATA_DIR) / ENV_FILE_NAME
        webhook_url = sandbox_webhook_url()
        with transaction.atomic():
            partner, created, secret = self._partner(webhook_url)
            self._rules(partner)
            revoked = 0
            for key in PartnerApiKey.objects.filter(partner=partner, revoked_at__isnull=True):
                partner_api_key_revoke(key=key)
                revoked += 1
            raw_key, key = partner_api_key_issue(partner=partner)
            self._write(path, secret, raw_key)

        self.stdout.write(
            self.style.SUCCESS(
                f"Demo partner {partner.name} {'created' if created else 'updated'}: "
                f"pushes to {webhook_url}, {len(RULES)} routing rules, new API key "
                f"{key.prefix}… ({revoked} revoked), new signing secret; written to {path}."
            )
        )
        if not quiet:
            self.stdout.write(
                f"  {KEY_VARIABLE}={raw_key}\n  {SECRET_VARIABLE}={secret}\n"
                "  Paid delivery orders from the warehouse and from Shanghai stores without "
                "ship-from-store now go to the sandbox, which ships and delivers them."
            )

    def _partner(self, webhook_url: str) -> tuple[Partner, bool, str]:
        """The demo partner as the demo wants it, and its new signing secret."""
        partner = Partner.objects.select_for_update().filter(name=PARTNER_NAME).first()
        if partner is None:
            partner, secret = partner_create(
                name=PARTNER_NAME,
                kind=Partner.Kind.FULFILMENT,
                webhook_url=webhook_url,
                cities=CITIES,
            )
            return partner, True, secret
        partner.kind = Partner.Kind.FULFILMENT
        partner.webhook_url = webhook_url
        partner.active = True
        partner.cities = CITIES
        partner.full_clean()
        partner.save(update_fields=["kind", "webhook_url", "active", "cities"])
        partner.stores.clear()
        return partner, False, partner_signing_secret_rotate(partner=partner)

    def _rules(self, partner: Partner) -> None:
        # Rules are switched off, never deleted (orders name the rule that routed them): any
        # other rule of the demo partner, added in the admin, is switched off.
        wanted = {name for name, *_rest in RULES}
        RoutingRule.objects.filter(partner=partner).exclude(name__in=wanted).update(active=False)
        for name, priority, store_kind, without_ship_from_store in RULES:
            rule = RoutingRule.objects.filter(partner=partner, name=name).first() or RoutingRule(
                partner=partner, name=name
            )
            rule.priority = priority
            rule.active = True
            rule.store_kind = store_kind
            rule.without_ship_from_store = without_ship_from_store
            rule.channels = []
            rule.full_clean()
            rule.save()
            rule.stores.clear()

    def _write(self, path: Path, secret: str, raw_key: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = (
            "# Written by `manage.py partner_demo_setup` (make demo) and sourced by the partner\n"
            "# process of Procfile.demo: the demo partner's signing secret and API key, new on\n"
            "# each run. Demo values, worth nothing outside this database.\n"
            f"export {SECRET_VARIABLE}={shlex.quote(secret)}\n"
            f"export {KEY_VARIABLE}={shlex.quote(raw_key)}\n"
        )
        # Written whole under another name, then moved: a reader never sees half a file.
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(text, encoding="utf-8")
        partial.chmod(0o600)
        partial.replace(path)
