"""Calls per API key (``PARTNER_THROTTLE_RATE``, read on every request), counted in the cache:
Redis when ``REDIS_URL`` is set, so every web process counts together. Over the rate: 429
``throttled`` with ``Retry-After``."""

from django.conf import settings
from rest_framework.request import Request

from retail.api.throttles import CacheRateThrottle


class PartnerKeyThrottle(CacheRateThrottle):
    scope = "partner_key"

    def get_rate(self) -> str | None:
        return settings.PARTNER_THROTTLE_RATE

    def get_cache_key(self, request: Request, view) -> str | None:
        if request.auth is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
