"""The shop API's login, tokens, logout, phone binding and rate limits. Login and phone codes
go to the WeChat sandbox over a real socket (tests/wechat/conftest.py)."""

import hashlib
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIRequestFactory

from members.models import Identity, JoinedChannel, Member, MemberMerge, PointsEntry
from members.services.identity import member_bind_phone, member_signup_at_counter
from members.services.points import points_apply
from tests.factories import MemberFactory
from tests.wechat.conftest import CHEN, LIN, RISKY, WANG, ZHAO
from wechat import client as wechat
from wechat.api.auth import Shopper
from wechat.api.throttles import CheckoutIPThrottle, CheckoutShopperThrottle
from wechat.models import ShopperToken
from wechat.sandbox import SANDBOX_APP_ID
from wechat.services.auth import token_issue

LOGIN = "/api/shop/v1/login/"
LOGOUT = "/api/shop/v1/logout/"
PHONE = "/api/shop/v1/me/phone/"
# Token checks aim at binding with an empty body: a good token gets through to a 400 there,
# with no side effect.
WX_LOGIN = "/sns/jscode2session"
WX_PHONE = "/wxa/business/getuserphonenumber"


class ShopClient:
    """The mini-program's side: JSON, English messages, the bearer token once logged in."""

    def __init__(self, client):
        self.client = client
        self.token = None

    def _headers(self, token):
        headers = {"HTTP_ACCEPT_LANGUAGE": "en"}
        token = token or self.token
        if token:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return headers

    def post(self, path, body=None, *, token=None, **extra):
        return self.client.post(
            path, body or {}, content_type="application/json", **self._headers(token), **extra
        )

    def login(self, wx, openid):
        response = self.post(LOGIN, {"code": wx.js_code(openid)})
        assert response.status_code == 200, response.content
        self.token = response.json()["token"]
        return response.json()


@pytest.fixture
def shop(client):
    return ShopClient(client)


def counts():
    return (Member.objects.count(), Identity.objects.count(), ShopperToken.objects.count())


# --- login ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_login_creates_the_member_and_returns_a_token_stored_only_as_its_hash(shop, wx):
    moment = timezone.now()
    with time_machine.travel(moment, tick=False):
        body = shop.login(wx, LIN)

    member = Member.objects.get()
    token = ShopperToken.objects.get()
    assert body == {
        "token": body["token"],
        "expires_at": timezone.localtime(moment + timedelta(days=30)).isoformat(),
        "member": {
            "id": member.pk,
            "name": "",
            "mobile": "",
            "has_mobile": False,
            "tier": None,
            "points_balance": 0,
            "referral_code": member.referral_code,
            "home_store_id": None,
            "joined_channel": "mini_shop",
        },
    }
    assert len(body["token"]) == 43  # 32 random bytes, URL-safe base64
    assert token.key_hash == hashlib.sha256(body["token"].encode()).hexdigest()
    assert body["token"] not in (token.key_hash, token.session_key)
    assert (token.member_id, token.expires_at, token.last_used_at) == (
        member.pk,
        moment + timedelta(days=30),
        moment,
    )
    assert len(token.session_key) == 24
    assert member.joined_channel == JoinedChannel.MINI_SHOP
    identity = Identity.objects.get()
    assert (identity.member_id, identity.app_id, identity.openid, identity.unionid) == (
        member.pk,
        SANDBOX_APP_ID,
        LIN,
        "uSbx_LinXiaomei0000000000001",
    )
    assert [call["path"] for call in wx.calls()] == [WX_LOGIN]


@pytest.mark.django_db
def test_logging_in_again_finds_the_same_member_with_a_second_token(shop, wx, settings):
    settings.SHOP_TOKEN_DAYS = 7
    first = shop.login(wx, CHEN)

    second = shop.login(wx, CHEN)

    assert second["member"]["id"] == first["member"]["id"]
    assert second["token"] != first["token"]
    assert counts() == (1, 1, 2)
    token = ShopperToken.objects.order_by("pk").last()
    assert token.expires_at - token.created_at == pytest.approx(
        timedelta(days=7), abs=timedelta(seconds=1)
    )


@pytest.mark.django_db
def test_login_sweeps_away_the_members_expired_tokens(shop, wx):
    shop.login(wx, WANG)
    member = Member.objects.get()
    ShopperToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    shop.login(wx, WANG)

    assert ShopperToken.objects.filter(member=member).count() == 1


def used_code(wx, openid):
    """A login code WeChat has already exchanged once."""
    code = wx.js_code(openid)
    assert "openid" in wechat.code_to_session(code)
    return code


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("make_code", "status", "error_code", "errmsg", "message"),
    [
        (
            lambda wx: "0" * 32,
            400,
            "wechat_code_invalid",
            "invalid code",
            "WeChat did not accept this code (WeChat says: invalid code).",
        ),
        (
            lambda wx: used_code(wx, ZHAO),
            400,
            "wechat_code_used",
            "code been used",
            "This WeChat code has already been used (WeChat says: code been used).",
        ),
        (
            lambda wx: wx.js_code(RISKY),
            403,
            "wechat_user_refused",
            "high risk user",
            "WeChat refused this login (WeChat says: high risk user).",
        ),
    ],
    ids=["invalid", "used", "risky"],
)
def test_a_code_wechat_refuses_is_a_clear_error_with_wechats_reason(
    shop, wx, make_code, status, error_code, errmsg, message
):
    code = make_code(wx)

    response = shop.post(LOGIN, {"code": code})

    assert response.status_code == status
    assert response.json() == {
        "error": {"code": error_code, "message": message, "fields": {"code": [errmsg]}}
    }
    assert counts() == (0, 0, 0)
    assert wx.calls(WX_LOGIN)[-1]["answer"]["errmsg"] == errmsg


@pytest.mark.django_db
def test_the_refusal_reads_in_chinese_by_default_with_wechats_own_words(client, wx):
    response = client.post(LOGIN, {"code": "0" * 32}, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "wechat_code_invalid",
        "message": "微信未接受该授权码（微信返回：invalid code）。",
        "fields": {"code": ["invalid code"]},
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fault",
    [{"mode": "busy", "times": 5}, {"mode": "errcode", "errcode": 45011}],
    ids=["busy", "rate-limited"],
)
def test_wechat_unavailable_is_a_503_and_creates_nothing(shop, wx, fault):
    wx.fault(path=WX_LOGIN, **fault)

    response = shop.post(LOGIN, {"code": wx.js_code(LIN)})

    assert response.status_code == 503
    assert response.json() == {
        "error": {
            "code": "wechat_unavailable",
            "message": "WeChat is not answering just now: try again in a moment.",
            "fields": {},
        }
    }
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{}, {"code": ""}, {"code": "x" * 129}])
def test_a_login_without_a_usable_code_never_reaches_wechat(shop, wx, body):
    response = shop.post(LOGIN, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert list(response.json()["error"]["fields"]) == ["code"]
    assert wx.calls() == []
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_an_erased_member_cannot_log_in(shop, wx):
    shop.login(wx, LIN)
    Member.objects.update(erased_at=timezone.now())
    ShopperToken.objects.all().delete()

    response = shop.post(LOGIN, {"code": wx.js_code(LIN)})

    assert response.status_code == 410
    assert response.json()["error"]["code"] == "member_erased"
    assert ShopperToken.objects.count() == 0


# --- tokens and logout ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_shopper_endpoint_without_a_token_is_401_with_a_bearer_challenge(shop):
    response = shop.post(LOGOUT)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="shop"'
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header", ["Bearer nonsense", "Bearer", "Bearer two words", "bearer nonsense"]
)
def test_an_unknown_or_malformed_token_is_token_invalid(client, header):
    member = MemberFactory()
    token_issue(member=member)

    response = client.post(LOGOUT, HTTP_AUTHORIZATION=header, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "token_invalid",
            "message": "This login token is not valid: log in again.",
            "fields": {},
        }
    }
    assert ShopperToken.objects.count() == 1


@pytest.mark.django_db
def test_an_expired_token_is_token_expired_and_stays_until_the_next_login(shop):
    raw, token = token_issue(member=MemberFactory())

    with time_machine.travel(token.expires_at, tick=False):
        response = shop.post(LOGOUT, token=raw)

    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "token_expired",
        "message": "Your login has expired: log in again.",
        "fields": {},
    }
    assert ShopperToken.objects.filter(pk=token.pk).exists()


@pytest.mark.django_db
def test_a_token_of_an_erased_member_is_token_invalid(shop):
    member = MemberFactory()
    raw, _token = token_issue(member=member)
    Member.objects.filter(pk=member.pk).update(erased_at=timezone.now())

    response = shop.post(PHONE, {}, token=raw)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_invalid"


@pytest.mark.django_db
def test_last_used_is_written_at_most_once_an_hour(shop):
    moment = timezone.now()
    with time_machine.travel(moment, tick=False):
        raw, token = token_issue(member=MemberFactory())

    with time_machine.travel(moment + timedelta(minutes=59), tick=False):
        assert shop.post(PHONE, {}, token=raw).status_code == 400
    token.refresh_from_db()
    assert token.last_used_at == moment

    with time_machine.travel(moment + timedelta(minutes=61), tick=False):
        assert shop.post(PHONE, {}, token=raw).status_code == 400
    token.refresh_from_db()
    assert token.last_used_at == moment + timedelta(minutes=61)


@pytest.mark.django_db
def test_logout_ends_this_token_only(shop, wx):
    shop.login(wx, LIN)
    other = shop.login(wx, LIN)["token"]
    first = ShopperToken.objects.order_by("pk").first()

    response = shop.post(LOGOUT, token=other)

    assert response.status_code == 204
    assert list(ShopperToken.objects.values_list("pk", flat=True)) == [first.pk]
    assert shop.post(LOGOUT, token=other).json()["error"]["code"] == "token_invalid"


# --- binding the phone ----------------------------------------------------------------------


@pytest.mark.django_db
def test_binding_a_new_number_gives_the_member_her_mobile(shop, wx):
    member_id = shop.login(wx, CHEN)["member"]["id"]

    response = shop.post(PHONE, {"code": wx.phone_code(CHEN)})

    assert response.status_code == 200
    assert response.json()["merged"] is False
    assert response.json()["member"]["id"] == member_id
    assert response.json()["member"]["mobile"] == "137****7003"
    assert response.json()["member"]["has_mobile"] is True
    member = Member.objects.get(pk=member_id)
    assert member.mobile == "13700137003"
    assert Identity.objects.filter(member=member, kind="phone", phone="13700137003").exists()
    assert [call["path"] for call in wx.calls()][-1] == WX_PHONE


@pytest.mark.django_db
def test_binding_a_counter_members_number_merges_into_her_and_the_token_keeps_working(
    shop, wx, store_a
):
    # Given Lin signed up at the counter with her phone and has points there ...
    counter = member_signup_at_counter(
        mobile="13800138001", name="林小美", store=store_a, actor=None
    )
    points_apply(member=counter, points=300, reason="adjust", reference="welcome")
    # ... then logged in to the mini-shop twice (a new member, two tokens).
    first_token = shop.login(wx, LIN)["token"]
    online_id = shop.login(wx, LIN)["member"]["id"]
    assert online_id != counter.pk

    response = shop.post(PHONE, {"code": wx.phone_code(LIN)})

    assert response.status_code == 200
    assert response.json() == {
        "merged": True,
        "member": {
            "id": counter.pk,
            "name": "林小美",
            "mobile": "138****8001",
            "has_mobile": True,
            "tier": None,
            "points_balance": 300,
            "referral_code": counter.referral_code,
            "home_store_id": store_a.pk,
            "joined_channel": "counter",
        },
    }
    assert Member.objects.get(pk=online_id).merged_into_id == counter.pk
    assert list(MemberMerge.objects.values_list("source_id", "target_id")) == [
        (online_id, counter.pk)
    ]
    assert set(ShopperToken.objects.values_list("member_id", flat=True)) == {counter.pk}
    # Both tokens now act as the counter member: binding again changes nothing.
    again = shop.post(PHONE, {"code": wx.phone_code(LIN)}, token=first_token)
    assert again.status_code == 200
    assert (again.json()["member"]["id"], again.json()["merged"]) == (counter.pk, False)
    # A later login with the WeChat identity finds the survivor.
    assert shop.login(wx, LIN)["member"]["id"] == counter.pk
    assert PointsEntry.objects.filter(member=counter).count() == 1


@pytest.mark.django_db
def test_a_token_whose_member_was_merged_elsewhere_moves_to_the_survivor(shop, store_a):
    online = MemberFactory(mobile=None, name="")
    raw, token = token_issue(member=online)
    counter = member_signup_at_counter(mobile="13812345678", store=store_a, actor=None)
    member_bind_phone(member=online, mobile="13812345678")  # e.g. bound through the H5 shop

    response = shop.post(PHONE, {}, token=raw)

    assert response.status_code == 400  # authenticated, then the empty input refused
    token.refresh_from_db()
    assert token.member_id == counter.pk


@pytest.mark.django_db
def test_binding_another_number_than_the_members_is_refused_and_changes_nothing(shop, wx):
    shop.login(wx, LIN)
    assert shop.post(PHONE, {"code": wx.phone_code(LIN)}).status_code == 200

    response = shop.post(PHONE, {"code": wx.phone_code(WANG)})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "mobile_already_bound"
    assert list(Member.objects.values_list("mobile", flat=True)) == ["13800138001"]
    assert Identity.objects.filter(kind="phone").count() == 1


@pytest.mark.django_db
def test_a_used_phone_code_is_refused_with_wechats_reason(shop, wx):
    shop.login(wx, CHEN)
    code = wx.phone_code(CHEN)
    assert wechat.phone_number(code)["purePhoneNumber"] == "13700137003"

    response = shop.post(PHONE, {"code": code})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "wechat_code_invalid",
        "message": "WeChat did not accept this code (WeChat says: invalid code).",
        "fields": {"code": ["invalid code"]},
    }
    assert list(Member.objects.values_list("mobile", flat=True)) == [None]


@pytest.mark.django_db
def test_binding_while_wechat_times_out_is_a_503_and_binds_nothing(shop, wx, settings):
    settings.WECHAT_TIMEOUT_SECONDS = 0.3
    shop.login(wx, CHEN)
    wx.fault(path=WX_PHONE, mode="timeout", seconds=1)

    response = shop.post(PHONE, {"code": wx.phone_code(CHEN)})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "wechat_unavailable"
    assert list(Member.objects.values_list("mobile", flat=True)) == [None]


@pytest.mark.django_db
def test_binding_needs_a_login(shop, wx):
    response = shop.post(PHONE, {"code": wx.phone_code(CHEN)})

    assert response.status_code == 401
    assert wx.calls(WX_PHONE) == []


# --- rate limits ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_logins_from_one_ip_are_limited_before_wechat_is_asked(shop, wx, settings):
    settings.SHOP_THROTTLE_RATES = {**settings.SHOP_THROTTLE_RATES, "shop_login_ip": "2/min"}
    shop.login(wx, LIN)
    shop.login(wx, WANG)

    response = shop.post(LOGIN, {"code": wx.js_code(CHEN)})
    elsewhere = shop.post(LOGIN, {"code": wx.js_code(CHEN)}, REMOTE_ADDR="10.0.0.9")

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert response.json()["error"]["message"].startswith("Request was throttled.")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert elsewhere.status_code == 200
    assert len(wx.calls(WX_LOGIN)) == 3


@pytest.mark.django_db
def test_logins_of_one_wechat_user_are_limited(shop, wx, settings):
    settings.SHOP_THROTTLE_RATES = {**settings.SHOP_THROTTLE_RATES, "shop_login_shopper": "1/min"}
    shop.login(wx, LIN)

    response = shop.post(LOGIN, {"code": wx.js_code(LIN)})

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert ShopperToken.objects.count() == 1
    assert shop.post(LOGIN, {"code": wx.js_code(WANG)}).status_code == 200


@pytest.mark.django_db
def test_the_rate_window_passes(shop, wx, settings):
    settings.SHOP_THROTTLE_RATES = {**settings.SHOP_THROTTLE_RATES, "shop_login_ip": "1/min"}
    moment = timezone.now()
    with time_machine.travel(moment, tick=False):
        shop.login(wx, LIN)
        assert shop.post(LOGIN, {"code": wx.js_code(LIN)}).status_code == 429

    with time_machine.travel(moment + timedelta(seconds=61), tick=False):
        assert shop.post(LOGIN, {"code": wx.js_code(LIN)}).status_code == 200


def _checkout_request(ip="10.1.1.1", member=None):
    request = APIRequestFactory().post("/api/shop/v1/checkout/", REMOTE_ADDR=ip)
    request.user = AnonymousUser() if member is None else Shopper(member=member, token=None)
    return request


@pytest.mark.django_db
@pytest.mark.real_cache
def test_checkout_throttles_count_per_shopper_and_per_ip_in_the_configured_cache(settings):
    settings.SHOP_THROTTLE_RATES = {
        **settings.SHOP_THROTTLE_RATES,
        "shop_checkout_shopper": "2/min",
        "shop_checkout_ip": "3/min",
    }
    ann, bob = MemberFactory(), MemberFactory()

    def allowed(throttle_class, request):
        return throttle_class().allow_request(request, None)

    shopper = [allowed(CheckoutShopperThrottle, _checkout_request(member=ann)) for _ in range(3)]
    other = allowed(CheckoutShopperThrottle, _checkout_request(member=bob))
    anonymous = allowed(CheckoutShopperThrottle, _checkout_request())
    by_ip = [allowed(CheckoutIPThrottle, _checkout_request(ip="10.2.2.2")) for _ in range(4)]

    assert shopper == [True, True, False]
    assert other is True
    assert anonymous is True  # left to the IP throttle
    assert by_ip == [True, True, True, False]
    assert allowed(CheckoutIPThrottle, _checkout_request(ip="10.3.3.3")) is True
    assert len(cache.get(f"throttle_shop_checkout_shopper_{ann.pk}")) == 2
