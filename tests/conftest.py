import pytest
from django.conf import settings as django_settings

from marketplace.celery import app as celery_app


def pytest_configure(config):
    # Tasks run in the test process, so an email queued after commit lands in mail.outbox.
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    django_settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` or ``redis`` need the real server; they run whenever its URL is set
    (CI always sets both) and are skipped, saying why, when it is not."""
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://...")
    skip_redis = pytest.mark.skip(reason="needs Redis: set REDIS_URL=redis://...")
    for item in items:
        if "postgres" in item.keywords and not django_settings.DATABASE_IS_POSTGRES:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not django_settings.REDIS_URL:
            item.add_marker(skip_redis)


@pytest.fixture(autouse=True)
def _public_base_url(settings):
    settings.PUBLIC_BASE_URL = "http://testserver"
    settings.ELIGIBILITY_PAYER_LATENCY_MS = 0
    # Quotas are tested in tests/api/test_ratelimit.py; elsewhere a test's quick succession of
    # requests is not what it is about.
    settings.RATE_LIMITS = False
    # Certification's sandbox trace costs a sandbox request one INSERT, which the query budgets elsewhere
    # are not about; its own tests (test_sandbox_trace, test_certification*) turn it on.
    settings.SANDBOX_TRACE = False
    settings.USAGE_FLUSH_SECONDS = 0  # every count straight to the counters, for the usage tests


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    from api import deprecations

    cache.clear()
    deprecations.forget()  # its per-process copy, which a rolled-back test's rows must not outlive
    yield


# Nothing listens on port 1: every connection to this "Redis" is refused at once.
CLOSED_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_stopped(settings):
    """The cache and the broker pointed at a Redis that is not running."""
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": CLOSED_REDIS,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        },
    }
    settings.CELERY_BROKER_URL = CLOSED_REDIS
