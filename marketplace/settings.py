"""Project settings, read from the environment.

Every variable has an embedded default so the project runs with nothing but Python: no
``DATABASE_URL`` means SQLite under ``var/``, no ``REDIS_URL`` means a local-memory cache and a
filesystem Celery broker. Production sets them (see README, "Configuration").
"""

import os
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url

from marketplace.env import env_bool, env_list

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", default=True)
_DEV_SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"  # noqa: S105
SECRET_KEY = os.environ.get("SECRET_KEY", "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")

if DEBUG:
    _defaulted = [name for name in ("SECRET_KEY", "ALLOWED_HOSTS") if not os.environ.get(name)]
    SECRET_KEY = SECRET_KEY or _DEV_SECRET_KEY
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]", "testserver"]
    if _defaulted and "pytest" not in sys.modules:
        warnings.warn(
            "DEBUG is on and " + ", ".join(_defaulted) + " fell back to development values. "
            "Never serve real traffic like this: set DEBUG=0 with SECRET_KEY and ALLOWED_HOSTS.",
            stacklevel=1,
        )
else:
    _missing = [name for name in ("SECRET_KEY", "ALLOWED_HOSTS") if not os.environ.get(name)]
    if _missing:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"DEBUG is off, so these must be set: {', '.join(_missing)}")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "oauth2_provider",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_prometheus",
    "partners",
    "consent",
    "api",
    "portal",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "marketplace.middleware.RequestIDMiddleware",
    "marketplace.middleware.AccessLogMiddleware",
    # Deprecation, Sunset and Link headers under a published deprecation's prefix, and 410 once it is
    # enforced (before any authentication); outside the error middleware, so its problems get them too.
    "api.deprecations.DeprecationMiddleware",
    # Errors under /api/ and /fhir/ are problem+json or OperationOutcome, never the portal's HTML pages.
    "api.middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns django-ratelimit's refusal (a PermissionDenied) into RATELIMIT_VIEW's 429.
    "django_ratelimit.middleware.RatelimitMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "marketplace.urls"
WSGI_APPLICATION = "marketplace.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            # The web process, the worker and beat share one file: WAL and immediate transactions
            # keep them from failing each other with "database is locked".
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DATABASE_IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, rate-limit store and Celery broker ------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "mkt",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than any countdown or ETA the project schedules (webhook retries wait up to 24 h),
        # so an unacknowledged task is not handed to a second worker while it still waits.
        "visibility_timeout": int(timedelta(hours=26).total_seconds()),
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "mkt"},
        # Celery workers' heartbeats (marketplace/health.py) must reach the web process that shows
        # /status/; with Redis they share the default cache, here a directory under var/.
        "heartbeats": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "heartbeats"),
        },
    }
    _broker_dir = VAR_DIR / "celery-broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    # kombu's filesystem transport needs no server, yet lets a separate worker process consume.
    CELERY_BROKER_URL = "filesystem://localhost//"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Without it kombu writes its broadcast (control) exchange under the working directory.
        "control_folder": str(_broker_dir / "control"),
    }
    # The local-memory cache is per process; that is fine for development and is what the
    # "REDIS_URL unset" row of the configuration table promises.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

RATELIMIT_USE_CACHE = "default"
# The API's quotas (api/ratelimit.py), from each organization's tier. Off only where a test suite
# exercises other things; the rate-limit tests turn them on.
RATE_LIMITS = env_bool("RATE_LIMITS", default=True)
# What certification reads (partners/sandbox_trace.py, api/sandbox_trace.py): one INSERT per request of a
# sandbox app, nothing for production apps. Off only where a test suite pins query counts.
SANDBOX_TRACE = env_bool("SANDBOX_TRACE", default=True)
# The token endpoint's per-address limits (partners/token_limits.py), on top of each client's quota
# from its tier: requests a minute, and failed attempts (wrong credentials or grants) per 15 minutes
# before the address is refused until the window ends. 0 leaves a limit out.
TOKEN_ENDPOINT_IP_PER_MINUTE = int(os.environ.get("TOKEN_ENDPOINT_IP_PER_MINUTE", "120"))
TOKEN_ENDPOINT_IP_FAILURES_PER_15_MINUTES = int(os.environ.get("TOKEN_ENDPOINT_IP_FAILURES_PER_15_MINUTES", "20"))
# Seconds a resolved bearer token is kept in the shared cache (partners/token_cache.py); only a
# cache every process shares can be told at once that a token was revoked.
TOKEN_CACHE_SECONDS = int(os.environ.get("TOKEN_CACHE_SECONDS", "60" if REDIS_URL else "0"))
# Seconds a consent decision (may this app see this class of this patient's data?) is kept in the
# shared cache (consent/access_cache.py); any change it rests on makes it stale at once.
ACCESS_DECISION_CACHE_SECONDS = int(os.environ.get("ACCESS_DECISION_CACHE_SECONDS", "60" if REDIS_URL else "0"))
# The denial log behind "Why was I denied?" (marketplace/denial_log.py): each refusal of an identified
# app, kept in the shared cache this many days, at most this many per app per clock hour (0: none kept).
DENIAL_LOG_DAYS = int(os.environ.get("DENIAL_LOG_DAYS", "7"))
DENIAL_LOG_PER_APP_PER_HOUR = int(os.environ.get("DENIAL_LOG_PER_APP_PER_HOUR", "600"))
RATELIMIT_VIEW = "marketplace.views.ratelimited"

# --- Celery ----------------------------------------------------------------------------------
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Synced into django-celery-beat's tables at beat start; admins can pause or retime them there.
CELERY_BEAT_SCHEDULE = {
    # Events (partners/event_services.py, partners/webhooks.py): fan out what a lost task left behind,
    # send deliveries whose retry time has come (or whose worker died), keep 30 days.
    "dispatch-pending-events": {
        "task": "partners.tasks.dispatch_pending_events",
        "schedule": 15.0,
        "options": {"expire_seconds": 14},
    },
    "queue-due-deliveries": {
        "task": "partners.tasks.queue_due_deliveries",
        "schedule": 5.0,
        "options": {"expire_seconds": 4},
    },
    "purge-old-events": {"task": "partners.tasks.purge_old_events", "schedule": 3600.0},
    "purge-expired-oauth-records": {"task": "partners.tasks.purge_expired_oauth_records", "schedule": 3600.0},
    "expire-consents": {"task": "consent.tasks.expire_consents", "schedule": 300.0},
    # A run still queued after 50 s (no worker was free) is dropped: the next one seals it all anyway.
    "seal-access-audit": {
        "task": "api.tasks.seal_access_audit",
        "schedule": 60.0,
        "options": {"expire_seconds": 50},  # django-celery-beat's name for apply_async's expires
    },
    "purge-expired-idempotency-keys": {"task": "api.tasks.purge_expired_idempotency_keys", "schedule": 3600.0},
    # Usage counters (api/usage.py) into UsageHour rows; a rerun sets the same totals, never adds.
    "rollup-usage": {"task": "api.tasks.rollup_usage", "schedule": 300.0, "options": {"expire_seconds": 240}},
    "purge-old-usage": {"task": "api.tasks.purge_old_usage", "schedule": 86400.0},
    # The sandbox trace certification reads (partners/sandbox_trace.py) is kept 14 days.
    "purge-sandbox-traces": {"task": "partners.tasks.purge_sandbox_traces", "schedule": 86400.0},
    # Portal analytics (portal/analytics.py): page views and searches kept PORTAL_ANALYTICS_RETENTION_DAYS.
    "purge-old-portal-events": {"task": "portal.tasks.purge_old_portal_events", "schedule": 86400.0},
    # Adaptive limits (api/adaptive.py): a run the workers could not start within 8 s is dropped, as the
    # next one reads the same, fresher, signals.
    "evaluate-adaptive-limits": {
        "task": "api.tasks.evaluate_adaptive_limits",
        "schedule": 10.0,
        "options": {"expire_seconds": 8},
    },
    # Deprecation notices (api/deprecation_notices.py): each organization once per milestone, however
    # often this runs; a run still queued after 50 minutes is dropped, the next one does the same work.
    "send-deprecation-notices": {
        "task": "api.tasks.send_deprecation_notices",
        "schedule": 3600.0,
        "options": {"expire_seconds": 3000},
    },
}
# Seconds a process keeps usage counts before sending them to the shared counters in one round trip.
USAGE_FLUSH_SECONDS = float(os.environ.get("USAGE_FLUSH_SECONDS", "2"))
# Adaptive limits (api/adaptive.py, docs/adaptive-limits.md) of the high-cost endpoint groups.
# error_rate: share of the responses that are 5xx (4xx are the caller's own mistakes and 429s our
# refusals; neither says the group is unwell); latency_ms: mean response time. Either, reached over
# window_seconds with at least min_requests responses, tightens the group's quotas one of ``steps``;
# it steps back up after recover_after_seconds below both. An app whose requests per minute exceed
# surge_multiple times its usual rate (and surge_floor_per_minute) is capped there alone until its
# rate has stayed under the cap for surge_cooldown_seconds.
ADAPTIVE_GROUPS = {
    "eligibility": {
        "error_rate": 0.2,
        "latency_ms": 2000,
        "min_requests": 20,
        "window_seconds": 60,
        "steps": (1.0, 0.5, 0.25),
        "recover_after_seconds": 120,
        "surge_multiple": 5,
        "surge_floor_per_minute": 30,
        "surge_cooldown_seconds": 300,
    },
}
# Seconds a process answers from its copy of the limits in force before reading them again.
ADAPTIVE_REFRESH_SECONDS = float(os.environ.get("ADAPTIVE_REFRESH_SECONDS", "2"))
# Idempotency-Key (api/idempotency.py): how long a key names its operation, and after how long a
# first attempt that never finished (its process died) may be taken over by a retry.
IDEMPOTENCY_KEY_HOURS = 24
IDEMPOTENCY_CLAIM_SECONDS = 60
# The simulated payer of eligibility checks answers after this long (0 in tests).
ELIGIBILITY_PAYER_LATENCY_MS = int(os.environ.get("ELIGIBILITY_PAYER_LATENCY_MS", "400"))
# Partner-supplied JWKS URLs must resolve to public addresses; development may use loopback ones.
# (Webhook URLs have their own, narrower rule: WEBHOOKS_ALLOW_LOOPBACK below.)
ALLOW_PRIVATE_NETWORK_URLS = env_bool("ALLOW_PRIVATE_NETWORK_URLS", default=DEBUG)
# Webhook delivery (partners/webhooks.py, partners/net.py). Endpoints must resolve to public
# addresses, checked at save and at every delivery; ALLOW_PRIVATE_NETWORK_URLS does not apply to them.
# WEBHOOKS_ALLOW_LOOPBACK admits loopback (127.0.0.0/8, ::1) and nothing else, so a receiver on the
# developer's machine works while 10.x, 169.254.x and metadata names stay refused; development only.
WEBHOOKS_ALLOW_LOOPBACK = env_bool("WEBHOOKS_ALLOW_LOOPBACK", default=False)
# Seconds to connect (TCP and TLS), and for the whole request, connecting included, to the response.
WEBHOOK_CONNECT_TIMEOUT = float(os.environ.get("WEBHOOK_CONNECT_TIMEOUT", "3"))
WEBHOOK_TOTAL_TIMEOUT = float(os.environ.get("WEBHOOK_TOTAL_TIMEOUT", "10"))
# A worker holds a delivery this long per attempt; one that dies lets it go when the lease passes and
# the due-deliveries sweep hands it to another. Longer than an attempt can take (a DNS lookup, then the
# request), or two would overlap.
WEBHOOK_CLAIM_SECONDS = int(os.environ.get("WEBHOOK_CLAIM_SECONDS", "60"))
if WEBHOOKS_ALLOW_LOOPBACK and not DEBUG:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("WEBHOOKS_ALLOW_LOOPBACK is for development only; it needs DEBUG on")
if WEBHOOK_CLAIM_SECONDS <= WEBHOOK_TOTAL_TIMEOUT + WEBHOOK_CONNECT_TIMEOUT:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("WEBHOOK_CLAIM_SECONDS must exceed WEBHOOK_TOTAL_TIMEOUT + WEBHOOK_CONNECT_TIMEOUT")
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Auth ------------------------------------------------------------------------------------
AUTH_USER_MODEL = "partners.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:home"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_RESET_TIMEOUT = int(timedelta(hours=3).total_seconds())
EMAIL_VERIFICATION_MAX_AGE = int(timedelta(days=2).total_seconds())
INVITATION_MAX_AGE = timedelta(days=7)

# --- OAuth2 (django-oauth-toolkit) -------------------------------------------------------------
OAUTH2_PROVIDER_APPLICATION_MODEL = "partners.App"
from marketplace.oidc_key import load_or_create as _oidc_key  # noqa: E402

if not DEBUG and not os.environ.get("OIDC_RSA_PRIVATE_KEY"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("DEBUG is off, so OIDC_RSA_PRIVATE_KEY (a PEM RSA private key) must be set")

FHIR_BASE_PATH = "/fhir/r4"
OAUTH2_PROVIDER = {
    "OAUTH2_VALIDATOR_CLASS": "partners.oauth.SmartOAuth2Validator",
    "SCOPES_BACKEND_CLASS": "partners.oauth.RegistryScopes",
    # Its token lifetimes come from the tier: patient-facing as the tier says, system at most 300 s.
    "OAUTH2_SERVER_CLASS": "partners.oauth.SmartServer",
    "ROTATE_REFRESH_TOKEN": True,
    # The longest any tier allows; each tier's own limit is enforced when a refresh token is used.
    "REFRESH_TOKEN_EXPIRE_SECONDS": 60 * 60 * 24 * 180,
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": _oidc_key(VAR_DIR),
    "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OIDC_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
    "PKCE_REQUIRED": True,
    # https only by default; an app whose registration passed partners.validators (http for
    # sandbox apps and loopback addresses) widens this for itself in App.get_allowed_schemes.
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    "ALLOW_URI_WILDCARDS": False,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    # RFC 9700 (OAuth 2.0 Security BCP): adopt every compliant behaviour now, not at DOT 4.0.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
}

# --- REST framework and OpenAPI ---------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # The API authenticates by bearer token in the Authorization header only: never a session
    # cookie (no CSRF exposure) nor HTTP Basic. Views choose their layers (api.permissions).
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.authentication.BearerTokenAuthentication"],
    # Every DRF error becomes application/problem+json (/api/) or an OperationOutcome (/fhir/).
    "EXCEPTION_HANDLER": "api.exceptions.exception_handler",
}
# One document per API version (api/openapi.py), served at /api/schema/<version>/ and committed as
# openapi/<version>.json: the published contract `manage.py openapi_check` holds the code to.
SPECTACULAR_SETTINGS = {
    "TITLE": "Healthcare Marketplace API",
    "SERVE_INCLUDE_SCHEMA": False,
    # Its deploy check would build one document of all routes; api.openapi checks each published one instead.
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
    # The documents and the reference are public: a stale token in the browser must not hide them.
    "SERVE_AUTHENTICATION": [],
    # Tags come from the path after /api/<version>/ ("visits", "consents").
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    # Request bodies get components of their own (FooRequest), so a request and a response can change apart.
    "COMPONENT_SPLIT_REQUEST": True,
    # Enum names that do not depend on which other enums share a field name in the same document.
    "ENUM_NAME_OVERRIDES": {
        "ProblemLayerEnum": "api.errors.LAYERS",
        "VisitStatusCodeEnum": "api.openapi.visit_statuses",
        "LabShareStatusEnum": "api.workflows.lab_shares.STATUSES",
        "EligibilityOutcomeEnum": "api.workflows.eligibility.OUTCOMES",
        "EligibilityServiceTypeEnum": "api.workflows.eligibility.SERVICE_TYPE_KEYS",
        "OrganizationStatusEnum": "partners.models.Organization.Status",
    },
    # The reference runs offline: its assets come from drf-spectacular-sidecar, and Swagger UI's online
    # validator badge (a request to a third party) is off.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None, "displayOperationId": True},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Email -----------------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
# Seconds an SMTP connection may hang: a stuck mail server must not hold a task (and the notice rows it
# has locked, api/deprecation_notices.py) for the OS's TCP timeout.
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "10"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Healthcare Marketplace <no-reply@marketplace.test>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# The absolute address of the portal, used in emails sent outside a request (Celery tasks).
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# The Markdown pages the docs portal serves at /docs/<slug>/ (portal/docs.py).
DOCS_DIR = Path(os.environ.get("DOCS_DIR", BASE_DIR / "docs"))
# Days the portal's analytics events (docs page views, searches, error pages visited) are kept.
PORTAL_ANALYTICS_RETENTION_DAYS = int(os.environ.get("PORTAL_ANALYTICS_RETENTION_DAYS", "180"))

# --- Internationalization and static files --------------------------------------------------
FORMS_URLFIELD_ASSUME_HTTPS = True  # the Django 6 default, adopted now
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Portal forms are small; anything larger is an error, not a slow upload.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# --- Security (enforced when DEBUG is off; `manage.py check --deploy` stays clean) -------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the portal's forms read the token from the form, not from JavaScript
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(60 * 60 * 24 * 365)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if env_bool("BEHIND_TLS_PROXY", default=True):
        # gunicorn sits behind a load balancer that terminates TLS and sets this header.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# Behind a load balancer that appends the caller's address to X-Forwarded-For (the access audit
# records it); off, the header is ignored as the caller's own claim.
TRUST_X_FORWARDED_FOR = env_bool("TRUST_X_FORWARDED_FOR", default=False)

# --- Logging: JSON lines through structlog, each carrying the request's correlation id ----------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOG_FORMAT = os.environ.get("LOG_FORMAT", "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {
            "()": "marketplace.logging.formatter_factory",
            "fmt": LOG_FORMAT,
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "django.db.backends": {"level": "INFO"},
    },
}

from marketplace.logging import configure_structlog  # noqa: E402

configure_structlog()
