"""The outbox under a real Celery worker (a ``celery -A retail worker`` subprocess) on Redis and
PostgreSQL: retries with backoff, a worker killed in the middle of a call, a lost message.

The worker works on the test database and consumes a queue of its own (``OUTBOX_QUEUE``), so
other test runs on the same Redis cannot take its messages. Its subscriber is
tests/retail/outbox_worker_subscribers.py; leases and backoff are short (environment below).
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection, transaction

from retail.models import OutboxAttempt, OutboxDelivery, OutboxEvent
from retail.outbox import outbox_publish, outbox_sweep
from retail.outbox import services as outbox_services
from retail.outbox.delivery import LOST_ERROR
from tests.retail import outbox_worker_subscribers as receiver

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not django_settings.REDIS_URL,
        reason="needs PostgreSQL and Redis: set DATABASE_URL and REDIS_URL (.ci/run does)",
    ),
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
QUEUE = f"outbox-test-{uuid.uuid4().hex[:12]}"
SHORT = {
    "OUTBOX_LEASE_SECONDS": 2.0,
    "OUTBOX_BACKOFF_BASE_SECONDS": 0.2,
    "OUTBOX_BACKOFF_MAX_SECONDS": 1.0,
}


def database_url_for_the_worker() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"] or "")
    if db["PASSWORD"]:
        credentials += f":{quote(db['PASSWORD'])}"
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """A worker process (prefork, one child) in a process group of its own, so that a kill
    takes the child that runs the handler too."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started = 0
        self.process: subprocess.Popen | None = None
        self.environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CELERY_")},
            **{name: str(value) for name, value in SHORT.items()},
            "DATABASE_URL": database_url_for_the_worker(),
            "REDIS_URL": django_settings.REDIS_URL,
            "CONN_MAX_AGE": "0",
            "DEBUG": "0",
            "DATA_DIR": str(logs),
            "OUTBOX_QUEUE": QUEUE,
            "OUTBOX_TEST_SUBSCRIBER_MODULES": receiver.__name__,
            "PYTHONPATH": str(ROOT),
        }

    @property
    def log(self) -> Path:
        return self.logs / f"worker-{self.started}.log"

    def start(self) -> None:
        self.started += 1
        with self.log.open("w") as output:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and code
                [
                    str(Path(sys.executable).with_name("celery")),
                    *("--app", "retail", "worker", "--pool", "prefork", "--concurrency", "1"),
                    *("--queues", QUEUE, "--hostname", f"{QUEUE}-{self.started}@%h"),
                    *("--without-gossip", "--without-mingle", "--without-heartbeat"),
                    *("--loglevel", "INFO"),
                ],
                cwd=ROOT,
                env=self.environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: " ready." in self.log.read_text(), what="the worker to start", by=self)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_until(condition: Callable[[], object], *, what: str, by: Worker, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        if by.process.poll() is not None:
            break
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}; worker log:\n{by.log.read_text()[-5000:]}")


def _forget_the_queue() -> None:
    """Drop what the tests leave in Redis: the queue, and the message of the killed worker,
    which Redis would hand back to the queue after its visibility timeout."""
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    for key in client.scan_iter(match=f"*{QUEUE}*"):
        client.delete(key)
    for tag, message in client.hgetall("unacked").items():
        if QUEUE.encode() in message:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)


@pytest.fixture(scope="module")
def worker(django_db_setup, tmp_path_factory):
    running = Worker(tmp_path_factory.mktemp("outbox-worker"))
    running.start()
    yield running
    running.stop()
    _forget_the_queue()


@pytest.fixture
def live(worker, settings, tmp_path):
    """The test process sends real messages to the worker's queue, with the worker's timings."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.OUTBOX_QUEUE = QUEUE
    for name, value in SHORT.items():
        setattr(settings, name, value)
    if worker.process.poll() is not None:
        worker.start()
    return tmp_path


def publish(event_type: str, journal_dir: Path, **payload) -> OutboxEvent:
    with transaction.atomic():
        return outbox_publish(
            event_type=event_type,
            aggregate_type="test",
            aggregate_id=uuid.uuid4().hex[:12],
            payload={"dir": str(journal_dir), **payload},
        )


def delivery_of(event: OutboxEvent) -> OutboxDelivery:
    return OutboxDelivery.objects.get(event=event, subscriber=receiver.NAME)


def delivered(event: OutboxEvent, worker: Worker) -> OutboxDelivery:
    return wait_until(
        lambda: OutboxDelivery.objects.filter(event=event, state="delivered").first(),
        what=f"{event.event_type} to be delivered",
        by=worker,
    )


def attempt_rows(delivery: OutboxDelivery) -> list[tuple]:
    return list(
        OutboxAttempt.objects.filter(delivery=delivery)
        .order_by("number")
        .values_list("number", "outcome", "error", "status_code")
    )


def sweep_until_sent(delivery: OutboxDelivery, worker: Worker) -> list[list[int]]:
    """Run the sweeper, as beat would, until it sends ``delivery``; returns every sweep's ids."""
    sweeps: list[list[int]] = []

    def sweep() -> bool:
        sweeps.append(outbox_sweep())
        time.sleep(0.2)
        return delivery.pk in sweeps[-1]

    wait_until(sweep, what="the sweeper to send the delivery", by=worker)
    return sweeps


def test_a_receiver_failing_three_times_gets_the_event_exactly_once(live, worker):
    event = publish(receiver.FLAKY, live, failures=3)

    delivery = delivered(event, worker)

    assert delivery.attempts == 4
    assert attempt_rows(delivery) == [
        (1, "retry", "HTTP 503 from the test receiver", 503),
        (2, "retry", "HTTP 503 from the test receiver", 503),
        (3, "retry", "HTTP 503 from the test receiver", 503),
        (4, "done", "", None),
    ]
    assert receiver.calls(event) == ["503", "503", "503", "done"]
    # Each retry came no sooner than half its backoff ceiling (0.2 s, 0.4 s, 0.8 s).
    starts = list(
        OutboxAttempt.objects.filter(delivery=delivery)
        .order_by("number")
        .values_list("started_at", flat=True)
    )
    gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(starts)]
    assert [gap >= floor for gap, floor in zip(gaps, [0.1, 0.2, 0.4], strict=True)] == [True] * 3


def test_a_message_the_broker_lost_is_sent_by_the_sweeper(live, worker, monkeypatch):
    # Publishing queues nothing (the message is lost); the sweeper's own sends go through.
    monkeypatch.setattr(outbox_services, "delivery_queue", lambda delivery_id: None)
    event = publish(receiver.PLAIN, live)
    delivery = delivery_of(event)

    # No message, no delivery: the worker idles while the lease of the lost message runs.
    time.sleep(1)
    assert delivery_of(event).state == "pending"
    sweeps = sweep_until_sent(delivery, worker)
    delivery = delivered(event, worker)

    assert [ids for ids in sweeps if ids] == [[delivery.pk]]
    assert attempt_rows(delivery) == [(1, "done", "", None)]
    assert receiver.calls(event) == ["done"]


def test_a_worker_killed_during_a_call_loses_nothing(live, worker):
    event = publish(receiver.HANG, live)
    wait_until(lambda: receiver.calls(event) == ["hang"], what="the handler to hang", by=worker)
    delivery = delivery_of(event)
    assert (delivery.state, delivery.attempts) == ("in_flight", 1)
    assert attempt_rows(delivery) == [(1, "running", "", None)]

    worker.kill()
    worker.start()
    sweep_until_sent(delivery, worker)
    delivery = delivered(event, worker)

    assert delivery.attempts == 2
    assert attempt_rows(delivery) == [(1, "lost", LOST_ERROR, None), (2, "done", "", None)]
    assert receiver.calls(event) == ["hang", "done"]
