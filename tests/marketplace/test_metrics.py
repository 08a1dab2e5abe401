"""/metrics: Prometheus text that parses, django-prometheus's families and the platform's own, each
platform counter moved by the thing it counts (and a rolled-back consent grant by nothing)."""

from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.db import transaction
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from consent import services as consent_services
from consent.models import ConsentGrant
from partners import token_limits, webhooks
from tests.api.conftest import bearer, make_token
from tests.api.fhir import helpers as fhir
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db

PLATFORM_FAMILIES = {
    "marketplace_api_requests": "counter",
    "marketplace_api_request_seconds": "histogram",
    "marketplace_api_refusals": "counter",
    "marketplace_rate_limited": "counter",
    "marketplace_webhook_deliveries": "counter",
    "marketplace_consent_changes": "counter",
}


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def test_metrics_parse_as_prometheus_text_with_every_platform_family(client):
    client.get("/api/v1/token-info")  # one API response, so the labelled families have samples
    families = scrape(client)
    for name, kind in PLATFORM_FAMILIES.items():
        assert families[name].type == kind, name
    # django-prometheus's own are still there.
    assert "django_http_requests_total_by_view_transport_method" in families
    assert "django_http_responses_total_by_status" in families
    # The known outcomes and changes are there from the start, at zero or more.
    outcomes = {s.labels["outcome"] for s in families["marketplace_webhook_deliveries"].samples}
    assert outcomes >= {"succeeded", "retrying", "failed", "cancelled", "skipped", "lost"}
    changes = {s.labels["change"] for s in families["marketplace_consent_changes"].samples}
    assert changes >= {"granted", "revoked", "expired"}


def test_an_api_call_counts_by_group_and_status_class_and_is_timed(client):
    app = AppFactory()
    before = value("marketplace_api_requests_total", group="fhir_read", status_class="2xx")
    timed = value("marketplace_api_request_seconds_count", group="fhir_read")
    response = client.get("/api/v1/token-info", **bearer(make_token(app, "openid")))
    assert response.status_code == 200
    assert value("marketplace_api_requests_total", group="fhir_read", status_class="2xx") == before + 1
    assert value("marketplace_api_request_seconds_count", group="fhir_read") == timed + 1
    families = scrape(client)
    sample = next(
        s
        for s in families["marketplace_api_requests"].samples
        if s.labels == {"group": "fhir_read", "status_class": "2xx"} and s.name.endswith("_total")
    )
    assert sample.value >= 1


def test_a_call_without_a_token_is_a_token_layer_refusal(client):
    before = value("marketplace_api_refusals_total", layer="token", code="token_required")
    requests_4xx = value("marketplace_api_requests_total", group="fhir_read", status_class="4xx")
    assert client.get("/api/v1/token-info").status_code == 401
    assert value("marketplace_api_refusals_total", layer="token", code="token_required") == before + 1
    assert value("marketplace_api_requests_total", group="fhir_read", status_class="4xx") == requests_4xx + 1


@pytest.mark.urls("tests.api.urls")
def test_a_missing_scope_is_a_scope_layer_refusal(client):
    app = AppFactory()
    before = value("marketplace_api_refusals_total", layer="scope", code="insufficient_scope")
    response = client.get("/api/test/events", **bearer(make_token(app, "openid appointments.read")))
    assert response.status_code == 403
    assert value("marketplace_api_refusals_total", layer="scope", code="insufficient_scope") == before + 1


@pytest.mark.urls("tests.api.urls")
def test_a_server_error_counts_as_5xx(client):
    client.raise_request_exception = False
    app = AppFactory()
    before = value("marketplace_api_requests_total", group="fhir_read", status_class="5xx")
    response = client.get("/api/test/broken", **bearer(make_token(app, "events.read")))
    assert response.status_code == 500
    assert value("marketplace_api_requests_total", group="fhir_read", status_class="5xx") == before + 1


def test_a_429_counts_its_policy(client, settings):
    settings.RATE_LIMITS = True
    app = AppFactory()
    fhir.patient("p1")
    fhir.consent(app, "p1")
    raw = fhir.patient_token(app, "p1")
    # A daily quota of one: no window boundary can pass between the two requests.
    app.organization.rate_quota_overrides = {"fhir_read": {"per_day": 1}}
    app.organization.save()
    before = value("marketplace_rate_limited_total", policy="org-fhir_read-day")
    refusals = value("marketplace_api_refusals_total", layer="policy", code="quota_exceeded")
    assert fhir.get(client, "/fhir/r4/Patient/p1", raw).status_code == 200
    assert fhir.get(client, "/fhir/r4/Patient/p1", raw).status_code == 429
    assert value("marketplace_rate_limited_total", policy="org-fhir_read-day") == before + 1
    assert value("marketplace_api_refusals_total", layer="policy", code="quota_exceeded") == refusals + 1


def test_a_429_of_the_token_endpoint_counts_its_policy(client, settings, monkeypatch):
    settings.RATE_LIMITS = True
    settings.TOKEN_ENDPOINT_IP_PER_MINUTE = 1
    monkeypatch.setattr(token_limits, "time", SimpleNamespace(time=lambda: 1_800_000_000.25))
    before = value("marketplace_rate_limited_total", policy="ip-token-minute")
    data = urlencode({"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"})
    statuses = [
        client.post(
            "/oauth/token/", data, content_type="application/x-www-form-urlencoded", REMOTE_ADDR="198.51.100.9"
        ).status_code
        for _ in range(2)
    ]
    assert statuses[1] == 429
    assert value("marketplace_rate_limited_total", policy="ip-token-minute") == before + 1


# --- Consent -------------------------------------------------------------------------------------


def grant(app, patient_id="p-metrics"):
    return consent_services.consent_grant(
        patient_id=patient_id,
        app=app,
        scopes=["patient/Observation.rs"],
        channel=ConsentGrant.Channel.CONSENT_SCREEN,
    )


def test_a_consent_grant_counts_once_committed(django_capture_on_commit_callbacks):
    app = AppFactory()
    before = value("marketplace_consent_changes_total", change="granted")
    with django_capture_on_commit_callbacks(execute=True):
        given = grant(app)
    assert value("marketplace_consent_changes_total", change="granted") == before + 1
    # Asked again for the same: the grant is reused, nothing changed.
    with django_capture_on_commit_callbacks(execute=True):
        grant(app)
    assert value("marketplace_consent_changes_total", change="granted") == before + 1

    revoked = value("marketplace_consent_changes_total", change="revoked")
    with django_capture_on_commit_callbacks(execute=True):
        assert consent_services.consent_revoke(grant=given, actor="system", channel=given.channel)
        assert not consent_services.consent_revoke(grant=given, actor="system", channel=given.channel)
    assert value("marketplace_consent_changes_total", change="revoked") == revoked + 1


def test_a_rolled_back_consent_grant_is_not_counted(django_capture_on_commit_callbacks):
    app = AppFactory()
    before = value("marketplace_consent_changes_total", change="granted")

    class Abort(Exception):
        pass

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(Abort), transaction.atomic():
        grant(app)
        raise Abort
    assert value("marketplace_consent_changes_total", change="granted") == before
    assert callbacks == []
    assert not ConsentGrant.objects.filter(app=app).exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_real_commits_count_and_a_real_rollback_does_not():
    class Abort(Exception):
        pass

    before = value("marketplace_consent_changes_total", change="granted")
    grant(AppFactory())  # its own transaction, committed
    assert value("marketplace_consent_changes_total", change="granted") == before + 1
    app = AppFactory()
    with pytest.raises(Abort), transaction.atomic():
        grant(app)
        raise Abort
    assert value("marketplace_consent_changes_total", change="granted") == before + 1
    assert not ConsentGrant.objects.filter(app=app).exists()


def test_an_expired_consent_counts(django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    app = AppFactory()
    with django_capture_on_commit_callbacks(execute=True):
        given = grant(app)
    ConsentGrant.objects.filter(pk=given.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    before = value("marketplace_consent_changes_total", change="expired")
    with django_capture_on_commit_callbacks(execute=True):
        assert consent_services.consent_expire_due() == 1
    assert value("marketplace_consent_changes_total", change="expired") == before + 1


# --- Webhooks ------------------------------------------------------------------------------------


@pytest.fixture
def receiver(settings):
    from tests.partners.webhook_receiver import Receiver

    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    settings.WEBHOOK_CONNECT_TIMEOUT = 1
    settings.WEBHOOK_TOTAL_TIMEOUT = 2
    with Receiver() as running:
        yield running


def test_webhook_delivery_outcomes_are_counted(receiver):
    from tests.partners.test_webhook_delivery import deliver_event, subscribe
    from tests.partners.webhook_receiver import Reply

    subscription = subscribe(receiver.url)
    succeeded = value("marketplace_webhook_deliveries_total", outcome="succeeded")
    retrying = value("marketplace_webhook_deliveries_total", outcome="retrying")
    skipped = value("marketplace_webhook_deliveries_total", outcome="skipped")

    receiver.script(Reply(status=500))
    failing = deliver_event(subscription)
    assert webhooks.delivery_attempt(delivery_id=failing.pk) == "retrying"
    assert value("marketplace_webhook_deliveries_total", outcome="retrying") == retrying + 1

    delivered = deliver_event(subscription)
    assert webhooks.delivery_attempt(delivery_id=delivered.pk) == "succeeded"
    assert value("marketplace_webhook_deliveries_total", outcome="succeeded") == succeeded + 1
    assert webhooks.delivery_attempt(delivery_id=delivered.pk) == "skipped"
    assert value("marketplace_webhook_deliveries_total", outcome="skipped") == skipped + 1


# --- Labels stay few -----------------------------------------------------------------------------


def test_no_label_carries_an_id(client):
    app = AppFactory()
    client.get("/api/v1/token-info", **bearer(make_token(app, "openid")))
    families = scrape(client)
    for name in PLATFORM_FAMILIES:
        for sample in families[name].samples:
            for label in sample.labels.values():
                assert str(app.pk) != label and app.client_id not in label
