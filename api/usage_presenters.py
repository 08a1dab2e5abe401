"""How a usage ``Dashboard`` is drawn: the requests-per-hour chart and its text description, shared
by the portal's app page and the admin's cross-partner page."""

from api.usage_selectors import STATUS_CLASSES, Dashboard
from marketplace.charts import Series, StackedBarChart, stacked_bar_chart

STATUS_SERIES = {
    "2xx": Series("2xx", "2xx success", "#1f7a4d"),
    "3xx": Series("3xx", "3xx redirect or not modified", "#3a5ba0"),
    "4xx": Series("4xx", "4xx client error", "#b86e00"),
    "5xx": Series("5xx", "5xx server error", "#b42318"),
}


def requests_chart(dashboard: Dashboard) -> StackedBarChart:
    hours = dashboard.hours
    daily = dashboard.period.hours > 48
    if daily:  # one label a day, at midnight
        labels = {index: f"{hour.hour:%b %d}" for index, hour in enumerate(hours) if hour.hour.hour == 0}
    else:  # one label every three hours
        labels = {index: f"{hour.hour:%H:%M}" for index, hour in enumerate(hours) if hour.hour.hour % 3 == 0}
    return stacked_bar_chart(
        points=[(f"{hour.hour:%Y-%m-%d %H:%M} UTC", hour.by_class) for hour in hours],
        series=[STATUS_SERIES[klass] for klass in STATUS_CLASSES],
        x_labels=labels,
        x_title="Hour (UTC)" if not daily else "Day (UTC)",
        y_title="Requests per hour",
    )


def requests_description(dashboard: Dashboard) -> str:
    """The chart in one paragraph, for its ``<desc>`` (screen readers) and as a caption."""
    hours = dashboard.hours
    first, last = hours[0].hour, hours[-1].hour
    text = f"Requests per hour from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H}:59 UTC: {dashboard.total:,} in total"
    if not dashboard.total:
        return f"{text}."
    parts = ", ".join(f"{count:,} {klass}" for klass, count in dashboard.totals.items() if count)
    busiest = max(hours, key=lambda hour: (hour.total, hour.hour))
    return f"{text} ({parts}). The busiest hour was {busiest.hour:%Y-%m-%d %H:%M} UTC with {busiest.total:,}."
