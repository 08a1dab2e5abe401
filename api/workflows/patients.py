"""Changes to a Patient's demographics, announced as ``patient.updated``.

Records reach the platform from providers; the one write path here is a correction of a patient's
contact details (``telecom`` and ``address``), made by a platform admin or a sandbox tester from the
Django admin (``api.admin.PatientAdmin``) or ``manage.py sandbox_event``. The resource's version moves
on as any FHIR update's does, and every app that may see the patient's demographics hears of it in the
same transaction, through the event outbox (consent-aware fan-out, ``partners.events``).
"""

import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from api.models import Patient
from partners.services import event_publish

logger = logging.getLogger(__name__)

# The elements this path may change, in the order ``changed`` lists them.
EDITABLE = ("telecom", "address")

# FHIR R4 value sets of ContactPoint and Address.
CONTACT_SYSTEMS = ("phone", "fax", "email", "pager", "url", "sms", "other")
CONTACT_USES = ("home", "work", "temp", "old", "mobile")
ADDRESS_USES = ("home", "work", "temp", "old", "billing")
ADDRESS_TYPES = ("postal", "physical", "both")
ADDRESS_TEXT_FIELDS = ("text", "city", "district", "state", "postalCode", "country")


def _contact_point_problems(index: int, point) -> list[str]:
    where = f"telecom[{index}]"
    if not isinstance(point, dict):
        return [f"{where} is a ContactPoint object."]
    problems = []
    if extra := sorted(set(point) - {"system", "value", "use", "rank"}):
        problems.append(f"{where} has fields a ContactPoint has not: {', '.join(extra)}.")
    if point.get("system") not in CONTACT_SYSTEMS:
        problems.append(f"{where}.system is one of {', '.join(CONTACT_SYSTEMS)}.")
    if not isinstance(point.get("value"), str) or not point["value"].strip():
        problems.append(f"{where}.value is the number or address, as text.")
    if "use" in point and point["use"] not in CONTACT_USES:
        problems.append(f"{where}.use is one of {', '.join(CONTACT_USES)}.")
    return problems


def _address_problems(index: int, address) -> list[str]:
    where = f"address[{index}]"
    if not isinstance(address, dict):
        return [f"{where} is an Address object."]
    known = {"use", "type", "line", *ADDRESS_TEXT_FIELDS}
    problems = []
    if extra := sorted(set(address) - known):
        problems.append(f"{where} has fields an Address has not: {', '.join(extra)}.")
    if "use" in address and address["use"] not in ADDRESS_USES:
        problems.append(f"{where}.use is one of {', '.join(ADDRESS_USES)}.")
    if "type" in address and address["type"] not in ADDRESS_TYPES:
        problems.append(f"{where}.type is one of {', '.join(ADDRESS_TYPES)}.")
    lines = address.get("line", [])
    if not isinstance(lines, list) or not all(isinstance(line, str) and line.strip() for line in lines):
        problems.append(f"{where}.line is a list of non-empty lines of text.")
    for name in ADDRESS_TEXT_FIELDS:
        if name in address and not isinstance(address[name], str):
            problems.append(f"{where}.{name} is text.")
    if not lines and not any(address.get(name) for name in ADDRESS_TEXT_FIELDS):
        problems.append(f"{where} is empty: give at least a line, a city or a text.")
    return problems


def validate_changes(changes: dict) -> None:
    """Refuse anything but lists of FHIR ContactPoint (``telecom``) and Address (``address``)."""
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        errors["__all__"] = [f"Only {' and '.join(EDITABLE)} can be changed here, not {', '.join(unknown)}."]
    checks = {"telecom": _contact_point_problems, "address": _address_problems}
    for field, check in checks.items():
        if field not in changes:
            continue
        value = changes[field]
        if not isinstance(value, list):
            errors[field] = [f"{field} is a list (empty to remove every entry)."]
            continue
        problems = [problem for index, item in enumerate(value) for problem in check(index, item)]
        if problems:
            errors[field] = problems
    if errors:
        raise ValidationError(errors)


def telecom_with(body: dict, *, phone: str, email: str) -> list[dict]:
    """The patient's ``telecom`` with ``phone`` and ``email`` as its first phone and email (empty:
    none), every other contact point kept as it is. For the admin form and the sandbox command."""
    telecom = [dict(point) for point in body.get("telecom", [])]
    for system, value in (("phone", phone.strip()), ("email", email.strip())):
        index = next((i for i, point in enumerate(telecom) if point.get("system") == system), None)
        if index is None and value:
            telecom.append({"system": system, "value": value, "use": "mobile" if system == "phone" else "home"})
        elif index is not None and value:
            telecom[index] = {**telecom[index], "value": value}
        elif index is not None:
            del telecom[index]
    return telecom


def address_with(body: dict, *, lines: list[str], **parts: str) -> list[dict]:
    """The patient's ``address`` with its home address given these ``lines`` and ``parts`` (``city``,
    ``state``, ``postalCode``, ``country``; empty: none), other elements of it and other addresses kept;
    nothing left at all removes the home address."""
    addresses = [dict(entry) for entry in body.get("address", [])]
    home = next((i for i, entry in enumerate(addresses) if entry.get("use", "home") == "home"), None)
    current = addresses[home] if home is not None else {"use": "home", "type": "physical"}
    given = {"line": [line.strip() for line in lines if line.strip()], **{k: v.strip() for k, v in parts.items()}}
    updated = {**current, **given}
    updated = {key: value for key, value in updated.items() if value}
    if not any(updated.get(name) for name in ("line", *ADDRESS_TEXT_FIELDS)):
        if home is not None:
            del addresses[home]
    elif home is None:
        addresses.insert(0, updated)
    else:
        addresses[home] = updated
    return addresses


@transaction.atomic
def patient_demographics_update(*, environment: str, patient_id: str, changes: dict, actor) -> tuple[Patient, list]:
    """Replace the patient's ``telecom`` and/or ``address`` (lists of FHIR ContactPoint and Address; an
    empty list removes the element) and announce it as ``patient.updated``. Returns the patient and the
    elements that changed; when nothing did, the version stays and nothing is announced. ``actor`` (a
    user, or a few words naming a command) goes to the log only: receivers learn what changed, never
    who changed it. ``Patient.DoesNotExist`` for a patient not in ``environment``."""
    validate_changes(changes)
    patient = Patient.objects.select_for_update().filter(environment=environment, id=patient_id).first()
    if patient is None:
        raise Patient.DoesNotExist(f"No Patient/{patient_id} in the {environment} environment.")
    changed = [field for field in EDITABLE if field in changes and patient.body.get(field, []) != changes[field]]
    if not changed:
        return patient, []
    body = dict(patient.body)
    for field in changed:
        if changes[field]:
            body[field] = changes[field]
        else:
            body.pop(field, None)  # FHIR: an element is absent, never an empty list
    patient.body = body
    patient.version_id += 1
    patient.last_updated = timezone.now()
    patient.save(update_fields=["body", "version_id", "last_updated"])
    event_publish(
        type="patient.updated",
        payload={"patient": f"Patient/{patient.id}", "version_id": str(patient.version_id), "changed": changed},
        patient_id=patient.id,
    )
    logger.info(
        "patient_demographics_updated",
        extra={
            "patient_id": patient.id,
            "environment": environment,
            "changed": changed,
            "version_id": patient.version_id,
            "actor": getattr(actor, "email", None) or str(actor),
        },
    )
    return patient, changed
