"""Events after the outbox: who received each one (the feed), webhook subscriptions, deliveries and
their attempts. Imported by ``partners.models``.

An ``OutboxEvent`` is fanned out once (``partners.event_services.event_fan_out``):

- one ``EventRecipient`` per app that may see it, numbered per app without gaps (the event feed's
  order and cursor);
- one ``WebhookDelivery`` per enabled subscription of those apps that asked for its type, numbered
  per subscription without gaps (the ``sequence`` a receiver uses to spot a missed or reordered
  message), each with its ``DeliveryAttempt`` rows.
"""

import secrets

from django.conf import settings
from django.db import models

from partners.models import App, OutboxEvent


def new_subscription_id() -> str:
    return f"whsub_{secrets.token_hex(12)}"


def new_webhook_secret() -> str:
    """Standard Webhooks: ``whsec_`` and the base64 of 24 to 64 random bytes."""
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class EventCounter(models.Model):
    """Gap-free numbers: ``app:<id>`` for an app's feed positions, ``subscription:<id>`` for a
    subscription's sequence. Kept apart from the rows they number, so that saving an app or a
    subscription can never write back a stale count."""

    key = models.CharField(primary_key=True, max_length=80)
    value = models.BigIntegerField(default=0)

    def __str__(self):
        return f"{self.key}={self.value}"


class EventRecipient(models.Model):
    """An event an app may see: a row of that app's event feed, at ``position``."""

    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="recipients")
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    position = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "position"], name="event_recipient_app_position"),
            models.UniqueConstraint(fields=["event", "app"], name="event_recipient_once_per_app"),
        ]

    def __str__(self):
        return f"{self.event_id} -> app {self.app_id} #{self.position}"


class WebhookSubscription(models.Model):
    """Where an app wants events sent: a URL, the event types, a signing secret.

    During a rotation the previous secret stays valid until ``previous_secret_expires_at``: each
    message is signed with both, so a receiver can switch its secret at its own pace.
    """

    id = models.CharField(primary_key=True, max_length=40, default=new_subscription_id, editable=False)
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="webhook_subscriptions")
    url = models.URLField(max_length=2000)
    event_types = models.JSONField(default=list)
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=100, default=new_webhook_secret)
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    is_enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.id} {self.url}"

    def wants(self, event_type: str) -> bool:
        return event_type in self.event_types


class WebhookDelivery(models.Model):
    """One event to one subscription, tried until it succeeds or its retry schedule is used up."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # waiting for its next attempt
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"  # the retry schedule is used up, or the receiver said 410 Gone
        CANCELLED = "cancelled", "Cancelled"  # the subscription was disabled or deleted first

    class Reason(models.TextChoices):
        EVENT = "event", "Event"
        REDELIVERY = "redelivery", "Redelivery"
        REPLAY = "replay", "Replay"
        TEST = "test", "Test"

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="deliveries")
    sequence = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=20, choices=Reason.choices, default=Reason.EVENT)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A worker holds the delivery until then; one that dies mid-attempt lets it go when it passes.
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
            models.Index(fields=["subscription", "-created_at"], name="webhook_delivery_log"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event"],
                condition=models.Q(reason="event"),
                name="webhook_delivery_once_per_event",
            )
        ]

    def __str__(self):
        return f"{self.event_id} -> {self.subscription_id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One HTTP attempt of a delivery, as the delivery log shows it."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=300, blank=True)
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="delivery_attempt_number")]

    def __str__(self):
        return f"{self.delivery_id} #{self.number} {self.status_code or self.error}"
