"""Builders shared by the workflow API tests."""

import uuid
from datetime import timedelta

from django.utils import timezone

from api.models import Schedule
from tests.api.fhir import helpers as fhir

VISIT_SCOPES = "launch/patient appointments.read appointments.write"


def key() -> dict:
    return {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}


def post(client, url, raw, body, idempotency_key: str | None = "new", **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}", **extra}
    if idempotency_key == "new":
        headers.update(key())
    elif idempotency_key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = idempotency_key
    return client.post(url, body, content_type="application/json", **headers)


def get(client, url, raw, **params):
    return client.get(url, params, HTTP_AUTHORIZATION=f"Bearer {raw}")


def future(hours: int = 48):
    return timezone.now().replace(microsecond=0) + timedelta(hours=hours)


def bookable(app, patient_id="p1", *, slots=("sl1",), consent=True, environment="sandbox"):
    """A patient, a practitioner's schedule with free future slots, and (by default) the patient's
    consent to appointments for ``app``."""
    fhir.patient(patient_id, environment=environment)
    if not Schedule.objects.filter(id="s1").exists():
        fhir.practitioner("pr1", environment=environment)
        fhir.schedule("s1", "pr1", environment=environment)
    for n, slot_id in enumerate(slots):
        fhir.slot(slot_id, "s1", environment=environment, start=future(48 + n))
    if consent:
        fhir.consent(app, patient_id, scopes=("appointments.read", "appointments.write"))


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json", response["Content-Type"]
    body = response.json()
    assert body["code"] == code, body
    return body
