"""Consent services: texts and their versions, grants and their reuse, consent kept apart from
organizations' authorization, revocation and expiry with all their effects, and enforcement."""

import secrets
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken, set_token_value

from consent import services
from consent.models import AppAuthorization, AppendOnlyError, ConsentGrant, ConsentText, LedgerEvent
from consent.tasks import expire_consents
from partners.exceptions import InvalidState, NotPermitted
from partners.models import App, OutboxEvent
from tests.api.conftest import bearer, make_token
from tests.consent.helpers import OBSERVATIONS, PATIENT, grant, holds, patient_user, provider, provider_app
from tests.factories import AppFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

LAB_RESULTS_URL = f"/api/test/lab-results/{PATIENT}"


def new_text(version: int, data_classes, *, publish: bool = True, **fields) -> ConsentText:
    text = ConsentText.objects.create(
        purpose=services.APP_ACCESS,
        version=version,
        title=fields.pop("title", f"Version {version}"),
        body=fields.pop("body", "Plain words."),
        data_classes=list(data_classes),
        effective_at=fields.pop("effective_at", timezone.now()),
        **fields,
    )
    return services.consent_text_publish(text=text) if publish else text


def refresh_token(app, user) -> RefreshToken:
    token = RefreshToken(application=app, user=user)
    set_token_value(token, secrets.token_urlsafe(30))
    token.save()
    return token


def verified() -> str:
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    return out.getvalue()


# --- texts -----------------------------------------------------------------------------------------


def test_the_seeded_text_is_the_current_one():
    text = services.current_text()
    assert (text.purpose, text.version) == ("app-access", 1)
    assert text.published_at is not None


def test_a_published_text_cannot_change_or_be_deleted():
    text = services.current_text()
    text.body = "Something else entirely."
    with pytest.raises(AppendOnlyError, match="publish a new version"):
        text.save()
    with pytest.raises(AppendOnlyError, match="cannot be deleted"):
        text.delete()
    assert ConsentText.objects.get(pk=text.pk).body != "Something else entirely."


def test_a_draft_can_change_and_be_deleted_until_published():
    draft = new_text(2, ["demographics"], publish=False)
    draft.title = "Better words"
    draft.save()
    assert services.current_text().version == 1  # drafts are never current
    draft.delete()
    assert not ConsentText.objects.filter(version=2).exists()


def test_publishing_twice_or_with_unknown_data_classes_is_refused():
    text = new_text(2, ["demographics"])
    with pytest.raises(InvalidState, match="already published"):
        services.consent_text_publish(text=text)
    bad = new_text(3, ["demographics", "horoscope"], publish=False)
    with pytest.raises(ValidationError, match="horoscope"):
        services.consent_text_publish(text=bad)
    assert ConsentText.objects.get(pk=bad.pk).published_at is None


def test_a_text_effective_later_is_not_current_yet():
    new_text(2, ["demographics"], effective_at=timezone.now() + timedelta(days=3))
    assert services.current_text().version == 1


def test_a_new_version_adding_data_classes_asks_again_and_a_rewording_does_not():
    app = AppFactory()
    new_text(2, ["demographics", "observations"])
    given = grant(app)
    assert services.consent_needed(patient_id=PATIENT, app=app, scopes=[OBSERVATIONS]).satisfied

    new_text(3, ["demographics", "observations"], body="The same, in plainer words.")
    need = services.consent_needed(patient_id=PATIENT, app=app, scopes=[OBSERVATIONS])
    assert (need.grant, need.new_text, need.new_scopes) == (given, False, [])

    new_text(4, ["demographics", "observations", "coverage"])
    need = services.consent_needed(patient_id=PATIENT, app=app, scopes=[OBSERVATIONS])
    assert need.new_text is True
    assert not need.satisfied


def test_grants_keep_the_text_they_were_given_under():
    app = AppFactory()
    new_text(2, ["demographics", "observations"])
    first = grant(app)
    new_text(3, ["demographics", "observations", "coverage"])
    second = grant(app)  # the new text adds classes: a new grant under it
    assert (first.text.version, second.text.version) == (2, 3)
    assert ConsentGrant.objects.get(pk=first.pk).text.version == 2


# --- grants ----------------------------------------------------------------------------------------


def test_a_grant_records_its_event_and_announces_it():
    app = AppFactory()
    given = grant(app, scopes=[OBSERVATIONS, "patient/Patient.rs", "openid"])
    assert given.status == "active"
    assert given.data_classes == ["demographics", "observations"]  # identity scopes are not data
    event = LedgerEvent.objects.get(grant=given)
    assert (event.kind, event.sequence, event.text_label) == ("granted", 0, "app-access:v1")
    announced = OutboxEvent.objects.get(type="consent.granted")
    assert announced.payload["consent_id"] == given.pk
    assert announced.patient_id == PATIENT


def test_a_grant_that_covers_the_request_is_reused():
    app = AppFactory()
    first = grant(app, scopes=[OBSERVATIONS, "patient/Patient.rs"])
    again = grant(app, scopes=[OBSERVATIONS])
    assert again.pk == first.pk
    assert LedgerEvent.objects.filter(patient_id=PATIENT).count() == 1
    assert OutboxEvent.objects.filter(type="consent.granted").count() == 1


def test_a_grant_for_more_supersedes_the_active_one():
    app = AppFactory()
    first = grant(app)
    second = grant(app, scopes=[OBSERVATIONS, "patient/Patient.rs"])
    first.refresh_from_db()
    assert first.status == "superseded" and first.ended_at is not None
    assert second.status == "active"
    kinds = list(LedgerEvent.objects.filter(patient_id=PATIENT).values_list("kind", "grant_id"))
    assert kinds == [("granted", first.pk), ("superseded", first.pk), ("granted", second.pk)]
    assert ConsentGrant.objects.filter(patient_id=PATIENT, status="active").count() == 1
    assert "intact: 3 events" in verified()


def test_a_grant_needs_a_patient():
    with pytest.raises(ValidationError):
        grant(AppFactory(), patient_id="")


def test_a_denial_is_recorded_in_the_ledger():
    app = AppFactory()
    event = services.consent_deny(
        patient_id=PATIENT, app=app, scopes=[OBSERVATIONS], denied_by=patient_user(), channel="consent_screen"
    )
    assert (event.kind, event.sequence) == ("denied", 0)
    assert not ConsentGrant.objects.exists()


# --- consent and organization authorization are separate ---------------------------------------------


def access(app, data_class="lab_results", patient_id=PATIENT):
    return services.check_access(app=app, patient_id=patient_id, data_class=data_class)


def test_no_consent_is_consent_required():
    decision = access(AppFactory())
    assert (decision.allowed, decision.code) == (False, "consent_required")
    assert "has not consented" in decision.detail


def test_consent_without_the_providers_authorization_of_a_production_app_is_refused():
    app = AppFactory(environment=App.Environment.PRODUCTION)
    holds(provider("Riverside Clinic"))
    grant(app)
    decision = access(app)
    assert (decision.allowed, decision.code) == (False, "organization_authorization")
    assert "Riverside Clinic" in decision.detail
    assert "has not enabled" in decision.detail


def test_consent_when_a_provider_blocked_the_app_is_refused():
    app = AppFactory()  # a sandbox app, enabled by default...
    clinic = provider("Hillside Hospital")
    holds(clinic)
    grant(app)
    assert access(app).allowed
    AppAuthorization.objects.create(organization=clinic, app=app, decision="blocked")  # ...until blocked
    decision = access(app)
    assert (decision.allowed, decision.code) == (False, "organization_authorization")
    assert "has blocked" in decision.detail


def test_authorization_without_consent_is_consent_required():
    app = AppFactory(environment=App.Environment.PRODUCTION)
    clinic = provider()
    holds(clinic)
    AppAuthorization.objects.create(organization=clinic, app=app, decision="enabled")
    assert access(app).code == "consent_required"
    grant(app)
    assert access(app).allowed


def test_every_provider_holding_records_must_allow_the_app():
    app = AppFactory(environment=App.Environment.PRODUCTION)
    first, second = provider("First Clinic"), provider("Second Clinic")
    holds(first)
    holds(second)
    grant(app)
    AppAuthorization.objects.create(organization=first, app=app, decision="enabled")
    assert "Second Clinic" in access(app).detail
    AppAuthorization.objects.create(organization=second, app=app, decision="enabled")
    assert access(app).allowed


def test_app_authorization_is_set_by_a_provider_s_owner_or_admin_only():
    from tests.factories import member

    app = AppFactory()
    owner = member(organization=provider())
    decision = services.app_authorization_set(
        organization=owner.organization, app=app, decision="blocked", actor=owner.user, reason="Unvetted."
    )
    assert decision.decision == "blocked"
    viewer = member(role="developer", organization=owner.organization)
    with pytest.raises(NotPermitted):
        services.app_authorization_set(organization=owner.organization, app=app, decision="enabled", actor=viewer.user)
    developer_org = member(organization=OrganizationFactory())
    with pytest.raises(NotPermitted, match="provider"):
        services.app_authorization_set(
            organization=developer_org.organization, app=app, decision="enabled", actor=developer_org.user
        )


def test_a_grant_covers_only_its_data_classes():
    app = AppFactory()
    grant(app, scopes=["patient/Patient.rs"])
    decision = access(app, "lab_results")
    assert (decision.allowed, decision.code) == (False, "consent_required")
    assert "does not cover" in decision.detail
    assert access(app, "demographics").allowed
    grant(app, scopes=["patient/Observation.rs?category=laboratory"])
    assert access(app, "lab_results").allowed
    assert not access(app, "vital_signs").allowed


# --- revocation ------------------------------------------------------------------------------------


@pytest.mark.urls("tests.api.urls")
def test_revocation_revokes_tokens_announces_it_and_the_api_refuses(client):
    app = AppFactory()
    patient = patient_user()
    given = grant(app, granted_by=patient)
    scope = f"launch/patient {OBSERVATIONS}"
    raw = make_token(app, scope, user=patient)
    refresh = refresh_token(app, patient)
    other_patient_token = make_token(app, scope, user=patient_user("456"))
    assert client.get(LAB_RESULTS_URL, **bearer(raw)).status_code == 200

    assert services.consent_revoke_by_patient(grant=given, user=patient) is True

    given.refresh_from_db()
    assert given.status == "revoked" and given.ended_at is not None
    assert not AccessToken.objects.filter(application=app, user=patient).exists()
    refresh.refresh_from_db()
    assert refresh.revoked is not None
    assert AccessToken.objects.filter(application=app, user__fhir_patient_id="456").exists()
    assert client.get("/api/test/events", **bearer(other_patient_token)).status_code == 403  # scope, still valid

    announced = OutboxEvent.objects.get(type="consent.revoked")
    assert (announced.app, announced.patient_id) == (app, PATIENT)
    assert announced.payload["status"] == "revoked" and announced.payload["reason"]
    event = LedgerEvent.objects.get(grant=given, kind="revoked")
    assert event.actor == f"user:{patient.pk}"

    # The old token is gone: the token layer refuses it.
    stale = client.get(LAB_RESULTS_URL, **bearer(raw))
    assert stale.status_code == 401 and stale.json()["code"] == "invalid_token"
    # A token issued afterwards meets the data layer, which names the revocation.
    fresh = client.get(LAB_RESULTS_URL, **bearer(make_token(app, scope, user=patient)))
    assert fresh.status_code == 403
    assert fresh.json()["code"] == "consent_revoked"
    decision = access(app)
    assert (decision.code, decision.grant_id) == ("consent_revoked", given.pk)
    assert "intact: 2 events" in verified()


def test_a_patient_revokes_only_their_own_consents():
    given = grant(AppFactory())
    with pytest.raises(NotPermitted):
        services.consent_revoke_by_patient(grant=given, user=patient_user("456"))
    assert ConsentGrant.objects.get(pk=given.pk).status == "active"


def test_consenting_again_after_revocation_gives_a_new_grant():
    app = AppFactory()
    first = grant(app)
    services.consent_revoke(grant=first, actor="system", channel="api")
    second = grant(app)
    assert second.pk != first.pk
    assert access(app).allowed


# --- expiry ----------------------------------------------------------------------------------------


def test_the_expiry_task_marks_expired_consents_and_records_it():
    app = AppFactory()
    patient = patient_user()
    due = grant(app, expires_at=timezone.now() + timedelta(days=30))
    later = grant(app, patient_id="456", expires_at=timezone.now() + timedelta(days=30))
    ConsentGrant.objects.filter(pk=due.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    make_token(app, f"launch/patient {OBSERVATIONS}", user=patient)

    assert access(app).code == "consent_expired"  # refused from the moment it expires
    assert expire_consents.delay().get() == 1

    due.refresh_from_db()
    assert (due.status, due.end_reason) == ("expired", "Expired")
    event = LedgerEvent.objects.get(grant=due, kind="expired")
    assert event.actor == "system"
    assert not AccessToken.objects.filter(application=app, user=patient).exists()
    assert ConsentGrant.objects.get(pk=later.pk).status == "active"
    assert access(app).code == "consent_expired"
    assert expire_consents.delay().get() == 0  # nothing left to do; nothing recorded twice
    assert LedgerEvent.objects.filter(kind="expired").count() == 1
    assert "intact: 3 events" in verified()


def test_the_expiry_task_is_scheduled_every_five_minutes(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["expire-consents"]
    assert entry == {"task": "consent.tasks.expire_consents", "schedule": 300.0}


# --- a provider recording consent from a signed form ---------------------------------------------------


def record(organization, app, **overrides):
    values = {
        "organization": organization,
        "app": app,
        "patient_id": PATIENT,
        "scopes": [OBSERVATIONS],
        "source_document": "DocumentReference/form-1",
    }
    return services.consent_record_for_patient(**(values | overrides))


def test_a_provider_records_a_consent_from_a_signed_form():
    clinic = provider()
    holds(clinic)
    app = AppFactory()
    recorded = record(clinic, app, expires_at=timezone.now() + timedelta(days=365))
    assert recorded.channel == "signed_form"
    assert recorded.recorded_by_organization == clinic
    assert recorded.source_document == "DocumentReference/form-1"
    event = LedgerEvent.objects.get(grant=recorded)
    assert (event.actor, event.channel) == (f"organization:{clinic.slug}", "signed_form")
    assert access(app).allowed


def test_recording_needs_a_provider_holding_the_patient_s_records():
    app = AppFactory()
    with pytest.raises(NotPermitted, match="provider"):
        record(OrganizationFactory(), app)
    with pytest.raises(NotPermitted, match="does not hold records"):
        record(provider(), app)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"source_document": "  "}, "source_document"),
        ({"scopes": ["patient/Horoscope.rs"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"expires_at": timezone.now() - timedelta(days=1)}, "expires_at"),
    ],
)
def test_recording_validates_each_field(overrides, field):
    clinic = provider()
    holds(clinic)
    with pytest.raises(ValidationError) as caught:
        record(clinic, AppFactory(), **overrides)
    assert field in caught.value.message_dict
    assert not ConsentGrant.objects.exists()


# --- the data layer: a provider's own backend --------------------------------------------------------


@pytest.mark.urls("tests.api.urls")
def test_a_provider_system_token_reaches_its_own_patients_without_consent(client):
    clinic = provider()
    holds(clinic)
    backend = provider_app(clinic)
    raw = make_token(backend, "system/Observation.rs")
    assert client.get(LAB_RESULTS_URL, **bearer(raw)).status_code == 200
    elsewhere = client.get("/api/test/lab-results/999", **bearer(raw))
    assert elsewhere.status_code == 403 and elsewhere.json()["code"] == "consent_required"


@pytest.mark.urls("tests.api.urls")
def test_a_provider_user_token_still_needs_the_patient_s_consent(client):
    clinic = provider()
    holds(clinic)
    app = provider_app(clinic)
    raw = make_token(app, "user/Observation.rs", user=patient_user("777"))
    assert client.get(LAB_RESULTS_URL, **bearer(raw)).json()["code"] == "consent_required"
