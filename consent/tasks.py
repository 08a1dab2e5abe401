"""Thin Celery wrappers; each calls one service and keeps no rules of its own."""

from celery import shared_task


@shared_task
def expire_consents() -> int:
    """Every 5 minutes (``CELERY_BEAT_SCHEDULE``): mark grants past their expiry as expired. The
    enforcement check already refuses them from the moment they expire; this records it."""
    from consent.services import consent_expire_due

    return consent_expire_due()
