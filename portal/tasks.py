"""Thin Celery wrappers; each calls one function and keeps no rules of its own."""

from celery import shared_task


@shared_task
def purge_old_portal_events() -> int:
    """Daily (``CELERY_BEAT_SCHEDULE``): delete portal analytics events older than
    ``PORTAL_ANALYTICS_RETENTION_DAYS``. Returns how many were deleted."""
    from portal.analytics import portal_events_purge

    return portal_events_purge()
