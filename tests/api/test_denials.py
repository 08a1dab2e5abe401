"""Every 401, 403 and 429 carries its correlation id, and a refusal of an identified app is recorded
under it with the layer that refused, the rule, the fix and the docs page (api.denials,
marketplace.denial_log, partners.token_denials)."""

import base64
import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.utils import timezone

from api import denials, ratelimit
from consent.models import AppAuthorization
from marketplace import denial_log
from partners.models import App, Organization, Tier
from tests.api.conftest import bearer, make_token
from tests.api.fhir import helpers as fhir
from tests.consent.helpers import holds, provider, provider_app
from tests.factories import AppFactory
from tests.oauth.conftest import CLIENT_SECRET, make_app

pytestmark = pytest.mark.django_db

T = 1_800_000_000.0  # a fixed clock, at the start of a minute and of an hour
TOKEN_URL = "/oauth/token/"


@pytest.fixture(autouse=True)
def _fresh_log():
    denial_log.forget_full()
    yield
    denial_log.forget_full()


@pytest.fixture
def stored(monkeypatch):
    """Every denial handed to the log, in order (and stored as usual)."""
    seen = []
    real = denial_log.store

    def spy(denial):
        seen.append(denial)
        return real(denial)

    monkeypatch.setattr(denial_log, "store", spy)
    return seen


def kept(app, correlation_id) -> denial_log.Denial:
    """The denial the log holds for ``app`` under ``correlation_id``."""
    (found,) = denial_log.fetch([app.pk], correlation_id)
    return found


def problem_id(response) -> str:
    """The correlation id of a problem or OperationOutcome, checked against X-Request-ID."""
    body = response.json()
    if response["Content-Type"] == "application/fhir+json":
        (found,) = [e["valueString"] for e in body["extension"] if e["url"].endswith("/correlation-id")]
    else:
        found = body["correlation_id"]
    assert found and found == response["X-Request-ID"], body
    return found


# --- token -----------------------------------------------------------------------------------------


def test_an_expired_token_is_recorded_for_its_app_at_the_token_layer(client, app, stored):
    fhir.patient("p1")
    raw = make_token(app, "launch/patient patient/*.rs", expires_in=-60)
    response = fhir.get(client, "/fhir/r4/Patient/p1", raw)
    assert response.status_code == 401
    correlation_id = problem_id(response)
    denial = kept(app, correlation_id)
    assert (denial.status, denial.code, denial.layer) == (401, "invalid_token", "token")
    assert (denial.method, denial.path) == ("GET", "/fhir/r4/Patient/{resource_id}")  # the route, not the id
    assert (denial.app_id, denial.organization_id) == (app.pk, app.organization_id)
    assert denial.rule.startswith("The access token expired at ")
    assert denial.docs == "/docs/errors/invalid_token/"
    assert "new access token" in denial.fix
    assert abs(denial.at - timezone.now().timestamp()) < 60


def test_no_token_or_an_unknown_one_is_refused_with_its_id_and_recorded_for_no_one(client, stored):
    missing = client.get("/api/v1/events")
    unknown = client.get("/api/v1/events", **bearer("never-issued-token-value"))
    for response in (missing, unknown):
        assert response.status_code == 401
        problem_id(response)
    assert stored == []


def test_a_revoked_token_is_unknown_so_recorded_for_no_one(client, app, stored):
    from oauth2_provider.models import AccessToken

    raw = make_token(app, "events.read")
    AccessToken.objects.filter(application=app).delete()  # DOT deletes a revoked access token
    response = client.get("/api/v1/events", **bearer(raw))
    assert response.status_code == 401
    problem_id(response)
    assert stored == []


# --- scope -----------------------------------------------------------------------------------------


def test_a_missing_scope_is_recorded_naming_it(client, app):
    response = client.get("/api/v1/events", HTTP_X_REQUEST_ID="partner-trace-0042", **bearer(make_token(app, "openid")))
    assert response.status_code == 403
    assert problem_id(response) == "partner-trace-0042"  # the caller's own id, when well formed
    denial = kept(app, "partner-trace-0042")
    assert (denial.code, denial.layer) == ("insufficient_scope", "scope")
    assert denial.rule == "The token lacks the scope events.read; it carries openid."
    assert (denial.method, denial.path) == ("GET", "/api/v1/events")


def test_a_missing_fhir_scope_is_recorded_from_the_operation_outcome(client, app, patient):
    fhir.observation("o1", "p1")
    raw = make_token(app, "launch/patient patient/Patient.rs", user=patient)
    response = fhir.get(client, "/fhir/r4/Observation/o1", raw)
    assert response.status_code == 403
    denial = kept(app, problem_id(response))
    assert denial.layer == "scope"
    assert "lacks the scope patient/Observation.r" in denial.rule
    assert denial.path == "/fhir/r4/Observation/{resource_id}"


# --- policy: organization, tier, environment, partner type --------------------------------------------------


def test_a_suspended_organization_is_recorded_at_the_organization_layer(client, app):
    organization = app.organization
    organization.status = Organization.Status.SUSPENDED
    organization.suspension_reason = "Unpaid invoices since March."
    organization.suspended_at = timezone.now()
    organization.save()
    response = client.get("/api/v1/events", **bearer(make_token(app, "events.read")))
    assert response.status_code == 403
    denial = kept(app, problem_id(response))
    assert (denial.code, denial.layer) == ("organization_suspended", "organization")
    assert "Unpaid invoices since March." in denial.rule


def _record_consent(client, raw, target):
    body = {
        "patient": "Patient/123",
        "client_id": target.client_id,
        "scopes": ["patient/Observation.rs"],
        "source_document": "DocumentReference/signed-form-7",
    }
    return client.post("/api/v1/consents", body, content_type="application/json", **bearer(raw))


def test_a_tier_without_write_access_is_recorded_at_the_tier_layer(client):
    Tier.objects.filter(slug="sandbox").update(write_access=False)
    clinic = provider()
    holds(clinic)
    backend = provider_app(clinic)
    response = _record_consent(client, make_token(backend, "consent.write"), AppFactory())
    assert response.status_code == 403
    denial = kept(backend, problem_id(response))
    assert (denial.code, denial.layer) == ("tier_policy", "tier")
    assert "allows reads only" in denial.rule and "Verified" in denial.rule
    assert "Verified" in denial.fix  # the problem's own fix, not the catalogue's
    assert (denial.method, denial.path) == ("POST", "/api/v1/consents")


def test_a_sandbox_app_reaching_production_is_recorded_at_the_environment_layer(client):
    clinic = provider()
    holds(clinic)
    backend = provider_app(clinic)
    target = AppFactory(environment=App.Environment.PRODUCTION)
    response = _record_consent(client, make_token(backend, "consent.write"), target)
    assert response.status_code == 403
    denial = kept(backend, problem_id(response))
    assert (denial.code, denial.layer) == ("environment_policy", "environment")
    assert denial.rule == "Sandbox apps reach sandbox data only; this request touched production data."


def test_a_partner_type_refusal_is_recorded_at_its_layer(client, app):
    response = _record_consent(client, make_token(app, "consent.write"), AppFactory())
    assert response.status_code == 403
    denial = kept(app, problem_id(response))
    assert (denial.code, denial.layer) == ("partner_type_policy", "partner_type")
    assert "provider partners only" in denial.rule


# --- data: consent and the provider's authorization ----------------------------------------------------


def test_no_consent_is_recorded_at_the_consent_layer_without_the_patient(client, app):
    fhir.patient("p1")
    response = fhir.get(client, "/fhir/r4/Patient/p1", fhir.user_token(app))
    assert response.status_code == 403
    denial = kept(app, problem_id(response))
    assert (denial.code, denial.layer) == ("consent_required", "consent")
    assert denial.rule == "No active consent from the patient covers demographics (patient demographics) for this app."
    assert "p1" not in denial.to_json()  # patient ids never reach the log
    assert denial.detail.startswith("The patient has not consented to ")


def test_a_provider_s_block_is_recorded_at_the_organization_authorization_layer(client, app):
    clinic = provider("Hillside Hospital")
    fhir.patient("p1")
    holds(clinic, "p1")
    fhir.consent(app, "p1")
    AppAuthorization.objects.create(organization=clinic, app=app, decision="blocked")
    response = fhir.get(client, "/fhir/r4/Patient/p1", fhir.patient_token(app, "p1"))
    assert response.status_code == 403
    denial = kept(app, problem_id(response))
    assert (denial.code, denial.layer) == ("organization_authorization", "organization_authorization")
    assert "Hillside Hospital" in denial.rule and "has blocked" in denial.rule


# --- quota ----------------------------------------------------------------------------------------------


@pytest.fixture
def limits_on(settings, monkeypatch):
    settings.RATE_LIMITS = True
    monkeypatch.setattr(ratelimit.time, "time", lambda: T + 0.25)


def test_a_used_up_quota_is_recorded_with_the_policy_and_its_numbers(client, limits_on):
    app = AppFactory()
    app.organization.rate_quota_overrides = {
        "fhir_read": {"per_minute": 1, "burst": 100, "per_token_per_minute": 100, "per_patient_per_minute": 100}
    }
    app.organization.save()
    fhir.patient("p1")
    fhir.consent(app, "p1")
    raw = fhir.patient_token(app, "p1")
    assert fhir.get(client, "/fhir/r4/Patient/p1", raw).status_code == 200
    refused = fhir.get(client, "/fhir/r4/Patient/p1", raw)
    assert refused.status_code == 429
    assert refused["Retry-After"]
    denial = kept(app, problem_id(refused))
    assert (denial.status, denial.code, denial.layer) == (429, "quota_exceeded", "quota")
    assert denial.rule == "org-fhir_read-minute: 1 request per minute"
    assert denial.docs == "/docs/errors/quota_exceeded/"


# --- the token endpoint -----------------------------------------------------------------------------------


def _basic(client_id, secret=CLIENT_SECRET):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _token_request(client, client_id, secret=CLIENT_SECRET, **extra):
    return client.post(
        TOKEN_URL,
        urlencode({"grant_type": "client_credentials", "scope": "system/*.rs"}),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=_basic(client_id, secret),
        REMOTE_ADDR="198.51.100.9",
        **extra,
    )


def oauth_error_id(response) -> str:
    body = response.json()
    assert body["error"]
    assert body["correlation_id"] == response["X-Request-ID"], body
    return body["correlation_id"]


def test_the_token_endpoint_s_429_carries_its_id_and_is_recorded_for_the_named_app(client, settings, monkeypatch):
    settings.RATE_LIMITS = True
    from partners import token_limits

    monkeypatch.setattr(token_limits, "time", type("Clock", (), {"time": staticmethod(lambda: T + 0.25)}))
    app = make_app(tier_slug="verified", grant_types=("client-credentials",))
    app.organization.rate_quota_overrides = {"token": {"burst": 100, "per_minute": 1}}
    app.organization.save()
    assert _token_request(client, app.client_id).status_code == 200
    refused = _token_request(client, app.client_id)
    assert refused.status_code == 429
    denial = kept(app, oauth_error_id(refused))
    assert (denial.method, denial.path, denial.code, denial.layer) == (
        "POST",
        "/oauth/token",
        "quota_exceeded",
        "quota",
    )
    assert denial.rule == "client-token-minute: 1 token request per minute for this client"
    assert denial.docs == "/docs/errors/quota_exceeded/"


@pytest.mark.parametrize("limits", [True, False])
def test_wrong_client_credentials_are_recorded_for_the_app_they_name(client, settings, limits):
    settings.RATE_LIMITS = limits
    app = make_app(tier_slug="verified", grant_types=("client-credentials",))
    refused = _token_request(client, app.client_id, secret="a-wrong-guess")
    assert refused.status_code == 401
    denial = kept(app, oauth_error_id(refused))
    assert (denial.code, denial.layer, denial.status) == ("invalid_client", "token", 401)
    assert "Client authentication failed" in denial.rule
    assert denial.docs == "/docs/authentication/"


def test_a_suspended_organization_s_token_request_is_recorded_at_the_organization_layer(client):
    app = make_app(tier_slug="verified", grant_types=("client-credentials",))
    organization = app.organization
    organization.status = Organization.Status.SUSPENDED
    organization.suspension_reason = "Unpaid invoices since March."
    organization.save()
    refused = _token_request(client, app.client_id)
    assert refused.json()["error"] == "access_denied"
    denial = kept(app, oauth_error_id(refused))
    assert (denial.code, denial.layer) == ("access_denied", "organization")
    assert "Unpaid invoices since March." in denial.rule
    assert denial.docs == "/docs/errors/organization_suspended/"


def test_a_token_request_naming_no_app_carries_its_id_and_is_recorded_for_no_one(client, settings, stored):
    settings.RATE_LIMITS = True
    refused = _token_request(client, "no-such-client")
    assert refused.status_code == 401
    oauth_error_id(refused)
    assert stored == []


def test_a_malformed_token_request_is_not_a_denial(client, stored):
    response = client.post(TOKEN_URL, {"grant_type": "nonsense"})
    assert response.status_code == 400
    oauth_error_id(response)
    assert stored == []


def test_introspection_and_revocation_errors_carry_their_id_too(client):
    introspect = client.post("/oauth/introspect/", {"token": "x"})
    assert introspect.status_code == 401
    oauth_error_id(introspect)
    app = make_app(tier_slug="verified", grant_types=("client-credentials",))
    revoke = client.post("/oauth/revoke_token/", {"token": "x"}, HTTP_AUTHORIZATION=_basic(app.client_id, "wrong"))
    assert revoke.status_code == 401
    oauth_error_id(revoke)


# --- the log itself ------------------------------------------------------------------------------------------


def _refuse(client, raw, request_id):
    return client.get("/api/v1/events", HTTP_X_REQUEST_ID=request_id, **bearer(raw))


def test_a_recording_failure_never_changes_the_response(client, app, monkeypatch):
    raw = make_token(app, "openid")
    healthy = _refuse(client, raw, "trace-before-outage")

    def down(*args, **kwargs):
        raise ConnectionError("the cache is down")

    monkeypatch.setattr(denial_log, "_store_in_cache", down)
    monkeypatch.setattr(denial_log, "_store_in_redis", down)
    during = _refuse(client, raw, "trace-during-outage")
    assert during.status_code == healthy.status_code == 403
    assert json.loads(during.content.replace(b"trace-during-outage", b"trace-before-outage")) == healthy.json()
    assert during["WWW-Authenticate"] == healthy["WWW-Authenticate"]
    assert denial_log.fetch([app.pk], "trace-during-outage") == []

    monkeypatch.setattr(denials, "rule_of", down)  # a bug while building the record: the same
    assert _refuse(client, raw, "trace-with-a-bug").status_code == 403


def test_each_app_keeps_a_bounded_number_of_denials_an_hour(client, app, settings):
    settings.DENIAL_LOG_PER_APP_PER_HOUR = 2
    raw = make_token(app, "openid")
    for n in range(4):
        assert _refuse(client, raw, f"trace-cap-000{n}").status_code == 403
    assert [bool(denial_log.fetch([app.pk], f"trace-cap-000{n}")) for n in range(4)] == [True, True, False, False]
    other = AppFactory(organization=app.organization)  # another app has its own allowance
    _refuse(client, make_token(other, "openid"), "trace-cap-other")
    assert denial_log.fetch([other.pk], "trace-cap-other")


def test_one_id_reused_by_another_app_never_touches_this_app_s_denial(client, app):
    _refuse(client, make_token(app, "openid"), "shared-trace-id")
    stranger = AppFactory()
    _refuse(client, make_token(stranger, "openid appointments.read"), "shared-trace-id")
    assert kept(app, "shared-trace-id").rule.endswith("it carries openid.")
    assert kept(stranger, "shared-trace-id").rule.endswith("it carries openid appointments.read.")


def test_successes_and_other_errors_are_not_denials(client, app, stored):
    raw = make_token(app, "events.read")
    assert client.get("/api/v1/events", **bearer(raw)).status_code == 200
    assert client.get("/api/v9/nothing", **bearer(raw)).status_code == 404
    response = client.post("/api/v1/consents", "{", content_type="application/json", **bearer(raw))
    assert response.status_code in (400, 403)
    assert all(d.status in (401, 403, 429) for d in stored)
    assert not [d for d in stored if d.code in ("not_found", "malformed_request", "validation_error")]


@pytest.mark.redis
def test_denials_expire_after_a_week_in_redis(client, app):
    _refuse(client, make_token(app, "openid"), "trace-ttl-check")
    seconds = cache.ttl(denial_log.key(app.pk, "trace-ttl-check"))
    assert timedelta(days=7) - timedelta(minutes=1) < timedelta(seconds=seconds) <= timedelta(days=7)
