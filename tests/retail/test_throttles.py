"""Rate limits are counted in the cache and stay open while the cache is down: a client is let
through (a warning is logged), never answered 500."""

import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from partners import services
from partners.api.throttles import PartnerKeyThrottle
from wechat.api.throttles import ShopRateThrottle

pytestmark = pytest.mark.django_db


class DownCache:
    def get(self, *args, **kwargs):
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    set = get


@pytest.mark.parametrize("throttle", [PartnerKeyThrottle, ShopRateThrottle])
def test_every_api_rate_limit_stays_open_when_the_cache_is_down(throttle):
    assert throttle.allow_request.__qualname__ == "CacheRateThrottle.allow_request"


def test_a_partner_call_passes_while_the_cache_is_down(client, monkeypatch, caplog, settings):
    settings.PARTNER_THROTTLE_RATE = "1/min"
    partner, _secret = services.partner_create(name="达达快送", kind="fulfilment")
    raw, _key = services.partner_api_key_issue(partner=partner)
    monkeypatch.setattr(PartnerKeyThrottle, "cache", DownCache())

    with caplog.at_level(logging.WARNING, logger="retail.api.throttles"):
        answers = [
            client.get("/api/partner/v1/orders/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code
            for _ in range(3)
        ]

    assert answers == [200, 200, 200]
    assert [record.getMessage() for record in caplog.records] == [
        "rate limit partner_key not counted, the cache failed: "
        "Error 111 connecting to 127.0.0.1:6379. Connection refused."
    ] * 3
