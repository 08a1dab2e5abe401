"""/me/apps/: a patient's connected apps, their history, and revoking an app's access."""

import re
from datetime import timedelta

import pytest
import requests
from django.urls import reverse
from django.utils import dateformat, timezone
from oauth2_provider.models import AccessToken

from consent import services
from consent.models import ConsentGrant, LedgerEvent
from partners.models import OutboxEvent
from tests.api.conftest import make_token
from tests.factories import AppFactory, OrganizationFactory, UserFactory

PATIENT = "p-123"


@pytest.fixture
def patient(db):
    return UserFactory(email="pat@example.com", fhir_patient_id=PATIENT)


@pytest.fixture
def patient_client(client, patient):
    client.force_login(patient)
    return client


def give(app, scopes=("launch/patient", "patient/Observation.rs?category=laboratory"), patient_id=PATIENT, **kw):
    return services.consent_grant(patient_id=patient_id, app=app, scopes=list(scopes), channel="consent_screen", **kw)


def revoke_url(grant) -> str:
    return reverse("consent:revoke", args=[grant.pk])


# --- The page --------------------------------------------------------------------------------------


def test_the_urls():
    assert reverse("consent:my-apps") == "/me/apps/"
    assert reverse("consent:revoke", args=[7]) == "/me/apps/7/revoke/"


def test_login_is_required(client, db):
    response = client.get("/me/apps/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_an_account_without_a_patient_record_sees_a_friendly_page(client, db):
    client.force_login(UserFactory(fhir_patient_id=""))
    response = client.get("/me/apps/")
    assert response.status_code == 200
    assert "No patient record is linked to this account" in response.content.decode()


def test_the_nav_links_to_it_for_patients_only(client, patient):
    client.force_login(patient)
    assert 'href="/me/apps/" aria-current="page">My connected apps' in client.get("/me/apps/").content.decode()
    client.force_login(UserFactory(fhir_patient_id=""))
    assert "My connected apps</a>" not in client.get("/").content.decode()


def test_lists_connected_apps_active_first_then_ended(patient_client, patient):
    labs = AppFactory(name="Lab Buddy", organization=OrganizationFactory(name="Buddy Health"))
    old = AppFactory(name="Old Tracker")
    give(old, ["patient/Patient.rs"])
    services.consent_revoke_by_patient(grant=ConsentGrant.objects.get(app=old), user=patient)
    grant = give(labs, ["launch/patient", "patient/Observation.rs?category=laboratory", "offline_access"])

    html = patient_client.get("/me/apps/").content.decode()
    assert html.index("Lab Buddy") < html.index("Old Tracker")
    active = html[html.index("Connected now") : html.index("Ended connections")]
    assert "Buddy Health" in active
    assert "Your lab results" in active and "See your lab results." in active  # what it may see, plainly
    assert grant.created_at.strftime("%Y") in active  # since when
    assert "Until you revoke it" in active  # no expiry
    assert "Never" in active  # last access
    assert "Letting an app use your health information" in active and "(version 1)" in active
    assert f'href="{revoke_url(grant)}"' in active
    ended = html[html.index("Ended connections") : html.index('id="history-title"')]
    assert "Old Tracker" in ended and "Revoked" in ended and "Your name, birth date and contact details" in ended


def test_shows_the_last_access_and_the_expiry(patient_client):
    grant = give(AppFactory(), expires_at=timezone.now() + timedelta(days=30))
    seen = timezone.now() - timedelta(hours=2)
    ConsentGrant.objects.filter(pk=grant.pk).update(last_access_at=seen)
    html = patient_client.get("/me/apps/").content.decode()
    assert dateformat.format(timezone.localtime(seen), "j F Y, H:i") in html
    assert "Never" not in html
    assert "or until you revoke it" in html


def test_history_lists_the_patients_ledger_only(patient_client, patient):
    app = AppFactory(name="Lab Buddy")
    give(app)
    services.consent_deny(
        patient_id=PATIENT, app=app, scopes=["patient/Patient.rs"], denied_by=patient, channel="consent_screen"
    )
    give(AppFactory(name="Someone Else's App"), patient_id="p-999")
    html = patient_client.get("/me/apps/").content.decode()
    history = html[html.index('id="history-title"') :]
    assert "Granted" in history and "Denied" in history
    assert "Consent screen" in history
    assert "The patient declined on the consent screen." in history
    assert "Someone Else" not in html


def test_ten_grants_cost_a_constant_number_of_queries(patient_client, django_assert_max_num_queries):
    for _ in range(10):
        give(AppFactory())
    with django_assert_max_num_queries(12):
        assert patient_client.get("/me/apps/").status_code == 200


# --- Revoking -----------------------------------------------------------------------------------------


def test_the_confirm_step_explains_the_app_loses_access_at_once(patient_client):
    grant = give(AppFactory(name="Lab Buddy"))
    response = patient_client.get(revoke_url(grant))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Revoke Lab Buddy's access?" in html
    assert "loses access at once" in html
    assert 'method="post"' in html and "Revoke access" in html
    ConsentGrant.objects.get(pk=grant.pk, status="active")  # looking changes nothing


def test_revoking_ends_the_grant_the_tokens_and_tells_the_app(patient_client, patient):
    app = AppFactory(name="Lab Buddy")
    grant = give(app)
    make_token(app, "launch/patient patient/Observation.rs?category=laboratory", user=patient)
    other_app_token = make_token(AppFactory(), "patient/Patient.rs", user=patient)

    response = patient_client.post(revoke_url(grant), {"reason": "not_used"}, follow=True)
    assert response.redirect_chain == [("/me/apps/", 302)]
    assert "Lab Buddy no longer has access to your information" in response.content.decode()
    grant.refresh_from_db()
    assert grant.status == "revoked" and grant.ended_at is not None
    event = LedgerEvent.objects.filter(kind="revoked").get()
    assert (event.grant, event.actor, event.channel) == (grant, f"user:{patient.pk}", "consent_screen")
    assert event.reason == "I no longer use this app."
    assert not AccessToken.objects.filter(application=app).exists()
    assert AccessToken.objects.filter(token_checksum__isnull=False).count() == 1  # the other app's token stays
    assert other_app_token
    outbox = OutboxEvent.objects.get(type="consent.revoked")
    assert outbox.app == app and outbox.patient_id == PATIENT
    assert outbox.payload["reason"] == "I no longer use this app."


def test_without_a_reason_the_default_is_recorded(patient_client):
    grant = give(AppFactory())
    patient_client.post(revoke_url(grant))
    assert LedgerEvent.objects.get(kind="revoked").reason == "Revoked by the patient in My connected apps."


def test_an_unknown_reason_is_refused(patient_client):
    grant = give(AppFactory())
    response = patient_client.post(revoke_url(grant), {"reason": "I have a secret condition"})
    assert response.status_code == 200  # the confirm page again, with the error
    assert ConsentGrant.objects.get(pk=grant.pk).status == "active"


def test_a_second_revoke_changes_nothing(patient_client):
    grant = give(AppFactory(name="Lab Buddy"))
    patient_client.post(revoke_url(grant))
    response = patient_client.post(revoke_url(grant), follow=True)
    assert "access had already ended; nothing changed" in response.content.decode()
    assert LedgerEvent.objects.filter(kind="revoked").count() == 1
    assert OutboxEvent.objects.filter(type="consent.revoked").count() == 1
    assert patient_client.get(revoke_url(grant)).status_code == 302  # no confirm page for an ended grant


def test_another_patients_grant_is_not_found(patient_client):
    theirs = give(AppFactory(), patient_id="p-999")
    assert patient_client.get(revoke_url(theirs)).status_code == 404
    assert patient_client.post(revoke_url(theirs)).status_code == 404
    assert ConsentGrant.objects.get(pk=theirs.pk).status == "active"
    assert not LedgerEvent.objects.filter(kind="revoked").exists()


def test_an_account_without_a_patient_record_finds_no_grant(client, db):
    grant = give(AppFactory())
    client.force_login(UserFactory(fhir_patient_id=""))
    assert client.post(revoke_url(grant)).status_code == 404


# --- Revoking in the middle of a session (live server, real tokens) ------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_revoking_mid_session_makes_the_very_next_api_call_fail(live_server, settings):
    from tests.consent.test_consent_screen import Flow
    from tests.oauth.conftest import Browser, make_app

    settings.PUBLIC_BASE_URL = live_server.url
    settings.ROOT_URLCONF = "tests.api.urls"  # the test-only lab-results endpoint behind the data layer

    class Server:
        url = live_server.url
        authorize = f"{live_server.url}/oauth/authorize/"
        token = f"{live_server.url}/oauth/token/"
        fhir_base = f"{live_server.url}/fhir/r4"

    user = UserFactory(email="pat@example.com", fhir_patient_id=PATIENT)
    browser = Browser(Server, user)
    flow = Flow(Server, make_app(), "launch/patient patient/Observation.rs?category=laboratory offline_access")
    token = flow.token(browser.approve(flow.url))
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    labs = f"{live_server.url}/api/test/lab-results/{PATIENT}"
    assert requests.get(labs, headers=auth, timeout=5).status_code == 200
    assert requests.get(f"{live_server.url}/api/v1/token-info", headers=auth, timeout=5).status_code == 200

    grant = ConsentGrant.objects.get(status="active")
    confirm = browser.open(f"{live_server.url}{revoke_url(grant)}")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', confirm.text).group(1)
    revoked = browser.session.post(
        f"{live_server.url}{revoke_url(grant)}",
        data={"csrfmiddlewaretoken": csrf, "reason": ""},
        headers={"Referer": confirm.url},
        allow_redirects=False,
    )
    assert revoked.status_code == 302

    after = requests.get(labs, headers=auth, timeout=5)
    assert after.status_code == 401
    assert 'error="invalid_token"' in after.headers["WWW-Authenticate"]
    info = requests.get(f"{live_server.url}/api/v1/token-info", headers=auth, timeout=5)
    assert info.status_code == 401
    refresh = requests.post(
        Server.token,
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=(flow.client.client_id, flow.client.client_secret),
        timeout=5,
    )
    assert refresh.status_code == 400  # the refresh token went too
