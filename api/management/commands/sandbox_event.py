"""``manage.py sandbox_event patient.updated --patient <id> [--phone ...]``: make a real change to a
sandbox patient so that the apps consented to their demographics receive a real ``patient.updated``.

For testing a partner's handling of an event that no partner API can cause. It goes through the same
service as the Django admin (``api.workflows.patients``), so the event is the real thing (fanned out by
consent, numbered, signed, in the feed); a fabricated payload would teach a partner nothing. Sandbox
patients only."""

import secrets

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from api.models import Environment, Patient
from api.workflows import patients

SUPPORTED = ("patient.updated",)


class Command(BaseCommand):
    help = "Change a sandbox patient's phone number so that consented apps receive patient.updated."

    def add_arguments(self, parser):
        parser.add_argument("event_type", choices=SUPPORTED)
        parser.add_argument("--patient", required=True, help="The sandbox Patient's id (or Patient/<id>).")
        parser.add_argument(
            "--phone", default="", help="The new phone number; by default another fictional 555-01xx number."
        )

    def handle(self, *args, **options):
        patient_id = options["patient"].removeprefix("Patient/")
        patient = Patient.objects.filter(environment=Environment.SANDBOX, id=patient_id).first()
        if patient is None:
            raise CommandError(f"No sandbox Patient/{patient_id}.")
        phone = options["phone"] or self._another_fictional_number(patient.body)
        email = next((p["value"] for p in patient.body.get("telecom", []) if p.get("system") == "email"), "")
        changes = {"telecom": patients.telecom_with(patient.body, phone=phone, email=email)}
        try:
            patient, changed = patients.patient_demographics_update(
                environment=Environment.SANDBOX,
                patient_id=patient_id,
                changes=changes,
                actor="manage.py sandbox_event",
            )
        except ValidationError as exc:
            raise CommandError(f"Refused: {'; '.join(exc.messages)}") from None
        if not changed:
            self.stdout.write(f"Patient/{patient_id} already has that phone number: nothing changed or announced.")
            return
        self.stdout.write(
            f"Patient/{patient_id} is at version {patient.version_id}: patient.updated announced "
            f"({', '.join(changed)})."
        )

    @staticmethod
    def _another_fictional_number(body: dict) -> str:
        current = {p.get("value") for p in body.get("telecom", []) if p.get("system") == "phone"}
        while True:
            # 555-0100..555-0199 are reserved for fiction: never a real person's number.
            number = f"(555) 555-01{secrets.randbelow(100):02d}"
            if number not in current:
                return number
