"""Who the shopper is: bearer-token authentication, login with WeChat, logout, binding the
phone number.

Other shopper views use ``authentication_classes = [ShopperTokenAuthentication]`` and
``permission_classes = [IsShopper]`` (``ShopperAPIView`` sets both); ``request.user`` is then a
``Shopper``: ``request.user.member`` is the member (the survivor, if she was merged) and
``request.auth`` the ``ShopperToken``.
"""

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from members.models import Member
from retail.errors import BusinessError
from wechat.api.serializers import AUTH_ERRORS, MemberSummaryOutput, error_responses
from wechat.api.throttles import LoginIPThrottle, login_shopper_throttle
from wechat.models import ShopperToken
from wechat.services import auth as services

TOKEN_KEYWORD = b"bearer"


@dataclass(frozen=True)
class Shopper:
    """``request.user`` of the shopper API."""

    member: Member
    token: ShopperToken
    is_authenticated = True
    is_anonymous = False

    @property
    def pk(self) -> int:
        return self.member.pk


class TokenRefused(exceptions.AuthenticationFailed):
    """401 with the service's code (``token_invalid``, ``token_expired``)."""

    def __init__(self, code: str, message: str):
        super().__init__(message, code)
        self.default_code = code


class ShopperTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <token>``, the token issued at login."""

    def authenticate(self, request: Request) -> tuple[Shopper, ShopperToken] | None:
        words = get_authorization_header(request).split()
        if not words or words[0].lower() != TOKEN_KEYWORD:
            return None
        if len(words) != 2:
            raise TokenRefused("token_invalid", services.token_invalid_message())
        try:
            token = services.token_authenticate(words[1].decode("latin-1"))
        except BusinessError as refused:
            raise TokenRefused(refused.code, refused.message) from None
        return Shopper(member=token.member, token=token), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="shop"'


class ShopperTokenScheme(OpenApiAuthenticationExtension):
    target_class = "wechat.api.auth.ShopperTokenAuthentication"
    name = "shopperToken"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="AUTHORIZATION",
            token_prefix="Bearer",  # noqa: S106 (a scheme)
        )


class IsShopper(BasePermission):
    def has_permission(self, request: Request, view) -> bool:
        return isinstance(request.user, Shopper)


class ShopperAPIView(APIView):
    """Base of the views a logged-in shopper calls."""

    authentication_classes = [ShopperTokenAuthentication]
    permission_classes = [IsShopper]


class PublicAPIView(APIView):
    """Base of the views anyone may call (a token, when sent, must still be valid)."""

    authentication_classes = [ShopperTokenAuthentication]
    permission_classes: list = []


# --- Login and logout -----------------------------------------------------------------------


class CodeInput(serializers.Serializer):
    code = serializers.CharField(max_length=128, help_text="The one-time code from WeChat.")


class LoginOutput(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Bearer <token>`.")
    expires_at = serializers.DateTimeField()
    member = MemberSummaryOutput()


class LoginView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes = [LoginIPThrottle]

    @extend_schema(
        operation_id="shop_login",
        tags=["shop: account"],
        summary="Log in with wx.login()'s code",
        description=(
            "Exchanges the mini-program's one-time login code with WeChat, finds or creates the "
            "member (by openid, then unionid) and issues a token, shown only in this answer. "
            "WeChat's own reason is in the message of a refused code."
        ),
        request=CodeInput,
        responses={
            200: LoginOutput,
            **error_responses(
                {
                    400: ["validation_error", "wechat_code_invalid", "wechat_code_used"],
                    403: ["wechat_user_refused"],
                    410: ["member_erased"],
                    429: ["throttled"],
                    503: ["wechat_unavailable"],
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        payload = CodeInput(data=request.data)
        payload.is_valid(raise_exception=True)
        session = services.wechat_session_for_code(code=payload.validated_data["code"])
        login_shopper_throttle(request, openid=session.get("openid", ""))
        login = services.shopper_login_wechat(session=session)
        output = {"token": login.token, "expires_at": login.expires_at, "member": login.member}
        return Response(LoginOutput(output).data)


class LogoutView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_logout",
        tags=["shop: account"],
        summary="Log out: this token stops working",
        request=None,
        responses={204: None, **error_responses(AUTH_ERRORS)},
    )
    def post(self, request: Request) -> Response:
        services.token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Phone ----------------------------------------------------------------------------------


class BindPhoneOutput(serializers.Serializer):
    member = MemberSummaryOutput()
    merged = serializers.BooleanField(
        help_text="The number belonged to a member who signed up at a counter: the shopper is "
        "now that member (her token keeps working)."
    )


class BindPhoneView(ShopperAPIView):
    @extend_schema(
        operation_id="shop_bind_phone",
        tags=["shop: account"],
        summary="Bind the phone number from the phone button's code",
        description=(
            "Asks WeChat for the verified number behind the one-time code and binds it. When a "
            "member who signed up at a counter already holds it, the shopper's member merges "
            "into hers (points, coupons, orders move) and the answer is that member."
        ),
        request=CodeInput,
        responses={
            200: BindPhoneOutput,
            **error_responses(
                {
                    400: ["validation_error", "wechat_code_invalid", "wechat_code_used"],
                    409: ["mobile_already_bound"],
                    410: ["member_erased"],
                    503: ["wechat_unavailable"],
                },
                AUTH_ERRORS,
            ),
        },
    )
    def post(self, request: Request) -> Response:
        payload = CodeInput(data=request.data)
        payload.is_valid(raise_exception=True)
        before = request.user.member.pk
        member = services.shopper_bind_phone(
            token=request.auth, code=payload.validated_data["code"]
        )
        output = {"member": member, "merged": member.pk != before}
        return Response(BindPhoneOutput(output).data)
