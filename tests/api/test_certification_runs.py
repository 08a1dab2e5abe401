"""Certification runs without a live server: who may start one, one at a time, what a crash leaves,
and the checks' verdicts on recorded behaviour built by hand."""

from datetime import timedelta

import pytest
from django.utils import timezone

from api import certification
from api.certification import Window, certification_run_execute, certification_run_request
from consent.models import ConsentGrant
from partners.certification_models import CertificationRun, SandboxTrace
from partners.certification_services import STALE_AFTER, certification_run_start
from partners.exceptions import InvalidState, NotPermitted
from partners.models import App, Membership
from partners.sandbox_trace import sandbox_trace_record
from tests.api.fhir import helpers as fhir
from tests.factories import AppFactory, OrganizationFactory, member, tier

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return member()


@pytest.fixture
def app(owner):
    return AppFactory(organization=owner.organization)


NOW = {"at": None}


@pytest.fixture(autouse=True)
def _now():
    NOW["at"] = timezone.now()  # one moment per test, so "n seconds ago" lines up across rows


def window() -> Window:
    return Window(since=NOW["at"] - timedelta(days=14), now=NOW["at"], run_id=1)


def trace(app, kind=SandboxTrace.Kind.API_CALL, *, seconds_ago: float = 60, **fields):
    sandbox_trace_record(app_id=app.pk, kind=kind, at=NOW["at"] - timedelta(seconds=seconds_ago), **fields)


# --- starting and running -----------------------------------------------------------------------------


def test_a_run_is_queued_then_run_at_commit(owner, app, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = certification_run_request(app=app, user=owner.user)
    run.refresh_from_db()
    assert run.status == CertificationRun.Status.FAILED  # nothing was recorded, so most checks fail
    assert run.started_by == owner.user
    assert run.started_at and run.finished_at
    assert [r.key for r in run.results.all()] == list(certification.CHECK_KEYS)
    assert {r.key for r in run.results.all() if r.passed} == {"https_redirect_uris"}


def test_only_members_who_manage_apps_start_runs(app):
    viewer = member(Membership.Role.VIEWER, organization=app.organization)
    with pytest.raises(NotPermitted):
        certification_run_start(app=app, user=viewer.user)
    with pytest.raises(NotPermitted):
        certification_run_start(app=app, user=member().user)  # another organization's owner
    assert not CertificationRun.objects.exists()


def test_production_apps_are_not_certified(owner):
    owner.organization.tier = tier("production")
    owner.organization.save()
    production = AppFactory(organization=owner.organization, environment=App.Environment.PRODUCTION)
    with pytest.raises(InvalidState, match="sandbox app"):
        certification_run_start(app=production, user=owner.user)


def test_an_abandoned_run_does_not_block_the_next(owner, app):
    stale = certification_run_start(app=app, user=owner.user)
    CertificationRun.objects.filter(pk=stale.pk).update(
        status=CertificationRun.Status.RUNNING, created_at=timezone.now() - STALE_AFTER - timedelta(minutes=1)
    )
    fresh = certification_run_start(app=app, user=owner.user)
    stale.refresh_from_db()
    assert stale.status == CertificationRun.Status.ERROR
    assert "Abandoned" in stale.error
    assert fresh.status == CertificationRun.Status.QUEUED


def test_a_crashing_check_leaves_an_error_and_no_results(owner, app, monkeypatch):
    def crash(app, window):
        raise RuntimeError("the suite tripped")

    checks = list(certification.CHECKS)
    checks[3] = certification.Check("honours_retry_after", "Waits out Retry-After", crash)
    monkeypatch.setattr(certification, "CHECKS", tuple(checks))
    run = certification_run_start(app=app, user=owner.user)
    assert certification_run_execute(run_id=run.pk) == "error"
    run.refresh_from_db()
    assert run.status == CertificationRun.Status.ERROR
    assert run.error == "RuntimeError: the suite tripped"
    assert not run.results.exists()


def test_a_duplicate_task_does_nothing(owner, app):
    run = certification_run_start(app=app, user=owner.user)
    assert certification_run_execute(run_id=run.pk) == "failed"
    assert certification_run_execute(run_id=run.pk) == "skipped"
    assert run.results.count() == len(certification.CHECKS)


# --- the checks on recorded behaviour ----------------------------------------------------------------


def test_pkce_needs_an_s256_verifier(app):
    trace(app, SandboxTrace.Kind.TOKEN_ISSUED, grant_type="authorization_code", pkce_method="")
    outcome = certification.check_pkce_authorization_code(app, window())
    assert not outcome.passed and "none with a PKCE S256" in outcome.summary
    trace(app, SandboxTrace.Kind.TOKEN_ISSUED, grant_type="authorization_code", pkce_method="S256")
    assert certification.check_pkce_authorization_code(app, window()).passed


def test_behaviour_older_than_the_window_does_not_count(app):
    trace(app, SandboxTrace.Kind.TOKEN_ISSUED, grant_type="refresh_token", seconds_ago=15 * 86400)
    assert not certification.check_token_refresh(app, window()).passed
    trace(app, SandboxTrace.Kind.TOKEN_ISSUED, grant_type="refresh_token")
    assert certification.check_token_refresh(app, window()).passed


def test_least_privilege_names_each_unused_scope_and_leaves_sign_in_scopes_alone(app):
    scopes = ["openid", "fhirUser", "launch/patient", "offline_access", "patient/Patient.rs", "patient/Coverage.rs"]
    trace(app, SandboxTrace.Kind.TOKEN_ISSUED, grant_type="authorization_code", scopes=scopes)
    trace(app, patient_id="p1", scopes=scopes, scopes_used=["patient/Patient.rs"])
    outcome = certification.check_least_privilege_scopes(app, window())
    assert not outcome.passed
    assert outcome.summary.endswith(
        "2 were never used: offline_access patient/Coverage.rs. Ask only for the scopes your app uses."
    )
    assert "Not judged (sign-in identity, used through the id_token): fhirUser openid" in outcome.evidence
    trace(app, SandboxTrace.Kind.TOKEN_ISSUED, grant_type="refresh_token", scopes=scopes)
    trace(app, scopes=scopes, scopes_used=["patient/Coverage.rs"])
    assert certification.check_least_privilege_scopes(app, window()).passed


def test_retry_after_needs_a_429_and_judges_calls_to_the_same_group_only(app):
    outcome = certification.check_honours_retry_after(app, window())
    assert not outcome.passed and "No 429 was recorded" in outcome.summary
    trace(app, SandboxTrace.Kind.RATE_LIMITED, seconds_ago=100, endpoint_group="fhir_read", retry_after=10)
    trace(app, seconds_ago=95, endpoint_group="fhir_search", endpoint="GET /fhir/r4/Observation")  # other quota
    trace(app, seconds_ago=89, endpoint_group="fhir_read", endpoint="GET /fhir/r4/Patient/{resource_id}")
    outcome = certification.check_honours_retry_after(app, window())
    assert outcome.passed, outcome.summary
    assert "next call 11.00 s later" in outcome.evidence[0]
    trace(app, seconds_ago=99, endpoint_group="fhir_read", endpoint="GET /fhir/r4/Patient/{resource_id}")
    outcome = certification.check_honours_retry_after(app, window())
    assert not outcome.passed
    assert "1 call to the fhir_read group came before it ran out, the first 1.00 s later" in outcome.evidence[0]


def test_revocation_allows_the_one_call_that_tells_the_app_and_not_the_next(app):
    fhir.patient("p1")
    grant = fhir.consent(app, "p1")
    outcome = certification.check_stops_after_revocation(app, window())
    assert not outcome.passed and "No consent for this app was revoked" in outcome.summary
    revoked_at = timezone.now() - timedelta(seconds=50)
    ConsentGrant.objects.filter(pk=grant.pk).update(status=ConsentGrant.Status.REVOKED, ended_at=revoked_at)
    trace(app, seconds_ago=60, patient_id="p1", status=200, endpoint="GET /fhir/r4/Patient/{resource_id}")
    trace(app, seconds_ago=40, patient_id="p1", status=401, problem_code="invalid_token", endpoint="GET /x")
    trace(app, seconds_ago=30, patient_id="p2", status=200, endpoint="GET /y")  # another patient
    outcome = certification.check_stops_after_revocation(app, window())
    assert outcome.passed, outcome.summary
    assert "one call since (GET /x" in outcome.evidence[0]
    trace(app, seconds_ago=20, patient_id="p1", status=401, problem_code="invalid_token", endpoint="GET /z")
    outcome = certification.check_stops_after_revocation(app, window())
    assert not outcome.passed
    assert "1 call after the refusal that told the app: GET /z" in outcome.evidence[0]
    # Consent given again: calls from then on are the app's right.
    fhir.consent(app, "p1")
    trace(app, seconds_ago=0, patient_id="p1", status=200, endpoint="GET /after-consent")
    ConsentGrant.objects.filter(app=app, status="active").update(created_at=timezone.now() - timedelta(seconds=25))
    assert certification.check_stops_after_revocation(app, window()).passed


def test_redirect_uris_must_be_https_with_loopback_for_native_apps():
    ok = AppFactory(redirect_uris="https://a.example/cb http://127.0.0.1:8080/cb http://[::1]/cb")
    outcome = certification.check_https_redirect_uris(ok, window())
    assert outcome.passed
    assert "Loopback (allowed for native apps, RFC 8252): http://127.0.0.1:8080/cb" in outcome.evidence
    bad = AppFactory(redirect_uris="https://a.example/cb http://a.example/cb")
    outcome = certification.check_https_redirect_uris(bad, window())
    assert not outcome.passed and "Not https: http://a.example/cb" in outcome.summary


def test_a_webhook_check_needs_an_enabled_subscription(app):
    outcome = certification.check_webhook_signature(app, window())
    assert not outcome.passed and "no enabled webhook subscription" in outcome.summary


def test_a_webhook_endpoint_on_a_private_address_is_refused_before_any_request(app, settings):
    from tests.factories import WebhookSubscriptionFactory

    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    WebhookSubscriptionFactory(app=app, url="http://127.0.0.1:9/hooks")
    outcome = certification.check_webhook_signature(app, window())
    assert not outcome.passed
    assert outcome.evidence == [
        "http://127.0.0.1:9/hooks: correctly signed test event → refused: 127.0.0.1 resolves to a non-public "
        "address; bad signature → refused: 127.0.0.1 resolves to a non-public address"
    ]


def test_another_organizations_passing_run_is_not_ours(owner, app):
    other = AppFactory(organization=OrganizationFactory())
    CertificationRun.objects.create(app=other, status=CertificationRun.Status.PASSED, finished_at=timezone.now())
    from partners.certification_selectors import passing_run

    assert passing_run(owner.organization) is None
    assert passing_run(other.organization) is not None
