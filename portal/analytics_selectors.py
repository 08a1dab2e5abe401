"""Reads for the admin's "Portal analytics" page (``/admin/portal/analytics/``): what the docs are
read for, what searches find nothing, which error pages developers land on (``PortalEvent`` rows,
recorded by ``portal.analytics``), and where developers leave the onboarding path.

The onboarding funnel follows the developers who signed up in the period (not staff, not patient
accounts) along signup -> organization -> app -> first token -> first successful call:

- organization: a membership of any organization, created or joined by invitation;
- app: an app of one of their organizations, whoever registered it, reached no earlier than they
  joined that organization;
- first token and first successful call: ``App.first_token_at`` and ``App.first_success_at`` of those
  apps (kept on the app because tokens and usage rows are purged), likewise no earlier than joining.

Each step counts only developers who reached every step before it, and its time is never before the
previous step's, so the funnel only narrows and every "time between steps" is at least zero. An app
with a first successful call but no first token (its tokens were purged before the milestone was
recorded) is counted as having had a token when it made the call.
"""

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max
from django.db.models.functions import Lower
from django.utils import timezone

from partners.models import App, Membership, User
from portal.models import PortalEvent

PERIODS = {7: "Last 7 days", 30: "Last 30 days", 90: "Last 90 days"}
DEFAULT_DAYS = 30
TOP = 20
FUNNEL_STEPS = (
    ("signup", "Signed up"),
    ("organization", "Created or joined an organization"),
    ("app", "Registered an app"),
    ("token", "Got a first access token"),
    ("success", "Made a first successful API call"),
)


def period_days(value) -> int:
    """The period the page asks for (7, 30 or 90 days); anything else is the default."""
    try:
        days = int(value)
    except (TypeError, ValueError):
        return DEFAULT_DAYS
    return days if days in PERIODS else DEFAULT_DAYS


@dataclass(frozen=True)
class Row:
    label: str
    count: int
    visitors: int = 0
    last_seen: datetime | None = None
    results: int | None = None


@dataclass(frozen=True)
class FunnelStep:
    key: str
    label: str
    count: int
    percent_of_signups: float | None  # 0-100; None when nobody signed up
    dropped: int | None  # left between the previous step and this one; None for the first step
    percent_dropped: float | None  # of those who reached the previous step
    median_from_previous: timedelta | None  # among those who reached this step

    @property
    def median_text(self) -> str:
        return approximate(self.median_from_previous) if self.median_from_previous is not None else "—"


@dataclass(frozen=True)
class Dashboard:
    days: int
    since: datetime
    page_views: int
    visitors: int
    searches: int
    zero_result_searches: int
    error_page_visits: int
    top_pages: list[Row] = field(default_factory=list)
    top_searches: list[Row] = field(default_factory=list)
    zero_result_queries: list[Row] = field(default_factory=list)
    error_pages: list[Row] = field(default_factory=list)
    funnel: list[FunnelStep] = field(default_factory=list)


def approximate(delta: timedelta) -> str:
    """A duration as a person reads it: "45 seconds", "12 minutes", "3.5 hours", "2.1 days"."""
    seconds = delta.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            value = seconds / size
            text = f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
            return f"{text} {unit}{'' if text == '1' else 's'}"
    return f"{seconds:.0f} second{'' if round(seconds) == 1 else 's'}"


def error_code_of(path: str) -> str:
    """``/docs/errors/quota_exceeded/`` -> ``quota_exceeded``."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def dashboard(*, days: int = DEFAULT_DAYS, now: datetime | None = None) -> Dashboard:
    now = now or timezone.now()
    since = now - timedelta(days=days)
    events = PortalEvent.objects.filter(at__gte=since, at__lte=now)
    views = events.filter(kind=PortalEvent.Kind.PAGE_VIEW)
    searches = events.filter(kind=PortalEvent.Kind.SEARCH)
    error_pages = events.filter(kind=PortalEvent.Kind.ERROR_PAGE)
    totals = events.aggregate(
        visitors=Count("visitor", distinct=True),
    )
    top_pages = [
        Row(label=row["path"], count=row["n"], visitors=row["visitors"], last_seen=row["last"])
        for row in views.values("path")
        .annotate(n=Count("id"), visitors=Count("visitor", distinct=True), last=Max("at"))
        .order_by("-n", "path")[:TOP]
    ]
    # Searches are grouped case-insensitively: "PKCE" and "pkce" are one question.
    by_query = searches.annotate(q=Lower("query")).values("q")
    top_searches = [
        Row(label=row["q"], count=row["n"], visitors=row["visitors"], last_seen=row["last"], results=row["found"])
        for row in by_query.annotate(
            n=Count("id"), visitors=Count("visitor", distinct=True), last=Max("at"), found=Max("results")
        ).order_by("-n", "q")[:TOP]
    ]
    zero_result_queries = [
        Row(label=row["q"], count=row["n"], visitors=row["visitors"], last_seen=row["last"], results=0)
        for row in by_query.filter(results=0)
        .annotate(n=Count("id"), visitors=Count("visitor", distinct=True), last=Max("at"))
        .order_by("-n", "-last")[:TOP]
    ]
    error_rows = [
        Row(label=error_code_of(row["path"]), count=row["n"], visitors=row["visitors"], last_seen=row["last"])
        for row in error_pages.values("path")
        .annotate(n=Count("id"), visitors=Count("visitor", distinct=True), last=Max("at"))
        .order_by("-n", "path")[:TOP]
    ]
    return Dashboard(
        days=days,
        since=since,
        page_views=views.count(),
        visitors=totals["visitors"],
        searches=searches.count(),
        zero_result_searches=searches.filter(results=0).count(),
        error_page_visits=error_pages.count(),
        top_pages=top_pages,
        top_searches=top_searches,
        zero_result_queries=zero_result_queries,
        error_pages=error_rows,
        funnel=onboarding_funnel(since=since, until=now),
    )


# --- The onboarding funnel -------------------------------------------------------------------------


def developers_signed_up(*, since: datetime, until: datetime):
    """Partner developers who signed up in the period: not staff, and not patient accounts (an
    account that speaks for a FHIR patient)."""
    return User.objects.filter(date_joined__gte=since, date_joined__lte=until, is_staff=False, fhir_patient_id="")


def milestones(*, since: datetime, until: datetime) -> dict[int, list[datetime | None]]:
    """Per developer who signed up in the period, when they reached each step (``FUNNEL_STEPS``
    order), or None from the first step they have not reached. Three queries."""
    users = dict(developers_signed_up(since=since, until=until).values_list("pk", "date_joined"))
    memberships = list(
        Membership.objects.filter(user_id__in=users).values_list("user_id", "organization_id", "created_at")
    )
    apps_by_org: dict[int, list[tuple]] = {}
    for organization_id, created, first_token, first_success in App.objects.filter(
        organization_id__in={organization_id for _, organization_id, _ in memberships}
    ).values_list("organization_id", "created", "first_token_at", "first_success_at"):
        apps_by_org.setdefault(organization_id, []).append((created, first_token or first_success, first_success))
    joined: dict[int, list[tuple[int, datetime]]] = {}
    for user_id, organization_id, created_at in memberships:
        joined.setdefault(user_id, []).append((organization_id, created_at))

    def earliest(user_id: int, index: int) -> datetime | None:
        """The earliest time any app of the user's organizations reached milestone ``index`` (0: the
        app was registered, 1: first token, 2: first success), no earlier than the user joined."""
        times = [
            max(app[index], joined_at)
            for organization_id, joined_at in joined.get(user_id, ())
            for app in apps_by_org.get(organization_id, ())
            if app[index] is not None
        ]
        return min(times, default=None)

    reached: dict[int, list[datetime | None]] = {}
    for user_id, date_joined in users.items():
        steps: list[datetime | None] = [date_joined]
        organization = min((at for _, at in joined.get(user_id, ())), default=None)
        for at in (organization, earliest(user_id, 0), earliest(user_id, 1), earliest(user_id, 2)):
            previous = steps[-1]
            steps.append(None if previous is None or at is None else max(at, previous))
        reached[user_id] = steps
    return reached


def onboarding_funnel(*, since: datetime, until: datetime) -> list[FunnelStep]:
    reached = list(milestones(since=since, until=until).values())
    signups = len(reached)
    funnel = []
    for index, (key, label) in enumerate(FUNNEL_STEPS):
        count = sum(1 for steps in reached if steps[index] is not None)
        previous = funnel[-1].count if funnel else None
        gaps = [steps[index] - steps[index - 1] for steps in reached if index and steps[index] is not None]
        funnel.append(
            FunnelStep(
                key=key,
                label=label,
                count=count,
                percent_of_signups=100 * count / signups if signups else None,
                dropped=None if previous is None else previous - count,
                percent_dropped=(100 * (previous - count) / previous) if previous else None,
                median_from_previous=statistics.median(gaps) if gaps else None,
            )
        )
    return funnel
