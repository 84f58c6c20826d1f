"""What tests against a live server share: emptying the append-only ledger after a
transactional test on SQLite, plain-HTTP cookies, and headless Chromium.

The fixtures ``ledger_emptied_after`` and ``live_settings`` are in ``tests/conftest.py``; a
module asks for them with ``pytest.mark.usefixtures("ledger_emptied_after")``.
"""

import shutil
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(django_settings.BASE_DIR) / "var" / "test-artifacts"
LEDGER_TRIGGER = "inventory_stockmovement_no_delete"

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
    reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)",
)


def ledger_empty_on_sqlite() -> None:
    """On SQLite the database is emptied row by row after a transactional test, which the
    stock ledger's append-only trigger refuses: the ledger goes first, its trigger lifted for
    that one statement (PostgreSQL truncates). The ``ledger_emptied_after`` fixture of
    ``tests/conftest.py`` calls this."""
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = %s",
            [LEDGER_TRIGGER],
        )
        (create,) = cursor.fetchone()
        cursor.execute(f"DROP TRIGGER {LEDGER_TRIGGER}")
        cursor.execute("DELETE FROM inventory_stockmovement")
        cursor.execute(create)


def launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


def screenshot(page, name: str) -> None:
    """Keep a full-page screenshot as a test artifact (``var/test-artifacts/<name>.png``)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
