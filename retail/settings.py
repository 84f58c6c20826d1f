"""The one settings module. Every deployment difference comes from the environment.

With nothing set, the platform runs embedded: SQLite under ``var/``, a file cache and a
filesystem Celery broker, so a newcomer needs no servers. ``DATABASE_URL`` and ``REDIS_URL``
switch to PostgreSQL and Redis. Secrets have no production default: without ``SECRET_KEY`` the
web and worker processes only start with ``DEBUG`` on.
"""

from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _
from import_export.formats import base_formats

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
ENV_FILE = BASE_DIR / ".env"
if ENV_FILE.is_file():
    env.read_env(ENV_FILE)

DEBUG = env.bool("DEBUG", default=False)
DATA_DIR = Path(env("DATA_DIR", default=str(BASE_DIR / "var")))
# The embedded defaults (SQLite file, file cache, filesystem broker) live here.
DATA_DIR.mkdir(parents=True, exist_ok=True)

# No production default. Without it, offline commands (migrate, makemigrations) still run, but
# the web and worker processes refuse to start (retail.startup) and anything that signs fails.
SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY and DEBUG:
    SECRET_KEY = "insecure-development-key-used-only-with-debug-on"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "retail",
    "inventory",
    "orders",
    "members",
    "wechat",
    "partners",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "retail.urls"
WSGI_APPLICATION = "retail.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
ATOMIC_REQUESTS = False
DATABASES["default"]["ATOMIC_REQUESTS"] = ATOMIC_REQUESTS
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside a writer, IMMEDIATE
    # takes the write lock at BEGIN (no upgrade deadlock), the timeout waits instead of
    # failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery: Redis when REDIS_URL is set, embedded otherwise -----------------------

REDIS_URL = env("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="retail"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }

CELERY_BROKER_DIR = DATA_DIR / "celery"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_RESULT_BACKEND = env(
    "CELERY_RESULT_BACKEND", default=REDIS_URL or f"file://{CELERY_BROKER_DIR / 'results'}"
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
    }
    for folder in ("queue", "control", "results"):
        (CELERY_BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        # An unacknowledged message (acks_late) goes back to the queue when its worker has not
        # acknowledged it within this time. It must outlast the longest countdown a task waits
        # for (an outbox retry, OUTBOX_BACKOFF_MAX_SECONDS) or the message runs twice; a killed
        # worker's outbox deliveries come back sooner, through the sweeper and their lease.
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=7200),
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# After a lost broker connection the unacknowledged messages are handed out again: stop the
# tasks running them rather than run them twice at once.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_RESULT_EXPIRES = 3600
CELERY_TIMEZONE = "Asia/Shanghai"

# --- Auth -----------------------------------------------------------------------------------

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "retail.access.StoreRoleBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# --- Language and time ----------------------------------------------------------------------

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "retail" / "locale"]
USE_I18N = True
TIME_ZONE = "Asia/Shanghai"
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- REST framework -------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "retail.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "retail.api.pagination.CursorPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Retail platform API",
    "DESCRIPTION": "Staff, shopper and partner APIs of the omnichannel retail platform.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The order status appears in more than one component (list and detail): one name for it.
    # The others are the shop API's (its own schema, which reads these: drf-spectacular loads
    # them once per process).
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.OrderStatus",
        # Also members' joined channel: the same four channels.
        "ChannelEnum": "orders.models.Channel",
        "FulfilmentEnum": "orders.models.Fulfilment",
        "AfterSaleKindEnum": "orders.models.AfterSale.Kind",
        "CouponKindEnum": "members.models.CouponTemplate.Kind",
        # Shop checkout: delivery or pickup (the counter is not the shopper's).
        "ShopFulfilmentEnum": ["delivery", "pickup"],
    },
    # The shop and partner APIs have schemas of their own (/api/{shop,partner}/v1/schema/).
    "PREPROCESSING_HOOKS": [
        "wechat.api.schema.without_shop_endpoints",
        "partners.api.schema.without_partner_endpoints",
    ],
}

# --- Import and export ----------------------------------------------------------------------

IMPORT_EXPORT_FORMATS = [base_formats.CSV, base_formats.XLSX]
IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = False
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "add"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"

# --- Security -------------------------------------------------------------------------------

SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Inventory ------------------------------------------------------------------------------

# How long checkout holds stock for an unpaid order.
STOCK_HOLD_MINUTES = env.int("STOCK_HOLD_MINUTES", default=30)
# How far back sales count towards a SKU's velocity in reorder suggestions.
STOCK_VELOCITY_DAYS = env.int("STOCK_VELOCITY_DAYS", default=28)

# --- Outbox (retail/outbox) ------------------------------------------------------------------

# Attempts before a delivery is dead (a staff retry grants as many again).
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=12)
# Backoff after failed attempt n: drawn from [c/2, c], c = min(MAX, BASE * 2**(n-1)). With the
# defaults a delivery keeps trying for one to two hours before it is dead.
OUTBOX_BACKOFF_BASE_SECONDS = env.float("OUTBOX_BACKOFF_BASE_SECONDS", default=10.0)
OUTBOX_BACKOFF_MAX_SECONDS = env.float("OUTBOX_BACKOFF_MAX_SECONDS", default=1800.0)
# How long a worker (or a queued message) holds a delivery before the sweeper takes it back.
# Longer than the delivery task's hard time limit (90 s).
OUTBOX_LEASE_SECONDS = env.float("OUTBOX_LEASE_SECONDS", default=120.0)
# Most deliveries one sweep re-sends.
OUTBOX_SWEEP_BATCH = env.int("OUTBOX_SWEEP_BATCH", default=500)
# After the broker refused a message, a process leaves its deliveries to the sweeper without
# trying for this long (a request publishing several events does not wait on each).
OUTBOX_BROKER_PAUSE_SECONDS = env.float("OUTBOX_BROKER_PAUSE_SECONDS", default=5.0)
OUTBOX_ATTEMPT_RETENTION_DAYS = env.int("OUTBOX_ATTEMPT_RETENTION_DAYS", default=30)
# The Celery queue of delivery tasks; empty means the default queue. Workers must consume it.
OUTBOX_QUEUE = env("OUTBOX_QUEUE", default="")
# Tests only: modules a worker imports at start-up, which register extra outbox subscribers
# (tests/retail/outbox_worker_subscribers.py). Apps register theirs in ready().
CELERY_IMPORTS = env.list("OUTBOX_TEST_SUBSCRIBER_MODULES", default=[])

# --- Health ---------------------------------------------------------------------------------

HEALTH_WORKER_PING_TIMEOUT = env.float("HEALTH_WORKER_PING_TIMEOUT", default=1.5)
HEALTH_BEAT_MAX_AGE = env.int("HEALTH_BEAT_MAX_AGE", default=180)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# Orders: how long a shopper (or the counter) has to pay, how long stock stays held after
# that (so expiring the order, which releases it, comes first), delivery fee defaults for
# stores without a shipping rule, and basket limits.
ORDER_PAYMENT_MINUTES = env.int("ORDER_PAYMENT_MINUTES", default=30)
ORDER_COUNTER_PAYMENT_MINUTES = env.int("ORDER_COUNTER_PAYMENT_MINUTES", default=10)
ORDER_HOLD_GRACE_MINUTES = env.int("ORDER_HOLD_GRACE_MINUTES", default=10)
ORDER_AUTO_COMPLETE_DAYS = env.int("ORDER_AUTO_COMPLETE_DAYS", default=7)
ORDER_DELIVERY_FEE_FEN = env.int("ORDER_DELIVERY_FEE_FEN", default=600)
ORDER_FREE_DELIVERY_FROM_FEN = env.int("ORDER_FREE_DELIVERY_FROM_FEN", default=3900)
ORDER_MAX_LINES = 50
ORDER_MAX_LINE_QUANTITY = 999

# Members, identity: how long a member code (the QR the mini-shop shows and the counter scans)
# stays good after it was issued; the mini-shop fetches a new one every minute.
MEMBER_CODE_TTL_SECONDS = env.int("MEMBER_CODE_TTL_SECONDS", default=60)

# Members, points and tiers: points earned per yuan paid (times the tier's multiplier, rounded
# down), how long earned points last, the rolling window of spend that sets a member's tier,
# and what a referrer gets when a friend pays her first order.
MEMBER_POINTS_PER_YUAN = env.int("MEMBER_POINTS_PER_YUAN", default=1)
MEMBER_POINTS_EXPIRE_DAYS = env.int("MEMBER_POINTS_EXPIRE_DAYS", default=365)
MEMBER_TIER_WINDOW_DAYS = env.int("MEMBER_TIER_WINDOW_DAYS", default=365)
MEMBER_REFERRAL_POINTS = env.int("MEMBER_REFERRAL_POINTS", default=500)

# Members, paying with points (orders.pricing): what one point is worth in fen (1: 100 points
# are one yuan) and the largest share of the goods, after promotions, tier discount and coupon,
# that points may pay.
MEMBER_POINTS_FEN_PER_POINT = env.int("MEMBER_POINTS_FEN_PER_POINT", default=1)
MEMBER_POINTS_MAX_PERCENT = env.int("MEMBER_POINTS_MAX_PERCENT", default=50)

# --- WeChat (wechat/client.py; the sandbox is wechat/sandbox) --------------------------------

# The mini-program. No production default: without the id and secret the client refuses to
# start unless DEBUG is on. `make demo` points all three at the sandbox (Procfile.demo).
WECHAT_APP_ID = env("WECHAT_APP_ID", default="")
WECHAT_APP_SECRET = env("WECHAT_APP_SECRET", default="")
WECHAT_API_BASE_URL = env("WECHAT_API_BASE_URL", default="https://api.weixin.qq.com/")
# Seconds to connect and, again, to wait for an answer; then the call fails as retryable.
WECHAT_TIMEOUT_SECONDS = env.float("WECHAT_TIMEOUT_SECONDS", default=5.0)
# Tries of one call while WeChat is busy (-1, HTTP 5xx) or unreachable; the wait after try n
# is drawn from [b/2, b], b = BACKOFF * 2^(n-1).
WECHAT_RETRY_ATTEMPTS = env.int("WECHAT_RETRY_ATTEMPTS", default=3)
WECHAT_RETRY_BACKOFF_SECONDS = env.float("WECHAT_RETRY_BACKOFF_SECONDS", default=0.2)
# Fetch the access token from /cgi-bin/stable_token (other holders of the secret keep theirs)
# rather than /cgi-bin/token.
WECHAT_STABLE_TOKEN = env.bool("WECHAT_STABLE_TOKEN", default=True)
# The shared access token's key prefix, in Redis (REDIS_URL) or else the Django cache.
WECHAT_TOKEN_KEY_PREFIX = env("WECHAT_TOKEN_KEY_PREFIX", default="wechat")
# Which version of the mini-program a subscribe message opens: developer, trial or formal.
WECHAT_MINIPROGRAM_STATE = env("WECHAT_MINIPROGRAM_STATE", default="formal")

# --- Mini-shop API (wechat/api) ----------------------------------------------------------------

# How long a shopper's login token lasts.
SHOP_TOKEN_DAYS = env.int("SHOP_TOKEN_DAYS", default=30)
# Rate limits (DRF rates: "10/min", "100/hour"), counted in the cache (Redis with REDIS_URL).
# Login per client IP and per WeChat user; checkout per shopper and per client IP.
SHOP_THROTTLE_RATES = {
    "shop_login_ip": env("SHOP_THROTTLE_LOGIN_IP", default="30/min"),
    "shop_login_shopper": env("SHOP_THROTTLE_LOGIN_SHOPPER", default="10/min"),
    "shop_checkout_shopper": env("SHOP_THROTTLE_CHECKOUT_SHOPPER", default="10/min"),
    "shop_checkout_ip": env("SHOP_THROTTLE_CHECKOUT_IP", default="60/min"),
}
# Recommendations: "bought together" counts orders completed or paid in the last N days.
SHOP_BOUGHT_TOGETHER_DAYS = env.int("SHOP_BOUGHT_TOGETHER_DAYS", default=90)
# Where the shopper's browser reaches the sandbox's "pick a WeChat user" page, for the H5
# shop's login (wechat/h5). Empty: WECHAT_API_BASE_URL, which is right when both run on one
# machine (the demo). Real WeChat has no such page: the H5 login then says so.
WECHAT_SANDBOX_PUBLIC_URL = env("WECHAT_SANDBOX_PUBLIC_URL", default="")

# --- WeChat Pay (wechat/pay) -------------------------------------------------------------------

# Protocol version: "v3" (JSON, RSA signatures, AES-GCM notifies) or "v2" (XML, key-signed).
WECHAT_PAY_VERSION = env("WECHAT_PAY_VERSION", default="v3")
WECHAT_PAY_MCH_ID = env("WECHAT_PAY_MCH_ID", default="")
# The real host by default; the sandbox in the demo and the tests.
WECHAT_PAY_API_BASE_URL = env("WECHAT_PAY_API_BASE_URL", default="https://api.mch.weixin.qq.com")
# Where WeChat reaches this platform's notify endpoints (scheme and host, no path).
WECHAT_PAY_NOTIFY_BASE_URL = env("WECHAT_PAY_NOTIFY_BASE_URL", default="")

# WeChat Pay services (wechat/pay/services.py). Reconciliation asks WeChat about a payment
# still pending this many minutes after it was created (its notify never came).
WECHAT_PAY_RECONCILE_AFTER_MINUTES = env.int("WECHAT_PAY_RECONCILE_AFTER_MINUTES", default=5)
# Counter payment code: how long the till waits for a shopper confirming on her phone
# (USERPAYING), polling every POLL seconds, before the trade is reversed. The whole request
# stays under gunicorn's 30 s timeout: the code call, the polls and the reverse.
WECHAT_PAY_CODEPAY_DEADLINE_SECONDS = env.float("WECHAT_PAY_CODEPAY_DEADLINE_SECONDS", default=15)
WECHAT_PAY_CODEPAY_POLL_SECONDS = env.float("WECHAT_PAY_CODEPAY_POLL_SECONDS", default=3)
# The address WeChat is told a counter payment comes from (the till's server).
WECHAT_PAY_SERVER_IP = env("WECHAT_PAY_SERVER_IP", default="127.0.0.1")

# WeChat Pay API v2 (wechat/pay/v2.py). The merchant's API key (商户平台 API 密钥) signs every
# request, answer and pay notify, and its MD5 decrypts refund notifies. No default: the
# sandbox's test-only key is wechat/sandbox/keys/v2_api_key.txt.
WECHAT_PAY_V2_API_KEY = env("WECHAT_PAY_V2_API_KEY", default="")
# "MD5" (WeChat's default) or "HMAC-SHA256".
WECHAT_PAY_V2_SIGN_TYPE = env("WECHAT_PAY_V2_SIGN_TYPE", default="MD5")
# The API client certificate and its key (apiclient_cert.pem, apiclient_key.pem): WeChat asks
# for them (mutual TLS) on refund and reverse. The sandbox speaks plain HTTP and does not.
WECHAT_PAY_V2_CERT_PATH = env("WECHAT_PAY_V2_CERT_PATH", default="")
WECHAT_PAY_V2_CERT_KEY_PATH = env("WECHAT_PAY_V2_CERT_KEY_PATH", default="")

# WeChat Pay API v3 (wechat/pay/v3.py). No defaults: the sandbox's test-only keys are in
# wechat/sandbox/keys/ (wechat.sandbox.pay_v3.platform_settings lists the values).
# The merchant's API private key (apiclient_key.pem), which signs every request, and the serial
# number of its certificate.
WECHAT_PAY_V3_PRIVATE_KEY_PATH = env("WECHAT_PAY_V3_PRIVATE_KEY_PATH", default="")
WECHAT_PAY_V3_CERT_SERIAL_NO = env("WECHAT_PAY_V3_CERT_SERIAL_NO", default="")
# The WeChat Pay public key (pub_key.pem) that verifies answers and notifies, and its id
# (PUB_KEY_ID_..., the Wechatpay-Serial they carry).
WECHAT_PAY_V3_PUBLIC_KEY_PATH = env("WECHAT_PAY_V3_PUBLIC_KEY_PATH", default="")
WECHAT_PAY_V3_PUBLIC_KEY_ID = env("WECHAT_PAY_V3_PUBLIC_KEY_ID", default="")
# The 32-byte API v3 key (APIv3 密钥) that decrypts notifies.
WECHAT_PAY_V3_API_KEY = env("WECHAT_PAY_V3_API_KEY", default="")
# An answer or notify signed further than this from now is refused (a replay).
WECHAT_PAY_V3_MAX_SKEW_SECONDS = env.int("WECHAT_PAY_V3_MAX_SKEW_SECONDS", default=300)

# --- Order status to WeChat (wechat/sync.py) ---------------------------------------------------

# Our shipments' carrier codes -> WeChat's delivery ids (get_delivery_list), for the shipping
# upload. WECHAT_DELIVERY_IDS (JSON) adds to or overrides these.
WECHAT_DELIVERY_IDS = {
    "SF": "SF",
    "ZTO": "ZTO",
    "YTO": "YTO",
    "STO": "STO",
    "YD": "YD",
    "YUNDA": "YD",
    "JTSD": "JTSD",
    "JT": "JTSD",
    "EMS": "EMS",
    "JD": "JD",
    "JDL": "JD",
    **env.json("WECHAT_DELIVERY_IDS", default={}),
}
# Carrier codes of same-city riders (the store's own, delivery platforms): uploaded to WeChat
# as same-city delivery (logistics_type 2), without a tracking number.
WECHAT_SAME_CITY_CARRIERS = env.list(
    "WECHAT_SAME_CITY_CARRIERS", default=["STORE", "DADA", "SHANSONG", "MEITUAN", "FENGNIAO"]
)
# Subscribe messages: message -> template id, the mini-program page it opens, and each keyword's
# value, written with {number} {amount} {items} {store} {time} {carrier} {tracking_number}.
# Messages: paid, shipped, pickup_ready, refunded; one left out is not sent. No production
# default (template ids belong to the mini-program); with DEBUG, the sandbox's templates.
_SANDBOX_SUBSCRIBE_TEMPLATES = {
    "paid": {
        "template_id": "sandbox-order-paid",
        "page": "pages/order/detail?number={number}",
        "data": {
            "character_string1": "{number}",
            "amount2": "{amount}元",
            "thing3": "{items}",
            "time4": "{time}",
        },
    },
    "shipped": {
        "template_id": "sandbox-order-shipped",
        "page": "pages/order/detail?number={number}",
        "data": {
            "character_string1": "{number}",
            "thing2": "{carrier}",
            "character_string3": "{tracking_number}",
            "time4": "{time}",
        },
    },
    "pickup_ready": {
        "template_id": "sandbox-pickup-ready",
        "page": "pages/order/detail?number={number}",
        "data": {
            "character_string1": "{number}",
            "thing2": "{store}",
            "phrase3": "待取货",
            "time4": "{time}",
        },
    },
    "refunded": {
        "template_id": "sandbox-order-refunded",
        "page": "pages/order/detail?number={number}",
        "data": {
            "character_string1": "{number}",
            "amount2": "{amount}元",
            "thing3": "{items}",
            "time4": "{time}",
        },
    },
}
WECHAT_SUBSCRIBE_TEMPLATES = env.json(
    "WECHAT_SUBSCRIBE_TEMPLATES", default=_SANDBOX_SUBSCRIBE_TEMPLATES if DEBUG else {}
)

# --- Partners (partners/) ----------------------------------------------------------------------

# Encrypts partners' push-signing secrets at rest. Required outside DEBUG; with DEBUG (the demo,
# the tests) it falls back to a key derived from SECRET_KEY.
PARTNER_SECRET_KEY = env("PARTNER_SECRET_KEY", default="")
# After a signing secret is rotated, pushes carry a signature with the old secret too this long.
PARTNER_SECRET_ROTATION_HOURS = env.float("PARTNER_SECRET_ROTATION_HOURS", default=24.0)
# Pushes to partners' webhooks: seconds to wait for an answer (a timeout is retried).
PARTNER_PUSH_TIMEOUT_SECONDS = env.float("PARTNER_PUSH_TIMEOUT_SECONDS", default=5.0)
# Calls per API key to the partner API, counted in the cache (Redis when REDIS_URL is set).
PARTNER_THROTTLE_RATE = env("PARTNER_THROTTLE_RATE", default="600/min")
