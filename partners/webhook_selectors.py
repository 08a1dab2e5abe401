"""Reads of webhook subscriptions and their delivery log, scoped to the app that owns them.

A subscription or delivery is looked up *through* its app, so a caller naming another app's id gets
``None`` and answers 404: nobody learns that someone else's subscription exists.
"""

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
