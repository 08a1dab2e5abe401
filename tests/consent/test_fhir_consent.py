"""FHIR R4 Consent at /fhir/r4/Consent: pure FHIR, visible to the app it is for (and to a provider's
backend for the patients it holds), searchable by patient and status, paged."""

from datetime import timedelta

import pydantic
import pytest
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.consent import Consent

from consent.models import ConsentGrant
from consent.services import consent_record_for_patient, consent_revoke
from partners.models import App
from tests.api.conftest import bearer, make_token
from tests.consent.helpers import OBSERVATIONS, PATIENT, grant, holds, patient_user, problem, provider, provider_app
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db

FHIR = "application/fhir+json"
BASE = "http://testserver/fhir/r4"


@pytest.fixture
def app(db) -> App:
    return AppFactory(name="Glucose Coach")


def read(client, consent_id, raw, **extra):
    return client.get(f"/fhir/r4/Consent/{consent_id}", **bearer(raw), **extra)


def search(client, raw, **params):
    return client.get("/fhir/r4/Consent", params, **bearer(raw))


def entries(response) -> list[dict]:
    assert response.status_code == 200, response.content
    body = response.json()
    Bundle.model_validate(body)
    return [entry["resource"] for entry in body.get("entry", [])]


def ids(response) -> list[str]:
    return [resource["id"] for resource in entries(response)]


# --- read --------------------------------------------------------------------------------------------


def test_a_consent_reads_as_a_valid_r4_consent(client, app):
    given = grant(app, scopes=[OBSERVATIONS, "patient/Patient.rs"], expires_at=timezone.now() + timedelta(days=90))
    response = read(client, given.pk, make_token(app, "patient/Consent.rs"))
    assert response.status_code == 200
    assert response["Content-Type"] == FHIR
    assert response["Cache-Control"] == "no-store"
    assert response["ETag"] == 'W/"1"'
    body = response.json()
    consent = Consent.model_validate(body)  # forbids any key outside FHIR, at every level
    assert consent.id == str(given.pk)
    assert body["status"] == "active"
    assert body["meta"]["versionId"] == "1"
    assert body["scope"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
        "code": "patient-privacy",
        "display": "Privacy Consent",
    }
    assert body["category"][0]["coding"][0]["system"] == "http://loinc.org"
    assert body["category"][0]["coding"][0]["code"] == "59284-0"
    assert body["patient"] == {"reference": f"Patient/{PATIENT}"}
    assert body["performer"] == [{"reference": f"Patient/{PATIENT}"}]
    assert body["organization"] == [
        {
            "type": "Organization",
            "identifier": {
                "system": "http://testserver/fhir/NamingSystem/organization",
                "value": app.organization.slug,
            },
            "display": app.organization.name,
        }
    ]
    assert body["policy"] == [{"uri": "http://testserver/docs/consent/texts/app-access/v1"}]
    assert "sourceReference" not in body and "sourceAttachment" not in body
    provision = body["provision"]
    assert provision["type"] == "permit"
    assert provision["period"]["start"] == body["dateTime"]
    assert provision["period"]["end"].startswith(given.expires_at.strftime("%Y-%m-%dT%H:%M:%S"))
    (actor,) = provision["actor"]
    assert actor["role"]["coding"][0]["system"] == "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
    assert actor["role"]["coding"][0]["code"] == "IRPT"
    assert actor["reference"]["identifier"]["value"] == app.client_id
    assert actor["reference"]["display"] == "Glucose Coach"
    assert [(c["system"], c["code"]) for c in provision["class"]] == [
        ("http://testserver/fhir/CodeSystem/data-class", "demographics"),
        ("http://testserver/fhir/CodeSystem/data-class", "observations"),
    ]


def test_the_validation_above_would_catch_a_key_outside_fhir(client, app):
    body = read(client, grant(app).pk, make_token(app, "patient/Consent.rs")).json()
    body["provision"]["data_classes"] = ["observations"]
    with pytest.raises(pydantic.ValidationError):
        Consent.model_validate(body)


def test_a_revoked_consent_is_inactive_with_a_new_version(client, app):
    given = grant(app)
    consent_revoke(grant=given, actor="user:1", channel="consent_screen")
    given.refresh_from_db()
    response = read(client, given.pk, make_token(app, "user/Consent.r"))
    body = response.json()
    Consent.model_validate(body)
    assert body["status"] == "inactive"
    assert body["meta"]["versionId"] == "2"
    assert response["ETag"] == 'W/"2"'
    assert body["provision"]["period"]["end"].startswith(given.ended_at.strftime("%Y-%m-%dT%H:%M:%S"))


def test_a_superseded_or_expired_consent_is_inactive(client, app):
    old = grant(app)
    current = grant(app, scopes=[OBSERVATIONS, "patient/Patient.rs"], expires_at=timezone.now() + timedelta(days=1))
    ConsentGrant.objects.filter(pk=current.pk).update(expires_at=timezone.now() - timedelta(seconds=5))
    raw = make_token(app, "patient/Consent.rs")
    assert read(client, old.pk, raw).json()["status"] == "inactive"
    assert read(client, current.pk, raw).json()["status"] == "inactive"  # past its expiry, task or not


def test_a_consent_recorded_from_a_signed_form(client, app):
    clinic = provider("Riverside Clinic")
    holds(clinic)
    recorded = consent_record_for_patient(
        organization=clinic,
        app=app,
        patient_id=PATIENT,
        scopes=[OBSERVATIONS],
        source_document="DocumentReference/form-9",
    )
    body = read(client, recorded.pk, make_token(app, "patient/Consent.rs")).json()
    Consent.model_validate(body)
    assert body["sourceReference"] == {"reference": "DocumentReference/form-9"}
    assert body["performer"][1]["display"] == "Riverside Clinic"
    assert body["performer"][1]["identifier"]["value"] == clinic.slug


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("https://records.example.org/forms/9", {"sourceAttachment": {"url": "https://records.example.org/forms/9"}}),
        ("paper form 2026-0142", {"sourceReference": {"display": "paper form 2026-0142"}}),
    ],
)
def test_other_kinds_of_signed_form_reference(client, app, document, expected):
    given = grant(app)
    ConsentGrant.objects.filter(pk=given.pk).update(source_document=document)
    body = read(client, given.pk, make_token(app, "patient/Consent.rs")).json()
    Consent.model_validate(body)
    (key,) = expected
    assert body[key] | expected[key] == body[key]


def test_reading_needs_a_consent_scope(client, app):
    given = grant(app)
    patient_token = make_token(app, "launch/patient patient/Observation.rs", user=patient_user())
    response = read(client, given.pk, patient_token)
    problem(response, 403, "insufficient_scope", content_type=FHIR)
    assert 'scope="patient/Consent.r"' in response["WWW-Authenticate"]
    assert read(client, given.pk, make_token(app, "system/Consent.r")).status_code == 200


def test_another_app_s_consent_is_not_found(client, app):
    other = grant(AppFactory())
    response = read(client, other.pk, make_token(app, "patient/Consent.rs"))
    problem(response, 404, "not_found", content_type=FHIR)
    for missing in ("999999", "abc", "1.5", "9" * 30):
        problem(read(client, missing, make_token(app, "patient/Consent.rs")), 404, "not_found", content_type=FHIR)


def test_a_patient_token_sees_its_patient_s_consents_only(client, app):
    own = grant(app)
    other = grant(app, patient_id="456")
    raw = make_token(app, "launch/patient patient/Consent.rs", user=patient_user())
    assert read(client, own.pk, raw).status_code == 200
    assert read(client, other.pk, raw).status_code == 404
    assert ids(search(client, raw)) == [str(own.pk)]


def test_json_is_accepted_and_other_media_types_are_not(client, app):
    given = grant(app)
    raw = make_token(app, "patient/Consent.rs")
    assert read(client, given.pk, raw, HTTP_ACCEPT="application/json")["Content-Type"] == FHIR
    assert read(client, given.pk, raw, HTTP_ACCEPT="application/fhir+json")["Content-Type"] == FHIR
    problem(read(client, given.pk, raw, HTTP_ACCEPT="text/html"), 406, "not_acceptable", content_type=FHIR)


# --- a provider's backend ------------------------------------------------------------------------------


def test_a_provider_backend_sees_the_consents_of_the_patients_it_holds(client, app):
    clinic = provider()
    holds(clinic)
    held = grant(app)
    elsewhere = grant(app, patient_id="456")
    production = grant(AppFactory(environment=App.Environment.PRODUCTION))
    backend = provider_app(clinic)
    system = make_token(backend, "system/Consent.rs")
    assert read(client, held.pk, system).status_code == 200
    assert read(client, elsewhere.pk, system).status_code == 404
    assert read(client, production.pk, system).status_code == 404  # another environment's data
    assert ids(search(client, system)) == [str(held.pk)]
    # A user token of the same provider app sees its own app's consents only.
    user_token = make_token(backend, "user/Consent.rs", user=patient_user("777"))
    assert read(client, held.pk, user_token).status_code == 404


# --- search --------------------------------------------------------------------------------------------


def test_search_is_a_searchset_bundle_with_total_and_self_link(client, app):
    first = grant(app)
    second = grant(app, patient_id="456")
    grant(AppFactory())  # another app's: never counted
    response = search(client, make_token(app, "patient/Consent.rs"))
    assert response["Content-Type"] == FHIR
    body = response.json()
    bundle = Bundle.model_validate(body)
    assert (bundle.type, bundle.total) == ("searchset", 2)
    assert body["link"] == [{"relation": "self", "url": f"{BASE}/Consent?_count=20"}]
    assert [e["fullUrl"] for e in body["entry"]] == [f"{BASE}/Consent/{second.pk}", f"{BASE}/Consent/{first.pk}"]
    assert {e["search"]["mode"] for e in body["entry"]} == {"match"}
    for entry in body["entry"]:
        Consent.model_validate(entry["resource"])


def test_search_by_patient(client, app):
    own = grant(app)
    grant(app, patient_id="456")
    raw = make_token(app, "user/Consent.s")
    for value in (PATIENT, f"Patient/{PATIENT}", f"{BASE}/Patient/{PATIENT}"):
        response = search(client, raw, patient=value)
        assert ids(response) == [str(own.pk)], value
        assert response.json()["link"][0]["url"] == f"{BASE}/Consent?patient=Patient%2F{PATIENT}&_count=20"


def test_search_by_status(client, app):
    revoked = grant(app)
    consent_revoke(grant=revoked, actor="user:1", channel="consent_screen")
    active = grant(app)
    expired = grant(app, patient_id="456", expires_at=timezone.now() + timedelta(days=1))
    ConsentGrant.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    raw = make_token(app, "patient/Consent.rs")
    assert ids(search(client, raw, status="active")) == [str(active.pk)]
    assert ids(search(client, raw, status="inactive")) == [str(expired.pk), str(revoked.pk)]
    both = search(client, raw, status="active,inactive")
    assert sorted(ids(both)) == sorted(str(g.pk) for g in (active, expired, revoked))
    assert ids(search(client, raw, status="http://hl7.org/fhir/consent-state-codes|active")) == [str(active.pk)]
    assert search(client, raw, status="rejected").json()["total"] == 0
    assert ids(search(client, raw, status="active", patient="456")) == []


def test_search_pages_with_count_and_the_next_link(client, app):
    made = [grant(app, patient_id=str(n)) for n in range(5)]
    raw = make_token(app, "patient/Consent.rs")
    expected = [str(g.pk) for g in reversed(made)]
    seen, url, pages = [], "/fhir/r4/Consent?_count=2", 0
    while url:
        body = client.get(url, **bearer(raw)).json()
        Bundle.model_validate(body)
        assert body["total"] == 5
        seen += [e["resource"]["id"] for e in body.get("entry", [])]
        links = {link["relation"]: link["url"] for link in body["link"]}
        assert links["self"].startswith(f"{BASE}/Consent?")
        url = links.get("next", "").removeprefix("http://testserver")
        pages += 1
    assert (seen, pages) == (expected, 3)


def test_count_defaults_to_20_and_is_capped_at_100(client, app):
    for n in range(21):
        grant(app, patient_id=str(n))
    raw = make_token(app, "patient/Consent.rs")
    default = search(client, raw).json()
    assert (len(default["entry"]), default["total"]) == (20, 21)
    assert "next" in {link["relation"] for link in default["link"]}
    capped = search(client, raw, _count="500").json()
    assert len(capped["entry"]) == 21
    assert capped["link"][0]["url"].endswith("_count=100")
    summary = search(client, raw, _count="0").json()
    assert summary["total"] == 21 and "entry" not in summary


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"_count": "-1"}, "_count"),
        ({"_count": "ten"}, "_count"),
        ({"_cursor": "not-a-cursor"}, "_cursor"),
        ({"status": "approved"}, "status"),
        ({"status": ""}, "status"),
        ({"patient": ""}, "patient"),
    ],
)
def test_invalid_search_parameters_are_refused(client, app, params, field):
    body = problem(search(client, make_token(app, "patient/Consent.rs"), **params), 400, "validation_error", FHIR)
    assert body["issue"][1]["expression"] == [field]


def test_searching_needs_search_access(client, app):
    problem(search(client, make_token(app, "patient/Consent.r")), 403, "insufficient_scope", content_type=FHIR)


# --- the CapabilityStatement ------------------------------------------------------------------------------


def test_metadata_lists_consent(client):
    body = client.get("/fhir/r4/metadata").json()
    CapabilityStatement.model_validate(body)
    (consent,) = [r for r in body["rest"][0]["resource"] if r["type"] == "Consent"]
    assert consent["interaction"] == [{"code": "read"}, {"code": "search-type"}]
    assert consent["searchParam"] == [{"name": "patient", "type": "reference"}, {"name": "status", "type": "token"}]
