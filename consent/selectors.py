"""Reads of the consent app: the state of an app's consent for a patient, what the organizations
holding the patient's records decided about the app, and which grants a caller may see.

Everything here is a read; every write is in ``consent.services``.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from consent.models import AppAuthorization, CareRelationship, ConsentGrant, LedgerEvent
from consent.services import APP_ACCESS
from partners.models import App, Organization

# The consent states the API reports. A grant that is still marked active past its expiry (the beat
# task has not run yet) is already "expired": the enforcement check refuses it the same way.
STATE_ACTIVE, STATE_REVOKED, STATE_EXPIRED, STATE_SUPERSEDED, STATE_NONE = (
    "active",
    "revoked",
    "expired",
    "superseded",
    "none",
)


def normalize_patient_id(value: str) -> str:
    """A patient's logical id from ``123`` or ``Patient/123`` (what callers send either way)."""
    value = (value or "").strip()
    return value.removeprefix("Patient/")


def grant_state(grant: ConsentGrant | None, *, now: datetime | None = None) -> str:
    """active, revoked, expired, superseded, or none when there is no grant."""
    if grant is None:
        return STATE_NONE
    if grant.status == ConsentGrant.Status.ACTIVE:
        now = now or timezone.now()
        if grant.expires_at is not None and grant.expires_at <= now:
            return STATE_EXPIRED
        return STATE_ACTIVE
    return grant.status


def in_force(now: datetime) -> Q:
    """Grants that are active now (the ``Q`` twin of ``grant_state(...) == "active"``)."""
    return Q(status=ConsentGrant.Status.ACTIVE) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))


def grant_end(grant: ConsentGrant, *, now: datetime | None = None) -> datetime | None:
    """When the grant ended: ``ended_at``, or its expiry once passed (before the beat task marks it)."""
    if grant.ended_at is not None:
        return grant.ended_at
    now = now or timezone.now()
    if grant.expires_at is not None and grant.expires_at <= now:
        return grant.expires_at
    return None


def latest_grant(*, app: App, patient_id: str, purpose: str = APP_ACCESS) -> ConsentGrant | None:
    """The app's most recent grant for this patient, whatever its state: the one the enforcement
    check decides on (an older grant was superseded by it, or ended before it)."""
    return (
        ConsentGrant.objects.select_related("app", "text", "recorded_by_organization")
        .filter(patient_id=patient_id, app=app, purpose=purpose)
        .order_by("-created_at", "-pk")
        .first()
    )


# --- Organizations' authorization --------------------------------------------------------------

AUTH_ENABLED = "enabled"
AUTH_BLOCKED = "blocked"
AUTH_ENABLED_DEFAULT = "enabled_default"
AUTH_NOT_ENABLED_DEFAULT = "not_enabled_default"


@dataclass(frozen=True)
class OrganizationAuthorization:
    """One provider holding the patient's records, and where it stands on the app.

    ``state`` is ``enabled`` or ``blocked`` (an explicit decision), ``enabled_default`` (no decision,
    and sandbox apps are enabled by default) or ``not_enabled_default`` (no decision, and production
    apps need one)."""

    organization: Organization
    state: str
    decided_at: datetime | None
    reason: str

    @property
    def allows(self) -> bool:
        return self.state in {AUTH_ENABLED, AUTH_ENABLED_DEFAULT}


def organization_authorizations(*, app: App, patient_id: str) -> list[OrganizationAuthorization]:
    """Each provider holding this patient's records, with its decision about ``app``; the same rule
    as ``consent.services.authorization_refusal``, spelled out per organization."""
    relationships = list(
        CareRelationship.objects.filter(patient_id=patient_id)
        .select_related("organization")
        .order_by("organization__name", "organization_id")
    )
    decisions = {
        a.organization_id: a
        for a in AppAuthorization.objects.filter(
            app=app, organization_id__in=[r.organization_id for r in relationships]
        )
    }
    found = []
    for relationship in relationships:
        decision = decisions.get(relationship.organization_id)
        if decision is not None:
            state = AUTH_BLOCKED if decision.decision == AppAuthorization.Decision.BLOCKED else AUTH_ENABLED
            found.append(
                OrganizationAuthorization(relationship.organization, state, decision.decided_at, decision.reason)
            )
        else:
            state = AUTH_NOT_ENABLED_DEFAULT if app.is_production else AUTH_ENABLED_DEFAULT
            found.append(OrganizationAuthorization(relationship.organization, state, None, ""))
    return found


def holds_records(*, organization: Organization, patient_id: str) -> bool:
    return CareRelationship.objects.filter(patient_id=patient_id, organization=organization).exists()


# --- Which grants a caller may see ---------------------------------------------------------------


def grants_visible_to(
    *,
    app: App,
    organization: Organization,
    is_system: bool,
    patient_id: str | None = None,
) -> QuerySet[ConsentGrant]:
    """The grants a token may read: its own app's, plus, for a provider's backend service (a system
    token), the grants of patients whose records the provider holds, for apps of the same
    environment. A patient-facing token (``patient_id``) sees that patient's only.
    """
    visible = Q(app=app)
    if is_system and organization.partner_type == Organization.PartnerType.PROVIDER:
        held = CareRelationship.objects.filter(organization=organization).values("patient_id")
        visible |= Q(patient_id__in=held, app__environment=app.environment)
    grants = ConsentGrant.objects.filter(visible)
    if patient_id is not None:
        grants = grants.filter(patient_id=patient_id)
    return grants


def for_rendering(grants: QuerySet[ConsentGrant]) -> QuerySet[ConsentGrant]:
    return grants.select_related("app__organization", "text", "recorded_by_organization")


def with_history(grants) -> list[ConsentGrant]:
    """The grants, each with ``version`` (how many ledger events it has: each is a version of it)
    and ``last_event_at``, in one aggregate query over the ledger's grant index."""
    grants = list(grants)
    history = {
        row["grant_id"]: row
        for row in LedgerEvent.objects.filter(grant_id__in=[g.pk for g in grants])
        .values("grant_id")
        .annotate(version=Count("pk"), last_event_at=Max("occurred_at"))
        .order_by()
    }
    for grant in grants:
        row = history.get(grant.pk, {})
        grant.version = row.get("version", 0)
        grant.last_event_at = row.get("last_event_at")
    return grants


def grant_for_revocation(*, organization: Organization, grant_id: int) -> ConsentGrant | None:
    """A grant ``organization`` may revoke: one it recorded from a signed form, or one given to one
    of its own apps. Anything else is, to that organization, not there."""
    return (
        ConsentGrant.objects.select_related("app__organization", "text", "recorded_by_organization")
        .filter(Q(recorded_by_organization=organization) | Q(app__organization=organization), pk=grant_id)
        .first()
    )


def grant_by_id(grant_id: int) -> ConsentGrant | None:
    return (
        ConsentGrant.objects.select_related("app__organization", "text", "recorded_by_organization")
        .filter(pk=grant_id)
        .first()
    )


def app_by_client_id(client_id: str) -> App | None:
    return App.objects.select_related("organization").filter(client_id=client_id).first()
