"""Adaptive limits for the high-cost endpoint groups (``settings.ADAPTIVE_GROUPS``): quotas that tighten
by themselves while a group is unwell and recover once it is well again, and a cap on one app alone
while it runs far above its own usual rate. ``docs/adaptive-limits.md`` says the same to partners.

Three parts, each paid for where it is cheap:

- ``observe`` runs once per response of an adaptive group (``ProtectedAPIView.finalize_response``).
  It adds the response to counts kept in the process, sent to the shared store every
  ``USAGE_FLUSH_SECONDS`` in one round trip, as usage counts are (``api.usage``): a request pays no
  round trip for it. The counts are kept per group in buckets of ``BUCKET_SECONDS``::

      adaptive:<group>:<unix time // BUCKET_SECONDS>   hash   requests, n, errors, latency_ms, app:<id>

  ``requests`` and ``app:<id>`` count every response; ``n``, ``errors`` and ``latency_ms`` (the sum)
  only those that say something of the group's health: not 4xx, which are the caller's own mistakes
  or our refusals (429s are fast and would hide a slow payer). Without Redis the same layout lives in
  the local-memory cache: exact within one process, which is all development needs.
- ``evaluate`` runs every 10 s (a beat task). It reads the window's buckets, moves each group's
  factor one of its ``steps`` (tighter at once on a breach, looser only after ``recover_after_seconds``
  of calm), caps or frees apps, keeps the outcome under one cache key (``STATE_KEY``) and records
  every start and end as ``AdaptiveLimitChange`` rows.
- ``in_force`` runs on every rate-limited request (``api.ratelimit``). It answers from the process's
  copy of that key, read again at most every ``ADAPTIVE_REFRESH_SECONDS``; when nothing is in force
  anywhere (the usual case) it returns at the first check.

If evaluations stop (no beat, no worker), the state expires after ``STATE_TTL`` and every quota is
back to its configured number: a limit nobody watches must not outlive its reason.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, Sum

logger = logging.getLogger(__name__)

KEY_PREFIX = "adaptive:"
STATE_KEY = f"{KEY_PREFIX}state"
LOCK_KEY = f"{KEY_PREFIX}evaluating"
LOCK_SECONDS = 30  # longer than an evaluation takes; a crashed run's lock frees itself
BUCKET_SECONDS = 10
STATE_TTL = 300  # seconds without an evaluation before every adaptive limit lapses
USUAL_DAYS = 7  # the history an app's usual rate is taken from


@dataclass(frozen=True)
class InForce:
    factor: float  # 1.0: the group's quotas as configured; 0.5: halved
    app_cap: int | None  # a per-minute cap on this app alone, or None
    explanation: str  # one sentence for the 429's detail and the dashboards

    def __bool__(self) -> bool:
        return self.factor < 1.0 or self.app_cap is not None


@dataclass(frozen=True)
class Rules:
    """One group's thresholds (``settings.ADAPTIVE_GROUPS[group]``)."""

    error_rate: float  # share of 5xx among the responses that count for health
    latency_ms: float  # their mean
    min_requests: int  # fewer in the window: too few to judge
    window_seconds: int
    steps: tuple[float, ...]  # factors, loosest first: (1.0, 0.5, 0.25)
    recover_after_seconds: float
    surge_multiple: float
    surge_floor_per_minute: float
    surge_cooldown_seconds: float

    def app_cap(self, usual_per_minute: float | None) -> int:
        """An app's cap, which is also where its surge starts: ``surge_multiple`` times its usual rate
        (the floor's when it has no history), never below the floor. An app growing within that keeps
        every request; a runaway loses only what is beyond it."""
        usual = self.surge_floor_per_minute if usual_per_minute is None else usual_per_minute
        return max(math.ceil(self.surge_floor_per_minute), math.ceil(self.surge_multiple * usual))


def rules_for(group: str) -> Rules | None:
    config = settings.ADAPTIVE_GROUPS.get(group)
    if config is None:
        return None
    return Rules(**{**config, "steps": tuple(float(step) for step in config["steps"])})


def all_rules() -> dict[str, Rules]:
    return {group: rules_for(group) for group in settings.ADAPTIVE_GROUPS}


# --- Observing ---------------------------------------------------------------------------------


def bucket_of(at: float) -> int:
    return int(at // BUCKET_SECONDS)


def bucket_key(group: str, bucket: int) -> str:
    return f"{KEY_PREFIX}{group}:{bucket}"


def _bucket_ttl() -> int:
    longest = max((int(config["window_seconds"]) for config in settings.ADAPTIVE_GROUPS.values()), default=60)
    return longest + 6 * BUCKET_SECONDS  # a late flush still lands in a bucket the window reads


def _decode(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBuckets:
    def __init__(self):
        from django_redis import get_redis_connection

        self.client = get_redis_connection("default")

    def add_many(self, counts: dict[str, dict[str, int]]) -> None:
        """``{key: {field: n}}`` in one round trip (a pipeline, no MULTI)."""
        ttl = _bucket_ttl()
        pipe = self.client.pipeline(transaction=False)
        for key, fields in counts.items():
            for name, n in fields.items():
                pipe.hincrby(key, name, n)
            pipe.expire(key, ttl)
        pipe.execute()

    def read(self, keys: list[str]) -> dict[str, dict[str, int]]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        return {
            key: {_decode(name): int(count) for name, count in found.items()}
            for key, found in zip(keys, pipe.execute(), strict=True)
            if found
        }


_cache_lock = threading.Lock()


class CacheBuckets:
    """The same buckets in Django's cache (local memory), read-modify-write under a lock."""

    def add_many(self, counts: dict[str, dict[str, int]]) -> None:
        ttl = _bucket_ttl()
        with _cache_lock:
            for key, fields in counts.items():
                stored = cache.get(key) or {}
                for name, n in fields.items():
                    stored[name] = stored.get(name, 0) + n
                cache.set(key, stored, ttl)

    def read(self, keys: list[str]) -> dict[str, dict[str, int]]:
        return {key: dict(found) for key, found in cache.get_many(keys).items() if found}


def buckets() -> RedisBuckets | CacheBuckets:
    return RedisBuckets() if settings.REDIS_URL else CacheBuckets()


# Counts wait in the process for up to USAGE_FLUSH_SECONDS, like usage counts: a worker that dies
# loses those seconds of signal, which the next window makes up.
_buffer: dict[str, dict[str, int]] = {}
_buffer_lock = threading.Lock()
_last_flush = [0.0]


def observe(group: str, app_id: int, status: int, elapsed_ms: float) -> None:
    """Count one response of ``app_id`` in ``group`` (a no-op outside the adaptive groups). Buffered
    (see ``flush``); never raises."""
    if group not in settings.ADAPTIVE_GROUPS:
        return
    try:
        status = int(status)
        health = not 400 <= status < 500
        with _buffer_lock:
            fields = _buffer.setdefault(bucket_key(group, bucket_of(time.time())), {})
            fields["requests"] = fields.get("requests", 0) + 1
            app_field = f"app:{int(app_id)}"
            fields[app_field] = fields.get(app_field, 0) + 1
            if health:
                fields["n"] = fields.get("n", 0) + 1
                fields["latency_ms"] = fields.get("latency_ms", 0) + max(0, round(elapsed_ms))
                if status >= 500:
                    fields["errors"] = fields.get("errors", 0) + 1
        if time.monotonic() - _last_flush[0] >= settings.USAGE_FLUSH_SECONDS:
            flush()
    except Exception:  # a lost observation must never fail the response it observes
        logger.warning("adaptive observation lost (%s, app %s, status %s)", group, app_id, status, exc_info=True)


def flush() -> None:
    """Send this process's buffered counts to the shared buckets (one round trip)."""
    with _buffer_lock:
        counts = {key: dict(fields) for key, fields in _buffer.items()}
        _buffer.clear()
        _last_flush[0] = time.monotonic()
    if counts:
        try:
            buckets().add_many(counts)
        except Exception:
            logger.warning("adaptive observations lost: %d buckets", len(counts), exc_info=True)


# --- What a window says --------------------------------------------------------------------------


@dataclass(frozen=True)
class Signals:
    """A group's window: every response (``requests``, and per app), and those that speak of its
    health (``n``) with their errors and summed latency."""

    window_seconds: int
    requests: int = 0
    n: int = 0
    errors: int = 0
    latency_ms: int = 0
    per_app: tuple[tuple[int, int], ...] = ()

    @property
    def error_rate(self) -> float:
        return self.errors / self.n if self.n else 0.0

    @property
    def mean_latency_ms(self) -> float:
        return self.latency_ms / self.n if self.n else 0.0

    def per_minute(self, count: int) -> float:
        return count * 60 / self.window_seconds

    def app_rates(self) -> dict[int, float]:
        return {app_id: self.per_minute(count) for app_id, count in self.per_app}

    def summary(self) -> dict:
        return {
            "requests": self.requests,
            "n": self.n,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 4),
            "mean_latency_ms": round(self.mean_latency_ms),
            "window_seconds": self.window_seconds,
        }


def window_buckets(rules: Rules, now: float) -> list[int]:
    """The buckets of the window ending now: the current one, still filling, and the full ones before
    it. They cover a little less than the window, so rates per minute err low, never high."""
    last = bucket_of(now)
    return list(range(last - max(1, rules.window_seconds // BUCKET_SECONDS) + 1, last + 1))


def read_signals(rules_by_group: dict[str, Rules], now: float) -> dict[str, Signals]:
    """Every group's window, in one round trip."""
    keys = {
        group: [bucket_key(group, b) for b in window_buckets(rules, now)] for group, rules in rules_by_group.items()
    }
    found = buckets().read([key for group_keys in keys.values() for key in group_keys])
    signals = {}
    for group, group_keys in keys.items():
        totals: dict[str, int] = {}
        for key in group_keys:
            for name, count in found.get(key, {}).items():
                totals[name] = totals.get(name, 0) + count
        per_app = tuple(
            sorted((int(name[4:]), count) for name, count in totals.items() if name.startswith("app:") and count)
        )
        signals[group] = Signals(
            window_seconds=rules_by_group[group].window_seconds,
            requests=totals.get("requests", 0),
            n=totals.get("n", 0),
            errors=totals.get("errors", 0),
            latency_ms=totals.get("latency_ms", 0),
            per_app=per_app,
        )
    return signals


def usual_rates(group: str, app_ids: list[int], now: float) -> dict[int, float]:
    """Each app's usual requests per minute in ``group``: its average over the hours of the last
    ``USUAL_DAYS`` days it made any (the current hour left out, as it is the one being judged). An
    app without such hours is absent."""
    from api.usage import floor_hour
    from api.usage_models import UsageHour

    current = floor_hour(datetime.fromtimestamp(now, UTC))
    hours = (
        UsageHour.objects.filter(
            app_id__in=app_ids, group=group, hour__gte=current - timedelta(days=USUAL_DAYS), hour__lt=current
        )
        .values("app_id", "hour")
        .annotate(total=Sum("count"))
        .order_by()
    )
    totals: dict[int, list[int]] = {}
    for row in hours:
        if row["total"]:
            requests, active_hours = totals.get(row["app_id"], [0, 0])
            totals[row["app_id"]] = [requests + row["total"], active_hours + 1]
    return {app_id: requests / (active_hours * 60) for app_id, (requests, active_hours) in totals.items()}


# --- Saying why -------------------------------------------------------------------------------------


def percent(share: float) -> str:
    return f"{round(share * 100):g}%"


def over_the_window(seconds: int) -> str:
    if seconds == 60:
        return "over the last minute"
    if seconds % 60 == 0:
        return f"over the last {seconds // 60} minutes"
    return f"over the last {seconds} seconds"


def after(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 120 and seconds % 60 == 0 else f"{seconds:g} seconds"


def breaches(rules: Rules, signals: Signals) -> str:
    """What crossed its threshold, as the end of "because ..."; empty when nothing did or when the
    window holds too few responses to judge."""
    if signals.n < rules.min_requests:
        return ""
    found = []
    if signals.error_rate >= rules.error_rate:
        found.append(("error rate", f"{percent(signals.error_rate)} (threshold {percent(rules.error_rate)})"))
    if signals.mean_latency_ms >= rules.latency_ms:
        found.append(("mean latency", f"{signals.mean_latency_ms:,.0f} ms (threshold {rules.latency_ms:,.0f} ms)"))
    if not found:
        return ""
    (name, value), *others = found
    text = f"its {name} {over_the_window(rules.window_seconds)} reached {value}"
    return text + "".join(f" and its {other} {other_value}" for other, other_value in others)


def group_sentence(group: str, factor: float, cause: str) -> str:
    return (
        f"The {group} group is limited to {percent(factor)} of its quotas because {cause}; it recovers automatically."
    )


def number(value: float) -> str:
    return f"{value:,.1f}".rstrip("0").rstrip(".")


def app_sentence(group: str, rules: Rules, cap: int, rate: float, usual: float | None) -> str:
    if usual is None:
        usual_text = f"the {number(rules.surge_floor_per_minute)} a minute assumed for an app with no usage history"
    else:
        usual_text = f"its usual {number(usual)} a minute"
    return (
        f"This app is capped at {cap:,} {group} requests a minute because its rate "
        f"{over_the_window(rules.window_seconds)}, {number(rate)} a minute, is more than "
        f"{number(rules.surge_multiple)} times {usual_text}; the cap lifts once its rate has stayed under the "
        f"cap for {after(rules.surge_cooldown_seconds)}."
    )


# --- Evaluating -------------------------------------------------------------------------------------


def _moment(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def _open_rows(group: str, app_id: int | None):
    from api.adaptive_models import AdaptiveLimitChange

    rows = AdaptiveLimitChange.objects.filter(group=group, ended_at__isnull=True)
    return rows.filter(app__isnull=True) if app_id is None else rows.filter(app_id=app_id)


def _record(group: str, app_id: int | None, now: float, *, factor=1.0, app_cap=None, reason="", signals=None):
    """End whatever was in force for (group, app) and, unless it is back to normal, start the new one.
    Ending first also mends a row left open by a run whose state was never stored."""
    from api.adaptive_models import AdaptiveLimitChange

    with transaction.atomic():
        _open_rows(group, app_id).update(ended_at=_moment(now))
        if factor < 1.0 or app_cap is not None:
            AdaptiveLimitChange.objects.create(
                group=group,
                app_id=app_id,
                factor=factor,
                app_cap=app_cap,
                reason=reason,
                signals=signals or {},
                started_at=_moment(now),
            )


def _new_state() -> dict:
    return {"groups": {}, "apps": {}, "in_force": {"groups": {}, "apps": {}}, "evaluated_at": None}


def _decide_group(state: dict, group: str, rules: Rules, signals: Signals, now: float) -> bool:
    """Move the group's factor at most one step. Tighter at once on a breach, and again only after a
    whole window at the new factor (so the next step is judged on what the last one did); looser only
    after ``recover_after_seconds`` of calm at the current factor, one step at a time. A window too
    thin to judge counts as calm: a group refusing most of its traffic may never fill one again."""
    current = state["groups"].setdefault(group, {"level": 0, "changed_at": None, "calm_since": None, "cause": ""})
    level = min(current["level"], len(rules.steps) - 1)
    cause = breaches(rules, signals)
    if cause:
        current["calm_since"] = None
        current["cause"] = cause
        settled = current["changed_at"] is None or now - current["changed_at"] >= rules.window_seconds
        if level + 1 < len(rules.steps) and (level == 0 or settled):
            level += 1
    else:
        if current["calm_since"] is None:
            current["calm_since"] = now
        if level > 0 and now - current["calm_since"] >= rules.recover_after_seconds:
            level -= 1
            current["calm_since"] = now  # the next step up waits for its own calm
    changed = level != current["level"]
    factor = rules.steps[level]
    explanation = group_sentence(group, factor, current["cause"]) if factor < 1.0 else ""
    current.update(level=level, factor=factor, explanation=explanation, signals=signals.summary(), evaluated_at=now)
    if changed:
        current["changed_at"] = now
        _record(group, None, now, factor=factor, reason=explanation, signals=signals.summary())
    return changed


def _decide_apps(state: dict, group: str, rules: Rules, signals: Signals, now: float) -> int:
    """Cap an app whose rate exceeds its cap (``Rules.app_cap``); lift the cap once its rate has stayed
    under it for ``surge_cooldown_seconds``. Requests a cap refuses still count as the app's rate, so
    an app that keeps hammering stays capped."""
    from partners.models import App

    capped = state["apps"].setdefault(group, {})
    rates = signals.app_rates()
    changes = 0
    for app_id, cap in list(capped.items()):
        rate = rates.get(app_id, 0.0)
        if rate > cap["cap"]:
            cap["last_surge"], cap["rate"] = now, rate
        elif now - cap["last_surge"] >= rules.surge_cooldown_seconds:
            del capped[app_id]
            _record(group, app_id, now)
            changes += 1
    candidates = [
        app_id for app_id, rate in rates.items() if app_id not in capped and rate > rules.surge_floor_per_minute
    ]
    if not candidates:
        return changes
    usual = usual_rates(group, candidates, now)
    existing = set(App.objects.filter(pk__in=candidates).values_list("pk", flat=True))
    for app_id in candidates:
        cap = rules.app_cap(usual.get(app_id))
        rate = rates[app_id]
        if app_id not in existing or rate <= cap:
            continue
        explanation = app_sentence(group, rules, cap, rate, usual.get(app_id))
        measured = {"rate_per_minute": round(rate, 1), "usual_per_minute": usual.get(app_id)}
        capped[app_id] = {"cap": cap, "since": now, "last_surge": now, "rate": rate, "explanation": explanation}
        _record(group, app_id, now, app_cap=cap, reason=explanation, signals=measured)
        changes += 1
    return changes


def _in_force_map(state: dict) -> dict:
    return {
        "groups": {
            group: {"factor": current["factor"], "explanation": current["explanation"]}
            for group, current in state["groups"].items()
            if current.get("factor", 1.0) < 1.0
        },
        "apps": {
            group: {app_id: {"cap": cap["cap"], "explanation": cap["explanation"]} for app_id, cap in capped.items()}
            for group, capped in state["apps"].items()
            if capped
        },
    }


def evaluate(now: float | None = None) -> int:
    """Decide every adaptive group's limits from its last window and store them; returns how many
    limits started or ended. Runs alone: a run that finds another under way leaves it the work."""
    now = time.time() if now is None else now
    if not cache.add(LOCK_KEY, now, LOCK_SECONDS):
        return 0
    try:
        state = cache.get(STATE_KEY)
        if state is None:
            # Nothing stored (first run, or the state lapsed): whatever the rows say is in force no
            # longer is, as no request has been held to it since.
            from api.adaptive_models import AdaptiveLimitChange

            AdaptiveLimitChange.objects.filter(ended_at__isnull=True).update(ended_at=_moment(now))
            state = _new_state()
        rules_by_group = all_rules()
        signals = read_signals(rules_by_group, now)
        changes = 0
        for group, rules in rules_by_group.items():
            changes += _decide_group(state, group, rules, signals[group], now)
            changes += _decide_apps(state, group, rules, signals[group], now)
        for group in set(state["groups"]) - set(rules_by_group):  # no longer adaptive
            del state["groups"][group]
            _record(group, None, now)
        for group in set(state["apps"]) - set(rules_by_group):
            for app_id in state["apps"].pop(group):
                _record(group, app_id, now)
        state["in_force"] = _in_force_map(state)
        state["evaluated_at"] = now
        cache.set(STATE_KEY, state, STATE_TTL)
        _remember(state)
        return changes
    finally:
        cache.delete(LOCK_KEY)


# --- In force ---------------------------------------------------------------------------------------


class Limits:
    """The limits in force, as ``evaluate`` last stored them."""

    def __init__(self, in_force_map: dict | None = None):
        in_force_map = in_force_map or {}
        self.groups: dict[str, dict] = in_force_map.get("groups", {})
        self.apps: dict[str, dict[int, dict]] = in_force_map.get("apps", {})
        self._group_only = {
            group: InForce(limit["factor"], None, limit["explanation"]) for group, limit in self.groups.items()
        }

    def __bool__(self) -> bool:
        return bool(self.groups or self.apps)

    def for_app(self, group: str, app_id: int | None) -> InForce | None:
        cap = self.apps.get(group, {}).get(app_id)
        if cap is None:
            return self._group_only.get(group)
        limit = self.groups.get(group)
        explanation = f"{limit['explanation']} {cap['explanation']}" if limit else cap["explanation"]
        return InForce(limit["factor"] if limit else 1.0, cap["cap"], explanation)


_copy: tuple[float, Limits | None] = (-math.inf, None)  # (when read, monotonic; the limits or None)


def _remember(state: dict | None) -> Limits:
    global _copy
    limits = Limits((state or {}).get("in_force"))
    _copy = (time.monotonic(), limits or None)
    return limits


def _limits() -> Limits | None:
    global _copy
    read_at, limits = _copy
    if time.monotonic() - read_at < settings.ADAPTIVE_REFRESH_SECONDS:
        return limits
    try:
        return _remember(cache.get(STATE_KEY)) or None
    except Exception:  # the shared cache is down: keep the last copy rather than fail the request
        logger.warning("adaptive limits not refreshed", exc_info=True)
        _copy = (time.monotonic(), limits)
        return limits


def in_force(group: str, app_id: int | None) -> InForce | None:
    """The adjustment in force for ``app_id`` in ``group``, or None (the configured quotas hold)."""
    limits = _limits()
    if limits is None:
        return None
    return limits.for_app(group, app_id)


@dataclass(frozen=True)
class GroupStatus:
    group: str
    factor: float
    explanation: str
    signals: dict  # the last window measured (``Signals.summary``)
    evaluated_at: datetime | None


@dataclass(frozen=True)
class AppCap:
    group: str
    app_id: int
    cap: int
    explanation: str
    since: datetime


@dataclass(frozen=True)
class Snapshot:
    groups: dict[str, GroupStatus]
    caps: list[AppCap]
    evaluated_at: datetime | None


def snapshot() -> Snapshot:
    """The state as ``evaluate`` last stored it, read afresh (for the dashboards; it also refreshes
    this process's copy, so a page and the quotas it shows agree)."""
    state = cache.get(STATE_KEY) or _new_state()
    _remember(state)
    groups = {}
    for group in settings.ADAPTIVE_GROUPS:
        current = state["groups"].get(group, {})
        evaluated_at = current.get("evaluated_at")
        groups[group] = GroupStatus(
            group=group,
            factor=current.get("factor", 1.0),
            explanation=current.get("explanation", ""),
            signals=current.get("signals", {}),
            evaluated_at=_moment(evaluated_at) if evaluated_at else None,
        )
    caps = [
        AppCap(group, app_id, cap["cap"], cap["explanation"], _moment(cap["since"]))
        for group, capped in sorted(state["apps"].items())
        for app_id, cap in sorted(capped.items())
    ]
    evaluated_at = state.get("evaluated_at")
    return Snapshot(groups, caps, _moment(evaluated_at) if evaluated_at else None)


def changes_query(*, since: datetime, app_id: int | None = None, organization_id: int | None = None):
    """The history rows in force at any time since ``since``: group-wide ones, and those of ``app_id``
    (or of ``organization_id``'s apps; neither: every app's)."""
    from api.adaptive_models import AdaptiveLimitChange

    rows = AdaptiveLimitChange.objects.filter(Q(ended_at__isnull=True) | Q(ended_at__gte=since))
    if app_id is not None:
        rows = rows.filter(Q(app__isnull=True) | Q(app_id=app_id))
    elif organization_id is not None:
        rows = rows.filter(Q(app__isnull=True) | Q(app__organization_id=organization_id))
    return rows.select_related("app__organization").order_by("-started_at", "-id")


def forget() -> None:
    """Drop this process's copy and its unsent counts (tests: a rolled-back test's state must not
    outlive it)."""
    global _copy
    _copy = (-math.inf, None)
    with _buffer_lock:
        _buffer.clear()
