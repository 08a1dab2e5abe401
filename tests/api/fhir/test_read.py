"""GET /fhir/r4/<Type>/<id>: pure FHIR, meta from the row, ETag, the authorization layers, the audit."""

import pytest
from fhir.resources.R4B import get_fhir_model_class

from api.models import AccessEvent
from tests.api.conftest import bearer
from tests.api.fhir import helpers as h
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def app(db):
    return AppFactory(name="Glucose Coach")


def read(client, path, raw, **extra):
    return client.get(f"/fhir/r4/{path}", **bearer(raw), **extra)


def valid(response, resource_type):
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == h.FHIR
    body = response.json()
    get_fhir_model_class(resource_type).model_validate(body)
    return body


@pytest.mark.parametrize(
    ("resource_type", "make"),
    [
        ("Patient", lambda: h.patient("p1")),
        ("Observation", lambda: h.observation("ob1")),
        ("Appointment", lambda: h.appointment("ap1")),
        ("Coverage", lambda: h.coverage("cv1")),
        ("Practitioner", lambda: h.practitioner("pr1")),
        ("Organization", lambda: h.organization("o1")),
        ("Schedule", lambda: h.schedule("s1")),
        ("Slot", lambda: h.slot("sl1")),
    ],
)
def test_every_type_reads_as_valid_r4_with_meta_from_the_row(client, app, resource_type, make):
    row = make()
    row.version_id = 3
    row.save()
    h.consent(app)
    response = read(client, f"{resource_type}/{row.id}", h.patient_token(app))
    body = valid(response, resource_type)
    assert (body["resourceType"], body["id"]) == (resource_type, row.id)
    assert body["meta"]["versionId"] == "3"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response["ETag"] == 'W/"3"'
    assert response["Last-Modified"]


def test_if_none_match_answers_304(client, app):
    h.patient("p1")
    h.consent(app)
    raw = h.patient_token(app)
    etag = read(client, "Patient/p1", raw)["ETag"]
    again = read(client, "Patient/p1", raw, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    changed = read(client, "Patient/p1", raw, HTTP_IF_NONE_MATCH='W/"99"')
    assert changed.status_code == 200


def test_format_json_is_accepted_and_xml_is_not(client, app):
    h.practitioner("pr1")
    raw = h.patient_token(app)
    assert read(client, "Practitioner/pr1?_format=json", raw).status_code == 200
    assert read(client, "Practitioner/pr1?_format=application/fhir%2Bjson", raw).status_code == 200
    h.outcome(read(client, "Practitioner/pr1?_format=xml", raw), 406, "not_acceptable")


def test_unknown_id_is_404_operation_outcome(client, app):
    body = h.outcome(read(client, "Practitioner/nope", h.patient_token(app)), 404, "not_found", "not-found")
    assert "Practitioner/nope" in body["issue"][0]["details"]["text"]


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch", "options"])
def test_writes_are_405_before_any_other_layer(client, app, method):
    h.patient("p1")
    raw = h.patient_token(app)  # a sandbox-tier app: read-only, yet the answer is 405, not tier_policy
    response = getattr(client, method)("/fhir/r4/Patient/p1", {}, content_type=h.FHIR, **bearer(raw))
    h.outcome(response, 405, "method_not_allowed", "not-supported")
    assert response["Allow"] == "GET, HEAD"
    h.outcome(client.post("/fhir/r4/Patient", {}, content_type=h.FHIR, **bearer(raw)), 405, "method_not_allowed")


def test_no_token_is_401_and_a_missing_scope_403(client, app):
    h.patient("p1")
    h.outcome(client.get("/fhir/r4/Patient/p1"), 401, "token_required")
    h.consent(app)
    raw = h.patient_token(app, scope="launch/patient patient/Observation.rs")
    h.outcome(read(client, "Patient/p1", raw), 403, "insufficient_scope", "security")


# --- object level -------------------------------------------------------------------------------------------


def test_a_patient_token_never_sees_another_patient(client, app):
    h.patient("p1")
    h.patient("p2", family="Jones")
    h.observation("ob2", "p2")
    h.consent(app, "p1")
    h.consent(app, "p2")
    raw = h.patient_token(app, "p1")
    assert read(client, "Patient/p1", raw).status_code == 200
    h.outcome(read(client, "Patient/p2", raw), 404, "not_found")
    h.outcome(read(client, "Observation/ob2", raw), 404, "not_found")
    # exactly what an id that does not exist gets: existence does not leak
    missing = read(client, "Patient/p404", raw)
    assert missing.status_code == 404
    assert missing.json()["issue"][0]["code"] == read(client, "Patient/p2", raw).json()["issue"][0]["code"]


def test_a_sandbox_app_never_sees_production_rows(client, app):
    h.patient("prod1", environment="production")
    h.practitioner("prodpr", environment="production")
    h.consent(app, "prod1")
    raw = h.patient_token(app, "prod1")
    h.outcome(read(client, "Patient/prod1", raw), 404, "not_found")
    h.outcome(read(client, "Practitioner/prodpr", raw), 404, "not_found")


def test_a_production_app_does_not_see_sandbox_rows(client):
    production = AppFactory(environment="production")
    h.practitioner("sbx")
    h.practitioner("prd", environment="production")
    raw = h.system_token(production)
    h.outcome(read(client, "Practitioner/sbx", raw), 404, "not_found")
    assert read(client, "Practitioner/prd", raw).status_code == 200


def test_without_consent_a_read_is_refused_and_audited(client, app):
    h.patient("p1")
    raw = h.user_token(app)
    h.outcome(read(client, "Patient/p1", raw), 403, "consent_required")
    (event,) = AccessEvent.objects.all()
    assert (event.action, event.outcome, event.refusal_code) == ("read", "refused", "consent_required")
    assert (event.resource_type, event.resource_id, event.patient_id) == ("Patient", "p1", "p1")
    assert event.app_id == app.pk


def test_a_refused_read_of_another_patient_is_audited_as_not_found(client, app):
    h.observation("ob2", "p2")
    h.outcome(read(client, "Observation/ob2", h.patient_token(app, "p1")), 404, "not_found")
    (event,) = AccessEvent.objects.all()
    assert (event.outcome, event.refusal_code, event.patient_id) == ("refused", "not_found", "p2")


def test_an_allowed_read_is_audited_with_the_consent_grant(client, app):
    h.observation("ob1", "p1")
    grant = h.consent(app, "p1", scopes=["patient/Observation.rs"])
    response = read(client, "Observation/ob1", h.patient_token(app, "p1"), HTTP_X_REQUEST_ID="req-123456789")
    assert response.status_code == 200
    (event,) = AccessEvent.objects.all()
    assert (event.action, event.outcome, event.consent_grant_id) == ("read", "allowed", grant.pk)
    assert (event.resource_type, event.resource_id, event.patient_id) == ("Observation", "ob1", "p1")
    assert event.environment == "sandbox"
    assert event.correlation_id == response["X-Request-ID"]


def test_a_revoked_consent_is_refused_with_the_grant_in_the_audit(client, app):
    from consent.services import consent_revoke

    h.patient("p1")
    grant = h.consent(app, "p1")
    raw = h.user_token(app)
    consent_revoke(grant=grant, actor="patient", channel="consent_screen")
    h.outcome(read(client, "Patient/p1", raw), 403, "consent_revoked")
    event = AccessEvent.objects.get()
    assert (event.refusal_code, event.consent_grant_id) == ("consent_revoked", grant.pk)


def test_reads_of_data_belonging_to_no_patient_are_not_audited(client, app):
    h.practitioner("pr1")
    assert read(client, "Practitioner/pr1", h.user_token(app)).status_code == 200
    assert not AccessEvent.objects.exists()


def test_observation_data_class_follows_its_category(client, app):
    h.observation("lab", "p1", category="laboratory")
    h.observation("vit", "p1", category="vital-signs", code="8867-4")
    h.consent(app, "p1", scopes=["patient/Observation.rs?category=vital-signs"])
    raw = h.user_token(app)
    assert read(client, "Observation/vit", raw).status_code == 200
    h.outcome(read(client, "Observation/lab", raw), 403, "consent_required")


def test_observation_scope_narrowed_by_category(client, app):
    h.observation("lab", "p1", category="laboratory")
    h.observation("vit", "p1", category="vital-signs", code="8867-4")
    h.consent(app, "p1")
    raw = h.patient_token(app, "p1", scope="launch/patient patient/Observation.rs?category=laboratory")
    assert read(client, "Observation/lab", raw).status_code == 200
    h.outcome(read(client, "Observation/vit", raw), 403, "insufficient_scope")
    # another patient's observation stays "not found", whatever its category
    h.observation("other", "p2", category="vital-signs")
    h.outcome(read(client, "Observation/other", raw), 404, "not_found")


def test_a_provider_backend_reads_the_patients_it_holds_without_consent(client):
    from tests.consent.helpers import holds, provider

    clinic = provider()
    holds(clinic, "p1")
    backend = AppFactory(organization=clinic)
    h.patient("p1")
    h.patient("p2")
    raw = h.system_token(backend)
    assert read(client, "Patient/p1", raw).status_code == 200
    h.outcome(read(client, "Patient/p2", raw), 403, "consent_required")
    allowed = AccessEvent.objects.get(outcome="allowed")
    assert (allowed.patient_id, allowed.consent_grant_id) == ("p1", None)
