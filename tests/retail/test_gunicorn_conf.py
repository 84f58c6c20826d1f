"""retail/gunicorn_conf.py: the web process's settings (docs/performance.md, "Tuning"), their
environment overrides, and that gunicorn itself accepts the file."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def load(monkeypatch, **environ):
    for name in ("WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT", "GUNICORN_BIND"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    import retail.gunicorn_conf as conf

    return importlib.reload(conf)


def test_threads_in_one_process_per_cpu_with_persistent_keep_alive(monkeypatch):
    monkeypatch.setattr("multiprocessing.cpu_count", lambda: 2)
    conf = load(monkeypatch)

    assert (conf.worker_class, conf.workers, conf.threads) == ("gthread", 2, 4)
    assert (conf.bind, conf.timeout, conf.keepalive) == ("0.0.0.0:8000", 30, 75)
    assert (conf.max_requests, conf.max_requests_jitter) == (5000, 500)


def test_the_environment_overrides_the_shape(monkeypatch):
    conf = load(
        monkeypatch, WEB_CONCURRENCY="3", GUNICORN_THREADS="8", GUNICORN_BIND="127.0.0.1:9000"
    )

    assert (conf.workers, conf.threads, conf.bind) == (3, 8, "127.0.0.1:9000")


@pytest.mark.skipif(not GUNICORN.exists(), reason=f"gunicorn is not installed at {GUNICORN}")
def test_gunicorn_accepts_the_file():
    checked = subprocess.run(  # noqa: S603 - the venv's gunicorn on our own settings
        [str(GUNICORN), "--check-config", "--config", "python:retail.gunicorn_conf",
         "retail.wsgi:application"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "DEBUG": "1"},
    )  # fmt: skip

    assert (checked.returncode, checked.stderr) == (0, "")
