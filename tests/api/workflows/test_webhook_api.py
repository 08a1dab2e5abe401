"""/api/<version>/webhooks: an app's subscriptions (secret once, URL rules, the tier's cap, rotation with an
overlap, enable and disable), its delivery log, and test events, redelivery and replay; in both versions."""

import socket
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from partners import event_services, webhook_services, webhooks
from partners.event_models import EventCounter, EventRecipient, WebhookDelivery, WebhookSubscription
from partners.models import OutboxEvent
from partners.services import event_publish
from tests.api.conftest import make_token
from tests.api.workflows.helpers import get, key, post, problem
from tests.factories import (
    AppFactory,
    DeliveryAttemptFactory,
    OrganizationFactory,
    UserFactory,
    WebhookDeliveryFactory,
    WebhookSubscriptionFactory,
    tier,
)

pytestmark = pytest.mark.django_db

V1 = "/api/v1/webhooks"
V2 = "/api/v2/webhooks"
SCOPE = "webhooks.manage"
PUBLIC_ADDRESS = "93.184.216.34"
# A fake DNS: tests have no network, and the refusals must not depend on what a real resolver answers.
NAMES = {"rebound.example.org": "10.1.2.3"}


@pytest.fixture(autouse=True)
def _address_rules(settings, monkeypatch):
    """Private addresses refused as in production, whatever the environment's defaults; *.example.com is a
    public host, NAMES are what they say, and IP literals resolve as themselves (no lookup)."""
    settings.ALLOW_PRIVATE_NETWORK_URLS = False
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        address = PUBLIC_ADDRESS if str(host).endswith(".example.com") else NAMES.get(host)
        if address is not None:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 443))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def system_token(app, scope=SCOPE) -> str:
    return make_token(app, scope)


def subscribe(client, raw, path=V1, **fields):
    body = {"url": "https://hooks.example.com/in", "event_types": ["consent.granted", "consent.revoked"], **fields}
    return post(client, path, raw, body)


def patch(client, url, raw, body, **extra):
    return client.patch(url, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}", **extra)


def delete(client, url, raw, **extra):
    return client.delete(url, HTTP_AUTHORIZATION=f"Bearer {raw}", **extra)


def publish(app, *, ago: timedelta | None = None) -> OutboxEvent:
    """A consent.granted event for ``app``, fanned out at once (so its subscriptions get a pending delivery)."""
    with transaction.atomic():
        event = event_publish(
            type="consent.granted",
            payload={"consent_id": 1, "patient": "Patient/p1", "client_id": app.client_id, "status": "active"},
            app=app,
            organization=app.organization,
        )
    if ago is not None:
        OutboxEvent.objects.filter(pk=event.pk).update(occurred_at=timezone.now() - ago)
    event_services.event_fan_out(event_id=event.pk)
    return event


# --- subscriptions --------------------------------------------------------------------------------


def test_creating_returns_the_secret_once_and_never_again(client):
    app = AppFactory()
    raw = system_token(app)
    response = subscribe(
        client, raw, event_types=["consent.revoked", "appointment.booked", "consent.revoked"], description=" Scheduler "
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("whsub_")
    assert response["Location"] == f"http://testserver{V1}/{body['id']}"
    assert response["Cache-Control"] == "no-store"
    assert body["secret"].startswith("whsec_")
    # Catalogue order, once each.
    assert body["event_types"] == ["appointment.booked", "consent.revoked"]
    assert (body["url"], body["description"], body["enabled"]) == ("https://hooks.example.com/in", "Scheduler", True)
    assert body["disabled_reason"] is None and body["previous_secret_expires_at"] is None

    row = WebhookSubscription.objects.get()
    assert (row.app, row.secret, row.created_by) == (app, body["secret"], None)

    read = get(client, response["Location"], raw)
    assert read.status_code == 200
    assert "secret" not in read.json()
    assert read.json() == {k: v for k, v in body.items() if k != "secret"}
    listed = get(client, V1, raw).json()
    assert [s["id"] for s in listed["data"]] == [body["id"]]
    assert body["secret"] not in str(listed) and "secret" not in listed["data"][0]


def test_v2_serves_the_same_endpoints(client):
    app = AppFactory()
    raw = system_token(app)
    created = subscribe(client, raw, path=V2)
    assert created.status_code == 201, created.content
    assert created["Location"].endswith(f"/api/v2/webhooks/{created.json()['id']}")
    assert [s["id"] for s in get(client, V1, raw).json()["data"]] == [created.json()["id"]]
    test = post(client, f"{V2}/{created.json()['id']}/test", raw, {})
    assert test.status_code == 202, test.content


def test_a_user_token_of_the_app_may_manage_too(client):
    app = AppFactory()
    raw = make_token(app, SCOPE, user=UserFactory())
    assert subscribe(client, raw).status_code == 201


def test_writes_need_an_idempotency_key(client):
    app = AppFactory()
    raw = system_token(app)
    body = {"url": "https://hooks.example.com/in", "event_types": ["tier.changed"]}
    problem(post(client, V1, raw, body, idempotency_key=None), 400, "idempotency_key_required")
    assert not WebhookSubscription.objects.exists()
    subscription = WebhookSubscriptionFactory(app=app)
    since = {"since": timezone.now().isoformat()}
    for action, body in (("rotate-secret", {}), ("enable", {}), ("disable", {}), ("test", {}), ("replay", since)):
        response = post(client, f"{V1}/{subscription.pk}/{action}", raw, body, idempotency_key=None)
        problem(response, 400, "idempotency_key_required")


def test_without_the_scope_it_is_refused(client):
    app = AppFactory()
    raw = system_token(app, scope="events.read")
    body = problem(get(client, V1, raw), 403, "insufficient_scope")
    assert body["missing_scopes"] == [SCOPE]
    problem(subscribe(client, raw), 403, "insufficient_scope")
    assert not WebhookSubscription.objects.exists()


def test_a_patient_token_cannot_manage_webhooks(client):
    app = AppFactory()
    raw = make_token(app, f"launch/patient {SCOPE}", user=UserFactory(fhir_patient_id="p1"))
    body = problem(subscribe(client, raw), 403, "forbidden")
    assert "patient" in body["detail"] and "client credentials" in body["fix"]
    problem(get(client, V1, raw), 403, "forbidden")
    # A patient's account is refused even when its token carries no patient scope.
    raw = make_token(app, SCOPE, user=UserFactory(fhir_patient_id="p2"))
    problem(get(client, V1, raw), 403, "forbidden")
    assert not WebhookSubscription.objects.exists()


def test_another_app_s_subscription_is_not_found(client):
    mine, theirs = AppFactory(), AppFactory()
    subscription = WebhookSubscriptionFactory(app=theirs)
    delivery = WebhookDeliveryFactory(subscription=subscription)
    raw = system_token(mine)
    base = f"{V1}/{subscription.pk}"
    problem(get(client, base, raw), 404, "not_found")
    problem(get(client, f"{base}/deliveries", raw), 404, "not_found")
    problem(patch(client, base, raw, {"description": "mine now"}), 404, "not_found")
    problem(delete(client, base, raw), 404, "not_found")
    for action in ("rotate-secret", "enable", "disable", "test", f"deliveries/{delivery.pk}/redeliver"):
        problem(post(client, f"{base}/{action}", raw, {}), 404, "not_found")
    problem(post(client, f"{base}/replay", raw, {"since": timezone.now().isoformat()}), 404, "not_found")
    assert get(client, V1, raw).json()["data"] == []
    subscription.refresh_from_db()
    assert subscription.is_enabled and subscription.description == ""
    assert WebhookDelivery.objects.count() == 1


def test_the_tier_caps_subscriptions_per_organization_counting_disabled_ones(client):
    organization = OrganizationFactory()  # Sandbox: 2
    app, sibling = AppFactory(organization=organization), AppFactory(organization=organization)
    WebhookSubscriptionFactory(app=app)
    WebhookSubscriptionFactory(app=sibling, is_enabled=False, disabled_reason="Paused")
    body = problem(subscribe(client, system_token(app)), 409, "webhook_limit_reached")
    assert "The Sandbox tier allows 2 webhook subscriptions per organization" in body["detail"]
    assert "Verified tier, which allows 5" in body["detail"]
    assert WebhookSubscription.objects.count() == 2

    organization.tier = tier("verified")
    organization.save()
    assert subscribe(client, system_token(app)).status_code == 201


def test_unknown_and_test_event_types_are_refused(client):
    raw = system_token(AppFactory())
    body = problem(
        subscribe(client, raw, event_types=["consent.granted", "appointment.bookd"]), 422, "unknown_event_type"
    )
    assert "appointment.bookd" in body["detail"]
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("event_types", "unknown_event_type")]
    body = problem(subscribe(client, raw, event_types=["webhook.test"]), 422, "unknown_event_type")
    assert "cannot be subscribed to" in body["detail"]
    problem(subscribe(client, raw, event_types=[]), 400, "validation_error")
    assert not WebhookSubscription.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1:8443/hook",
        "https://[::1]/hook",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://rebound.example.org/hook",  # a public-looking name that resolves to a private address
        "https://user:password@hooks.example.com/hook",
    ],
)
def test_private_loopback_and_metadata_addresses_are_refused(client, url):
    body = problem(subscribe(client, system_token(AppFactory()), url=url), 422, "webhook_url_refused")
    assert body["errors"][0]["field"] == "url"
    assert not WebhookSubscription.objects.exists()


def test_a_production_app_needs_https(client):
    organization = OrganizationFactory(tier=tier("production"))
    production = AppFactory(organization=organization, environment="production")
    body = problem(
        subscribe(client, system_token(production), url="http://hooks.example.com/in"), 422, "webhook_url_refused"
    )
    assert "https" in body["detail"]
    assert subscribe(client, system_token(production), url="https://hooks.example.com/in").status_code == 201
    # A sandbox app may use http, to a public address still.
    sandbox = AppFactory(organization=organization)
    assert subscribe(client, system_token(sandbox), url="http://hooks.example.com/in").status_code == 201


def test_updating_changes_what_is_given_and_rechecks_the_url(client):
    app = AppFactory()
    raw = system_token(app)
    subscription = WebhookSubscriptionFactory(app=app, description="Old")
    url = f"{V1}/{subscription.pk}"
    problem(patch(client, url, raw, {"url": "https://10.0.0.1/"}), 422, "webhook_url_refused")
    problem(patch(client, url, raw, {}), 400, "validation_error")
    changed = patch(client, url, raw, {"url": "https://new.example.com/in", "event_types": ["tier.changed"]})
    assert changed.status_code == 200, changed.content
    assert (changed.json()["url"], changed.json()["event_types"], changed.json()["description"]) == (
        "https://new.example.com/in",
        ["tier.changed"],
        "Old",
    )
    assert "secret" not in changed.json()


def test_deleting_removes_it_with_its_pending_deliveries(client):
    app = AppFactory()
    raw = system_token(app)
    subscription = WebhookSubscriptionFactory(app=app, event_types=["consent.granted"])
    publish(app)
    assert WebhookDelivery.objects.filter(subscription=subscription, status="pending").count() == 1
    assert EventCounter.objects.filter(key=f"subscription:{subscription.pk}").exists()
    response = delete(client, f"{V1}/{subscription.pk}", raw)
    assert response.status_code == 204, response.content
    assert not WebhookSubscription.objects.exists() and not WebhookDelivery.objects.exists()
    assert not EventCounter.objects.filter(key=f"subscription:{subscription.pk}").exists()
    problem(get(client, f"{V1}/{subscription.pk}", raw), 404, "not_found")


# --- the secret ------------------------------------------------------------------------------------


def test_rotation_signs_with_both_secrets_until_the_overlap_ends(client):
    app = AppFactory()
    raw = system_token(app)
    created = subscribe(client, raw).json()
    old = created["secret"]
    before = timezone.now()
    rotated = post(client, f"{V1}/{created['id']}/rotate-secret", raw, {"overlap_hours": 2})
    assert rotated.status_code == 200, rotated.content
    assert rotated["Cache-Control"] == "no-store"
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    row = WebhookSubscription.objects.get()
    assert (row.secret, row.previous_secret) == (new, old)
    assert before + timedelta(hours=2) <= row.previous_secret_expires_at <= timezone.now() + timedelta(hours=2)
    read = get(client, f"{V1}/{created['id']}", raw).json()
    assert read["previous_secret_expires_at"] == rotated.json()["previous_secret_expires_at"]
    assert "secret" not in read

    # What the sender does with it: both signatures during the overlap, the new one only after it.
    during = webhooks.signature_header(row, "evt_1", 1, b"{}", now=timezone.now())
    after = webhooks.signature_header(row, "evt_1", 1, b"{}", now=row.previous_secret_expires_at + timedelta(seconds=1))
    assert during.split() == [webhooks.sign(new, "evt_1", 1, b"{}"), webhooks.sign(old, "evt_1", 1, b"{}")]
    assert after.split() == [webhooks.sign(new, "evt_1", 1, b"{}")]
    assert get(client, f"{V1}/{created['id']}", raw).json()["previous_secret_expires_at"] is not None


def test_rotation_without_overlap_drops_the_old_secret_at_once(client):
    app = AppFactory()
    raw = system_token(app)
    subscription = WebhookSubscriptionFactory(app=app)
    rotated = post(client, f"{V1}/{subscription.pk}/rotate-secret", raw, {"overlap_hours": 0})
    assert rotated.status_code == 200 and rotated.json()["previous_secret_expires_at"] is None
    subscription.refresh_from_db()
    assert subscription.previous_secret == "" and subscription.secret == rotated.json()["secret"]
    problem(post(client, f"{V1}/{subscription.pk}/rotate-secret", raw, {"overlap_hours": 169}), 400, "validation_error")
    default = post(client, f"{V1}/{subscription.pk}/rotate-secret", raw, {})
    subscription.refresh_from_db()
    assert abs(subscription.previous_secret_expires_at - timezone.now() - timedelta(hours=24)) < timedelta(minutes=1)
    assert default.json()["secret"] == subscription.secret


# --- enable and disable ---------------------------------------------------------------------------------


def test_disabling_cancels_pending_deliveries_and_enabling_clears_the_reason(client):
    app = AppFactory()
    raw = system_token(app)
    subscription = WebhookSubscriptionFactory(app=app, event_types=["consent.granted"])
    publish(app)
    publish(app)
    done = WebhookDeliveryFactory(subscription=subscription, status="succeeded", sequence=None)
    disabled = post(client, f"{V1}/{subscription.pk}/disable", raw, {"reason": "Maintenance window"})
    assert disabled.status_code == 200, disabled.content
    assert (disabled.json()["enabled"], disabled.json()["disabled_reason"]) == (False, "Maintenance window")
    statuses = dict(WebhookDelivery.objects.values_list("pk", "status"))
    assert statuses.pop(done.pk) == "succeeded"
    assert set(statuses.values()) == {"cancelled"} and len(statuses) == 2
    assert all(d.completed_at for d in WebhookDelivery.objects.filter(status="cancelled"))

    publish(app)  # nothing is sent to a disabled subscription
    assert WebhookDelivery.objects.count() == 3
    problem(post(client, f"{V1}/{subscription.pk}/test", raw, {}), 409, "webhook_disabled")

    enabled = post(client, f"{V1}/{subscription.pk}/enable", raw, {})
    assert enabled.status_code == 200
    assert (enabled.json()["enabled"], enabled.json()["disabled_reason"], enabled.json()["disabled_at"]) == (
        True,
        None,
        None,
    )
    subscription.refresh_from_db()
    assert subscription.disabled_reason == "" and subscription.disabled_at is None


# --- test events, redelivery, replay ------------------------------------------------------------------


def test_a_test_event_goes_to_this_subscription_only_and_never_to_the_feed(client):
    app = AppFactory()
    raw = system_token(app)
    subscription = WebhookSubscriptionFactory(app=app, event_types=["consent.granted"])
    WebhookSubscriptionFactory(app=app, event_types=["consent.granted"])  # a sibling gets nothing
    response = post(client, f"{V1}/{subscription.pk}/test", raw, {})
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["event_type"], body["reason"], body["status"], body["sequence"]) == (
        "webhook.test",
        "test",
        "pending",
        None,
    )
    assert body["attempts"] == []
    delivery = WebhookDelivery.objects.get()
    assert (delivery.subscription, delivery.reason) == (subscription, "test")
    event = OutboxEvent.objects.get(type="webhook.test")
    assert body["event_id"] == f"evt_{event.pk.hex}"
    assert event.payload["subscription_id"] == subscription.pk and event.dispatched_at is not None
    assert event_services.event_dispatch_pending(older_than=timedelta(0)) == 0  # no fan-out picks it up
    assert not EventRecipient.objects.exists()
    # It took no sequence number: the next real event is the subscription's first.
    publish(app)
    assert WebhookDelivery.objects.get(subscription=subscription, reason="event").sequence == 1


def test_redelivery_sends_the_same_event_with_the_same_sequence(client):
    app = AppFactory()
    raw = system_token(app)
    subscription = WebhookSubscriptionFactory(app=app, event_types=["consent.granted"])
    publish(app)
    second = publish(app)
    original = WebhookDelivery.objects.get(event=second)
    original.status = "failed"
    original.save()
    response = post(client, f"{V1}/{subscription.pk}/deliveries/{original.pk}/redeliver", raw, {})
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["reason"], body["sequence"], body["event_id"], body["status"]) == (
        "redelivery",
        2,
        f"evt_{second.pk.hex}",
        "pending",
    )
    assert body["id"] != original.pk
    other = WebhookDeliveryFactory()  # another subscription's delivery, named under this one
    problem(post(client, f"{V1}/{subscription.pk}/deliveries/{other.pk}/redeliver", raw, {}), 404, "not_found")


def test_replay_resends_in_sequence_order_within_30_days(client):
    app = AppFactory()
    raw = system_token(app)
    subscription = WebhookSubscriptionFactory(app=app, event_types=["consent.granted"])
    old = publish(app, ago=timedelta(days=10))
    recent = [
        publish(app, ago=timedelta(days=5)),
        publish(app, ago=timedelta(days=6)),
        publish(app, ago=timedelta(hours=1)),
    ]
    post(client, f"{V1}/{subscription.pk}/test", raw, {})  # test events are never replayed
    since = timezone.now() - timedelta(days=7)
    response = post(client, f"{V1}/{subscription.pk}/replay", raw, {"since": since.isoformat()})
    assert response.status_code == 202, response.content
    assert response.json() == {
        "queued": 3,
        "since": since.isoformat().replace("+00:00", "Z"),
        "complete": True,
        "next_since": None,
    }
    replayed = list(WebhookDelivery.objects.filter(reason="replay").order_by("pk"))
    assert [(d.event_id, d.sequence, d.status) for d in replayed] == [
        (recent[0].pk, 2, "pending"),
        (recent[1].pk, 3, "pending"),
        (recent[2].pk, 4, "pending"),
    ]
    assert old.pk not in {d.event_id for d in replayed}

    body = problem(
        post(
            client, f"{V1}/{subscription.pk}/replay", raw, {"since": (timezone.now() - timedelta(days=31)).isoformat()}
        ),
        422,
        "replay_window_exceeded",
    )
    assert "30 days" in body["detail"] and body["errors"][0]["field"] == "since"
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    problem(post(client, f"{V1}/{subscription.pk}/replay", raw, {"since": future}), 422, "replay_window_exceeded")
    problem(post(client, f"{V1}/{subscription.pk}/replay", raw, {}), 400, "validation_error")
    assert WebhookDelivery.objects.filter(reason="replay").count() == 3


def test_a_replay_retried_with_the_same_key_queues_once(client):
    app = AppFactory()
    raw = system_token(app)
    subscription = WebhookSubscriptionFactory(app=app, event_types=["consent.granted"])
    publish(app)
    publish(app)
    same = key()["HTTP_IDEMPOTENCY_KEY"]
    body = {"since": (timezone.now() - timedelta(days=1)).isoformat()}
    first = post(client, f"{V1}/{subscription.pk}/replay", raw, body, idempotency_key=same)
    again = post(client, f"{V1}/{subscription.pk}/replay", raw, body, idempotency_key=same)
    assert first.status_code == again.status_code == 202
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json() == {**first.json(), "queued": 2}
    assert WebhookDelivery.objects.filter(reason="replay").count() == 2


def test_one_replay_queues_at_most_its_cap_and_says_where_to_go_on():
    app = AppFactory()
    subscription = WebhookSubscriptionFactory(app=app, event_types=["consent.granted"])
    events = [publish(app, ago=timedelta(hours=hours)) for hours in (5, 4, 3)]
    with transaction.atomic():
        result = webhook_services.webhook_replay(
            subscription=subscription, since=timezone.now() - timedelta(days=1), actor=None, limit=2
        )
    assert (result.queued, result.complete) == (2, False)
    events[2].refresh_from_db()
    assert result.next_since == events[2].occurred_at
    assert [d.sequence for d in WebhookDelivery.objects.filter(reason="replay").order_by("pk")] == [1, 2]


# --- the delivery log -----------------------------------------------------------------------------------


def test_the_delivery_log_lists_deliveries_newest_first_with_every_attempt(client):
    app = AppFactory()
    raw = system_token(app)
    subscription = WebhookSubscriptionFactory(app=app, event_types=["consent.granted"])
    first_event = publish(app)
    publish(app)
    first = WebhookDelivery.objects.get(event=first_event)
    WebhookDelivery.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    DeliveryAttemptFactory(
        delivery=first,
        number=1,
        status_code=None,
        duration_ms=10_000,
        response_excerpt="",
        error="Timed out",
        succeeded=False,
    )
    DeliveryAttemptFactory(
        delivery=first, number=2, status_code=500, duration_ms=87, response_excerpt="Internal oops", succeeded=False
    )
    page = get(client, f"{V1}/{subscription.pk}/deliveries", raw, limit=1)
    assert page.status_code == 200, page.content
    newest = page.json()["data"]
    assert [d["sequence"] for d in newest] == [2] and newest[0]["attempts"] == []
    older = get(client, page.json()["next"], raw).json()
    assert older["next_cursor"] is None
    (logged,) = older["data"]
    assert (logged["event_id"], logged["event_type"], logged["reason"], logged["sequence"]) == (
        f"evt_{first_event.pk.hex}",
        "consent.granted",
        "event",
        1,
    )
    assert [
        (a["number"], a["status_code"], a["duration_ms"], a["response_excerpt"], a["error"]) for a in logged["attempts"]
    ] == [
        (1, None, 10_000, "", "Timed out"),
        (2, 500, 87, "Internal oops", ""),
    ]
