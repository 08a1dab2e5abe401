"""Real FHIR clients against a live server: fhirpy pages through a whole result set by the Bundle's
next links; a SMART client (fhirclient) discovers the server from /fhir/r4/metadata and reads a
patient with its access token. Every response is validated with fhir.resources R4B."""

from datetime import timedelta

import pytest
import requests
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhirclient import client as smart_client
from fhirclient.models.observation import Observation as SmartObservation
from fhirclient.models.patient import Patient as SmartPatient
from fhirclient.server import FHIRNotFoundException
from fhirpy import SyncFHIRClient

from tests.api.fhir import helpers as h
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def base(live_server, settings):
    settings.ALLOWED_HOSTS = ["*"]
    return f"{live_server.url}/fhir/r4"


def test_fhirpy_pages_through_a_whole_result_set(base):
    app = AppFactory()
    h.patient("p1")
    for n in range(23):
        h.observation(f"ob{n:02d}", "p1", effective=h.T0 + timedelta(hours=n))
    h.observation("other", "p2")
    h.consent(app, "p1")
    raw = h.patient_token(app, "p1")
    fhir = SyncFHIRClient(base, authorization=f"Bearer {raw}")

    every = fhir.resources("Observation").search(patient="p1").sort("-date").limit(5).fetch_all()
    assert [o["id"] for o in every] == [f"ob{n:02d}" for n in reversed(range(23))]
    for resource in every:
        Observation.model_validate(resource.serialize())
    assert fhir.resources("Observation").search(patient="p1").count() == 23
    assert fhir.resources("Observation").search(patient="p1", date="ge2024-01-02T04:00:00Z").count() == 3

    # the pages themselves, as fhirpy requested them: valid searchsets with absolute next links
    url, pages = f"{base}/Observation?patient=p1&_sort=-date&_count=10", 0
    while url:
        response = requests.get(url, headers={"Authorization": f"Bearer {raw}"}, timeout=10)
        assert response.headers["Content-Type"] == h.FHIR
        body = response.json()
        Bundle.model_validate(body)
        url = next((link["url"] for link in body["link"] if link["relation"] == "next"), None)
        assert url is None or url.startswith(base)
        pages += 1
    assert pages == 3


def test_a_smart_client_discovers_the_server_and_reads_a_patient(base):
    app = AppFactory()
    h.patient("p1", family="Smith", given="Anna")
    h.observation("ob1", "p1")
    h.consent(app, "p1")
    raw = h.patient_token(app, "p1")

    metadata = requests.get(f"{base}/metadata", timeout=10).json()
    CapabilityStatement.model_validate(metadata)

    smart = smart_client.FHIRClient(settings={"app_id": app.client_id, "api_base": base})
    assert smart.prepare() is False  # not ready without a token, but discovery found the OAuth endpoints
    capability = smart.server.capabilityStatement
    assert {r.type for r in capability.rest[0].resource} >= {"Patient", "Observation", "Slot"}
    assert smart.server.auth.auth_type == "oauth2"
    assert smart.server.auth._authorize_uri.endswith("/oauth/authorize/")

    smart.server.auth.access_token = raw  # what the authorization flow would have stored
    assert smart.ready
    patient = SmartPatient.read("p1", smart.server)
    assert patient.name[0].family == "Smith"
    Patient.model_validate(patient.as_json())

    found = list(SmartObservation.where(struct={"patient": "p1"}).perform_resources_iter(smart.server))
    assert [o.id for o in found] == ["ob1"]

    with pytest.raises(FHIRNotFoundException):
        SmartPatient.read("p2", smart.server)
