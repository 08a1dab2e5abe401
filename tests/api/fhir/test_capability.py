"""The CapabilityStatement lists every served type with read, search-type and its search parameters."""

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from api.fhir.resources import TYPES

SERVED = ("Patient", "Practitioner", "Organization", "Observation", "Schedule", "Slot", "Appointment", "Coverage")


@pytest.mark.django_db
def test_metadata_lists_each_type_with_its_parameters(client):
    response = client.get("/fhir/r4/metadata")
    body = response.json()
    CapabilityStatement.model_validate(body)
    resources = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert set(SERVED) <= set(resources)
    for name in SERVED:
        entry = resources[name]
        assert [i["code"] for i in entry["interaction"]] == ["read", "search-type"]
        params = {p["name"]: p for p in entry["searchParam"]}
        assert set(params) == set(TYPES[name].params)
        assert all(p["type"] and p["documentation"] for p in params.values())
        assert "_count" in entry["documentation"]
    observation = {p["name"]: p["type"] for p in resources["Observation"]["searchParam"]}
    assert observation == {
        "_id": "token",
        "patient": "reference",
        "subject": "reference",
        "category": "token",
        "code": "token",
        "date": "date",
    }
    patient = {p["name"]: p["type"] for p in resources["Patient"]["searchParam"]}
    assert {"identifier": "token", "name": "string", "family": "string", "birthdate": "date"}.items() <= patient.items()
    assert {p["name"] for p in resources["Slot"]["searchParam"]} >= {"schedule", "start", "status"}
    assert {p["name"] for p in resources["Schedule"]["searchParam"]} >= {"actor"}
    assert {p["name"] for p in resources["Appointment"]["searchParam"]} >= {"patient", "date", "status"}
    assert {p["name"] for p in resources["Coverage"]["searchParam"]} >= {"patient"}
    # Consent (another module) is still listed, unchanged
    assert "Consent" in resources
