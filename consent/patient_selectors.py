"""Reads behind the patient's pages ("My connected apps", their consent history) and a provider
organization's page deciding which apps reach its patients.

Every patient read is scoped by the patient id it is given, so a view that passes the signed-in
user's ``fhir_patient_id`` can never show, or find, another patient's grant.
"""

from django.db.models import Case, IntegerField, Value, When

from consent.models import AppAuthorization, ConsentGrant, LedgerEvent
from partners.models import App, Organization

# --- A patient's grants and history ------------------------------------------------------------


def grants_of_patient(patient_id: str):
    """The patient's grants: active ones first (newest first), then ended ones (latest ended first)."""
    if not patient_id:
        return ConsentGrant.objects.none()
    return (
        ConsentGrant.objects.filter(patient_id=patient_id)
        .select_related("app", "app__organization", "text", "recorded_by_organization")
        .annotate(
            _ended=Case(
                When(status=ConsentGrant.Status.ACTIVE, then=Value(0)), default=Value(1), output_field=IntegerField()
            )
        )
        .order_by("_ended", "-ended_at", "-created_at", "-pk")
    )


def grant_of_patient(*, patient_id: str, grant_id: int) -> ConsentGrant | None:
    """The grant when it is this patient's; ``None`` otherwise (the caller answers 404)."""
    if not patient_id:
        return None
    return (
        ConsentGrant.objects.select_related("app", "app__organization", "text")
        .filter(pk=grant_id, patient_id=patient_id)
        .first()
    )


def ledger_of_patient(patient_id: str):
    """The patient's consent history, newest first."""
    if not patient_id:
        return LedgerEvent.objects.none()
    return (
        LedgerEvent.objects.filter(patient_id=patient_id)
        .select_related("app", "app__organization")
        .order_by("-sequence")
    )


# --- A provider organization's decisions about apps ---------------------------------------------


def environments_for_provider(organization: Organization) -> list[str]:
    """Which apps a provider decides about: sandbox apps, and production apps too once the provider's
    own tier reaches production (its real patients' records are then at stake)."""
    environments = [App.Environment.SANDBOX]
    if organization.tier.production_credentials:
        environments.append(App.Environment.PRODUCTION)
    return environments


def apps_for_provider(organization: Organization):
    """Apps of other organizations a provider may enable or block for its patients."""
    return (
        App.objects.filter(environment__in=environments_for_provider(organization))
        .exclude(organization=organization)
        .select_related("organization", "organization__tier")
        .order_by("organization__name", "name", "pk")
    )


def app_for_provider(*, organization: Organization, app_id: int) -> App | None:
    return apps_for_provider(organization).filter(pk=app_id).first()


def authorizations_of(organization: Organization, app_ids) -> dict[int, AppAuthorization]:
    """The organization's recorded decisions, by app id (no entry: the default applies)."""
    return {
        authorization.app_id: authorization
        for authorization in AppAuthorization.objects.filter(organization=organization, app_id__in=list(app_ids))
        .select_related("decided_by")
        .order_by()
    }
