"""Checks a serving process (web, Celery worker, beat) makes before it takes any work."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def require_secret_key() -> None:
    # Read from the wrapped settings: Django's own accessor raises a less helpful message.
    if not getattr(settings._wrapped, "SECRET_KEY", ""):
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (see README, 'Running against "
            "PostgreSQL and Redis')."
        )
