"""API usage: every authenticated API response counted as it is sent, rolled up hourly into the
database, kept 13 months.

``record`` runs once per response (``ProtectedAPIView.finalize_response``). It costs one Redis round
trip and never raises: usage is worth less than the request. It increments one counter in a hash
per UTC hour and app::

    usage:<YYYYMMDDHH>:<app_id>   hash   "<org_id>|<group>|<status class>|<error|->|<policy|->|<endpoint>" -> count
    usage:<YYYYMMDDHH>:apps       set    the app ids counted in that hour (so the rollup never SCANs)
    usage:pending                 set    the hours not yet rolled up for good

The hashes live ``COUNTER_TTL`` (four days): that long, the counters stay the truth of their hour.
Without Redis (``REDIS_URL`` unset: development) the same layout lives in the local-memory cache, one
dictionary per hour, changed under a lock: exact within one process.

``rollup`` (a beat task, every few minutes) copies each pending hour's counters into ``UsageHour``
rows. It *sets* every row to its counter's total (an upsert on the row's unique key), never adds to
it, so a run that crashed half way, a rerun, or two overlapping runs leave the same totals. An hour
leaves the pending set once it has ended (plus ``FINAL_AFTER`` for clock skew between web workers)
and its rows are committed; the current hour is written as a partial total on every run.
"""

import calendar
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

KEY_PREFIX = "usage:"
PENDING_KEY = f"{KEY_PREFIX}pending"
COUNTER_TTL = 4 * 24 * 3600  # seconds; the rollup has this long to catch up after an outage
FINAL_AFTER = timedelta(minutes=5)  # an hour's counters stop changing this long after it ends
RETENTION_MONTHS = 13
NONE = "-"  # an absent error code or policy, in a counter's field
UNIQUE_FIELDS = ["hour", "app", "group", "status_class", "error_code", "policy", "endpoint"]
MAX_LENGTHS = {"group": 40, "error_code": 60, "policy": 100, "endpoint": 200}  # UsageHour's columns


# --- Hours and counter fields ----------------------------------------------------------------


def floor_hour(at: datetime) -> datetime:
    """The UTC hour ``at`` falls in, as its first instant."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_key(hour: datetime) -> str:
    return f"{floor_hour(hour):%Y%m%d%H}"


def hour_from_key(key: str) -> datetime:
    return datetime.strptime(key, "%Y%m%d%H").replace(tzinfo=UTC)


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "5xx"


@dataclass(frozen=True)
class Counted:
    """What one counter counts, within its hour and app."""

    organization_id: int
    group: str
    status_class: str
    error_code: str  # "" when the response was not an error
    policy: str  # "" unless the response was a 429 naming the policy it broke
    endpoint: str = ""  # "GET /api/v1/visits/{visit_id}" (api.endpoints); "" in counters older than it


def _clean(value: str | None, name: str) -> str:
    return (value or "").replace("|", "/")[: MAX_LENGTHS[name]]


def encode_field(counted: Counted) -> str:
    return "|".join(
        (
            str(counted.organization_id),
            counted.group,
            counted.status_class,
            counted.error_code or NONE,
            counted.policy or NONE,
            counted.endpoint or NONE,
        )
    )


def decode_field(field: str) -> Counted | None:
    parts = field.split("|")
    if len(parts) == 5:  # counted before endpoints were (2026-11-25): still in Redis for COUNTER_TTL
        parts.append(NONE)
    if len(parts) != 6 or not parts[0].isdigit():
        return None
    organization_id, group, klass, error_code, policy, endpoint = parts
    return Counted(
        int(organization_id),
        group,
        klass,
        "" if error_code == NONE else error_code,
        "" if policy == NONE else policy,
        "" if endpoint == NONE else endpoint,
    )


# --- Where the counters live ----------------------------------------------------------------------

Counters = dict[tuple[str, int], dict[str, int]]  # (hour key, app id) -> field -> count


def _decode(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisCounters:
    def __init__(self):
        from django_redis import get_redis_connection

        self.client = get_redis_connection("default")

    @staticmethod
    def _hash_key(hour: str, app_id: int) -> str:
        return f"{KEY_PREFIX}{hour}:{app_id}"

    @staticmethod
    def _apps_key(hour: str) -> str:
        return f"{KEY_PREFIX}{hour}:apps"

    def add(self, hour: str, app_id: int, field: str) -> None:
        self.add_many({(hour, app_id, field): 1})

    def add_many(self, counts: dict) -> None:
        """``{(hour, app_id, field): n}`` in one round trip (a pipeline, no MULTI)."""
        pipe = self.client.pipeline(transaction=False)
        for (hour, app_id, field), n in counts.items():
            counters, apps = self._hash_key(hour, app_id), self._apps_key(hour)
            pipe.hincrby(counters, field, n)
            pipe.expire(counters, COUNTER_TTL)
            pipe.sadd(apps, app_id)
            pipe.expire(apps, COUNTER_TTL)
            pipe.sadd(PENDING_KEY, hour)
        pipe.execute()

    def pending(self) -> set[str]:
        return {_decode(member) for member in self.client.smembers(PENDING_KEY)}

    def read(self, hours: list[str], app_ids: list[int] | None = None) -> Counters:
        """The counters of ``hours``, for ``app_ids`` or (``None``) every app counted in them."""
        if not hours:
            return {}
        if app_ids is None:
            pipe = self.client.pipeline(transaction=False)
            for hour in hours:
                pipe.smembers(self._apps_key(hour))
            pairs = [
                (hour, int(_decode(app_id)))
                for hour, members in zip(hours, pipe.execute(), strict=True)
                for app_id in members
            ]
        else:
            pairs = [(hour, app_id) for hour in hours for app_id in app_ids]
        if not pairs:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for hour, app_id in pairs:
            pipe.hgetall(self._hash_key(hour, app_id))
        return {
            pair: {_decode(field): int(count) for field, count in found.items()}
            for pair, found in zip(pairs, pipe.execute(), strict=True)
            if found
        }

    def forget(self, hours: list[str]) -> None:
        if hours:
            self.client.srem(PENDING_KEY, *hours)


_cache_lock = threading.Lock()


class CacheCounters:
    """The same counters in Django's cache (local memory), one ``{app_id: {field: count}}`` per hour.
    Read-modify-write under a lock: exact within one process, which is all development needs."""

    @staticmethod
    def _key(hour: str) -> str:
        return f"{KEY_PREFIX}{hour}"

    def add(self, hour: str, app_id: int, field: str) -> None:
        self.add_many({(hour, app_id, field): 1})

    def add_many(self, counts: dict) -> None:
        with _cache_lock:
            for (hour, app_id, field), n in counts.items():
                stored = cache.get(self._key(hour)) or {}
                fields = stored.setdefault(app_id, {})
                fields[field] = fields.get(field, 0) + n
                cache.set(self._key(hour), stored, COUNTER_TTL)
                pending = cache.get(PENDING_KEY) or set()
                if hour not in pending:
                    cache.set(PENDING_KEY, pending | {hour}, None)

    def pending(self) -> set[str]:
        return set(cache.get(PENDING_KEY) or ())

    def read(self, hours: list[str], app_ids: list[int] | None = None) -> Counters:
        found = cache.get_many([self._key(hour) for hour in hours])
        wanted = None if app_ids is None else set(app_ids)
        return {
            (hour, app_id): dict(fields)
            for hour in hours
            for app_id, fields in (found.get(self._key(hour)) or {}).items()
            if fields and (wanted is None or app_id in wanted)
        }

    def forget(self, hours: list[str]) -> None:
        with _cache_lock:
            pending = cache.get(PENDING_KEY) or set()
            cache.set(PENDING_KEY, pending - set(hours), None)


def counters() -> RedisCounters | CacheCounters:
    return RedisCounters() if settings.REDIS_URL else CacheCounters()


# --- Recording -------------------------------------------------------------------------------


# Counts wait in the process for up to USAGE_FLUSH_SECONDS and go to the shared counters in one round
# trip: counting must not cost every request a round trip of its own. A worker that dies loses at most
# those seconds of counts; the dashboards are that much behind.
_buffer: dict[tuple[str, int, str], int] = {}
_buffer_lock = threading.Lock()
_last_flush = [0.0]


def record(
    *,
    app_id: int,
    organization_id: int,
    group: str,
    status: int,
    error_code: str | None,
    policy: str | None,
    endpoint: str = "",
    at: datetime | None = None,
) -> None:
    """Count one API response of ``app_id`` in its hour. Buffered (see ``flush``); never raises."""
    try:
        field = encode_field(
            Counted(
                int(organization_id),
                _clean(group, "group"),
                status_class(int(status)),
                _clean(error_code, "error_code"),
                _clean(policy, "policy"),
                _clean(endpoint, "endpoint"),
            )
        )
        item = (hour_key(at or timezone.now()), int(app_id), field)
        with _buffer_lock:
            _buffer[item] = _buffer.get(item, 0) + 1
        if time.monotonic() - _last_flush[0] >= settings.USAGE_FLUSH_SECONDS:
            flush()
    except Exception:  # a lost count must never fail the request it counts
        logger.warning("usage not recorded (app %s, status %s)", app_id, status, exc_info=True)


def flush() -> None:
    """Send this process's buffered counts to the shared counters (one round trip)."""
    with _buffer_lock:
        counts = dict(_buffer)
        _buffer.clear()
        _last_flush[0] = time.monotonic()
    if counts:
        try:
            counters().add_many(counts)
        except Exception:
            logger.warning("usage counts lost: %d", sum(counts.values()), exc_info=True)


# --- Rollup and retention --------------------------------------------------------------------


def rollup(*, hours: list[datetime] | None = None, now: datetime | None = None) -> int:
    """Set the ``UsageHour`` rows of ``hours`` (default: every pending hour and the current one) to
    their counters' totals; returns how many rows were written. Each hour commits on its own, and
    leaves the pending set only after it has ended and its rows are committed, so a crash at any
    point is repaired by the next run. An hour whose counters have expired is left as it is."""
    from api.usage_models import UsageHour
    from partners.models import App
    from partners.services import apps_record_first_success

    now = now or timezone.now()
    store = counters()
    wanted = store.pending() | {hour_key(now)} if hours is None else {hour_key(hour) for hour in hours}
    keys = sorted(wanted)
    found = store.read(keys)
    # The organization comes from the app's row: a counter of an app deleted since is dropped (its
    # rows went with it), and no row can name an organization that does not exist.
    app_orgs = dict(App.objects.filter(pk__in={app_id for _, app_id in found}).values_list("pk", "organization_id"))
    written = 0
    for key in keys:
        hour = hour_from_key(key)
        totals: dict[tuple[int, str, str, str, str, str], int] = {}
        for (counted_hour, app_id), fields in found.items():
            if counted_hour != key or app_id not in app_orgs:
                continue
            for field, count in fields.items():
                counted = decode_field(field)
                if counted is None:
                    logger.warning("usage counter field not understood: %r", field)
                    continue
                row_key = (
                    app_id,
                    counted.group,
                    counted.status_class,
                    counted.error_code,
                    counted.policy,
                    counted.endpoint,
                )
                totals[row_key] = totals.get(row_key, 0) + count
        rows = [
            UsageHour(
                hour=hour,
                app_id=app_id,
                organization_id=app_orgs[app_id],
                group=group,
                status_class=klass,
                error_code=error_code,
                policy=policy,
                endpoint=endpoint,
                count=count,
            )
            for (app_id, group, klass, error_code, policy, endpoint), count in sorted(totals.items())
        ]
        if rows:
            with transaction.atomic():
                UsageHour.objects.bulk_create(
                    rows,
                    batch_size=500,
                    update_conflicts=True,
                    unique_fields=UNIQUE_FIELDS,
                    update_fields=["count", "organization"],
                )
                # The onboarding milestone, in the same transaction as the rows it is read from, so an
                # hour never leaves the pending set without it; hours go in order, the earliest first.
                apps_record_first_success(app_ids={row.app_id for row in rows if row.status_class == "2xx"}, hour=hour)
            written += len(rows)
        if hour + timedelta(hours=1) + FINAL_AFTER <= now:
            store.forget([key])
    return written


def months_before(at: datetime, months: int) -> datetime:
    year, month_index = divmod(at.year * 12 + at.month - 1 - months, 12)
    day = min(at.day, calendar.monthrange(year, month_index + 1)[1])
    return at.replace(year=year, month=month_index + 1, day=day)


def purge_older_than(*, months: int = RETENTION_MONTHS, now: datetime | None = None) -> int:
    """Delete the usage rows of hours more than ``months`` calendar months old; returns how many."""
    from api.usage_models import UsageHour

    cutoff = months_before(floor_hour(now or timezone.now()), months)
    deleted, _ = UsageHour.objects.filter(hour__lt=cutoff).delete()
    return deleted
