"""Rate limits on the shopper API's costly doors: login (each one calls WeChat) and checkout
(each one reserves stock). Counted in the Django cache, which is Redis when ``REDIS_URL`` is set
and so shared by every web process. Over the limit: 429, code ``throttled``, ``Retry-After``.

The rates are ``SHOP_THROTTLE_RATES[scope]`` ("10/min"), read on every request so that tests
and operators can change them. Checkout views use ``CheckoutShopperThrottle`` and
``CheckoutIPThrottle``; login uses ``LoginIPThrottle`` before WeChat is called and
``login_shopper_throttle`` once WeChat has said who the shopper is.
"""

from django.conf import settings
from rest_framework.exceptions import Throttled
from rest_framework.request import Request

from retail.api.throttles import CacheRateThrottle


class ShopRateThrottle(CacheRateThrottle):
    def get_rate(self) -> str | None:
        return settings.SHOP_THROTTLE_RATES.get(self.scope)


class IPThrottle(ShopRateThrottle):
    def get_cache_key(self, request: Request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ShopperThrottle(ShopRateThrottle):
    """Per member; a request without a shopper is left to the IP throttle."""

    def get_cache_key(self, request: Request, view) -> str | None:
        member = getattr(request.user, "member", None)
        if member is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": member.pk}


class LoginIPThrottle(IPThrottle):
    scope = "shop_login_ip"


class CheckoutIPThrottle(IPThrottle):
    scope = "shop_checkout_ip"


class CheckoutShopperThrottle(ShopperThrottle):
    scope = "shop_checkout_shopper"


class _KeyThrottle(ShopRateThrottle):
    """A throttle on an identity known only inside the view (the openid WeChat answered)."""

    def __init__(self, scope: str, ident: str):
        self.scope = scope
        self.ident = ident
        super().__init__()

    def get_cache_key(self, request: Request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.ident}


def login_shopper_throttle(request: Request, *, openid: str) -> None:
    """Raise ``Throttled`` when this WeChat user has logged in too often."""
    throttle = _KeyThrottle("shop_login_shopper", openid)
    if not throttle.allow_request(request, None):
        raise Throttled(wait=throttle.wait())
