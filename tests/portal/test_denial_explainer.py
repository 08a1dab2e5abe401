"""'Why was I denied?' at /diagnostics/: a member looks up a refusal of one of their organizations'
apps by its correlation id; anything else gets the one 'not found' answer."""

import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from marketplace import denial_log
from partners.models import Membership
from portal.diagnostics import DENIAL_NOT_FOUND
from tests.api.conftest import bearer, make_token
from tests.api.fhir import helpers as fhir
from tests.factories import AppFactory
from tests.portal.conftest import login_as

URL = reverse("portal:diagnostics-denials")
PAGE = reverse("portal:diagnostics")


@pytest.fixture(autouse=True)
def _fresh_log():
    denial_log.forget_full()
    yield
    denial_log.forget_full()


@pytest.fixture
def app(owner):
    return AppFactory(organization=owner.organization, name="Care Companion")


def refused(client, app, scope="openid", request_id=None) -> str:
    """A real request of ``app`` the scope layer refuses; its correlation id."""
    extra = {"HTTP_X_REQUEST_ID": request_id} if request_id else {}
    response = client.get("/api/v1/events", **bearer(make_token(app, scope)), **extra)
    assert response.status_code == 403
    assert response.json()["correlation_id"] == response["X-Request-ID"]
    return response["X-Request-ID"]


def explain(client, correlation_id):
    return client.post(URL, {"correlation_id": correlation_id})


def without_csrf(html: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


def test_the_page_offers_both_tools(owner_client):
    page = owner_client.get(PAGE)
    assert page.status_code == 200
    assert "Token inspector" in page.text
    assert "Why was I denied?" in page.text
    assert f'action="{URL}#denied"' in page.text
    assert 'name="correlation_id"' in page.text


def test_a_member_sees_which_layer_refused_their_app_the_rule_and_the_fix(client, owner_client, app):
    correlation_id = refused(client, app)
    response = explain(owner_client, correlation_id)
    assert response.status_code == 200
    report = response.context["denial"]
    assert report is not None and report.app == app
    text = response.text
    for expected in (
        "Refused by the scope layer",
        "Care Companion",
        app.client_id,
        app.organization.name,
        "GET /api/v1/events",
        "403 <code>insufficient_scope</code>",
        "<strong>Scope</strong>: What the token was granted",
        "The token lacks the scope events.read; it carries openid.",
        escape("Request the missing scope when you ask for the token"),
        'href="/docs/errors/insufficient_scope/"',
        correlation_id,
    ):
        assert expected in text, expected
    assert "no-store" in response["Cache-Control"]


def test_the_consent_layer_is_explained_without_the_patient(client, owner_client, app):
    fhir.patient("p-77")
    response = fhir.get(client, "/fhir/r4/Patient/p-77", fhir.user_token(app))
    assert response.status_code == 403
    text = explain(owner_client, response["X-Request-ID"]).text
    assert "Refused by the consent layer" in text
    assert "No active consent from the patient covers demographics" in text
    assert "per patient, per app and per data class" in text
    assert "GET /fhir/r4/Patient/{resource_id}" in text
    assert 'href="/docs/errors/consent_required/"' in text
    assert "p-77" not in text


def test_a_token_endpoint_refusal_is_explained_too(client, owner_client, owner, settings):
    from tests.oauth.conftest import make_app

    settings.RATE_LIMITS = True
    app = make_app(organization=owner.organization, grant_types=("client-credentials",), name="Nightly Sync")
    response = client.post(
        "/oauth/token/",
        {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": "wrong"},
    )
    assert response.status_code == 401
    text = explain(owner_client, response.json()["correlation_id"]).text
    assert "Nightly Sync" in text
    assert "POST /oauth/token" in text
    assert "Refused by the token layer" in text
    assert "anyone could have named it" in text


def test_another_organization_s_refusal_is_answered_like_an_unknown_id(client, owner_client):
    stranger = AppFactory(name="Stranger Scheduler")
    theirs = refused(client, stranger, scope="openid appointments.read", request_id="stranger-trace-0001")
    response = explain(owner_client, theirs)
    assert response.status_code == 200
    assert response.context["denial"] is None
    assert escape(DENIAL_NOT_FOUND) in response.text
    assert "we couldn't tell which app sent it" in response.text
    for secret_detail in (
        "Stranger Scheduler",
        stranger.client_id,
        stranger.organization.name,
        "appointments.read",
        "events.read",
        "insufficient_scope",
    ):
        assert secret_detail not in response.text, secret_detail
    # The very same page as for an id that was never used (but for the id typed into the form).
    unknown = explain(owner_client, "unknown-trace-0001")
    assert without_csrf(response.text).replace(theirs, "ID") == without_csrf(unknown.text).replace(
        "unknown-trace-0001", "ID"
    )


def test_a_member_of_several_organizations_sees_each_one_s_refusals(client, owner):
    other = login_as(Client(), Membership.Role.VIEWER)
    Membership.objects.create(user=owner.user, organization=other.organization, role=Membership.Role.VIEWER)
    sister = AppFactory(organization=other.organization, name="Sister App")
    correlation_id = refused(client, sister)
    client.force_login(owner.user)
    assert "Sister App" in explain(client, correlation_id).text


def test_a_viewer_may_look_up_the_organization_s_refusals(client, app):
    correlation_id = refused(Client(), app)
    login_as(client, Membership.Role.VIEWER, organization=app.organization)
    assert explain(client, correlation_id).context["denial"].app == app


def test_a_malformed_id_is_a_form_error_and_no_lookup(owner_client):
    for value in ("short", "has spaces in it", "-leading-hyphen", "x" * 129, ""):
        response = explain(owner_client, value)
        assert response.status_code == 200
        assert response.context["denial_looked_up"] is False
        assert response.context["denial_form"].errors["correlation_id"], value
    assert "That is not a correlation id" in explain(owner_client, "has spaces in it").text


def test_login_is_required(client, app):
    correlation_id = refused(Client(), app)
    for response in (client.get(URL), client.post(URL, {"correlation_id": correlation_id})):
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_csrf_is_enforced(owner):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner.user)
    assert csrf_client.post(URL, {"correlation_id": "anything-at-all"}).status_code == 403


def test_lookups_are_rate_limited_per_user(owner_client):
    for _ in range(30):
        assert explain(owner_client, "nothing-here-0001").status_code == 200
    assert explain(owner_client, "nothing-here-0001").status_code == 429


def test_the_error_pages_point_to_the_explainer(client):
    page = client.get("/docs/errors/insufficient_scope/")
    assert "Look it up by its correlation id at" in page.text
    assert f'href="{PAGE}#denied"' in page.text
    docs = client.get("/docs/errors/")
    assert "Why was I denied?" in docs.text
    assert 'href="/diagnostics/#denied"' in docs.text
