"""Lab-result shares: one laboratory Observation, shared by an app on the patient's consent with another
partner organization until a chosen moment; the sharing app may end it early.

Every write runs in the caller's transaction (the view's idempotent block) and leaves, with it, the
``LabResultShare`` row, an access event (the share is a disclosure of patient data) and an outbox event
(``lab_result.shared``, ``lab_result.share_revoked``).

A share's status is stored as ``active`` or ``revoked`` only: ``expired`` is computed from
``expires_at`` whenever it is read, so no task has to run for a share to stop being active on time.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from rest_framework.exceptions import ValidationError

from api.audit import record_access
from api.models import LabResultShare, Observation
from api.problems import Problem
from api.workflows.common import new_id
from consent import services as consent_services
from partners.models import Organization
from partners.services import event_publish

DATA_CLASS = "lab_results"
LAB_CATEGORY = "laboratory"
ACTIVE = LabResultShare.Status.ACTIVE.value
REVOKED = LabResultShare.Status.REVOKED.value
EXPIRED = "expired"  # computed, never stored
STATUSES = (ACTIVE, REVOKED, EXPIRED)
# A share is a disclosure outside the patient's care team: bounded, so a forgotten one ends by itself.
MAX_DURATION = timedelta(days=365)


@dataclass(frozen=True)
class ShareRequest:
    recipient: str  # the recipient organization's slug
    expires_at: datetime
    purpose: str


def share_status(share: LabResultShare, *, now: datetime | None = None) -> str:
    """``active``, ``revoked`` or ``expired`` (an active share whose ``expires_at`` has passed)."""
    if share.status == ACTIVE and share.expires_at <= (now or timezone.now()):
        return EXPIRED
    return share.status


def with_status(shares, status: str, *, now: datetime | None = None):
    """``shares`` narrowed to those whose computed status is ``status`` (one of ``STATUSES``)."""
    now = now or timezone.now()
    if status == ACTIVE:
        return shares.filter(status=ACTIVE, expires_at__gt=now)
    if status == EXPIRED:
        return shares.filter(status=ACTIVE, expires_at__lte=now)
    return shares.filter(status=REVOKED)


def lab_observation(*, context, observation_id: str) -> Observation:
    """The laboratory Observation ``observation_id`` in the app's environment; 404 for anything else
    (another environment's, a vital sign, an unknown id), so the answer cannot be used to probe."""
    observation = (
        Observation.objects.filter(environment=context.app.environment, id=observation_id, category=LAB_CATEGORY)
        .only("id", "patient_id", "environment", "category")
        .first()
    )
    if observation is None:
        raise Problem("not_found", f"No laboratory Observation/{observation_id} is visible to this app.")
    return observation


def _terms_errors(*, context, wanted: ShareRequest, now: datetime) -> tuple[Organization | None, dict]:
    """The recipient ``wanted`` names, and what is wrong with the share's terms, by field: the recipient
    must be another, active partner organization; the end must be in the future, at most
    ``MAX_DURATION`` away. Both are checked at once, so a partner fixes its request in one round."""
    errors = {}
    recipient = Organization.objects.filter(slug=wanted.recipient).first()
    if recipient is None:
        errors["recipient"] = [f"No partner organization is called {wanted.recipient!r}."]
    elif recipient.pk == context.organization.pk:
        errors["recipient"] = ["A lab result is shared with another organization, not your own."]
    elif not recipient.is_active:
        # Suspended partners may not receive patient data; the message names no reason of theirs.
        errors["recipient"] = [f"{recipient.slug} is not an active partner organization."]
    if wanted.expires_at <= now:
        errors["expires_at"] = ["Give a moment in the future."]
    elif wanted.expires_at > now + MAX_DURATION:
        errors["expires_at"] = [f"A share lasts at most {MAX_DURATION.days} days from now."]
    return recipient, errors


def lab_result_share(
    request, *, context, observation: Observation, wanted: ShareRequest, grant_id: int | None
) -> LabResultShare:
    """Share ``observation`` with ``wanted.recipient`` until ``wanted.expires_at``. The caller has checked
    the patient's consent to lab results (``grant_id`` is the grant it rests on)."""
    now = timezone.now()
    if grant_id is None:
        # The data layer lets a provider's backend service reach its own patients without their consent;
        # handing a result to another organization is still the patient's decision, and the share
        # records the consent it rests on, so ask consent itself.
        decision = consent_services.check_access(
            app=context.app, patient_id=observation.patient_id, data_class=DATA_CLASS
        )
        if not decision.allowed:
            raise Problem(
                decision.code or "consent_required",
                f"Sharing a lab result with another organization rests on the patient's own consent. {decision.detail}",
                patient=f"Patient/{observation.patient_id}",
                data_class=DATA_CLASS,
            )
        grant_id = decision.grant_id
    recipient, errors = _terms_errors(context=context, wanted=wanted, now=now)
    if errors:
        # A field of the request is wrong (the caller named the recipient and the end): 400, listed.
        raise ValidationError(errors)
    share = LabResultShare.objects.create(
        id=new_id("share"),
        environment=context.app.environment,
        app=context.app,
        organization=context.organization,
        recipient=recipient,
        observation_id=observation.id,
        patient_id=observation.patient_id,
        purpose=wanted.purpose,
        consent_grant_id=grant_id,
        starts_at=now,
        expires_at=wanted.expires_at,
        status=ACTIVE,
        created_at=now,
    )
    record_access(
        request,
        resource_type="Observation",
        resource_id=observation.id,
        patient_id=observation.patient_id,
        action="create",
        outcome="allowed",
        consent_grant_id=grant_id,
    )
    event_publish(
        type="lab_result.shared",
        payload=_event_payload(share),
        organization=context.organization,
        app=context.app,
        patient_id=share.patient_id,
    )
    return share


def lab_result_share_revoke(request, *, context, share: LabResultShare) -> LabResultShare:
    """End an active share now; 409 when it is already revoked or has expired. The row is locked, so two
    revocations never both count. Needs no consent: ending a disclosure must work even (above all)
    after the patient withdrew theirs."""
    now = timezone.now()
    share = LabResultShare.objects.select_for_update().select_related("recipient").get(pk=share.pk)
    status = share_status(share, now=now)
    if status != ACTIVE:
        when = share.revoked_at if status == REVOKED else share.expires_at
        raise Problem(
            "share_not_revocable",
            f"The share {share.id} is already {status} (since {when:%Y-%m-%d %H:%M} UTC); nothing needs ending.",
            share_status=status,
        )
    share.status = REVOKED
    share.revoked_at = now
    share.save(update_fields=["status", "revoked_at"])
    record_access(
        request,
        resource_type="Observation",
        resource_id=share.observation_id,
        patient_id=share.patient_id,
        action="update",
        outcome="allowed",
    )
    event_publish(
        type="lab_result.share_revoked",
        payload={**_event_payload(share), "revoked_at": now.isoformat()},
        organization=context.organization,
        app=context.app,
        patient_id=share.patient_id,
    )
    return share


def _event_payload(share: LabResultShare) -> dict:
    return {
        "share_id": share.id,
        "observation": f"Observation/{share.observation_id}",
        "patient": f"Patient/{share.patient_id}",
        "recipient": share.recipient.slug,
        "purpose": share.purpose,
        "expires_at": share.expires_at.isoformat(),
    }


def visible_shares(*, context):
    """The shares this app made, in its environment (and only its patient's, for a patient token)."""
    shares = LabResultShare.objects.filter(environment=context.app.environment, app_id=context.app.pk).select_related(
        "recipient"
    )
    if context.patient_id:
        shares = shares.filter(patient_id=context.patient_id)
    return shares


def share_consent_active(*, context, share: LabResultShare) -> bool:
    """Whether the patient's consent still lets this app use their lab results. A share does not end
    when consent is withdrawn (the app ends it, or it expires), but it no longer counts: recipients and
    the app should treat it as void. Asked for one share at a time, never per row of a list."""
    return consent_services.check_access(app=context.app, patient_id=share.patient_id, data_class=DATA_CLASS).allowed
