"""The settings module read under different environments, each time from a fresh import."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "retail" / "settings.py"
VARIABLES = [
    "DJANGO_SETTINGS_MODULE",
    "DEBUG",
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "ALLOWED_HOSTS",
    "CONN_MAX_AGE",
]


@pytest.fixture
def load_settings(monkeypatch, tmp_path):
    def load(**environment: str):
        for name in VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DATA_DIR", str(tmp_path))
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        spec = importlib.util.spec_from_file_location("settings_under_test", SETTINGS_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def test_embedded_defaults_need_no_server(load_settings, tmp_path):
    settings = load_settings(SECRET_KEY="s3cret")

    database = settings.DATABASES["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == str(tmp_path / "db.sqlite3")
    assert database["OPTIONS"] == {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    assert database["ATOMIC_REQUESTS"] is False
    assert settings.CACHES["default"]["BACKEND"].endswith("FileBasedCache")
    assert settings.CELERY_BROKER_URL == "filesystem://"
    assert settings.CELERY_RESULT_BACKEND == f"file://{tmp_path / 'celery' / 'results'}"
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"] == str(
        tmp_path / "celery" / "queue"
    )
    assert (tmp_path / "celery" / "queue").is_dir()
    assert settings.DEBUG is False
    assert settings.ALLOWED_HOSTS == []


def test_language_and_time(load_settings):
    settings = load_settings(SECRET_KEY="s3cret")

    assert settings.TIME_ZONE == "Asia/Shanghai"
    assert settings.USE_TZ is True
    assert settings.LANGUAGE_CODE == "zh-hans"
    assert [code for code, _ in settings.LANGUAGES] == ["zh-hans", "en"]
    assert "django.middleware.locale.LocaleMiddleware" in settings.MIDDLEWARE


def test_database_url_selects_postgresql(load_settings):
    settings = load_settings(
        SECRET_KEY="s3cret",
        DATABASE_URL="postgres://shop:pw@db.internal:6432/retail",
        CONN_MAX_AGE="30",
    )

    database = settings.DATABASES["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["NAME"], database["USER"], database["HOST"], database["PORT"]) == (
        "retail",
        "shop",
        "db.internal",
        6432,
    )
    assert database["CONN_MAX_AGE"] == 30
    assert database["CONN_HEALTH_CHECKS"] is True
    assert "OPTIONS" not in database or "transaction_mode" not in database["OPTIONS"]


def test_redis_url_drives_cache_broker_and_results(load_settings):
    settings = load_settings(SECRET_KEY="s3cret", REDIS_URL="redis://cache.internal:6379/2")

    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert settings.CACHES["default"]["LOCATION"] == "redis://cache.internal:6379/2"
    assert settings.CELERY_BROKER_URL == "redis://cache.internal:6379/2"
    assert settings.CELERY_RESULT_BACKEND == "redis://cache.internal:6379/2"


def test_explicit_broker_wins_over_redis_url(load_settings):
    settings = load_settings(
        SECRET_KEY="s3cret",
        REDIS_URL="redis://cache.internal:6379/2",
        CELERY_BROKER_URL="amqp://guest@mq.internal//",
    )

    assert settings.CELERY_BROKER_URL == "amqp://guest@mq.internal//"
    assert settings.CELERY_RESULT_BACKEND == "redis://cache.internal:6379/2"


def test_no_secret_key_in_production_has_no_default(load_settings):
    settings = load_settings(DEBUG="0")

    assert settings.SECRET_KEY == ""


def run(*command: str, **environment: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        command,
        env={**clean, **environment},
        cwd=SETTINGS_FILE.parents[1],
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_python(code: str, **environment: str) -> subprocess.CompletedProcess:
    return run(sys.executable, "-c", code, **environment)


def test_web_process_refuses_to_start_without_a_secret_key(tmp_path):
    started = run_python("import retail.wsgi", DEBUG="0", DATA_DIR=str(tmp_path))

    assert started.returncode == 1
    assert "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off" in started.stderr


def test_worker_refuses_to_start_without_a_secret_key(tmp_path):
    celery = str(Path(sys.executable).with_name("celery"))
    started = run(celery, "--app", "retail", "worker", "--pool", "solo", DATA_DIR=str(tmp_path))

    assert started.returncode == 1
    assert "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off" in started.stderr


def test_offline_commands_run_without_a_secret_key(tmp_path):
    checked = run_python(
        "import django; django.setup(); from django.core.management import call_command; "
        "call_command('makemigrations', '--check', '--dry-run', verbosity=0)",
        DJANGO_SETTINGS_MODULE="retail.settings",
        DEBUG="0",
        DATA_DIR=str(tmp_path),
    )

    assert checked.returncode == 0, checked.stderr


def test_debug_runs_without_a_secret_key(load_settings):
    settings = load_settings(DEBUG="1")

    assert settings.DEBUG is True
    assert settings.SECRET_KEY.startswith("insecure-")
    assert settings.ALLOWED_HOSTS == ["127.0.0.1", "localhost"]


def test_lists_are_parsed(load_settings):
    settings = load_settings(SECRET_KEY="s3cret", ALLOWED_HOSTS="shop.example.cn,.example.cn")

    assert settings.ALLOWED_HOSTS == ["shop.example.cn", ".example.cn"]
