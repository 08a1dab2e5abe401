"""Every write in the partners app. Keyword-only, transactional, named ``<noun>_<verb>``.

Views and admin actions validate their input, call one of these, and render the result; the rules
(roles, tier capabilities, state transitions) live here so the portal and Django admin cannot
disagree.
"""

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret

from partners import events, selectors
from partners.certification_selectors import passing_run
from partners.exceptions import InvalidState, NotPermitted, TierLimitReached
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
from partners.oauth import revoke_tokens_of_apps
from partners.tiers import BAA_VERSION, SECURITY_QUESTIONNAIRE
from partners.validators import parse_redirect_uris, validate_jwks, validate_jwks_url

EMAIL_VERIFICATION_SALT = "partners.email-verification"
GRANT_AUTHORIZATION_CODE = App.GRANT_AUTHORIZATION_CODE
GRANT_CLIENT_CREDENTIALS = App.GRANT_CLIENT_CREDENTIALS
SUPPORTED_GRANT_TYPES = (GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS)


def absolute_url(path: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{path}"


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _send_email_after_commit(*, to: list[str], subject: str, body: str) -> None:
    from partners import tasks

    transaction.on_commit(lambda: tasks.send_email.delay(to=to, subject=subject, body=body))


# --- Accounts --------------------------------------------------------------------------------


@transaction.atomic
def user_register(*, email: str, password: str, first_name: str = "", last_name: str = "") -> User:
    email = User.objects.normalize_email(email).strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError(
            {"email": "An account with this email address already exists. Log in or reset your password."}
        )
    user = User(email=email, first_name=first_name.strip(), last_name=last_name.strip())
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    user.set_password(password)
    user.save()
    user_send_verification_email(user=user)
    return user


def email_verification_token(user: User) -> str:
    return signing.dumps({"user": user.pk, "email": user.email}, salt=EMAIL_VERIFICATION_SALT)


def user_send_verification_email(*, user: User) -> None:
    link = absolute_url(reverse("verify-email", args=[email_verification_token(user)]))
    _send_email_after_commit(
        to=[user.email],
        subject="Confirm your email address",
        body=(
            "Welcome to the Healthcare Marketplace developer portal.\n\n"
            f"Confirm your email address to create an organization and register apps:\n{link}\n\n"
            "The link works for 48 hours. If you did not sign up, ignore this email."
        ),
    )


@transaction.atomic
def user_verify_email(*, token: str) -> User:
    try:
        data = signing.loads(token, salt=EMAIL_VERIFICATION_SALT, max_age=settings.EMAIL_VERIFICATION_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise InvalidState("This confirmation link has expired. Log in and ask for a new one.") from exc
    except signing.BadSignature as exc:
        raise InvalidState("This confirmation link is not valid. Check that you copied all of it.") from exc
    user = User.objects.select_for_update().filter(pk=data["user"], email__iexact=data["email"]).first()
    if user is None:
        raise InvalidState("This confirmation link belongs to an address that is no longer on the account.")
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])
    return user


# --- Organizations and members -----------------------------------------------------------------


def _require_member(user: User, organization: Organization, *, permission: str | None = None) -> Membership:
    membership = selectors.membership_for(user=user, organization=organization)
    if membership is None:
        raise NotPermitted("You are not a member of this organization.")
    if permission and not getattr(membership, permission):
        raise NotPermitted(f"Your role ({membership.get_role_display()}) does not allow this.")
    return membership


def _require_active(organization: Organization) -> None:
    if not organization.is_active:
        raise InvalidState(
            f"{organization.name} is suspended, so nothing can be changed. Contact support to resolve the suspension."
        )


@transaction.atomic
def organization_create(
    *, created_by: User, name: str, slug: str, partner_type: str, website: str = ""
) -> Organization:
    if not created_by.email_verified:
        raise NotPermitted("Confirm your email address before creating an organization.")
    organization = Organization(
        name=name.strip(),
        slug=slug.strip().lower(),
        partner_type=partner_type,
        website=website.strip(),
        tier=selectors.starting_tier(),
        created_by=created_by,
    )
    organization.full_clean(validate_unique=False)
    if Organization.objects.filter(slug=organization.slug).exists():
        raise ValidationError({"slug": f"The address “{organization.slug}” is taken. Choose another."})
    try:
        with transaction.atomic():
            organization.save()
    except IntegrityError as exc:  # a concurrent create took the slug between the check and the insert
        raise ValidationError({"slug": f"The address “{organization.slug}” is taken. Choose another."}) from exc
    Membership.objects.create(user=created_by, organization=organization, role=Membership.Role.OWNER)
    return organization


@transaction.atomic
def membership_invite(*, organization: Organization, invited_by: User, email: str, role: str) -> Invitation:
    inviter = _require_member(invited_by, organization, permission="can_manage_members")
    _require_active(organization)
    email = User.objects.normalize_email(email).strip().lower()
    if role not in Membership.Role.values:
        raise ValidationError({"role": "Choose one of the listed roles."})
    if role == Membership.Role.OWNER and inviter.role != Membership.Role.OWNER:
        raise NotPermitted("Only an owner can invite another owner.")
    if organization.memberships.filter(user__email__iexact=email).exists():
        raise ValidationError({"email": f"{email} is already a member of {organization.name}."})
    if organization.invitations.filter(email__iexact=email, accepted_at=None, revoked_at=None).exists():
        raise ValidationError({"email": f"{email} already has an open invitation. Revoke it to send a new one."})
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        organization=organization,
        email=email,
        role=role,
        token_hash=_hash_token(token),
        invited_by=invited_by,
        expires_at=timezone.now() + settings.INVITATION_MAX_AGE,
    )
    invitation.full_clean(exclude=["token_hash"])
    invitation.save()
    link = absolute_url(reverse("portal:invitation-accept", args=[token]))
    _send_email_after_commit(
        to=[email],
        subject=f"You are invited to join {organization.name}",
        body=(
            f"{invited_by.display_name} invited you to join {organization.name} on the Healthcare Marketplace "
            f"developer portal as {invitation.get_role_display().lower()}.\n\n"
            f"Accept the invitation (sign up or log in with this address first):\n{link}\n\n"
            f"The invitation expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
    )
    return invitation


def invitation_by_token(token: str) -> Invitation | None:
    return Invitation.objects.select_related("organization").filter(token_hash=_hash_token(token)).first()


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("organization")
        .filter(token_hash=_hash_token(token))
        .first()
    )
    if invitation is None:
        raise InvalidState("This invitation link is not valid.")
    if invitation.revoked_at is not None:
        raise InvalidState("This invitation was revoked. Ask the organization for a new one.")
    if invitation.accepted_at is not None:
        raise InvalidState("This invitation was already accepted.")
    if invitation.expires_at <= timezone.now():
        raise InvalidState("This invitation has expired. Ask the organization for a new one.")
    if invitation.email.lower() != user.email.lower():
        raise NotPermitted(
            f"This invitation is for {invitation.email}; you are logged in as {user.email}. "
            "Log in with the invited address."
        )
    _require_active(invitation.organization)
    if user.email_verified_at is None:
        # Following the emailed link proves the address is the user's.
        user.email_verified_at = timezone.now()
        user.save(update_fields=["email_verified_at"])
    membership, _ = Membership.objects.get_or_create(
        user=user, organization=invitation.organization, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: User) -> None:
    _require_member(actor, invitation.organization, permission="can_manage_members")
    if not invitation.is_open:
        raise InvalidState("Only an open invitation can be revoked.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])


def _owners_left_after(organization: Organization, membership: Membership) -> int:
    return organization.memberships.filter(role=Membership.Role.OWNER).exclude(pk=membership.pk).count()


@transaction.atomic
def membership_change_role(*, membership: Membership, actor: User, role: str) -> Membership:
    actor_membership = _require_member(actor, membership.organization, permission="can_manage_members")
    _require_active(membership.organization)
    if role not in Membership.Role.values:
        raise ValidationError({"role": "Choose one of the listed roles."})
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    touches_owner = Membership.Role.OWNER in {role, membership.role}
    if touches_owner and actor_membership.role != Membership.Role.OWNER:
        raise NotPermitted("Only an owner can make someone an owner or change an owner's role.")
    if membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER:
        # Lock every owner row so two owners demoting each other at once cannot leave none.
        list(membership.organization.memberships.select_for_update().filter(role=Membership.Role.OWNER))
        if _owners_left_after(membership.organization, membership) == 0:
            raise InvalidState("An organization needs at least one owner. Make someone else owner first.")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User) -> None:
    """Remove a member; anyone may leave, owners and admins may remove others."""
    if membership.user_id != actor.pk:
        actor_membership = _require_member(actor, membership.organization, permission="can_manage_members")
        if membership.role == Membership.Role.OWNER and actor_membership.role != Membership.Role.OWNER:
            raise NotPermitted("Only an owner can remove another owner.")
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == Membership.Role.OWNER:
        list(membership.organization.memberships.select_for_update().filter(role=Membership.Role.OWNER))
        if _owners_left_after(membership.organization, membership) == 0:
            raise InvalidState("An organization needs at least one owner. Make someone else owner first.")
    membership.delete()


@transaction.atomic
def organization_suspend(*, organization: Organization, actor: User, reason: str) -> bool:
    """Suspend a partner. Returns False when it already was (nothing changes)."""
    if not reason.strip():
        raise ValidationError({"reason": "Give the reason for the suspension; the partner sees it."})
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    if organization.status == Organization.Status.SUSPENDED:
        return False
    organization.status = Organization.Status.SUSPENDED
    organization.suspended_at = timezone.now()
    organization.suspended_by = actor
    organization.suspension_reason = reason.strip()
    organization.save(update_fields=["status", "suspended_at", "suspended_by", "suspension_reason"])
    # Every token stops now, not when it expires; new ones are refused while suspended.
    revoke_tokens_of_apps(organization.apps.values_list("pk", flat=True))
    organization_notify_members(
        organization=organization,
        subject=f"{organization.name} is suspended",
        body=(
            f"The platform suspended {organization.name}: {organization.suspension_reason}\n\n"
            "While suspended, your apps cannot get tokens or call the API, and nothing in the organization can "
            "be changed. Reply to this email or contact support to resolve it."
        ),
        link=reverse("portal:organization"),
    )
    return True


@transaction.atomic
def organization_reactivate(*, organization: Organization, actor: User) -> bool:
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    if organization.status == Organization.Status.ACTIVE:
        return False
    organization.status = Organization.Status.ACTIVE
    organization.suspended_at = None
    organization.suspended_by = None
    organization.suspension_reason = ""
    organization.save(update_fields=["status", "suspended_at", "suspended_by", "suspension_reason"])
    organization_notify_members(
        organization=organization,
        subject=f"{organization.name} is active again",
        body=f"The suspension of {organization.name} is lifted. Your apps can get tokens and call the API again.",
        link=reverse("portal:organization"),
    )
    return True


def organization_notify_members(
    *,
    organization: Organization,
    subject: str,
    body: str,
    link: str = "",
    roles: set[str] | None = None,
    email: bool = True,
) -> list[InboxMessage]:
    """A portal inbox message for each active member and, after commit, the same news by email.

    ``email=False`` writes the inbox messages only: the caller emails their recipients itself (with
    ``email_send``) because it records each delivery, as the deprecation notices do
    (api/deprecation_notices.py)."""
    memberships = list(selectors.members_to_notify(organization=organization, roles=roles))
    messages = InboxMessage.objects.bulk_create(
        [
            InboxMessage(recipient=m.user, organization=organization, subject=subject, body=body, link=link)
            for m in memberships
        ]
    )
    if email and memberships:
        email_body = body + (f"\n\n{absolute_url(link)}" if link else "")
        for m in memberships:
            _send_email_after_commit(to=[m.user.email], subject=subject, body=email_body)
    return messages


def email_send(*, to: list[str], subject: str, body: str) -> None:
    """One email, sent now in this process; raises what the mail backend raises (``OSError`` for SMTP).
    The ``send_email`` task calls it, queued after commit (``_send_email_after_commit``); a caller that
    records each delivery and retries itself (the deprecation notices) calls it directly."""
    send_mail(subject=subject, message=body, from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=to)


@transaction.atomic
def inbox_message_mark_read(*, message: InboxMessage, user: User) -> None:
    if message.recipient_id != user.pk:
        raise NotPermitted("This message is not yours.")
    if message.read_at is None:
        message.read_at = timezone.now()
        message.save(update_fields=["read_at"])


# --- Apps ------------------------------------------------------------------------------------


def _validate_grant_types(grant_types: list[str], client_type: str) -> list[str]:
    chosen = [grant for grant in SUPPORTED_GRANT_TYPES if grant in set(grant_types)]
    unknown = set(grant_types) - set(SUPPORTED_GRANT_TYPES)
    if unknown or not chosen:
        raise ValidationError(
            {
                "grant_types": "Choose authorization code, client credentials, or both "
                "(implicit and password are not offered)."
            }
        )
    if client_type == App.CLIENT_PUBLIC and GRANT_CLIENT_CREDENTIALS in chosen:
        raise ValidationError(
            {"grant_types": "A public client has no secret, so it cannot use client credentials. Make it confidential."}
        )
    return chosen


def _merge_model_errors(app: App, errors: dict) -> None:
    """Add the model's own field errors to ``errors``, except on fields our validators already
    reported: DOT's clean() would repeat "redirect_uris cannot be empty" after we refused them all."""
    try:
        app.full_clean(exclude=["client_id", "client_secret", "redirect_uris", "grant_types"])
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            if field not in errors:
                errors[field] = list(messages)


@transaction.atomic
def app_create(
    *,
    organization: Organization,
    actor: User,
    name: str,
    environment: str,
    client_type: str,
    grant_types: list[str],
    redirect_uris: str,
    description: str = "",
    homepage_url: str = "",
    privacy_policy_url: str = "",
) -> tuple[App, str | None]:
    """Register an app. Returns the app and its client secret in plain text, which is never stored
    and never shown again (``None`` for a public client, which has no secret)."""
    _require_member(actor, organization, permission="can_manage_apps")
    _require_active(organization)
    organization = Organization.objects.select_for_update().select_related("tier").get(pk=organization.pk)
    tier = organization.tier
    if environment == App.Environment.PRODUCTION and not tier.production_credentials:
        next_with = Tier.objects.filter(production_credentials=True).order_by("rank").first()
        raise TierLimitReached(
            f"The {tier.name} tier cannot register production apps"
            + (f"; the {next_with.name} tier can. Request an upgrade on the Tier page." if next_with else ".")
        )
    if organization.apps.count() >= tier.max_apps:
        raise TierLimitReached(
            f"The {tier.name} tier allows {tier.max_apps} apps and you have reached that number. "
            "Delete one or request the next tier on the Tier page."
        )
    errors = {}
    try:
        chosen_grants = _validate_grant_types(grant_types, client_type)
    except ValidationError as exc:
        errors.update(exc.message_dict)
        chosen_grants = []
    try:
        uris = parse_redirect_uris(redirect_uris, environment=environment)
    except ValidationError as exc:
        errors["redirect_uris"] = exc.messages
        uris = []
    if GRANT_AUTHORIZATION_CODE in chosen_grants and not uris and "redirect_uris" not in errors:
        errors["redirect_uris"] = ["Authorization code needs at least one redirect URI."]
    secret = generate_client_secret() if client_type == App.CLIENT_CONFIDENTIAL else ""
    app = App(
        organization=organization,
        user=actor,
        name=name.strip(),
        environment=environment,
        client_type=client_type,
        grant_types=chosen_grants,
        authorization_grant_type=chosen_grants[0] if chosen_grants else GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(uris),
        description=description.strip(),
        homepage_url=homepage_url.strip(),
        privacy_policy_url=privacy_policy_url.strip(),
        client_secret=secret,
        hash_client_secret=True,
        algorithm=App.RS256_ALGORITHM,  # signs OpenID Connect id_tokens (SMART openid fhirUser)
    )
    _merge_model_errors(app, errors)
    if errors:
        raise ValidationError(errors)
    app.save()
    return app, secret or None


@transaction.atomic
def app_update(
    *,
    app: App,
    actor: User,
    name: str,
    redirect_uris: str,
    description: str = "",
    homepage_url: str = "",
    privacy_policy_url: str = "",
) -> App:
    _require_member(actor, app.organization, permission="can_manage_apps")
    _require_active(app.organization)
    app = App.objects.select_for_update().get(pk=app.pk)
    errors = {}
    try:
        uris = parse_redirect_uris(redirect_uris, environment=app.environment)
    except ValidationError as exc:
        errors["redirect_uris"] = exc.messages
        uris = []
    if app.allows_grant_type(GRANT_AUTHORIZATION_CODE) and not uris and "redirect_uris" not in errors:
        errors["redirect_uris"] = ["Authorization code needs at least one redirect URI."]
    app.name = name.strip()
    app.redirect_uris = " ".join(uris)
    app.description = description.strip()
    app.homepage_url = homepage_url.strip()
    app.privacy_policy_url = privacy_policy_url.strip()
    _merge_model_errors(app, errors)
    if errors:
        raise ValidationError(errors)
    app.save()
    return app


@transaction.atomic
def app_rotate_secret(*, app: App, actor: User) -> str:
    """Give the app a new client secret and return it in plain text; the old one stops working now."""
    _require_member(actor, app.organization, permission="can_manage_apps")
    _require_active(app.organization)
    app = App.objects.select_for_update().get(pk=app.pk)
    if app.client_type != App.CLIENT_CONFIDENTIAL:
        raise InvalidState("A public client has no secret to rotate.")
    secret = generate_client_secret()
    app.client_secret = secret
    app.secret_rotated_at = timezone.now()
    app.save(update_fields=["client_secret", "secret_rotated_at", "updated"])
    return secret


@transaction.atomic
def app_changelog_feed_rotate(*, app: App, actor: User) -> None:
    """Give the app's private changelog feed a new address; the old one answers 404 from now on (a
    leaked address tells whoever has it which endpoints the app calls, and how often)."""
    _require_member(actor, app.organization, permission="can_manage_apps")
    App.objects.filter(pk=app.pk).update(changelog_feed_generation=F("changelog_feed_generation") + 1)
    app.refresh_from_db(fields=["changelog_feed_generation"])


# --- Tiers -----------------------------------------------------------------------------------


def _clean_questionnaire(answers: dict | None) -> dict:
    answers = answers or {}
    cleaned, missing = {}, []
    for question in SECURITY_QUESTIONNAIRE:
        entry = answers.get(question.key) or {}
        answer = str(entry.get("answer", "")).lower()
        if answer not in {"yes", "no"}:
            missing.append(question.text)
            continue
        cleaned[question.key] = {"answer": answer, "notes": str(entry.get("notes", ""))[:1000]}
    if missing:
        raise ValidationError({"questionnaire": [f"Answer: {text}" for text in missing]})
    return cleaned


@transaction.atomic
def tier_upgrade_request_create(
    *,
    organization: Organization,
    actor: User,
    justification: str = "",
    questionnaire_answers: dict | None = None,
    evidence_links: str = "",
    baa_accepted: bool = False,
) -> TierUpgradeRequest:
    _require_member(actor, organization, permission="can_request_upgrade")
    _require_active(organization)
    organization = Organization.objects.select_for_update().select_related("tier").get(pk=organization.pk)
    to_tier = organization.tier.next_tier()
    if to_tier is None:
        raise InvalidState(f"{organization.tier.name} is the highest tier.")
    if organization.upgrade_requests.filter(status=TierUpgradeRequest.Status.PENDING).exists():
        raise InvalidState("A request is already pending. Withdraw it to send a new one.")
    errors = {}
    answers = None
    if to_tier.requires_security_questionnaire or questionnaire_answers:
        try:
            answers = _clean_questionnaire(questionnaire_answers)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if to_tier.requires_baa and not baa_accepted and organization.baa_signed_at is None:
        errors["baa_accepted"] = [f"The {to_tier.name} tier needs the business associate agreement accepted."]
    links = evidence_links.split()
    bad_links = [link for link in links if not link.startswith(("https://", "http://"))]
    if bad_links:
        errors["evidence_links"] = [f"Not a web address: {link}" for link in bad_links]
    if len(justification) > 4000:
        errors["justification"] = ["Keep the justification under 4,000 characters."]
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    if answers is not None:
        organization.security_questionnaire = answers
        organization.security_questionnaire_submitted_at = now
    if baa_accepted and organization.baa_signed_at is None:
        organization.baa_signed_at = now
        organization.baa_signed_by = actor
        organization.baa_version = BAA_VERSION
    organization.save()
    return TierUpgradeRequest.objects.create(
        organization=organization,
        from_tier=organization.tier,
        to_tier=to_tier,
        requested_by=actor,
        justification=justification.strip(),
        questionnaire_answers=answers,
        evidence_links="\n".join(links),
        baa_accepted=baa_accepted or organization.baa_signed_at is not None,
    )


@transaction.atomic
def tier_upgrade_request_withdraw(*, upgrade_request: TierUpgradeRequest, actor: User) -> None:
    _require_member(actor, upgrade_request.organization, permission="can_request_upgrade")
    upgrade_request = TierUpgradeRequest.objects.select_for_update().get(pk=upgrade_request.pk)
    if not upgrade_request.is_pending:
        raise InvalidState(f"This request is already {upgrade_request.get_status_display().lower()}.")
    upgrade_request.status = TierUpgradeRequest.Status.WITHDRAWN
    upgrade_request.decided_at = timezone.now()
    upgrade_request.save(update_fields=["status", "decided_at"])


def _lock_for_decision(upgrade_request: TierUpgradeRequest, reviewer: User) -> TierUpgradeRequest:
    if not (reviewer.is_staff and reviewer.is_active):
        raise NotPermitted("Only platform admins decide tier upgrades.")
    upgrade_request = (
        TierUpgradeRequest.objects.select_for_update()
        .select_related("organization", "to_tier")
        .get(pk=upgrade_request.pk)
    )
    if upgrade_request.organization.memberships.filter(user=reviewer).exists():
        raise NotPermitted(
            f"You belong to {upgrade_request.organization.name}, so another admin must decide its requests."
        )
    return upgrade_request


@transaction.atomic
def tier_upgrade_request_approve(*, upgrade_request: TierUpgradeRequest, reviewer: User, reason: str = "") -> bool:
    """Approve and move the organization to the requested tier in the same transaction.

    Returns False when the request was already approved: approving twice changes nothing.
    """
    upgrade_request = _lock_for_decision(upgrade_request, reviewer)
    if upgrade_request.status == TierUpgradeRequest.Status.APPROVED:
        return False
    if not upgrade_request.is_pending:
        raise InvalidState(f"This request is {upgrade_request.get_status_display().lower()}; it cannot be approved.")
    organization = Organization.objects.select_for_update().get(pk=upgrade_request.organization_id)
    if organization.tier_id != upgrade_request.from_tier_id:
        raise InvalidState(
            f"{organization.name} is no longer on {upgrade_request.from_tier.name}; reject this request instead."
        )
    if upgrade_request.to_tier.requires_certification and passing_run(organization) is None:
        raise InvalidState(
            f"The {upgrade_request.to_tier.name} tier requires a passing certification run in the last 30 days, "
            f"and no app of {organization.name} has one. Ask them to run certification on a sandbox app first."
        )
    now = timezone.now()
    organization.tier = upgrade_request.to_tier
    organization.save(update_fields=["tier"])
    upgrade_request.status = TierUpgradeRequest.Status.APPROVED
    upgrade_request.reviewer = reviewer
    upgrade_request.decided_at = now
    upgrade_request.decision_reason = reason.strip()
    upgrade_request.save(update_fields=["status", "reviewer", "decided_at", "decision_reason"])
    to_tier = upgrade_request.to_tier
    event_publish(
        type="tier.changed",
        payload={
            "organization": organization.slug,
            "from_tier": upgrade_request.from_tier.slug,
            "to_tier": to_tier.slug,
            "changed_at": now.isoformat(),
        },
        organization=organization,
    )
    organization_notify_members(
        organization=organization,
        subject=f"{organization.name} is now on the {to_tier.name} tier",
        body=(
            f"Your request to move {organization.name} from {upgrade_request.from_tier.name} to {to_tier.name} "
            "was approved."
            + (f"\n\nReviewer's note: {upgrade_request.decision_reason}" if reason.strip() else "")
            + "\n\nThe new tier's capabilities apply from now on."
        ),
        link=reverse("portal:tiers"),
    )
    return True


@transaction.atomic
def tier_upgrade_request_reject(*, upgrade_request: TierUpgradeRequest, reviewer: User, reason: str) -> bool:
    """Reject with a reason the partner sees. Returns False when it was already rejected."""
    if not reason.strip():
        raise ValidationError({"reason": "A rejection needs a reason; the partner sees it and can act on it."})
    upgrade_request = _lock_for_decision(upgrade_request, reviewer)
    if upgrade_request.status == TierUpgradeRequest.Status.REJECTED:
        return False
    if not upgrade_request.is_pending:
        raise InvalidState(f"This request is {upgrade_request.get_status_display().lower()}; it cannot be rejected.")
    upgrade_request.status = TierUpgradeRequest.Status.REJECTED
    upgrade_request.reviewer = reviewer
    upgrade_request.decided_at = timezone.now()
    upgrade_request.decision_reason = reason.strip()
    upgrade_request.save(update_fields=["status", "reviewer", "decided_at", "decision_reason"])
    organization = upgrade_request.organization
    organization_notify_members(
        organization=organization,
        subject=f"Your request for the {upgrade_request.to_tier.name} tier was not approved",
        body=(
            f"Your request to move {organization.name} to {upgrade_request.to_tier.name} was rejected.\n\n"
            f"Reason: {upgrade_request.decision_reason}\n\nYou can address this and send a new request."
        ),
        link=reverse("portal:tiers"),
    )
    return True


def oauth_records_purge() -> dict:
    """Forget what can no longer matter: expired tokens and grants (DOT's own sweep), and the
    jti of client assertions past their exp (a replay after that fails on exp anyway)."""
    from oauth2_provider.models import clear_expired

    from partners.models import UsedClientAssertion

    clear_expired()
    deleted, _ = UsedClientAssertion.objects.filter(expires_at__lt=timezone.now()).delete()
    return {"client_assertions": deleted}


@transaction.atomic
def app_set_keys(*, app: App, actor: User, jwks: dict | None, jwks_url: str) -> App:
    """Register the public keys that verify the app's SMART Backend Services assertions
    (private_key_jwt): a JWK Set by value or the URL where the app publishes one. Neither removes
    the registered keys."""
    _require_member(actor, app.organization, permission="can_manage_apps")
    _require_active(app.organization)
    app = App.objects.select_for_update().get(pk=app.pk)
    jwks_url = (jwks_url or "").strip()
    if jwks is not None and jwks_url:
        raise ValidationError({"__all__": ["Register your keys either as a JWK Set or as a JWKS URL, not both."]})
    errors = {}
    if jwks is not None:
        try:
            jwks = validate_jwks(jwks)
        except ValidationError as exc:
            errors["jwks"] = exc.messages
    if jwks_url:
        try:
            # The same switch the fetcher obeys, so what registers is what can be fetched.
            validate_jwks_url(jwks_url, allow_loopback_http=settings.ALLOW_PRIVATE_NETWORK_URLS)
        except ValidationError as exc:
            errors["jwks_url"] = exc.messages
    if errors:
        raise ValidationError(errors)
    app.jwks = jwks
    app.jwks_url = jwks_url
    app.save(update_fields=["jwks", "jwks_url", "updated"])
    return app


def app_record_first_token(*, app: App, at=None) -> bool:
    """The onboarding milestone "first token": set once, when the app is first issued an access token
    (``partners.oauth``'s validator, for every grant). Free once set (the app in hand says so); the
    first time one UPDATE that only a still-empty column matches, so two first tokens at once leave the
    earlier write. Returns whether this call set it."""
    if app.first_token_at is not None:
        return False
    at = at or timezone.now()
    updated = App.objects.filter(pk=app.pk, first_token_at__isnull=True).update(first_token_at=at)
    app.first_token_at = at if updated else app.first_token_at
    return bool(updated)


def apps_record_first_success(*, app_ids, hour) -> int:
    """The onboarding milestone "first successful call": ``hour`` (the UTC hour of a 2xx response, from
    ``api.usage.rollup``) for each of ``app_ids`` that has none yet. One UPDATE that only still-empty
    columns match, so a milestone is never moved and a rollup rerun changes nothing. Returns how many
    apps reached it now."""
    if not app_ids:
        return 0
    return App.objects.filter(pk__in=set(app_ids), first_success_at__isnull=True).update(first_success_at=hour)


def event_publish(*, type: str, payload: dict, organization=None, app=None, patient_id: str = ""):
    """Write an event to the outbox, in the caller's transaction; once that commits, a worker fans it
    out to the apps that may see it (``partners.event_services``). ``type`` must be in the catalogue
    (``partners.events``), whose version the payload is written in."""
    from partners.event_services import queue_fan_out
    from partners.models import OutboxEvent

    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("event_publish must run inside the transaction of the change it announces")
    event_type = events.get(type)  # KeyError: an event nobody documented is a programming error
    event = OutboxEvent.objects.create(
        type=type,
        payload=payload,
        organization=organization,
        app=app,
        patient_id=patient_id,
        version=event_type.version,
    )
    queue_fan_out(event)
    return event
