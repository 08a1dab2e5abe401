"""Reads of the partners app. Everything that scopes data to what a member may see lives here."""

from dataclasses import dataclass

from partners.certification_selectors import passing_run
from partners.models import (
    App,
    InboxMessage,
    Invitation,
    Membership,
    Organization,
    Tier,
    TierUpgradeRequest,
    User,
)
from partners.tiers import SECURITY_QUESTIONNAIRE


def starting_tier() -> Tier:
    return Tier.objects.order_by("rank").first()


def membership_for(*, user: User, organization: Organization) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, organization=organization).first()


def memberships_of(user: User):
    return Membership.objects.filter(user=user).select_related("organization", "organization__tier")


def organization_for_member(*, user: User, organization_id: int) -> Organization | None:
    return Organization.objects.filter(pk=organization_id, memberships__user=user).select_related("tier").first()


def apps_of(organization: Organization):
    return organization.apps.order_by("environment", "name")


def app_for_member(*, user: User, app_id: int) -> App | None:
    """The app if the user is a member of its organization; ``None`` otherwise, so the caller
    answers 404 and never reveals that another organization's app exists."""
    return (
        App.objects.select_related("organization", "organization__tier")
        .filter(pk=app_id, organization__memberships__user=user)
        .first()
    )


def decision_history(organization: Organization):
    return organization.upgrade_requests.select_related("from_tier", "to_tier", "reviewer", "requested_by").order_by(
        "-created_at"
    )


def pending_upgrade_request(organization: Organization) -> TierUpgradeRequest | None:
    return organization.upgrade_requests.filter(status=TierUpgradeRequest.Status.PENDING).first()


@dataclass(frozen=True)
class Requirement:
    key: str
    label: str
    done: bool
    detail: str


def tier_checklist(organization: Organization, tier: Tier | None = None) -> list[Requirement]:
    """What reaching ``tier`` (by default the next one) takes, and which parts are already done."""
    tier = tier or organization.tier.next_tier()
    if tier is None:
        return []
    items = []
    if tier.requires_security_questionnaire:
        answered = organization.security_questionnaire or {}
        done = all(q.key in answered for q in SECURITY_QUESTIONNAIRE)
        items.append(
            Requirement(
                "security_questionnaire",
                "Security questionnaire answered",
                done,
                f"Submitted {organization.security_questionnaire_submitted_at:%Y-%m-%d}"
                if done
                else "Answer it in the upgrade request below.",
            )
        )
    if tier.requires_baa:
        done = organization.baa_signed_at is not None
        items.append(
            Requirement(
                "baa",
                "Business associate agreement signed",
                done,
                f"Version {organization.baa_version}, signed {organization.baa_signed_at:%Y-%m-%d}"
                if done
                else "Accept it in the upgrade request below.",
            )
        )
    if tier.requires_certification:
        run = passing_run(organization)
        items.append(
            Requirement(
                "certification",
                "A passing certification run in the last 30 days",
                run is not None,
                f"{run.app.name} passed run #{run.pk} on {run.finished_at:%Y-%m-%d}."
                if run is not None
                else "Run certification from a sandbox app's Certification page (Apps → your app → Certification).",
            )
        )
    if tier.requires_admin_approval:
        pending = pending_upgrade_request(organization)
        items.append(
            Requirement(
                "admin_approval",
                "Approved by a platform admin",
                False,
                f"Request sent {pending.created_at:%Y-%m-%d}; waiting for review."
                if pending
                else "Send the request below.",
            )
        )
    return items


def inbox_of(user: User):
    return InboxMessage.objects.filter(recipient=user).select_related("organization")


def unread_count(user: User) -> int:
    if not user.is_authenticated:
        return 0
    return InboxMessage.objects.filter(recipient=user, read_at=None).count()


def members_of(organization: Organization):
    return organization.memberships.select_related("user").order_by("created_at", "user__email")


def members_to_notify(*, organization: Organization, roles: set[str] | None = None):
    """Whose inbox and mailbox an organization's news goes to: its members of ``roles`` (every role when
    none are given) whose accounts are active; a deactivated account is no one's reader any more."""
    memberships = members_of(organization).filter(user__is_active=True)
    return memberships.filter(role__in=roles) if roles else memberships


def open_invitations_of(organization: Organization):
    return organization.invitations.filter(accepted_at=None, revoked_at=None).select_related("invited_by")


def invitation_for_member(*, user: User, invitation_id: int) -> Invitation | None:
    return (
        Invitation.objects.select_related("organization")
        .filter(pk=invitation_id, organization__memberships__user=user)
        .first()
    )


def upgrade_request_for_member(*, user: User, request_id: int) -> TierUpgradeRequest | None:
    return (
        TierUpgradeRequest.objects.select_related("organization", "to_tier", "from_tier")
        .filter(pk=request_id, organization__memberships__user=user)
        .first()
    )


def membership_for_member(*, user: User, membership_id: int) -> Membership | None:
    """A membership of one of the user's organizations (so a stranger's id answers 404)."""
    return (
        Membership.objects.select_related("organization", "user")
        .filter(pk=membership_id, organization__memberships__user=user)
        .first()
    )
