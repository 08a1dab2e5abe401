"""Who sees which rows of the clinical store.

Three rules, applied to every query:

- environment: rows of the calling app's environment only (a production row asked for by a sandbox
  app does not exist for it);
- the patient in context: a token that speaks for a patient sees that patient's data only; another
  patient's record is "not found", never "forbidden", so its existence does not leak;
- consent: each patient's data of a class is visible under ``api.policy``'s decision. One patient at
  a time through ``require_data_access``; across patients (``user/`` and ``system/`` searches) as a
  filter built from ``api.policy.patients_with_access``, so paging and ``total`` stay exact.

SMART v2 scopes narrowed by category (``patient/Observation.rs?category=laboratory``) restrict
Observation rows to those categories.
"""

from functools import reduce
from operator import or_

from django.db.models import Q

from api import policy
from api.fhir.resources import FhirType
from api.permissions import RESOURCE_CONTEXTS
from partners.scopes import OBSERVATION_CATEGORY_CLASSES, scope_grants


def scope_categories(context, action: str, contexts=RESOURCE_CONTEXTS) -> set[str] | None:
    """The Observation categories the token's scopes reach for ``action``: None for every category."""
    if any(scope_grants(context.scopes, context=c, resource="Observation", action=action) for c in contexts):
        return None
    return {
        category
        for category in OBSERVATION_CATEGORY_CLASSES
        if any(
            scope_grants(
                context.scopes, context=c, resource="Observation", action=action, params={"category": category}
            )
            for c in contexts
        )
    }


def base_filter(fhir_type: FhirType, context) -> Q:
    """Environment, and the patient in context for patient data."""
    q = Q(environment=context.app.environment)
    if fhir_type.is_patient_data and context.patient_id:
        q &= Q(**{fhir_type.patient_column: context.patient_id})
    return q


def category_filter(categories) -> Q:
    return Q(category__in=sorted(categories))


class CrossPatientAccess:
    """Consent as a filter, for a search that is not about one patient: each row is visible when its
    patient's consent for the app covers the row's data class (or the provider calling holds the
    patient's records). Remembers the grant each patient's access rests on, for the audit."""

    def __init__(self, fhir_type: FhirType, context):
        self.fhir_type = fhir_type
        self.context = context
        self.sets: dict[str, policy.PatientSet] = {}

    def _set(self, data_class: str) -> policy.PatientSet:
        if data_class not in self.sets:
            self.sets[data_class] = policy.patients_with_access(context=self.context, data_class=data_class)
        return self.sets[data_class]

    def q(self) -> Q:
        column = self.fhir_type.patient_column
        if self.fhir_type.name != "Observation":
            return self._set(self.fhir_type.data_class()).q(column)
        narrowed = [
            Q(category=category) & self._set(data_class).q(column)
            for category, data_class in OBSERVATION_CATEGORY_CLASSES.items()
        ]
        other = ~Q(category__in=sorted(OBSERVATION_CATEGORY_CLASSES)) & self._set("observations").q(column)
        return reduce(or_, [*narrowed, other])

    def grant_id(self, row) -> int | None:
        patient_id = self.fhir_type.patient_of(row)
        return self._set(self.fhir_type.data_class(row)).grant_id(patient_id)
