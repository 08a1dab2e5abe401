"""Reads of the access audit: an app's own events for its partner, and the rows the admin and the
partners export."""

from datetime import datetime

from api.models import AccessEvent


def access_events_of_app(
    *, app, since: datetime | None = None, until: datetime | None = None, outcome: str = "", newest_first: bool = True
):
    """The app's access events (never another app's), optionally from ``since`` (inclusive) to
    ``until`` (exclusive) and with one outcome. Newest first for a page, oldest first for an export."""
    events = AccessEvent.objects.filter(app_id=app.pk)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    if until is not None:
        events = events.filter(occurred_at__lt=until)
    if outcome:
        events = events.filter(outcome=outcome)
    return events.order_by("-id" if newest_first else "id")
