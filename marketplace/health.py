"""Dependency probes and Celery worker heartbeats: one set of checks for ``/readyz`` and ``/status/``.

Probes. Each dependency (database, cache, Celery broker) is asked one cheap question in a thread of
its own, and every answer is waited for at most ``HEALTH_CHECK_TIMEOUT`` seconds in all: a dead Redis
or a database host that swallows packets answers "timeout" in seconds, not after the operating
system's minutes of TCP retries. A probe still running past its deadline is left to finish in the
background and is reused by the next caller instead of starting another, so a hung dependency never
piles up threads. Answers are kept ``HEALTH_CACHE_SECONDS`` in this process's memory (not in the
cache, which may be the thing that is down), so probes arriving together cost one round each.

Heartbeats. A Celery worker records its name and the time in the shared heartbeat cache every
``HEARTBEAT_EVERY`` seconds (``marketplace.celery`` connects it to Celery's own heartbeat); a worker
not heard for ``HEARTBEAT_MISSING_AFTER`` seconds is "missing", and one not heard for
``HEARTBEAT_KEEP`` is forgotten. A worker that shuts down cleanly removes itself.

Imports no app.
"""

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from django.conf import settings

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 2.0  # seconds, for all probes together (they run at once)
DEFAULT_CACHE_SECONDS = 2.0

HEARTBEAT_CACHE = "heartbeats"  # the cache alias, when settings define it; else "default"
HEARTBEAT_EVERY = 10.0
HEARTBEAT_MISSING_AFTER = 60.0
HEARTBEAT_KEEP = 3600
_WORKERS_KEY = "health:workers"  # the names of the workers heard within HEARTBEAT_KEEP
_WORKER_KEY = "health:worker:{}"

# kombu's Redis transport keeps a queue's messages of each priority step in a list of its own.
_REDIS_PRIORITY_SEP = "\x06\x16"
_REDIS_PRIORITY_STEPS = (0, 3, 6, 9)
_REDIS_UNACKED = "unacked"  # kombu's hash of messages a worker holds (reserved, or waiting for an ETA)


@dataclass(frozen=True)
class Check:
    name: str  # database, cache, broker
    ok: bool
    detail: str  # "ok", "ok (embedded)", "timeout", "error: <exception class>"
    seconds: float | None = None  # how long the answer took

    def as_dict(self) -> dict:
        return asdict(self)


def _timeout() -> float:
    return float(getattr(settings, "HEALTH_CHECK_TIMEOUT", DEFAULT_TIMEOUT))


def _failure(exc: BaseException) -> str:
    # The class only: a driver's message can carry a host name, a user or a URL with its password.
    return f"error: {exc.__class__.__name__}"


# --- The probes ------------------------------------------------------------------------------------


def _probe_database() -> str:
    from django.db import connections

    connection = connections["default"]  # this thread's own connection, closed below
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()
    return "ok"


def _redis_client(url: str, timeout: float):
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


def _cache_redis_url() -> str | None:
    """The URL of the default cache when it is Redis (django-redis or Django's own backend)."""
    config = settings.CACHES.get("default", {})
    backend = config.get("BACKEND", "")
    if "redis" not in backend.lower():
        return None
    location = config.get("LOCATION")
    if isinstance(location, (list, tuple)):
        location = location[0] if location else None
    return location or None


def _probe_cache() -> str:
    url = _cache_redis_url()
    if url:
        # A connection of its own with short socket timeouts, whatever the cache's pool is set to.
        client = _redis_client(url, _timeout())
        try:
            client.ping()
        finally:
            client.close()
        return "ok"
    from django.core.cache import cache

    cache.set("health:probe", "1", 5)
    if cache.get("health:probe") != "1":
        return "error: value not kept"
    return "ok"


def broker_url() -> str:
    return getattr(settings, "CELERY_BROKER_URL", "") or ""


def broker_is_redis() -> bool:
    return urlsplit(broker_url()).scheme in ("redis", "rediss")


def _probe_broker() -> str:
    if not broker_is_redis():
        # kombu's filesystem transport: a directory this host reads and writes, no server to ask.
        return "ok (embedded)"
    client = _redis_client(broker_url(), _timeout())
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


PROBES = {"database": _probe_database, "cache": _probe_cache, "broker": _probe_broker}


class _Run:
    """One probe running in its own daemon thread; waited for with a deadline, reused while it runs."""

    def __init__(self, name: str, probe):
        self.name = name
        self.started = time.monotonic()
        self.done = threading.Event()
        self.result: Check | None = None
        self._probe = probe
        threading.Thread(target=self._run, name=f"health-{name}", daemon=True).start()

    def _run(self) -> None:
        try:
            detail = self._probe()
            ok = detail.startswith("ok")
        except Exception as exc:  # a probe reports any failure of its dependency, whatever its class
            detail, ok = _failure(exc), False
        self.result = Check(self.name, ok, detail, round(time.monotonic() - self.started, 4))
        self.done.set()


_lock = threading.Lock()
_running: dict[tuple, _Run] = {}
_answers: dict[tuple, tuple[float, list[Check]]] = {}


def fingerprint() -> tuple:
    """What the answers depend on: a change of settings (tests override them) asks again."""
    database = settings.DATABASES.get("default", {})
    return (
        database.get("ENGINE"),
        str(database.get("NAME")),
        database.get("HOST"),
        database.get("PORT"),
        repr(settings.CACHES.get("default")),
        broker_url(),
    )


def checks(*, fresh: bool = False) -> list[Check]:
    """Every dependency's answer, within the time limit; from this process's last round if it is recent."""
    key = fingerprint()
    keep = float(getattr(settings, "HEALTH_CACHE_SECONDS", DEFAULT_CACHE_SECONDS))
    now = time.monotonic()
    with _lock:
        cached = _answers.get(key)
        if cached and not fresh and now - cached[0] < keep:
            return cached[1]
        runs = []
        for name, probe in PROBES.items():
            run = _running.get((key, name))
            if run is None or run.done.is_set():
                run = _running[(key, name)] = _Run(name, probe)
            runs.append(run)
    deadline = now + _timeout()
    results = []
    for run in runs:
        if run.done.wait(max(0.0, deadline - time.monotonic())) and run.result is not None:
            results.append(run.result)
        else:
            waited = round(time.monotonic() - run.started, 4)
            results.append(Check(run.name, False, f"timeout: no answer within {_timeout():g} s", waited))
    with _lock:
        _answers[key] = (time.monotonic(), results)
    return results


def forget() -> None:
    """Drop the remembered answers, and the finished runs (tests)."""
    with _lock:
        _answers.clear()
        for key in [key for key, run in _running.items() if run.done.is_set()]:
            del _running[key]


# --- Queue depth -----------------------------------------------------------------------------------


def _filesystem_folder() -> str | None:
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    return options.get("data_folder_in")


def queue_depths(queues) -> dict | None:
    """Messages waiting in each Celery queue, and those workers hold (reserved or waiting for their
    ETA) when the broker can tell; None when the broker cannot be asked in time."""
    queues = sorted(set(queues))
    if broker_is_redis():
        client = _redis_client(broker_url(), _timeout())
        try:
            pipe = client.pipeline(transaction=False)
            for queue in queues:
                for step in _REDIS_PRIORITY_STEPS:
                    pipe.llen(f"{queue}{_REDIS_PRIORITY_SEP}{step}" if step else queue)
            pipe.hlen(_REDIS_UNACKED)
            replies = pipe.execute()
        except Exception as exc:
            log.warning("queue depth unavailable", extra={"error": exc.__class__.__name__})
            return None
        finally:
            client.close()
        steps = len(_REDIS_PRIORITY_STEPS)
        depths = {queue: sum(replies[i * steps : (i + 1) * steps]) for i, queue in enumerate(queues)}
        return {"queues": depths, "reserved": replies[-1]}
    folder = _filesystem_folder()
    if not folder:
        return None
    # The filesystem transport's own count (kombu's _size): one file per message, named <...>.<queue>.msg.
    depths = dict.fromkeys(queues, 0)
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                queue = entry.name.partition(".")[2].removesuffix(".msg")
                if queue in depths and entry.name.endswith(".msg"):
                    depths[queue] += 1
    except OSError:
        return None
    return {"queues": depths, "reserved": None}


# --- Worker heartbeats -----------------------------------------------------------------------------


def _heartbeat_cache():
    from django.core.cache import caches

    return caches[HEARTBEAT_CACHE if HEARTBEAT_CACHE in settings.CACHES else "default"]


_last_recorded: dict[str, float] = {}


def heartbeat_record(name: str, *, now: float | None = None, force: bool = False) -> bool:
    """Record that worker ``name`` is alive (at most every ``HEARTBEAT_EVERY`` s unless forced);
    whether it was written. Never raises: a worker keeps working when the cache is down."""
    now = time.time() if now is None else now
    if not force and now - _last_recorded.get(name, float("-inf")) < HEARTBEAT_EVERY:
        return False
    try:
        store = _heartbeat_cache()
        store.set(_WORKER_KEY.format(name), now, HEARTBEAT_KEEP)
        names = store.get(_WORKERS_KEY) or []
        if name not in names:
            # Read, add, write: two workers starting at once may drop each other's name, which the
            # next heartbeat (this check runs on every one) puts back.
            store.set(_WORKERS_KEY, sorted({*names, name}), HEARTBEAT_KEEP)
    except Exception as exc:
        log.warning("worker heartbeat not recorded", extra={"worker": name, "error": exc.__class__.__name__})
        return False
    _last_recorded[name] = now
    return True


def heartbeat_forget(name: str) -> None:
    """A worker shutting down cleanly: it is gone, not missing."""
    _last_recorded.pop(name, None)
    try:
        store = _heartbeat_cache()
        store.delete(_WORKER_KEY.format(name))
        names = store.get(_WORKERS_KEY) or []
        if name in names:
            store.set(_WORKERS_KEY, [n for n in names if n != name], HEARTBEAT_KEEP)
    except Exception as exc:
        log.warning("worker heartbeat not removed", extra={"worker": name, "error": exc.__class__.__name__})


@dataclass(frozen=True)
class Worker:
    name: str
    last_seen: float  # epoch seconds
    age: float  # seconds since
    missing: bool


def workers(*, now: float | None = None) -> list[Worker] | None:
    """The workers heard within ``HEARTBEAT_KEEP``, by name; None when the cache cannot be read."""
    now = time.time() if now is None else now
    try:
        store = _heartbeat_cache()
        names = store.get(_WORKERS_KEY) or []
        seen = store.get_many([_WORKER_KEY.format(name) for name in names]) if names else {}
    except Exception as exc:
        log.warning("worker heartbeats unavailable", extra={"error": exc.__class__.__name__})
        return None
    found = []
    for name in names:
        last_seen = seen.get(_WORKER_KEY.format(name))
        if last_seen is None or now - last_seen > HEARTBEAT_KEEP:
            continue
        age = max(0.0, now - last_seen)
        found.append(Worker(name, last_seen, age, age > HEARTBEAT_MISSING_AFTER))
    return found
