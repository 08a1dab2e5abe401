"""Reads for the admins' ecosystem health page (``/admin/ecosystem/``): how partners fare from signup
to production and how their users and workflows fare, over a period (the last 30, 90 or 180 days),
for every partner and per partner type (``Organization.PartnerType``).

What each figure means (the page says the same beside each table):

- Onboarding time: for the partner developers who signed up in the period, the time from signup to
  their first successful API call: the analytics funnel's milestones (``portal.analytics_selectors``),
  so both pages agree. A developer's partner type is that of the first organization they joined;
  developers who joined none count under "All partners" only.
- Sandbox to production: the organizations whose first successful sandbox call (``App.first_success_at``
  of their sandbox apps) fell in the period, and how many of them have since made a successful
  production call; the days between the two.
- Consent completion: the consent screens shown in the period (``ConsentScreenShown``: a screen that
  asked a patient for health data; a reload of the same request is the same screen), by the partner
  type of the app's organization, split into approved, denied, abandoned (never answered, and its page
  can no longer be answered) and open (shown in the last hour, still answerable). Completion rate:
  approved / shown.
- Time to resolve errors (from the hourly usage rollup, ``UsageHour``): an *error hour* of an app and
  a problem code is an hour in which the app got at least one 4xx or 5xx response with that code; a
  *success hour* one with at least one 2xx response. An *episode* starts at an error hour, in the
  period, when no episode of that app and code is open. It is *resolved* at the first success hour
  after its latest error hour, provided no error hour with that code follows within 24 hours of that
  success; an error hour before then joins the episode and the search starts again after it. Time to
  resolve: from the start of the episode's first error hour to the start of the resolving success
  hour. An episode not yet resolved (no success since, or less than 24 hours since that success) is
  *open*. Only the period's usage is read: an episode already running when the period began counts
  from the period's first hour.
- Partner retention: of the organizations active (at least one 2xx response) in the window of the
  same length just before the period, those active in the period. Monthly: per calendar month (UTC),
  the organizations active in it, and those of them active in the month before too.
- Workflow completion, per partner type of the organization whose app started the workflow: visits
  booked in the period (``Appointment`` rows with an ``app_id``) not cancelled since; lab-result
  shares made in the period not revoked early (still active, or ran to their end: shares have no
  "viewed" state); eligibility checks asked in the period that got a definite answer (eligible or not
  eligible) against every attempt: the checks recorded plus the requests to the eligibility endpoint
  group refused with a 4xx or 5xx response (no coverage, no consent, rate limited, payer failure).

Every figure is aggregated in the database but two, which need the order of events: the onboarding
milestones (one row per developer) and the error episodes (one row per app, code and error hour, and
the success hours of the apps that had errors only).
"""

import bisect
import itertools
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Case, Count, Exists, F, IntegerField, Max, Min, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import TruncMonth
from django.utils import timezone

from api.models import Appointment, EligibilityCheck, LabResultShare
from api.usage import floor_hour
from api.usage_models import UsageHour
from consent.models import ConsentScreenShown
from consent.screen_services import ANSWERABLE
from partners.models import App, Membership, Organization
from portal import analytics_selectors

PERIODS = {30: "Last 30 days", 90: "Last 90 days", 180: "Last 180 days"}
DEFAULT_DAYS = 30
ALL = "all"
PARTNER_TYPES: list[tuple[str, str]] = list(Organization.PartnerType.choices)
SEGMENTS: list[tuple[str, str]] = [(ALL, "All partners"), *PARTNER_TYPES]
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
RESOLVED_AFTER = timedelta(hours=24)  # errorless time after a success that confirms a resolution
MONTHS = 6
TOP_CODES = 10
ERROR_CLASSES = ("4xx", "5xx")
# Buckets of the two duration charts: (label, upper bound, exclusive; None for the last).
ONBOARDING_BUCKETS = (
    ("Under 1 hour", HOUR),
    ("1 to 24 hours", DAY),
    ("1 to 7 days", 7 * DAY),
    ("7 to 30 days", 30 * DAY),
    ("30 days or more", None),
)
RESOLUTION_BUCKETS = (
    ("Up to 1 hour", HOUR + timedelta(microseconds=1)),
    ("1 to 6 hours", 6 * HOUR + timedelta(microseconds=1)),
    ("6 to 24 hours", DAY + timedelta(microseconds=1)),
    ("1 to 7 days", 7 * DAY + timedelta(microseconds=1)),
    ("Over 7 days", None),
)


def period_days(value) -> int:
    """The period the page asks for (30, 90 or 180 days); anything else is the default."""
    try:
        days = int(value)
    except (TypeError, ValueError):
        return DEFAULT_DAYS
    return days if days in PERIODS else DEFAULT_DAYS


def percent(part: int, whole: int) -> float | None:
    """``part`` of ``whole`` in percent; None when ``whole`` is zero (the page says "no data")."""
    return 100 * part / whole if whole else None


def median(values: list) -> timedelta | None:
    return statistics.median(values) if values else None


def p75(values: list) -> timedelta | None:
    """The 75th percentile by nearest rank: the smallest value at least 75% of the values do not
    exceed (with four values, the third smallest). Always one of the values, never interpolated."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.75 * len(ordered)) - 1]


def bucket_of(delta: timedelta, buckets) -> int:
    for index, (_label, bound) in enumerate(buckets):
        if bound is None or delta < bound:
            return index
    return len(buckets) - 1  # pragma: no cover - the last bucket has no bound


def segment_label(key: str) -> str:
    return dict(SEGMENTS).get(key, key)


def duration_text(delta: timedelta | None) -> str:
    return analytics_selectors.approximate(delta) if delta is not None else "—"


# --- Partners ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartnersRow:
    segment: str
    label: str
    organizations: int
    active: int
    with_sandbox: int
    with_production: int


def partners(segments: Iterable[tuple[str, str]] = SEGMENTS) -> list[PartnersRow]:
    """How many organizations there are of each partner type, and how far their apps go. One query."""
    apps = App.objects.filter(organization=OuterRef("pk"))
    found = {
        row["partner_type"]: row
        for row in Organization.objects.annotate(
            sandbox=Exists(apps.filter(environment=App.Environment.SANDBOX)),
            production=Exists(apps.filter(environment=App.Environment.PRODUCTION)),
        )
        .values("partner_type")
        .annotate(
            organizations=Count("id"),
            active=Count("id", filter=Q(status=Organization.Status.ACTIVE)),
            with_sandbox=Count("id", filter=Q(sandbox=True)),
            with_production=Count("id", filter=Q(production=True)),
        )
        .order_by()
    }
    names = ("organizations", "active", "with_sandbox", "with_production")
    rows = []
    for key, label in segments:
        chosen = list(found.values()) if key == ALL else [found[key]] if key in found else []
        rows.append(PartnersRow(key, label, *(sum(row[name] for row in chosen) for name in names)))
    return rows


# --- Onboarding time -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OnboardingRow:
    segment: str
    label: str
    signups: int
    reached: int  # made a first successful call
    median: timedelta | None
    p75: timedelta | None
    buckets: list[int]  # developers per ONBOARDING_BUCKETS

    @property
    def percent_reached(self) -> float | None:
        return percent(self.reached, self.signups)

    @property
    def median_text(self) -> str:
        return duration_text(self.median)

    @property
    def p75_text(self) -> str:
        return duration_text(self.p75)


def onboarding(*, since: datetime, until: datetime) -> list[OnboardingRow]:
    reached = analytics_selectors.milestones(since=since, until=until)  # FUNNEL_STEPS order
    partner_type: dict[int, str] = {}
    for user_id, kind in (
        Membership.objects.filter(user_id__in=reached)
        .order_by("user_id", "created_at", "pk")
        .values_list("user_id", "organization__partner_type")
    ):
        partner_type.setdefault(user_id, kind)  # the first organization joined
    signups: dict[str, int] = defaultdict(int)
    times: dict[str, list[timedelta]] = defaultdict(list)
    for user_id, steps in reached.items():
        keys = (ALL, partner_type[user_id]) if user_id in partner_type else (ALL,)
        for key in keys:
            signups[key] += 1
            if steps[-1] is not None:
                times[key].append(steps[-1] - steps[0])
    rows = []
    for key, label in SEGMENTS:
        found = times[key]
        buckets = [0] * len(ONBOARDING_BUCKETS)
        for delta in found:
            buckets[bucket_of(delta, ONBOARDING_BUCKETS)] += 1
        rows.append(OnboardingRow(key, label, signups[key], len(found), median(found), p75(found), buckets))
    return rows


# --- Sandbox to production -----------------------------------------------------------------------


@dataclass(frozen=True)
class ConversionRow:
    segment: str
    label: str
    sandbox: int  # organizations whose first successful sandbox call fell in the period
    converted: int  # ... that have made a successful production call since
    median_days: float | None  # sandbox success to production success, among the converted

    @property
    def percent(self) -> float | None:
        return percent(self.converted, self.sandbox)

    @property
    def not_converted(self) -> int:
        return self.sandbox - self.converted


def conversion(*, since: datetime, until: datetime) -> list[ConversionRow]:
    firsts: dict[int, dict] = defaultdict(dict)
    for row in (
        App.objects.filter(first_success_at__isnull=False, first_success_at__lte=until)
        .values("organization_id", "organization__partner_type", "environment")
        .annotate(first=Min("first_success_at"))
        .order_by()
    ):
        found = firsts[row["organization_id"]]
        found["partner_type"] = row["organization__partner_type"]
        found[row["environment"]] = row["first"]
    cohort: dict[str, int] = defaultdict(int)
    days: dict[str, list[float]] = defaultdict(list)
    for found in firsts.values():
        sandbox = found.get(App.Environment.SANDBOX)
        if sandbox is None or not since <= sandbox <= until:
            continue
        production = found.get(App.Environment.PRODUCTION)
        for key in (ALL, found["partner_type"]):
            cohort[key] += 1
            if production is not None:
                # A production call before the first sandbox one is a conversion on day zero.
                days[key].append(max(timedelta(0), production - sandbox) / DAY)
    return [
        ConversionRow(key, label, cohort[key], len(days[key]), statistics.median(days[key]) if days[key] else None)
        for key, label in SEGMENTS
    ]


# --- Consent completion --------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentRow:
    segment: str
    label: str
    shown: int
    approved: int
    denied: int
    abandoned: int
    open: int

    @property
    def completion(self) -> float | None:
        return percent(self.approved, self.shown)

    @property
    def percent_denied(self) -> float | None:
        return percent(self.denied, self.shown)

    @property
    def percent_abandoned(self) -> float | None:
        return percent(self.abandoned, self.shown)


def consent_completion(*, since: datetime, until: datetime) -> list[ConsentRow]:
    """One query: the screens shown in the period by the partner type of the app's organization."""
    Decision = ConsentScreenShown.Decision
    found = {
        row["app__organization__partner_type"]: row
        for row in ConsentScreenShown.objects.filter(shown_at__gte=since, shown_at__lte=until)
        .values("app__organization__partner_type")
        .annotate(
            shown=Count("id"),
            approved=Count("id", filter=Q(decision=Decision.APPROVED)),
            denied=Count("id", filter=Q(decision=Decision.DENIED)),
            open=Count("id", filter=Q(decision="", shown_at__gt=until - ANSWERABLE)),
        )
        .order_by()
    }
    rows = []
    for key, label in SEGMENTS:
        chosen = list(found.values()) if key == ALL else [found[key]] if key in found else []
        shown, approved, denied, waiting = (sum(r[n] for r in chosen) for n in ("shown", "approved", "denied", "open"))
        rows.append(ConsentRow(key, label, shown, approved, denied, shown - approved - denied - waiting, waiting))
    return rows


# --- Time to resolve errors ----------------------------------------------------------------------


@dataclass(frozen=True)
class Episode:
    app_id: int
    error_code: str
    started: datetime  # the first error hour
    last_error: datetime  # the latest error hour
    resolved: datetime | None  # the resolving success hour; None while open

    @property
    def time_to_resolve(self) -> timedelta | None:
        return self.resolved - self.started if self.resolved is not None else None


def episodes_of(errors: list[datetime], successes: list[datetime], *, app_id: int, code: str, now: datetime):
    """The episodes of one app and code, from its error hours and the app's success hours (both
    sorted). See the module docstring for the rules."""
    found = []
    index = 0
    while index < len(errors):
        started = last = errors[index]
        index += 1
        resolved = None
        while True:
            after = bisect.bisect_right(successes, last)
            if after == len(successes):  # no success since: every later error hour is this episode's
                last = errors[-1] if index < len(errors) else last
                index = len(errors)
                break
            success = successes[after]
            if index < len(errors) and errors[index] < success + RESOLVED_AFTER:
                last = errors[index]  # it came back (or never left): the episode goes on
                index += 1
                continue
            if success + RESOLVED_AFTER <= now:
                resolved = success
            break
        found.append(Episode(app_id, code, started, last, resolved))
    return found


def error_episodes(*, since: datetime, until: datetime) -> tuple[list[Episode], dict[int, str]]:
    """Every error episode that started in the period, and the partner type of each app in them.
    Three queries: the error hours, the apps' partner types, and those apps' success hours."""
    rows = UsageHour.objects.filter(hour__gte=floor_hour(since), hour__lte=until)
    errors: dict[tuple[int, str], list[datetime]] = defaultdict(list)
    for app_id, code, hour in (
        rows.filter(status_class__in=ERROR_CLASSES, count__gt=0)
        .exclude(error_code="")
        .values_list("app_id", "error_code", "hour")
        .distinct()
        .order_by("app_id", "error_code", "hour")
    ):
        errors[(app_id, code)].append(hour)
    app_ids = {app_id for app_id, _ in errors}
    partner_type = dict(App.objects.filter(pk__in=app_ids).values_list("pk", "organization__partner_type"))
    successes: dict[int, list[datetime]] = defaultdict(list)
    if app_ids:
        for app_id, hour in (
            rows.filter(status_class="2xx", count__gt=0, app_id__in=app_ids)
            .values_list("app_id", "hour")
            .distinct()
            .order_by("app_id", "hour")
        ):
            successes[app_id].append(hour)
    episodes = [
        episode
        for (app_id, code), hours in errors.items()
        for episode in episodes_of(hours, successes[app_id], app_id=app_id, code=code, now=until)
    ]
    return episodes, partner_type


@dataclass(frozen=True)
class ErrorsRow:
    segment: str  # a partner type or ALL; or a problem code in ``by_code``
    label: str
    episodes: int
    resolved: int
    open: int
    median: timedelta | None
    p75: timedelta | None
    buckets: list[int] = field(default_factory=list)  # resolved episodes per RESOLUTION_BUCKETS

    @property
    def median_text(self) -> str:
        return duration_text(self.median)

    @property
    def p75_text(self) -> str:
        return duration_text(self.p75)


def _errors_row(key: str, label: str, episodes: list[Episode]) -> ErrorsRow:
    times = [episode.time_to_resolve for episode in episodes if episode.resolved is not None]
    buckets = [0] * len(RESOLUTION_BUCKETS)
    for delta in times:
        buckets[bucket_of(delta, RESOLUTION_BUCKETS)] += 1
    still_open = len(episodes) - len(times)
    return ErrorsRow(key, label, len(episodes), len(times), still_open, median(times), p75(times), buckets)


@dataclass(frozen=True)
class ErrorsSummary:
    rows: list[ErrorsRow]  # per segment
    by_code: list[ErrorsRow]  # the codes with the most episodes, every partner


def errors(*, since: datetime, until: datetime) -> ErrorsSummary:
    episodes, partner_type = error_episodes(since=since, until=until)
    by_segment: dict[str, list[Episode]] = defaultdict(list)
    by_code: dict[str, list[Episode]] = defaultdict(list)
    for episode in episodes:
        by_segment[ALL].append(episode)
        by_segment[partner_type.get(episode.app_id, "")].append(episode)
        by_code[episode.error_code].append(episode)
    codes = sorted(by_code.items(), key=lambda item: (-len(item[1]), item[0]))[:TOP_CODES]
    return ErrorsSummary(
        rows=[_errors_row(key, label, by_segment[key]) for key, label in SEGMENTS],
        by_code=[_errors_row(code, code, found) for code, found in codes],
    )


# --- Partner retention ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RetentionRow:
    segment: str
    label: str
    previous: int  # active in the window before the period
    retained: int  # ... and in the period
    current: int  # active in the period

    @property
    def percent(self) -> float | None:
        return percent(self.retained, self.previous)

    @property
    def new(self) -> int:
        """Active in the period, not in the window before: new, or back after a pause."""
        return self.current - self.retained


@dataclass(frozen=True)
class MonthRetention:
    month: datetime  # its first instant, UTC
    partial: bool  # the current month, so far
    active: int
    retained: int  # active in the month before too
    previous: int  # active in the month before
    percent_by_segment: list[float | None]  # retained / previous, in SEGMENTS order

    @property
    def percent(self) -> float | None:
        return percent(self.retained, self.previous)

    @property
    def new(self) -> int:
        return self.active - self.retained


@dataclass(frozen=True)
class Retention:
    rows: list[RetentionRow]
    months: list[MonthRetention]


def month_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def previous_month(month: datetime) -> datetime:
    return month_start(month - DAY)


def retention(*, since: datetime, until: datetime) -> Retention:
    """Two queries: active organizations in the period and the window before it, with their partner
    type; and the organizations active per calendar month over the last ``MONTHS`` + 1 months."""
    # Usage is counted per hour: the period's usage starts with the hour it began in.
    start = floor_hour(since)
    successes = UsageHour.objects.filter(status_class="2xx", count__gt=0)
    activity = (
        successes.filter(hour__gte=start - (until - since), hour__lte=until)
        .values("organization_id", "organization__partner_type")
        .annotate(
            previous=Max(Case(When(hour__lt=start, then=Value(1)), default=Value(0), output_field=IntegerField())),
            current=Max(Case(When(hour__gte=start, then=Value(1)), default=Value(0), output_field=IntegerField())),
        )
        .order_by()
    )
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in activity:
        for key in (ALL, row["organization__partner_type"]):
            counts[key][0] += row["previous"]
            counts[key][1] += row["previous"] and row["current"]
            counts[key][2] += row["current"]
    rows = [RetentionRow(key, label, *counts[key]) for key, label in SEGMENTS]

    months = [month_start(until)]
    while len(months) < MONTHS + 1:
        months.insert(0, previous_month(months[0]))
    active: dict[datetime, dict[int, str]] = defaultdict(dict)
    for organization_id, kind, month in (
        successes.filter(hour__gte=months[0], hour__lte=until)
        .annotate(month=TruncMonth("hour", tzinfo=UTC))
        .values_list("organization_id", "organization__partner_type", "month")
        .distinct()
        .order_by()
    ):
        active[month_start(month)][organization_id] = kind
    monthly = []
    for before, month in itertools.pairwise(months):
        now_active, then_active = active[month], active[before]
        retained = now_active.keys() & then_active.keys()
        by_segment = []
        for key, _label in SEGMENTS:
            then_ids = {pk for pk, kind in then_active.items() if key in (ALL, kind)}
            by_segment.append(percent(len(then_ids & retained), len(then_ids)))
        monthly.append(
            MonthRetention(
                month=month,
                partial=month == months[-1],
                active=len(now_active),
                retained=len(retained),
                previous=len(then_active),
                percent_by_segment=by_segment,
            )
        )
    return Retention(rows=rows, months=monthly)


# --- Workflow completion -------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowRow:
    segment: str
    label: str
    started: int
    completed: int
    counts: list[int]  # in the order of the workflow's ``columns``

    @property
    def percent(self) -> float | None:
        return percent(self.completed, self.started)


@dataclass(frozen=True)
class Workflow:
    key: str
    title: str
    started_label: str
    completed_label: str
    columns: list[str]  # the labels of each row's ``counts``
    definition: str
    rows: list[WorkflowRow]


def _per_segment(found: dict[str, dict], key: str) -> dict[str, int]:
    """The counts of one segment: one partner type's row, or every row summed for ALL."""
    chosen = list(found.values()) if key == ALL else [found[key]] if key in found else []
    totals: dict[str, int] = defaultdict(int)
    for row in chosen:
        for name, value in row.items():
            totals[name] += value or 0
    return totals


def _by_partner_type(rows) -> dict[str, dict]:
    """Aggregate rows grouped by ``partner_type``, by partner type."""
    return {row.pop("partner_type"): row for row in rows}


def workflows(*, since: datetime, until: datetime) -> list[Workflow]:
    """Four queries, each grouped by partner type in the database."""
    # Visits name their app by id only (no foreign key into partners): its partner type by subquery.
    app_partner_type = Subquery(App.objects.filter(pk=OuterRef("app_id")).values("organization__partner_type")[:1])
    visits = _by_partner_type(
        Appointment.objects.filter(app_id__isnull=False, booked_at__gte=since, booked_at__lte=until)
        .values(partner_type=app_partner_type)
        .annotate(started=Count("id"), cancelled=Count("id", filter=Q(status="cancelled")))
        .order_by()
    )
    Status = LabResultShare.Status
    shares = _by_partner_type(
        LabResultShare.objects.filter(created_at__gte=since, created_at__lte=until)
        .values(partner_type=F("organization__partner_type"))
        .annotate(
            started=Count("id"),
            revoked=Count("id", filter=Q(status=Status.REVOKED)),
            ended=Count("id", filter=Q(status=Status.ACTIVE, expires_at__lte=until)),
            active=Count("id", filter=Q(status=Status.ACTIVE, expires_at__gt=until)),
        )
        .order_by()
    )
    Outcome = EligibilityCheck.Outcome
    checks = _by_partner_type(
        EligibilityCheck.objects.filter(created_at__gte=since, created_at__lte=until)
        .values(partner_type=F("organization__partner_type"))
        .annotate(
            checks=Count("id"),
            eligible=Count("id", filter=Q(outcome=Outcome.ELIGIBLE)),
            not_eligible=Count("id", filter=Q(outcome=Outcome.NOT_ELIGIBLE)),
            unknown=Count("id", filter=Q(outcome=Outcome.UNKNOWN)),
        )
        .order_by()
    )
    refused = _by_partner_type(
        UsageHour.objects.filter(
            group="eligibility", status_class__in=ERROR_CLASSES, hour__gte=floor_hour(since), hour__lte=until
        )
        .values(partner_type=F("organization__partner_type"))
        .annotate(errors=Sum("count"))
        .order_by()
    )

    def rows(build) -> list[WorkflowRow]:
        return [WorkflowRow(key, label, *build(key)) for key, label in SEGMENTS]

    def visit_row(key):
        found = _per_segment(visits, key)
        kept = found["started"] - found["cancelled"]
        return found["started"], kept, [kept, found["cancelled"]]

    def share_row(key):
        found = _per_segment(shares, key)
        kept = found["active"] + found["ended"]
        return found["started"], kept, [found["active"], found["ended"], found["revoked"]]

    def check_row(key):
        found = _per_segment(checks, key)
        errors_ = _per_segment(refused, key)["errors"]
        definite = found["eligible"] + found["not_eligible"]
        return (
            found["checks"] + errors_,
            definite,
            [found["eligible"], found["not_eligible"], found["unknown"], errors_],
        )

    return [
        Workflow(
            key="visits",
            title="Visits booked",
            started_label="Booked",
            completed_label="Kept",
            columns=["Not cancelled", "Cancelled"],
            definition="Visits booked through the visits API in the period (by the app that booked them); kept: "
            "not cancelled since. Whether the patient then came is not recorded.",
            rows=rows(visit_row),
        ),
        Workflow(
            key="lab-shares",
            title="Lab-result shares",
            started_label="Shared",
            completed_label="Not revoked early",
            columns=["Still active", "Ran to their end", "Revoked early"],
            definition="Lab results shared in the period; completed: still active or ran to the end the app "
            "chose, not revoked early. Shares record no \u201cviewed\u201d or \u201cacknowledged\u201d state.",
            rows=rows(share_row),
        ),
        Workflow(
            key="eligibility",
            title="Eligibility checks",
            started_label="Attempts",
            completed_label="Definite answer",
            columns=["Eligible", "Not eligible", "Unknown", "Refused (4xx, 5xx)"],
            definition="Eligibility checks asked in the period: every check recorded plus every request to the "
            "eligibility endpoint refused with a 4xx or 5xx response (no coverage, no consent, rate limited, "
            "payer failure). Completed: the payer gave a definite answer (eligible or not eligible).",
            rows=rows(check_row),
        ),
    ]


# --- The page ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    days: int
    since: datetime
    until: datetime
    partners: list[PartnersRow]
    onboarding: list[OnboardingRow]
    conversion: list[ConversionRow]
    consent: list[ConsentRow]
    errors: ErrorsSummary
    retention: Retention
    workflows: list[Workflow]

    @property
    def previous_since(self) -> datetime:
        return self.since - (self.until - self.since)


def dashboard(*, days: int = DEFAULT_DAYS, now: datetime | None = None) -> Dashboard:
    until = now or timezone.now()
    since = until - timedelta(days=days)
    return Dashboard(
        days=days,
        since=since,
        until=until,
        partners=partners(),
        onboarding=onboarding(since=since, until=until),
        conversion=conversion(since=since, until=until),
        consent=consent_completion(since=since, until=until),
        errors=errors(since=since, until=until),
        retention=retention(since=since, until=until),
        workflows=workflows(since=since, until=until),
    )
