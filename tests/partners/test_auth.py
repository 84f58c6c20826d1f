"""``Authorization: Bearer <key>`` on the partner API (partners.auth)."""

import pytest
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from partners import services
from partners.auth import IsPartner, PartnerKeyAuthentication
from partners.models import PartnerApiKey
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


class WhoAmI(APIView):
    authentication_classes = [PartnerKeyAuthentication]
    permission_classes = [IsPartner]

    def get(self, request):
        return Response({"partner": request.user.partner.name, "key": request.auth.prefix})


def call(authorization: str | None = None):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    request = APIRequestFactory().get("/api/partner/v1/whoami", **headers)
    return WhoAmI.as_view()(request)


def test_a_key_names_its_own_partner(courier, channel):
    courier_key, _ = services.partner_api_key_issue(partner=courier)
    channel_key, key = services.partner_api_key_issue(partner=channel)

    response = call(f"Bearer {channel_key}")

    assert response.status_code == 200
    assert response.data == {"partner": "美团闪购", "key": key.prefix}
    assert call(f"bearer {courier_key}").data["partner"] == "顺丰同城"


@pytest.mark.parametrize(
    ("given", "code", "message"),
    [
        ("wrong", "key_invalid", "This API key is not valid."),
        ("hash", "key_invalid", "This API key is not valid."),
        ("two words", "key_invalid", "This API key is not valid."),
        ("revoked", "key_revoked", "This API key has been revoked."),
        ("inactive", "partner_inactive", "This partner is not active."),
    ],
)
def test_refused_keys_are_401_with_a_stable_code(courier, english, given, code, message):
    raw, key = services.partner_api_key_issue(partner=courier)
    authorization = f"Bearer {raw}"
    if given == "wrong":
        authorization = "Bearer ptn_not-a-key"
    elif given == "hash":
        authorization = f"Bearer {key.key_hash}"
    elif given == "two words":
        authorization = f"Bearer {raw} extra"
    elif given == "revoked":
        services.partner_api_key_revoke(key=key)
    else:
        courier.active = False
        services.partner_save(partner=courier)

    response = call(authorization)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="partner"'
    assert response.data == {"error": {"code": code, "message": message, "fields": {}}}
    assert PartnerApiKey.objects.get(pk=key.pk).last_used_at is None


def test_no_key_is_401(english):
    response = call()

    assert response.status_code == 401
    assert response.data["error"]["code"] == "not_authenticated"


def test_another_scheme_is_not_a_partner(english):
    response = call("Basic dXNlcjpwYXNz")

    assert response.status_code == 401
    assert response.data["error"]["code"] == "not_authenticated"


def test_a_staff_user_is_not_a_partner(english):
    request = APIRequestFactory().get("/api/partner/v1/whoami")
    force_authenticate(request, user=UserFactory())

    response = WhoAmI.as_view()(request)

    assert response.status_code == 403
    assert response.data["error"]["code"] == "permission_denied"


def test_authenticating_costs_two_queries_then_one(courier, django_assert_num_queries):
    raw, _ = services.partner_api_key_issue(partner=courier)

    with django_assert_num_queries(2):
        assert call(f"Bearer {raw}").status_code == 200
    with django_assert_num_queries(1):
        assert call(f"Bearer {raw}").status_code == 200
