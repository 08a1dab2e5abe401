"""The sandbox's clinical data: ``seed_fhir_sandbox`` stores what ``api.synthetic`` generates.

Idempotent and incremental: every generated resource has a stable id, and only the missing ones are
written. Seeding again with the same number of patients (on the same day) writes nothing; with more
patients it writes the difference; with fewer it removes nothing. Rows an app has changed since (a
slot it booked, say) are left as they are.

Patients go in chunks of ``PATIENT_CHUNK``, each in its own transaction with everything that hangs
off them (Coverage, Observations, past Appointments, the sandbox provider's care relationship), so
memory stays flat and an interrupted seed resumes where it stopped: a patient that exists is
complete. A missing patient's leftover synthetic rows are removed before it is written again.
Schedules, slots (the window after the anchor day, so a later seed adds the new days) and the
appointments booked in them follow, practitioner by practitioner.

``seed_deprecations`` publishes the sandbox's deprecations (v1 visits), once.

On PostgreSQL rows go in with ``COPY`` (psycopg 3, inside Django's transaction); elsewhere with
``bulk_create``. ``index_columns`` derives every typed column from the body, so the two never
disagree.
"""

import json
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from datetime import UTC, date, datetime

from django.db import connection, transaction
from django.utils import timezone

from api import synthetic
from api.models import RESOURCE_MODELS, Deprecation, Environment, Patient, Schedule
from consent.models import CareRelationship

DEFAULT_PATIENTS = 25
PATIENT_CHUNK = 1000
PRACTITIONER_CHUNK = 50
ID_BATCH = 5000
SQLITE_BATCH = 500
BASE_COLUMNS = ("id", "environment", "version_id", "last_updated", "synthetic", "body")
PATIENT_RESOURCES = ("Patient", "Coverage", "Observation", "Appointment")


# --- typed columns ------------------------------------------------------------------------------------


def _reference_id(reference: dict | None, resource_type: str) -> str:
    value = (reference or {}).get("reference", "")
    prefix = f"{resource_type}/"
    return value[len(prefix) :] if value.startswith(prefix) else ""


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:  # a partial date (1980, 1980-04) has no day to index
        return None


def _human_name(body: dict) -> tuple[str, str, str]:
    """(family, first given name) of the official name, and every name part, lower-cased."""
    names = body.get("name") or [{}]
    official = next((name for name in names if name.get("use") == "official"), names[0])
    parts = []
    for name in names:
        parts += [*name.get("given", []), name.get("family", "")]
    text = " ".join(dict.fromkeys(part.lower() for part in parts if part))
    return official.get("family", "")[:100], (official.get("given") or [""])[0][:100], text[:250]


def _patient_columns(body: dict) -> dict:
    identifiers = body.get("identifier") or [{}]
    mrn = next(
        (i for i in identifiers if any(c.get("code") == "MR" for c in (i.get("type") or {}).get("coding", []))),
        identifiers[0],
    )
    family, given, name_text = _human_name(body)
    return {
        "identifier_system": mrn.get("system", "")[:200],
        "identifier_value": mrn.get("value", "")[:100],
        "family": family,
        "given": given,
        "name_text": name_text,
        "birth_date": _date(body.get("birthDate")),
        "gender": body.get("gender", ""),
        "managing_organization_id": _reference_id(body.get("managingOrganization"), "Organization"),
    }


def _practitioner_columns(body: dict) -> dict:
    family, given, _text = _human_name(body)
    return {"family": family, "given": given}


def _observation_columns(body: dict) -> dict:
    category = ((body.get("category") or [{}])[0].get("coding") or [{}])[0].get("code", "")
    effective = body.get("effectiveDateTime") or (body.get("effectivePeriod") or {}).get("start")
    return {
        "patient_id": _reference_id(body.get("subject"), "Patient"),
        "category": category,
        "code": (body["code"].get("coding") or [{}])[0].get("code", ""),
        "effective": _instant(effective or body.get("effectiveInstant") or body.get("issued")),
    }


def _participant(body: dict, resource_type: str) -> dict | None:
    """The first participant of an Appointment that is a ``resource_type``."""
    return next(
        (
            p["actor"]
            for p in body.get("participant", [])
            if p.get("actor", {}).get("reference", "").startswith(f"{resource_type}/")
        ),
        None,
    )


def _appointment_columns(body: dict) -> dict:
    patient, practitioner = _participant(body, "Patient"), _participant(body, "Practitioner")
    return {
        "patient_id": _reference_id(patient, "Patient"),
        "slot_id": _reference_id((body.get("slot") or [None])[0], "Slot"),
        "start": _instant(body.get("start")),
        "end": _instant(body.get("end")),
        "status": body["status"],
        "practitioner_id": _reference_id(practitioner, "Practitioner"),
        "reason": ((body.get("reasonCode") or [{}])[0].get("text") or "")[:500],
        # What only a booking through /api/v1/visits records: not in a loaded resource.
        "app_id": None,
        "booked_at": None,
        "cancelled_at": None,
        "cancellation_reason": ((body.get("cancelationReason") or {}).get("text") or "")[:500],
    }


_EXTRACTORS = {
    "Patient": _patient_columns,
    "Practitioner": _practitioner_columns,
    "Organization": lambda body: {"name": body.get("name", "")[:200]},
    "Observation": _observation_columns,
    "Schedule": lambda body: {
        "practitioner_id": next(
            (pid for actor in body.get("actor", []) if (pid := _reference_id(actor, "Practitioner"))), ""
        )
    },
    "Slot": lambda body: {
        "schedule_id": _reference_id(body.get("schedule"), "Schedule"),
        "start": _instant(body["start"]),
        "end": _instant(body["end"]),
        "status": body["status"],
    },
    "Appointment": _appointment_columns,
    "Coverage": lambda body: {
        "patient_id": _reference_id(body.get("beneficiary"), "Patient"),
        "payor": _reference_id((body.get("payor") or [None])[0], "Organization"),
        "status": body["status"],
    },
}


def index_columns(resource_type: str, body: dict) -> dict:
    """The typed, indexed columns of a resource, read from its FHIR body."""
    return _EXTRACTORS[resource_type](body)


def typed_column_names(resource_type: str) -> tuple[str, ...]:
    model = RESOURCE_MODELS[resource_type]
    return tuple(f.attname for f in model._meta.concrete_fields if f.attname not in BASE_COLUMNS)


# --- writing ------------------------------------------------------------------------------------------


def _batches(items, size):
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _existing_ids(resource_type: str, ids) -> set[str]:
    """Which of ``ids`` are stored, in any environment (the id is the primary key)."""
    model = RESOURCE_MODELS[resource_type]
    found = set()
    for batch in _batches(ids, ID_BATCH):
        found.update(model.objects.filter(id__in=batch).values_list("id", flat=True))
    return found


class _Writer:
    def __init__(self):
        self.now = timezone.now()
        self.postgres = connection.vendor == "postgresql"
        self.inserted = Counter()

    def insert(self, resource_type: str, bodies: list[dict]) -> None:
        """Fresh inserts: the caller has made sure none of these ids exists."""
        if not bodies:
            return
        columns = typed_column_names(resource_type)
        if self.postgres:
            self._copy(resource_type, columns, bodies)
        else:
            model = RESOURCE_MODELS[resource_type]
            rows = []
            for body in bodies:
                rows.append(
                    model(
                        id=body["id"],
                        environment=Environment.SANDBOX,
                        version_id=1,
                        last_updated=self.now,
                        synthetic=True,
                        body=body,
                        **index_columns(resource_type, body),
                    )
                )
            model.objects.bulk_create(rows, batch_size=SQLITE_BATCH)
        self.inserted[resource_type] += len(bodies)

    def _copy(self, resource_type: str, columns: tuple[str, ...], bodies: list[dict]) -> None:
        quote = connection.ops.quote_name
        table = quote(RESOURCE_MODELS[resource_type]._meta.db_table)
        names = ", ".join(quote(name) for name in (*BASE_COLUMNS, *columns))
        extract, now, sandbox = _EXTRACTORS[resource_type], self.now, Environment.SANDBOX.value
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        connection.ensure_connection()
        with connection.connection.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for body in bodies:
                fields = extract(body)
                copy.write_row((body["id"], sandbox, 1, now, True, dumps(body), *[fields[c] for c in columns]))

    def insert_missing(self, resource_type: str, bodies: list[dict]) -> None:
        existing = _existing_ids(resource_type, [body["id"] for body in bodies])
        self.insert(resource_type, [body for body in bodies if body["id"] not in existing])


@contextmanager
def _chunk():
    """One chunk's transaction. On PostgreSQL its commit does not wait for the WAL flush: a crash
    can lose the last chunks, which the next seed writes again (a patient that exists is complete)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def _forget_leftovers(patient_ids: list[str]) -> None:
    """Synthetic rows of patients about to be (re)written: none, unless a patient was deleted."""
    for resource_type in ("Observation", "Coverage", "Appointment"):
        RESOURCE_MODELS[resource_type].objects.filter(
            environment=Environment.SANDBOX, patient_id__in=patient_ids, synthetic=True
        ).delete()


def _in_care(patient_ids: list[str], organization) -> None:
    """The provider holds these patients' records: add the care relationships that are missing."""
    if organization is None:
        return
    held = set(
        CareRelationship.objects.filter(organization=organization, patient_id__in=patient_ids).values_list(
            "patient_id", flat=True
        )
    )
    CareRelationship.objects.bulk_create(
        [CareRelationship(patient_id=pid, organization=organization) for pid in patient_ids if pid not in held],
        batch_size=1000,
        ignore_conflicts=True,
    )


def _write_bundle(writer: _Writer, bundle: dict[str, list[dict]]) -> None:
    for resource_type in PATIENT_RESOURCES:
        writer.insert(resource_type, bundle.get(resource_type, []))


def _refresh_schedules(writer: _Writer, bodies: list[dict]) -> None:
    """Insert missing schedules; move a stored synthetic schedule's planning horizon to this window."""
    stored = {s.id: s for s in Schedule.objects.filter(id__in=[body["id"] for body in bodies])}
    changed = []
    for body in bodies:
        schedule = stored.get(body["id"])
        if schedule is not None and schedule.synthetic and schedule.body != body:
            schedule.body, schedule.last_updated, schedule.version_id = body, writer.now, schedule.version_id + 1
            changed.append(schedule)
    Schedule.objects.bulk_update(changed, ["body", "last_updated", "version_id"])
    writer.insert("Schedule", [body for body in bodies if body["id"] not in stored])


def seed_fhir_sandbox(
    *,
    patients: int = DEFAULT_PATIENTS,
    anchor: date | None = None,
    care_organization=None,
    progress=None,
) -> dict:
    """Generate and store the sandbox's synthetic FHIR data: organizations, practitioners, the demo
    patient, ``patients`` synthetic patients (``syn-p-000000``...) with their records, schedules
    and slots. ``anchor`` (default: today, UTC) is the day the history ends and the slots' window
    begins after. ``care_organization``, a partners Organization (the sandbox provider), holds every
    generated patient's records. ``progress(done, total)`` is called after each chunk of patients."""
    if patients < 0:
        raise ValueError("patients must be zero or more")
    began = time.perf_counter()
    anchor = anchor or timezone.now().date()
    writer = _Writer()
    practitioners = synthetic.practitioner_count(patients)

    with _chunk():
        writer.insert_missing("Organization", synthetic.organizations())
        for batch in _batches(range(practitioners), 1000):
            writer.insert_missing("Practitioner", [synthetic.practitioner(j) for j in batch])
        if not Patient.objects.filter(id=synthetic.DEMO_PATIENT_ID).exists():
            _forget_leftovers([synthetic.DEMO_PATIENT_ID])
            _write_bundle(writer, synthetic.demo_bundle(anchor))
        _in_care([synthetic.DEMO_PATIENT_ID], care_organization)

    for first in range(0, patients, PATIENT_CHUNK):
        indexes = range(first, min(first + PATIENT_CHUNK, patients))
        ids = [synthetic.patient_id(i) for i in indexes]
        with _chunk():
            existing = _existing_ids("Patient", ids)
            missing = [i for i in indexes if synthetic.patient_id(i) not in existing]
            if missing:
                _forget_leftovers([synthetic.patient_id(i) for i in missing])
                chunk = defaultdict(list)
                for i in missing:
                    for resource_type, bodies in synthetic.patient_bundle(i, anchor).items():
                        chunk[resource_type] += bodies
                _write_bundle(writer, chunk)
            _in_care(ids, care_organization)
        if progress:
            progress(indexes.stop, patients)

    for batch in _batches(range(practitioners), PRACTITIONER_CHUNK):
        with _chunk():
            bundles = [synthetic.schedule_bundle(j, anchor, patients) for j in batch]
            _refresh_schedules(writer, [bundle["Schedule"][0] for bundle in bundles])
            writer.insert_missing("Slot", [slot for bundle in bundles for slot in bundle["Slot"]])
            writer.insert_missing("Appointment", [a for bundle in bundles for a in bundle["Appointment"]])

    return {
        "anchor": anchor.isoformat(),
        "patients": patients,
        "demo_patient": synthetic.DEMO_PATIENT_ID,
        "practitioners": practitioners,
        "inserted": {rt: writer.inserted[rt] for rt in RESOURCE_MODELS if writer.inserted[rt]},
        "seconds": round(time.perf_counter() - began, 2),
    }


def synthetic_counts() -> dict[str, int]:
    """Synthetic sandbox resources stored, by type."""
    return {
        resource_type: model.objects.filter(environment=Environment.SANDBOX, synthetic=True).count()
        for resource_type, model in RESOURCE_MODELS.items()
    }


# --- published deprecations ---------------------------------------------------------------------------

# v2 changed how a visit reads (docs/migrating-to-v2.md); v1's visits are deprecated with the release.
V1_VISITS_DEPRECATION = {
    "title": "v1 visits",
    "summary": (
        "`/api/v1/visits` gives a visit's time as flat `start`/`end` fields and its status as a string. "
        "`/api/v2/visits` gives the time as a `period` object and the status as an object that says since "
        "when, why, and whether the visit can still be cancelled. v1 visits keep working until the sunset."
    ),
    "replacement": "/api/v2/visits",
    "migration_guide": "/docs/migrating-to-v2/",
    "announced_at": datetime(2026, 11, 24, tzinfo=UTC),
    "sunset_at": datetime(2027, 6, 30, tzinfo=UTC),
    "enforced_at": None,
    "published": True,
}


def seed_deprecations() -> dict:
    """The sandbox's published deprecations, created once: an admin's later edits are kept. Creating
    one announces it (``deprecation.announced``) as publishing it in admin does, so every app's event
    feed starts with a real event."""
    from django.conf import settings
    from django.db import transaction

    from api.deprecations import deprecation_announce

    with transaction.atomic():
        deprecation, created = Deprecation.objects.get_or_create(
            path_prefix="v1/visits", defaults=V1_VISITS_DEPRECATION
        )
        if created and deprecation.published:
            deprecation_announce(deprecation=deprecation, base_url=settings.PUBLIC_BASE_URL + "/")
    return {"v1/visits": "created" if created else "kept"}
