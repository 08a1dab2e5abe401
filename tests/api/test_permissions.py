"""The scope, policy and data layers, each refusing with its own problem, earliest layer first."""

import pytest
from django.utils import timezone

from api import policy
from api.policy import Decision
from partners.models import App, Organization, Tier
from tests.api.conftest import bearer, make_token
from tests.factories import AppFactory, OrganizationFactory, tier

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    return body


@pytest.fixture
def read_only_sandbox(db):
    """Sandbox without write access; Verified (rank 1) keeps it, Production too."""
    Tier.objects.filter(slug="sandbox").update(write_access=False)
    return tier("sandbox")


def suspend(organization, reason="Unpaid invoices since March."):
    organization.status = Organization.Status.SUSPENDED
    organization.suspension_reason = reason
    organization.suspended_at = timezone.now()
    organization.save()


# --- scope ---------------------------------------------------------------------------------------


def test_a_token_with_the_scope_passes(client, app):
    response = client.get("/api/test/events", **bearer(make_token(app, "events.read")))
    assert response.status_code == 200


def test_a_missing_scope_is_insufficient_scope_naming_it(client, app):
    response = client.get("/api/test/events", **bearer(make_token(app, "openid appointments.read")))
    body = problem(response, 403, "insufficient_scope")
    assert body["layer"] == "scope"
    assert body["missing_scopes"] == ["events.read"]
    assert "events.read" in body["detail"]
    assert response["WWW-Authenticate"].startswith('Bearer realm="marketplace", error="insufficient_scope"')
    assert response["WWW-Authenticate"].endswith('scope="events.read"')


def test_resource_access_is_granted_by_a_smart_scope_in_any_context(client, app, patient):
    for scope in ("patient/Observation.rs", "patient/Observation.read", "user/*.rs", "system/Observation.r"):
        raw = make_token(app, f"launch/patient {scope}", user=patient)
        assert client.get("/fhir/r4/TestObservation", **bearer(raw)).status_code == 200, scope


def test_missing_resource_access_names_the_scope_that_would_grant_it(client, app, patient):
    raw = make_token(app, "launch/patient patient/Patient.rs", user=patient)
    response = client.get("/fhir/r4/TestObservation", **bearer(raw))
    assert response.status_code == 403
    assert response["Content-Type"] == "application/fhir+json"
    codes = [e for e in response.json()["extension"] if e["url"].endswith("/problem-code")]
    assert codes[0]["valueCode"] == "insufficient_scope"
    assert 'scope="patient/Observation.r"' in response["WWW-Authenticate"]
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert "read access to Observation" in diagnostics
    assert "patient/Observation.r, user/Observation.r or system/Observation.r" in diagnostics


def test_a_scope_narrowed_by_category_grants_that_category_only(client, app, patient):
    raw = make_token(app, "launch/patient patient/Observation.rs?category=laboratory", user=patient)
    url = "/fhir/r4/TestObservationSearch"
    assert client.get(f"{url}?category=laboratory", **bearer(raw)).status_code == 200
    response = client.get(f"{url}?category=vital-signs", **bearer(raw))
    assert response.status_code == 403
    assert 'scope="patient/Observation.s?category=vital-signs"' in response["WWW-Authenticate"]
    assert client.get(url, **bearer(raw)).status_code == 403


# --- policy --------------------------------------------------------------------------------------


def test_a_suspended_organization_is_refused_with_the_reason(client, app):
    suspend(app.organization)
    response = client.get("/api/test/events", **bearer(make_token(app, "events.read")))
    body = problem(response, 403, "organization_suspended")
    assert body["layer"] == "policy"
    assert "Unpaid invoices since March." in body["detail"]
    assert body["reason"] == "Unpaid invoices since March."
    assert body["organization"] == app.organization.slug


def test_a_tier_without_write_access_refuses_writes_naming_the_next_tier(client, app, read_only_sandbox):
    raw = make_token(app, "events.read")
    assert client.get("/api/test/events", **bearer(raw)).status_code == 200  # reads still work
    response = client.post("/api/test/events", {"a": 1}, content_type="application/json", **bearer(raw))
    body = problem(response, 403, "tier_policy")
    assert body["layer"] == "policy"
    assert "Sandbox" in body["detail"] and "Verified" in body["detail"]
    assert (body["tier"], body["required_tier"]) == ("sandbox", "verified")
    assert body["upgrade_url"] == "http://testserver/tiers/"
    assert "Verified" in body["fix"]


def test_the_tier_named_is_the_lowest_ranked_one_with_write_access(client, app, read_only_sandbox):
    Tier.objects.filter(slug="verified").update(write_access=False)
    raw = make_token(app, "events.read")
    response = client.post("/api/test/events", {}, content_type="application/json", **bearer(raw))
    assert problem(response, 403, "tier_policy")["required_tier"] == "production"


def test_a_sandbox_app_touching_production_data_is_refused(client, app):
    response = client.get("/api/test/production-data", **bearer(make_token(app, "openid")))
    body = problem(response, 403, "environment_policy")
    assert body["detail"].startswith("Sandbox apps reach sandbox data only")
    assert (body["app_environment"], body["data_environment"]) == ("sandbox", "production")


def test_a_production_app_reaches_production_data(client):
    app = AppFactory(environment=App.Environment.PRODUCTION, organization=OrganizationFactory(tier=tier("production")))
    assert client.get("/api/test/production-data", **bearer(make_token(app, "openid"))).status_code == 200


def test_an_endpoint_for_providers_refuses_other_partner_types(client, app):
    response = client.get("/api/test/provider-only", **bearer(make_token(app, "openid")))
    body = problem(response, 403, "partner_type_policy")
    assert body["partner_type"] == "developer"
    assert body["allowed_partner_types"] == ["provider"]
    assert "provider" in body["detail"]

    provider_app = AppFactory(organization=OrganizationFactory(partner_type=Organization.PartnerType.PROVIDER))
    assert client.get("/api/test/provider-only", **bearer(make_token(provider_app, "openid"))).status_code == 200


# --- data ----------------------------------------------------------------------------------------


def test_the_data_layer_asks_for_the_patients_consent(client, app):
    from consent.services import consent_grant

    token = make_token(app, "openid")
    body = problem(client.get("/api/test/lab-results/123", **bearer(token)), 403, "consent_required")
    assert "has not consented" in body["detail"]
    consent_grant(patient_id="123", app=app, scopes=["patient/Observation.rs"], channel="api")
    assert client.get("/api/test/lab-results/123", **bearer(token)).status_code == 200


def test_a_refusal_of_the_data_hook_is_consent_required(client, app, monkeypatch):
    calls = []

    def deny(*, context, patient_id, data_class):
        calls.append((context.app, patient_id, data_class))
        return Decision.deny("Patient/123 withdrew consent for lab results on 2026-01-02.")

    monkeypatch.setattr(policy, "check_data_access", deny)
    response = client.get("/api/test/lab-results/123", **bearer(make_token(app, "openid")))
    body = problem(response, 403, "consent_required")
    assert body["layer"] == "data"
    assert body["detail"] == "Patient/123 withdrew consent for lab results on 2026-01-02."
    assert (body["patient"], body["data_class"]) == ("Patient/123", "lab_results")
    assert calls == [(app, "123", "lab_results")]


# --- order ---------------------------------------------------------------------------------------


def test_the_earliest_failing_layer_is_reported(client, app, read_only_sandbox):
    suspend(app.organization)
    app.organization.partner_type = Organization.PartnerType.PAYER
    app.organization.save()
    no_scope = make_token(app, "openid")
    with_scope = make_token(app, "events.read")
    expired = make_token(app, "events.read", expires_in=-1)

    # token before everything
    assert client.post("/api/test/events", {}, content_type="application/json", **bearer(expired)).json()["code"] == (
        "invalid_token"
    )
    # scope before organization and tier
    response = client.post("/api/test/events", {}, content_type="application/json", **bearer(no_scope))
    assert response.json()["code"] == "insufficient_scope"
    # organization before tier
    response = client.post("/api/test/events", {}, content_type="application/json", **bearer(with_scope))
    assert response.json()["code"] == "organization_suspended"
    # organization before partner type
    assert client.get("/api/test/provider-only", **bearer(with_scope)).json()["code"] == "organization_suspended"

    app.organization.status = Organization.Status.ACTIVE
    app.organization.save()
    # tier before partner type: a write to a provider-only view by a payer on a read-only tier
    response = client.post("/api/test/events", {}, content_type="application/json", **bearer(with_scope))
    assert response.json()["code"] == "tier_policy"
