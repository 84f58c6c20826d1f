"""The base of every API rate limit: counted in the cache, and open when the cache is not.

A rate limit protects the platform from a client; it must not take the platform down with the
cache. When the cache cannot be reached (Redis restarting), a request is let through and a
warning logged: for those seconds nothing is counted, and /health/ reports the cache down.
"""

import logging

from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


class CacheRateThrottle(SimpleRateThrottle):
    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except (RedisError, OSError) as trouble:
            logger.warning("rate limit %s not counted, the cache failed: %s", self.scope, trouble)
            return True
