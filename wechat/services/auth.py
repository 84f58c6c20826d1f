"""Shopper login tokens: issued at WeChat login, only their SHA-256 kept, good for
``SHOP_TOKEN_DAYS``.

A token is shown to the shopper once, at login. It names a member; when that member is merged
into another (she bound the phone number a counter member holds), her tokens move to the
survivor, so the shopper stays logged in as the member she now is.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import Member
from members.services.identity import member_bind_phone, member_login_wechat
from retail.errors import BusinessError
from wechat import client
from wechat.client import WeChatError
from wechat.models import ShopperToken

# WeChat's codes for a one-time code it will not take.
CODE_INVALID = 40029
CODE_USED = 40163
CODE_RISKY = 40226
# ``last_used_at`` is written at most this often: a request costs no write.
LAST_USED_RESOLUTION = timedelta(hours=1)


@dataclass(frozen=True)
class Login:
    token: str
    expires_at: datetime
    member: Member


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_issue(*, member: Member, session_key: str = "") -> tuple[str, ShopperToken]:
    """A new token for ``member``: the raw value (shown once) and its row."""
    raw = secrets.token_urlsafe(32)
    now = timezone.now()
    token = ShopperToken.objects.create(
        member=member,
        key_hash=token_hash(raw),
        session_key=session_key,
        expires_at=now + timedelta(days=settings.SHOP_TOKEN_DAYS),
        last_used_at=now,
    )
    return raw, token


def token_authenticate(raw: str) -> ShopperToken:
    """The live token with this raw value, its member the one the shopper now is (a merged
    member's tokens move to the survivor here). ``token_invalid`` / ``token_expired`` (401)."""
    token = (
        ShopperToken.objects.select_related("member", "member__tier")
        .filter(key_hash=token_hash(raw))
        .first()
    )
    if token is None:
        raise _token_invalid()
    now = timezone.now()
    if token.expires_at <= now:
        raise BusinessError(
            "token_expired", _("Your login has expired: log in again."), status_code=401
        )
    if token.member.merged_into_id is not None:
        survivor = _survivor(token.member)
        ShopperToken.objects.filter(member=token.member).update(member=survivor)
        token.member = survivor
    if token.member.erased_at is not None:
        raise _token_invalid()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ShopperToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def token_invalid_message() -> str:
    return _("This login token is not valid: log in again.")


def _token_invalid() -> BusinessError:
    return BusinessError("token_invalid", token_invalid_message(), status_code=401)


def _survivor(member: Member) -> Member:
    while member.merged_into_id is not None:
        member = Member.objects.select_related("tier").get(pk=member.merged_into_id)
    return member


def token_revoke(*, token: ShopperToken) -> None:
    ShopperToken.objects.filter(pk=token.pk).delete()


def wechat_error(error: WeChatError, *, field: str) -> BusinessError:
    """What the shopper is told when WeChat refuses a one-time code or cannot be reached."""
    if error.retryable:
        return BusinessError(
            "wechat_unavailable",
            _("WeChat is not answering just now: try again in a moment."),
            status_code=503,
        )
    if error.errcode == CODE_USED:
        return BusinessError(
            "wechat_code_used",
            _("This WeChat code has already been used (WeChat says: %(reason)s).")
            % {"reason": error.errmsg},
            fields={field: [error.errmsg]},
            status_code=400,
        )
    if error.errcode == CODE_RISKY:
        return BusinessError(
            "wechat_user_refused",
            _("WeChat refused this login (WeChat says: %(reason)s).") % {"reason": error.errmsg},
            fields={field: [error.errmsg]},
            status_code=403,
        )
    return BusinessError(
        "wechat_code_invalid",
        _("WeChat did not accept this code (WeChat says: %(reason)s).") % {"reason": error.errmsg},
        fields={field: [error.errmsg]},
        status_code=400,
    )


def wechat_session_for_code(*, code: str) -> dict:
    """``wx.login()``'s one-time code -> WeChat's session (``openid``, ``session_key``,
    ``unionid``). WeChat's refusals: ``wechat_code_invalid`` / ``wechat_code_used`` (400),
    ``wechat_user_refused`` (403), ``wechat_unavailable`` (503)."""
    try:
        return client.code_to_session(code)
    except WeChatError as error:
        raise wechat_error(error, field="code") from None


def shopper_login_wechat(*, session: dict) -> Login:
    """The member behind a WeChat session (found or created by openid/unionid) and a new token
    for her; her expired tokens are swept away."""
    with transaction.atomic():
        member = member_login_wechat(
            app_id=settings.WECHAT_APP_ID,
            openid=session.get("openid", ""),
            unionid=session.get("unionid", "") or "",
        )
        if member.erased_at is not None:
            raise BusinessError(
                "member_erased",
                _("This member's personal data has been erased."),
                status_code=410,
            )
        ShopperToken.objects.filter(member=member, expires_at__lte=timezone.now()).delete()
        raw, token = token_issue(member=member, session_key=session.get("session_key", ""))
    return Login(token=raw, expires_at=token.expires_at, member=member)


def shopper_bind_phone(*, token: ShopperToken, code: str) -> Member:
    """The phone button's code -> the verified number bound to the shopper's member; when a
    counter member holds it, the shopper's member merges into her, and every token of the
    merged member (this one included) now names the survivor, who is returned."""
    try:
        phone = client.phone_number(code)
    except WeChatError as error:
        raise wechat_error(error, field="code") from None
    if str(phone.get("countryCode", "86")) != "86":
        raise BusinessError(
            "mobile_invalid",
            _("Only mainland China mobile numbers can be bound."),
            fields={"code": [str(phone.get("countryCode"))]},
            status_code=400,
        )
    mobile = phone.get("purePhoneNumber", "")
    with transaction.atomic():
        member = member_bind_phone(member=token.member, mobile=mobile)
        if member.pk != token.member_id:
            ShopperToken.objects.filter(member_id=token.member_id).update(member=member)
            token.member = member
    return member
