import pytest
from django.urls import reverse
from django.utils import timezone

from partners import services
from partners.models import Invitation, Membership, Organization
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    TierUpgradeRequestFactory,
    UserFactory,
    member,
)
from tests.portal.conftest import link_in, login_as

NEW_ORG = {
    "name": "Acme Health",
    "slug": "acme-health",
    "partner_type": "developer",
    "website": "https://acme.example",
}


def test_creating_an_organization_makes_the_creator_its_owner(client, db):
    user = UserFactory()
    client.force_login(user)
    response = client.post(reverse("portal:organization-create"), NEW_ORG)
    assert response.status_code == 302
    assert response.url == reverse("portal:organization")

    organization = Organization.objects.get(slug="acme-health")
    assert organization.tier.slug == "sandbox"
    assert Membership.objects.get(organization=organization).user == user
    assert Membership.objects.get(organization=organization).role == Membership.Role.OWNER

    page = client.get(reverse("portal:organization"))
    assert "Acme Health" in page.text
    assert "Owner" in page.text
    assert "Sandbox tier" in page.text


def test_the_create_form_suggests_the_slug_with_local_javascript(client, db):
    client.force_login(UserFactory())
    page = client.get(reverse("portal:organization-create"))
    assert 'data-slug-from="id_name"' in page.text
    assert "/static/js/portal.js" in page.text


def test_a_taken_slug_shows_an_error_and_creates_nothing(client, db):
    OrganizationFactory(slug="acme-health")
    user = UserFactory()
    client.force_login(user)
    response = client.post(reverse("portal:organization-create"), NEW_ORG)
    assert response.status_code == 200
    assert "is taken" in response.text
    assert 'id="id_slug_error"' in response.text
    assert Organization.objects.count() == 1
    assert not Membership.objects.filter(user=user).exists()


def test_an_unverified_user_cannot_create_an_organization(client, db):
    user = UserFactory(email_verified_at=None)
    client.force_login(user)
    page = client.get(reverse("portal:organization-create"))
    assert "Resend the confirmation email" in page.text

    response = client.post(reverse("portal:organization-create"), NEW_ORG)
    assert response.status_code == 403
    assert "Confirm your email address before creating an organization." in response.text
    assert "Resend the confirmation email" in response.text
    assert not Organization.objects.exists()


def test_org_pages_send_a_user_without_organization_to_create_one(client, db):
    client.force_login(UserFactory())
    for name in ("portal:organization", "portal:apps", "portal:tiers", "portal:app-create"):
        response = client.get(reverse(name))
        assert response.status_code == 302, name
        assert response.url == reverse("portal:organization-create")


def test_org_pages_require_login(client, db):
    for name in (
        "portal:organization",
        "portal:apps",
        "portal:tiers",
        "portal:inbox",
        "portal:organization-create",
    ):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_organization_page_lists_members_with_roles(client, owner):
    viewer = member(Membership.Role.VIEWER, organization=owner.organization, email="viewer@example.com")
    client.force_login(owner.user)
    page = client.get(reverse("portal:organization"))
    assert viewer.user.email in page.text
    assert "Viewer" in page.text
    assert owner.user.email in page.text


def test_invite_emails_a_link_and_accepting_with_the_right_email_makes_a_membership(
    client, owner, mailoutbox, django_capture_on_commit_callbacks
):
    client.force_login(owner.user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("portal:invite"), {"email": "Colleague@Example.com", "role": "developer"})
    assert response.status_code == 302
    assert Invitation.objects.get().email == "colleague@example.com"
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["colleague@example.com"]
    accept_path = link_in(mailoutbox[0])

    page = client.get(reverse("portal:organization"))
    assert "colleague@example.com" in page.text  # listed under open invitations
    assert "Revoke" in page.text

    client.logout()
    anonymous = client.get(accept_path)
    assert anonymous.status_code == 200
    assert "Log in or sign up with <strong>colleague@example.com</strong> to accept" in anonymous.text
    assert f"{reverse('login')}?next={accept_path}" in anonymous.text
    assert f"{reverse('signup')}?next={accept_path}" in anonymous.text

    colleague = UserFactory(email="colleague@example.com", email_verified_at=None)
    client.force_login(colleague)
    shown = client.get(accept_path)
    assert owner.organization.name in shown.text
    assert "developer" in shown.text
    assert owner.user.display_name in shown.text

    response = client.post(accept_path)
    assert response.status_code == 302
    membership = Membership.objects.get(user=colleague)
    assert membership.organization == owner.organization
    assert membership.role == Membership.Role.DEVELOPER
    colleague.refresh_from_db()
    assert colleague.email_verified  # following the emailed link proves the address
    assert owner.organization.name in client.get(reverse("portal:organization")).text


def test_accepting_with_another_email_is_refused(client, owner, mailoutbox, django_capture_on_commit_callbacks):
    client.force_login(owner.user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("portal:invite"), {"email": "colleague@example.com", "role": "developer"})
    accept_path = link_in(mailoutbox[0])

    intruder = UserFactory(email="someone-else@example.com")
    client.force_login(intruder)
    page = client.get(accept_path)
    assert "This invitation is for colleague@example.com" in page.text
    response = client.post(accept_path)
    assert response.status_code == 403
    assert "you are logged in as someone-else@example.com" in response.text
    assert not Membership.objects.filter(user=intruder).exists()
    assert Invitation.objects.get().accepted_at is None


def test_accepting_needs_a_login(client, owner, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.membership_invite(
            organization=owner.organization, invited_by=owner.user, email="c@example.com", role="viewer"
        )
    accept_path = link_in(mailoutbox[0])
    response = client.post(accept_path)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    assert "next=" in response.url
    assert Membership.objects.count() == 1


def test_an_unknown_invitation_token_is_404(client, db):
    response = client.get(reverse("portal:invitation-accept", args=["not-a-real-token"]))
    assert response.status_code == 404
    assert "This invitation link is not valid" in response.text


def test_an_owner_revokes_an_invitation(client, owner):
    invitation = services.membership_invite(
        organization=owner.organization, invited_by=owner.user, email="c@example.com", role="viewer"
    )
    client.force_login(owner.user)
    response = client.post(reverse("portal:invitation-revoke", args=[invitation.pk]), follow=True)
    assert "is revoked" in response.text
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None


def test_a_developer_sees_no_invite_form_and_cannot_invite(client, owner, mailoutbox):
    invitation = services.membership_invite(
        organization=owner.organization, invited_by=owner.user, email="c@example.com", role="viewer"
    )
    login_as(client, Membership.Role.DEVELOPER, organization=owner.organization)
    page = client.get(reverse("portal:organization"))
    assert "Invite a colleague" not in page.text
    assert "Revoke" not in page.text

    response = client.post(reverse("portal:invite"), {"email": "x@example.com", "role": "viewer"})
    assert response.status_code == 403
    assert "does not allow this" in response.text
    assert Invitation.objects.count() == 1

    response = client.post(reverse("portal:invitation-revoke", args=[invitation.pk]))
    assert response.status_code == 403
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


def test_an_admin_is_not_offered_the_owner_role(client, owner):
    login_as(client, Membership.Role.ADMIN, organization=owner.organization)
    page = client.get(reverse("portal:organization"))
    assert '<option value="owner"' not in page.text
    assert '<option value="admin"' in page.text


def test_revoking_another_organizations_invitation_is_404(client, owner):
    invitation = services.membership_invite(
        organization=owner.organization, invited_by=owner.user, email="c@example.com", role="viewer"
    )
    login_as(client, Membership.Role.OWNER)
    assert client.post(reverse("portal:invitation-revoke", args=[invitation.pk])).status_code == 404
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


def test_a_member_sees_only_their_organizations_and_can_switch_between_them(client, owner):
    second = MembershipFactory(
        user=owner.user, organization=OrganizationFactory(name="Beta Clinic"), role=Membership.Role.VIEWER
    )
    foreign = OrganizationFactory(name="Foreign Org")
    client.force_login(owner.user)

    home = client.get(reverse("portal:home"))
    assert owner.organization.name in home.text
    assert "Beta Clinic" in home.text
    assert "Foreign Org" not in home.text
    assert "Switch organization" in home.text  # more than one membership

    response = client.post(reverse("portal:organization-switch", args=[second.organization.pk]))
    assert response.status_code == 302
    assert "<h1>Beta Clinic</h1>" in client.get(reverse("portal:organization")).text

    assert client.post(reverse("portal:organization-switch", args=[foreign.pk])).status_code == 404
    assert "<h1>Beta Clinic</h1>" in client.get(reverse("portal:organization")).text


def test_switch_is_post_only(owner_client, owner):
    response = owner_client.get(reverse("portal:organization-switch", args=[owner.organization.pk]))
    assert response.status_code == 405


def test_no_switcher_with_a_single_organization(owner_client):
    assert "Switch organization" not in owner_client.get(reverse("portal:home")).text


def test_a_suspended_organization_shows_a_banner_with_the_reason_on_every_org_page(client, owner):
    admin = UserFactory(is_staff=True)
    services.organization_suspend(organization=owner.organization, actor=admin, reason="Unpaid invoices since March.")
    client.force_login(owner.user)
    for name in ("portal:home", "portal:organization", "portal:apps", "portal:tiers"):
        page = client.get(reverse(name))
        assert f"{owner.organization.name} is suspended." in page.text, name
        assert "Unpaid invoices since March." in page.text, name


def test_decision_history_names_no_admin_and_shows_the_reason(client, owner):
    admin = UserFactory(is_staff=True, email="secret-admin@platform.example")
    upgrade = TierUpgradeRequestFactory(organization=owner.organization, requested_by=owner.user)
    services.tier_upgrade_request_reject(upgrade_request=upgrade, reviewer=admin, reason="Add an incident contact.")
    client.force_login(owner.user)
    page = client.get(reverse("portal:organization"))
    assert "Sandbox → Verified" in page.text
    assert "Rejected" in page.text
    assert "Platform admin" in page.text
    assert timezone.now().strftime("%Y-%m-%d") in page.text
    assert "Add an incident contact." in page.text
    assert "secret-admin@platform.example" not in page.text


@pytest.mark.django_db
def test_owner_changes_a_role_and_removes_a_member_from_the_page(client):
    from django.urls import reverse

    from partners.models import Membership
    from tests.factories import member

    owner = member("owner")
    dev = member("developer", organization=owner.organization)
    client.force_login(owner.user)
    page = client.get(reverse("portal:organization"))
    assert reverse("portal:member-role", args=[dev.pk]).encode() in page.content
    client.post(reverse("portal:member-role", args=[dev.pk]), {"role": "viewer"})
    assert Membership.objects.get(pk=dev.pk).role == "viewer"
    client.post(reverse("portal:member-remove", args=[dev.pk]))
    assert not Membership.objects.filter(pk=dev.pk).exists()


@pytest.mark.django_db
def test_roles_of_another_organization_answer_404(client):
    from django.urls import reverse

    from partners.models import Membership
    from tests.factories import member

    outsider = member("owner")
    victim = member("developer")
    client.force_login(outsider.user)
    assert client.post(reverse("portal:member-role", args=[victim.pk]), {"role": "owner"}).status_code == 404
    assert client.post(reverse("portal:member-remove", args=[victim.pk])).status_code == 404
    assert Membership.objects.get(pk=victim.pk).role == "developer"
