"""The token inspector at /diagnostics/."""

import re
import secrets
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from oauth2_provider.models import AccessToken, RefreshToken, set_token_value

from partners.models import Membership
from portal.diagnostics import NOT_FOUND
from tests.factories import AppFactory, UserFactory, member
from tests.portal.conftest import login_as

URL = reverse("portal:diagnostics")
SCOPE = "launch/patient openid fhirUser patient/Observation.rs offline_access"


def access_token(app, *, user=None, scope=SCOPE, expires_in=3600) -> tuple[str, AccessToken]:
    raw = secrets.token_urlsafe(30)
    token = AccessToken(application=app, user=user, scope=scope, expires=timezone.now() + timedelta(seconds=expires_in))
    set_token_value(token, raw)
    token.save()
    return raw, token


def refresh_token(app, *, user, access=None, revoked=None) -> str:
    raw = secrets.token_urlsafe(30)
    token = RefreshToken(application=app, user=user, access_token=access, revoked=revoked)
    set_token_value(token, raw)
    token.save()
    return raw


@pytest.fixture
def patient(db):
    return UserFactory(fhir_patient_id="p-42")


@pytest.fixture
def app(owner):
    return AppFactory(organization=owner.organization, name="Care Companion")


def inspect(client, raw):
    return client.post(URL, {"token": raw})


def without_csrf(html: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


def test_the_page_is_in_the_navigation(owner_client):
    page = owner_client.get(reverse("portal:home"))
    assert f'href="{URL}"' in page.text
    assert "Diagnostics" in page.text


def test_inspecting_an_own_access_token_shows_what_it_is(owner_client, owner, app, patient):
    raw, token = access_token(app, user=patient)
    refresh_token(app, user=patient, access=token)
    response = inspect(owner_client, raw)
    assert response.status_code == 200
    text = response.text
    for expected in (
        "Access token",
        "active",
        "Care Companion",
        app.client_id,
        owner.organization.name,
        "Sandbox",
        owner.organization.tier.name,
        "Patient/p-42",
        f"Account #{patient.pk}",
        "Its refresh token is active.",
        "Not revoked.",
        # Each scope with its plain sentence from the registry.
        "patient/Observation.rs",
        "See your lab results and vital signs.",
        "launch/patient",
        "Ask you which patient record to use when it starts.",
        "offline_access",
    ):
        assert expected in text, expected
    assert timezone.localtime(token.expires).strftime("%Y-%m-%d %H:%M") in text
    assert raw not in text  # never echoed back
    assert "no-store" in response["Cache-Control"]


def test_an_expired_token_says_expired(owner_client, app, patient):
    raw, _ = access_token(app, user=patient, expires_in=-60)
    response = inspect(owner_client, raw)
    assert response.context["report"].state == "expired"
    assert '<span class="badge badge-warning">expired</span>' in response.text


def test_a_backend_services_token_has_no_end_user(owner_client, app):
    raw, _ = access_token(app, scope="system/*.rs", expires_in=300)
    response = inspect(owner_client, raw)
    assert "None: a backend-services token acts for no user." in response.text
    assert "of every patient, as a backend service" in response.text


def test_a_revoked_refresh_token_shows_as_revoked(owner_client, app, patient):
    revoked_at = timezone.now() - timedelta(minutes=5)
    raw = refresh_token(app, user=patient, revoked=revoked_at)
    response = inspect(owner_client, raw)
    report = response.context["report"]
    assert report.kind == "refresh"
    assert report.state == "revoked"
    assert "Refresh token" in response.text
    assert '<span class="badge badge-danger">revoked</span>' in response.text
    assert "It can no longer be used." in response.text
    assert raw not in response.text


def test_a_live_refresh_token_shows_its_access_tokens_scopes(owner_client, app, patient):
    _, access = access_token(app, user=patient)
    raw = refresh_token(app, user=patient, access=access)
    response = inspect(owner_client, raw)
    assert response.context["report"].state == "active"
    assert "See your lab results and vital signs." in response.text
    assert "Its access token is active." in response.text


def test_a_revoked_access_token_is_unknown_or_revoked(owner_client, app, patient):
    raw, token = access_token(app, user=patient)
    token.revoke()  # DOT deletes revoked access tokens
    response = inspect(owner_client, raw)
    assert response.context["report"] is None
    assert escape(NOT_FOUND) in response.text
    assert "Unknown or revoked" in response.text


def test_another_organizations_token_reveals_nothing(owner_client, patient):
    stranger_app = AppFactory(name="Stranger Scheduler")
    raw, _ = access_token(stranger_app, user=patient, scope="patient/Appointment.rs appointments.write")
    response = inspect(owner_client, raw)
    assert response.status_code == 200
    assert response.context["report"] is None
    assert escape(NOT_FOUND) in response.text
    for secret_detail in (
        "Stranger Scheduler",
        stranger_app.client_id,
        stranger_app.organization.name,
        "patient/Appointment.rs",
        "appointments.write",
        "See your appointments.",
        "Book and cancel visits for you.",
        "p-42",
    ):
        assert secret_detail not in response.text, secret_detail
    # The very same page as for a value that was never a token.
    unknown = inspect(owner_client, secrets.token_urlsafe(30))
    assert without_csrf(response.text) == without_csrf(unknown.text)


def test_a_member_of_another_of_my_organizations_sees_its_tokens(client, owner, patient):
    other = member(Membership.Role.VIEWER)
    Membership.objects.create(user=owner.user, organization=other.organization, role=Membership.Role.VIEWER)
    raw, _ = access_token(AppFactory(organization=other.organization, name="Sister App"), user=patient)
    client.force_login(owner.user)
    assert "Sister App" in inspect(client, raw).text


def test_a_viewer_may_inspect_the_organizations_tokens(client, app, patient):
    login_as(client, Membership.Role.VIEWER, organization=app.organization)
    raw, _ = access_token(app, user=patient)
    assert "Care Companion" in inspect(client, raw).text


def test_the_pasted_value_is_never_echoed_even_when_refused(owner_client):
    too_long = "x" * 5000
    response = inspect(owner_client, too_long)
    assert "That is longer than any token we issue." in response.text
    assert too_long not in response.text
    assert response.context["report"] is None


def test_login_is_required(client, app, patient):
    raw, _ = access_token(app, user=patient)
    for response in (client.get(URL), client.post(URL, {"token": raw})):
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_csrf_is_enforced(owner):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner.user)
    assert csrf_client.post(URL, {"token": "anything"}).status_code == 403
    page = csrf_client.get(URL)
    assert page.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in page.text
    assert "no-store" in page["Cache-Control"]


def test_inspections_are_rate_limited_per_user(owner_client):
    for _ in range(30):
        assert inspect(owner_client, "nope").status_code == 200
    assert inspect(owner_client, "nope").status_code == 429
