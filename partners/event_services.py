"""From the outbox to the apps: fan-out, numbering, and the message every receiver gets.

``event_publish`` (``partners.services``) writes an ``OutboxEvent`` in the transaction of the change
and, once that commits, asks Celery to fan it out. ``event_fan_out`` does so exactly once, in one
transaction: it works out the recipients (``partners.events`` audiences), numbers the event in each
recipient app's feed and in each matching subscription's stream, creates the deliveries, and marks
the event dispatched. The deliveries are queued after that commits. A broker outage only delays all
this: ``event_dispatch_pending`` (a beat task) fans out whatever was left behind, and
``partners.webhooks.deliveries_due_queue`` re-queues any delivery whose time has come.

Patients' consent lives above this app, so the ``patient`` audience is resolved by a function the
consent app registers (``register_audience``) rather than by an import.
"""

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from partners import events
from partners.event_models import EventCounter, EventRecipient, WebhookDelivery, WebhookSubscription
from partners.models import App, OutboxEvent

logger = logging.getLogger(__name__)

# An event not fanned out this long after it was written is picked up by the sweep (its task was lost).
DISPATCH_GRACE = timedelta(seconds=30)

# audience -> function(event, event_type) -> the ids of the apps that may see it
_audiences: dict[str, Callable] = {}


def register_audience(audience: str, resolve: Callable[[OutboxEvent, events.EventType], Iterable[int]]) -> None:
    _audiences[audience] = resolve


def _the_app(event, event_type):
    return [event.app_id] if event.app_id else []


def _the_organization(event, event_type):
    if not event.organization_id:
        return []
    return list(App.objects.filter(organization_id=event.organization_id).values_list("pk", flat=True))


def _every_app(event, event_type):
    return list(App.objects.values_list("pk", flat=True))


register_audience(events.APP, _the_app)
register_audience(events.ORGANIZATION, _the_organization)
register_audience(events.EVERYONE, _every_app)
register_audience(events.SUBSCRIPTION, lambda event, event_type: [])


def event_id(event: OutboxEvent) -> str:
    """The id receivers see, in webhooks (``webhook-id``) and the feed alike."""
    return f"evt_{event.pk.hex}"


def envelope(event: OutboxEvent, *, sequence: int | None = None) -> dict:
    """The message: the same id, type, version and data in a webhook body and a feed item."""
    message = {
        "id": event_id(event),
        "type": event.type,
        "version": event.version,
        "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "data": event.payload,
    }
    if sequence is not None:
        message["sequence"] = sequence
    return message


def next_numbers(keys: list[str]) -> dict[str, int]:
    """Take the next number of each counter, in the caller's transaction. The rows are locked in key
    order, so two fan-outs sharing apps wait for each other instead of deadlocking, and a number
    is never given twice or skipped (a rolled-back transaction gives its numbers back)."""
    if not keys:
        return {}
    keys = sorted(set(keys))
    table = connection.ops.quote_name(EventCounter._meta.db_table)
    rows = ", ".join(["(%s, 1)"] * len(keys))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (key, value) VALUES {rows} "  # noqa: S608 - placeholders only
            f"ON CONFLICT (key) DO UPDATE SET value = {table}.value + 1 RETURNING key, value",
            keys,
        )
        return dict(cursor.fetchall())


def _recipient_app_ids(event: OutboxEvent, event_type: events.EventType) -> list[int]:
    resolve = _audiences.get(event_type.audience)
    if resolve is None:
        raise RuntimeError(f"No audience resolver is registered for {event_type.audience!r} events.")
    return sorted(set(resolve(event, event_type)))


def may_still_see(event: OutboxEvent, app_id: int) -> bool:
    """Whether ``app_id`` may still receive ``event`` now: always, except for an event about a patient,
    which needs the app's consent to still cover it (checked again before every delivery attempt)."""
    event_type = events.get(event.type)
    if event_type.audience != events.PATIENT:
        return True
    return app_id in set(_audiences[events.PATIENT](event, event_type))


def event_fan_out(*, event_id: str) -> list[int]:
    """Fan one event out to its recipients and their subscriptions; the ids of the deliveries made.
    Runs once per event: a second call (a retried task, the sweep) finds it dispatched and does
    nothing."""
    with transaction.atomic():
        event = OutboxEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None or event.dispatched_at is not None:
            return []
        event_type = events.get(event.type)
        now = timezone.now()
        app_ids = _recipient_app_ids(event, event_type) if event_type.feed else []
        positions = next_numbers([f"app:{app_id}" for app_id in app_ids])
        EventRecipient.objects.bulk_create(
            [EventRecipient(event=event, app_id=app_id, position=positions[f"app:{app_id}"]) for app_id in app_ids]
        )
        subscriptions = [
            subscription
            for subscription in WebhookSubscription.objects.filter(app_id__in=app_ids, is_enabled=True).order_by("pk")
            if subscription.wants(event.type)
        ]
        deliveries = deliveries_create(event=event, subscriptions=subscriptions, reason=WebhookDelivery.Reason.EVENT)
        event.dispatched_at = now
        event.save(update_fields=["dispatched_at"])
    return [delivery.pk for delivery in deliveries]


def deliveries_create(*, event: OutboxEvent, subscriptions, reason: str, sequences: dict | None = None):
    """Deliveries of ``event`` to ``subscriptions``, due now and queued once the transaction commits.
    A new event takes each subscription's next sequence number; a redelivery or replay passes the
    original numbers in ``sequences`` (subscription id -> number)."""
    if not subscriptions:
        return []
    if sequences is None:
        numbers = next_numbers([f"subscription:{s.pk}" for s in subscriptions])
        sequences = {s.pk: numbers[f"subscription:{s.pk}"] for s in subscriptions}
    now = timezone.now()
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                subscription=subscription,
                event=event,
                sequence=sequences.get(subscription.pk),
                reason=reason,
                next_attempt_at=now,
            )
            for subscription in subscriptions
        ]
    )
    ids = [delivery.pk for delivery in deliveries]  # PostgreSQL and SQLite >= 3.35 return them
    transaction.on_commit(lambda: queue_deliveries(ids))
    return deliveries


def queue_deliveries(ids: list[int]) -> None:
    """Ask the workers to send these deliveries now, over one broker connection (a connection per
    message made fan-out to many subscriptions slow)."""
    from partners.tasks import deliver_webhook

    if not ids:
        return
    try:
        with deliver_webhook.app.producer_or_acquire() as producer:
            for delivery_id in ids:
                deliver_webhook.apply_async(args=[delivery_id], producer=producer)
    except Exception:  # the broker is down: the due-deliveries sweep sends them later
        logger.warning("webhook_deliveries_not_queued", extra={"deliveries": len(ids)}, exc_info=True)


def queue_fan_out(event: OutboxEvent) -> None:
    """After the publishing transaction commits: ask a worker to fan the event out."""
    from partners.tasks import fan_out_event

    def send():
        try:
            fan_out_event.delay(str(event.pk))
        except Exception:  # the broker is down: event_dispatch_pending picks it up
            logger.warning("event_fan_out_not_queued", extra={"event_id": str(event.pk)}, exc_info=True)

    transaction.on_commit(send)


def event_dispatch_pending(*, older_than: timedelta = DISPATCH_GRACE, limit: int = 500) -> int:
    """Fan out events whose task never ran (a broker outage, a lost message); how many."""
    cutoff = timezone.now() - older_than
    pending = OutboxEvent.objects.filter(dispatched_at__isnull=True, occurred_at__lte=cutoff).order_by("occurred_at")
    count = 0
    for pk in pending.values_list("pk", flat=True)[:limit]:
        event_fan_out(event_id=pk)
        count += 1
    return count


# Events, their feed rows and deliveries are kept this long: the feed's and replay's window.
RETENTION = timedelta(days=30)


def events_purge(*, now=None) -> int:
    """Delete events older than ``RETENTION`` with everything fanned out from them; how many."""
    cutoff = (now or timezone.now()) - RETENTION
    deleted, _ = OutboxEvent.objects.filter(occurred_at__lt=cutoff).delete()
    return deleted
