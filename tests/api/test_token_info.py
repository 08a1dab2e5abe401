"""GET /api/v1/token-info: what the calling token may do."""

import pytest
from django.urls import reverse

from partners.models import Organization, Tier
from tests.api.conftest import bearer, make_token

pytestmark = pytest.mark.django_db


def layer(body, check) -> dict:
    return next(entry for entry in body["layers"] if entry["check"] == check)


def test_the_url_is_named():
    assert reverse("api:token-info") == "/api/v1/token-info"


def test_a_patient_token(client, app, patient):
    raw = make_token(app, "launch/patient openid patient/Observation.rs?category=laboratory", user=patient)
    response = client.get(reverse("api:token-info"), **bearer(raw))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["kind"] == "patient"
    assert body["patient"] == {"id": "123", "reference": "Patient/123"}
    assert body["app"] == {"name": app.name, "client_id": app.client_id, "environment": "sandbox"}
    assert body["organization"]["slug"] == app.organization.slug
    assert body["organization"]["status"] == "active"
    assert body["organization"]["partner_type"] == "developer"
    assert body["tier"]["slug"] == "sandbox"
    assert body["tier"]["write_access"] is True
    assert body["tier"]["token_lifetimes"]["system_access_token"] == 300
    scopes = {scope["name"]: scope for scope in body["scopes"]}
    assert list(scopes) == ["launch/patient", "openid", "patient/Observation.rs?category=laboratory"]
    assert scopes["openid"]["sentence"] == "Know that it is you who signed in."
    assert scopes["patient/Observation.rs?category=laboratory"]["sentence"] == "See your lab results."
    assert scopes["patient/Observation.rs?category=laboratory"]["data_class"] == "lab_results"
    assert 3500 < body["expires_in"] <= 3600
    assert body["expires_at"].endswith("Z")
    assert [(entry["layer"], entry["check"]) for entry in body["layers"]] == [
        ("token", "token"),
        ("scope", "scopes"),
        ("policy", "organization"),
        ("policy", "tier"),
        ("policy", "environment"),
        ("policy", "partner_type"),
        ("data", "consent"),
    ]
    assert layer(body, "token")["verdict"] == "allow"
    assert layer(body, "organization")["verdict"] == "allow"
    assert layer(body, "tier")["verdict"] == "allow"
    assert "sandbox data only" in layer(body, "environment")["detail"]


def test_a_system_token_has_no_patient(client, app):
    body = client.get(reverse("api:token-info"), **bearer(make_token(app, "system/*.rs"))).json()
    assert body["kind"] == "system"
    assert body["patient"] is None
    assert body["scopes"][0]["sentence"].endswith("as a backend service with no one signed in.")


def test_a_patient_user_without_patient_scopes_is_a_user_token(client, app, patient):
    body = client.get(reverse("api:token-info"), **bearer(make_token(app, "openid", user=patient))).json()
    assert (body["kind"], body["patient"]) == ("user", None)


def test_any_valid_token_may_ask_even_without_scopes(client, app):
    body = client.get(reverse("api:token-info"), **bearer(make_token(app, ""))).json()
    assert body["scopes"] == []


def test_a_suspended_organization_learns_why(client, app):
    app.organization.status = Organization.Status.SUSPENDED
    app.organization.suspension_reason = "BAA expired."
    app.organization.save()
    response = client.get(reverse("api:token-info"), **bearer(make_token(app, "openid")))
    assert response.status_code == 200
    body = response.json()
    assert body["organization"]["suspension_reason"] == "BAA expired."
    assert layer(body, "organization") | {"detail": None} == {
        "layer": "policy",
        "check": "organization",
        "verdict": "deny",
        "code": "organization_suspended",
        "detail": None,
    }
    assert "BAA expired." in layer(body, "organization")["detail"]


def test_a_read_only_tier_is_limited(client, app):
    Tier.objects.filter(slug="sandbox").update(write_access=False)
    body = client.get(reverse("api:token-info"), **bearer(make_token(app, "openid"))).json()
    tier_layer = layer(body, "tier")
    assert (tier_layer["verdict"], tier_layer["code"]) == ("limited", "tier_policy")
    assert "Verified" in tier_layer["detail"]


def test_the_openapi_schema_documents_problems(settings):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator(patterns=None, urlconf="api.urls").get_schema(request=None, public=True)
    operation = schema["paths"]["/v1/token-info"]["get"]
    assert operation["operationId"] == "token_info"
    assert "application/problem+json" in operation["responses"]["401"]["content"]
    assert "application/json" in operation["responses"]["200"]["content"]
    assert operation["security"] == [{"bearerAuth": []}]
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
