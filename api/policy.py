"""The data layer's decision point: may this app see this patient's data of this class?

Views never decide this themselves: they call ``api.permissions.require_data_access`` for each
patient and data class they are about to touch, which asks ``check_data_access`` here and turns a
refusal into the ``consent_required`` problem (or whichever code the decision names).
"""

from dataclasses import dataclass, field

from django.db.models import Q

from consent import services as consent_services
from consent.models import CareRelationship


@dataclass(frozen=True)
class Decision:
    """The answer of the data layer. A refusal carries the catalogue code and the detail to show."""

    allowed: bool
    code: str = ""
    detail: str = ""
    # The consent grant the decision rests on (for the access audit); None when no grant decided it.
    grant_id: int | None = None

    @classmethod
    def allow(cls, grant_id: int | None = None) -> "Decision":
        return cls(allowed=True, grant_id=grant_id)

    @classmethod
    def deny(cls, detail: str, code: str = "consent_required", grant_id: int | None = None) -> "Decision":
        return cls(allowed=False, code=code, detail=detail, grant_id=grant_id)


def check_data_access(*, context, patient_id: str | None, data_class: str) -> Decision:
    """Whether the caller in ``context`` (an ``api.authentication.AuthContext``) may read or change
    ``data_class`` (a key of ``partners.scopes.DATA_CLASSES``) of the patient ``patient_id`` (a FHIR
    logical id; None for data that belongs to no one patient).

    Data that belongs to no patient is not a consent matter. A provider's own backend service
    reaching patients whose records it holds acts for the provider, not under the patient's consent
    to a third-party app. Everything else asks consent's enforcement service, which checks the
    patient's grant and the authorization of the organizations holding their records.
    """
    if patient_id is None:
        return Decision.allow()
    if context.is_system and consent_services.provider_holds_records(
        organization=context.organization, patient_id=patient_id
    ):
        return Decision.allow()
    found = context.access_found if patient_id == context.patient_id else None
    decision = consent_services.check_access(app=context.app, patient_id=patient_id, data_class=data_class, found=found)
    if decision.allowed:
        return Decision.allow(decision.grant_id)
    return Decision.deny(decision.detail, code=decision.code, grant_id=decision.grant_id)


@dataclass(frozen=True)
class PatientSet:
    """The patients whose ``data_class`` a caller may see, for searches across patients: those whose
    consent for the app is in force, covers the class and is not overridden by a provider's refusal
    (``grants``: patient id -> grant id), and, for a provider's backend service, every patient whose
    records the provider holds (``holder``)."""

    grants: dict[str, int] = field(default_factory=dict)
    holder: object | None = None  # partners.models.Organization

    def q(self, column: str) -> Q:
        """The filter restricting ``column`` (a patient id) to this set."""
        visible = Q(**{f"{column}__in": sorted(self.grants)})
        if self.holder is not None:
            held = CareRelationship.objects.filter(organization=self.holder).values("patient_id")
            visible |= Q(**{f"{column}__in": held})
        return visible

    def grant_id(self, patient_id: str) -> int | None:
        return self.grants.get(patient_id)


def patients_with_access(*, context, data_class: str) -> PatientSet:
    """Every patient ``check_data_access`` would let ``context`` see ``data_class`` of: those
    ``consent.services.consented_patients`` names (consent's own rules, in three queries), and for a
    provider's backend service every patient whose records it holds."""
    holder = None
    if context.is_system and context.organization.partner_type == "provider":
        holder = context.organization
    return PatientSet(grants=consent_services.consented_patients(app=context.app, data_class=data_class), holder=holder)
