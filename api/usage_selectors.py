"""Reads of API usage for the dashboards: an app's page in the portal, the admin's cross-partner page.

An hour the rollup may not have finished (the current one, the previous one, and any still in the
pending set) is read from the live counters (``api.usage``), which are its truth; every other hour
from the rolled-up ``UsageHour`` table. A dashboard is therefore as fresh as its page load. Times
are UTC throughout, like the daily quotas, which reset at 00:00 UTC (``api.ratelimit``). The adaptive
limits in force (``api.adaptive``) are read as the rate limiter holds them at the page load.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace

from django.db.models import Sum
from django.utils import timezone

from api import adaptive, errors, ratelimit, usage
from api.adaptive_models import AdaptiveLimitChange
from api.usage_models import UsageHour
from partners.models import App, Organization
from partners.tiers import ENDPOINT_GROUPS, effective_quotas

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
HOUR = timedelta(hours=1)
# Requests refused before the rate-limit layer (a bad token, a missing scope, an organization,
# tier or partner-type policy, or the rate limit itself) consume no quota (api/ratelimit.py).
QUOTA_FREE_LAYERS = frozenset({"token", "scope", "policy"})
TOP_ORGANIZATIONS = 20

# The 429 problem codes: quota_exceeded, and rate_limited as it was called until 2026-11-25 (its rows
# stay in the 13 months of history).
REFUSAL_CODES = ("quota_exceeded", "rate_limited")


@dataclass(frozen=True)
class Period:
    slug: str
    label: str  # "Last 24 hours"
    hours: int

    @property
    def phrase(self) -> str:  # "last 24 hours", to end a sentence with
        return self.label[:1].lower() + self.label[1:]


PERIODS = {p.slug: p for p in (Period("24h", "Last 24 hours", 24), Period("7d", "Last 7 days", 7 * 24))}
DEFAULT_PERIOD = "24h"


def period_for(slug: str | None) -> Period:
    return PERIODS.get(slug or "", PERIODS[DEFAULT_PERIOD])


def start_of_day(at: datetime) -> datetime:
    return usage.floor_hour(at).replace(hour=0)


def counts_toward_quota(error_code: str) -> bool:
    if not error_code:
        return True
    known = errors.ERRORS.get(error_code)
    return known is None or known.layer not in QUOTA_FREE_LAYERS


# --- Reading the table and the live counters together ----------------------------------------


@dataclass(frozen=True)
class UsageRow:
    hour: datetime
    app_id: int
    organization_id: int
    group: str
    status_class: str
    error_code: str
    policy: str
    count: int
    endpoint: str = ""


class UsageReader:
    """The usage of one organization (``organization_id``) or of every partner (``None``) from
    ``since`` on. The live counters are read once, when it is made; ``totals`` then answers any
    breakdown with one query of the table for the other hours."""

    def __init__(self, *, since: datetime, now: datetime | None = None, organization_id: int | None = None):
        self.now = now or timezone.now()
        self.organization_id = organization_id
        current = usage.floor_hour(self.now)
        store = usage.counters()
        candidates = {current, current - HOUR} | {usage.hour_from_key(key) for key in store.pending()}
        hours = sorted(usage.hour_key(hour) for hour in candidates if since <= hour <= current)
        app_ids = None
        if organization_id is not None:
            app_ids = list(App.objects.filter(organization_id=organization_id).values_list("pk", flat=True))
        found = store.read(hours, app_ids) if app_ids is None or app_ids else {}
        self.live_rows = [
            UsageRow(
                usage.hour_from_key(hour),
                app_id,
                counted.organization_id,
                counted.group,
                counted.status_class,
                counted.error_code,
                counted.policy,
                count,
                counted.endpoint,
            )
            for (hour, app_id), fields in found.items()
            for name, count in fields.items()
            if (counted := usage.decode_field(name)) is not None
        ]
        # The hours the live counters answer for; the table is not read for them.
        self.live_hours = {row.hour for row in self.live_rows}

    def totals(
        self, *, by: tuple[str, ...], since: datetime, until: datetime | None = None, app_id: int | None = None
    ) -> dict[tuple, int]:
        """Request counts grouped by ``by`` (``UsageRow`` field names) over ``[since, until)``."""
        rows = UsageHour.objects.filter(hour__gte=since)
        if until is not None:
            rows = rows.filter(hour__lt=until)
        if self.organization_id is not None:
            rows = rows.filter(organization_id=self.organization_id)
        if app_id is not None:
            rows = rows.filter(app_id=app_id)
        if self.live_hours:
            rows = rows.exclude(hour__in=self.live_hours)
        totals = {
            tuple(found[name] for name in by): found["total"]
            for found in rows.values(*by).annotate(total=Sum("count")).order_by()
        }
        for row in self.live_rows:
            if row.hour < since or (until is not None and row.hour >= until):
                continue
            if app_id is not None and row.app_id != app_id:
                continue
            key = tuple(getattr(row, name) for name in by)
            totals[key] = totals.get(key, 0) + row.count
        return totals


# --- What the dashboards show -----------------------------------------------------------------


@dataclass(frozen=True)
class HourCounts:
    hour: datetime
    counts: dict[str, int]  # status class -> requests

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def by_class(self) -> list[int]:
        return [self.counts.get(klass, 0) for klass in STATUS_CLASSES]


@dataclass(frozen=True)
class ErrorCount:
    code: str
    title: str
    status: int | None
    count: int
    docs_url: str


@dataclass(frozen=True)
class PolicyCount:
    policy: str
    count: int


@dataclass(frozen=True)
class QuotaUse:
    group: str
    label: str
    per_day: int | None  # None: the tier sets no daily quota for this group
    used: int  # today, by the whole organization (the quota is the organization's)
    app_used: int | None  # today, by the app the page is about
    pace_per_hour: int  # requests that counted in the last 60 minutes
    runs_out_at: datetime | None  # at the current pace; None if it will not run out today
    exhausted: bool

    @property
    def remaining(self) -> int | None:
        return None if self.per_day is None else max(0, self.per_day - self.used)

    @property
    def percent(self) -> int | None:
        if not self.per_day:
            return None
        return min(100, round(100 * self.used / self.per_day))


@dataclass(frozen=True)
class OrganizationUsage:
    organization: Organization | None
    organization_id: int
    requests: int
    errors: int
    rate_limited: int


@dataclass(frozen=True)
class CappedApp:
    app: App | None  # None: deleted since it was capped
    app_id: int
    cap: int
    explanation: str
    since: datetime


@dataclass(frozen=True)
class AdaptiveLimitNow:
    """An adaptive group's limits as the rate limiter holds them now."""

    group: str
    label: str
    factor: float
    explanation: str  # the group's and, on an app's page, its cap's
    signals: dict  # the last window measured (``api.adaptive.Signals.summary``)
    evaluated_at: datetime | None
    per_minute: int | None = None  # the organization's per-minute quota as configured; None across partners
    effective_per_minute: int | None = None  # the same, as tightened now
    app_cap: int | None = None  # on an app's page: its own cap
    capped_apps: list[CappedApp] = field(default_factory=list)  # on the admin's page

    @property
    def percent(self) -> int:
        return round(self.factor * 100)

    @property
    def tightened(self) -> bool:
        return self.factor < 1.0

    @property
    def in_force(self) -> bool:
        return self.tightened or self.app_cap is not None or bool(self.capped_apps)

    @property
    def measured(self) -> str:
        """The last window the limits were decided on, in one sentence."""
        if not self.signals:
            return "Not measured yet."
        window = adaptive.over_the_window(self.signals["window_seconds"])
        counted = self.signals["n"]
        if not counted:
            return f"No responses {window} that show the group's health (4xx and 429 responses do not)."
        return (
            f"{window[0].upper()}{window[1:]}: {counted:,} responses, "
            f"{adaptive.percent(self.signals['error_rate'])} server errors (5xx), "
            f"mean latency {self.signals['mean_latency_ms']:,} ms."
        )


@dataclass
class Dashboard:
    period: Period
    now: datetime
    hours: list[HourCounts]
    errors: list[ErrorCount]
    rate_limited: list[PolicyCount]
    quotas: list[QuotaUse] = field(default_factory=list)
    top_organizations: list[OrganizationUsage] = field(default_factory=list)
    adaptive: list[AdaptiveLimitNow] = field(default_factory=list)
    adaptive_changes: list[AdaptiveLimitChange] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        return {klass: sum(hour.counts.get(klass, 0) for hour in self.hours) for klass in STATUS_CLASSES}

    @property
    def total(self) -> int:
        return sum(hour.total for hour in self.hours)

    @property
    def start(self) -> datetime:
        return self.hours[0].hour

    @property
    def today(self) -> datetime:
        return start_of_day(self.now)


def hourly_requests(reader: UsageReader, *, period: Period, app_id: int | None = None) -> list[HourCounts]:
    current = usage.floor_hour(reader.now)
    hours = [current - HOUR * offset for offset in range(period.hours - 1, -1, -1)]
    totals = reader.totals(by=("hour", "status_class"), since=hours[0], app_id=app_id)
    return [HourCounts(hour, {klass: totals.get((hour, klass), 0) for klass in STATUS_CLASSES}) for hour in hours]


def errors_by_code(reader: UsageReader, *, since: datetime, app_id: int | None = None) -> list[ErrorCount]:
    totals = reader.totals(by=("error_code",), since=since, app_id=app_id)
    found = []
    for (code,), count in totals.items():
        if not code or not count:
            continue
        known = errors.ERRORS.get(code)
        found.append(
            ErrorCount(
                code=code,
                title=known.title if known else code.replace("_", " ").capitalize(),
                status=known.status if known else None,
                count=count,
                docs_url=errors.docs_path(code),
            )
        )
    return sorted(found, key=lambda e: (-e.count, e.code))


def rate_limited_by_policy(reader: UsageReader, *, since: datetime, app_id: int | None = None) -> list[PolicyCount]:
    totals = reader.totals(by=("error_code", "policy"), since=since, app_id=app_id)
    by_policy: dict[str, int] = {}
    for (code, policy), count in totals.items():
        if policy or code in REFUSAL_CODES:
            name = policy or "(not named)"
            by_policy[name] = by_policy.get(name, 0) + count
    return sorted((PolicyCount(name, count) for name, count in by_policy.items()), key=lambda p: (-p.count, p.policy))


def daily_quota(organization: Organization, group: str) -> int | None:
    """The organization's daily quota for ``group``: its tier's, or its own override."""
    quotas = dict(organization.tier.rate_quotas.get(group) or {})
    quotas.update((getattr(organization, "rate_quota_overrides", {}) or {}).get(group) or {})
    per_day = quotas.get("per_day")
    return int(per_day) if per_day else None


def quota_use_today(reader: UsageReader, *, organization: Organization, app_id: int | None = None) -> list[QuotaUse]:
    """Each endpoint group's daily quota, what the organization used of it today, and when it runs
    out at the pace of the last 60 minutes (the current hour so far, and the previous hour's requests
    taken in proportion to how much of it lies in those 60 minutes)."""
    now = reader.now
    current, today = usage.floor_hour(now), start_of_day(now)
    tomorrow = today + timedelta(days=1)
    totals = reader.totals(by=("hour", "group", "error_code", "app_id"), since=min(today, current - HOUR))
    previous_share = max(0.0, 1 - (now - current).total_seconds() / 3600)
    used = dict.fromkeys(ENDPOINT_GROUPS, 0)
    app_used = dict.fromkeys(ENDPOINT_GROUPS, 0)
    pace = dict.fromkeys(ENDPOINT_GROUPS, 0.0)
    for (hour, group, code, counted_app), count in totals.items():
        if group not in used or not counts_toward_quota(code):
            continue
        if hour >= today:
            used[group] += count
            if counted_app == app_id:
                app_used[group] += count
        if hour == current:
            pace[group] += count
        elif hour == current - HOUR:
            pace[group] += count * previous_share
    quotas = []
    for group, label in ENDPOINT_GROUPS.items():
        per_day = daily_quota(organization, group)
        exhausted = per_day is not None and used[group] >= per_day
        runs_out_at = None
        if per_day is not None and not exhausted and pace[group] > 0:
            at = now + timedelta(hours=(per_day - used[group]) / pace[group])
            runs_out_at = at if at < tomorrow else None
        quotas.append(
            QuotaUse(
                group=group,
                label=label,
                per_day=per_day,
                used=used[group],
                app_used=app_used[group] if app_id is not None else None,
                pace_per_hour=round(pace[group]),
                runs_out_at=runs_out_at,
                exhausted=exhausted,
            )
        )
    return quotas


def top_organizations(
    reader: UsageReader, *, since: datetime, limit: int = TOP_ORGANIZATIONS
) -> list[OrganizationUsage]:
    totals = reader.totals(by=("organization_id", "status_class", "error_code"), since=since)
    summary: dict[int, list[int]] = {}
    for (organization_id, klass, code), count in totals.items():
        requests_, failed, limited = summary.setdefault(organization_id, [0, 0, 0])
        summary[organization_id] = [
            requests_ + count,
            failed + (count if klass in ("4xx", "5xx") else 0),
            limited + (count if code in REFUSAL_CODES else 0),
        ]
    ranked = sorted(summary.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
    named = Organization.objects.in_bulk([organization_id for organization_id, _ in ranked])
    return [
        OrganizationUsage(named.get(organization_id), organization_id, *counts) for organization_id, counts in ranked
    ]


def per_minute_quotas(organization: Organization, group: str, app: App | None = None) -> tuple:
    """The organization's per-minute quota of ``group`` as configured, as the rate limiter holds it now
    (``api.ratelimit.policies_for``, tightening and all) and ``app``'s own cap, if any."""
    configured = effective_quotas(organization.tier.rate_quotas, organization.rate_quota_overrides, group)
    context = SimpleNamespace(
        app=app or SimpleNamespace(pk=None),
        organization=organization,
        tier=organization.tier,
        token_id="",
        patient_id=None,
    )
    held = {policy.name: policy.quota for policy in ratelimit.policies_for(context, group)}
    return configured.get("per_minute"), held.get(f"org-{group}-minute"), held.get(f"app-{group}-minute")


def adaptive_limits(*, organization: Organization | None = None, app: App | None = None) -> list[AdaptiveLimitNow]:
    """Each adaptive group's limits in force now: for ``app`` (its organization's quotas and its own
    cap), for ``organization`` (its quotas and its capped apps) or across partners (every capped app)."""
    snapshot = adaptive.snapshot()
    organization = app.organization if app is not None else organization
    capped = App.objects.select_related("organization").in_bulk({cap.app_id for cap in snapshot.caps})
    limits = []
    for group, status in snapshot.groups.items():
        caps = [
            CappedApp(capped.get(cap.app_id), cap.app_id, cap.cap, cap.explanation, cap.since)
            for cap in snapshot.caps
            if cap.group == group
        ]
        if organization is not None:
            caps = [cap for cap in caps if cap.app is not None and cap.app.organization_id == organization.pk]
        per_minute = effective = app_cap = None
        if organization is not None:
            per_minute, effective, app_cap = per_minute_quotas(organization, group, app)
        explanation = status.explanation
        if app is not None:
            own = [cap for cap in caps if cap.app_id == app.pk]
            explanation = " ".join(text for text in (explanation, *(cap.explanation for cap in own)) if text)
            caps = []
        limits.append(
            AdaptiveLimitNow(
                group=group,
                label=ENDPOINT_GROUPS.get(group, group),
                factor=status.factor,
                explanation=explanation,
                signals=status.signals,
                evaluated_at=status.evaluated_at,
                per_minute=per_minute,
                effective_per_minute=effective,
                app_cap=app_cap,
                capped_apps=caps,
            )
        )
    return limits


RECENT_ADAPTIVE_CHANGES = 20


def adaptive_changes(
    *, since: datetime, organization: Organization | None = None, app: App | None = None
) -> list[AdaptiveLimitChange]:
    """The adaptive limits in force at any time since ``since``, newest first: the groups' and those of
    ``app`` (or of ``organization``'s apps, or of every app)."""
    rows = adaptive.changes_query(
        since=since,
        app_id=app.pk if app is not None else None,
        organization_id=organization.pk if organization is not None else None,
    )
    return list(rows[:RECENT_ADAPTIVE_CHANGES])


def app_dashboard(*, app: App, period: str | None = None, now: datetime | None = None) -> Dashboard:
    """One app's usage over the period, and its organization's daily quotas today."""
    chosen = period_for(period)
    now = now or timezone.now()
    current = usage.floor_hour(now)
    start = current - HOUR * (chosen.hours - 1)
    reader = UsageReader(
        since=min(start, start_of_day(now), current - HOUR), now=now, organization_id=app.organization_id
    )
    return Dashboard(
        period=chosen,
        now=now,
        hours=hourly_requests(reader, period=chosen, app_id=app.pk),
        errors=errors_by_code(reader, since=start, app_id=app.pk),
        rate_limited=rate_limited_by_policy(reader, since=start, app_id=app.pk),
        quotas=quota_use_today(reader, organization=app.organization, app_id=app.pk),
        adaptive=adaptive_limits(app=app),
        adaptive_changes=adaptive_changes(since=start, app=app),
    )


def platform_dashboard(
    *, period: str | None = None, organization: Organization | None = None, now: datetime | None = None
) -> Dashboard:
    """Every partner's usage over the period, with the organizations that made the most requests
    today; or, given ``organization``, that organization's usage and its daily quotas."""
    chosen = period_for(period)
    now = now or timezone.now()
    current = usage.floor_hour(now)
    start = current - HOUR * (chosen.hours - 1)
    reader = UsageReader(
        since=min(start, start_of_day(now), current - HOUR),
        now=now,
        organization_id=organization.pk if organization else None,
    )
    return Dashboard(
        period=chosen,
        now=now,
        hours=hourly_requests(reader, period=chosen),
        errors=errors_by_code(reader, since=start),
        rate_limited=rate_limited_by_policy(reader, since=start),
        quotas=quota_use_today(reader, organization=organization) if organization else [],
        top_organizations=[] if organization else top_organizations(reader, since=start_of_day(now)),
        adaptive=adaptive_limits(organization=organization),
        adaptive_changes=adaptive_changes(since=start, organization=organization),
    )
