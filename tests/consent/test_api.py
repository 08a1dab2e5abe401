"""The consent API: /api/v1/consents/status, POST /api/v1/consents and .../{id}/revoke."""

from datetime import timedelta

import pytest
from django.utils import timezone

from consent.models import AppAuthorization, ConsentGrant, ConsentText, LedgerEvent
from consent.services import consent_revoke
from partners.models import App, OutboxEvent, Tier
from tests.api.conftest import bearer, make_token
from tests.consent.helpers import OBSERVATIONS, PATIENT, grant, holds, patient_user, problem, provider, provider_app
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db

STATUS_URL = "/api/v1/consents/status"
RECORD_URL = "/api/v1/consents"
CLINICAL_CLASSES = [
    "appointments",
    "care_team",
    "consent",
    "coverage",
    "demographics",
    "lab_results",
    "observations",
    "scheduling",
    "vital_signs",
]


@pytest.fixture
def app(db) -> App:
    return AppFactory()


def revoke_url(consent_id) -> str:
    return f"/api/v1/consents/{consent_id}/revoke"


def revoke(client, consent_id, raw, **body):
    return client.post(revoke_url(consent_id), body or None, content_type="application/json", **bearer(raw))


def status(client, app, patient=PATIENT, scope="consent.read", **token_kwargs):
    return client.get(STATUS_URL, {"patient": patient}, **bearer(make_token(app, scope, **token_kwargs)))


def by_class(body) -> dict:
    return {entry["data_class"]: entry for entry in body["access"]}


# --- GET /api/v1/consents/status --------------------------------------------------------------------


def test_status_needs_the_patient(client, app):
    body = problem(client.get(STATUS_URL, **bearer(make_token(app, "consent.read"))), 400, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["patient"]


def test_status_needs_consent_read(client, app):
    body = problem(status(client, app, scope="events.read"), 403, "insufficient_scope")
    assert body["missing_scopes"] == ["consent.read"]


def test_status_without_any_consent(client, app):
    holds(provider("Oncology Partners"))
    response = status(client, app)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["patient"] == {"id": PATIENT, "reference": f"Patient/{PATIENT}"}
    assert body["consent"]["state"] == "none"
    assert body["consent"]["id"] is None
    assert [entry["data_class"] for entry in body["access"]] == CLINICAL_CLASSES
    assert {(e["allowed"], e["code"]) for e in body["access"]} == {(False, "consent_required")}
    # Where the patient is cared for is private until they consent to this app.
    assert body["organization_authorization"] == []
    assert "Oncology Partners" not in response.content.decode()


def test_status_of_an_active_consent(client, app):
    given = grant(app, scopes=[OBSERVATIONS, "patient/Patient.rs"])
    body = status(client, app, patient=f"Patient/{PATIENT}").json()
    consent = body["consent"]
    assert consent["id"] == given.pk
    assert consent["state"] == "active"
    assert consent["patient"] == {"id": PATIENT, "reference": f"Patient/{PATIENT}"}
    assert consent["app"] == {"client_id": app.client_id, "name": app.name}
    assert consent["scopes"] == [OBSERVATIONS, "patient/Patient.rs"]
    assert consent["data_classes"] == ["demographics", "observations"]
    assert consent["text"] == {"purpose": "app-access", "version": 1, "label": "app-access:v1"}
    assert consent["channel"] == "consent_screen"
    assert consent["granted_at"] and consent["expires_at"] is None and consent["ended_at"] is None
    access = by_class(body)
    assert access["lab_results"] == {"data_class": "lab_results", "allowed": True, "code": None, "detail": None}
    assert access["demographics"]["allowed"] is True
    assert access["coverage"]["code"] == "consent_required"
    assert "does not cover" in access["coverage"]["detail"]


def test_status_names_each_provider_s_decision_once_the_patient_consented(client):
    app = AppFactory(environment=App.Environment.PRODUCTION)
    enabled, blocked, undecided = provider("A Clinic"), provider("B Hospital"), provider("C Practice")
    for organization in (enabled, blocked, undecided):
        holds(organization)
    AppAuthorization.objects.create(organization=enabled, app=app, decision="enabled")
    AppAuthorization.objects.create(organization=blocked, app=app, decision="blocked", reason="Unvetted")
    grant(app)
    body = status(client, app).json()
    states = {(e["organization"], e["name"], e["state"]) for e in body["organization_authorization"]}
    assert states == {
        (enabled.slug, "A Clinic", "enabled"),
        (blocked.slug, "B Hospital", "blocked"),
        (undecided.slug, "C Practice", "not_enabled_default"),
    }
    assert [e["decided_at"] is not None for e in body["organization_authorization"]] == [True, True, False]
    lab = by_class(body)["lab_results"]
    assert (lab["allowed"], lab["code"]) == (False, "organization_authorization")


def test_a_sandbox_app_is_enabled_by_default(client, app):
    holds(provider())
    grant(app)
    body = status(client, app).json()
    assert [e["state"] for e in body["organization_authorization"]] == ["enabled_default"]
    assert by_class(body)["lab_results"]["allowed"] is True


def test_status_of_a_revoked_consent(client, app):
    given = grant(app)
    consent_revoke(grant=given, actor="user:1", channel="consent_screen", reason="Changed my mind.")
    body = status(client, app).json()
    assert body["consent"]["state"] == "revoked"
    assert body["consent"]["ended_at"] is not None
    assert body["consent"]["end_reason"] == "Changed my mind."
    assert by_class(body)["lab_results"]["code"] == "consent_revoked"


def test_status_of_an_expired_consent_before_the_task_marks_it(client, app):
    given = grant(app, expires_at=timezone.now() + timedelta(days=1))
    ConsentGrant.objects.filter(pk=given.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    body = status(client, app).json()
    assert body["consent"]["state"] == "expired"
    assert body["consent"]["ended_at"] == body["consent"]["expires_at"]
    assert by_class(body)["observations"]["code"] == "consent_expired"


def test_status_is_about_the_calling_app_only(client, app):
    grant(AppFactory())
    assert status(client, app).json()["consent"]["state"] == "none"


def test_a_patient_token_asks_about_its_own_patient_only(client, app):
    patient = patient_user()
    grant(app)
    own = status(client, app, scope="launch/patient consent.read", user=patient)
    assert own.json()["consent"]["state"] == "active"
    other = status(client, app, patient="456", scope="launch/patient consent.read", user=patient)
    assert "Patient/123" in problem(other, 403, "forbidden")["detail"]


def test_a_provider_backend_sees_its_own_standing_and_data_access(client):
    clinic = provider("Own Clinic")
    holds(clinic)
    holds(provider("Elsewhere Hospital"))
    backend = provider_app(clinic)
    body = status(client, backend, scope="consent.read system/Observation.rs").json()
    assert body["consent"]["state"] == "none"
    assert [e["organization"] for e in body["organization_authorization"]] == [clinic.slug]
    assert by_class(body)["lab_results"]["allowed"] is True  # its own patient, no consent needed
    assert "Elsewhere" not in str(body)


@pytest.mark.parametrize("patient", ["", "Patient/", "Group/1/Patient/2"])
def test_status_refuses_a_malformed_patient(client, app, patient):
    body = problem(status(client, app, patient=patient), 400, "validation_error")
    assert body["errors"][0]["field"] == "patient"


# --- POST /api/v1/consents ---------------------------------------------------------------------------


@pytest.fixture
def clinic(db):
    organization = provider("Riverside Clinic")
    holds(organization)
    return organization


@pytest.fixture
def clinic_token(clinic):
    return make_token(provider_app(clinic), "consent.write")


def record(client, raw, **overrides):
    body = {
        "patient": f"Patient/{PATIENT}",
        "client_id": overrides.pop("app").client_id if "app" in overrides else AppFactory().client_id,
        "scopes": [OBSERVATIONS],
        "source_document": "DocumentReference/signed-form-7",
    } | overrides
    return client.post(RECORD_URL, body, content_type="application/json", **bearer(raw))


def test_a_provider_records_a_consent(client, clinic, clinic_token):
    target = AppFactory()
    expires = (timezone.now() + timedelta(days=365)).replace(microsecond=0)
    response = record(client, clinic_token, app=target, expires_at=expires.isoformat())
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "active"
    assert body["channel"] == "signed_form"
    assert body["recorded_by"] == clinic.slug
    assert body["source_document"] == "DocumentReference/signed-form-7"
    assert body["app"]["client_id"] == target.client_id
    assert body["patient"]["id"] == PATIENT
    assert body["expires_at"].startswith(expires.strftime("%Y-%m-%dT%H:%M:%S"))
    event = LedgerEvent.objects.get(grant_id=body["id"])
    assert (event.kind, event.actor, event.channel) == ("granted", f"organization:{clinic.slug}", "signed_form")
    assert OutboxEvent.objects.filter(type="consent.granted", app=target).exists()


def test_recording_what_an_active_consent_covers_answers_200_with_it(client, clinic_token):
    target = AppFactory()
    first = record(client, clinic_token, app=target)
    again = record(client, clinic_token, app=target)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert LedgerEvent.objects.count() == 1


def test_recording_honours_an_idempotency_key_without_requiring_one(client, clinic_token):
    target = AppFactory()
    key = {"HTTP_IDEMPOTENCY_KEY": "signed-form-7-upload"}
    body = {
        "patient": f"Patient/{PATIENT}",
        "client_id": target.client_id,
        "scopes": [OBSERVATIONS],
        "source_document": "DocumentReference/signed-form-7",
    }
    first = client.post(RECORD_URL, body, content_type="application/json", **bearer(clinic_token), **key)
    again = client.post(RECORD_URL, body, content_type="application/json", **bearer(clinic_token), **key)
    assert (first.status_code, again.status_code) == (201, 201)  # the first answer, not "already covered" 200
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    other = client.post(
        RECORD_URL,
        body | {"scopes": ["patient/Patient.rs"]},
        content_type="application/json",
        **bearer(clinic_token),
        **key,
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert LedgerEvent.objects.count() == 1


def test_only_providers_record_consents(client):
    raw = make_token(AppFactory(), "consent.write")
    body = problem(record(client, raw), 403, "partner_type_policy")
    assert body["allowed_partner_types"] == ["provider"]


def test_recording_needs_consent_write(client, clinic):
    raw = make_token(provider_app(clinic), "consent.read")
    assert problem(record(client, raw), 403, "insufficient_scope")["missing_scopes"] == ["consent.write"]


def test_recording_needs_write_access_in_the_tier(client, clinic, clinic_token):
    Tier.objects.filter(slug="sandbox").update(write_access=False)
    problem(record(client, clinic_token), 403, "tier_policy")


def test_a_provider_records_only_for_patients_it_holds(client, clinic_token):
    body = problem(record(client, clinic_token, patient="999"), 403, "forbidden")
    assert "does not hold records of Patient/999" in body["detail"]
    assert not ConsentGrant.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"source_document": ""}, "source_document"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["patient/Horoscope.rs"]}, "scopes"),
        ({"client_id": "no-such-app"}, "client_id"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "next tuesday"}, "expires_at"),
        ({"patient": "Patient/"}, "patient"),
    ],
)
def test_recording_reports_each_invalid_field(client, clinic_token, overrides, field):
    body = problem(record(client, clinic_token, **overrides), 400, "validation_error")
    assert field in {e["field"] for e in body["errors"]}, body
    assert not ConsentGrant.objects.exists()


def test_a_missing_source_document_is_a_field_error(client, clinic_token):
    response = client.post(
        RECORD_URL,
        {"patient": PATIENT, "client_id": AppFactory().client_id, "scopes": [OBSERVATIONS]},
        content_type="application/json",
        **bearer(clinic_token),
    )
    body = problem(response, 400, "validation_error")
    assert body["errors"] == [
        {
            "field": "source_document",
            "pointer": "#/source_document",
            "message": "This field is required.",
            "code": "required",
        }
    ]


def test_a_sandbox_backend_cannot_record_for_a_production_app(client, clinic_token):
    target = AppFactory(environment=App.Environment.PRODUCTION)
    problem(record(client, clinic_token, app=target), 403, "environment_policy")


def test_recording_without_a_published_text_is_a_conflict(client, clinic_token):
    ConsentText.objects.update(effective_at=timezone.now() + timedelta(days=1))
    body = problem(record(client, clinic_token), 409, "client_error")
    assert "No consent text is published" in body["detail"]


# --- POST /api/v1/consents/{id}/revoke ------------------------------------------------------------------


def test_the_recording_provider_revokes(client, clinic, clinic_token):
    consent_id = record(client, clinic_token).json()["id"]
    response = revoke(client, consent_id, clinic_token, reason="Patient called.")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["state"], body["end_reason"]) == (consent_id, "revoked", "Patient called.")
    event = LedgerEvent.objects.get(grant_id=consent_id, kind="revoked")
    assert (event.actor, event.channel, event.reason) == (f"organization:{clinic.slug}", "api", "Patient called.")
    assert OutboxEvent.objects.filter(type="consent.revoked", payload__consent_id=consent_id).exists()


def test_the_app_s_own_organization_revokes_and_its_tokens_go(client, app):
    patient = patient_user()
    given = grant(app)
    patient_token = make_token(app, f"launch/patient {OBSERVATIONS}", user=patient)
    response = revoke(client, given.pk, make_token(app, "consent.write"))
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "revoked"
    assert body["end_reason"] == f"Revoked through the API by {app.organization.name}."
    assert client.get("/api/v1/token-info", **bearer(patient_token)).status_code == 401


def test_revoking_twice_answers_the_unchanged_state(client, app):
    given = grant(app)
    raw = make_token(app, "consent.write")
    first = revoke(client, given.pk, raw).json()
    second = revoke(client, given.pk, raw, reason="again")
    assert second.status_code == 200
    assert second.json() == first
    assert LedgerEvent.objects.filter(grant=given, kind="revoked").count() == 1
    assert OutboxEvent.objects.filter(type="consent.revoked").count() == 1


def test_revoking_a_superseded_consent_changes_nothing(client, app):
    first = grant(app)
    grant(app, scopes=[OBSERVATIONS, "patient/Patient.rs"])
    body = revoke(client, first.pk, make_token(app, "consent.write")).json()
    assert body["state"] == "superseded"
    assert not LedgerEvent.objects.filter(kind="revoked").exists()


def test_another_organization_s_consent_is_not_found(client, app, clinic_token):
    given = grant(app)
    for raw in (clinic_token, make_token(AppFactory(), "consent.write")):
        problem(revoke(client, given.pk, raw), 404, "not_found")
    problem(revoke(client, given.pk + 1000, clinic_token), 404, "not_found")
    assert ConsentGrant.objects.get(pk=given.pk).status == "active"


def test_revoking_needs_consent_write_but_not_write_access(client, app):
    given = grant(app)
    problem(revoke(client, given.pk, make_token(app, "consent.read")), 403, "insufficient_scope")
    Tier.objects.filter(slug="sandbox").update(write_access=False)
    response = revoke(client, given.pk, make_token(app, "consent.write"))
    assert response.status_code == 200
    assert response.json()["state"] == "revoked"


def test_a_revocation_reason_is_bounded(client, app):
    given = grant(app)
    response = revoke(client, given.pk, make_token(app, "consent.write"), reason="x" * 2001)
    assert problem(response, 400, "validation_error")["errors"][0]["field"] == "reason"


# --- OpenAPI ---------------------------------------------------------------------------------------------


def test_the_openapi_schema_documents_the_consent_endpoints():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator(patterns=None, urlconf="api.urls").get_schema(request=None, public=True)
    operations = {
        ("/v1/consents/status", "get"): "consent_status",
        ("/v1/consents", "post"): "consent_record",
        ("/v1/consents/{consent_id}/revoke", "post"): "consent_revoke",
    }
    for (path, method), operation_id in operations.items():
        operation = schema["paths"][path][method]
        assert operation["operationId"] == operation_id
        assert operation["security"] == [{"bearerAuth": []}]
        assert "application/problem+json" in operation["responses"]["403"]["content"]
    assert set(schema["paths"]["/v1/consents"]["post"]["responses"]) >= {"200", "201", "400", "403", "409"}
    assert "404" in schema["paths"]["/v1/consents/{consent_id}/revoke"]["post"]["responses"]
    assert schema["components"]["schemas"]["ConsentStateEnum"]["enum"] == [
        "active",
        "revoked",
        "expired",
        "superseded",
        "none",
    ]
