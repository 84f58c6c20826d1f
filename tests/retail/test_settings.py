"""The settings module read under different environments, each time from a fresh import."""

import importlib.util
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "retail" / "settings.py"
VARIABLES = [
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


def test_no_secret_key_in_production_refuses_to_start(load_settings):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be set"):
        load_settings(DEBUG="0")


def test_debug_runs_without_a_secret_key(load_settings):
    settings = load_settings(DEBUG="1")

    assert settings.DEBUG is True
    assert settings.SECRET_KEY.startswith("insecure-")
    assert settings.ALLOWED_HOSTS == ["127.0.0.1", "localhost"]


def test_lists_are_parsed(load_settings):
    settings = load_settings(SECRET_KEY="s3cret", ALLOWED_HOSTS="shop.example.cn,.example.cn")

    assert settings.ALLOWED_HOSTS == ["shop.example.cn", ".example.cn"]
