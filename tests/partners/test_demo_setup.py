"""`make demo` runs the partner sandbox as the demo's courier: `partner_demo_setup` creates or
puts back the partner and its routing rules, gives it a new signing secret and API key on each
run and writes them to the env file the `partner` process of Procfile.demo sources; DEBUG only.
"""

import re
import shlex
import subprocess
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from partners.models import Partner, PartnerApiKey, PartnerOrder, PartnerPush, RoutingRule
from partners.sandbox import Sandbox, SandboxServer
from partners.services import partner_key_authenticate, partner_signing_secret
from retail.errors import BusinessError

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = ROOT / "Procfile.demo"
MAKEFILE = ROOT / "Makefile"
SHELL = "/bin/sh"  # what honcho runs Procfile lines with
NAME = "闪送同城配送 (沙箱)"
RULES = [
    # name, priority, active, store kind, without ship-from-store, channels, stores
    ("沙箱: 仓库发货的配送单", 10, True, "warehouse", False, [], []),
    ("沙箱: 不自配送门店的配送单", 20, True, "store", True, [], []),
]


@pytest.fixture
def demo(settings, monkeypatch, tmp_path):
    """DEBUG on and no PARTNER_SECRET_KEY, as in `make demo`; data under a scratch folder."""
    settings.DEBUG = True
    settings.PARTNER_SECRET_KEY = ""
    settings.DATA_DIR = tmp_path
    monkeypatch.delenv("PARTNER_SANDBOX_PORT", raising=False)
    return tmp_path


def setup(*options: str) -> str:
    out = StringIO()
    call_command("partner_demo_setup", *options, stdout=out)
    return out.getvalue()


def env_values(path: Path) -> dict[str, str]:
    """The variables the env file exports, read by a shell as the Procfile's process does."""
    script = f'. {shlex.quote(str(path))} && printf "%s\\n%s\\n" "$PARTNER_SANDBOX_SECRET" '
    script += '"$PARTNER_SANDBOX_API_KEY"'
    secret, key = subprocess.run(  # noqa: S603 (a fixed script over a file of the test's)
        [SHELL, "-c", script], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return {"secret": secret, "key": key}


def rules() -> list[tuple]:
    return [
        (
            rule.name,
            rule.priority,
            rule.active,
            rule.store_kind,
            rule.without_ship_from_store,
            rule.channels,
            list(rule.stores.values_list("code", flat=True)),
        )
        for rule in RoutingRule.objects.order_by("priority")
    ]


def test_it_creates_the_partner_its_rules_and_a_key_and_writes_them_to_the_data_folder(db, demo):
    out = setup("--quiet")

    partner = Partner.objects.get()
    key = PartnerApiKey.objects.get()
    path = demo / "partner-sandbox.env"
    values = env_values(path)
    assert out == (
        f"Demo partner {NAME} created: pushes to http://127.0.0.1:8767/pushes, 2 routing "
        f"rules, new API key {key.prefix}… (0 revoked), new signing secret; written to {path}.\n"
    )
    assert (partner.name, partner.kind, partner.active, partner.webhook_url, partner.cities) == (
        NAME,
        "fulfilment",
        True,
        "http://127.0.0.1:8767/pushes",
        ["上海市"],
    )
    assert list(partner.stores.all()) == []
    assert rules() == RULES
    assert RoutingRule.objects.filter(partner=partner).count() == 2
    assert (key.partner, key.revoked_at) == (partner, None)
    assert partner_key_authenticate(values["key"]) == key
    assert values["secret"] == partner_signing_secret(partner=partner)
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in demo.iterdir()) == ["partner-sandbox.env"]


def test_a_second_run_rotates_the_key_and_the_secret_and_puts_the_demo_back(db, demo, tmp_path):
    setup("--quiet")
    partner = Partner.objects.get()
    first = env_values(demo / "partner-sandbox.env")
    first_key = PartnerApiKey.objects.get()
    rule_ids = list(RoutingRule.objects.order_by("priority").values_list("pk", flat=True))
    # Edited in the admin meanwhile: switched off, another webhook, a rule narrowed.
    Partner.objects.filter(pk=partner.pk).update(
        active=False, webhook_url="https://elsewhere.example/hooks", cities=["杭州市"]
    )
    RoutingRule.objects.filter(pk=rule_ids[0]).update(active=False, channels=["h5"])
    RoutingRule.objects.create(name="门店自提也给它", partner=partner, priority=5)
    elsewhere = tmp_path / "keys" / "demo.env"

    out = setup("--env-file", str(elsewhere))

    second = env_values(elsewhere)
    partner.refresh_from_db()
    new_key = PartnerApiKey.objects.exclude(pk=first_key.pk).get()
    first_key.refresh_from_db()
    assert out.splitlines() == [
        f"Demo partner {NAME} updated: pushes to http://127.0.0.1:8767/pushes, 2 routing rules, "
        f"new API key {new_key.prefix}… (1 revoked), new signing secret; written to {elsewhere}.",
        f"  PARTNER_SANDBOX_API_KEY={second['key']}",
        f"  PARTNER_SANDBOX_SECRET={second['secret']}",
        "  Paid delivery orders from the warehouse and from Shanghai stores without "
        "ship-from-store now go to the sandbox, which ships and delivers them.",
    ]
    assert Partner.objects.count() == 1
    assert (partner.active, partner.webhook_url, partner.cities) == (
        True,
        "http://127.0.0.1:8767/pushes",
        ["上海市"],
    )
    # Its own rules put back; another rule added to it switched off, not deleted.
    assert (
        list(
            RoutingRule.objects.exclude(priority=5)
            .order_by("priority")
            .values_list("pk", flat=True)
        )
        == rule_ids
    )
    assert rules() == [("门店自提也给它", 5, False, "", False, [], []), *RULES]
    assert PartnerApiKey.objects.count() == 2
    assert first_key.revoked_at is not None
    assert new_key.revoked_at is None
    with pytest.raises(BusinessError) as refused:
        partner_key_authenticate(first["key"])
    assert refused.value.code == "key_revoked"
    assert partner_key_authenticate(second["key"]) == new_key
    assert second["secret"] != first["secret"]
    assert second["secret"] == partner_signing_secret(partner=partner)
    # The default file is left as the first run wrote it.
    assert env_values(demo / "partner-sandbox.env") == first


def test_a_run_on_a_set_up_demo_costs_a_fixed_number_of_queries(
    db, demo, django_assert_num_queries
):
    setup("--quiet")

    with django_assert_num_queries(28):
        setup("--quiet")


def test_it_refuses_without_debug_and_changes_nothing(db, demo, settings):
    settings.DEBUG = False

    with pytest.raises(CommandError) as refused:
        setup()

    assert str(refused.value) == (
        "partner_demo_setup sets up the demo's sandbox partner and runs only with DEBUG on "
        "(make demo sets DEBUG=1)."
    )
    assert (Partner.objects.count(), RoutingRule.objects.count()) == (0, 0)
    assert PartnerApiKey.objects.count() == 0
    assert list(demo.iterdir()) == []


def test_the_rules_route_paid_delivery_orders_to_the_sandbox_which_takes_the_signed_push(
    db, demo, monkeypatch, store_a, warehouse, place_paid
):
    """The webhook follows PARTNER_SANDBOX_PORT, and a sandbox given the secret from the env
    file verifies the pushes: warehouse orders and Shanghai stores that do not ship parcels
    themselves go to it; a store that ships itself, or one in another city, keeps its own."""
    server = SandboxServer(Sandbox(secret="not yet known")).start()
    try:
        monkeypatch.setenv("PARTNER_SANDBOX_PORT", str(server.port))
        setup("--quiet")
        server.sandbox.secret = env_values(demo / "partner-sandbox.env")["secret"]
        partner = Partner.objects.get()
        store_a.delivery_radius_m = 3000
        store_a.save()

        from_warehouse = place_paid(warehouse)
        from_store = place_paid(store_a)
        store_a.offers_ship_from_store = True
        store_a.save()
        ships_itself = place_paid(store_a)
        store_a.offers_ship_from_store, store_a.city = False, "杭州市"
        store_a.save()
        in_hangzhou = place_paid(store_a)

        pushes = server.sandbox.snapshot()
    finally:
        server.stop()

    assert partner.webhook_url == f"http://127.0.0.1:{server.port}/pushes"
    routed = {link.order.number: link.rule.name for link in PartnerOrder.objects.all()}
    assert routed == {
        from_warehouse.number: "沙箱: 仓库发货的配送单",
        from_store.number: "沙箱: 不自配送门店的配送单",
    }
    assert ships_itself.number not in routed and in_hangzhou.number not in routed
    assert [(p["event_type"], p["order_number"]) for p in pushes["pushes"]] == [
        ("order.paid", from_warehouse.number),
        ("order.paid", from_store.number),
    ]
    assert [(c["status"], c["reason"]) for c in pushes["calls"]] == [(200, "accepted")] * 2
    assert list(PartnerPush.objects.order_by("pk").values_list("status", "attempts")) == [
        ("delivered", 1),
        ("delivered", 1),
    ]


# --- How make demo runs it ---------------------------------------------------------------------


def processes() -> dict[str, str]:
    lines = PROCFILE.read_text(encoding="utf-8").splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def test_the_demo_runs_the_partner_sandbox_with_the_secret_and_key_of_the_env_file():
    assert processes()["partner"] == (
        ". ${DATA_DIR:-var}/partner-sandbox.env && python -m partners.sandbox "
        '--port ${PARTNER_SANDBOX_PORT:-8767} --secret "$PARTNER_SANDBOX_SECRET" '
        '--api-base http://127.0.0.1:${DEMO_PORT:-8000} --api-key "$PARTNER_SANDBOX_API_KEY"'
    )


@pytest.mark.parametrize("port", [None, "8799"])
def test_the_partner_process_gets_what_the_command_wrote(db, demo, monkeypatch, port):
    """The Procfile's line run by a shell, the sandbox swapped for printf: the arguments it
    starts with are the port the webhook points at, the secret pushes are signed with, the
    demo's address and a key that calls the API."""
    if port:
        monkeypatch.setenv("PARTNER_SANDBOX_PORT", port)
    setup("--quiet")
    partner = Partner.objects.get()
    line = processes()["partner"].replace("python -m partners.sandbox", "printf '%s\\n'")
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(demo), "DEMO_PORT": "8123"}
    if port:
        env["PARTNER_SANDBOX_PORT"] = port

    args = subprocess.run(  # noqa: S603 (the Procfile's own line)
        [SHELL, "-c", line], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()

    assert args[0::2] == ["--port", "--secret", "--api-base", "--api-key"]
    assert args[1] == (port or "8767")
    assert partner.webhook_url == f"http://127.0.0.1:{args[1]}/pushes"
    assert args[3] == partner_signing_secret(partner=partner)
    assert args[5] == "http://127.0.0.1:8123"
    assert partner_key_authenticate(args[7]).partner == partner


def test_make_demo_sets_the_partner_up_after_the_seeds_and_before_the_processes():
    recipe = re.search(r"^demo: \$\(VENV\)/\.installed\n((?:\t.*\n)+)", MAKEFILE.read_text(), re.M)
    commands = [line.strip() for line in recipe.group(1).splitlines()]

    assert commands == [
        "$(BIN)/python manage.py migrate --verbosity 0",
        "$(BIN)/python manage.py seed_demo",
        "$(BIN)/python manage.py seed_demo_stock",
        "$(BIN)/python manage.py seed_demo_orders",
        "$(BIN)/python manage.py sales_rollup --rebuild",
        # The file the Procfile's line reads, by the same shell expression (a DATA_DIR set only
        # in .env reaches Django but not the shell).
        "$(BIN)/python manage.py partner_demo_setup --quiet "
        "--env-file $${DATA_DIR:-var}/partner-sandbox.env",
        "PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/honcho --procfile Procfile.demo start",
    ]
