"""The one door to WeChat's mini-program platform: wechatpy's client, built once per process.

- The access token is shared by every process of the app id (web, workers): it lives in Redis
  when ``REDIS_URL`` is set (wechatpy's Redis session storage), else in the Django cache, and
  one process at a time refreshes it, under a lock, so there is no refresh storm. The stable
  token (``POST /cgi-bin/stable_token``) is preferred: fetching it does not invalidate the
  token of anyone else holding the secret.
- Every call has a timeout. A call is tried again at once only when that cannot do harm: WeChat
  busy (-1, HTTP 5xx) or the connection failed, a few times with a small backoff; a token WeChat
  calls invalid or expired (40001, 40014, 42001) is refreshed once and the call repeated. A
  read timeout is not repeated here (WeChat may have acted: a login code would be used up);
  it is raised as retryable, for the caller (the outbox) to try later.
- Failures raise ``WeChatError(errcode, errmsg, retryable)``; results are plain dicts.

wechatpy 1.8.18 hard-codes the real host in its token fetch and in ``client.wxa``; both are
pointed at ``WECHAT_API_BASE_URL`` here, so the sandbox is one setting away.
"""

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import redis
import requests
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session import SessionStorage
from wechatpy.session.redisstorage import RedisStorage

logger = logging.getLogger(__name__)

BUSY = -1
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
# Worth trying again later: busy, rate limits, token trouble, the shipping service's own
# "system error" codes. Anything else (a bad code, 43101 "not allowed") will not get better.
RETRYABLE_ERRCODES = frozenset({BUSY, 45009, 45011, 10060012, 10060019}) | TOKEN_ERRORS
# upload_shipping_info: WeChat already holds exactly this shipping information.
SHIPPING_UNCHANGED = 10060023
# Refresh the token this long before WeChat says it expires (at most a tenth of its life).
TOKEN_EARLY_SECONDS = 300

T = TypeVar("T")


class WeChatError(Exception):
    """WeChat refused a call (``errcode`` is WeChat's) or could not be reached (``errcode``
    is None). ``retryable``: trying the same call later may succeed."""

    def __init__(self, errcode: int | None, errmsg: str, *, retryable: bool):
        super().__init__(errmsg if errcode is None else f"WeChat error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.retryable = retryable

    @classmethod
    def from_errcode(cls, errcode: int, errmsg: str) -> "WeChatError":
        return cls(errcode, errmsg, retryable=errcode in RETRYABLE_ERRCODES)


class _RetryNow(Exception):
    """A failure worth repeating at once (busy, 5xx, connection refused)."""

    def __init__(self, error: WeChatError):
        self.error = error


@dataclass(frozen=True)
class WeChatConfig:
    app_id: str
    app_secret: str
    base_url: str
    timeout: float
    attempts: int
    backoff: float
    stable_token: bool
    token_key_prefix: str
    redis_url: str

    @classmethod
    def from_settings(cls) -> "WeChatConfig":
        return cls(
            app_id=settings.WECHAT_APP_ID,
            app_secret=settings.WECHAT_APP_SECRET,
            base_url=settings.WECHAT_API_BASE_URL.rstrip("/") + "/",
            timeout=settings.WECHAT_TIMEOUT_SECONDS,
            attempts=max(1, settings.WECHAT_RETRY_ATTEMPTS),
            backoff=settings.WECHAT_RETRY_BACKOFF_SECONDS,
            stable_token=settings.WECHAT_STABLE_TOKEN,
            token_key_prefix=settings.WECHAT_TOKEN_KEY_PREFIX,
            redis_url=settings.REDIS_URL,
        )

    @property
    def lock_seconds(self) -> float:
        """Longest a token refresh can take: every attempt timing out, with its backoff."""
        return self.attempts * (self.timeout + self.backoff * 2**self.attempts) + 5


# --- where the token lives ----------------------------------------------------------------------


class CacheTokenStorage(SessionStorage):
    """wechatpy session storage on the Django cache (files in the embedded setup). The lock is
    ``cache.add``: atomic on Redis and in memory, close enough on files for the demo."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def key_name(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def get(self, key: str, default: Any = None) -> Any:
        return cache.get(self.key_name(key), default)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        if value is not None:
            cache.set(self.key_name(key), value, ttl)

    def delete(self, key: str) -> None:
        cache.delete(self.key_name(key))

    @contextmanager
    def lock(self, name: str, *, seconds: float) -> Iterator[None]:
        key, owner = self.key_name(name), uuid.uuid4().hex
        deadline = time.monotonic() + seconds
        while not cache.add(key, owner, int(seconds) + 1):
            if time.monotonic() >= deadline:
                raise WeChatError(None, "another process is refreshing the token", retryable=True)
            time.sleep(0.02)
        try:
            yield
        finally:
            if cache.get(key) == owner:
                cache.delete(key)


class RedisTokenStorage(RedisStorage):
    """wechatpy's Redis session storage, with a Redis lock for the refresh."""

    def __init__(self, url: str, prefix: str):
        connection = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        super().__init__(connection, prefix=prefix)

    @contextmanager
    def lock(self, name: str, *, seconds: float) -> Iterator[None]:
        lock = self.redis.lock(self.key_name(name), timeout=seconds, blocking_timeout=seconds)
        if not lock.acquire():
            raise WeChatError(None, "another process is refreshing the token", retryable=True)
        try:
            yield
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                logger.warning("the WeChat token lock expired before the refresh ended")


def _token_storage(config: WeChatConfig) -> CacheTokenStorage | RedisTokenStorage:
    if config.redis_url:
        return RedisTokenStorage(config.redis_url, config.token_key_prefix)
    return CacheTokenStorage(config.token_key_prefix)


# --- the client -----------------------------------------------------------------------------------


class MiniProgramClient(WeChatClient):
    """wechatpy's ``WeChatClient`` for the mini-program, with a shared token and retries."""

    def __init__(self, config: WeChatConfig):
        super().__init__(
            config.app_id,
            config.app_secret,
            session=_token_storage(config),
            timeout=config.timeout,
            # Its own retry refreshes without a lock and without end; ours is below.
            auto_retry=False,
        )
        self.config = config
        self.API_BASE_URL = f"{config.base_url}cgi-bin/"
        self.wxa.API_BASE_URL = config.base_url

    # --- the access token ---------------------------------------------------------------------

    @property
    def access_token(self) -> str:
        return self.session.get(self.access_token_key) or self._refresh_token(stale=None)

    def fetch_access_token(self) -> dict[str, Any]:
        """wechatpy's hook, fetching from its hard-coded host: through the shared lock here."""
        stale = self.session.get(self.access_token_key)
        return {"access_token": self._refresh_token(stale=stale)}

    def _refresh_token(self, *, stale: str | None) -> str:
        """A new token unless another process replaced ``stale`` while we waited."""
        lock_name = f"{self.access_token_key}_refresh"
        with self.session.lock(lock_name, seconds=self.config.lock_seconds):
            current = self.session.get(self.access_token_key)
            if current and current != stale:
                return current
            result = self._retrying(self._fetch_token)
            token, expires_in = result["access_token"], int(result.get("expires_in", 7200))
            ttl = expires_in - min(TOKEN_EARLY_SECONDS, expires_in // 10)
            self.session.set(self.access_token_key, token, ttl)
            logger.info("fetched a WeChat access token for %s (%s s)", self.appid, expires_in)
            return token

    def _fetch_token(self) -> dict[str, Any]:
        credentials = {
            "grant_type": "client_credential",
            "appid": self.appid,
            "secret": self.secret,
        }
        try:
            if self.config.stable_token:
                response = self._http.post(
                    f"{self.config.base_url}cgi-bin/stable_token",
                    json={**credentials, "force_refresh": False},
                    timeout=self.timeout,
                )
            else:
                response = self._http.get(
                    f"{self.config.base_url}cgi-bin/token", params=credentials, timeout=self.timeout
                )
        except requests.RequestException as exc:
            raise _network_error(exc, self.timeout) from exc
        if response.status_code >= 500:
            raise _RetryNow(WeChatError(None, f"HTTP {response.status_code}", retryable=True))
        try:
            result = response.json()
        except ValueError:
            status = response.status_code
            raise WeChatError(None, f"HTTP {status}, not JSON", retryable=True) from None
        if result.get("errcode"):
            raise _errcode_error(result["errcode"], result.get("errmsg", ""))
        return result

    # --- calls ----------------------------------------------------------------------------------

    def _retrying(self, attempt: Callable[[], T]) -> T:
        number = 1
        while True:
            try:
                return attempt()
            except _RetryNow as retry:
                if number >= self.config.attempts:
                    raise retry.error from None
                # Jitter spreads the processes that all met the same busy WeChat (not crypto).
                jitter = 0.5 + random.random() / 2  # noqa: S311
                delay = self.config.backoff * 2 ** (number - 1) * jitter
                number += 1
                logger.warning("WeChat: %s; try %s in %.2f s", retry.error, number, delay)
                time.sleep(delay)

    def _send(self, method: str, path: str, *, token: str | None, **kwargs: Any) -> dict[str, Any]:
        # A None token tells wechatpy not to add one (jscode2session signs with the secret);
        # requests leaves None parameters out of the URL.
        params = {**kwargs.pop("params", {}), "access_token": token}
        try:
            result = self._request(
                method, path, api_base_url=self.config.base_url, params=params, **kwargs
            )
        except WeChatClientException as exc:
            if exc.errcode is not None:
                raise _errcode_error(exc.errcode, exc.errmsg) from exc
            status = exc.response.status_code if exc.response is not None else None
            error = WeChatError(None, f"HTTP {status}", retryable=status is None or status >= 500)
            raise (_RetryNow(error) if error.retryable else error) from exc
        except requests.RequestException as exc:
            raise _network_error(exc, self.timeout) from exc
        if not isinstance(result, dict):
            raise WeChatError(None, "the answer is not a JSON object", retryable=True)
        return result

    def _call(self, method: str, path: str, *, with_token: bool = True, **kwargs: Any) -> dict:
        if not with_token:
            return self._retrying(lambda: self._send(method, path, token=None, **kwargs))
        token = self._token()
        try:
            return self._retrying(lambda: self._send(method, path, token=token, **kwargs))
        except WeChatError as error:
            if error.errcode not in TOKEN_ERRORS:
                raise
            logger.info("WeChat refused the access token (%s); refreshing it once", error.errcode)
        token = self._token(stale=token)
        return self._retrying(lambda: self._send(method, path, token=token, **kwargs))

    def _token(self, *, stale: str | None = None) -> str:
        """The shared token (a new one instead of ``stale``). A token store that cannot be
        reached (Redis restarting) is a retryable failure that sent nothing: the caller must
        not take it for a call WeChat may have acted on."""
        try:
            return self.access_token if stale is None else self._refresh_token(stale=stale)
        except (redis.exceptions.RedisError, OSError) as exc:
            raise WeChatError(
                None, f"the WeChat token store is unreachable: {exc}", retryable=True
            ) from exc

    # --- the endpoints ----------------------------------------------------------------------------

    def code_to_session(self, js_code: str) -> dict[str, Any]:
        """``wx.login()``'s one-time code -> ``openid``, ``session_key``, ``unionid`` (when the
        mini-program is bound to an open-platform account). 40029 bad code, 40163 used, 45011
        too many logins, 40226 risky user."""
        params = {
            "appid": self.appid,
            "secret": self.secret,
            "js_code": js_code,
            "grant_type": "authorization_code",
        }
        return self._call("get", "sns/jscode2session", with_token=False, params=params)

    def phone_number(self, code: str) -> dict[str, Any]:
        """The phone button's one-time code -> ``phone_info`` (``purePhoneNumber``,
        ``countryCode``, ``watermark``). 40029 bad or used code."""
        result = self._call("post", "wxa/business/getuserphonenumber", data={"code": code})
        phone_info = result.get("phone_info") or {}
        if (phone_info.get("watermark") or {}).get("appid") != self.appid:
            raise WeChatError(
                None, "the phone number is watermarked for another app", retryable=False
            )
        return phone_info

    def send_subscribe_message(
        self,
        *,
        openid: str,
        template_id: str,
        data: Mapping[str, str],
        page: str | None = None,
        lang: str = "zh_CN",
    ) -> dict[str, Any]:
        """One subscribe message; ``data`` maps the template's keywords to their values.
        43101: the shopper has not (or no longer) allowed this template; never retryable."""
        body = {
            "touser": openid,
            "template_id": template_id,
            "data": {keyword: {"value": value} for keyword, value in data.items()},
            "miniprogram_state": settings.WECHAT_MINIPROGRAM_STATE,
            "lang": lang,
        }
        if page:
            body["page"] = page
        return self._call("post", "cgi-bin/message/subscribe/send", data=body)

    def upload_shipping_info(
        self,
        *,
        payer_openid: str,
        shipping_list: list[dict[str, Any]],
        transaction_id: str | None = None,
        mchid: str | None = None,
        out_trade_no: str | None = None,
        logistics_type: int = 1,
        delivery_mode: int = 1,
        is_all_delivered: bool | None = None,
        upload_time: datetime | None = None,
    ) -> dict[str, Any]:
        """Tell WeChat a paid order shipped (WeChat Pay funds stay frozen until it knows).
        The payment is named by ``transaction_id``, or by ``mchid`` + ``out_trade_no``.
        Sending again what WeChat already holds is not an error: ``already_uploaded`` is True."""
        if transaction_id:
            order_key = {"order_number_type": 2, "transaction_id": transaction_id}
        elif mchid and out_trade_no:
            order_key = {"order_number_type": 1, "mchid": mchid, "out_trade_no": out_trade_no}
        else:
            raise ValueError("name the payment: transaction_id, or mchid and out_trade_no")
        moment = timezone.localtime(upload_time or timezone.now())
        body = {
            "order_key": order_key,
            "logistics_type": logistics_type,
            "delivery_mode": delivery_mode,
            "shipping_list": list(shipping_list),
            "upload_time": moment.isoformat(timespec="milliseconds"),
            "payer": {"openid": payer_openid},
        }
        if is_all_delivered is not None:
            body["is_all_delivered"] = is_all_delivered
        try:
            self._call("post", "wxa/sec/order/upload_shipping_info", data=body)
        except WeChatError as error:
            if error.errcode != SHIPPING_UNCHANGED:
                raise
            return {"already_uploaded": True}
        return {"already_uploaded": False}

    def delivery_list(self) -> list[dict[str, Any]]:
        """The carriers WeChat knows: ``delivery_id`` (the shipping list's express_company)
        and ``delivery_name``."""
        result = self._call("post", "cgi-bin/express/delivery/open_msg/get_delivery_list", data={})
        return result.get("delivery_list", [])


def _errcode_error(errcode: int, errmsg: str) -> Exception:
    error = WeChatError.from_errcode(int(errcode), errmsg)
    return _RetryNow(error) if error.errcode == BUSY else error


def _network_error(exc: requests.RequestException, timeout: float) -> Exception:
    if isinstance(exc, requests.ConnectionError):
        # Includes a connect timeout: the call never reached WeChat, so repeating it is safe.
        return _RetryNow(WeChatError(None, f"cannot reach WeChat: {exc}", retryable=True))
    if isinstance(exc, requests.Timeout):
        return WeChatError(None, f"no answer from WeChat within {timeout} s", retryable=True)
    return WeChatError(None, f"WeChat call failed: {exc}", retryable=True)


# --- one client per process ---------------------------------------------------------------------

_client_lock = threading.Lock()
_client: MiniProgramClient | None = None


def build_client(config: WeChatConfig | None = None) -> MiniProgramClient:
    """A new client (what each process holds); ``get_client`` is the one to use."""
    config = config or WeChatConfig.from_settings()
    if not (config.app_id and config.app_secret) and not settings.DEBUG:
        raise ImproperlyConfigured(
            "WECHAT_APP_ID and WECHAT_APP_SECRET must be set when DEBUG is off (see README, "
            "'WeChat sandbox')."
        )
    return MiniProgramClient(config)


def get_client() -> MiniProgramClient:
    """The process's client, built on first use and again only if the settings changed."""
    global _client
    config = WeChatConfig.from_settings()
    with _client_lock:
        if _client is None or _client.config != config:
            _client = build_client(config)
        return _client


def code_to_session(js_code: str) -> dict[str, Any]:
    return get_client().code_to_session(js_code)


def phone_number(code: str) -> dict[str, Any]:
    return get_client().phone_number(code)


def send_subscribe_message(
    *,
    openid: str,
    template_id: str,
    data: Mapping[str, str],
    page: str | None = None,
    lang: str = "zh_CN",
) -> dict[str, Any]:
    return get_client().send_subscribe_message(
        openid=openid, template_id=template_id, data=data, page=page, lang=lang
    )


def upload_shipping_info(
    *,
    payer_openid: str,
    shipping_list: list[dict[str, Any]],
    transaction_id: str | None = None,
    mchid: str | None = None,
    out_trade_no: str | None = None,
    logistics_type: int = 1,
    delivery_mode: int = 1,
    is_all_delivered: bool | None = None,
    upload_time: datetime | None = None,
) -> dict[str, Any]:
    return get_client().upload_shipping_info(
        payer_openid=payer_openid,
        shipping_list=shipping_list,
        transaction_id=transaction_id,
        mchid=mchid,
        out_trade_no=out_trade_no,
        logistics_type=logistics_type,
        delivery_mode=delivery_mode,
        is_all_delivered=is_all_delivered,
        upload_time=upload_time,
    )


def delivery_list() -> list[dict[str, Any]]:
    return get_client().delivery_list()
