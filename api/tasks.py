"""Thin Celery wrappers; each calls one function and keeps no rules of its own."""

from celery import shared_task


@shared_task
def seal_access_audit() -> int:
    """Every minute (``CELERY_BEAT_SCHEDULE``): seal the settled access events into hash-chained
    batches. Returns how many events were sealed."""
    from api.audit_seal import audit_seal_pending

    return sum(batch.event_count for batch in audit_seal_pending())


@shared_task
def purge_expired_idempotency_keys() -> int:
    """Every hour: forget Idempotency-Keys past their 24 hours. Returns how many were forgotten."""
    from api.idempotency import purge_expired

    return purge_expired()


@shared_task
def rollup_usage() -> int:
    """Every 5 minutes: copy the usage counters of every pending hour (and the current one, so far)
    into ``UsageHour``, setting each row to its total. Safe to rerun or overlap. Returns rows written."""
    from api.usage import rollup

    return rollup()


@shared_task
def purge_old_usage() -> int:
    """Daily: delete usage rows older than 13 months. Returns how many were deleted."""
    from api.usage import purge_older_than

    return purge_older_than()


@shared_task
def evaluate_adaptive_limits() -> int:
    """Every 10 seconds: tighten or loosen the adaptive groups' limits from their last window, cap or
    free apps far above their usual rate. Returns how many limits started or ended."""
    from api.adaptive import evaluate

    return evaluate()


@shared_task
def send_deprecation_notices() -> dict:
    """Hourly: tell the organizations whose apps called a deprecated endpoint of the milestone due now
    (inbox, then email), once per organization and milestone even when runs repeat or overlap. Returns
    ``{"told": organizations told, "emailed": emails sent}``."""
    from api.deprecation_notices import deprecation_notices_send

    return deprecation_notices_send()


@shared_task(acks_late=True)
def run_certification(run_id: int) -> str:
    """A certification run a partner started (``api.certification``): every check, then the verdict.
    A duplicate of the task finds the run no longer queued and does nothing."""
    from api.certification import certification_run_execute

    return certification_run_execute(run_id=run_id)
