"""Reads of webhook subscriptions and their delivery log, scoped to the app that owns them.

A subscription or delivery is looked up *through* its app, so a caller naming another app's id gets
``None`` and answers 404: nobody learns that someone else's subscription exists.
"""

from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce

from partners.event_models import WebhookDelivery, WebhookSubscription
from partners.models import App, Organization


def subscriptions_of(app: App):
    return WebhookSubscription.objects.filter(app=app)


def subscription_of(*, app: App, subscription_id: str) -> WebhookSubscription | None:
    return (
        WebhookSubscription.objects.select_related("app", "app__organization")
        .filter(app=app, pk=subscription_id)
        .first()
    )


def subscription_count(organization: Organization) -> int:
    """What the tier's cap counts: every subscription of every app, enabled or not."""
    return WebhookSubscription.objects.filter(app__organization=organization).count()


def deliveries_of(subscription: WebhookSubscription):
    """The delivery log, with each delivery's event and attempts (three queries a page)."""
    return (
        WebhookDelivery.objects.filter(subscription=subscription)
        .select_related("event")
        .prefetch_related("attempt_log")
        .order_by("-created_at", "-id")
    )


def delivery_of(*, subscription: WebhookSubscription, delivery_id: int) -> WebhookDelivery | None:
    return (
        WebhookDelivery.objects.select_related("event", "subscription", "subscription__app")
        .filter(subscription=subscription, pk=delivery_id)
        .first()
    )


def delivery_backlog(*, now, failed_since) -> dict:
    """Across every subscription, for /status/: deliveries waiting (``pending``), those a worker may
    take now and none holds (``due``) and when the longest-waiting of them fell due (``oldest_due_at``),
    those an attempt is under way for (``in_flight``), those that failed at least once and wait for a
    retry (``retrying``), and those given up on since ``failed_since`` (``failed``). Two queries."""
    due = (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )
    backlog = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).aggregate(
        pending=Count("pk"),
        due=Count("pk", filter=due),
        in_flight=Count("pk", filter=Q(claimed_until__gte=now)),
        retrying=Count("pk", filter=Q(attempts__gt=0)),
        oldest_due_at=Min(Coalesce("next_attempt_at", "created_at"), filter=due),
    )
    backlog["failed"] = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.FAILED, completed_at__gte=failed_since
    ).count()
    return backlog
