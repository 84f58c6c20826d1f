import uuid

import pytest
from django.conf import settings
from django.utils import translation

from tests import factories


@pytest.fixture(autouse=True)
def _isolated_cache(request, settings):
    """Each test gets an empty cache of its own. Tests marked ``real_cache`` get the configured
    backend (Redis in CI, files by default) under a key prefix no other test uses."""
    if request.node.get_closest_marker("real_cache"):
        settings.CACHES = {
            "default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
        }
    else:
        # LocMemCache instances with the same LOCATION share one store: a fresh name each test.
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": uuid.uuid4().hex,
            }
        }


@pytest.fixture(autouse=True)
def _default_language():
    """A request under /en/ leaves English active in the thread; each test starts afresh."""
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture
def english():
    """Messages in English, for tests that assert their exact text."""
    translation.activate("en")


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # Real hashers are slow on purpose; tests log in hundreds of times.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Pages are rendered without collectstatic's manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def hq_user(db):
    return factories.StaffRoleFactory(hq=True).user


@pytest.fixture
def store_a(db):
    return factories.StoreFactory(code="SH001", name="静安寺店")


@pytest.fixture
def store_b(db):
    return factories.StoreFactory(code="SH002", name="人民广场店")


@pytest.fixture
def manager_a(store_a):
    return factories.StaffRoleFactory(role="store_manager", store=store_a).user


@pytest.fixture
def clerk_a(store_a):
    return factories.StaffRoleFactory(role="clerk", store=store_a).user


@pytest.fixture
def ledger_emptied_after(transactional_db):
    """For tests against a live server on SQLite: see ``tests.live.ledger_empty_on_sqlite``."""
    from tests.live import ledger_empty_on_sqlite

    yield
    ledger_empty_on_sqlite()


@pytest.fixture
def live_settings(settings):
    # The live server speaks plain HTTP: cookies marked Secure would not come back.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
