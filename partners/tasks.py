"""Thin Celery wrappers; each calls one function and keeps no rules of its own."""

from celery import shared_task


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_email(*, to: list[str], subject: str, body: str) -> None:
    from partners.services import email_send

    email_send(to=to, subject=subject, body=body)


@shared_task
def purge_expired_oauth_records() -> None:
    from partners.services import oauth_records_purge

    oauth_records_purge()


# --- Events and webhooks (partners/event_services.py, partners/webhooks.py) -----------------------


@shared_task(acks_late=True)
def fan_out_event(event_id: str) -> int:
    from partners.event_services import event_fan_out

    return len(event_fan_out(event_id=event_id))


@shared_task
def dispatch_pending_events() -> int:
    from partners.event_services import event_dispatch_pending

    return event_dispatch_pending()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def deliver_webhook(delivery_id: int) -> str:
    from partners.webhooks import delivery_attempt

    return delivery_attempt(delivery_id=delivery_id)


@shared_task
def queue_due_deliveries() -> int:
    from partners.webhooks import deliveries_due_queue

    return deliveries_due_queue()


@shared_task
def purge_old_events() -> int:
    from partners.event_services import events_purge

    return events_purge()


@shared_task
def purge_sandbox_traces() -> int:
    """Daily: forget sandbox behaviour older than certification looks (``TRACE_RETENTION``)."""
    from partners.sandbox_trace import sandbox_traces_purge

    return sandbox_traces_purge()
