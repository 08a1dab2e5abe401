"""``/admin/ecosystem/`` (``ecosystem_health_view``): the ecosystem's health for platform admins, read
by ``portal.ecosystem`` and drawn here as tables and server-rendered SVG charts
(``marketplace.charts``, the same as ``/admin/usage/``: no JavaScript, nothing fetched). Routed in
``marketplace/urls.py`` before the admin's own URLs, as ``/admin/usage/`` is."""

from dataclasses import dataclass

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from marketplace.charts import Series, StackedBarChart, stacked_bar_chart
from portal import ecosystem

# Fill colours with at least 3:1 contrast against white, as marketplace.charts asks.
PARTNER_COLORS = {"provider": "#1f7a4d", "payer": "#3a5ba0", "developer": "#b86e00", "research": "#7a3fa0"}
GREEN, BLUE, ORANGE, RED, GREY = "#1f7a4d", "#3a5ba0", "#b86e00", "#b42318", "#5f7580"


@dataclass(frozen=True)
class Chart:
    """A chart as the page includes it (``charts/stacked_bars.html``), with its text alternative."""

    id: str
    title: str
    description: str
    chart: StackedBarChart
    total: int

    @property
    def has_data(self) -> bool:
        return self.total > 0


def partner_series() -> list[Series]:
    return [Series(key, label, PARTNER_COLORS.get(key, GREY)) for key, label in ecosystem.PARTNER_TYPES]


def describe(points, series: list[Series], *, unit: tuple[str, str]) -> str:
    """Every bar in words: "Provider: 3 organizations (2 reached production, 1 sandbox only so far)"."""
    parts = []
    for label, values in points:
        total = sum(values)
        named = zip(series, values, strict=True)
        detail = ", ".join(f"{value:,} {item.label.lower()}" for item, value in named if value)
        parts.append(f"{label}: {total:,} {unit[total != 1]}" + (f" ({detail})" if detail else ""))
    return "; ".join(parts) + "."


def chart(
    *, id: str, title: str, points, series: list[Series], y_title: str, x_title: str, unit: tuple[str, str]
) -> Chart:
    """``unit``: what a bar counts, singular and plural."""
    return Chart(
        id=id,
        title=title,
        description=describe(points, series, unit=unit),
        chart=stacked_bar_chart(
            points=points,
            series=series,
            x_labels={index: label for index, (label, _) in enumerate(points)},
            x_title=x_title,
            y_title=y_title,
            height=260,
            empty=f"no {unit[1]}",
        ),
        total=sum(sum(values) for _, values in points),
    )


def by_partner_type(rows) -> list:
    """The rows of the partner types, without the "All partners" one, in ``PARTNER_TYPES`` order."""
    return [row for row in rows if row.segment != ecosystem.ALL]


def charts(board: ecosystem.Dashboard) -> dict[str, Chart]:
    types = partner_series()
    phrase = f"the last {board.days} days"
    onboarding = by_partner_type(board.onboarding)
    errors = by_partner_type(board.errors.rows)
    return {
        "onboarding": chart(
            id="onboarding-chart",
            title=f"Time from signup to first successful call, developers who signed up in {phrase}",
            points=[
                (label, [row.buckets[index] for row in onboarding])
                for index, (label, _) in enumerate(ecosystem.ONBOARDING_BUCKETS)
            ],
            series=types,
            x_title="Time from signup to first successful call",
            y_title="Developers",
            unit=("developer", "developers"),
        ),
        "conversion": chart(
            id="conversion-chart",
            title=f"Organizations with a first successful sandbox call in {phrase}: did they reach production?",
            points=[(row.label, [row.converted, row.not_converted]) for row in by_partner_type(board.conversion)],
            series=[
                Series("converted", "Reached production", GREEN),
                Series("sandbox", "Sandbox only so far", GREY),
            ],
            x_title="Partner type",
            y_title="Organizations",
            unit=("organization", "organizations"),
        ),
        "consent": chart(
            id="consent-chart",
            title=f"Consent screens shown in {phrase}, by what the patient did",
            points=[
                (row.label, [row.approved, row.denied, row.abandoned, row.open])
                for row in by_partner_type(board.consent)
            ],
            series=[
                Series("approved", "Approved", GREEN),
                Series("denied", "Denied", RED),
                Series("abandoned", "Abandoned", ORANGE),
                Series("open", "Still open", GREY),
            ],
            x_title="Partner type of the app's organization",
            y_title="Screens",
            unit=("screen", "screens"),
        ),
        "errors": chart(
            id="errors-chart",
            title=f"Error episodes that started in {phrase}, by time to resolve",
            points=[
                *(
                    (label, [row.buckets[index] for row in errors])
                    for index, (label, _) in enumerate(ecosystem.RESOLUTION_BUCKETS)
                ),
                ("Still open", [row.open for row in errors]),
            ],
            series=types,
            x_title="Time to resolve",
            y_title="Episodes",
            unit=("episode", "episodes"),
        ),
        "retention": chart(
            id="retention-chart",
            title="Active organizations per month, and those active the month before too",
            points=[
                (f"{month.month:%b %Y}{' (so far)' if month.partial else ''}", [month.retained, month.new])
                for month in board.retention.months
            ],
            series=[
                Series("retained", "Active the month before too", GREEN),
                Series("new", "New or back after a pause", BLUE),
            ],
            x_title="Month (UTC)",
            y_title="Organizations",
            unit=("organization", "organizations"),
        ),
    }


def ecosystem_health_view(request):
    """``/admin/ecosystem/?days=30|90|180``: onboarding time, sandbox-to-production conversion,
    consent completion, time to resolve errors, partner retention and workflow completion, per partner
    type. Staff who may view organizations only (the admin's login wrapper sends anyone else to log
    in)."""
    if not request.user.has_perm("partners.view_organization"):
        raise PermissionDenied
    board = ecosystem.dashboard(days=ecosystem.period_days(request.GET.get("days")))
    context = {
        **admin.site.each_context(request),
        "title": "Ecosystem health",
        "board": board,
        "charts": charts(board),
        "periods": ecosystem.PERIODS.items(),
        "segments": ecosystem.SEGMENTS,
        "onboarding_buckets": [label for label, _ in ecosystem.ONBOARDING_BUCKETS],
        "answerable_minutes": int(ecosystem.ANSWERABLE.total_seconds() // 60),
        "top_codes": ecosystem.TOP_CODES,
    }
    return TemplateResponse(request, "admin/ecosystem.html", context)
