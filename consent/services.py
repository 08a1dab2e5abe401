"""Every write of the consent app, and the enforcement check the API's data layer calls.

Each change of a grant appends its ledger event in the same transaction, so the history can never
disagree with the state; revocation also revokes the app's tokens for that patient and writes a
``consent.revoked`` event to the outbox, all at once.
"""

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from consent import access_cache, ledger
from consent.models import AppAuthorization, CareRelationship, ConsentGrant, ConsentText, LedgerEvent
from marketplace import metrics
from partners import scopes as registry
from partners.exceptions import InvalidState, NotPermitted
from partners.models import App, Organization, User
from partners.oauth import revoke_tokens_for_patient
from partners.services import event_publish

APP_ACCESS = "app-access"
CLINICAL_CLASSES = {
    "demographics",
    "care_team",
    "observations",
    "lab_results",
    "vital_signs",
    "scheduling",
    "appointments",
    "coverage",
    "consent",
}


# --- Texts ---------------------------------------------------------------------------------------


def current_text(purpose: str = APP_ACCESS, *, at: datetime | None = None) -> ConsentText | None:
    at = at or timezone.now()
    return (
        ConsentText.objects.filter(purpose=purpose, published_at__isnull=False, effective_at__lte=at)
        .order_by("-version")
        .first()
    )


@transaction.atomic
def consent_text_publish(*, text: ConsentText) -> ConsentText:
    """Publish a draft version. It then never changes; grants given under earlier versions keep
    theirs. A version that adds data classes makes the next authorization ask again."""
    text = ConsentText.objects.select_for_update().get(pk=text.pk)
    if text.published_at is not None:
        raise InvalidState(f"{text} is already published.")
    unknown = set(text.data_classes) - set(registry.DATA_CLASSES)
    if unknown:
        raise ValidationError({"data_classes": f"Unknown data classes: {', '.join(sorted(unknown))}."})
    ConsentText.objects.filter(pk=text.pk).update(published_at=timezone.now())
    text.refresh_from_db()
    return text


# --- What scopes mean for consent --------------------------------------------------------------


def data_classes_of(scope_names) -> list[str]:
    parsed, _ = registry.parse_many(list(scope_names))
    classes = {scope.data_class for scope in parsed if scope.data_class not in {"identity", "access"}}
    return sorted(classes)


def covers(granted_classes, wanted: str) -> bool:
    granted = set(granted_classes)
    if wanted in granted or "all_records" in granted:
        return True
    return wanted in {"lab_results", "vital_signs"} and "observations" in granted


def _actor(user) -> str:
    return f"user:{user.pk}" if user is not None else "system"


# --- Grants ------------------------------------------------------------------------------------


def active_grant(*, patient_id: str, app: App, purpose: str = APP_ACCESS) -> ConsentGrant | None:
    return (
        ConsentGrant.objects.select_related("text")
        .filter(patient_id=patient_id, app=app, purpose=purpose, status=ConsentGrant.Status.ACTIVE)
        .first()
    )


@dataclass(frozen=True)
class ConsentNeed:
    """What the consent screen must ask: nothing (an existing grant covers it), or these scopes."""

    grant: ConsentGrant | None
    new_scopes: list[str]
    new_text: bool

    @property
    def satisfied(self) -> bool:
        return self.grant is not None and not self.new_scopes and not self.new_text


def consent_needed(*, patient_id: str, app: App, scopes) -> ConsentNeed:
    grant = active_grant(patient_id=patient_id, app=app)
    if grant is None:
        return ConsentNeed(None, list(scopes), False)
    new_scopes = [s for s in scopes if s not in grant.scopes]
    text = current_text()
    new_text = bool(text and text.pk != grant.text_id and text.adds_data_classes_to(grant.text))
    return ConsentNeed(grant, new_scopes, new_text)


@transaction.atomic
def consent_grant(
    *,
    patient_id: str,
    app: App,
    scopes,
    channel: str,
    granted_by: User | None = None,
    organization: Organization | None = None,
    source_document: str = "",
    expires_at: datetime | None = None,
    reason: str = "",
) -> ConsentGrant:
    """Record a patient's consent. A grant that already covers the scopes under the current text
    is reused; otherwise the new grant supersedes the active one."""
    if not patient_id:
        raise ValidationError({"patient": "A consent needs the patient it is about."})
    text = current_text()
    if text is None:
        raise InvalidState("No consent text is published for app access; an admin must publish one first.")
    scopes = list(dict.fromkeys(scopes))
    classes = data_classes_of(scopes)
    existing = (
        ConsentGrant.objects.select_for_update()
        .filter(patient_id=patient_id, app=app, purpose=APP_ACCESS, status=ConsentGrant.Status.ACTIVE)
        .first()
    )
    now = timezone.now()
    reusable = (
        existing is not None
        and set(scopes) <= set(existing.scopes)
        and not text.adds_data_classes_to(existing.text)
        # Never hand back a grant that has lapsed, nor one ending sooner than what is asked now.
        and (
            existing.expires_at is None
            or (existing.expires_at > now and expires_at is not None and expires_at <= existing.expires_at)
        )
    )
    if reusable:
        return existing
    if existing:
        ConsentGrant.objects.filter(pk=existing.pk).update(
            status=ConsentGrant.Status.SUPERSEDED, ended_at=now, end_reason="Replaced by a new consent."
        )
        access_cache.forget_consent(app_id=app.pk, patient_id=patient_id)
        ledger.append(
            patient_id=patient_id,
            kind="superseded",
            app=app,
            purpose=APP_ACCESS,
            actor=_actor(granted_by),
            channel=channel,
            grant=existing,
            text_label=existing.text.label,
            scopes=existing.scopes,
            reason="Replaced by a new consent.",
        )
    grant = ConsentGrant.objects.create(
        patient_id=patient_id,
        app=app,
        purpose=APP_ACCESS,
        text=text,
        scopes=scopes,
        data_classes=classes,
        channel=channel,
        granted_by=granted_by,
        recorded_by_organization=organization,
        source_document=source_document,
        expires_at=expires_at,
    )
    ledger.append(
        patient_id=patient_id,
        kind="granted",
        app=app,
        purpose=APP_ACCESS,
        actor=f"organization:{organization.slug}" if organization else _actor(granted_by),
        channel=channel,
        grant=grant,
        text_label=text.label,
        scopes=scopes,
        reason=reason,
    )
    metrics.consent_change("granted")
    event_publish(
        type="consent.granted",
        payload=_payload(grant),
        organization=app.organization,
        app=app,
        patient_id=patient_id,
    )
    return grant


@transaction.atomic
def consent_deny(*, patient_id: str, app: App, scopes, denied_by: User | None, channel: str) -> LedgerEvent:
    text = current_text()
    return ledger.append(
        patient_id=patient_id,
        kind="denied",
        app=app,
        purpose=APP_ACCESS,
        actor=_actor(denied_by),
        channel=channel,
        text_label=text.label if text else "",
        scopes=list(scopes),
        reason="The patient declined on the consent screen.",
    )


@transaction.atomic
def consent_revoke(*, grant: ConsentGrant, actor: str, channel: str, reason: str = "") -> bool:
    """Revoke a grant now: its tokens for that patient stop working at the next request, the
    ledger records it, and the app hears of it through a ``consent.revoked`` event. Returns False
    when the grant was no longer active (a second revocation changes nothing)."""
    grant = ConsentGrant.objects.select_for_update().select_related("app", "text").get(pk=grant.pk)
    if not grant.is_active:
        return False
    now = timezone.now()
    ConsentGrant.objects.filter(pk=grant.pk).update(status=ConsentGrant.Status.REVOKED, ended_at=now, end_reason=reason)
    access_cache.forget_consent(app_id=grant.app_id, patient_id=grant.patient_id)
    grant.refresh_from_db()
    ledger.append(
        patient_id=grant.patient_id,
        kind="revoked",
        app=grant.app,
        purpose=grant.purpose,
        actor=actor,
        channel=channel,
        grant=grant,
        text_label=grant.text.label,
        scopes=grant.scopes,
        reason=reason,
    )
    revoke_tokens_for_patient(grant.app, grant.patient_id)
    metrics.consent_change("revoked")
    event_publish(
        type="consent.revoked",
        payload={**_payload(grant), "revoked_at": now.isoformat(), "reason": reason},
        organization=grant.app.organization,
        app=grant.app,
        patient_id=grant.patient_id,
    )
    return True


def consent_revoke_by_patient(*, grant: ConsentGrant, user: User, reason: str = "") -> bool:
    if not user.fhir_patient_id or user.fhir_patient_id != grant.patient_id:
        raise NotPermitted("You can revoke only your own consents.")
    return consent_revoke(
        grant=grant,
        actor=_actor(user),
        channel=ConsentGrant.Channel.CONSENT_SCREEN,
        reason=reason or "Revoked by the patient in My connected apps.",
    )


@transaction.atomic
def consent_record_for_patient(
    *,
    organization: Organization,
    app: App,
    patient_id: str,
    scopes,
    source_document: str,
    recorded_by: User | None = None,
    expires_at: datetime | None = None,
) -> ConsentGrant:
    """A provider records a consent a patient gave on a signed form, for an app."""
    if organization.partner_type != Organization.PartnerType.PROVIDER:
        raise NotPermitted("Only provider organizations record consents on a patient's behalf.")
    if not CareRelationship.objects.filter(patient_id=patient_id, organization=organization).exists():
        raise NotPermitted(f"{organization.name} does not hold records of Patient/{patient_id}.")
    if not source_document.strip():
        raise ValidationError({"source_document": "Reference the signed form this consent was given on."})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The consent would already have expired."})
    parsed, problems = registry.parse_many(list(scopes))
    if problems or not parsed:
        raise ValidationError({"scopes": problems or ["Name the scopes the patient consented to."]})
    return consent_grant(
        patient_id=patient_id,
        app=app,
        scopes=[s.name for s in parsed],
        channel=ConsentGrant.Channel.SIGNED_FORM,
        granted_by=recorded_by,
        organization=organization,
        source_document=source_document.strip(),
        expires_at=expires_at,
        reason="Recorded by a provider from a signed form.",
    )


def consent_expire_due(*, now: datetime | None = None) -> int:
    """Mark grants past their expiry as expired, one transaction each (a beat task calls this)."""
    now = now or timezone.now()
    expired = 0
    for grant_id in ConsentGrant.objects.filter(status="active", expires_at__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            grant = ConsentGrant.objects.select_for_update().select_related("app", "text").get(pk=grant_id)
            if not grant.is_active:
                continue
            ConsentGrant.objects.filter(pk=grant.pk).update(status="expired", ended_at=now, end_reason="Expired")
            access_cache.forget_consent(app_id=grant.app_id, patient_id=grant.patient_id)
            ledger.append(
                patient_id=grant.patient_id,
                kind="expired",
                app=grant.app,
                purpose=grant.purpose,
                actor="system",
                channel=grant.channel,
                grant=grant,
                text_label=grant.text.label,
                scopes=grant.scopes,
                reason="The consent reached its expiry date.",
            )
            revoke_tokens_for_patient(grant.app, grant.patient_id)
            metrics.consent_change("expired")
            event_publish(
                type="consent.expired",
                payload={**_payload(grant), "status": "expired", "expired_at": now.isoformat()},
                organization=grant.app.organization,
                app=grant.app,
                patient_id=grant.patient_id,
            )
            expired += 1
    return expired


def _payload(grant: ConsentGrant) -> dict:
    return {
        "consent_id": grant.pk,
        "patient": f"Patient/{grant.patient_id}",
        "client_id": grant.app.client_id,
        "scopes": grant.scopes,
        "data_classes": grant.data_classes,
        "text": grant.text.label,
        "status": grant.status,
    }


# --- Organizations' authorization of apps -------------------------------------------------------


@transaction.atomic
def app_authorization_set(*, organization: Organization, app: App, decision: str, actor: User, reason: str = ""):
    if organization.partner_type != Organization.PartnerType.PROVIDER:
        raise NotPermitted("Only provider organizations decide which apps reach their patients.")
    if not organization.memberships.filter(user=actor, role__in=["owner", "admin"]).exists():
        raise NotPermitted("Only an owner or admin of the organization decides which apps reach its patients.")
    if decision not in AppAuthorization.Decision.values:
        raise ValidationError({"decision": "Choose enabled or blocked."})
    authorization, _ = AppAuthorization.objects.update_or_create(
        organization=organization, app=app, defaults={"decision": decision, "reason": reason, "decided_by": actor}
    )
    return authorization


def _provider_allows(decision: str | None, app: App) -> bool:
    """A provider's stance on an app: its explicit decision, or by default sandbox apps yes and
    production apps no."""
    if decision == AppAuthorization.Decision.BLOCKED:
        return False
    return decision is not None or not app.is_production


def authorization_refusal(*, app: App, patient_id: str) -> str | None:
    """Why the organizations holding this patient's records do not let this app reach them, or None."""
    relationships = list(CareRelationship.objects.filter(patient_id=patient_id).select_related("organization"))
    if not relationships:
        return None
    decisions = dict(
        AppAuthorization.objects.filter(
            app=app, organization_id__in=[r.organization_id for r in relationships]
        ).values_list("organization_id", "decision")
    )
    for relationship in relationships:
        decision = decisions.get(relationship.organization_id)
        if _provider_allows(decision, app):
            continue
        if decision == AppAuthorization.Decision.BLOCKED:
            return f"{relationship.organization.name}, which holds this patient's records, has blocked {app.name}."
        return (
            f"{relationship.organization.name}, which holds this patient's records, has not enabled {app.name} "
            "yet; production apps need each provider's explicit authorization."
        )
    return None


# --- Enforcement: the API's data layer ---------------------------------------------------------


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    code: str = ""
    detail: str = ""
    grant_id: int | None = None


def check_access(*, app: App, patient_id: str, data_class: str, found: dict | None = None) -> AccessDecision:
    """May ``app`` use ``data_class`` of ``patient_id``? Consent and organization authorization must
    both hold; the refusal names the one that failed (consent first, then authorization). Asked on
    every read of patient data, so the facts it decides from come from ``consent.access_cache``
    when they can (``found``: the cache keys the token layer fetched with the token, if it did)."""
    facts = access_cache.facts(
        app_id=app.pk, patient_id=patient_id, load=lambda: _access_facts(app=app, patient_id=patient_id), found=found
    )
    return _decide(facts, app=app, patient_id=patient_id, data_class=data_class)


def _access_facts(*, app: App, patient_id: str) -> access_cache.AccessFacts:
    grant = (
        ConsentGrant.objects.filter(patient_id=patient_id, app=app, purpose=APP_ACCESS)
        .order_by("-created_at", "-pk")
        .only("pk", "status", "data_classes", "expires_at", "ended_at")
        .first()
    )
    if grant is None:
        # Not even asked: where the patient is treated is none of this app's business yet.
        return access_cache.AccessFacts()
    return access_cache.AccessFacts(
        grant_id=grant.pk,
        status=grant.status,
        data_classes=tuple(grant.data_classes),
        expires_at=grant.expires_at,
        ended_at=grant.ended_at,
        authorization_refused=authorization_refusal(app=app, patient_id=patient_id) is not None,
    )


def _decide(facts: access_cache.AccessFacts, *, app: App, patient_id: str, data_class: str) -> AccessDecision:
    if facts.grant_id is None:
        # Say nothing of the patient's providers: where someone is treated is health information,
        # and this app has no consent to learn it.
        return AccessDecision(False, "consent_required", f"Patient/{patient_id} has not consented to {app.name}.")
    grant_id = facts.grant_id
    if facts.status == ConsentGrant.Status.REVOKED:
        return AccessDecision(
            False,
            "consent_revoked",
            f"Patient/{patient_id} revoked consent for {app.name} on {facts.ended_at:%Y-%m-%d %H:%M} UTC.",
            grant_id,
        )
    if facts.status == ConsentGrant.Status.EXPIRED or (facts.expires_at and facts.expires_at <= timezone.now()):
        return AccessDecision(
            False, "consent_expired", f"Patient/{patient_id}'s consent for {app.name} has expired.", grant_id
        )
    if not covers(facts.data_classes, data_class):
        label = registry.DATA_CLASSES.get(data_class)
        what = label.description if label else data_class
        return AccessDecision(
            False, "consent_required", f"Patient/{patient_id}'s consent for {app.name} does not cover {what}.", grant_id
        )
    if facts.authorization_refused:
        detail = authorization_refusal(app=app, patient_id=patient_id) or (
            f"An organization holding Patient/{patient_id}'s records has not enabled {app.name}."
        )
        return AccessDecision(False, "organization_authorization", detail, grant_id)
    return AccessDecision(True, grant_id=grant_id)


def consented_patients(*, app: App, data_class: str) -> dict[str, int]:
    """Every patient ``check_access`` would let ``app`` see ``data_class`` of, as patient id ->
    grant id, in three queries whatever their number: the app's grants in force, then the care
    relationships and the app's authorizations that may override them. The same rules as
    ``check_access``, for searches across patients."""
    now = timezone.now()
    rows = (
        ConsentGrant.objects.filter(app=app, purpose=APP_ACCESS, status=ConsentGrant.Status.ACTIVE)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values_list("patient_id", "pk", "data_classes")
    )
    grants = {patient_id: pk for patient_id, pk, classes in rows if covers(classes, data_class)}
    if not grants:
        return grants
    decisions = dict(AppAuthorization.objects.filter(app=app).values_list("organization_id", "decision"))
    refused = {
        patient_id
        for patient_id, organization_id in CareRelationship.objects.filter(patient_id__in=sorted(grants)).values_list(
            "patient_id", "organization_id"
        )
        if not _provider_allows(decisions.get(organization_id), app)
    }
    return {patient_id: pk for patient_id, pk in grants.items() if patient_id not in refused}


def provider_holds_records(*, organization: Organization, patient_id: str) -> bool:
    return (
        organization.partner_type == Organization.PartnerType.PROVIDER
        and CareRelationship.objects.filter(patient_id=patient_id, organization=organization).exists()
    )


def apps_that_may_see(*, patient_id: str, data_class: str) -> list[int]:
    """The ids of the apps that may see ``data_class`` of the patient now: the audience of an event
    about the patient (``partners.events``). Decided by ``check_access``, so an event reaches exactly
    the apps a read would: consent in force and covering the class, and no provider refusing."""
    from consent import selectors  # it imports this module's names

    grants = ConsentGrant.objects.filter(
        selectors.in_force(timezone.now()), patient_id=patient_id, purpose=APP_ACCESS
    ).select_related("app")
    return [
        grant.app_id
        for grant in grants
        if check_access(app=grant.app, patient_id=patient_id, data_class=data_class).allowed
    ]
