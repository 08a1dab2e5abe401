"""The sandbox trace certification reads: what a sandbox app's requests leave behind, that production
apps leave nothing, that a call with a revoked token is still attributed, and that a trace that cannot
be written never fails the request."""

from datetime import timedelta

import pytest
from django.utils import timezone

from api import ratelimit
from partners.certification_models import TRACE_RETENTION, SandboxTrace
from partners.models import App
from partners.oauth import token_checksum
from partners.sandbox_trace import sandbox_trace_record, sandbox_traces_purge
from tests.api.conftest import bearer
from tests.api.fhir import helpers as fhir
from tests.factories import AppFactory, OrganizationFactory, tier

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _traced(settings):
    settings.SANDBOX_TRACE = True


@pytest.fixture
def reader():
    app = AppFactory()
    fhir.patient("p1")
    fhir.consent(app, "p1", scopes=("patient/Patient.rs",))
    return app, fhir.patient_token(app, "p1", scope="launch/patient patient/Patient.rs patient/Coverage.rs")


def test_a_sandbox_call_is_traced_with_what_certification_needs(client, reader):
    app, raw = reader
    response = fhir.get(client, "/fhir/r4/Patient/p1", raw)
    assert response.status_code == 200
    row = SandboxTrace.objects.get(app=app)
    assert row.kind == SandboxTrace.Kind.API_CALL
    assert row.endpoint == "GET /fhir/r4/Patient/{resource_id}"
    assert (row.endpoint_group, row.status, row.problem_code, row.patient_id) == ("fhir_read", 200, "", "p1")
    assert row.token_id == token_checksum(raw)[:16]
    assert row.scopes == ["launch/patient", "patient/Patient.rs", "patient/Coverage.rs"]
    assert row.scopes_used == ["patient/Patient.rs"]  # Coverage was granted, not needed here
    assert row.at <= timezone.now()


def test_a_call_refused_by_the_scope_layer_used_no_scope(client, reader):
    app, raw = reader
    fhir.appointment("a1", "p1")
    assert fhir.get(client, "/fhir/r4/Appointment/a1", raw).status_code == 403
    row = SandboxTrace.objects.get(app=app)
    assert (row.problem_code, row.scopes_used) == ("insufficient_scope", [])


def test_the_patient_a_user_token_asked_about_is_recorded(client):
    app = AppFactory()
    fhir.patient("p7")
    raw = fhir.user_token(app)
    fhir.get(client, "/fhir/r4/Patient/p7", raw)
    assert SandboxTrace.objects.get(app=app).patient_id == "p7"


def test_production_apps_are_never_traced(client):
    organization = OrganizationFactory(tier=tier("production"))
    app = AppFactory(organization=organization, environment=App.Environment.PRODUCTION)
    fhir.patient("p1", environment="production")
    fhir.consent(app, "p1")
    raw = fhir.patient_token(app, "p1")
    assert fhir.get(client, "/fhir/r4/Patient/p1", raw).status_code == 200
    assert fhir.get(client, "/fhir/r4/Patient/p2", raw).status_code in (403, 404)
    assert not SandboxTrace.objects.exists()


def test_a_429_is_traced_with_its_retry_after(client, reader, settings, monkeypatch):
    settings.RATE_LIMITS = True
    monkeypatch.setattr(ratelimit.time, "time", lambda: 1_800_000_000.25)
    app, raw = reader
    app.organization.rate_quota_overrides = {"fhir_read": {"burst": 1}}
    app.organization.save()
    statuses = [fhir.get(client, "/fhir/r4/Patient/p1", raw).status_code for _ in range(2)]
    assert statuses == [200, 429]
    refused = SandboxTrace.objects.get(app=app, kind=SandboxTrace.Kind.RATE_LIMITED)
    assert (refused.retry_after, refused.problem_code, refused.endpoint_group) == (1, "quota_exceeded", "fhir_read")


def test_a_call_with_a_revoked_sandbox_token_is_attributed_to_its_app_and_patient(client):
    app = AppFactory()
    raw = "revoked-token-value-0123456789"
    sandbox_trace_record(
        app_id=app.pk,
        kind=SandboxTrace.Kind.TOKEN_ISSUED,
        grant_type="authorization_code",
        patient_id="p1",
        scopes=["patient/Patient.rs"],
        token_id=token_checksum(raw)[:16],
    )
    response = client.get("/fhir/r4/Patient/p1", **bearer(raw))
    assert response.status_code == 401
    row = SandboxTrace.objects.get(app=app, kind=SandboxTrace.Kind.API_CALL)
    assert (row.status, row.problem_code, row.patient_id) == (401, "invalid_token", "p1")
    # A token nobody recorded leaves nothing.
    assert client.get("/fhir/r4/Patient/p1", **bearer("never-issued-0123456789")).status_code == 401
    assert SandboxTrace.objects.filter(kind=SandboxTrace.Kind.API_CALL).count() == 1


def test_a_trace_that_cannot_be_written_never_fails_the_request(client, reader, monkeypatch, caplog):
    _app, raw = reader

    def broken(self, *args, **kwargs):
        raise RuntimeError("the database is having a moment")

    monkeypatch.setattr(SandboxTrace, "save", broken)
    assert fhir.get(client, "/fhir/r4/Patient/p1", raw).status_code == 200
    assert "sandbox_trace_not_recorded" in caplog.text


def test_a_token_issued_is_traced_only_for_sandbox_apps(client, settings):
    sandbox = AppFactory(
        grant_types=[App.GRANT_CLIENT_CREDENTIALS],
        authorization_grant_type=App.GRANT_CLIENT_CREDENTIALS,
        organization=OrganizationFactory(tier=tier("verified")),
        client_secret="cc-secret",
    )
    production = AppFactory(
        grant_types=[App.GRANT_CLIENT_CREDENTIALS],
        authorization_grant_type=App.GRANT_CLIENT_CREDENTIALS,
        organization=OrganizationFactory(tier=tier("production")),
        environment=App.Environment.PRODUCTION,
        client_secret="cc-secret",
    )
    issued = {}
    for app in (sandbox, production):
        response = client.post(
            "/oauth/token/",
            {"grant_type": "client_credentials", "scope": "system/Patient.rs"},
            HTTP_AUTHORIZATION=_basic(app.client_id, "cc-secret"),
        )
        assert response.status_code == 200, response.content
        issued[app.pk] = response.json()["access_token"]
    row = SandboxTrace.objects.get()
    assert (row.app_id, row.kind, row.grant_type, row.pkce_method) == (
        sandbox.pk,
        SandboxTrace.Kind.TOKEN_ISSUED,
        "client_credentials",
        "",
    )
    assert row.scopes == ["system/Patient.rs"]
    assert row.token_id == token_checksum(issued[sandbox.pk])[:16]


def _basic(client_id: str, secret: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_the_purge_keeps_what_certification_looks_at(db):
    app = AppFactory()
    now = timezone.now()
    for age in (TRACE_RETENTION + timedelta(hours=1), TRACE_RETENTION - timedelta(hours=1)):
        sandbox_trace_record(app_id=app.pk, kind=SandboxTrace.Kind.API_CALL, at=now - age)
    assert sandbox_traces_purge(now=now) == 1
    assert SandboxTrace.objects.count() == 1


def test_a_system_token_call_records_the_patient_it_asked_about(client):
    app = AppFactory(organization=OrganizationFactory(tier=tier("verified")))
    raw = fhir.system_token(app, "system/Patient.rs")
    fhir.patient("p3")
    fhir.get(client, "/fhir/r4/Patient/p3", raw)
    row = SandboxTrace.objects.get(app=app)
    assert row.patient_id == "p3"
    assert row.scopes_used == ["system/Patient.rs"]


def test_the_switch_turns_tracing_off(client, reader, settings):
    settings.SANDBOX_TRACE = False
    _app, raw = reader
    assert fhir.get(client, "/fhir/r4/Patient/p1", raw).status_code == 200
    assert not SandboxTrace.objects.exists()
