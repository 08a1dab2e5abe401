"""Thin Celery wrappers; each calls one function and keeps no rules of its own."""

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_email(*, to: list[str], subject: str, body: str) -> None:
    send_mail(subject=subject, message=body, from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=to)


@shared_task
def purge_expired_oauth_records() -> None:
    from partners.services import oauth_records_purge

    oauth_records_purge()
