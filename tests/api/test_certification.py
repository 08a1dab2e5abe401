"""Certification runs end to end: the sample partner app (examples/sample_app) talks real HTTP to a live
server, a patient revokes its access, a run checks the recorded behaviour and the live webhook endpoint;
the sample app passes every check and its misbehaving twin fails exactly the five it is built to fail."""

import pytest

from api.certification import CHECK_KEYS, certification_run_request
from consent.services import active_grant, consent_revoke_by_patient
from examples.misbehaving_app import REDIRECT_URI as MISBEHAVING_REDIRECT_URI
from examples.misbehaving_app import MisbehavingApp
from examples.sample_app import AppSettings, SampleApp, SandboxPatient, WebhookReceiver
from partners.certification_models import CertificationRun
from partners.models import App
from tests.api.fhir import helpers as fhir
from tests.factories import DEFAULT_PASSWORD, AppFactory, UserFactory, WebhookSubscriptionFactory, member

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SECRET = "certification-client-secret-0123456789"
SAMPLE_REDIRECT_URI = "https://sample-app.example/callback"
PATIENT = "p-cert"
MISBEHAVING_FAILS = {
    "least_privilege_scopes",
    "honours_retry_after",
    "webhook_signature",
    "stops_after_revocation",
    "https_redirect_uris",
}


@pytest.fixture
def sandbox(live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    settings.RATE_LIMITS = True  # the rate-limit step needs its 429
    settings.SANDBOX_TRACE = True  # what the run reads
    settings.WEBHOOKS_ALLOW_LOOPBACK = True  # the apps' webhook receivers listen on 127.0.0.1
    settings.WEBHOOK_CONNECT_TIMEOUT = 1
    settings.WEBHOOK_TOTAL_TIMEOUT = 3
    return live_server.url


@pytest.fixture
def patient_user():
    fhir.patient(PATIENT)
    fhir.observation("o-cert-1", PATIENT)
    return UserFactory(email="cert-patient@example.com", fhir_patient_id=PATIENT)


def register(redirect_uri: str):
    """An organization with one sandbox app, its fhir_read burst down to 1 a second so that a 429 is
    quick to provoke however slow the machine (and nothing else near its limit)."""
    owner = member()
    organization = owner.organization
    organization.rate_quota_overrides = {
        "fhir_read": {
            "burst": 1,
            "per_minute": 10_000,
            "per_token_per_minute": 10_000,
            "per_patient_per_minute": 10_000,
        }
    }
    organization.save()
    app = AppFactory(
        organization=organization,
        redirect_uris=redirect_uri,
        client_secret=SECRET,
        grant_types=[App.GRANT_AUTHORIZATION_CODE],
    )
    return owner, app


def certify(app_class, redirect_uri, sandbox, patient_user):
    """Register, drive the app's flow, revoke the patient's consent, let the app try to go on, then
    run certification while its webhook receiver listens. Returns (run, the sample app, its flow)."""
    owner, app = register(redirect_uri)
    settings = AppSettings(sandbox, app.client_id, SECRET, redirect_uri)
    sample = app_class(settings, user_agent=SandboxPatient(sandbox, patient_user.email, DEFAULT_PASSWORD))
    with WebhookReceiver(sample) as receiver:
        subscription = WebhookSubscriptionFactory(app=app, url=receiver.url, event_types=["consent.revoked"])
        settings.webhook_secret = subscription.secret
        flow = sample.run()
        consent_revoke_by_patient(grant=active_grant(patient_id=PATIENT, app=app), user=patient_user)
        for _ in range(3):
            sample.read_record()
        run = certification_run_request(app=app, user=owner.user)  # the task runs (eagerly) at commit
    run.refresh_from_db()
    return run, sample, flow


def results_of(run) -> dict:
    return {result.key: result for result in run.results.all()}


def test_the_sample_app_passes_every_check_with_evidence(sandbox, patient_user):
    run, sample, flow = certify(SampleApp, SAMPLE_REDIRECT_URI, sandbox, patient_user)

    assert flow == {"first": {"patient": 200, "observations": 200}, "second": {"patient": 200, "observations": 200},
                    "rate_limited": True}  # fmt: skip
    assert PATIENT in sample.access_ended  # it learned of the revocation (the webhook told it)
    # The revocation, then the certification's correctly signed test event (the badly signed one was refused).
    assert [e["type"] for e in sample.events] == ["consent.revoked", "webhook.test"]
    results = results_of(run)
    failed = {key: result.summary for key, result in results.items() if not result.passed}
    assert failed == {}
    assert run.status == CertificationRun.Status.PASSED
    assert list(results) == list(CHECK_KEYS)
    for key, result in results.items():
        assert result.docs_url == f"/docs/certification/#{key}"
        assert result.summary
    assert "PKCE S256" in results["pkce_authorization_code"].summary
    assert "Used: launch/patient offline_access patient/Observation.rs patient/Patient.rs" in (
        results["least_privilege_scopes"].evidence
    )
    assert "waited out Retry-After" in results["honours_retry_after"].summary
    assert "Retry-After 1 s: next call" in results["honours_retry_after"].evidence[0]
    assert results["webhook_signature"].evidence == [
        f"{sample_webhook_url(run)}: correctly signed test event → 204; bad signature → 400"
    ]
    assert f"Patient/{PATIENT} revoked at" in results["stops_after_revocation"].evidence[0]
    assert "no call since" in results["stops_after_revocation"].evidence[0]
    assert results["https_redirect_uris"].summary == "The one redirect URI uses https."


def sample_webhook_url(run) -> str:
    return run.app.webhook_subscriptions.get().url


def test_the_misbehaving_app_fails_exactly_the_checks_it_is_built_to_fail(sandbox, patient_user):
    run, _sample, _flow = certify(MisbehavingApp, MISBEHAVING_REDIRECT_URI, sandbox, patient_user)

    results = results_of(run)
    assert {key for key, result in results.items() if not result.passed} == MISBEHAVING_FAILS
    assert run.status == CertificationRun.Status.FAILED
    assert "patient/Appointment.rs patient/Coverage.rs" in results["least_privilege_scopes"].summary
    assert "before it ran out" in results["honours_retry_after"].evidence[0]
    assert "accepted an event with a bad signature (200)" in results["webhook_signature"].summary
    revocation = results["stops_after_revocation"].evidence[0]
    assert f"Patient/{PATIENT} revoked at" in revocation
    assert "401 invalid_token" in revocation  # its revoked token, still attributed to it
    assert MISBEHAVING_REDIRECT_URI in results["https_redirect_uris"].summary


def test_a_second_run_while_one_is_open_is_refused(db):
    from partners.certification_services import certification_run_start
    from partners.exceptions import InvalidState

    owner = member()
    app = AppFactory(organization=owner.organization)
    first = certification_run_start(app=app, user=owner.user)
    with pytest.raises(InvalidState, match="already queued or running"):
        certification_run_start(app=app, user=owner.user)
    CertificationRun.objects.filter(pk=first.pk).update(status=CertificationRun.Status.RUNNING)
    with pytest.raises(InvalidState, match="already queued or running"):
        certification_run_start(app=app, user=owner.user)
    assert CertificationRun.objects.filter(app=app).count() == 1
