"""The served FHIR types: which table holds each, whose data it is, its search parameters.

Each search parameter turns the values it was given into a ``Q`` on the table's typed columns: a
repeated parameter (``date=ge2024&date=lt2025``) ANDs its values, commas inside one value OR them
(``status=booked,pending``). ``capability_entries`` describes the same parameters for
``api.capability.SERVED_RESOURCES``, so the CapabilityStatement never drifts from what is served.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from operator import and_, or_

from django.db.models import Q

from api import models
from api.fhir.search import Sort, date_range, invalid_search, reference_id, split_or, token
from partners.scopes import OBSERVATION_CATEGORY_CLASSES, RESOURCE_DATA_CLASSES

LOINC = "http://loinc.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
NOTHING = Q(pk__in=[])


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # the FHIR SearchParamType: string, token, reference, date
    documentation: str
    one: Callable[[str, str], Q]  # (name, one alternative) -> Q

    def q(self, values: list[str]) -> Q:
        clauses = []
        for value in values:
            alternatives = split_or(value)
            if not alternatives:
                raise invalid_search(self.name, f"{self.name} needs a value.")
            clauses.append(reduce(or_, (self.one(self.name, alt) for alt in alternatives)))
        return reduce(and_, clauses)


@dataclass(frozen=True)
class FhirType:
    name: str
    model: type
    params: dict[str, Param]
    # The column holding the patient a row belongs to ("id" for Patient); None: no one patient's data.
    patient_column: str | None = None
    # The parameters naming the patient (Patient: _id), for the patient-in-context rule.
    patient_params: tuple[str, ...] = ()
    sorts: dict[str, Sort] = field(default_factory=dict)
    documentation: str = ""

    @property
    def is_patient_data(self) -> bool:
        return self.patient_column is not None

    def data_class(self, row=None) -> str:
        if self.name == "Observation" and row is not None:
            return observation_data_class(row.category)
        return RESOURCE_DATA_CLASSES[self.name]

    def patient_of(self, row) -> str | None:
        return getattr(row, self.patient_column) if self.patient_column else None


def observation_data_class(category: str) -> str:
    return OBSERVATION_CATEGORY_CLASSES.get(category, "observations")


# --- one alternative of a parameter -> Q ------------------------------------------------------------------


def _exact(column: str):
    return lambda name, value: Q(**{column: value})


def _reference(column: str, resource_type: str):
    def one(name, value):
        rid = reference_id(value, resource_type, name)
        return Q(**{column: rid}) if rid is not None else NOTHING

    return one


def _coded(column: str, system_uri: str):
    def one(name, value):
        system, code = token(value)
        if not code:
            raise invalid_search(name, f"{name} is a token: system|code or code.")
        if system is not None and system != system_uri:
            return NOTHING
        return Q(**{column: code})

    return one


def _date(column: str, *, as_date: bool = False):
    return lambda name, value: date_range(value, name).q(column, as_date=as_date)


def _identifier(name, value):
    system, code = token(value)
    if not code:
        raise invalid_search(name, "identifier is system|value or value.")
    q = Q(identifier_value=code)
    return q & Q(identifier_system=system) if system is not None else q


def _contains(*columns: str, lower: bool = False):
    def one(name, value):
        text = value.lower() if lower else value
        return reduce(or_, (Q(**{f"{c}__{'contains' if lower else 'icontains'}": text}) for c in columns))

    return one


def _starts(column: str):
    return lambda name, value: Q(**{f"{column}__istartswith": value})


def _id_param() -> Param:
    return Param("_id", "token", "The resource's logical id; comma-separated ids match any of them.", _exact("id"))


def _params(*params: Param) -> dict[str, Param]:
    return {p.name: p for p in (_id_param(), *params)}


TYPES: dict[str, FhirType] = {
    t.name: t
    for t in (
        FhirType(
            "Patient",
            models.Patient,
            _params(
                Param(
                    "identifier",
                    "token",
                    "An identifier: system|value (e.g. a medical record number) or value in any system.",
                    _identifier,
                ),
                Param(
                    "name",
                    "string",
                    "Contained, case-insensitively, in the given or family name.",
                    _contains("name_text", lower=True),
                ),
                Param("family", "string", "The family name starts with this (case-insensitive).", _starts("family")),
                Param(
                    "birthdate",
                    "date",
                    "Birth date: YYYY, YYYY-MM or YYYY-MM-DD, with prefix eq (default), ne, gt, lt, ge or le.",
                    _date("birth_date", as_date=True),
                ),
                Param("gender", "token", "male, female, other or unknown.", _exact("gender")),
            ),
            patient_column="id",
            patient_params=("_id",),
            documentation="Demographics (data class demographics). A token speaking for a patient sees that "
            "patient only.",
        ),
        FhirType(
            "Practitioner",
            models.Practitioner,
            _params(
                Param(
                    "name",
                    "string",
                    "Contained, case-insensitively, in the given or family name.",
                    _contains("given", "family"),
                ),
                Param("family", "string", "The family name starts with this (case-insensitive).", _starts("family")),
            ),
            documentation="Clinicians (data class care_team).",
        ),
        FhirType(
            "Organization",
            models.Organization,
            _params(Param("name", "string", "Contained, case-insensitively, in the name.", _contains("name"))),
            documentation="Clinics, labs and payers as FHIR Organizations (data class care_team).",
        ),
        FhirType(
            "Observation",
            models.Observation,
            _params(
                Param(
                    "patient",
                    "reference",
                    "The patient observed: Patient/<id> or <id>.",
                    _reference("patient_id", "Patient"),
                ),
                Param(
                    "subject",
                    "reference",
                    "Same as patient: Patient/<id> or <id>.",
                    _reference("patient_id", "Patient"),
                ),
                Param(
                    "category",
                    "token",
                    f"laboratory or vital-signs (system {OBSERVATION_CATEGORY}).",
                    _coded("category", OBSERVATION_CATEGORY),
                ),
                Param("code", "token", f"The LOINC code: {LOINC}|<code> or <code>.", _coded("code", LOINC)),
                Param(
                    "date",
                    "date",
                    "effective[x], with prefix eq (default), ne, gt, lt, ge or le; repeat for a range "
                    "(date=ge2024-01-01&date=lt2025-01-01). _sort=date or -date orders by it.",
                    _date("effective"),
                ),
            ),
            patient_column="patient_id",
            patient_params=("patient", "subject"),
            sorts={
                "date": Sort("date", "effective"),
                "-date": Sort("-date", "effective", descending=True),
            },
            documentation="Lab results and vital signs (data classes lab_results and vital_signs by category; "
            "observations for both).",
        ),
        FhirType(
            "Schedule",
            models.Schedule,
            _params(
                Param(
                    "actor",
                    "reference",
                    "The practitioner whose schedule it is: Practitioner/<id> or <id>.",
                    _reference("practitioner_id", "Practitioner"),
                )
            ),
            documentation="Clinicians' schedules (data class scheduling).",
        ),
        FhirType(
            "Slot",
            models.Slot,
            _params(
                Param(
                    "schedule",
                    "reference",
                    "The schedule: Schedule/<id> or <id>.",
                    _reference("schedule_id", "Schedule"),
                ),
                Param("start", "date", "Slot start, with prefix eq, ne, gt, lt, ge or le.", _date("start")),
                Param("status", "token", "free, busy, busy-unavailable, busy-tentative.", _exact("status")),
            ),
            sorts={"start": Sort("start", "start"), "-start": Sort("-start", "start", descending=True)},
            documentation="Appointment slots (data class scheduling). _sort=start or -start.",
        ),
        FhirType(
            "Appointment",
            models.Appointment,
            _params(
                Param(
                    "patient",
                    "reference",
                    "The patient attending: Patient/<id> or <id>.",
                    _reference("patient_id", "Patient"),
                ),
                Param("date", "date", "Appointment start, with prefix eq, ne, gt, lt, ge or le.", _date("start")),
                Param("status", "token", "booked, pending, cancelled, fulfilled, noshow...", _exact("status")),
            ),
            patient_column="patient_id",
            patient_params=("patient",),
            documentation="Appointments (data class appointments).",
        ),
        FhirType(
            "Coverage",
            models.Coverage,
            _params(
                Param(
                    "patient",
                    "reference",
                    "The covered patient: Patient/<id> or <id>.",
                    _reference("patient_id", "Patient"),
                ),
                Param(
                    "beneficiary",
                    "reference",
                    "Same as patient: Patient/<id> or <id>.",
                    _reference("patient_id", "Patient"),
                ),
            ),
            patient_column="patient_id",
            patient_params=("patient", "beneficiary"),
            documentation="Insurance coverage (data class coverage).",
        ),
    )
}

# Parameters of every search, handled by the view rather than by a column.
RESULT_PARAMS = {
    "_count": "Page size: 20 by default, at most 100; 0 returns the total only.",
    "_summary": "count returns the total only.",
}
