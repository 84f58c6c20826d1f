"""The mini-program platform (api.weixin.qq.com) as the sandbox plays it.

Paths, fields and error codes follow WeChat's documentation of each endpoint (login,
phone number, subscribe messages, the order shipping service, access tokens). Every answer is
HTTP 200 with a JSON body; failures carry ``errcode``/``errmsg`` as WeChat's do.
"""

import base64
import re
import secrets
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from wechat.sandbox.data import WeChatUser
from wechat.sandbox.http import BadRequest, Request, Response, Route, json_response

if TYPE_CHECKING:
    from wechat.sandbox.core import Sandbox

TOKEN_LIFETIME = 7200
# After /cgi-bin/token issues a new token the previous one keeps working this long.
TOKEN_OVERLAP = 300
TOKEN_KEPT = 86400  # an expired token still answers 42001 (not 40001) for a day
CODE_LIFETIME = 300  # js codes and phone codes
FORCE_REFRESH_PER_DAY = 20

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40029: "invalid code",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "high risk user",
    41001: "access_token missing",
    41008: "missing code",
    42001: "access_token expired",
    43101: "user refuse to accept the msg",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    47001: "data format error",
    47003: "argument invalid!",
    # The order shipping service (发货信息管理服务).
    10060003: "支付单已使用重新发货机会",
    10060005: "物流类型有误",
    10060006: "非快递发货时不允许分拆发货",
    10060007: "分拆发货模式下必须填写 is_all_delivered 字段",
    10060008: "商品描述字段不能为空",
    10060009: "商品描述字段长度过长",
    10060014: "参数错误",
    10060023: "发货信息未更新，拒绝本次上传",
    10060024: "物流信息列表太长",
    10060025: "物流公司编码太长",
    10060026: "物流单号太长",
    10060031: "该笔支付单不属于 openid 所指定的用户",
    268485216: "上传时间非法，请按照 RFC 3339 格式填写",
    268485224: "发货模式非法",
    268485228: "统一发货模式下，物流信息列表长度必须为 1",
}


def wechat_error(errcode: int, hint: str = "") -> Response:
    errmsg = ERRMSG.get(errcode, "error")
    if hint:
        errmsg = f"{errmsg}, hint: [{hint}]"
    return json_response({"errcode": errcode, "errmsg": errmsg})


def _ok(**fields: Any) -> Response:
    return json_response({"errcode": 0, "errmsg": "ok", **fields})


@dataclass
class _Token:
    kind: str  # "token" (GET /cgi-bin/token) or "stable" (POST /cgi-bin/stable_token)
    expires_at: float
    invalid_from: float | None = None  # a newer token replaced it


@dataclass
class _Code:
    openid: str
    expires_at: float
    used: bool = False


@dataclass
class _Shipment:
    payer_openid: str
    order_key: dict[str, Any]
    content: dict[str, Any]
    last_upload_time: datetime
    shipped: bool
    parcels: list[dict[str, Any]]
    last_upload: tuple[dict[str, Any], list[dict[str, Any]]]
    uploads: int = 1
    reuploaded: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "order_key": self.order_key,
            "payer_openid": self.payer_openid,
            **self.content,
            "shipping_list": self.parcels,
            "last_upload_time": self.last_upload_time.isoformat(),
            "shipped": self.shipped,
            "uploads": self.uploads,
            "reuploaded": self.reuploaded,
        }


# Value checks of subscribe message keywords, by keyword type (WeChat's documented rules).
_VALUE_RULES = {
    "thing": lambda v: len(v) <= 20,
    "character_string": lambda v: len(v) <= 32 and re.fullmatch(r"[\x21-\x7e]+", v),
    "number": lambda v: len(v) <= 32 and re.fullmatch(r"\d+(\.\d+)?", v),
    "amount": lambda v: re.fullmatch(r"[¥￥]?\d+(\.\d{1,2})?元?", v),
    "time": lambda v: re.fullmatch(
        r"(\d{4}-\d{1,2}-\d{1,2} |\d{4}年\d{1,2}月\d{1,2}日 ?)?\d{1,2}:\d{2}(:\d{2})?", v
    ),
    "phrase": lambda v: len(v) <= 5 and re.fullmatch(r"[\u4e00-\u9fff]+", v),
    "phone_number": lambda v: len(v) <= 17 and re.fullmatch(r"[\d+\-]+", v),
}
_MINIPROGRAM_STATES = {"developer", "trial", "formal"}
_LANGS = {"zh_CN", "en_US", "zh_HK", "zh_TW"}


class MiniProgram:
    """The platform endpoints of one mini-program. State is guarded by the sandbox's lock."""

    fault_modes = frozenset({"busy", "errcode", "timeout", "expire_token"})

    def __init__(
        self,
        sandbox: "Sandbox",
        *,
        app_id: str,
        app_secret: str,
        users: tuple[WeChatUser, ...],
        templates: dict[str, dict[str, Any]],
        carriers: tuple[tuple[str, str], ...],
        login_limit_per_minute: int = 100,
    ):
        self.sandbox = sandbox
        self.app_id = app_id
        self.app_secret = app_secret
        self.users = {user.openid: user for user in users}
        self.templates = templates
        self.carriers = carriers
        self.login_limit_per_minute = login_limit_per_minute
        self.reset()

    def reset(self) -> None:
        self._tokens: dict[str, _Token] = {}
        self._stable_token: str | None = None
        self._force_refreshes: deque[float] = deque()
        self._js_codes: dict[str, _Code] = {}
        self._phone_codes: dict[str, _Code] = {}
        self._logins: dict[str, deque[float]] = {}
        self._subscriptions: Counter[tuple[str, str]] = Counter()
        self._shipments: dict[str, _Shipment] = {}

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/cgi-bin/token", self.token),
            Route("POST", "/cgi-bin/stable_token", self.stable_token),
            Route("GET", "/sns/jscode2session", self.jscode2session),
            Route("POST", "/wxa/business/getuserphonenumber", self.phone_number),
            Route("POST", "/cgi-bin/message/subscribe/send", self.subscribe_send),
            Route("POST", "/wxa/sec/order/upload_shipping_info", self.upload_shipping_info),
            Route(
                "POST",
                "/cgi-bin/express/delivery/open_msg/get_delivery_list",
                self.delivery_list,
            ),
        ]

    # --- how faults answer ------------------------------------------------------------------

    def error_response(self, errcode: int, errmsg: str | None = None) -> Response:
        if errmsg is None:
            return wechat_error(errcode)
        return json_response({"errcode": errcode, "errmsg": errmsg})

    def expire_credentials(self, request: Request) -> Response:
        with self.sandbox.lock:
            token = self._tokens.get(request.query.get("access_token", ""))
            if token is not None:
                token.expires_at = min(token.expires_at, self.sandbox.now())
        return wechat_error(42001)

    # --- access tokens ------------------------------------------------------------------------

    def _check_app(self, grant_type: Any, appid: Any, secret: Any) -> Response | None:
        if grant_type != "client_credential":
            return wechat_error(40002)
        if appid != self.app_id:
            return wechat_error(40013)
        if secret != self.app_secret:
            return wechat_error(40125)
        return None

    def _issue(self, kind: str, now: float) -> str:
        for name, token in list(self._tokens.items()):
            gone = token.expires_at if token.invalid_from is None else token.invalid_from
            if now >= gone + TOKEN_KEPT:
                del self._tokens[name]
        value = secrets.token_urlsafe(96)
        self._tokens[value] = _Token(kind=kind, expires_at=now + TOKEN_LIFETIME)
        return value

    def token(self, request: Request) -> Response:
        query = request.query
        refused = self._check_app(query.get("grant_type"), query.get("appid"), query.get("secret"))
        if refused:
            return refused
        with self.sandbox.lock:
            now = self.sandbox.now()
            for token in self._tokens.values():
                if token.kind == "token" and token.invalid_from is None:
                    token.invalid_from = now + TOKEN_OVERLAP
            value = self._issue("token", now)
        return json_response({"access_token": value, "expires_in": TOKEN_LIFETIME})

    def stable_token(self, request: Request) -> Response:
        body = _json_object(request)
        if body is None:
            return wechat_error(47001)
        refused = self._check_app(body.get("grant_type"), body.get("appid"), body.get("secret"))
        if refused:
            return refused
        force = body.get("force_refresh", False)
        if not isinstance(force, bool):
            return wechat_error(47001, "force_refresh must be a boolean")
        with self.sandbox.lock:
            now = self.sandbox.now()
            current = self._tokens.get(self._stable_token or "")
            if not force and current and current.invalid_from is None and now < current.expires_at:
                remaining = round(current.expires_at - now)
                return json_response({"access_token": self._stable_token, "expires_in": remaining})
            if force:
                while self._force_refreshes and self._force_refreshes[0] <= now - 86400:
                    self._force_refreshes.popleft()
                if len(self._force_refreshes) >= FORCE_REFRESH_PER_DAY:
                    return wechat_error(45009)
                self._force_refreshes.append(now)
                if current:
                    current.invalid_from = now
            self._stable_token = self._issue("stable", now)
            return json_response({"access_token": self._stable_token, "expires_in": TOKEN_LIFETIME})

    def _refuse_token(self, request: Request) -> Response | None:
        """Every endpoint that takes an access token checks it first."""
        value = request.query.get("access_token")
        if not value:
            return wechat_error(41001)
        with self.sandbox.lock:
            token = self._tokens.get(value)
            now = self.sandbox.now()
            if token is None:
                return wechat_error(40001)
            if now >= token.expires_at:
                return wechat_error(42001)
            if token.invalid_from is not None and now >= token.invalid_from:
                return wechat_error(40001)
        return None

    # --- login and phone ----------------------------------------------------------------------

    def _mint(self, codes: dict[str, _Code], openid: str) -> str:
        with self.sandbox.lock:
            now = self.sandbox.now()
            for value, code in list(codes.items()):
                if now >= code.expires_at + CODE_LIFETIME:
                    del codes[value]
            value = secrets.token_hex(16)
            codes[value] = _Code(openid=openid, expires_at=now + CODE_LIFETIME)
            return value

    def user(self, openid: Any) -> WeChatUser:
        user = self.users.get(openid) if isinstance(openid, str) else None
        if user is None:
            raise BadRequest(f"no WeChat user with openid {openid!r} in the sandbox")
        return user

    def mint_js_code(self, openid: Any) -> str:
        """What ``wx.login()`` gives the mini-program: a one-time code for this user."""
        return self._mint(self._js_codes, self.user(openid).openid)

    def mint_phone_code(self, openid: Any) -> str:
        """What the phone-number button gives the mini-program once the user agreed."""
        user = self.user(openid)
        if user.phone is None:
            raise BadRequest(f"WeChat user {user.openid} has no phone number bound")
        return self._mint(self._phone_codes, user.openid)

    def jscode2session(self, request: Request) -> Response:
        query = request.query
        if query.get("appid") != self.app_id:
            return wechat_error(40013)
        if query.get("secret") != self.app_secret:
            return wechat_error(40125)
        if query.get("grant_type") != "authorization_code":
            return wechat_error(40002)
        if not query.get("js_code"):
            return wechat_error(41008)
        with self.sandbox.lock:
            now = self.sandbox.now()
            code = self._js_codes.get(query["js_code"])
            if code is None or now >= code.expires_at:
                return wechat_error(40029)
            if code.used:
                return wechat_error(40163)
            logins = self._logins.setdefault(code.openid, deque())
            while logins and logins[0] <= now - 60:
                logins.popleft()
            if len(logins) >= self.login_limit_per_minute:
                return wechat_error(45011)
            logins.append(now)
            code.used = True
            user = self.users[code.openid]
        if user.risky:
            return wechat_error(40226)
        answer = {
            "session_key": base64.b64encode(secrets.token_bytes(16)).decode(),
            "openid": user.openid,
        }
        if user.unionid:
            answer["unionid"] = user.unionid
        return json_response(answer)

    def phone_number(self, request: Request) -> Response:
        refused = self._refuse_token(request)
        if refused:
            return refused
        body = _json_object(request)
        if body is None or not isinstance(body.get("code"), str):
            return wechat_error(47001)
        with self.sandbox.lock:
            now = self.sandbox.now()
            code = self._phone_codes.get(body["code"])
            if code is None or code.used or now >= code.expires_at:
                return wechat_error(40029)
            code.used = True
            user = self.users[code.openid]
        return _ok(
            phone_info={
                "phoneNumber": user.phone,
                "purePhoneNumber": user.phone,
                "countryCode": 86,
                "watermark": {"timestamp": int(now), "appid": self.app_id},
            }
        )

    # --- subscribe messages -------------------------------------------------------------------

    def allow_subscription(self, openid: Any, template_id: Any, times: Any = 1) -> int:
        """The user tapped "allow" on ``wx.requestSubscribeMessage``: one send per tap."""
        user = self.user(openid)
        if template_id not in self.templates:
            raise BadRequest(f"no template {template_id!r} in the sandbox")
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise BadRequest("times must be a positive integer")
        with self.sandbox.lock:
            self._subscriptions[(user.openid, template_id)] += times
            return self._subscriptions[(user.openid, template_id)]

    def subscriptions(self) -> list[dict[str, Any]]:
        with self.sandbox.lock:
            return [
                {"openid": openid, "template_id": template_id, "remaining": remaining}
                for (openid, template_id), remaining in sorted(self._subscriptions.items())
                if remaining
            ]

    def subscribe_send(self, request: Request) -> Response:
        refused = self._refuse_token(request)
        if refused:
            return refused
        body = _json_object(request)
        if body is None:
            return wechat_error(47001)
        if body.get("touser") not in self.users:
            return wechat_error(40003)
        template = self.templates.get(body.get("template_id"))
        if template is None:
            return wechat_error(40037)
        if body.get("miniprogram_state", "formal") not in _MINIPROGRAM_STATES:
            return wechat_error(47001, "miniprogram_state")
        if body.get("lang", "zh_CN") not in _LANGS:
            return wechat_error(47001, "lang")
        refused = _check_template_data(body.get("data"), template["keywords"])
        if refused:
            return refused
        key = (body["touser"], body["template_id"])
        with self.sandbox.lock:
            if self._subscriptions[key] < 1:
                return wechat_error(43101)
            self._subscriptions[key] -= 1
        return _ok()

    # --- order shipping -----------------------------------------------------------------------

    def shipments(self) -> dict[str, dict[str, Any]]:
        with self.sandbox.lock:
            return {key: shipment.as_dict() for key, shipment in self._shipments.items()}

    def upload_shipping_info(self, request: Request) -> Response:
        """Until WeChat Pay is in the sandbox, any order key counts as a paid payment."""
        refused = self._refuse_token(request)
        if refused:
            return refused
        body = _json_object(request)
        if body is None:
            return wechat_error(47001)
        checked = self._check_shipping(body)
        if isinstance(checked, Response):
            return checked
        key, upload_time, content = checked
        payer = body["payer"]["openid"]
        parcels = body["shipping_list"]
        shipped = content["delivery_mode"] == 1 or content["is_all_delivered"] is True
        with self.sandbox.lock:
            shipment = self._shipments.get(key)
            if shipment is None:
                self._shipments[key] = _Shipment(
                    payer_openid=payer,
                    order_key=body["order_key"],
                    content=content,
                    last_upload_time=upload_time,
                    shipped=shipped,
                    parcels=list(parcels),
                    last_upload=(content, list(parcels)),
                )
                return _ok()
            if shipment.payer_openid != payer:
                return wechat_error(10060031)
            if (content, parcels) == shipment.last_upload:
                # The same information again (a sender repeating itself): refused, unchanged.
                return wechat_error(10060023)
            if upload_time <= shipment.last_upload_time:
                return wechat_error(10060014, "upload_time must be later than the last upload")
            if shipment.shipped:
                if shipment.reuploaded:
                    return wechat_error(10060003)
                shipment.reuploaded = True
                shipment.parcels = list(parcels)
            else:
                # Split delivery in progress: more parcels of the same payment.
                if content["delivery_mode"] != 2:
                    return wechat_error(268485224, "the payment is being shipped in parts")
                if len(shipment.parcels) + len(parcels) > 15:
                    return wechat_error(10060024)
                shipment.parcels.extend(parcels)
            shipment.content = content
            shipment.last_upload = (content, list(parcels))
            shipment.shipped = shipped
            shipment.last_upload_time = upload_time
            shipment.uploads += 1
        return _ok()

    def _check_shipping(self, body: dict[str, Any]) -> Response | tuple[str, datetime, dict]:
        order_key = body.get("order_key")
        if not isinstance(order_key, dict):
            return wechat_error(47001, "order_key")
        number_type = order_key.get("order_number_type")
        if number_type == 1 and _strings(order_key, "mchid", "out_trade_no"):
            key = f"mchid:{order_key['mchid']}:out_trade_no:{order_key['out_trade_no']}"
        elif number_type == 2 and _strings(order_key, "transaction_id"):
            key = f"transaction_id:{order_key['transaction_id']}"
        else:
            return wechat_error(10060014, "order_key")
        payer = body.get("payer")
        if not isinstance(payer, dict) or not isinstance(payer.get("openid"), str):
            return wechat_error(47001, "payer.openid")
        logistics_type = body.get("logistics_type")
        if logistics_type not in (1, 2, 3, 4) or isinstance(logistics_type, bool):
            return wechat_error(10060005)
        delivery_mode = body.get("delivery_mode")
        if delivery_mode not in (1, 2) or isinstance(delivery_mode, bool):
            return wechat_error(268485224)
        is_all_delivered = body.get("is_all_delivered")
        if delivery_mode == 2:
            if logistics_type != 1:
                return wechat_error(10060006)
            if not isinstance(is_all_delivered, bool):
                return wechat_error(10060007)
        parcels = body.get("shipping_list")
        if not isinstance(parcels, list) or not parcels:
            return wechat_error(47001, "shipping_list must be a non-empty list")
        if len(parcels) > 15:
            return wechat_error(10060024)
        if delivery_mode == 1 and len(parcels) != 1:
            return wechat_error(268485228)
        for parcel in parcels:
            refused = self._check_parcel(parcel, logistics_type)
            if refused:
                return refused
        upload_time = _rfc3339(body.get("upload_time"))
        if upload_time is None:
            return wechat_error(268485216)
        content = {
            "logistics_type": logistics_type,
            "delivery_mode": delivery_mode,
            "is_all_delivered": is_all_delivered if delivery_mode == 2 else None,
        }
        return key, upload_time, content

    def _check_parcel(self, parcel: Any, logistics_type: int) -> Response | None:
        if not isinstance(parcel, dict):
            return wechat_error(47001, "shipping_list item")
        item_desc = parcel.get("item_desc")
        if not isinstance(item_desc, str) or not item_desc.strip():
            return wechat_error(10060008)
        if len(item_desc) > 120:
            return wechat_error(10060009)
        if logistics_type != 1:
            return None
        tracking_no, company = parcel.get("tracking_no"), parcel.get("express_company")
        if not isinstance(tracking_no, str) or not tracking_no:
            return wechat_error(10060014, "tracking_no is required for courier delivery")
        if len(tracking_no) > 128:
            return wechat_error(10060026)
        if not isinstance(company, str) or not company:
            return wechat_error(10060014, "express_company is required for courier delivery")
        if len(company) > 128:
            return wechat_error(10060025)
        if company not in dict(self.carriers):
            return wechat_error(10060014, "express_company is not a delivery_id")
        contact = parcel.get("contact")
        if company == "SF" and not (
            isinstance(contact, dict)
            and (contact.get("receiver_contact") or contact.get("consignor_contact"))
        ):
            return wechat_error(10060014, "contact is required for SF")
        return None

    # --- carriers ------------------------------------------------------------------------------

    def delivery_list(self, request: Request) -> Response:
        refused = self._refuse_token(request)
        if refused:
            return refused
        carriers = [{"delivery_id": code, "delivery_name": name} for code, name in self.carriers]
        return _ok(delivery_list=carriers, count=len(carriers))


def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _strings(data: dict[str, Any], *names: str) -> bool:
    return all(isinstance(data.get(name), str) and data[name] for name in names)


def _rfc3339(value: Any) -> datetime | None:
    """An RFC 3339 time with its offset, e.g. ``2026-03-01T10:15:30.120+08:00``."""
    if not isinstance(value, str) or not re.fullmatch(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", value
    ):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _check_template_data(data: Any, keywords: list[str]) -> Response | None:
    if not isinstance(data, dict):
        return wechat_error(47001, "data")
    for name in data:
        if name not in keywords:
            return wechat_error(47003, f"data.{name} is not a keyword of the template")
    for name in keywords:
        entry = data.get(name)
        value = entry.get("value") if isinstance(entry, dict) else None
        if not isinstance(value, str) or not value:
            return wechat_error(47003, f"data.{name}.value is empty")
        kind = name.rstrip("0123456789")
        rule = _VALUE_RULES.get(kind)
        if rule is not None and not rule(value):
            return wechat_error(47003, f"data.{name}.value invalid for {kind}")
    return None
