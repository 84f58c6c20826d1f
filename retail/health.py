"""Reachability of what the platform needs: database, cache, broker, workers and beat.

The database, the cache and the broker are needed to take an order; without one of them the
platform is ``down``. Workers and beat only carry work after the fact (the outbox catches up), so
without them it is ``degraded``.
"""

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from retail.celery import app as celery_app

BEAT_HEARTBEAT_KEY = "health:beat-heartbeat"
_CACHE_PROBE_KEY = "health:probe"

CRITICAL = ("database", "cache", "broker")


def beat_heartbeat_record(*, at: datetime | None = None) -> None:
    cache.set(BEAT_HEARTBEAT_KEY, (at or timezone.now()).isoformat(), timeout=None)


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"backend": connection.vendor}


def _check_cache() -> dict[str, Any]:
    token = str(time.monotonic_ns())
    cache.set(_CACHE_PROBE_KEY, token, timeout=30)
    if cache.get(_CACHE_PROBE_KEY) != token:
        raise RuntimeError("the cache did not return what was written")
    return {"backend": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]}


def _check_broker() -> dict[str, Any]:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return {"transport": conn.transport_cls}


def _check_worker() -> dict[str, Any]:
    replies = celery_app.control.ping(timeout=settings.HEALTH_WORKER_PING_TIMEOUT, limit=1)
    if not replies:
        raise RuntimeError("no worker answered a ping")
    return {"workers": sorted(name for reply in replies for name in reply)}


def _check_beat() -> dict[str, Any]:
    seen = cache.get(BEAT_HEARTBEAT_KEY)
    if seen is None:
        raise RuntimeError("beat has not run its heartbeat yet")
    age = (timezone.now() - datetime.fromisoformat(seen)).total_seconds()
    if age > settings.HEALTH_BEAT_MAX_AGE:
        raise RuntimeError(f"beat's last heartbeat is {age:.0f} s old")
    return {"last_heartbeat": seen, "age_s": round(age)}


CHECKS: dict[str, Callable[[], dict[str, Any]]] = {
    "database": _check_database,
    "cache": _check_cache,
    "broker": _check_broker,
    "worker": _check_worker,
    "beat": _check_beat,
}


def platform_health() -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            details = check()
        except Exception as exc:  # any failure is what this reports
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        else:
            results[name] = {"ok": True, **details}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)

    if not all(results[name]["ok"] for name in CRITICAL):
        state = "down"
    elif not all(result["ok"] for result in results.values()):
        state = "degraded"
    else:
        state = "ok"
    return {"status": state, "checks": results}
