"""Visits: a free slot, a patient and a reason become a booked Appointment; cancelling frees the slot.

Every write runs in the caller's transaction (the view's idempotent block) and leaves, with it, the
FHIR resources updated (the Appointment, the Slot's status and version), an access event (the audit
of a write of patient data) and an outbox event (``appointment.booked``, ``appointment.cancelled``).
"""

from dataclasses import dataclass

from django.utils import timezone

from api.audit import record_access
from api.models import Appointment, Patient, Schedule, Slot
from api.problems import Problem
from api.workflows.common import new_id
from partners.services import event_publish

BOOKED = "booked"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class VisitRequest:
    slot_id: str
    patient_id: str
    reason: str


def _reference(resource_type: str, rid: str) -> dict:
    return {"reference": f"{resource_type}/{rid}"}


def _touch(row, now) -> None:
    row.version_id += 1
    row.last_updated = now


def visit_schedule(request, *, context, wanted: VisitRequest, grant_id: int | None) -> Appointment:
    """Book ``wanted.slot_id`` for ``wanted.patient_id``. The caller has checked the patient's consent
    (``grant_id`` is the grant it rests on). 404 for a slot or patient the app cannot see; 409
    ``slot_unavailable`` when the slot is taken, blocked or already started (the slot row is locked, so
    two bookings of one slot never both succeed)."""
    environment = context.app.environment
    now = timezone.now()
    if not Patient.objects.filter(environment=environment, id=wanted.patient_id).exists():
        raise Problem("not_found", f"No Patient/{wanted.patient_id} is visible to this app.")
    slot = Slot.objects.select_for_update().filter(environment=environment, id=wanted.slot_id).first()
    if slot is None:
        raise Problem("not_found", f"No Slot/{wanted.slot_id} is visible to this app.")
    if slot.status != "free":
        raise Problem("slot_unavailable", f"Slot/{slot.id} is {slot.status}, not free.", slot=f"Slot/{slot.id}")
    if slot.start <= now:
        raise Problem("slot_unavailable", f"Slot/{slot.id} started at {slot.start:%Y-%m-%d %H:%M} UTC.")
    practitioner_id = (
        Schedule.objects.filter(environment=environment, id=slot.schedule_id)
        .values_list("practitioner_id", flat=True)
        .first()
        or ""
    )

    slot.status = "busy"
    slot.body = {**slot.body, "status": "busy"}
    _touch(slot, now)
    slot.save(update_fields=["status", "body", "version_id", "last_updated"])

    visit_id = new_id("visit")
    participants = [{"actor": _reference("Patient", wanted.patient_id), "required": "required", "status": "accepted"}]
    if practitioner_id:
        participants.append(
            {"actor": _reference("Practitioner", practitioner_id), "required": "required", "status": "accepted"}
        )
    body = {
        "resourceType": "Appointment",
        "id": visit_id,
        "status": BOOKED,
        "description": wanted.reason,
        "reasonCode": [{"text": wanted.reason}],
        "start": slot.start.isoformat(),
        "end": slot.end.isoformat(),
        "created": now.date().isoformat(),
        "slot": [_reference("Slot", slot.id)],
        "participant": participants,
    }
    visit = Appointment.objects.create(
        id=visit_id,
        environment=environment,
        last_updated=now,
        body=body,
        patient_id=wanted.patient_id,
        slot_id=slot.id,
        start=slot.start,
        end=slot.end,
        status=BOOKED,
        practitioner_id=practitioner_id,
        reason=wanted.reason,
        app_id=context.app.pk,
        booked_at=now,
    )
    record_access(
        request,
        resource_type="Appointment",
        resource_id=visit.id,
        patient_id=visit.patient_id,
        action="create",
        outcome="allowed",
        consent_grant_id=grant_id,
    )
    event_publish(
        type="appointment.booked",
        payload=_event_payload(visit),
        organization=context.organization,
        app=context.app,
        patient_id=visit.patient_id,
    )
    return visit


def visit_cancel(request, *, context, visit: Appointment, reason: str, grant_id: int | None) -> Appointment:
    """Cancel a booked visit that has not started and free its slot; 409 ``visit_not_cancellable``
    otherwise. The visit row is locked, so two cancellations never both count."""
    now = timezone.now()
    visit = Appointment.objects.select_for_update().get(pk=visit.pk)
    if visit.status != BOOKED:
        raise Problem("visit_not_cancellable", f"The visit {visit.id} is {visit.status}.")
    if visit.start and visit.start <= now:
        raise Problem("visit_not_cancellable", f"The visit {visit.id} started at {visit.start:%Y-%m-%d %H:%M} UTC.")
    visit.status = CANCELLED
    visit.cancelled_at = now
    visit.cancellation_reason = reason
    body = {**visit.body, "status": CANCELLED}
    if reason:
        body["cancelationReason"] = {"text": reason}
    visit.body = body
    _touch(visit, now)
    visit.save(update_fields=["status", "cancelled_at", "cancellation_reason", "body", "version_id", "last_updated"])
    slot = Slot.objects.select_for_update().filter(environment=visit.environment, id=visit.slot_id).first()
    if slot is not None and slot.status == "busy" and slot.start > now:
        slot.status = "free"
        slot.body = {**slot.body, "status": "free"}
        _touch(slot, now)
        slot.save(update_fields=["status", "body", "version_id", "last_updated"])
    record_access(
        request,
        resource_type="Appointment",
        resource_id=visit.id,
        patient_id=visit.patient_id,
        action="update",
        outcome="allowed",
        consent_grant_id=grant_id,
    )
    event_publish(
        type="appointment.cancelled",
        payload={**_event_payload(visit), "cancellation_reason": reason},
        organization=context.organization,
        app=context.app,
        patient_id=visit.patient_id,
    )
    return visit


def _event_payload(visit: Appointment) -> dict:
    return {
        "visit_id": visit.id,
        "status": visit.status,
        "patient": f"Patient/{visit.patient_id}",
        "slot": f"Slot/{visit.slot_id}",
        "start": visit.start.isoformat() if visit.start else None,
        "end": visit.end.isoformat() if visit.end else None,
    }


def visible_visits(*, context):
    """The visits this app booked, in its environment (and only its patient's, for a patient token)."""
    visits = Appointment.objects.filter(environment=context.app.environment, app_id=context.app.pk)
    if context.patient_id:
        visits = visits.filter(patient_id=context.patient_id)
    return visits
