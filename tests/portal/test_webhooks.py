"""/apps/<id>/webhooks/: an app's subscriptions in the portal, the secret shown once, and each subscription's
delivery log with test events, redelivery and replay; members only, and only developers and above manage."""

import socket
from datetime import timedelta

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from partners import event_services
from partners.event_models import EventRecipient, WebhookDelivery, WebhookSubscription
from partners.models import Membership, OutboxEvent
from partners.services import event_publish
from tests.factories import (
    AppFactory,
    DeliveryAttemptFactory,
    WebhookDeliveryFactory,
    WebhookSubscriptionFactory,
    member,
)
from tests.portal.conftest import login_as

pytestmark = pytest.mark.django_db

PUBLIC_ADDRESS = "93.184.216.34"
NEW = {
    "url": "https://hooks.example.com/in",
    "event_types": ["consent.revoked", "appointment.booked"],
    "description": "",
}


@pytest.fixture(autouse=True)
def _address_rules(settings, monkeypatch):
    """Private addresses refused as in production; *.example.com is a public host (tests have no DNS)."""
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if str(host).endswith(".example.com"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_ADDRESS, port or 443))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


@pytest.fixture
def app(owner):
    return AppFactory(organization=owner.organization, name="Care Companion")


def url(name, app, *args):
    return reverse(f"portal:{name}", args=[app.pk, *args])


def publish(app) -> OutboxEvent:
    with transaction.atomic():
        event = event_publish(
            type="consent.granted",
            payload={"consent_id": 1, "patient": "Patient/p1", "status": "active"},
            app=app,
            organization=app.organization,
        )
    event_services.event_fan_out(event_id=event.pk)
    return event


def test_the_app_page_links_to_its_webhooks(owner_client, app):
    page = owner_client.get(app.get_absolute_url())
    assert url("webhooks", app) in page.text


def test_the_list_shows_each_subscription_s_status_and_why_it_is_disabled(owner_client, app):
    WebhookSubscriptionFactory(app=app, url="https://one.example.com/in")
    WebhookSubscriptionFactory(
        app=app,
        url="https://two.example.com/in",
        is_enabled=False,
        disabled_reason="Disabled after 10 failed attempts.",
    )
    WebhookSubscriptionFactory(url="https://stranger.example.com/in")  # another organization's
    page = owner_client.get(url("webhooks", app))
    assert page.status_code == 200
    for text in (
        "https://one.example.com/in",
        "Enabled",
        "https://two.example.com/in",
        "Disabled after 10 failed attempts.",
        "uses 2 of the 2 subscriptions",
        "/docs/webhooks/",
    ):
        assert text in page.text, text
    assert "stranger" not in page.text
    assert "Add a subscription" not in page.text  # the Sandbox tier's two are in use


def test_the_form_offers_each_event_type_with_its_summary(owner_client, app):
    page = owner_client.get(url("webhook-create", app))
    assert page.status_code == 200
    assert "appointment.booked" in page.text and "A visit was booked for a patient." in page.text
    assert 'value="webhook.test"' not in page.text


def test_creating_shows_the_secret_exactly_once(owner_client, owner, app):
    response = owner_client.post(url("webhook-create", app), NEW)
    subscription = WebhookSubscription.objects.get()
    assert response.status_code == 302
    assert response.url == url("webhook-detail", app, subscription.pk)
    assert (subscription.app, subscription.created_by) == (app, owner.user)
    assert subscription.event_types == ["appointment.booked", "consent.revoked"]

    first = owner_client.get(response.url)
    assert first.status_code == 200
    assert "Copy it now: it will not be shown again" in first.text
    assert subscription.secret in first.text
    assert "no-store" in first["Cache-Control"]
    second = owner_client.get(response.url)
    assert subscription.secret not in second.text
    assert "Copy it now" not in second.text


def test_a_refused_url_is_shown_on_the_form(owner_client, app):
    for refused in ("https://127.0.0.1/hook", "https://10.0.0.1/hook", "https://169.254.169.254/latest/"):
        page = owner_client.post(url("webhook-create", app), {**NEW, "url": refused})
        assert page.status_code == 200
        assert "This URL is refused" in page.text, refused
    assert not WebhookSubscription.objects.exists()


def test_the_tier_cap_is_explained_on_the_form(owner_client, app):
    WebhookSubscriptionFactory(app=app)
    WebhookSubscriptionFactory(app=AppFactory(organization=app.organization))
    page = owner_client.post(url("webhook-create", app), NEW)
    assert page.status_code == 409
    assert "The Sandbox tier allows 2 webhook subscriptions" in page.text
    assert WebhookSubscription.objects.count() == 2


def test_a_viewer_sees_the_log_but_cannot_manage(client, app):
    viewer = login_as(client, Membership.Role.VIEWER, organization=app.organization)
    subscription = WebhookSubscriptionFactory(app=app)
    assert client.get(url("webhooks", app)).status_code == 200
    detail = client.get(url("webhook-detail", app, subscription.pk))
    assert detail.status_code == 200 and "Send test event" not in detail.text and "Rotate secret" not in detail.text
    assert client.get(url("webhook-create", app)).status_code == 403
    assert client.post(url("webhook-create", app), NEW).status_code == 403
    for action in ("webhook-disable", "webhook-delete", "webhook-rotate-secret", "webhook-test"):
        assert client.post(url(action, app, subscription.pk)).status_code == 403, action
    subscription.refresh_from_db()
    assert subscription.is_enabled and viewer.role == "viewer"
    assert not WebhookDelivery.objects.exists()


def test_a_developer_may_manage(client, app):
    login_as(client, Membership.Role.DEVELOPER, organization=app.organization)
    assert client.post(url("webhook-create", app), NEW).status_code == 302


def test_someone_outside_the_organization_gets_404(client, app):
    subscription = WebhookSubscriptionFactory(app=app)
    client.force_login(member().user)
    assert client.get(url("webhooks", app)).status_code == 404
    assert client.get(url("webhook-detail", app, subscription.pk)).status_code == 404
    assert client.post(url("webhook-disable", app, subscription.pk)).status_code == 404
    subscription.refresh_from_db()
    assert subscription.is_enabled


def test_a_subscription_is_found_under_its_own_app_only(owner_client, app):
    sibling = AppFactory(organization=app.organization)
    subscription = WebhookSubscriptionFactory(app=app)
    assert owner_client.get(url("webhook-detail", sibling, subscription.pk)).status_code == 404


def test_editing_rechecks_the_url(owner_client, app):
    subscription = WebhookSubscriptionFactory(app=app, event_types=["consent.granted"])
    form = owner_client.get(url("webhook-edit", app, subscription.pk))
    assert form.status_code == 200 and subscription.url in form.text
    refused = owner_client.post(url("webhook-edit", app, subscription.pk), {**NEW, "url": "https://10.0.0.1/"})
    assert refused.status_code == 200 and "This URL is refused" in refused.text
    saved = owner_client.post(url("webhook-edit", app, subscription.pk), {**NEW, "description": "Scheduler"})
    assert saved.status_code == 302
    subscription.refresh_from_db()
    assert (subscription.url, subscription.description) == (NEW["url"], "Scheduler")


def test_rotating_shows_the_new_secret_once_and_when_the_old_one_stops(owner_client, app):
    subscription = WebhookSubscriptionFactory(app=app)
    old = subscription.secret
    response = owner_client.post(url("webhook-rotate-secret", app, subscription.pk), {"overlap_hours": "72"})
    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.secret != old and subscription.previous_secret == old
    assert timedelta(hours=71) < subscription.previous_secret_expires_at - timezone.now() <= timedelta(hours=72)
    page = owner_client.get(response.url)
    assert subscription.secret in page.text and "Your new signing secret" in page.text
    assert "every message is signed with the old secret too" in page.text
    assert "no-store" in page["Cache-Control"]
    assert subscription.secret not in owner_client.get(response.url).text


def test_disabling_cancels_pending_deliveries_then_enabling_and_deleting(owner_client, app):
    subscription = WebhookSubscriptionFactory(app=app, event_types=["consent.granted"])
    publish(app)
    detail = url("webhook-detail", app, subscription.pk)
    response = owner_client.post(
        url("webhook-disable", app, subscription.pk), {"reason": "Moving servers"}, follow=True
    )
    assert "pending deliveries are cancelled" in response.text
    assert "Moving servers" in response.text
    assert WebhookDelivery.objects.get().status == "cancelled"
    subscription.refresh_from_db()
    assert not subscription.is_enabled and subscription.disabled_reason == "Moving servers"

    owner_client.post(url("webhook-enable", app, subscription.pk))
    subscription.refresh_from_db()
    assert subscription.is_enabled and subscription.disabled_reason == ""

    response = owner_client.post(url("webhook-delete", app, subscription.pk))
    assert response.status_code == 302 and response.url == url("webhooks", app)
    assert not WebhookSubscription.objects.exists()
    assert owner_client.get(detail).status_code == 404


def test_a_test_event_is_delivered_to_this_subscription_only(owner_client, app):
    subscription = WebhookSubscriptionFactory(app=app)
    response = owner_client.post(url("webhook-test", app, subscription.pk), follow=True)
    assert "A test event is on its way" in response.text
    delivery = WebhookDelivery.objects.get()
    assert (delivery.subscription, delivery.reason, delivery.event.type, delivery.sequence) == (
        subscription,
        "test",
        "webhook.test",
        None,
    )
    assert delivery.event.payload["message"] == "Test event from the developer portal"
    assert not EventRecipient.objects.exists()
    assert "webhook.test" in response.text  # in the delivery log


def test_a_disabled_subscription_sends_no_test_event(owner_client, app):
    subscription = WebhookSubscriptionFactory(app=app, is_enabled=False)
    response = owner_client.post(url("webhook-test", app, subscription.pk), follow=True)
    assert "is disabled" in response.text
    assert not WebhookDelivery.objects.exists()


def test_the_delivery_log_shows_every_attempt_and_redelivers(owner_client, app):
    subscription = WebhookSubscriptionFactory(app=app, event_types=["consent.granted"])
    event = publish(app)
    delivery = WebhookDelivery.objects.get(event=event)
    DeliveryAttemptFactory(
        delivery=delivery,
        number=1,
        status_code=503,
        duration_ms=4321,
        response_excerpt="Upstream busy",
        succeeded=False,
    )
    DeliveryAttemptFactory(
        delivery=delivery, number=2, status_code=None, duration_ms=10000, response_excerpt="", error="Timed out"
    )
    page = owner_client.get(url("webhook-detail", app, subscription.pk))
    for text in ("consent.granted", "503", "4321 ms", "Upstream busy", "Timed out", "10000 ms", f"evt_{event.pk.hex}"):
        assert text in page.text, text
    redeliver = url("webhook-redeliver", app, subscription.pk, delivery.pk)
    assert redeliver in page.text

    assert owner_client.post(redeliver).status_code == 302
    again = WebhookDelivery.objects.get(reason="redelivery")
    assert (again.event_id, again.sequence) == (event.pk, delivery.sequence)
    other = WebhookDeliveryFactory()
    assert owner_client.post(url("webhook-redeliver", app, subscription.pk, other.pk)).status_code == 404


def test_the_replay_form_resends_since_a_moment(owner_client, app):
    subscription = WebhookSubscriptionFactory(app=app, event_types=["consent.granted"])
    publish(app)
    publish(app)
    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = owner_client.post(url("webhook-replay", app, subscription.pk), {"since": since}, follow=True)
    assert "2 events queued to be sent again" in response.text
    assert [d.sequence for d in WebhookDelivery.objects.filter(reason="replay").order_by("pk")] == [1, 2]

    too_old = (timezone.now() - timedelta(days=31)).strftime("%Y-%m-%dT%H:%M")
    response = owner_client.post(url("webhook-replay", app, subscription.pk), {"since": too_old}, follow=True)
    assert "Events are kept for 30 days" in response.text
    assert WebhookDelivery.objects.filter(reason="replay").count() == 2
