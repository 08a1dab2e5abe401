"""POST/GET /api/<version>/lab-results/.../shares and revoke: one lab result shared with another partner
organization, on the patient's consent, for a bounded time; in both API versions."""

from datetime import timedelta

import pytest
from django.utils import timezone

from api.models import AccessEvent, LabResultShare
from consent.models import ConsentGrant
from consent.services import consent_revoke
from partners.models import Organization, OutboxEvent
from tests.api.conftest import make_token
from tests.api.fhir import helpers as fhir
from tests.api.workflows.helpers import get, post, problem
from tests.factories import AppFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

SCOPES = "launch/patient lab_results.share lab_results.read"
V1 = "/api/v1/lab-results"
V2 = "/api/v2/lab-results"


def patient_token(app, patient_id="p1", scope=SCOPES):
    return make_token(app, scope, user=UserFactory(fhir_patient_id=patient_id))


def shareable(app, patient_id="p1", *, observations=("lab1",), consent=True):
    """A patient with laboratory results and (by default) their consent to lab results for ``app``, and a
    partner organization to share with (slug ``second-opinion``)."""
    fhir.patient(patient_id)
    for observation_id in observations:
        fhir.observation(observation_id, patient_id)
    if consent:
        fhir.consent(app, patient_id, scopes=("lab_results.share", "lab_results.read"))
    if not Organization.objects.filter(slug="second-opinion").exists():
        OrganizationFactory(slug="second-opinion", name="Second Opinion Labs")


def in_days(days: float) -> str:
    return (timezone.now() + timedelta(days=days)).isoformat()


def share(client, raw, observation="lab1", url=V1, recipient="second-opinion", expires_at=None, **kwargs):
    body = {"recipient": recipient, "expires_at": expires_at or in_days(30), "purpose": "Second opinion"}
    return post(client, f"{url}/{observation}/shares", raw, body, **kwargs)


def test_sharing_creates_the_share_announces_and_audits_it(client):
    app = AppFactory()
    shareable(app)
    raw = patient_token(app)
    expires_at = in_days(30)
    response = share(client, raw, expires_at=expires_at)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("share-")
    assert response["Location"] == f"http://testserver/api/v1/lab-results/shares/{body['id']}"
    assert response["Cache-Control"] == "no-store"
    assert (body["status"], body["observation"], body["recipient"], body["purpose"]) == (
        "active",
        "Observation/lab1",
        "second-opinion",
        "Second opinion",
    )
    assert body["patient"] == {"id": "p1", "reference": "Patient/p1"}
    assert body["revoked_at"] is None

    row = LabResultShare.objects.get(id=body["id"])
    grant = ConsentGrant.objects.get(app=app, patient_id="p1")
    assert (row.app, row.organization, row.recipient.slug, row.environment) == (
        app,
        app.organization,
        "second-opinion",
        "sandbox",
    )
    assert (row.observation_id, row.patient_id, row.consent_grant_id, row.status) == ("lab1", "p1", grant.pk, "active")
    assert row.expires_at.isoformat() == expires_at and row.starts_at == row.created_at

    event = OutboxEvent.objects.get(type="lab_result.shared")
    assert (event.app, event.organization, event.patient_id) == (app, app.organization, "p1")
    assert event.payload == {
        "share_id": body["id"],
        "observation": "Observation/lab1",
        "patient": "Patient/p1",
        "recipient": "second-opinion",
        "purpose": row.purpose,
        "expires_at": expires_at,
    }
    audit = AccessEvent.objects.get(outcome="allowed")
    assert (audit.resource_type, audit.resource_id, audit.patient_id, audit.action, audit.consent_grant_id) == (
        "Observation",
        "lab1",
        "p1",
        "create",
        grant.pk,
    )

    detail = get(client, response["Location"], raw)
    assert detail.status_code == 200, detail.content
    assert detail.json() == {**body, "consent_active": True}


def test_v2_serves_the_same_endpoints_and_shape(client):
    app = AppFactory()
    shareable(app, observations=("lab1", "lab2"))
    raw = patient_token(app)
    v2 = share(client, raw, url=V2)
    assert v2.status_code == 201, v2.content
    assert v2["Location"].endswith(f"/api/v2/lab-results/shares/{v2.json()['id']}")
    v1 = share(client, raw, observation="lab2").json()
    assert set(v1) == set(v2.json())
    for base in (V1, V2):
        assert [s["id"] for s in get(client, f"{base}/shares", raw).json()["data"]] == [v1["id"], v2.json()["id"]]
    revoked = post(client, f"{V2}/shares/{v1['id']}/revoke", raw, {})
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"


def test_without_the_share_scope_it_is_refused(client):
    app = AppFactory()
    shareable(app)
    problem(share(client, patient_token(app, scope="launch/patient lab_results.read")), 403, "insufficient_scope")
    lister = patient_token(app, scope="launch/patient lab_results.share")
    body = problem(get(client, f"{V1}/shares", lister), 403, "insufficient_scope")
    assert body["missing_scopes"] == ["lab_results.read"]
    assert not LabResultShare.objects.exists()


@pytest.mark.parametrize("scopes", [None, ("appointments.read",)], ids=["no consent", "consent to appointments only"])
def test_without_consent_to_lab_results_nothing_is_shared(client, scopes):
    app = AppFactory()
    shareable(app, consent=False)
    if scopes:
        fhir.consent(app, "p1", scopes=scopes)
    problem(share(client, patient_token(app)), 403, "consent_required")
    assert not LabResultShare.objects.exists()
    assert not OutboxEvent.objects.filter(type__startswith="lab_result.").exists()
    refused = AccessEvent.objects.get()
    assert (refused.outcome, refused.action, refused.resource_id, refused.refusal_code) == (
        "refused",
        "create",
        "lab1",
        "consent_required",
    )


def test_consent_to_all_observations_covers_lab_results(client):
    app = AppFactory()
    shareable(app, consent=False)
    fhir.consent(app, "p1", scopes=("patient/Observation.rs",))
    assert share(client, patient_token(app)).status_code == 201


def test_a_patient_token_shares_its_own_patient_s_results_only(client):
    app = AppFactory()
    shareable(app)
    shareable(app, "p2", observations=("lab-of-p2",))
    problem(share(client, patient_token(app), observation="lab-of-p2"), 403, "forbidden")
    assert not LabResultShare.objects.exists()


def test_a_non_lab_unknown_or_other_environment_observation_is_not_found(client):
    app = AppFactory()
    shareable(app)
    fhir.observation("bp1", "p1", category="vital-signs", code="85354-9")
    fhir.observation("prod-lab", "p1", environment="production")
    raw = patient_token(app)
    for observation in ("bp1", "nope", "prod-lab"):
        problem(share(client, raw, observation=observation), 404, "not_found")
    assert not LabResultShare.objects.exists()


@pytest.mark.parametrize("recipient", ["unknown-org", "own", "suspended", "Not A Slug!"])
def test_the_recipient_must_be_another_active_partner(client, recipient):
    app = AppFactory()
    shareable(app)
    if recipient == "own":
        recipient = app.organization.slug
    elif recipient == "suspended":
        OrganizationFactory(slug="suspended", status=Organization.Status.SUSPENDED)
    body = problem(share(client, patient_token(app), recipient=recipient), 400, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["recipient"]
    assert not LabResultShare.objects.exists()


@pytest.mark.parametrize("expires_at", [-1, 366], ids=["past", "beyond a year"])
def test_the_end_must_be_in_the_future_and_within_a_year_and_every_bad_field_is_listed(client, expires_at):
    app = AppFactory()
    shareable(app)
    raw = patient_token(app)
    body = problem(share(client, raw, expires_at=in_days(expires_at), recipient="nobody"), 400, "validation_error")
    assert {e["field"] for e in body["errors"]} == {"expires_at", "recipient"}
    assert share(client, raw, expires_at=in_days(364)).status_code == 201


def test_missing_fields_are_listed(client):
    app = AppFactory()
    shareable(app)
    body = problem(post(client, f"{V1}/lab1/shares", patient_token(app), {"purpose": "x"}), 400, "validation_error")
    assert {e["field"] for e in body["errors"]} == {"recipient", "expires_at"}


def test_a_retry_with_the_same_key_returns_the_same_share(client):
    app = AppFactory()
    shareable(app)
    raw = patient_token(app)
    expires_at = in_days(10)
    first = share(client, raw, expires_at=expires_at, idempotency_key="share-once")
    again = share(client, raw, expires_at=expires_at, idempotency_key="share-once")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true" and again["Location"] == first["Location"]
    assert LabResultShare.objects.count() == 1
    assert OutboxEvent.objects.filter(type="lab_result.shared").count() == 1


def test_without_an_idempotency_key_or_with_a_malformed_body_nothing_is_shared(client):
    app = AppFactory()
    shareable(app)
    raw = patient_token(app)
    problem(share(client, raw, idempotency_key=None), 400, "idempotency_key_required")
    malformed = client.post(
        f"{V1}/lab1/shares",
        '{"recipient": "second-opinion",',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    problem(malformed, 400, "malformed_request")
    assert not LabResultShare.objects.exists()


def test_revoking_ends_the_share_once(client):
    app = AppFactory()
    shareable(app)
    raw = patient_token(app)
    made = share(client, raw).json()
    url = f"{V1}/shares/{made['id']}/revoke"
    response = post(client, url, raw, {}, idempotency_key="revoke-1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "revoked" and body["revoked_at"]
    row = LabResultShare.objects.get(id=made["id"])
    assert (row.status, row.revoked_at is not None) == ("revoked", True)
    event = OutboxEvent.objects.get(type="lab_result.share_revoked")
    assert (event.payload["share_id"], event.payload["recipient"], event.patient_id) == (
        made["id"],
        "second-opinion",
        "p1",
    )
    audit = AccessEvent.objects.get(action="update")
    assert (audit.resource_type, audit.resource_id, audit.outcome) == ("Observation", "lab1", "allowed")

    replay = post(client, url, raw, {}, idempotency_key="revoke-1")
    assert replay.status_code == 200 and replay["Idempotent-Replayed"] == "true"
    body = problem(post(client, url, raw, {}), 409, "share_not_revocable")
    assert body["share_status"] == "revoked"
    assert OutboxEvent.objects.filter(type="lab_result.share_revoked").count() == 1
    problem(post(client, url, raw, {}, idempotency_key=None), 400, "idempotency_key_required")


def test_a_share_past_its_end_reads_expired_and_cannot_be_revoked(client):
    app = AppFactory()
    shareable(app, observations=("lab1", "lab2"))
    raw = patient_token(app)
    old = share(client, raw).json()
    current = share(client, raw, observation="lab2").json()
    LabResultShare.objects.filter(id=old["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert get(client, f"{V1}/shares/{old['id']}", raw).json()["status"] == "expired"
    assert LabResultShare.objects.get(id=old["id"]).status == "active"  # computed, never stored
    body = problem(post(client, f"{V1}/shares/{old['id']}/revoke", raw, {}), 409, "share_not_revocable")
    assert body["share_status"] == "expired"

    def listed(**params):
        return [s["id"] for s in get(client, f"{V1}/shares", raw, **params).json()["data"]]

    assert listed(status="expired") == [old["id"]]
    assert listed(status="active") == [current["id"]]
    assert listed(status="revoked") == []
    assert listed(observation="Observation/lab2") == [current["id"]]
    problem(get(client, f"{V1}/shares", raw, status="gone"), 400, "validation_error")


def test_revoked_consent_leaves_the_share_listed_but_not_counting_and_still_revocable(client):
    app = AppFactory()
    shareable(app)
    made = share(client, patient_token(app)).json()
    consent_revoke(grant=ConsentGrant.objects.get(app=app, status="active"), actor="patient", channel="my-apps")
    raw = make_token(app, "lab_results.read lab_results.share")  # a system token: the app itself
    detail = get(client, f"{V1}/shares/{made['id']}", raw).json()
    assert (detail["status"], detail["consent_active"]) == ("active", False)
    assert [s["id"] for s in get(client, f"{V1}/shares", raw).json()["data"]] == [made["id"]]
    assert "consent_active" not in get(client, f"{V1}/shares", raw).json()["data"][0]
    revoked = post(client, f"{V1}/shares/{made['id']}/revoke", raw, {})
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"


def test_another_app_s_share_is_not_found(client):
    app, other = AppFactory(), AppFactory()
    shareable(app)
    fhir.consent(other, "p1", scopes=("lab_results.share", "lab_results.read"))  # consent is not enough
    made = share(client, patient_token(app)).json()
    other_raw = patient_token(other)
    problem(get(client, f"{V1}/shares/{made['id']}", other_raw), 404, "not_found")
    problem(post(client, f"{V1}/shares/{made['id']}/revoke", other_raw, {}), 404, "not_found")
    assert get(client, f"{V1}/shares", other_raw).json()["data"] == []
    assert LabResultShare.objects.get().status == "active"


def test_a_patient_token_lists_its_own_patient_s_shares_only(client):
    app = AppFactory()
    shareable(app)
    shareable(app, "p2", observations=("lab-of-p2",))
    mine = share(client, patient_token(app)).json()
    theirs = share(client, patient_token(app, "p2"), observation="lab-of-p2").json()
    raw = patient_token(app)
    assert [s["id"] for s in get(client, f"{V1}/shares", raw).json()["data"]] == [mine["id"]]
    problem(get(client, f"{V1}/shares/{theirs['id']}", raw), 404, "not_found")


def test_the_list_pages_by_cursor_newest_first(client):
    app = AppFactory()
    shareable(app, observations=("a1", "a2", "a3"))
    raw = patient_token(app)
    ids = [share(client, raw, observation=o).json()["id"] for o in ("a1", "a2", "a3")]
    first = get(client, f"{V1}/shares", raw, limit=2).json()
    assert [s["id"] for s in first["data"]] == ids[::-1][:2]
    second = client.get(first["next"], HTTP_AUTHORIZATION=f"Bearer {raw}").json()
    assert [s["id"] for s in second["data"]] == [ids[0]] and second["next"] is None
    problem(get(client, f"{V1}/shares", raw, cursor="x" + first["next_cursor"]), 400, "malformed_request")


def test_a_cursor_of_another_list_is_refused(client):
    app = AppFactory()
    shareable(app, observations=("a1", "a2"))
    raw = patient_token(app)
    for observation in ("a1", "a2"):
        share(client, raw, observation=observation)
    cursor = get(client, f"{V1}/shares", raw, limit=1).json()["next_cursor"]
    eligibility_raw = patient_token(app, scope="launch/patient eligibility.read")
    fhir.consent(app, "p1", scopes=("lab_results.share", "lab_results.read", "eligibility.read"))
    problem(get(client, "/api/v1/eligibility-checks", eligibility_raw, cursor=cursor), 400, "malformed_request")


def test_a_provider_s_backend_service_shares_only_on_the_patient_s_own_consent(client):
    from consent.models import CareRelationship

    provider = OrganizationFactory(partner_type=Organization.PartnerType.PROVIDER)
    app = AppFactory(organization=provider)
    shareable(app, consent=False)
    CareRelationship.objects.create(organization=provider, patient_id="p1")
    raw = make_token(app, "lab_results.share")  # reaches its own patients without their consent...
    body = problem(share(client, raw), 403, "consent_required")  # ...but handing a result on is theirs to allow
    assert "own consent" in body["detail"]
    assert not LabResultShare.objects.exists()
    grant = fhir.consent(app, "p1", scopes=("lab_results.share",))
    response = share(client, raw)
    assert response.status_code == 201, response.content
    assert LabResultShare.objects.get().consent_grant_id == grant.pk
