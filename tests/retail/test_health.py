from datetime import timedelta

import pytest
import time_machine
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from retail import health
from retail.celery import app as celery_app
from retail.tasks import beat_heartbeat

pytestmark = [pytest.mark.django_db, pytest.mark.real_cache]


@pytest.fixture
def no_worker(settings):
    settings.HEALTH_WORKER_PING_TIMEOUT = 0.2


def test_without_worker_or_beat_the_platform_is_degraded(client, no_worker, settings):
    response = client.get("/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert (
        body["checks"]["cache"]["backend"] == settings.CACHES["default"]["BACKEND"].rsplit(".")[-1]
    )
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "cache": True,
        "broker": True,
        "worker": False,
        "beat": False,
    }
    assert body["checks"]["worker"]["error"] == "RuntimeError: no worker answered a ping"
    assert body["checks"]["beat"]["error"] == "RuntimeError: beat has not run its heartbeat yet"


def test_a_failing_database_takes_the_platform_down(client, no_worker, monkeypatch):
    def unreachable():
        raise ConnectionError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", unreachable)

    response = client.get("/health/")

    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert response.json()["checks"]["database"] == {
        "ok": False,
        "error": "ConnectionError: connection refused",
        "ms": response.json()["checks"]["database"]["ms"],
    }


def test_beat_heartbeat_is_fresh_then_stale(no_worker, settings):
    # The clock stands still between the heartbeat and the checks: the age is exact.
    beaten = timezone.now()
    with time_machine.travel(beaten, tick=False):
        beat_heartbeat.delay()
        assert health.platform_health()["checks"]["beat"]["ok"] is True
    later = beaten + timedelta(seconds=settings.HEALTH_BEAT_MAX_AGE + 1)
    with time_machine.travel(later, tick=False):
        beat = health.platform_health()["checks"]["beat"]
    assert beat["ok"] is False
    assert (
        beat["error"]
        == f"RuntimeError: beat's last heartbeat is {settings.HEALTH_BEAT_MAX_AGE + 1} s old"
    )


def test_a_running_worker_answers_the_ping(settings):
    """A real worker on the configured broker (the filesystem by default, Redis in CI)."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.HEALTH_WORKER_PING_TIMEOUT = 3
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        worker = health.platform_health()["checks"]["worker"]

    assert worker["ok"] is True
    assert len(worker["workers"]) == 1


def test_health_is_answered_without_login_and_only_to_get(client, no_worker):
    assert client.post("/health/").status_code == 405


def test_liveness_answers_without_touching_the_database_or_the_cache(
    client, django_assert_num_queries, monkeypatch
):
    monkeypatch.setitem(health.CHECKS, "database", lambda: 1 / 0)

    with django_assert_num_queries(0):
        response = client.get("/health/live")

    assert (response.status_code, response.json()) == (200, {"status": "alive"})
    assert response["Cache-Control"].startswith("max-age=0")
