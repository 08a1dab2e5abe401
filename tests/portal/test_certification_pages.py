"""The app's Certification page: its runs with each check's result, evidence and docs link, the start
button, and nothing of another organization's apps."""

import pytest
from django.urls import reverse
from django.utils import timezone

from partners.certification_models import CertificationCheckResult, CertificationRun
from partners.models import App, Membership
from tests.factories import AppFactory, tier
from tests.portal.conftest import login_as

pytestmark = pytest.mark.django_db


@pytest.fixture
def app(owner):
    return AppFactory(organization=owner.organization, name="Checkup Buddy")


def page(client, app):
    return client.get(reverse("portal:app-certification", args=[app.pk]))


def finished_run(app, *, passed: bool) -> CertificationRun:
    run = CertificationRun.objects.create(
        app=app,
        status=CertificationRun.Status.PASSED if passed else CertificationRun.Status.FAILED,
        finished_at=timezone.now(),
    )
    CertificationCheckResult.objects.create(
        run=run,
        key="honours_retry_after",
        title="Waits out Retry-After after a 429",
        passed=passed,
        summary="After 1 of 1 429 the app called again too soon." if not passed else "It waited.",
        evidence=["429 on GET /fhir/r4/Patient/{resource_id} said Retry-After 1 s; 3 calls came before it ran out"],
        docs_url="/docs/certification/#honours_retry_after",
    )
    return run


def test_the_page_shows_each_run_with_its_checks_evidence_and_docs_links(owner_client, app):
    failed = finished_run(app, passed=False)
    response = page(owner_client, app)
    assert response.status_code == 200
    text = response.text
    assert f"Run #{failed.pk}" in text
    assert "Failed" in text
    assert "After 1 of 1 429 the app called again too soon." in text
    assert "3 calls came before it ran out" in text
    assert 'href="/docs/certification/#honours_retry_after"' in text
    assert "Start a certification run" in text


def test_the_app_page_links_to_it(owner_client, app):
    response = owner_client.get(reverse("portal:app-detail", args=[app.pk]))
    assert reverse("portal:app-certification", args=[app.pk]) in response.text


def test_another_organizations_app_is_a_404(owner_client):
    stranger = AppFactory()
    finished_run(stranger, passed=True)
    assert page(owner_client, stranger).status_code == 404
    response = owner_client.post(reverse("portal:app-certification-start", args=[stranger.pk]))
    assert response.status_code == 404
    assert CertificationRun.objects.filter(app=stranger).count() == 1


def test_starting_a_run_queues_it_and_a_second_is_refused_while_it_is_open(owner_client, app):
    start = reverse("portal:app-certification-start", args=[app.pk])
    response = owner_client.post(start, follow=True)
    run = CertificationRun.objects.get(app=app)
    assert run.status == CertificationRun.Status.QUEUED  # the task is queued once the request commits
    assert f"Certification run #{run.pk} is queued" in response.text
    assert f"Run #{run.pk} is queued" in response.text
    assert "Start a certification run" not in response.text

    response = owner_client.post(start, follow=True)
    assert "already queued or running" in response.text
    assert CertificationRun.objects.filter(app=app).count() == 1


def test_a_viewer_sees_the_runs_and_cannot_start_one(client, app):
    login_as(client, Membership.Role.VIEWER, organization=app.organization)
    finished_run(app, passed=True)
    response = page(client, app)
    assert response.status_code == 200
    assert "Start a certification run" not in response.text
    assert "Only owners, admins and developers can start a run." in response.text
    assert client.post(reverse("portal:app-certification-start", args=[app.pk])).status_code == 403
    assert CertificationRun.objects.filter(app=app).count() == 1


def test_a_production_app_says_to_certify_its_sandbox_twin(client):
    membership = login_as(client, Membership.Role.OWNER)
    membership.organization.tier = tier("production")
    membership.organization.save()
    production = AppFactory(organization=membership.organization, environment=App.Environment.PRODUCTION)
    response = page(client, production)
    assert "Certification runs on sandbox apps" in response.text
    assert "Start a certification run" not in response.text


def test_a_passing_run_of_the_organization_is_announced(owner_client, app):
    other = AppFactory(organization=app.organization, name="Second App")
    run = finished_run(other, passed=True)
    response = page(owner_client, app)
    assert f"Second App, run #{run.pk}, passed" in response.text
