"""Fan-out from the outbox: each event once, numbered without gaps per app (the feed) and per
subscription (the webhook sequence), and nothing lost when its task never ran."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from partners import event_services
from partners.event_models import EventRecipient, WebhookDelivery, WebhookSubscription
from partners.models import OutboxEvent
from partners.services import event_publish
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db


def publish_tier_change(organization) -> OutboxEvent:
    with transaction.atomic():
        return event_publish(
            type="tier.changed",
            payload={
                "organization": organization.slug,
                "from_tier": "sandbox",
                "to_tier": "verified",
                "changed_at": timezone.now().isoformat(),
            },
            organization=organization,
        )


def subscribe(app, *types) -> WebhookSubscription:
    return WebhookSubscription.objects.create(app=app, url="https://hooks.example.com/in", event_types=list(types))


def test_an_event_is_numbered_in_each_recipient_app_s_feed_and_each_subscription_s_stream():
    app = AppFactory()
    sibling = AppFactory(organization=app.organization)
    stranger = AppFactory()
    wanted = subscribe(app, "tier.changed")
    subscribe(app, "consent.revoked")  # another type: not this subscription's business
    first, second = publish_tier_change(app.organization), publish_tier_change(app.organization)
    for event in (first, second):
        event_services.event_fan_out(event_id=event.pk)

    positions = {(r.app_id, r.event_id): r.position for r in EventRecipient.objects.filter(event__in=[first, second])}
    assert positions == {
        (app.pk, first.pk): 1,
        (app.pk, second.pk): 2,
        (sibling.pk, first.pk): 1,
        (sibling.pk, second.pk): 2,
    }
    assert not EventRecipient.objects.filter(app=stranger).exists()
    deliveries = WebhookDelivery.objects.order_by("sequence")
    assert [(d.subscription_id, d.event_id, d.sequence) for d in deliveries] == [
        (wanted.pk, first.pk, 1),
        (wanted.pk, second.pk, 2),
    ]


def test_fan_out_runs_once_however_often_it_is_asked():
    app = AppFactory()
    subscribe(app, "tier.changed")
    event = publish_tier_change(app.organization)
    assert len(event_services.event_fan_out(event_id=event.pk)) == 1
    assert event_services.event_fan_out(event_id=event.pk) == []
    assert EventRecipient.objects.filter(event=event).count() == 1
    assert WebhookDelivery.objects.filter(event=event).count() == 1


def test_a_disabled_subscription_gets_nothing():
    app = AppFactory()
    subscription = subscribe(app, "tier.changed")
    subscription.is_enabled = False
    subscription.save()
    event = publish_tier_change(app.organization)
    event_services.event_fan_out(event_id=event.pk)
    assert not WebhookDelivery.objects.exists()
    assert EventRecipient.objects.filter(event=event, app=app).exists()  # the feed still has it


def test_an_event_whose_task_was_lost_is_fanned_out_by_the_sweep():
    app = AppFactory()
    event = publish_tier_change(app.organization)
    assert event_services.event_dispatch_pending() == 0  # too fresh: its own task may still run
    OutboxEvent.objects.filter(pk=event.pk).update(occurred_at=timezone.now() - timedelta(minutes=1))
    assert event_services.event_dispatch_pending() == 1
    event.refresh_from_db()
    assert event.dispatched_at is not None
    assert event_services.event_dispatch_pending() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_publishing_outside_the_change_s_transaction_is_refused():
    app = AppFactory()
    with pytest.raises(RuntimeError):
        event_publish(type="tier.changed", payload={}, organization=app.organization)
    assert not OutboxEvent.objects.exists()


def test_publishing_an_uncatalogued_type_is_refused():
    app = AppFactory()
    with transaction.atomic(), pytest.raises(KeyError):
        event_publish(type="tier.renamed", payload={}, organization=app.organization)


def test_events_older_than_thirty_days_are_purged_with_their_fan_out():
    app = AppFactory()
    subscribe(app, "tier.changed")
    old, recent = publish_tier_change(app.organization), publish_tier_change(app.organization)
    for event in (old, recent):
        event_services.event_fan_out(event_id=event.pk)
    OutboxEvent.objects.filter(pk=old.pk).update(occurred_at=timezone.now() - timedelta(days=31))
    assert event_services.events_purge() > 0
    assert list(OutboxEvent.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not WebhookDelivery.objects.filter(event_id=old.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_fan_outs_to_one_app_number_without_gaps_or_repeats():
    app = AppFactory()
    subscribe(app, "tier.changed")
    events = [publish_tier_change(app.organization) for _ in range(24)]
    start = threading.Barrier(6)
    errors = []

    def fan_out(batch):
        try:
            start.wait()
            for event in batch:
                event_services.event_fan_out(event_id=event.pk)
        except Exception as exc:  # surfaced below: a deadlock would land here
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=fan_out, args=(events[i::6],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    positions = sorted(EventRecipient.objects.filter(app=app).values_list("position", flat=True))
    sequences = sorted(WebhookDelivery.objects.values_list("sequence", flat=True))
    assert positions == list(range(1, 25))
    assert sequences == list(range(1, 25))


def test_a_delivery_still_waiting_when_the_patient_revokes_consent_is_never_sent():
    from consent.models import ConsentGrant
    from consent.services import consent_revoke
    from partners import webhooks
    from tests.api.fhir import helpers as fhir

    app = AppFactory()
    fhir.patient("p1")
    grant = fhir.consent(app, "p1", scopes=("appointments.read",))
    subscribe(app, "appointment.booked")
    with transaction.atomic():
        event = event_publish(
            type="appointment.booked",
            payload={"visit_id": "v1", "status": "booked", "patient": "Patient/p1", "slot": "Slot/s1"},
            app=app,
            organization=app.organization,
            patient_id="p1",
        )
    (delivery_id,) = event_services.event_fan_out(event_id=event.pk)
    consent_revoke(grant=ConsentGrant.objects.get(pk=grant.pk), actor="patient", channel="portal")

    assert webhooks.delivery_attempt(delivery_id=delivery_id) == "cancelled"
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.status == "cancelled" and "consent" in delivery.last_error
    assert not delivery.attempt_log.exists()  # nothing was sent
