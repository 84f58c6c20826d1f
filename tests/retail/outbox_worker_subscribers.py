"""A test-only outbox subscriber for the real-worker tests (test_outbox_worker.py).

The worker imports this module because the tests start it with
``OUTBOX_TEST_SUBSCRIBER_MODULES=tests.retail.outbox_worker_subscribers`` (retail/settings.py
hands that list to Celery's ``imports``); the test process imports it as any module. The handler
does what the event type says and appends one line per call to a journal file in
``payload["dir"]``, so a test sees every call any worker made, across kills and restarts.
"""

import time
from pathlib import Path

from retail.models import OutboxEvent
from retail.outbox import Outcome, done, retry, subscribe

NAME = "worker-test"
# Fails with a 503 payload["failures"] times, then succeeds.
FLAKY = "test.flaky"
# Hangs on its first call (the test kills the worker meanwhile), succeeds on the next.
HANG = "test.hang"
PLAIN = "test.plain"

HANG_SECONDS = 45


def journal(event: OutboxEvent) -> Path:
    return Path(event.payload["dir"]) / f"{event.event_id}.log"


def calls(event: OutboxEvent) -> list[str]:
    path = journal(event)
    return path.read_text().split() if path.exists() else []


def _note(event: OutboxEvent, what: str) -> None:
    with journal(event).open("a") as file:
        file.write(f"{what}\n")


def handle(event: OutboxEvent) -> Outcome:
    previous = calls(event)
    if event.event_type == FLAKY and len(previous) < event.payload["failures"]:
        _note(event, "503")
        return retry("HTTP 503 from the test receiver", 503)
    if event.event_type == HANG and not previous:
        _note(event, "hang")
        time.sleep(HANG_SECONDS)
    _note(event, "done")
    return done()


subscribe(NAME, event_types={FLAKY, HANG, PLAIN}, handler=handle)
