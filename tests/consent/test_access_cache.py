"""Consent decisions kept in the shared cache: answered without a query, and stale the moment a
grant, a care relationship, a provider's decision or the app changes, from any process."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from consent import services
from consent.models import AppAuthorization
from marketplace import generational_cache
from partners.models import App
from tests.api.fhir import helpers as fhir
from tests.consent.helpers import PATIENT, grant, holds, patient_user, provider
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _shared_cache(settings):
    settings.ACCESS_DECISION_CACHE_SECONDS = 60
    cache.clear()


def access(app, data_class="lab_results", patient_id=PATIENT):
    return services.check_access(app=app, patient_id=patient_id, data_class=data_class)


def test_a_decision_asked_again_costs_no_query(django_assert_num_queries):
    app = AppFactory()
    consent = grant(app)
    assert access(app).allowed
    with django_assert_num_queries(0):
        assert access(app).allowed
        assert access(app).grant_id == consent.pk


def test_decisions_are_kept_per_data_class():
    app = AppFactory()
    grant(app)  # observations only
    assert access(app, "lab_results").allowed
    assert access(app, "coverage").code == "consent_required"
    assert access(app, "lab_results").allowed


def test_revocation_is_seen_at_once():
    app = AppFactory()
    patient_user()
    consent = grant(app)
    assert access(app).allowed
    services.consent_revoke(grant=consent, actor="patient", channel="my-apps")
    assert access(app).code == "consent_revoked"


def test_a_new_grant_replaces_a_cached_refusal():
    app = AppFactory()
    assert access(app).code == "consent_required"
    grant(app)
    assert access(app).allowed


def test_a_broader_grant_superseding_the_active_one_is_seen_at_once():
    app = AppFactory()
    grant(app)
    assert access(app, "coverage").code == "consent_required"
    grant(app, scopes=("patient/Observation.rs", "patient/Coverage.rs"))
    assert access(app, "coverage").allowed


def test_the_expiry_task_is_seen_at_once():
    app = AppFactory()
    consent = grant(app, expires_at=timezone.now() + timedelta(days=1))
    assert access(app).allowed
    assert services.consent_expire_due(now=timezone.now() + timedelta(days=2)) == 1
    consent.refresh_from_db()
    assert consent.status == "expired"
    assert access(app).code == "consent_expired"


def test_a_cached_grant_stops_counting_the_moment_it_expires(monkeypatch, django_assert_num_queries):
    app = AppFactory()
    expiry = timezone.now() + timedelta(minutes=5)
    grant(app, expires_at=expiry)
    assert access(app).allowed
    monkeypatch.setattr(timezone, "now", lambda: expiry + timedelta(seconds=1))
    with django_assert_num_queries(0):  # from the cache, yet nothing has run the expiry task
        assert access(app).code == "consent_expired"


def test_a_new_care_relationship_is_seen_by_every_app_at_once():
    first = AppFactory(environment=App.Environment.PRODUCTION)
    second = AppFactory(environment=App.Environment.PRODUCTION)
    grant(first)
    grant(second)
    assert access(first).allowed and access(second).allowed  # no provider holds records yet
    holds(provider("Riverside Clinic"))
    assert access(first).code == "organization_authorization"
    assert access(second).code == "organization_authorization"


def test_a_provider_blocking_an_app_is_seen_for_every_patient_at_once():
    app = AppFactory()
    clinic = provider("Hillside Hospital")
    holds(clinic, "p-1")
    holds(clinic, "p-2")
    grant(app, patient_id="p-1")
    grant(app, patient_id="p-2")
    assert access(app, patient_id="p-1").allowed and access(app, patient_id="p-2").allowed
    authorization = AppAuthorization.objects.create(organization=clinic, app=app, decision="blocked")
    assert access(app, patient_id="p-1").code == "organization_authorization"
    assert access(app, patient_id="p-2").code == "organization_authorization"
    authorization.delete()
    assert access(app, patient_id="p-1").allowed


def test_an_app_moved_to_production_is_seen_at_once():
    app = AppFactory()
    holds(provider("Riverside Clinic"))
    grant(app)
    assert access(app).allowed  # a sandbox app is enabled by default
    app.environment = App.Environment.PRODUCTION
    app.save()
    assert access(app).code == "organization_authorization"


def test_a_renamed_provider_is_named_by_its_new_name():
    app = AppFactory()
    clinic = provider("Hillside Hospital")
    holds(clinic)
    grant(app)
    AppAuthorization.objects.create(organization=clinic, app=app, decision="blocked")
    assert "Hillside Hospital" in access(app).detail
    clinic.name = "Hillside Health"
    clinic.save()
    assert "Hillside Health" in access(app).detail


def test_the_fhir_api_refuses_on_the_request_after_a_provider_blocks_the_app(client, settings):
    settings.TOKEN_CACHE_SECONDS = 60
    app = AppFactory()
    clinic = provider("Hillside Hospital")
    fhir.patient("p1")
    holds(clinic, "p1")
    fhir.consent(app, "p1")
    raw = fhir.patient_token(app, "p1")
    for _ in range(3):  # the later ones fetch the consent facts with the token
        assert fhir.get(client, "/fhir/r4/Patient/p1", raw).status_code == 200
    AppAuthorization.objects.create(organization=clinic, app=app, decision="blocked")
    response = fhir.get(client, "/fhir/r4/Patient/p1", raw)
    assert response.status_code == 403
    assert "has blocked" in response.json()["issue"][0]["diagnostics"]


# --- the generation stamps themselves ---------------------------------------------------------------


def test_a_value_read_before_a_change_and_stored_after_it_is_never_used():
    missed = generational_cache.lookup("k", ("thing",))
    assert not missed.hit
    generational_cache.bump("thing")  # a writer commits while the reader was reading the database
    generational_cache.store("k", "what the reader saw", missed.stamps, 60)
    assert not generational_cache.lookup("k", ("thing",)).hit
    again = generational_cache.lookup("k", ("thing",))
    generational_cache.store("k", "fresh", again.stamps, 60)
    found = generational_cache.lookup("k", ("thing",))
    assert (found.hit, found.value) == (True, "fresh")


def test_an_evicted_stamp_makes_the_values_resting_on_it_stale():
    generational_cache.bump("thing")
    first = generational_cache.lookup("k", ("thing", "other"))
    generational_cache.store("k", "value", first.stamps, 60)
    assert generational_cache.lookup("k", ("thing", "other")).hit
    cache.delete(generational_cache.GENERATION_PREFIX + "thing")
    assert not generational_cache.lookup("k", ("thing", "other")).hit


def test_a_bump_inside_a_transaction_is_repeated_at_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        generational_cache.bump("thing")
        during = generational_cache.lookup("k", ("thing",))
        generational_cache.store("k", "read before commit", during.stamps, 60)
        assert generational_cache.lookup("k", ("thing",)).hit  # the writer's own transaction
    assert not generational_cache.lookup("k", ("thing",)).hit


def test_a_patient_token_s_reads_after_the_first_decide_without_a_query(client, settings, django_assert_num_queries):
    settings.TOKEN_CACHE_SECONDS = 60
    app = AppFactory()
    fhir.patient("p1")
    fhir.consent(app, "p1")
    raw = fhir.patient_token(app, "p1")
    assert fhir.get(client, "/fhir/r4/Patient/p1", raw).status_code == 200
    with django_assert_num_queries(2):  # the row and the audit event: token and consent from the cache
        assert fhir.get(client, "/fhir/r4/Patient/p1", raw).status_code == 200
    fhir.consent(app, "p1", scopes=("patient/Observation.rs",))  # supersedes: Patient no longer covered
    response = fhir.get(client, "/fhir/r4/Patient/p1", raw)
    assert response.status_code == 403
