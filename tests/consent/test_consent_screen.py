"""The consent screen at /oauth/authorize/: plain language, granular choices, recorded consent and
reuse, driven through authlib against a live server like tests/oauth/test_flows.py."""

import re
import secrets

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from django.urls import resolve, reverse
from oauth2_provider.models import AccessToken, Grant

from consent.models import ConsentGrant, LedgerEvent
from consent.views import ConsentAuthorizationView
from tests.factories import UserFactory
from tests.oauth import conftest as oauth
from tests.oauth.conftest import CLIENT_SECRET, REDIRECT_URI, Browser, make_app, query_of

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# The live-server fixtures of tests/oauth, shared.
server = oauth.server
patient_user = oauth.patient_user

FULL = "launch/patient openid fhirUser patient/Patient.rs patient/Observation.rs?category=laboratory offline_access"
LABS = "patient/Observation.rs?category=laboratory"


class Flow:
    """One authorization request of an app, and the token exchange that follows it."""

    def __init__(self, server, app, scope, **extra):
        self.server = server
        self.client = OAuth2Session(
            app.client_id, CLIENT_SECRET, scope=scope, redirect_uri=REDIRECT_URI, code_challenge_method="S256"
        )
        self.verifier = secrets.token_urlsafe(48)
        self.url, self.state = self.client.create_authorization_url(
            server.authorize, code_verifier=self.verifier, aud=server.fhir_base, **extra
        )

    def token(self, callback):
        assert query_of(callback)["state"] == self.state
        return self.client.fetch_token(self.server.token, authorization_response=callback, code_verifier=self.verifier)


@pytest.fixture
def app():
    return make_app(name="Lab Buddy", description="Charts your lab results over time so you can spot trends.")


@pytest.fixture
def browser(server, patient_user):
    return Browser(server, patient_user)


CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def kinds():
    return list(LedgerEvent.objects.order_by("patient_id", "sequence").values_list("kind", flat=True))


def checkbox_values(page: str) -> list[str]:
    return re.findall(r'<input type="checkbox" name="optional_scopes" value="([^"]*)"', page)


# --- Routing ---------------------------------------------------------------------------------------


def test_the_authorize_url_is_the_consent_screen():
    assert reverse("oauth2_provider:authorize") == "/oauth/authorize/"
    assert resolve("/oauth/authorize/").func.view_class is ConsentAuthorizationView


# --- What the page says ----------------------------------------------------------------------------


def test_the_screen_speaks_plainly_grouped_by_data_class(server, app, browser):
    page = browser.open(Flow(server, app, FULL).url)
    assert page.status_code == 200
    html = page.text
    assert "Lab Buddy" in html
    assert app.organization.name in html
    assert "Sandbox tier" in html
    assert "Sandbox: test data only" in html
    assert "Charts your lab results over time" in html  # why: the app's stated purpose
    legends = re.findall(r"<legend>([^<]+)</legend>", html)
    assert legends == [
        "Your name, birth date and contact details",
        "Your lab results",
        "Who you are when you sign in",
        "How long the app stays connected",
    ]
    assert "See your name, birth date and contact details." in html
    assert "See your lab results." in html
    assert "Know that it is you who signed in." in html
    assert "until you revoke it" in html  # offline_access asked for
    assert 'href="/me/apps/"' in html  # how to revoke later
    # The consent text, its Markdown rendered (and sanitized).
    assert "Letting an app use your health information" in html
    assert "<strong>You are letting an app see some of your health information.</strong>" in html
    assert "Consent text version 1." in html


def test_without_offline_access_it_lasts_while_the_app_is_used(server, app, browser):
    html = browser.open(Flow(server, app, "patient/Patient.rs").url).text
    assert "Only while you are using the app." in html
    assert "until you revoke it, even when" not in html


def test_the_page_is_a_real_accessible_form(server, app, browser):
    html = browser.open(Flow(server, app, FULL).url).text
    start = html.index('<form id="authorizationForm"')
    form = html[start : html.index("</form>", start)]
    assert 'method="post"' in form
    assert form.count("<fieldset") == form.count("<legend>") == 4
    # Optional scopes get a checkbox, ticked by default; required ones (launch/patient, openid) none.
    assert sorted(checkbox_values(form)) == sorted(["fhirUser", "patient/Patient.rs", LABS, "offline_access"])
    for field_id in re.findall(r'<input type="checkbox"[^>]* id="([^"]+)"', form):
        assert f'<label for="{field_id}">' in form
    assert len(re.findall(r'<input type="checkbox"[^>]*\schecked>', form)) == 4
    assert "launch/patient</code>" in form and "openid</code>" in form
    assert re.search(r'<button type="submit"[^>]*name="allow"[^>]*>Allow</button>', form)
    assert re.search(r'<button type="submit"[^>]*>Deny</button>', form)
    assert "<script" not in form


# --- Allow, with granular choices -------------------------------------------------------------------


def test_allowing_records_a_grant_for_what_was_allowed(server, app, browser, patient_user):
    flow = Flow(server, app, FULL)
    token = flow.token(browser.approve(flow.url))
    assert set(token["scope"].split()) == set(FULL.split())
    grant = ConsentGrant.objects.get()
    assert grant.patient_id == "p-123"
    assert grant.app == app
    assert grant.status == "active"
    assert grant.channel == "consent_screen"
    assert grant.granted_by == patient_user
    assert set(grant.scopes) == set(FULL.split())
    assert grant.data_classes == ["demographics", "lab_results"]
    event = LedgerEvent.objects.get()
    assert (event.kind, event.grant, event.actor) == ("granted", grant, f"user:{patient_user.pk}")


def test_unticking_an_optional_scope_removes_it_from_the_token_and_the_grant(server, app, browser):
    flow = Flow(server, app, FULL)
    token = flow.token(browser.approve(flow.url, untick=[LABS, "offline_access"]))
    assert set(token["scope"].split()) == {"launch/patient", "openid", "fhirUser", "patient/Patient.rs"}
    grant = ConsentGrant.objects.get()
    assert LABS not in grant.scopes and "offline_access" not in grant.scopes
    assert grant.data_classes == ["demographics"]
    assert set(AccessToken.objects.get().scope.split()) == set(token["scope"].split())


def test_unticking_offline_access_means_no_refresh_token(server, app, browser):
    flow = Flow(server, app, "patient/Patient.rs offline_access")
    token = flow.token(browser.approve(flow.url, untick=["offline_access"]))
    assert token["scope"] == "patient/Patient.rs"
    assert "refresh_token" not in token


def test_required_scopes_cannot_be_unticked(server, app, browser):
    flow = Flow(server, app, "launch/patient openid patient/Patient.rs")
    token = flow.token(browser.approve(flow.url, untick=["launch/patient", "openid"]))
    assert {"launch/patient", "openid"} <= set(token["scope"].split())


def test_unticking_everything_is_refused_on_the_page(server, app, browser):
    flow = Flow(server, app, "patient/Patient.rs")
    page = browser.open(flow.url).text
    response = browser.answer(page, flow.url, untick=["patient/Patient.rs"])
    assert response.status_code == 400
    assert "You unticked everything the app asked for" in response.text
    assert 'role="alert"' in response.text
    assert not Grant.objects.exists() and not ConsentGrant.objects.exists()


def test_a_forged_scope_field_is_ignored(server, app, browser):
    flow = Flow(server, app, "patient/Patient.rs")
    page = browser.open(flow.url).text
    # The hidden field says more than was asked; the tier would allow it, the patient never saw it.
    response = browser.answer(page, flow.url, extra=[("scope", "patient/Patient.rs patient/Coverage.rs")])
    assert response.status_code == 302
    token = flow.token(response.headers["Location"])
    assert token["scope"] == "patient/Patient.rs"
    assert ConsentGrant.objects.get().scopes == ["patient/Patient.rs"]


def test_a_forged_checkbox_for_a_scope_not_requested_is_refused(server, app, browser):
    flow = Flow(server, app, "patient/Patient.rs")
    page = browser.open(flow.url).text
    response = browser.answer(page, flow.url, extra=[("optional_scopes", "patient/Coverage.rs")])
    assert response.status_code == 400
    assert "was not asked for by the app" in response.text
    assert not Grant.objects.exists() and not ConsentGrant.objects.exists() and not LedgerEvent.objects.exists()


def test_an_altered_or_foreign_consent_request_is_refused(server, app, browser):
    flow = Flow(server, app, "patient/Patient.rs")
    page = browser.open(flow.url).text
    signed = re.search(r'name="consent_request" value="([^"]+)"', page).group(1)
    altered = page.replace(signed, signed[:-2] + ("AA" if not signed.endswith("AA") else "BB"))
    response = browser.answer(altered, flow.url)
    assert response.status_code == 400
    assert "expired or was changed" in response.text
    # Another account cannot answer this patient's page either, even with a valid CSRF token of its own.
    stranger = Browser(server, UserFactory(fhir_patient_id="p-999"))
    own_csrf = CSRF.search(stranger.open(f"{server.url}/me/apps/").text).group(1)
    stolen = CSRF.sub(f'name="csrfmiddlewaretoken" value="{own_csrf}"', page)
    stranger_response = stranger.answer(stolen, flow.url)
    assert stranger_response.status_code == 400
    assert "expired or was changed" in stranger_response.text
    assert not Grant.objects.exists() and not ConsentGrant.objects.exists() and not LedgerEvent.objects.exists()


# --- Deny ----------------------------------------------------------------------------------------------


def test_deny_records_a_denied_event_and_no_grant(server, app, browser, patient_user):
    flow = Flow(server, app, FULL)
    callback = browser.approve(flow.url, allow=False)
    assert query_of(callback)["error"] == "access_denied"
    assert query_of(callback)["state"] == flow.state
    assert not ConsentGrant.objects.exists()
    assert not AccessToken.objects.exists() and not Grant.objects.exists()
    event = LedgerEvent.objects.get()
    assert event.kind == "denied"
    assert event.patient_id == "p-123"
    assert event.app == app
    assert event.channel == "consent_screen"
    assert event.actor == f"user:{patient_user.pk}"
    assert set(event.scopes) == set(FULL.split())


# --- Reuse and asking for more -------------------------------------------------------------------------


def test_the_same_scopes_again_skip_the_screen_and_reuse_the_grant(server, app, browser):
    first = Flow(server, app, FULL)
    first.token(browser.approve(first.url))
    grant = ConsentGrant.objects.get()
    second = Flow(server, app, FULL)
    response = browser.open(second.url)
    assert response.status_code == 302  # no screen
    token = second.token(response.headers["Location"])
    assert set(token["scope"].split()) == set(FULL.split())
    assert list(ConsentGrant.objects.values_list("pk", flat=True)) == [grant.pk]
    assert kinds() == ["granted"]


def test_a_subset_of_what_was_allowed_also_skips_the_screen(server, app, browser):
    first = Flow(server, app, FULL)
    first.token(browser.approve(first.url))
    response = browser.open(Flow(server, app, "launch/patient patient/Patient.rs").url)
    assert response.status_code == 302
    assert "code" in query_of(response.headers["Location"])
    assert kinds() == ["granted"]


def test_prompt_consent_shows_the_screen_even_when_covered(server, app, browser):
    first = Flow(server, app, "patient/Patient.rs")
    first.token(browser.approve(first.url))
    response = browser.open(Flow(server, app, "patient/Patient.rs", prompt="consent").url)
    assert response.status_code == 200
    assert "Already allowed" in response.text


def test_asking_for_more_marks_only_the_new_scopes_and_supersedes_the_grant(server, app, browser):
    first = Flow(server, app, "launch/patient patient/Patient.rs")
    first.token(browser.approve(first.url))
    old = ConsentGrant.objects.get()

    more = Flow(server, app, f"launch/patient patient/Patient.rs {LABS}")
    html = browser.open(more.url).text
    assert "asks for more" in html
    assert "New: See your lab results." in html
    items = re.findall(r'<li class="scope-item( is-new)?">(.*?)</li>', html, flags=re.S)
    new = [body for flag, body in items if flag]
    assert len(new) == 1 and LABS in new[0] and ">New<" in new[0]
    patient_item = next(body for _flag, body in items if "patient/Patient.rs</code>" in body)
    assert "Already allowed" in patient_item and ">New<" not in patient_item

    token = more.token(browser.approve(more.url))
    assert set(token["scope"].split()) == {"launch/patient", "patient/Patient.rs", LABS}
    old.refresh_from_db()
    assert old.status == "superseded"
    current = ConsentGrant.objects.get(status="active")
    assert set(current.scopes) == {"launch/patient", "patient/Patient.rs", LABS}
    assert kinds() == ["granted", "superseded", "granted"]


def test_a_previously_unticked_scope_is_asked_again_as_new(server, app, browser):
    first = Flow(server, app, f"patient/Patient.rs {LABS}")
    first.token(browser.approve(first.url, untick=[LABS]))
    html = browser.open(Flow(server, app, f"patient/Patient.rs {LABS}").url).text
    assert "New: See your lab results." in html


# --- Requests without health data ----------------------------------------------------------------------


def test_sign_in_only_records_no_consent(server, app, browser):
    flow = Flow(server, app, "openid fhirUser")
    token = flow.token(browser.approve(flow.url))
    assert set(token["scope"].split()) == {"openid", "fhirUser"}
    assert not ConsentGrant.objects.exists() and not LedgerEvent.objects.exists()
    # And it is asked every time: there is no consent to reuse.
    assert browser.open(Flow(server, app, "openid fhirUser").url).status_code == 200


def test_an_account_without_a_patient_record_is_still_refused_patient_scopes(server, app):
    response = Browser(server, UserFactory(fhir_patient_id="")).open(Flow(server, app, "patient/Patient.rs").url)
    assert query_of(response.headers["Location"])["error"] == "access_denied"


def test_the_screen_keeps_the_parents_pkce_check(server, app, browser):
    url = (
        f"{server.authorize}?response_type=code&client_id={app.client_id}&redirect_uri={REDIRECT_URI}"
        f"&scope=patient/Patient.rs&state=s1&aud={server.fhir_base}"
    )
    response = browser.open(url)
    assert "error=invalid_request" in response.headers["Location"]
    assert requests.get(server.authorize, timeout=5, allow_redirects=False).status_code == 302  # to the login


def test_without_a_published_consent_text_the_app_is_told_to_try_later(server, app, browser):
    from django.utils import timezone

    from consent.models import ConsentText

    ConsentText.objects.update(effective_at=timezone.now() + timezone.timedelta(days=1))  # none in effect yet
    flow = Flow(server, app, "patient/Patient.rs")
    response = browser.open(flow.url)
    params = query_of(response.headers["Location"])
    assert params["error"] == "temporarily_unavailable"
    assert params["state"] == flow.state
    assert not ConsentGrant.objects.exists()
