"""Who the partner is: ``Authorization: Bearer <key>``, a key issued in the admin.

Partner API views use ``authentication_classes = [PartnerKeyAuthentication]`` and
``permission_classes = [IsPartner]``; ``request.user`` is then a ``PartnerPrincipal``
(``request.user.partner``) and ``request.auth`` the ``PartnerApiKey``.
"""

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from partners import services
from partners.models import Partner, PartnerApiKey
from retail.errors import BusinessError

KEYWORD = b"bearer"


@dataclass(frozen=True)
class PartnerPrincipal:
    """``request.user`` of the partner API."""

    partner: Partner
    key: PartnerApiKey
    is_authenticated = True
    is_anonymous = False

    @property
    def pk(self) -> int:
        return self.partner.pk


class KeyRefused(exceptions.AuthenticationFailed):
    """401 with the service's code (``key_invalid``, ``key_revoked``, ``partner_inactive``)."""

    def __init__(self, code: str, message: str):
        super().__init__(message, code)
        self.default_code = code


class PartnerKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[PartnerPrincipal, PartnerApiKey] | None:
        words = get_authorization_header(request).split()
        if not words or words[0].lower() != KEYWORD:
            return None
        if len(words) != 2:
            raise KeyRefused("key_invalid", services.key_invalid_message())
        try:
            key = services.partner_key_authenticate(words[1].decode("latin-1"))
        except BusinessError as refused:
            raise KeyRefused(refused.code, refused.message) from None
        return PartnerPrincipal(partner=key.partner, key=key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="partner"'


class PartnerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "partners.auth.PartnerKeyAuthentication"
    name = "partnerKey"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="AUTHORIZATION",
            token_prefix="Bearer",  # noqa: S106 (a scheme)
        )


class IsPartner(BasePermission):
    def has_permission(self, request: Request, view) -> bool:
        return isinstance(request.user, PartnerPrincipal)
