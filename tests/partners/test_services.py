from datetime import timedelta

import pytest
from django.contrib.auth.hashers import check_password
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from partners import services
from partners.exceptions import InvalidState, NotPermitted
from partners.models import App, InboxMessage, Invitation, Membership, Organization, TierUpgradeRequest, User
from partners.tiers import SECURITY_QUESTIONNAIRE
from tests.factories import (
    AppFactory,
    OrganizationFactory,
    TierUpgradeRequestFactory,
    UserFactory,
    member,
    tier,
)

pytestmark = pytest.mark.django_db

ALL_YES = {q.key: {"answer": "yes", "notes": ""} for q in SECURITY_QUESTIONNAIRE}


def app_kwargs(**overrides):
    values = {
        "name": "Lab Viewer",
        "environment": App.Environment.SANDBOX,
        "client_type": App.CLIENT_CONFIDENTIAL,
        "grant_types": [App.GRANT_AUTHORIZATION_CODE],
        "redirect_uris": "https://labs.example.com/callback",
    }
    values.update(overrides)
    return values


# --- Accounts --------------------------------------------------------------------------------


def test_register_sends_a_verification_link_that_verifies(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        user = services.user_register(email="New.Dev@Example.com", password="a-long-unusual-passphrase")
    assert user.email == "new.dev@example.com"
    assert not user.email_verified
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new.dev@example.com"]
    link = next(line for line in mail.outbox[0].body.splitlines() if "/accounts/verify/" in line)
    token = link.rstrip("/").split("/")[-1]
    services.user_verify_email(token=token)
    user.refresh_from_db()
    assert user.email_verified


def test_register_refuses_a_taken_email_in_any_case():
    UserFactory(email="taken@example.com")
    with pytest.raises(ValidationError) as exc:
        services.user_register(email="TAKEN@example.com", password="a-long-unusual-passphrase")
    assert "email" in exc.value.message_dict
    assert User.objects.filter(email__iexact="taken@example.com").count() == 1


def test_register_refuses_a_weak_password_and_creates_nothing():
    with pytest.raises(ValidationError) as exc:
        services.user_register(email="weak@example.com", password="password")
    assert "password" in exc.value.message_dict
    assert not User.objects.filter(email="weak@example.com").exists()


def test_verification_link_that_was_tampered_with_is_refused():
    with pytest.raises(InvalidState, match="not valid"):
        services.user_verify_email(token="bogus:token")


def test_expired_verification_link_is_refused(settings):
    user = UserFactory(email_verified_at=None)
    token = services.email_verification_token(user)
    settings.EMAIL_VERIFICATION_MAX_AGE = -1
    with pytest.raises(InvalidState, match="expired"):
        services.user_verify_email(token=token)


# --- Organizations -------------------------------------------------------------------------


def test_creator_becomes_owner_on_the_starting_tier():
    user = UserFactory()
    org = services.organization_create(created_by=user, name="Clinic Co", slug="clinic-co", partner_type="provider")
    assert org.tier.slug == "sandbox"
    assert Membership.objects.get(user=user, organization=org).role == Membership.Role.OWNER


def test_unverified_user_cannot_create_an_organization():
    user = UserFactory(email_verified_at=None)
    with pytest.raises(NotPermitted, match="Confirm your email"):
        services.organization_create(created_by=user, name="X", slug="x-org", partner_type="provider")
    assert not Organization.objects.filter(slug="x-org").exists()


def test_duplicate_slug_is_refused_and_creates_nothing():
    OrganizationFactory(slug="taken-slug")
    user = UserFactory()
    with pytest.raises(ValidationError) as exc:
        services.organization_create(created_by=user, name="Other", slug="Taken-Slug", partner_type="payer")
    assert "slug" in exc.value.message_dict
    assert Organization.objects.filter(slug="taken-slug").count() == 1
    assert not Membership.objects.filter(user=user).exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "x" * 121), ("slug", "not a slug!"), ("partner_type", "pharmacy"), ("website", "not-a-url")],
)
def test_bad_organization_fields_are_refused(field, value):
    values = {"name": "Fine", "slug": "fine-org", "partner_type": "provider", "website": ""}
    values[field] = value
    with pytest.raises(ValidationError) as exc:
        services.organization_create(created_by=UserFactory(), **values)
    assert field in exc.value.message_dict
    assert Organization.objects.count() == 0


def test_invitation_round_trip(django_capture_on_commit_callbacks):
    owner = member(Membership.Role.OWNER)
    with django_capture_on_commit_callbacks(execute=True):
        invitation = services.membership_invite(
            organization=owner.organization,
            invited_by=owner.user,
            email="Friend@Example.com",
            role="developer",
        )
    assert mail.outbox[-1].to == ["friend@example.com"]
    token = mail.outbox[-1].body.split("/invitations/")[1].split("/")[0]
    assert invitation.token_hash != token  # only the hash is stored
    friend = UserFactory(email="friend@example.com", email_verified_at=None)
    membership = services.invitation_accept(token=token, user=friend)
    assert membership.role == "developer"
    friend.refresh_from_db()
    assert friend.email_verified  # following the emailed link proves the address
    with pytest.raises(InvalidState, match="already accepted"):
        services.invitation_accept(token=token, user=friend)


def test_invitation_for_another_address_is_refused():
    owner = member()
    services.membership_invite(
        organization=owner.organization, invited_by=owner.user, email="a@example.com", role="viewer"
    )
    token = "unknown"
    with pytest.raises(InvalidState):
        services.invitation_accept(token=token, user=UserFactory())


def test_invitation_accepted_by_the_wrong_account_is_refused(django_capture_on_commit_callbacks):
    owner = member()
    with django_capture_on_commit_callbacks(execute=True):
        services.membership_invite(
            organization=owner.organization, invited_by=owner.user, email="a@example.com", role="viewer"
        )
    token = mail.outbox[-1].body.split("/invitations/")[1].split("/")[0]
    intruder = UserFactory(email="b@example.com")
    with pytest.raises(NotPermitted, match=r"a@example\.com"):
        services.invitation_accept(token=token, user=intruder)
    assert not Membership.objects.filter(user=intruder).exists()


def test_expired_and_revoked_invitations_are_refused(django_capture_on_commit_callbacks):
    owner = member()
    with django_capture_on_commit_callbacks(execute=True):
        invitation = services.membership_invite(
            organization=owner.organization, invited_by=owner.user, email="late@example.com", role="viewer"
        )
    token = mail.outbox[-1].body.split("/invitations/")[1].split("/")[0]
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    late = UserFactory(email="late@example.com")
    with pytest.raises(InvalidState, match="expired"):
        services.invitation_accept(token=token, user=late)
    services.invitation_revoke(invitation=invitation, actor=owner.user)
    with pytest.raises(InvalidState, match="revoked"):
        services.invitation_accept(token=token, user=late)


def test_only_owners_and_admins_invite_and_only_owners_invite_owners():
    owner = member(Membership.Role.OWNER)
    viewer = member(Membership.Role.VIEWER, organization=owner.organization)
    admin = member(Membership.Role.ADMIN, organization=owner.organization)
    with pytest.raises(NotPermitted):
        services.membership_invite(
            organization=owner.organization, invited_by=viewer.user, email="x@example.com", role="viewer"
        )
    with pytest.raises(NotPermitted, match="owner"):
        services.membership_invite(
            organization=owner.organization, invited_by=admin.user, email="x@example.com", role="owner"
        )
    services.membership_invite(
        organization=owner.organization, invited_by=admin.user, email="x@example.com", role="developer"
    )
    with pytest.raises(ValidationError, match="open invitation"):
        services.membership_invite(
            organization=owner.organization, invited_by=owner.user, email="X@example.com", role="viewer"
        )
    with pytest.raises(ValidationError, match="already a member"):
        services.membership_invite(
            organization=owner.organization, invited_by=owner.user, email=viewer.user.email, role="viewer"
        )


# --- Apps ------------------------------------------------------------------------------------


def test_app_secret_is_returned_once_and_stored_hashed():
    owner = member()
    app, secret = services.app_create(organization=owner.organization, actor=owner.user, **app_kwargs())
    app.refresh_from_db()
    assert secret and app.client_secret != secret
    assert check_password(secret, app.client_secret)
    assert app.allows_grant_type(App.GRANT_AUTHORIZATION_CODE)
    assert not app.allows_grant_type(App.GRANT_CLIENT_CREDENTIALS)


def test_app_with_both_grants_allows_both():
    owner = member()
    app, _ = services.app_create(
        organization=owner.organization,
        actor=owner.user,
        **app_kwargs(grant_types=["client-credentials", "authorization-code"]),
    )
    assert app.grant_types == ["authorization-code", "client-credentials"]
    assert app.allows_grant_type(App.GRANT_CLIENT_CREDENTIALS)


def test_public_client_has_no_secret_and_cannot_use_client_credentials():
    owner = member()
    app, secret = services.app_create(
        organization=owner.organization, actor=owner.user, **app_kwargs(client_type=App.CLIENT_PUBLIC)
    )
    assert secret is None
    with pytest.raises(ValidationError) as exc:
        services.app_create(
            organization=owner.organization,
            actor=owner.user,
            **app_kwargs(client_type=App.CLIENT_PUBLIC, grant_types=["client-credentials"]),
        )
    assert "grant_types" in exc.value.message_dict
    with pytest.raises(InvalidState):
        services.app_rotate_secret(app=app, actor=owner.user)


@pytest.mark.parametrize(
    ("uris", "environment", "fragment"),
    [
        ("https://*.example.com/cb", "sandbox", "wildcards"),
        ("https://app.example.com/cb#frag", "sandbox", "fragment"),
        ("/relative/callback", "sandbox", "absolute"),
        ("ftp://app.example.com/cb", "sandbox", "absolute"),
        ("https://user:pw@app.example.com/cb", "sandbox", "user name"),
        ("https://" + "a" * 2000 + ".com/", "sandbox", "longer"),
    ],
)
def test_bad_redirect_uris_are_refused_with_the_reason(uris, environment, fragment):
    owner = member()
    with pytest.raises(ValidationError) as exc:
        services.app_create(
            organization=owner.organization,
            actor=owner.user,
            **app_kwargs(redirect_uris=uris, environment=environment),
        )
    assert fragment in " ".join(exc.value.message_dict["redirect_uris"])
    assert App.objects.count() == 0


def test_production_needs_https_except_loopback():
    owner = member(organization=OrganizationFactory(tier=tier("production")))
    with pytest.raises(ValidationError, match="https"):
        services.app_create(
            organization=owner.organization,
            actor=owner.user,
            **app_kwargs(environment="production", redirect_uris="http://app.example.com/cb"),
        )
    app, _ = services.app_create(
        organization=owner.organization,
        actor=owner.user,
        **app_kwargs(environment="production", redirect_uris="http://127.0.0.1:8080/cb https://app.example.com/cb"),
    )
    assert app.redirect_uri_list == ["http://127.0.0.1:8080/cb", "https://app.example.com/cb"]


def test_sandbox_tier_cannot_register_production_apps():
    owner = member()
    with pytest.raises(NotPermitted, match="Production tier can"):
        services.app_create(organization=owner.organization, actor=owner.user, **app_kwargs(environment="production"))


def test_tier_caps_the_number_of_apps():
    owner = member()
    for n in range(tier("sandbox").max_apps):
        services.app_create(organization=owner.organization, actor=owner.user, **app_kwargs(name=f"App {n}"))
    with pytest.raises(NotPermitted, match="allows 3 apps"):
        services.app_create(organization=owner.organization, actor=owner.user, **app_kwargs(name="One too many"))


def test_oversized_app_name_is_refused():
    owner = member()
    with pytest.raises(ValidationError) as exc:
        services.app_create(organization=owner.organization, actor=owner.user, **app_kwargs(name="n" * 256))
    assert "name" in exc.value.message_dict
    assert App.objects.count() == 0


def test_viewer_cannot_register_or_rotate():
    viewer = member(Membership.Role.VIEWER)
    app = AppFactory(organization=viewer.organization)
    before = App.objects.get(pk=app.pk).client_secret
    with pytest.raises(NotPermitted):
        services.app_create(organization=viewer.organization, actor=viewer.user, **app_kwargs())
    with pytest.raises(NotPermitted):
        services.app_rotate_secret(app=app, actor=viewer.user)
    assert App.objects.get(pk=app.pk).client_secret == before


def test_member_of_another_organization_cannot_touch_an_app():
    app = AppFactory()
    outsider = member()
    with pytest.raises(NotPermitted):
        services.app_rotate_secret(app=app, actor=outsider.user)
    with pytest.raises(NotPermitted):
        services.app_update(app=app, actor=outsider.user, name="Hijacked", redirect_uris="https://evil.example/cb")
    assert App.objects.get(pk=app.pk).name != "Hijacked"


def test_rotation_replaces_the_secret():
    owner = member()
    app, first = services.app_create(organization=owner.organization, actor=owner.user, **app_kwargs())
    second = services.app_rotate_secret(app=app, actor=owner.user)
    app.refresh_from_db()
    assert second != first
    assert check_password(second, app.client_secret)
    assert not check_password(first, app.client_secret)
    assert app.secret_rotated_at is not None


def test_suspended_organization_cannot_change_anything():
    owner = member()
    services.organization_suspend(organization=owner.organization, actor=UserFactory(is_staff=True), reason="Abuse")
    owner.organization.refresh_from_db()
    with pytest.raises(InvalidState, match="suspended"):
        services.app_create(organization=owner.organization, actor=owner.user, **app_kwargs())


# --- Tiers -----------------------------------------------------------------------------------


def test_upgrade_request_to_verified_needs_the_questionnaire():
    owner = member()
    with pytest.raises(ValidationError) as exc:
        services.tier_upgrade_request_create(organization=owner.organization, actor=owner.user)
    assert "questionnaire" in exc.value.message_dict
    assert not TierUpgradeRequest.objects.exists()
    request = services.tier_upgrade_request_create(
        organization=owner.organization,
        actor=owner.user,
        questionnaire_answers=ALL_YES,
        justification="Ready",
    )
    assert (request.from_tier.slug, request.to_tier.slug, request.status) == (
        "sandbox",
        "verified",
        "pending",
    )
    owner.organization.refresh_from_db()
    assert owner.organization.security_questionnaire_submitted_at is not None


def test_one_pending_request_at_a_time_and_developers_cannot_ask():
    owner = member()
    developer = member(Membership.Role.DEVELOPER, organization=owner.organization)
    with pytest.raises(NotPermitted):
        services.tier_upgrade_request_create(
            organization=owner.organization, actor=developer.user, questionnaire_answers=ALL_YES
        )
    services.tier_upgrade_request_create(
        organization=owner.organization, actor=owner.user, questionnaire_answers=ALL_YES
    )
    with pytest.raises(InvalidState, match="already pending"):
        services.tier_upgrade_request_create(
            organization=owner.organization, actor=owner.user, questionnaire_answers=ALL_YES
        )


def test_production_request_needs_the_baa():
    owner = member(organization=OrganizationFactory(tier=tier("verified")))
    with pytest.raises(ValidationError) as exc:
        services.tier_upgrade_request_create(
            organization=owner.organization, actor=owner.user, questionnaire_answers=ALL_YES
        )
    assert "baa_accepted" in exc.value.message_dict
    services.tier_upgrade_request_create(
        organization=owner.organization, actor=owner.user, questionnaire_answers=ALL_YES, baa_accepted=True
    )
    owner.organization.refresh_from_db()
    assert owner.organization.baa_signed_by == owner.user


def test_highest_tier_has_nowhere_to_go():
    owner = member(organization=OrganizationFactory(tier=tier("strategic")))
    with pytest.raises(InvalidState, match="highest"):
        services.tier_upgrade_request_create(
            organization=owner.organization, actor=owner.user, questionnaire_answers=ALL_YES
        )


def test_approval_changes_the_tier_and_notifies_every_member_once(django_capture_on_commit_callbacks):
    owner = member()
    developer = member(Membership.Role.DEVELOPER, organization=owner.organization)
    upgrade = TierUpgradeRequestFactory(organization=owner.organization)
    reviewer = UserFactory(is_staff=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.tier_upgrade_request_approve(upgrade_request=upgrade, reviewer=reviewer, reason="Looks good")
    owner.organization.refresh_from_db()
    upgrade.refresh_from_db()
    assert owner.organization.tier.slug == "verified"
    assert (upgrade.status, upgrade.reviewer, upgrade.decision_reason) == ("approved", reviewer, "Looks good")
    assert upgrade.decided_at is not None
    assert sorted(m.to[0] for m in mail.outbox) == sorted([owner.user.email, developer.user.email])
    assert "Verified" in mail.outbox[0].subject
    assert InboxMessage.objects.filter(organization=owner.organization).count() == 2

    # Approving twice changes nothing and tells nobody again.
    with django_capture_on_commit_callbacks(execute=True):
        assert services.tier_upgrade_request_approve(upgrade_request=upgrade, reviewer=reviewer) is False
    assert len(mail.outbox) == 2
    assert InboxMessage.objects.count() == 2


def test_an_admin_cannot_decide_for_their_own_organization():
    insider = member(Membership.Role.VIEWER, is_staff=True)
    upgrade = TierUpgradeRequestFactory(organization=insider.organization)
    with pytest.raises(NotPermitted, match="another admin"):
        services.tier_upgrade_request_approve(upgrade_request=upgrade, reviewer=insider.user)
    with pytest.raises(NotPermitted):
        services.tier_upgrade_request_reject(upgrade_request=upgrade, reviewer=insider.user, reason="no")
    insider.organization.refresh_from_db()
    assert insider.organization.tier.slug == "sandbox"
    assert TierUpgradeRequest.objects.get(pk=upgrade.pk).is_pending


def test_only_staff_decide():
    upgrade = TierUpgradeRequestFactory()
    with pytest.raises(NotPermitted, match="platform admins"):
        services.tier_upgrade_request_approve(upgrade_request=upgrade, reviewer=UserFactory(is_staff=False))


def test_rejection_needs_a_reason_and_keeps_the_tier(django_capture_on_commit_callbacks):
    owner = member()
    upgrade = TierUpgradeRequestFactory(organization=owner.organization)
    reviewer = UserFactory(is_staff=True)
    with pytest.raises(ValidationError, match="reason"):
        services.tier_upgrade_request_reject(upgrade_request=upgrade, reviewer=reviewer, reason="  ")
    with django_capture_on_commit_callbacks(execute=True):
        services.tier_upgrade_request_reject(upgrade_request=upgrade, reviewer=reviewer, reason="Add MFA first")
    upgrade.refresh_from_db()
    assert upgrade.status == "rejected"
    assert "Add MFA first" in mail.outbox[0].body
    with pytest.raises(InvalidState, match="rejected"):
        services.tier_upgrade_request_approve(upgrade_request=upgrade, reviewer=reviewer)
    owner.organization.refresh_from_db()
    assert owner.organization.tier.slug == "sandbox"


def test_withdrawn_request_cannot_be_approved():
    owner = member()
    upgrade = TierUpgradeRequestFactory(organization=owner.organization)
    services.tier_upgrade_request_withdraw(upgrade_request=upgrade, actor=owner.user)
    with pytest.raises(InvalidState, match="withdrawn"):
        services.tier_upgrade_request_approve(upgrade_request=upgrade, reviewer=UserFactory(is_staff=True))


def test_suspend_and_reactivate_notify_and_are_idempotent(django_capture_on_commit_callbacks):
    owner = member()
    staff = UserFactory(is_staff=True)
    with pytest.raises(ValidationError):
        services.organization_suspend(organization=owner.organization, actor=staff, reason="")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.organization_suspend(organization=owner.organization, actor=staff, reason="Unpaid invoices")
        assert not services.organization_suspend(organization=owner.organization, actor=staff, reason="again")
    owner.organization.refresh_from_db()
    assert owner.organization.status == "suspended"
    assert owner.organization.suspension_reason == "Unpaid invoices"
    assert len(mail.outbox) == 1
    assert services.organization_reactivate(organization=owner.organization, actor=staff)
    owner.organization.refresh_from_db()
    assert owner.organization.is_active


# --- Member roles ------------------------------------------------------------------------------


def test_owner_changes_roles_but_the_last_owner_stays():
    owner = member(Membership.Role.OWNER)
    dev = member(Membership.Role.DEVELOPER, organization=owner.organization)
    services.membership_change_role(membership=dev, actor=owner.user, role="admin")
    assert Membership.objects.get(pk=dev.pk).role == "admin"
    with pytest.raises(InvalidState, match="at least one owner"):
        services.membership_change_role(membership=owner, actor=owner.user, role="viewer")
    with pytest.raises(InvalidState, match="at least one owner"):
        services.membership_remove(membership=owner, actor=owner.user)
    assert Membership.objects.get(pk=owner.pk).role == "owner"


def test_admin_cannot_touch_owners_and_viewer_cannot_change_roles():
    owner = member(Membership.Role.OWNER)
    admin = member(Membership.Role.ADMIN, organization=owner.organization)
    viewer = member(Membership.Role.VIEWER, organization=owner.organization)
    with pytest.raises(NotPermitted):
        services.membership_change_role(membership=viewer, actor=admin.user, role="owner")
    with pytest.raises(NotPermitted):
        services.membership_remove(membership=owner, actor=admin.user)
    with pytest.raises(NotPermitted):
        services.membership_change_role(membership=admin, actor=viewer.user, role="viewer")
    services.membership_remove(membership=viewer, actor=viewer.user)  # anyone may leave
    assert not Membership.objects.filter(pk=viewer.pk).exists()


def test_a_second_owner_lets_the_first_leave():
    owner = member(Membership.Role.OWNER)
    other = member(Membership.Role.DEVELOPER, organization=owner.organization)
    services.membership_change_role(membership=other, actor=owner.user, role="owner")
    services.membership_remove(membership=owner, actor=owner.user)
    assert list(Membership.objects.values_list("role", flat=True)) == ["owner"]
