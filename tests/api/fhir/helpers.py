"""Small builders of clinical-store rows and tokens for the FHIR core tests (no synthetic generator)."""

from datetime import UTC, date, datetime, timedelta

from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from api import models
from consent.models import ConsentGrant
from consent.services import consent_grant
from tests.api.conftest import bearer, make_token
from tests.factories import UserFactory

FHIR = "application/fhir+json"
LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
MRN = "urn:oid:2.16.840.1.113883.4.3.25"
T0 = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)


def _row(model, rid, environment, **fields):
    return model.objects.create(
        id=rid, environment=environment, last_updated=fields.pop("last_updated", timezone.now()), **fields
    )


def patient(
    rid="p1",
    *,
    environment="sandbox",
    family="Smith",
    given="Anna",
    birth=date(1980, 5, 17),
    gender="female",
    mrn=None,
    **fields,
):
    mrn = mrn or f"MRN-{rid}"
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": mrn}],
        "name": [{"family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth.isoformat(),
    }
    return _row(
        models.Patient,
        rid,
        environment,
        identifier_system=MRN,
        identifier_value=mrn,
        family=family,
        given=given,
        name_text=f"{given} {family}".lower(),
        birth_date=birth,
        gender=gender,
        body=body,
        **fields,
    )


def observation(rid, patient_id="p1", *, environment="sandbox", category="laboratory", code="4548-4", effective=T0):
    body = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": effective.isoformat(),
        "valueQuantity": {"value": 5.4, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
    }
    return _row(
        models.Observation,
        rid,
        environment,
        patient_id=patient_id,
        category=category,
        code=code,
        effective=effective,
        body=body,
    )


def practitioner(rid="pr1", *, environment="sandbox", family="House", given="Greg"):
    body = {"resourceType": "Practitioner", "name": [{"family": family, "given": [given]}]}
    return _row(models.Practitioner, rid, environment, family=family, given=given, body=body)


def organization(rid="o1", *, environment="sandbox", name="Riverside Clinic"):
    return _row(models.Organization, rid, environment, name=name, body={"resourceType": "Organization", "name": name})


def schedule(rid="s1", practitioner_id="pr1", *, environment="sandbox"):
    body = {"resourceType": "Schedule", "actor": [{"reference": f"Practitioner/{practitioner_id}"}]}
    return _row(models.Schedule, rid, environment, practitioner_id=practitioner_id, body=body)


def slot(rid, schedule_id="s1", *, environment="sandbox", start=T0, status="free"):
    end = start + timedelta(minutes=20)
    body = {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{schedule_id}"},
        "status": status,
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
    return _row(models.Slot, rid, environment, schedule_id=schedule_id, start=start, end=end, status=status, body=body)


def appointment(rid, patient_id="p1", *, environment="sandbox", start=T0, status="booked"):
    body = {
        "resourceType": "Appointment",
        "status": status,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=20)).isoformat(),
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
    }
    return _row(models.Appointment, rid, environment, patient_id=patient_id, start=start, status=status, body=body)


def coverage(rid, patient_id="p1", *, environment="sandbox", payor="o1"):
    body = {
        "resourceType": "Coverage",
        "status": "active",
        "beneficiary": {"reference": f"Patient/{patient_id}"},
        "payor": [{"reference": f"Organization/{payor}"}],
    }
    return _row(models.Coverage, rid, environment, patient_id=patient_id, payor=payor, status="active", body=body)


# --- tokens and consent -------------------------------------------------------------------------------------


def consent(app, patient_id="p1", scopes=("patient/*.rs",)) -> ConsentGrant:
    return consent_grant(
        patient_id=patient_id, app=app, scopes=list(scopes), channel=ConsentGrant.Channel.CONSENT_SCREEN
    )


def patient_token(app, patient_id="p1", scope="launch/patient patient/*.rs") -> str:
    return make_token(app, scope, user=UserFactory(fhir_patient_id=patient_id))


def user_token(app, scope="user/*.rs") -> str:
    return make_token(app, scope, user=UserFactory())


def system_token(app, scope="system/*.rs") -> str:
    return make_token(app, scope)


def get(client, url, raw, params=None, **extra):
    return client.get(url, params or {}, **bearer(raw), **extra)


def bundle(response, status=200) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == FHIR
    body = response.json()
    Bundle.model_validate(body)  # pure FHIR R4B, every level
    return body


def ids(response) -> list[str]:
    body = bundle(response)
    return [e["resource"]["id"] for e in body.get("entry", []) if e["search"]["mode"] == "match"]


def outcome(response, status: int, code: str, issue: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == FHIR
    body = response.json()
    OperationOutcome.model_validate(body)
    codes = [e["valueCode"] for e in body["extension"] if e["url"].endswith("/problem-code")]
    assert codes == [code], body
    ids_ = [e["valueString"] for e in body["extension"] if e["url"].endswith("/correlation-id")]
    assert ids_ and ids_[0] == response["X-Request-ID"]
    if issue:
        assert body["issue"][0]["code"] == issue
    return body
