"""The generated blocks of portal.docs_blocks: the endpoint tables read from the published OpenAPI
documents and the URLconf, and the sandbox's samples and inventory read from its data."""

import html
import json
import re

import pytest

from api import openapi
from api.fhir.render import resource
from api.models import Coverage, Environment, Observation, Patient
from api.seed import seed_fhir_sandbox
from api.synthetic import DEMO_PATIENT_ID
from portal import docs, docs_blocks

pytestmark = pytest.mark.django_db


def text_of(fragment) -> str:
    """What a reader sees: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", str(fragment)))


def document_operations(version):
    document = json.loads(openapi.committed_path(version).read_text(encoding="utf-8"))
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if method in docs_blocks.HTTP_METHODS:
                yield method.upper(), path, operation


# --- workflow-endpoints -------------------------------------------------------------------------------


def test_the_endpoint_table_has_every_operation_of_every_version_with_its_deep_link():
    table = str(docs.BLOCKS["workflow-endpoints"]())
    for version in openapi.VERSIONS:
        for _method, path, operation in document_operations(version):
            tag = operation["tags"][0]
            assert f'href="/api/reference/{version}/#/{tag}/{operation["operationId"]}"' in table, (version, path)
            newest = path.replace(f"/api/{version}/", f"/api/{openapi.VERSIONS[-1]}/")
            assert f"<code>{html.escape(newest)}</code>" in table
    rows = table.count("<tr><td>")
    assert rows == len(
        {(m, docs_blocks.unversioned(p)) for v in openapi.VERSIONS for m, p, _o in document_operations(v)}
    )


def test_every_documented_path_is_served_by_a_view():
    for operation in docs_blocks.published_operations():
        assert docs_blocks.view_class(operation.path) is not None, operation.path


def test_the_scopes_are_the_views_own():
    from api.workflows import visit_api

    by_key = {(op.version, op.method, op.path): op for op in docs_blocks.published_operations()}
    collection = visit_api.versioned_views("v2")["collection"]
    assert by_key[("v2", "POST", "/api/v2/visits")].scopes == tuple(collection.required_scopes["POST"])
    assert by_key[("v2", "GET", "/api/v2/visits")].scopes == ("appointments.read",)
    assert by_key[("v1", "GET", "/api/v1/events")].scopes == ("events.read",)
    assert by_key[("v2", "GET", "/api/v2/token-info")].scopes == ()
    assert by_key[("v2", "POST", "/api/v2/consents")].partner_types == ("provider",)
    table = text_of(docs.BLOCKS["workflow-endpoints"]())
    assert "appointments.write" in table and "any valid token" in table and "for provider organizations" in table


def test_a_published_deprecation_is_shown_beside_the_versions_it_covers():
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import DeprecationFactory

    now = timezone.now()
    DeprecationFactory(path_prefix="v1/visits", sunset_at=now + timedelta(days=200))
    sunset = f"{now + timedelta(days=200):%Y-%m-%d}"
    visits = text_of(docs.BLOCKS["api-reference-visits"]())
    assert visits.count(f"v1 (deprecated, sunset {sunset})") == 4  # the four v1 visits operations
    assert "v2 (" not in visits
    assert "deprecated" not in text_of(docs.BLOCKS["api-reference-events"]())


def test_each_tag_has_a_block_of_its_operations():
    for tag in docs_blocks.published_tags():
        block = str(docs.BLOCKS[f"api-reference-{tag}"]())
        for version in openapi.VERSIONS:
            assert f'href="/api/reference/{version}/#/{tag}"' in block
            for _m, _p, operation in document_operations(version):
                if operation["tags"][0] == tag:
                    assert f"#/{tag}/{operation['operationId']}" in block


def test_the_reference_url_is_swagger_ui_s_deep_link():
    assert docs_blocks.reference_url("v2") == "/api/reference/v2/"
    assert docs_blocks.reference_url("v2", "visits") == "/api/reference/v2/#/visits"
    assert docs_blocks.reference_url("v1", "lab-results", "lab_shares_list_v1") == (
        "/api/reference/v1/#/lab-results/lab_shares_list_v1"
    )


def test_the_workflow_apis_page_shows_the_table(client):
    response = client.get("/docs/workflow-apis/")
    assert response.status_code == 200
    assert 'data-block="workflow-endpoints"' in response.text
    assert "/api/reference/v2/#/visits/visits_schedule_v2" in response.text


# --- sandbox-samples and sandbox-inventory --------------------------------------------------------------


def test_an_empty_sandbox_says_how_to_seed_it():
    for name in ("sandbox-samples", "sandbox-inventory"):
        shown = text_of(docs.BLOCKS[name]())
        assert "seed_sandbox" in shown, name
    response_text = str(docs.page("sandbox").html())
    assert "manage.py seed_sandbox" in text_of(response_text)


@pytest.fixture
def sandbox():
    seed_fhir_sandbox(patients=3)


def test_the_samples_are_the_seeded_resources_as_the_fhir_api_serves_them(sandbox):
    shown = text_of(docs.BLOCKS["sandbox-samples"]())
    patient = Patient.objects.get(id=DEMO_PATIENT_ID)
    assert json.dumps(resource(patient), indent=2, ensure_ascii=False) in shown
    lab = Observation.objects.filter(patient_id=DEMO_PATIENT_ID, category="laboratory").order_by("-effective", "id")[0]
    assert json.dumps(resource(lab), indent=2, ensure_ascii=False) in shown
    coverage = Coverage.objects.get(id="demo-cov-1")
    assert json.dumps(resource(coverage), indent=2, ensure_ascii=False) in shown
    for resource_type in ("Patient", "Observation", "Coverage", "Appointment", "Slot"):
        assert f'"resourceType": "{resource_type}"' in shown
    assert docs.BLOCKS["sandbox-samples"]() == docs.BLOCKS["sandbox-samples"]()  # the same resources every time


def test_the_samples_come_from_the_sandbox_only(sandbox):
    Patient.objects.filter(id=DEMO_PATIENT_ID).update(environment=Environment.PRODUCTION)
    assert "seed_sandbox" in text_of(docs.BLOCKS["sandbox-samples"]())


def test_the_samples_escape_what_the_data_says(sandbox):
    patient = Patient.objects.get(id=DEMO_PATIENT_ID)
    patient.body["name"][0]["family"] = "<script>alert(1)</script>"
    patient.save()
    shown = str(docs.BLOCKS["sandbox-samples"]())
    assert "<script>" not in shown and "alert(1)" in text_of(shown)


def test_the_inventory_counts_the_sandbox_and_names_the_uncovered_patients(sandbox):
    shown = text_of(docs.BLOCKS["sandbox-inventory"]())
    assert re.search(rf"Patient\s*{Patient.objects.count()}\b", shown)
    covered = set(Coverage.objects.values_list("patient_id", flat=True))
    for patient_id in Patient.objects.exclude(id__in=covered).values_list("id", flat=True):
        assert f"Patient/{patient_id}" in shown


def test_the_sandbox_page_renders_with_its_samples(client, sandbox):
    response = client.get("/docs/sandbox/")
    assert response.status_code == 200
    assert 'data-block="sandbox-samples"' in response.text
    assert f"Patient/{DEMO_PATIENT_ID}" in text_of(response.text)
