"""Idempotency-Key on the workflow POSTs (IETF draft): required, replayed, in progress, reused for
another request, expired; released when the first attempt fails; safe under a real race."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from api import idempotency
from api.models import Appointment, IdempotencyRecord
from api.tasks import purge_expired_idempotency_keys
from api.workflows import visits
from tests.api.conftest import make_token
from tests.api.fhir import helpers as fhir
from tests.api.workflows.helpers import VISIT_SCOPES, bookable, post, problem
from tests.factories import AppFactory, UserFactory

URL = "/api/v1/visits"
BODY = {"slot": "Slot/sl1", "patient": "Patient/p1", "reason": "Annual check-up"}


def token(app):
    return make_token(app, VISIT_SCOPES, user=UserFactory(fhir_patient_id="p1"))


@pytest.fixture
def booking(db):
    app = AppFactory()
    bookable(app, slots=("sl1", "sl2"))
    return app, token(app)


@pytest.mark.django_db
def test_a_post_without_a_key_is_refused_and_changes_nothing(client, booking):
    _app, raw = booking
    body = problem(post(client, URL, raw, BODY, idempotency_key=None), 400, "idempotency_key_required")
    assert "Idempotency-Key" in body["detail"]
    assert not Appointment.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["", "x" * 256, "has space", '"unterminated'])
def test_a_malformed_key_is_refused(client, booking, bad):
    _app, raw = booking
    response = post(client, URL, raw, BODY, idempotency_key=bad)
    if bad == '"unterminated':  # printable, no spaces: a valid key as it stands
        assert response.status_code == 201
    else:
        problem(response, 400, "malformed_request")


@pytest.mark.django_db
def test_a_retry_after_completion_gets_the_first_response_back(client, booking):
    _app, raw = booking
    first = post(client, URL, raw, BODY, idempotency_key="retry-1")
    again = post(client, URL, raw, BODY, idempotency_key='"retry-1"')  # the draft's quoted form: the same key
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert Appointment.objects.count() == 1


@pytest.mark.django_db
def test_a_retry_while_the_first_is_running_is_409(client, booking, monkeypatch):
    _app, raw = booking
    real = visits.visit_schedule
    seen = {}

    def schedule_while_a_retry_arrives(*args, **kwargs):
        seen["retry"] = post(Client(), URL, raw, BODY, idempotency_key="slow-1")
        return real(*args, **kwargs)

    monkeypatch.setattr(visits, "visit_schedule", schedule_while_a_retry_arrives)
    assert post(client, URL, raw, BODY, idempotency_key="slow-1").status_code == 201
    body = problem(seen["retry"], 409, "idempotency_request_in_progress")
    assert seen["retry"]["Retry-After"] == "1"
    assert "still being processed" in body["detail"]
    assert Appointment.objects.count() == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_or_path_is_422(client, booking):
    _app, raw = booking
    assert post(client, URL, raw, BODY, idempotency_key="k-1").status_code == 201
    problem(post(client, URL, raw, {**BODY, "slot": "Slot/sl2"}, idempotency_key="k-1"), 422, "idempotency_key_reused")
    visit_id = Appointment.objects.get().id
    problem(post(client, f"{URL}/{visit_id}/cancel", raw, {}, idempotency_key="k-1"), 422, "idempotency_key_reused")
    assert Appointment.objects.get().status == "booked"


@pytest.mark.django_db
def test_keys_belong_to_one_app(client, booking):
    _app, raw = booking
    other = AppFactory()
    fhir.consent(other, "p1", scopes=("appointments.read", "appointments.write"))
    assert post(client, URL, raw, BODY, idempotency_key="shared").status_code == 201
    response = post(client, URL, token(other), {**BODY, "slot": "Slot/sl2"}, idempotency_key="shared")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response


@pytest.mark.django_db
def test_a_failed_attempt_releases_the_key(client, db):
    app = AppFactory()
    bookable(app, consent=False)
    raw = token(app)
    problem(post(client, URL, raw, BODY, idempotency_key="after-consent"), 403, "consent_required")
    assert not IdempotencyRecord.objects.exists()
    fhir.consent(app, "p1", scopes=("appointments.read", "appointments.write"))
    assert post(client, URL, raw, BODY, idempotency_key="after-consent").status_code == 201


@pytest.mark.django_db
def test_keys_expire_after_24_hours_and_are_purged(client, booking):
    _app, raw = booking
    first = post(client, URL, raw, BODY, idempotency_key="old")
    record = IdempotencyRecord.objects.get(key="old")
    assert timedelta(hours=23, minutes=59) < record.expires_at - record.created_at <= timedelta(hours=24)
    IdempotencyRecord.objects.filter(pk=record.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    second = post(client, URL, raw, {**BODY, "slot": "Slot/sl2"}, idempotency_key="old")  # a new operation now
    assert second.status_code == 201 and second.json()["id"] != first.json()["id"]
    IdempotencyRecord.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert purge_expired_idempotency_keys.delay().get() == 1
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
def test_a_claim_left_by_a_dead_process_is_taken_over(client, booking, settings):
    app, raw = booking
    # What a process killed mid-request leaves behind: a claim nobody will release.
    IdempotencyRecord.objects.create(
        app=app,
        key="orphan",
        method="POST",
        path=URL,
        fingerprint=idempotency.fingerprint_of("POST", URL, BODY),
        created_at=timezone.now(),
        expires_at=timezone.now() + timedelta(hours=24),
    )
    problem(post(client, URL, raw, BODY, idempotency_key="orphan"), 409, "idempotency_request_in_progress")
    IdempotencyRecord.objects.filter(key="orphan").update(
        created_at=timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_CLAIM_SECONDS + 1)
    )
    assert post(client, URL, raw, BODY, idempotency_key="orphan").status_code == 201
    assert Appointment.objects.count() == 1
    assert IdempotencyRecord.objects.get(key="orphan").state == "completed"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_identical_requests_racing_create_exactly_one_visit():
    app = AppFactory()
    bookable(app)
    raw = token(app)
    start = threading.Barrier(2)
    results = []

    def send():
        try:
            start.wait()
            results.append(post(Client(), URL, raw, BODY, idempotency_key="race"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses in ([201, 201], [201, 409]), [r.content for r in results]
    assert Appointment.objects.count() == 1
    if statuses == [201, 201]:
        assert results[0].json() == results[1].json()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_different_keys_racing_for_one_slot_book_it_once():
    app = AppFactory()
    bookable(app)
    raw = token(app)
    start = threading.Barrier(2)
    results = []

    def send(key):
        try:
            start.wait()
            results.append(post(Client(), URL, raw, BODY, idempotency_key=key))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(f"k{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in results) == [201, 409]
    assert Appointment.objects.count() == 1
