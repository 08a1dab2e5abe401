"""POST/GET /api/<version>/eligibility-checks: a patient's coverage checked with a simulated payer, on
their consent to coverage, once per Idempotency-Key; in both API versions."""

import pytest

from api.models import AccessEvent, Coverage, EligibilityCheck
from api.workflows import eligibility
from consent.models import ConsentGrant
from consent.services import consent_revoke
from tests.api.conftest import make_token
from tests.api.fhir import helpers as fhir
from tests.api.workflows.helpers import get, post, problem
from tests.factories import AppFactory, UserFactory

pytestmark = pytest.mark.django_db

SCOPES = "launch/patient eligibility.read"
V1 = "/api/v1/eligibility-checks"
V2 = "/api/v2/eligibility-checks"


def patient_token(app, patient_id="p1", scope=SCOPES):
    return make_token(app, scope, user=UserFactory(fhir_patient_id=patient_id))


def insured(app, patient_id="p1", *, coverages=("c1",), consent=True, environment="sandbox"):
    """A patient with active coverages paid by Organization/payer1 (Acme Health) and, by default, their
    consent to coverage for ``app``."""
    fhir.patient(patient_id, environment=environment)
    if not fhir.models.Organization.objects.filter(id="payer1").exists():
        fhir.organization("payer1", environment=environment, name="Acme Health")
    for coverage_id in coverages:
        fhir.coverage(coverage_id, patient_id, environment=environment, payor="payer1")
    if consent:
        fhir.consent(app, patient_id, scopes=("eligibility.read",))


def check(client, raw, url=V1, patient="Patient/p1", coverage="Coverage/c1", service_type="office_visit", **kwargs):
    body = {"patient": patient, "service_type": service_type}
    if coverage is not None:
        body["coverage"] = coverage
    return post(client, url, raw, body, **kwargs)


def cancel(coverage_id):
    Coverage.objects.filter(id=coverage_id).update(status="cancelled")


def test_an_active_coverage_is_eligible_and_the_check_is_recorded_and_audited(client):
    app = AppFactory()
    insured(app)
    raw = patient_token(app)
    response = check(client, raw)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("elig-")
    assert response["Location"] == f"http://testserver/api/v1/eligibility-checks/{body['id']}"
    assert (body["outcome"], body["coverage"], body["payer"], body["service_type"]) == (
        "eligible",
        "Coverage/c1",
        "Organization/payer1",
        "office_visit",
    )
    assert body["patient"] == {"id": "p1", "reference": "Patient/p1"}
    details = body["details"]
    assert (details["payer_name"], details["coverage_status"]) == ("Acme Health", "active")
    assert details["plan"] in eligibility.PLANS
    assert details["copay"]["amount"] in eligibility.COPAYS["office_visit"] and details["copay"]["currency"] == "USD"
    assert 0 <= details["deductible"]["remaining"] <= details["deductible"]["amount"]

    row = EligibilityCheck.objects.get(id=body["id"])
    grant = ConsentGrant.objects.get(app=app, patient_id="p1")
    assert (row.app, row.organization, row.environment, row.consent_grant_id) == (
        app,
        app.organization,
        "sandbox",
        grant.pk,
    )
    assert (row.patient_id, row.coverage_id, row.outcome, row.details) == ("p1", "c1", "eligible", details)
    audit = AccessEvent.objects.get()
    assert (audit.resource_type, audit.resource_id, audit.action, audit.outcome, audit.consent_grant_id) == (
        "Coverage",
        "c1",
        "read",
        "allowed",
        grant.pk,
    )
    detail = get(client, response["Location"], raw)
    assert detail.status_code == 200 and detail.json() == body


def test_the_payer_s_answer_is_deterministic_per_coverage_and_service(client):
    app = AppFactory()
    insured(app)
    raw = patient_token(app)
    first = check(client, raw, service_type="lab").json()
    second = check(client, raw, service_type="lab").json()
    assert first["id"] != second["id"] and first["details"] == second["details"]
    imaging = check(client, raw, service_type="imaging").json()
    assert imaging["details"]["plan"] == first["details"]["plan"]  # the plan is the coverage's
    assert imaging["details"]["member_id"] == first["details"]["member_id"]


def test_a_cancelled_coverage_is_not_eligible(client):
    app = AppFactory()
    insured(app)
    cancel("c1")
    body = check(client, patient_token(app)).json()
    assert body["outcome"] == "not_eligible"
    assert body["details"]["coverage_status"] == "cancelled" and "plan" not in body["details"]
    assert EligibilityCheck.objects.get().outcome == "not_eligible"


def test_a_coverage_without_a_payer_is_unknown(client):
    app = AppFactory()
    insured(app)
    Coverage.objects.filter(id="c1").update(payor="")
    body = check(client, patient_token(app)).json()
    assert (body["outcome"], body["payer"]) == ("unknown", "")


def test_without_a_coverage_the_patient_s_active_one_is_checked(client):
    app = AppFactory()
    insured(app, coverages=("old", "current"))
    cancel("old")
    raw = patient_token(app)
    response = check(client, raw, coverage=None)
    assert response.status_code == 201, response.content
    assert response.json()["coverage"] == "Coverage/current"
    cancel("current")
    body = problem(check(client, raw, coverage=None, service_type="pharmacy"), 404, "not_found")
    assert "no active Coverage" in body["detail"]


def test_the_payer_takes_its_time_and_the_check_records_it(client, settings):
    settings.ELIGIBILITY_PAYER_LATENCY_MS = 30
    app = AppFactory()
    insured(app)
    body = check(client, patient_token(app)).json()
    assert body["payer_latency_ms"] >= 30
    assert EligibilityCheck.objects.get().payer_latency_ms == body["payer_latency_ms"]


def test_a_retry_with_the_same_key_returns_the_first_answer_without_asking_the_payer_again(client, monkeypatch):
    app = AppFactory()
    insured(app)
    raw = patient_token(app)
    asked = []
    real = eligibility._payer_answer
    monkeypatch.setattr(eligibility, "_payer_answer", lambda *a, **kw: asked.append(1) or real(*a, **kw))
    first = check(client, raw, idempotency_key="check-once")
    again = check(client, raw, idempotency_key="check-once")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert again["Location"] == first["Location"]
    assert (len(asked), EligibilityCheck.objects.count()) == (1, 1)
    problem(check(client, raw, idempotency_key="check-once", service_type="lab"), 422, "idempotency_key_reused")


def test_without_an_idempotency_key_or_with_a_malformed_body_nothing_is_checked(client):
    app = AppFactory()
    insured(app)
    raw = patient_token(app)
    problem(check(client, raw, idempotency_key=None), 400, "idempotency_key_required")
    malformed = client.post(
        V1, "{not json", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_IDEMPOTENCY_KEY="k"
    )
    problem(malformed, 400, "malformed_request")
    body = problem(check(client, raw, service_type="dental", patient="Group/x"), 400, "validation_error")
    assert {e["field"] for e in body["errors"]} == {"service_type", "patient"}
    assert not EligibilityCheck.objects.exists()


def test_without_the_scope_it_is_refused(client):
    app = AppFactory()
    insured(app)
    raw = patient_token(app, scope="launch/patient appointments.read")
    body = problem(check(client, raw), 403, "insufficient_scope")
    assert body["missing_scopes"] == ["eligibility.read"]
    problem(get(client, V1, raw), 403, "insufficient_scope")


def test_without_consent_to_coverage_nothing_is_checked_and_the_refusal_is_audited(client):
    app = AppFactory()
    insured(app, consent=False)
    fhir.consent(app, "p1", scopes=("appointments.read",))  # consent, but not to coverage
    problem(check(client, patient_token(app)), 403, "consent_required")
    assert not EligibilityCheck.objects.exists()
    refused = AccessEvent.objects.get()
    assert (refused.outcome, refused.resource_type, refused.resource_id, refused.refusal_code) == (
        "refused",
        "Coverage",
        "c1",
        "consent_required",
    )


def test_a_patient_token_checks_its_own_patient_only(client):
    app = AppFactory()
    insured(app)
    insured(app, "p2", coverages=("c2",))
    problem(check(client, patient_token(app), patient="Patient/p2", coverage="Coverage/c2"), 403, "forbidden")
    assert not EligibilityCheck.objects.exists()


def test_a_coverage_of_another_patient_unknown_or_in_another_environment_is_not_found(client):
    app = AppFactory()
    insured(app)
    insured(app, "p2", coverages=("c2",), consent=False)
    fhir.coverage("prod-c1", "p1", environment="production")
    raw = patient_token(app)
    for coverage in ("Coverage/c2", "Coverage/nope", "Coverage/prod-c1"):
        problem(check(client, raw, coverage=coverage), 404, "not_found")
    assert not EligibilityCheck.objects.exists()


def test_another_app_s_check_is_not_found(client):
    app, other = AppFactory(), AppFactory()
    insured(app)
    fhir.consent(other, "p1", scopes=("eligibility.read",))  # consent is not enough
    made = check(client, patient_token(app)).json()
    other_raw = patient_token(other)
    problem(get(client, f"{V1}/{made['id']}", other_raw), 404, "not_found")
    assert get(client, V1, other_raw).json()["data"] == []


def test_v1_and_v2_serve_the_same_checks_and_lists_page_newest_first(client):
    app = AppFactory()
    insured(app)
    raw = patient_token(app)
    ids = [check(client, raw, url=url).json()["id"] for url in (V1, V2, V1)]
    for url in (V1, V2):
        first = get(client, url, raw, limit=2).json()
        assert [c["id"] for c in first["data"]] == ids[::-1][:2]
        second = client.get(first["next"], HTTP_AUTHORIZATION=f"Bearer {raw}").json()
        assert [c["id"] for c in second["data"]] == [ids[0]] and second["next"] is None
    assert get(client, f"{V2}/{ids[0]}", raw).json() == get(client, f"{V1}/{ids[0]}", raw).json()
    assert AccessEvent.objects.filter(action="search", resource_type="Coverage", outcome="allowed").count() == 4


def test_revoked_consent_hides_the_checks(client):
    app = AppFactory()
    insured(app)
    made = check(client, patient_token(app)).json()
    consent_revoke(grant=ConsentGrant.objects.get(app=app, status="active"), actor="patient", channel="my-apps")
    raw = make_token(app, "eligibility.read")  # a system token: the app itself
    assert get(client, V1, raw).json()["data"] == []
    problem(get(client, f"{V1}/{made['id']}", raw), 403, "consent_revoked")
