"""A patient's journey in a real browser: log in, open an app's authorization request, untick one
optional item with the keyboard, allow, land back on the app; then revoke it in My connected apps."""

import os
import re
import secrets

import pytest
from authlib.integrations.requests_client import OAuth2Session
from oauth2_provider.models import AccessToken
from playwright.sync_api import expect

from consent.models import ConsentGrant, LedgerEvent
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.oauth.conftest import CLIENT_SECRET, REDIRECT_URI, make_app, query_of

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

LABS = "patient/Observation.rs?category=laboratory"
SCOPE = f"launch/patient openid fhirUser patient/Patient.rs {LABS} offline_access"
SCREENSHOTS = os.environ.get("E2E_SCREENSHOTS", "")  # a directory to keep screenshots in, when set


def shot(page, name):
    if SCREENSHOTS:
        page.screenshot(path=os.path.join(SCREENSHOTS, f"{name}.png"), full_page=True)


def test_a_patient_allows_part_of_a_request_then_revokes_it(new_page, live_server):
    UserFactory(email="pat@example.com", first_name="Pat", last_name="Doe", fhir_patient_id="p-123")
    app = make_app(name="Lab Buddy", description="Charts your lab results over time so you can spot trends.")
    page = new_page()

    # The app's redirect URI is not served by anyone: answer it in the browser and remember the URL.
    callbacks = []

    def app_callback(route):
        callbacks.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<title>Lab Buddy</title><h1>Back in Lab Buddy</h1>")

    page.route("http://127.0.0.1:8765/**", app_callback)

    # Log in.
    page.goto("/accounts/login/")
    page.fill("#id_username", "pat@example.com")
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="My connected apps")).to_be_visible()

    # The app sends the patient to the authorization endpoint.
    client = OAuth2Session(
        app.client_id, CLIENT_SECRET, scope=SCOPE, redirect_uri=REDIRECT_URI, code_challenge_method="S256"
    )
    verifier = secrets.token_urlsafe(48)
    url, state = client.create_authorization_url(
        f"{live_server.url}/oauth/authorize/", code_verifier=verifier, aud=f"{live_server.url}/fhir/r4"
    )
    page.goto(url)

    # The consent screen, in plain language.
    expect(page.get_by_role("heading", name="Allow Lab Buddy to connect?")).to_be_visible()
    expect(page.get_by_text("Charts your lab results over time")).to_be_visible()
    expect(page.get_by_text("Sandbox: test data only")).to_be_visible()
    labs_group = page.get_by_role("group", name="Your lab results")
    expect(labs_group).to_be_visible()
    labs = labs_group.get_by_role("checkbox", name=re.compile("See your lab results"))
    expect(labs).to_be_checked()
    expect(page.get_by_role("group", name="Who you are when you sign in").get_by_role("checkbox")).to_have_count(1)
    expect(page.get_by_text("Know that it is you who signed in.")).to_be_visible()  # required: no checkbox
    expect(page.get_by_role("heading", name="Letting an app use your health information")).to_be_visible()
    expect(page.get_by_role("link", name="My connected apps").last).to_have_attribute("href", "/me/apps/")
    shot(page, "1-consent-screen")

    # Untick the lab results with the keyboard, then allow.
    labs.focus()
    page.keyboard.press("Space")
    expect(labs).not_to_be_checked()
    page.get_by_role("button", name="Allow").click()

    # Back at the app, with a code for what was allowed.
    expect(page.get_by_role("heading", name="Back in Lab Buddy")).to_be_visible()
    assert len(callbacks) == 1
    params = query_of(callbacks[0])
    assert params["state"] == state and params["code"]
    token = client.fetch_token(
        f"{live_server.url}/oauth/token/", authorization_response=callbacks[0], code_verifier=verifier
    )
    assert LABS not in token["scope"].split()
    assert {"launch/patient", "openid", "fhirUser", "patient/Patient.rs", "offline_access"} == set(
        token["scope"].split()
    )
    grant = ConsentGrant.objects.get(status="active")
    assert LABS not in grant.scopes

    # My connected apps lists it, with what it may see.
    page.goto("/me/apps/")
    expect(page.get_by_role("heading", name="My connected apps")).to_be_visible()
    card = page.get_by_role("article", name="Lab Buddy")
    expect(card).to_be_visible()
    expect(card.get_by_text("See your name, birth date and contact details.")).to_be_visible()
    expect(card.get_by_text("See your lab results.")).to_have_count(0)
    expect(card.get_by_text("Never")).to_be_visible()
    shot(page, "2-my-apps")

    # Revoke it: a confirm step, then it is gone at once.
    card.get_by_role("link", name="Revoke Lab Buddy's access").click()
    expect(page.get_by_role("heading", name="Revoke Lab Buddy's access?")).to_be_visible()
    expect(page.get_by_text("Lab Buddy loses access at once.")).to_be_visible()
    page.get_by_label("I no longer use this app").check()
    shot(page, "3-revoke-confirm")
    page.get_by_role("button", name="Revoke access").click()

    expect(page.get_by_text("Lab Buddy no longer has access to your information.")).to_be_visible()
    expect(page.get_by_role("article", name="Lab Buddy")).to_have_count(0)
    expect(page.get_by_text("No app can see your health information right now.")).to_be_visible()
    ended = page.get_by_role("table", name="Apps that no longer have access")
    expect(ended.get_by_text("Revoked")).to_be_visible()
    history = page.get_by_role("table", name="Your consent history, newest first")
    expect(history.get_by_role("row")).to_have_count(3)  # header, revoked, granted
    expect(history.get_by_text("I no longer use this app.")).to_be_visible()
    shot(page, "4-after-revoke")

    grant.refresh_from_db()
    assert grant.status == "revoked"
    assert list(LedgerEvent.objects.order_by("sequence").values_list("kind", flat=True)) == ["granted", "revoked"]
    assert not AccessToken.objects.filter(application=app).exists()
