"""GET /api/<version>/events and /event-types: the event feed (the webhook messages, by cursor, kept 30
days) and the catalogue; and who an event reaches: consent-aware fan-out for events about a patient,
the consent's app for consent.*, the organization's apps for tier.changed, every app for notices."""

import threading
from datetime import timedelta

import jsonschema
import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from api.models import AccessEvent, Deprecation, Patient
from api.workflows import patients
from api.workflows.event_feed_api import example_envelope
from consent.models import ConsentGrant
from consent.services import consent_revoke
from partners import event_services, events
from partners.event_models import EventRecipient
from partners.models import OutboxEvent
from partners.services import event_publish, tier_upgrade_request_approve
from tests.api.conftest import make_token
from tests.api.fhir import helpers as fhir
from tests.api.workflows.helpers import VISIT_SCOPES, bookable, get, post, problem
from tests.factories import AppFactory, TierUpgradeRequestFactory, UserFactory

pytestmark = pytest.mark.django_db

V1 = "/api/v1/events"
V2 = "/api/v2/events"
TYPES_V1 = "/api/v1/event-types"


# --- builders ------------------------------------------------------------------------------------


def system_token(app, scope="events.read") -> str:
    return make_token(app, scope)


def patient_token(app, patient_id="p1", scope="launch/patient events.read") -> str:
    return make_token(app, scope, user=UserFactory(fhir_patient_id=patient_id))


def fan_out_all() -> None:
    """What the workers do once the publishing transactions commit (on_commit callbacks never run inside
    the test's transaction)."""
    for pk in (
        OutboxEvent.objects.filter(dispatched_at__isnull=True).order_by("occurred_at").values_list("pk", flat=True)
    ):
        event_services.event_fan_out(event_id=pk)


def tier_changed(organization, to_tier="verified") -> OutboxEvent:
    with transaction.atomic():
        return event_publish(
            type="tier.changed",
            payload={
                "organization": organization.slug,
                "from_tier": "sandbox",
                "to_tier": to_tier,
                "changed_at": timezone.now().isoformat(),
            },
            organization=organization,
        )


def appointment_booked(patient_id="p1", visit_id="visit-1") -> OutboxEvent:
    with transaction.atomic():
        return event_publish(
            type="appointment.booked",
            payload={
                "visit_id": visit_id,
                "status": "booked",
                "patient": f"Patient/{patient_id}",
                "slot": "Slot/sl1",
                "start": None,
                "end": None,
            },
            patient_id=patient_id,
        )


def feed(client, raw, url=V1, **params) -> dict:
    response = get(client, url, raw, **params)
    assert response.status_code == 200, response.content
    return response.json()


def types_in(body) -> list[str]:
    return [item["type"] for item in body["data"]]


def feed_types(app) -> list[str]:
    """The types an app's feed holds, in position order, as fanned out (whatever the consent now)."""
    return list(EventRecipient.objects.filter(app=app).order_by("position").values_list("event__type", flat=True))


def assert_valid(event: OutboxEvent) -> None:
    """The message a receiver gets for a real event fits the schema the catalogue publishes."""
    event_type = events.get(event.type)
    message = event_services.envelope(event, sequence=1)
    jsonschema.Draft202012Validator(
        events.envelope_schema(event_type), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(message)


# --- the feed --------------------------------------------------------------------------------------


def test_the_feed_pages_by_cursor_in_position_order_with_the_webhook_messages(client):
    app = AppFactory()
    published = [tier_changed(app.organization, to_tier=f"tier-{n}") for n in range(5)]
    fan_out_all()
    raw = system_token(app)
    seen, params = [], {"limit": 2}
    for expected_size in (2, 2, 1):
        response = get(client, V1, raw, **params)
        assert response.status_code == 200, response.content
        assert response["Cache-Control"] == "no-store"
        body = response.json()
        assert len(body["data"]) == expected_size
        assert body["next"].startswith("http://testserver/api/v1/events?")
        assert response["Link"] == f'<{body["next"]}>; rel="next"'
        seen += body["data"]
        params = {"limit": 2, "after": body["next_cursor"]}
    # Exactly the webhook body (without the per-subscription sequence), in position order.
    by_position = EventRecipient.objects.filter(app=app).order_by("position").select_related("event")
    assert seen == [event_services.envelope(row.event) for row in by_position]
    assert [item["id"] for item in seen] == [event_services.event_id(e) for e in published]
    assert {tuple(item) for item in seen} == {("id", "type", "version", "occurred_at", "data")}

    # Up to date: an empty page, and the very cursor that was sent, to ask again with later.
    last = feed(client, raw, **params)
    assert last["data"] == [] and last["next_cursor"] == params["after"]
    again = feed(client, raw, **params)
    assert again["next_cursor"] == params["after"]

    newest = tier_changed(app.organization)
    fan_out_all()
    after_new = feed(client, raw, **params)
    assert [item["id"] for item in after_new["data"]] == [event_services.event_id(newest)]
    assert after_new["next_cursor"] != params["after"]


def test_v2_serves_the_same_feed_and_cursors(client):
    app = AppFactory()
    tier_changed(app.organization)
    tier_changed(app.organization)
    fan_out_all()
    raw = system_token(app)
    v1, v2 = feed(client, raw, limit=1), feed(client, raw, url=V2, limit=1)
    assert v1["data"] == v2["data"] and v1["next_cursor"] == v2["next_cursor"]
    assert v2["next"].startswith("http://testserver/api/v2/events?")
    assert (
        feed(client, raw, url=V2, after=v1["next_cursor"])["data"] == feed(client, raw, after=v1["next_cursor"])["data"]
    )


def test_an_empty_feed_gives_a_cursor_that_later_events_follow(client):
    app = AppFactory()
    raw = system_token(app)
    first = feed(client, raw)
    assert first["data"] == [] and first["next_cursor"]
    event = tier_changed(app.organization)
    fan_out_all()
    assert [item["id"] for item in feed(client, raw, after=first["next_cursor"])["data"]] == [
        event_services.event_id(event)
    ]


def test_the_types_filter_keeps_the_types_asked_for_and_the_cursor_moves_past_the_rest(client):
    app = AppFactory()
    tier_changed(app.organization)
    with transaction.atomic():
        deprecation = Deprecation.objects.create(
            path_prefix="v1/visits",
            title="v1 visits",
            summary="Use v2.",
            replacement="/api/v2/visits",
            migration_guide="/docs/migrating-to-v2/",
            announced_at=timezone.now(),
            sunset_at=timezone.now() + timedelta(days=200),
        )
        from api.deprecations import deprecation_announce

        deprecation_announce(deprecation=deprecation, base_url="https://developer.example.com/")
    tier_changed(app.organization)
    fan_out_all()
    raw = system_token(app)
    body = feed(client, raw, types="deprecation.announced")
    assert types_in(body) == ["deprecation.announced"]
    assert body["data"][0]["data"]["migration_guide"] == "https://developer.example.com/docs/migrating-to-v2/"
    # The cursor is past both tier changes: nothing more of that type, and nothing to skip later.
    assert feed(client, raw, types="deprecation.announced", after=body["next_cursor"])["data"] == []
    assert types_in(feed(client, raw, types=" tier.changed , tier.changed")) == ["tier.changed", "tier.changed"]

    unknown = problem(get(client, V1, raw, types="tier.changed,visit.booked"), 400, "validation_error")
    assert "visit.booked" in str(unknown)
    problem(get(client, V1, raw, types="webhook.test"), 400, "validation_error")


@pytest.mark.parametrize("limit", ["0", "501", "ten"])
def test_the_limit_is_checked(client, limit):
    problem(get(client, V1, system_token(AppFactory()), limit=limit), 400, "validation_error")


def test_five_hundred_is_the_largest_page(client):
    app = AppFactory()
    assert feed(client, system_token(app), limit="500")["data"] == []


def test_without_the_events_read_scope_it_is_refused(client):
    app = AppFactory()
    body = problem(get(client, V1, system_token(app, scope="appointments.read")), 403, "insufficient_scope")
    assert body["missing_scopes"] == ["events.read"]


def test_a_cursor_must_be_this_server_s_for_this_app_s_feed(client):
    app, other = AppFactory(), AppFactory()
    tier_changed(app.organization)
    tier_changed(other.organization)
    fan_out_all()
    others_cursor = feed(client, system_token(other))["next_cursor"]
    raw = system_token(app)
    for cursor in ("garbage", others_cursor, others_cursor[:-2] + "xx"):
        problem(get(client, V1, raw, after=cursor), 400, "malformed_request")


def test_a_patient_token_sees_only_its_own_patient_s_events(client):
    app = AppFactory()
    for patient_id in ("p1", "p2"):
        fhir.patient(patient_id)
        fhir.consent(app, patient_id, scopes=("appointments.read",))
    appointment_booked("p1", "visit-1")
    appointment_booked("p2", "visit-2")
    tier_changed(app.organization)
    fan_out_all()
    assert sorted(feed_types(app)) == sorted(
        ["consent.granted", "consent.granted", "appointment.booked", "appointment.booked", "tier.changed"]
    )

    mine = feed(client, patient_token(app, "p1"))
    assert types_in(mine) == ["consent.granted", "appointment.booked"]
    assert {item["data"]["patient"] for item in mine["data"]} == {"Patient/p1"}
    assert len(feed(client, system_token(app))["data"]) == 5


def test_reading_events_about_a_patient_is_written_to_the_access_audit(client):
    app = AppFactory()
    fhir.patient("p1")
    grant = fhir.consent(app, "p1", scopes=("appointments.read",))
    appointment_booked("p1")
    fan_out_all()
    feed(client, system_token(app))
    audit = AccessEvent.objects.get()
    assert (audit.resource_type, audit.patient_id, audit.action, audit.outcome, audit.consent_grant_id) == (
        "Appointment",
        "p1",
        "search",
        "allowed",
        grant.pk,
    )


# --- who an event reaches ------------------------------------------------------------------------


def test_an_event_about_a_patient_reaches_only_apps_whose_consent_covers_its_data(client):
    booking_app = AppFactory()
    lab_only = AppFactory()  # the patient consented, but to lab results only
    stranger = AppFactory()  # no consent at all
    bookable(booking_app)  # patient p1, a free slot, p1's consent to appointments for booking_app
    fhir.consent(lab_only, "p1", scopes=("lab_results.read",))
    raw = make_token(booking_app, VISIT_SCOPES, user=UserFactory(fhir_patient_id="p1"))
    response = post(client, "/api/v1/visits", raw, {"slot": "Slot/sl1", "patient": "Patient/p1", "reason": "Check-up"})
    assert response.status_code == 201, response.content
    fan_out_all()

    booked = OutboxEvent.objects.get(type="appointment.booked")
    assert_valid(booked)
    assert set(EventRecipient.objects.filter(event=booked).values_list("app_id", flat=True)) == {booking_app.pk}
    assert "appointment.booked" not in feed_types(lab_only)
    assert feed_types(stranger) == []
    item = feed(client, system_token(booking_app), types="appointment.booked")["data"]
    assert item == [event_services.envelope(booked)]
    assert item[0]["data"]["visit_id"] == response.json()["id"]


def test_a_cancellation_reaches_the_same_apps_and_fits_its_schema(client):
    app = AppFactory()
    bookable(app)
    raw = make_token(app, VISIT_SCOPES, user=UserFactory(fhir_patient_id="p1"))
    visit = post(client, "/api/v1/visits", raw, {"slot": "Slot/sl1", "patient": "Patient/p1", "reason": "Check-up"})
    cancelled = post(client, f"/api/v1/visits/{visit.json()['id']}/cancel", raw, {"reason": "Feeling better"})
    assert cancelled.status_code == 200, cancelled.content
    fan_out_all()
    for event in OutboxEvent.objects.filter(type__startswith="appointment."):
        assert_valid(event)
    assert types_in(feed(client, system_token(app), types="appointment.booked,appointment.cancelled")) == [
        "appointment.booked",
        "appointment.cancelled",
    ]


def test_a_lab_result_share_s_event_fits_its_schema(client):
    from tests.factories import OrganizationFactory

    app = AppFactory()
    fhir.patient("p1")
    fhir.observation("lab1", "p1")
    fhir.consent(app, "p1", scopes=("lab_results.share", "lab_results.read"))
    OrganizationFactory(slug="second-opinion")
    raw = make_token(app, "launch/patient lab_results.share", user=UserFactory(fhir_patient_id="p1"))
    expires_at = (timezone.now() + timedelta(days=30)).isoformat()
    body = {"recipient": "second-opinion", "expires_at": expires_at, "purpose": "Second opinion"}
    assert post(client, "/api/v1/lab-results/lab1/shares", raw, body).status_code == 201
    assert_valid(OutboxEvent.objects.get(type="lab_result.shared"))


def test_a_revoked_consent_stops_the_fan_out_and_the_revocation_itself_still_arrives(client):
    watcher, other = AppFactory(), AppFactory()
    fhir.patient("p1")
    grant = fhir.consent(watcher, "p1", scopes=("appointments.read",))
    fhir.consent(other, "p1", scopes=("appointments.read",))
    assert consent_revoke(grant=grant, actor="patient:p1", channel=ConsentGrant.Channel.CONSENT_SCREEN, reason="No")
    appointment_booked("p1")
    fan_out_all()

    assert feed_types(watcher) == ["consent.granted", "consent.revoked"]
    assert "appointment.booked" in feed_types(other)
    body = feed(client, system_token(watcher))
    assert types_in(body) == ["consent.granted", "consent.revoked"]
    revoked = OutboxEvent.objects.get(type="consent.revoked")
    assert_valid(revoked)
    assert body["data"][1] == event_services.envelope(revoked)
    assert body["data"][1]["data"]["status"] == "revoked"


def test_events_about_a_patient_leave_the_feed_once_their_consent_is_revoked(client):
    app = AppFactory()
    fhir.patient("p1")
    grant = fhir.consent(app, "p1", scopes=("appointments.read",))
    appointment_booked("p1")
    fan_out_all()
    raw = system_token(app)
    assert types_in(feed(client, raw)) == ["consent.granted", "appointment.booked"]
    consent_revoke(grant=grant, actor="patient:p1", channel=ConsentGrant.Channel.CONSENT_SCREEN)
    fan_out_all()
    # Read under the consent in force now, as every list of the patient's data is; consent.* stay.
    assert types_in(feed(client, raw)) == ["consent.granted", "consent.revoked"]


def test_consent_events_reach_only_the_app_the_consent_is_for():
    app = AppFactory()
    sibling = AppFactory(organization=app.organization)
    stranger = AppFactory()
    fhir.patient("p1")
    fhir.consent(app, "p1", scopes=("appointments.read",))
    fhir.consent(stranger, "p1", scopes=("appointments.read",))
    fan_out_all()
    granted = OutboxEvent.objects.filter(type="consent.granted", app=app).get()
    assert_valid(granted)
    assert list(EventRecipient.objects.filter(event=granted).values_list("app_id", flat=True)) == [app.pk]
    assert feed_types(sibling) == []
    assert feed_types(stranger) == ["consent.granted"]  # its own, not the other app's


def test_a_tier_change_reaches_every_app_of_the_organization_and_no_other(client):
    upgrade = TierUpgradeRequestFactory()
    organization = upgrade.organization
    first, second = AppFactory(organization=organization), AppFactory(organization=organization)
    stranger = AppFactory()
    assert tier_upgrade_request_approve(upgrade_request=upgrade, reviewer=UserFactory(is_staff=True))
    fan_out_all()
    changed = OutboxEvent.objects.get(type="tier.changed")
    assert_valid(changed)
    assert changed.payload["to_tier"] == "verified"
    assert set(EventRecipient.objects.filter(event=changed).values_list("app_id", flat=True)) == {first.pk, second.pk}
    assert feed_types(stranger) == []
    assert types_in(feed(client, system_token(second))) == ["tier.changed"]


def test_a_deprecation_reaches_every_app(client, admin_client):
    apps = [AppFactory(), AppFactory(), AppFactory()]
    now = timezone.now()
    response = admin_client.post(
        "/admin/api/deprecation/add/",
        {
            "path_prefix": "v1/visits",
            "title": "v1 visits move to v2",
            "summary": "Use v2.",
            "published": "on",
            "replacement": "/api/v2/visits",
            "migration_guide": "/docs/migrating-to-v2/",
            "announced_at_0": now.strftime("%Y-%m-%d"),
            "announced_at_1": now.strftime("%H:%M:%S"),
            "sunset_at_0": (now + timedelta(days=200)).strftime("%Y-%m-%d"),
            "sunset_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content
    fan_out_all()
    announced = OutboxEvent.objects.get(type="deprecation.announced")
    assert_valid(announced)
    assert announced.payload["migration_guide"] == "http://testserver/docs/migrating-to-v2/"
    for app in apps:
        assert feed_types(app) == ["deprecation.announced"]
    assert types_in(feed(client, system_token(apps[0]))) == ["deprecation.announced"]
    # A patient-context token is about one patient; platform notices are for the app's backend.
    assert feed(client, patient_token(apps[0]))["data"] == []


def test_fan_out_runs_once(client):
    app = AppFactory()
    event = tier_changed(app.organization)
    event_services.event_fan_out(event_id=event.pk)
    assert event_services.event_fan_out(event_id=event.pk) == []
    assert EventRecipient.objects.filter(event=event).count() == 1
    assert len(feed(client, system_token(app))["data"]) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_later_event_never_shows_before_an_earlier_one_commits(client, monkeypatch):
    """The fan-out holds the app's counter until it commits, so the next fan-out for the app waits, and
    a reader never sees position 2 while 1 is still uncommitted (which would let its cursor skip 1)."""
    monkeypatch.setattr(event_services, "queue_fan_out", lambda event: None)  # fan out by hand, below
    app = AppFactory()
    first, second = tier_changed(app.organization), tier_changed(app.organization)
    raw = system_token(app)
    holding, release = threading.Event(), threading.Event()
    errors = []

    def fan_out_and_hold():
        try:
            with transaction.atomic():
                event_services.event_fan_out(event_id=first.pk)
                holding.set()
                release.wait(10)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    def fan_out_next():
        try:
            event_services.event_fan_out(event_id=second.pk)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    holder = threading.Thread(target=fan_out_and_hold)
    holder.start()
    assert holding.wait(10)
    follower = threading.Thread(target=fan_out_next)
    follower.start()
    follower.join(0.5)
    assert follower.is_alive()  # waiting for the first fan-out's counter row
    midway = feed(client, raw)
    assert midway["data"] == []
    release.set()
    holder.join(10)
    follower.join(10)
    assert errors == []
    body = feed(client, raw, after=midway["next_cursor"])
    assert [item["id"] for item in body["data"]] == [event_services.event_id(first), event_services.event_id(second)]


# --- retention -------------------------------------------------------------------------------------


def age(event: OutboxEvent, days: int) -> None:
    OutboxEvent.objects.filter(pk=event.pk).update(occurred_at=timezone.now() - timedelta(days=days))


def test_events_older_than_thirty_days_are_purged_from_the_feed(client):
    app = AppFactory()
    old, kept = tier_changed(app.organization), tier_changed(app.organization)
    fan_out_all()
    age(old, 31)
    age(kept, 29)
    assert event_services.events_purge() > 0
    assert [item["id"] for item in feed(client, system_token(app))["data"]] == [event_services.event_id(kept)]


def test_a_cursor_whose_following_events_were_purged_has_expired(client):
    app = AppFactory()
    published = [tier_changed(app.organization) for _ in range(3)]
    fan_out_all()
    raw = system_token(app)
    behind = feed(client, raw, limit=1)["next_cursor"]  # read the first event only
    caught_up = feed(client, raw)["next_cursor"]  # read everything
    for event in published[:2]:
        age(event, 31)
    event_services.events_purge()

    body = problem(get(client, V1, raw, after=behind), 410, "event_cursor_expired")
    assert body["retention_days"] == 30
    assert "without after" in body["fix"]
    # Starting again works, and a poller that was up to date is not disturbed by the purge.
    assert [item["id"] for item in feed(client, raw)["data"]] == [event_services.event_id(published[2])]
    assert feed(client, raw, after=caught_up)["data"] == []
    fresh = tier_changed(app.organization)
    fan_out_all()
    assert [item["id"] for item in feed(client, raw, after=caught_up)["data"]] == [event_services.event_id(fresh)]


# --- the catalogue -----------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", events.CATALOGUE.values(), ids=lambda e: e.name)
def test_every_catalogue_example_fits_its_schema(event_type):
    validator = jsonschema.Draft202012Validator(
        events.envelope_schema(event_type), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    jsonschema.Draft202012Validator.check_schema(events.envelope_schema(event_type))
    validator.validate(example_envelope(event_type))
    validator.validate(example_envelope(event_type, sequence=7))


def test_the_issue_s_event_types_are_all_catalogued():
    wanted = {
        "appointment.booked",
        "appointment.cancelled",
        "consent.granted",
        "consent.revoked",
        "lab_result.shared",
        "patient.updated",
        "tier.changed",
        "deprecation.announced",
        "webhook.test",
    }
    assert wanted <= set(events.CATALOGUE)


def test_event_types_lists_the_catalogue_with_schemas_and_examples(client):
    app = AppFactory()
    raw = system_token(app, scope="appointments.read")  # any valid token: the catalogue is public
    for url in (TYPES_V1, "/api/v2/event-types"):
        response = get(client, url, raw)
        assert response.status_code == 200, response.content
        listed = {item["name"]: item for item in response.json()["data"]}
        assert list(listed) == list(events.CATALOGUE)
    booked = listed["appointment.booked"]
    assert (booked["audience"], booked["data_class"], booked["version"], booked["in_feed"]) == (
        "patient",
        "appointments",
        1,
        True,
    )
    assert booked["docs"] == "http://testserver/docs/events/#appointment-booked"
    assert booked["schema"] == events.envelope_schema(events.get("appointment.booked"))
    assert listed["webhook.test"]["in_feed"] is False
    for item in listed.values():
        jsonschema.Draft202012Validator(item["schema"]).validate(item["example"])
    assert get(client, TYPES_V1, "not-a-token").status_code == 401


# --- patient.updated ---------------------------------------------------------------------------------


def test_patient_updated_from_the_admin_reaches_the_apps_consented_to_demographics(client, admin_client):
    fhir.patient("p1")
    demographics, appointments_only = AppFactory(), AppFactory()
    fhir.consent(demographics, "p1", scopes=("patient/Patient.rs",))
    fhir.consent(appointments_only, "p1", scopes=("appointments.read",))
    listing = admin_client.get("/admin/api/patient/", {"environment": "sandbox", "q": "p1"})
    assert listing.status_code == 200 and b"/admin/api/patient/p1/change/" in listing.content
    page = admin_client.get("/admin/api/patient/p1/change/")
    assert page.status_code == 200 and b"Change contact details" in page.content

    response = admin_client.post(
        "/admin/api/patient/p1/change/",
        {
            "phone": "(555) 555-0142",
            "email": "",
            "line1": "12 Elm Street",
            "line2": "",
            "city": "Springfield",
            "state": "IL",
            "postal_code": "62701",
            "country": "US",
        },
    )
    assert response.status_code == 302, response.content
    patient = Patient.objects.get(id="p1")
    assert patient.version_id == 2
    assert patient.body["telecom"] == [{"system": "phone", "value": "(555) 555-0142", "use": "mobile"}]
    assert patient.body["address"] == [
        {
            "use": "home",
            "type": "physical",
            "line": ["12 Elm Street"],
            "city": "Springfield",
            "state": "IL",
            "postalCode": "62701",
            "country": "US",
        }
    ]
    updated = OutboxEvent.objects.get(type="patient.updated")
    assert (updated.payload, updated.patient_id) == (
        {"patient": "Patient/p1", "version_id": "2", "changed": ["telecom", "address"]},
        "p1",
    )
    assert_valid(updated)
    fan_out_all()
    assert "patient.updated" in feed_types(demographics)
    assert "patient.updated" not in feed_types(appointments_only)
    assert types_in(feed(client, system_token(demographics), types="patient.updated")) == ["patient.updated"]
    # The FHIR read shows the new version.
    fhir_body = fhir.get(client, "/fhir/r4/Patient/p1", fhir.system_token(demographics, "system/Patient.rs")).json()
    assert fhir_body["meta"]["versionId"] == "2" and fhir_body["telecom"][0]["value"] == "(555) 555-0142"

    # Saving without a change bumps nothing and announces nothing.
    admin_client.post(
        "/admin/api/patient/p1/change/",
        {
            "phone": "(555) 555-0142",
            "line1": "12 Elm Street",
            "city": "Springfield",
            "state": "IL",
            "postal_code": "62701",
            "country": "US",
        },
    )
    assert Patient.objects.get(id="p1").version_id == 2
    assert OutboxEvent.objects.filter(type="patient.updated").count() == 1


def test_production_patients_are_read_only_in_the_admin(admin_client):
    fhir.patient("p9", environment="production")
    page = admin_client.get("/admin/api/patient/p9/change/")
    assert page.status_code == 200 and b"Change contact details" not in page.content
    assert admin_client.post("/admin/api/patient/p9/change/", {"phone": "(555) 555-0100"}).status_code == 403
    assert not OutboxEvent.objects.filter(type="patient.updated").exists()


def test_the_service_refuses_what_is_not_contact_details():
    from django.core.exceptions import ValidationError

    fhir.patient("p1")
    with pytest.raises(ValidationError) as refused:
        patients.patient_demographics_update(
            environment="sandbox",
            patient_id="p1",
            changes={"birthDate": "1990-01-01", "telecom": [{"system": "pigeon", "value": "coo"}]},
            actor="test",
        )
    assert set(refused.value.message_dict) == {"__all__", "telecom"}
    with pytest.raises(Patient.DoesNotExist):
        patients.patient_demographics_update(environment="production", patient_id="p1", changes={}, actor="test")
    assert Patient.objects.get(id="p1").version_id == 1


def test_sandbox_event_command_announces_a_real_patient_update():
    fhir.patient("p1")
    app = AppFactory()
    fhir.consent(app, "p1", scopes=("patient/Patient.rs",))
    call_command("sandbox_event", "patient.updated", "--patient", "Patient/p1")
    patient = Patient.objects.get(id="p1")
    assert patient.version_id == 2 and patient.body["telecom"][0]["value"].startswith("(555) 555-01")
    fan_out_all()
    assert "patient.updated" in feed_types(app)
