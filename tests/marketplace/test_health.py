"""Probes and readiness: /healthz touches nothing, /readyz asks the database, the cache and the Celery
broker with a short time limit each and answers 503 quickly when one is down; worker heartbeats come
and go; queue depth is read from the broker."""

import socket
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from marketplace import health
from tests.conftest import CLOSED_REDIS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh():
    health.forget()
    yield
    health.forget()


@pytest.fixture
def heartbeats(settings):
    settings.CACHES = {
        **settings.CACHES,
        "heartbeats": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex},
    }
    health._last_recorded.clear()
    yield
    health._last_recorded.clear()


def test_readyz_is_200_when_every_dependency_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    expected_broker = "ok" if django_settings.REDIS_URL else "ok (embedded)"
    assert body == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "broker": expected_broker}}
    assert "no-cache" in response["Cache-Control"]


def test_readyz_reports_a_stopped_redis_with_503_within_seconds(client, redis_stopped):
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"].startswith("error: ")
    assert body["checks"]["broker"].startswith("error: ")
    assert elapsed < 3
    # The class of the failure only, never the driver's message (it may carry a host or a password).
    assert "127.0.0.1" not in response.content.decode()


def test_healthz_stays_up_while_redis_is_down(client, redis_stopped):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.fixture
def silent_server():
    """A server that accepts connections and never answers: a hung Redis, or a host that swallows
    what it is sent."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    listener.close()


def test_a_dependency_that_never_answers_times_out_at_the_limit(client, settings, silent_server):
    settings.HEALTH_CHECK_TIMEOUT = 0.5
    settings.CELERY_BROKER_URL = silent_server
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker.startswith("timeout") or broker == "error: TimeoutError", broker
    assert elapsed < 1.5


def test_a_probe_still_running_is_waited_on_not_started_again(settings, monkeypatch):
    settings.HEALTH_CHECK_TIMEOUT = 0.2
    calls = []
    release = __import__("threading").Event()

    def hanging():
        calls.append(1)
        release.wait(5)
        return "ok"

    monkeypatch.setitem(health.PROBES, "broker", hanging)
    try:
        first = {c.name: c for c in health.checks(fresh=True)}
        second = {c.name: c for c in health.checks(fresh=True)}
        assert first["broker"].detail.startswith("timeout") and second["broker"].detail.startswith("timeout")
        assert first["database"].ok and first["cache"].ok
        assert len(calls) == 1
    finally:
        release.set()


def test_answers_are_kept_a_moment_per_process(settings, monkeypatch):
    calls = []

    def counting():
        calls.append(1)
        return "ok"

    monkeypatch.setitem(health.PROBES, "broker", counting)
    health.checks()
    health.checks()
    assert len(calls) == 1
    settings.HEALTH_CACHE_SECONDS = 0
    health.checks()
    assert len(calls) == 2


# --- Heartbeats ----------------------------------------------------------------------------------


def test_a_worker_heartbeat_shows_up_and_goes_missing_after_a_minute(heartbeats):
    now = 1_800_000_000.0
    assert health.workers(now=now) == []
    assert health.heartbeat_record("celery@alpha", now=now)
    (worker,) = health.workers(now=now + 5)
    assert (worker.name, worker.last_seen, worker.missing) == ("celery@alpha", now, False)
    # Celery's heartbeat comes every 2 s; the cache is written at most every HEARTBEAT_EVERY.
    assert not health.heartbeat_record("celery@alpha", now=now + 2)
    assert health.heartbeat_record("celery@beta", now=now + 30)
    alpha, beta = health.workers(now=now + health.HEARTBEAT_MISSING_AFTER + 1)
    assert (alpha.name, alpha.missing) == ("celery@alpha", True)
    assert (beta.name, beta.missing) == ("celery@beta", False)
    # Heard again: live again.
    assert health.heartbeat_record("celery@alpha", now=now + 70)
    assert [w.missing for w in health.workers(now=now + 75)] == [False, False]
    # Not heard for HEARTBEAT_KEEP: forgotten.
    assert [w.name for w in health.workers(now=now + 31 + health.HEARTBEAT_KEEP)] == ["celery@alpha"]


def test_a_worker_that_shuts_down_is_gone_not_missing(heartbeats):
    now = time.time()
    health.heartbeat_record("celery@alpha", now=now)
    health.heartbeat_record("celery@beta", now=now)
    health.heartbeat_forget("celery@alpha")
    assert [w.name for w in health.workers(now=now)] == ["celery@beta"]


def test_a_heartbeat_never_raises_when_the_cache_is_down(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": CLOSED_REDIS,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
    assert health.heartbeat_record("celery@alpha", force=True) is False
    assert health.workers() is None


class _Sender:
    """Stands in for Celery's consumer, worker or heart: what the signals carry."""

    def __init__(self, hostname):
        self.hostname = hostname
        self.eventer = self


def test_the_celery_signals_record_the_worker(heartbeats):
    from celery import signals

    signals.worker_ready.send(sender=_Sender("celery@signal"))
    assert [w.name for w in health.workers()] == ["celery@signal"]
    signals.heartbeat_sent.send(sender=_Sender("celery@other"))
    assert [w.name for w in health.workers()] == ["celery@other", "celery@signal"]
    signals.worker_shutdown.send(sender=_Sender("celery@signal"))
    assert [w.name for w in health.workers()] == ["celery@other"]


# --- Queue depth ---------------------------------------------------------------------------------


def test_queue_depth_of_the_embedded_broker_counts_its_message_files(settings, tmp_path: Path):
    settings.CELERY_BROKER_URL = "filesystem://localhost//"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path)}
    for n, queue in enumerate(["celery", "celery", "celery", "emails"]):
        (tmp_path / f"{1000 + n}_{uuid.uuid4()}.{queue}.msg").write_bytes(b"{}")
    (tmp_path / "not-a-message.txt").write_text("")
    assert health.queue_depths(["celery", "emails", "other"]) == {
        "queues": {"celery": 3, "emails": 1, "other": 0},
        "reserved": None,
    }


def test_queue_depth_is_none_when_the_broker_is_down(redis_stopped):
    assert health.queue_depths(["celery"]) is None


@pytest.mark.redis
def test_queue_depth_of_redis_counts_every_priority_list(settings):
    import redis

    settings.CELERY_BROKER_URL = django_settings.REDIS_URL
    queue = f"test-depth-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        client.lpush(queue, "a", "b")
        client.lpush(f"{queue}\x06\x163", "c")
        depths = health.queue_depths([queue])
        assert depths["queues"] == {queue: 3}
        assert isinstance(depths["reserved"], int)
    finally:
        client.delete(queue, f"{queue}\x06\x163")
        client.close()
