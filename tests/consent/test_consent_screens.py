"""Each consent screen shown is recorded (``ConsentScreenShown``) with what the patient decided, for the
admins' consent completion rate: one row per screen, however often it is re-rendered or answered.

Driven with Django's test client (``aud`` is the test server's FHIR base); the live-server flows of
the screen itself are in test_consent_screen.py."""

import base64
import hashlib
import html
import logging
import secrets
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from consent import screen_services
from consent.forms import ConsentRequest
from consent.models import ConsentGrant, ConsentScreenShown, LedgerEvent
from tests.factories import UserFactory
from tests.oauth.conftest import HIDDEN_INPUT, REDIRECT_URI, TICKED_CHECKBOX, make_app

pytestmark = pytest.mark.django_db

LABS = "patient/Observation.rs?category=laboratory"
ASKED = f"launch/patient openid patient/Patient.rs {LABS}"


@pytest.fixture
def app():
    return make_app(name="Lab Buddy")


@pytest.fixture
def patient(client):
    user = UserFactory(fhir_patient_id="p-42")
    client.force_login(user)
    return user


def authorize_url(app, scope: str = ASKED, **extra) -> str:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "aud": "http://testserver/fhir/r4",
        **extra,
    }
    return "/oauth/authorize/?" + urlencode(params)


def answer(client, page: str, *, allow: bool = True, untick=(), tick=()):
    """POST the form on ``page`` as a browser would: its hidden fields and the boxes left ticked
    (less ``untick``, plus ``tick``)."""
    fields = [(name, html.unescape(value)) for name, value in HIDDEN_INPUT.findall(page)]
    fields += [
        (name, html.unescape(value))
        for name, value in TICKED_CHECKBOX.findall(page)
        if html.unescape(value) not in set(untick)
    ]
    fields += [("optional_scopes", name) for name in tick]
    if allow:
        fields.append(("allow", "Authorize"))
    body = urlencode(fields)
    return client.post("/oauth/authorize/", body, content_type="application/x-www-form-urlencoded")


def show(client, app, **kwargs):
    response = client.get(authorize_url(app, **kwargs))
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def signed_request(page: str, user) -> ConsentRequest:
    found = {name: html.unescape(value) for name, value in HIDDEN_INPUT.findall(page)}
    return ConsentRequest.unsign(found["consent_request"], user=user)


def test_showing_the_screen_records_one_undecided_screen(client, app, patient):
    page = show(client, app)
    screen = ConsentScreenShown.objects.get()
    assert (screen.patient_id, screen.app, screen.decision, screen.decided_at) == ("p-42", app, "", None)
    assert screen.scopes == ASKED.split()
    assert screen.data_classes == ["demographics", "lab_results"]
    assert abs(screen.shown_at - timezone.now()) < timedelta(minutes=1)
    # The page carries the screen's key inside the signed request, and nothing else changed on it.
    assert signed_request(page, patient).screen == str(screen.key)
    assert "Lab Buddy" in page and 'name="allow"' in page


def test_approving_marks_the_screen_approved(client, app, patient):
    response = answer(client, show(client, app))
    assert response.status_code == 302 and "code=" in response["Location"]
    screen = ConsentScreenShown.objects.get()
    assert screen.decision == "approved"
    assert screen.decided_at is not None and screen.decided_at >= screen.shown_at
    assert ConsentGrant.objects.get().status == "active"


def test_denying_marks_the_screen_denied(client, app, patient):
    response = answer(client, show(client, app), allow=False)
    assert response.status_code == 302 and "error=access_denied" in response["Location"]
    assert ConsentScreenShown.objects.get().decision == "denied"
    assert LedgerEvent.objects.get().kind == "denied"


def test_a_re_render_after_a_form_error_is_the_same_screen(client, app, patient):
    page = show(client, app, scope="patient/Patient.rs")
    again = answer(client, page, untick=["patient/Patient.rs"])  # unticked everything: refused on the page
    assert again.status_code == 400
    assert "You unticked everything the app asked for" in again.content.decode()
    assert ConsentScreenShown.objects.count() == 1
    # The re-rendered page still names the same screen, and answering it decides that one.
    assert answer(client, again.content.decode(), tick=["patient/Patient.rs"]).status_code == 302
    screen = ConsentScreenShown.objects.get()
    assert screen.decision == "approved"


def test_a_reload_of_the_same_request_is_the_same_screen(client, app, patient):
    first = show(client, app)
    second = show(client, app)  # a new state and PKCE challenge, the same question
    assert ConsentScreenShown.objects.count() == 1
    assert signed_request(first, patient).screen == signed_request(second, patient).screen
    # Asking for something else is another screen.
    show(client, app, scope="patient/Patient.rs")
    assert ConsentScreenShown.objects.count() == 2


def test_a_screen_shown_after_the_last_could_no_longer_be_answered_is_a_new_one(client, app, patient):
    show(client, app)
    ConsentScreenShown.objects.update(shown_at=timezone.now() - screen_services.ANSWERABLE - timedelta(minutes=1))
    show(client, app)
    assert ConsentScreenShown.objects.count() == 2


def test_an_answer_counts_once(client, app, patient):
    page = show(client, app)
    assert answer(client, page).status_code == 302
    decided_at = ConsentScreenShown.objects.get().decided_at
    answer(client, page, allow=False)  # the same page posted again: the first answer stands
    screen = ConsentScreenShown.objects.get()
    assert (screen.decision, screen.decided_at) == ("approved", decided_at)


def test_an_unanswered_screen_stays_undecided(client, app, patient):
    show(client, app)
    show(client, make_app(name="Other"))
    assert list(ConsentScreenShown.objects.values_list("decision", flat=True)) == ["", ""]


def test_a_skipped_screen_or_a_sign_in_only_request_is_not_a_consent_screen(client, app, patient):
    answer(client, show(client, app))
    assert ConsentScreenShown.objects.count() == 1
    # Covered by the active grant: the code is issued at once, no screen shown.
    response = client.get(authorize_url(app))
    assert response.status_code == 302
    # Sign-in only: no health data asked, so no consent is recorded and no consent screen counted.
    assert client.get(authorize_url(app, scope="openid fhirUser")).status_code == 200
    assert ConsentScreenShown.objects.count() == 1


def test_a_failure_to_record_never_breaks_the_screen(client, app, patient, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("database away")

    monkeypatch.setattr(ConsentScreenShown.objects, "create", broken)
    with caplog.at_level(logging.WARNING, logger="consent.screen_services"):
        page = show(client, app)
    assert "consent screen not recorded" in caplog.text
    assert signed_request(page, patient).screen == ""
    monkeypatch.undo()
    # Answered without a key: the consent is recorded as always, and no screen is invented.
    assert answer(client, page).status_code == 302
    assert ConsentGrant.objects.count() == 1
    assert not ConsentScreenShown.objects.exists()


def test_decide_ignores_unknown_keys_and_decisions(app):
    screen = screen_services.consent_screen_show(patient_id="p-1", app=app, scopes=["patient/Patient.rs"])
    assert screen_services.consent_screen_decide(key="", decision="approved") is False
    assert screen_services.consent_screen_decide(key="not-a-uuid", decision="approved") is False
    assert screen_services.consent_screen_decide(key=str(screen.key), decision="maybe") is False
    assert screen_services.consent_screen_decide(key=str(screen.key), decision="denied") is True
    assert screen_services.consent_screen_decide(key=str(screen.key), decision="approved") is False
    screen.refresh_from_db()
    assert screen.decision == "denied"
