"""The data layer's decision point: may this app see this patient's data of this class?

Views never decide this themselves: they call ``api.permissions.require_data_access`` for each
patient and data class they are about to touch, which asks ``check_data_access`` here and turns a
refusal into the ``consent_required`` problem (or whichever code the decision names).
"""

from dataclasses import dataclass


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

    For now this allows everything: the token, scope and policy layers have already run. The consent
    issue fills it in: it will ask consent's enforcement service for the patient's current grant to
    this app and data class and answer ``Decision.deny(...)`` with ``consent_required`` (or a more
    precise consent code) naming the consent state when there is none, it was withdrawn, or it has
    expired. Keep the signature: views and tests call it by these keyword arguments.
    """
    return Decision.allow()
