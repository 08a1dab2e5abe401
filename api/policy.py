"""The data layer's decision point: may this app see this patient's data of this class?

Views never decide this themselves: they call ``api.permissions.require_data_access`` for each
patient and data class they are about to touch, which asks ``check_data_access`` here and turns a
refusal into the ``consent_required`` problem (or whichever code the decision names).
"""

from dataclasses import dataclass

from consent import services as consent_services


@dataclass(frozen=True)
class Decision:
    """The answer of the data layer. A refusal carries the catalogue code and the detail to show."""

    allowed: bool
    code: str = ""
    detail: str = ""

    @classmethod
    def allow(cls) -> "Decision":
        return cls(allowed=True)

    @classmethod
    def deny(cls, detail: str, code: str = "consent_required") -> "Decision":
        return cls(allowed=False, code=code, detail=detail)


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
    decision = consent_services.check_access(app=context.app, patient_id=patient_id, data_class=data_class)
    if decision.allowed:
        return Decision.allow()
    return Decision.deny(decision.detail, code=decision.code)
