"""POST/GET /api/<version>/visits and cancel: booking takes a free slot, in both API versions."""

import pytest
from django.utils import timezone

from api.models import AccessEvent, Appointment, Slot
from partners.models import OutboxEvent
from tests.api.conftest import make_token
from tests.api.fhir import helpers as fhir
from tests.api.workflows.helpers import VISIT_SCOPES, bookable, get, post, problem
from tests.factories import AppFactory, UserFactory

pytestmark = pytest.mark.django_db

V1 = "/api/v1/visits"
V2 = "/api/v2/visits"


def patient_token(app, patient_id="p1", scope=VISIT_SCOPES):
    return make_token(app, scope, user=UserFactory(fhir_patient_id=patient_id))


def book(client, app, raw, slot="Slot/sl1", patient="Patient/p1", url=V1, **kwargs):
    return post(client, url, raw, {"slot": slot, "patient": patient, "reason": "Annual check-up"}, **kwargs)


def test_booking_takes_the_slot_and_makes_a_booked_appointment(client):
    app = AppFactory()
    bookable(app)
    raw = patient_token(app)
    response = book(client, app, raw)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "booked"
    assert body["patient"] == {"id": "p1", "reference": "Patient/p1"}
    assert (body["slot"], body["practitioner"], body["reason"]) == ("Slot/sl1", "Practitioner/pr1", "Annual check-up")
    assert response["Location"].endswith(f"/api/v1/visits/{body['id']}")
    slot = Slot.objects.get(id="sl1")
    assert (slot.status, slot.body["status"], slot.version_id) == ("busy", "busy", 2)
    appointment = Appointment.objects.get(id=body["id"])
    assert (appointment.status, appointment.app_id, appointment.body["slot"]) == (
        "booked",
        app.pk,
        [{"reference": "Slot/sl1"}],
    )
    assert OutboxEvent.objects.filter(type="appointment.booked", app=app, patient_id="p1").count() == 1
    event = AccessEvent.objects.get(resource_type="Appointment", action="create")
    assert (event.patient_id, event.outcome, event.resource_id) == ("p1", "allowed", body["id"])
    # The FHIR API shows the same appointment.
    fhir_raw = patient_token(app, scope="launch/patient patient/Appointment.rs")
    fhir_body = fhir.get(client, f"/fhir/r4/Appointment/{body['id']}", fhir_raw).json()
    assert fhir_body["status"] == "booked"


def test_v2_shows_the_period_and_a_status_object_and_v1_still_the_flat_shape(client):
    app = AppFactory()
    bookable(app, slots=("sl1", "sl2"))
    raw = patient_token(app)
    v2 = book(client, app, raw, url=V2).json()
    assert set(v2["period"]) == {"start", "end"} and "start" not in v2
    assert v2["status"]["code"] == "booked" and v2["status"]["cancellable"] is True
    v1 = get(client, f"{V1}/{v2['id']}", raw).json()
    assert v1["status"] == "booked" and v1["start"] == v2["period"]["start"]


def test_a_slot_taken_meanwhile_is_409(client):
    app = AppFactory()
    bookable(app)
    raw = patient_token(app)
    assert book(client, app, raw).status_code == 201
    problem(book(client, app, raw), 409, "slot_unavailable")
    assert Appointment.objects.count() == 1


def test_a_past_slot_is_409(client):
    app = AppFactory()
    bookable(app)
    Slot.objects.filter(id="sl1").update(start=timezone.now())
    problem(book(client, app, patient_token(app)), 409, "slot_unavailable")


def test_without_consent_nothing_is_booked_and_the_refusal_is_audited(client):
    app = AppFactory()
    bookable(app, consent=False)
    problem(book(client, app, patient_token(app)), 403, "consent_required")
    assert Slot.objects.get(id="sl1").status == "free"
    assert not Appointment.objects.exists()
    refused = AccessEvent.objects.get(outcome="refused")
    assert (refused.patient_id, refused.action, refused.refusal_code) == ("p1", "create", "consent_required")


def test_reads_are_audited_and_revoked_consent_hides_the_visits(client):
    from consent.models import ConsentGrant
    from consent.services import consent_revoke

    app = AppFactory()
    bookable(app)
    raw = patient_token(app)
    visit = book(client, app, raw).json()
    assert get(client, f"{V1}/{visit['id']}", raw).status_code == 200
    assert [v["id"] for v in get(client, V1, raw).json()["data"]] == [visit["id"]]
    actions = list(AccessEvent.objects.filter(outcome="allowed").values_list("action", flat=True))
    assert actions == ["create", "read", "search"]
    consent_revoke(grant=ConsentGrant.objects.get(app=app, status="active"), actor="patient", channel="my-apps")
    other_token = make_token(app, "appointments.read")  # a system token: the app itself
    assert get(client, V1, other_token).json()["data"] == []
    problem(get(client, f"{V1}/{visit['id']}", other_token), 403, "consent_revoked")


def test_a_patient_token_books_for_its_own_patient_only(client):
    app = AppFactory()
    bookable(app)
    bookable(app, "p2", slots=("sl9",))
    problem(book(client, app, patient_token(app), patient="Patient/p2", slot="Slot/sl9"), 403, "forbidden")


def test_without_the_write_scope_it_is_refused(client):
    app = AppFactory()
    bookable(app)
    problem(book(client, app, patient_token(app, scope="launch/patient appointments.read")), 403, "insufficient_scope")


def test_an_unknown_slot_or_patient_is_404_and_bad_fields_are_listed(client):
    app = AppFactory()
    bookable(app)
    raw = patient_token(app)
    problem(book(client, app, raw, slot="Slot/nope"), 404, "not_found")
    body = problem(post(client, V1, raw, {"slot": "", "patient": "Patient/p1"}), 400, "validation_error")
    assert {e["field"] for e in body["errors"]} >= {"slot", "reason"}


def test_cancelling_frees_the_slot_once(client):
    app = AppFactory()
    bookable(app)
    raw = patient_token(app)
    visit = book(client, app, raw).json()
    response = post(client, f"{V1}/{visit['id']}/cancel", raw, {"reason": "Feeling better"})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    assert Slot.objects.get(id="sl1").status == "free"
    assert OutboxEvent.objects.filter(type="appointment.cancelled").count() == 1
    problem(post(client, f"{V1}/{visit['id']}/cancel", raw, {}), 409, "visit_not_cancellable")
    again = book(client, app, raw)  # the slot can be booked again
    assert again.status_code == 201


def test_another_app_s_visit_is_not_found(client):
    app, other = AppFactory(), AppFactory()
    bookable(app)
    fhir.consent(other, "p1", scopes=("appointments.read", "appointments.write"))  # consent is not enough
    visit = book(client, app, patient_token(app)).json()
    other_raw = patient_token(other)
    problem(get(client, f"{V1}/{visit['id']}", other_raw), 404, "not_found")
    problem(post(client, f"{V1}/{visit['id']}/cancel", other_raw, {}), 404, "not_found")
    assert get(client, V1, other_raw).json()["data"] == []


def test_the_list_pages_by_cursor_newest_first(client):
    app = AppFactory()
    bookable(app, slots=("a1", "a2", "a3"))
    raw = patient_token(app)
    ids = [book(client, app, raw, slot=f"Slot/{s}").json()["id"] for s in ("a1", "a2", "a3")]
    first = get(client, V1, raw, limit=2).json()
    assert [v["id"] for v in first["data"]] == ids[::-1][:2]
    second = client.get(first["next"], HTTP_AUTHORIZATION=f"Bearer {raw}").json()
    assert [v["id"] for v in second["data"]] == [ids[0]] and second["next"] is None
    problem(get(client, V1, raw, cursor="forged"), 400, "malformed_request")
    problem(get(client, V1, raw, limit=500), 400, "validation_error")
