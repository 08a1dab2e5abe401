"""/org/app-authorizations/: a provider organization enables or blocks other organizations' apps."""

import pytest
from django.urls import reverse

from consent.models import AppAuthorization
from partners.models import App, Membership, Organization
from tests.factories import AppFactory, OrganizationFactory, member, tier

pytestmark = pytest.mark.django_db

PAGE = "/org/app-authorizations/"


def provider(**kwargs) -> Organization:
    return OrganizationFactory(name="Riverside Clinic", partner_type=Organization.PartnerType.PROVIDER, **kwargs)


def login(client, role=Membership.Role.OWNER, organization=None) -> Membership:
    membership = member(role, organization=organization or provider())
    client.force_login(membership.user)
    return membership


def decide(client, app, decision, **extra):
    return client.post(reverse("consent-org:app-authorization-decide", args=[app.pk]), {"decision": decision, **extra})


def test_the_urls():
    assert reverse("consent-org:app-authorizations") == PAGE
    assert reverse("consent-org:app-authorization-decide", args=[3]) == "/org/app-authorizations/3/"
    assert reverse("portal:organization") == "/org/"  # the portal's page is untouched


def test_login_is_required(client):
    assert client.get(PAGE).status_code == 302


def test_lists_other_organizations_sandbox_apps_with_the_default(client):
    membership = login(client)
    AppFactory(name="Own App", organization=membership.organization)
    AppFactory(name="Lab Buddy", organization=OrganizationFactory(name="Buddy Health"))
    AppFactory(name="Live App", environment=App.Environment.PRODUCTION)
    response = client.get(PAGE)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Lab Buddy" in html and "Buddy Health" in html
    assert "Default for sandbox apps" in html and "Enabled" in html
    assert "Own App" not in html  # its own apps are not its decision
    assert "Live App" not in html  # a sandbox-tier provider decides about sandbox apps
    assert '>Block<span class="visually-hidden"> Lab Buddy</span>' in html
    assert 'href="/org/app-authorizations/" aria-current="page">App access' in html


def test_a_provider_in_production_also_decides_about_production_apps(client):
    login(client, organization=provider(tier=tier("production")))
    AppFactory(name="Live App", environment=App.Environment.PRODUCTION)
    html = client.get(PAGE).content.decode()
    assert "Live App" in html
    assert "Not enabled" in html and "Default for production apps" in html
    assert '>Enable<span class="visually-hidden"> Live App</span>' in html


def test_the_owner_blocks_then_enables(client):
    membership = login(client)
    app = AppFactory(name="Lab Buddy")
    response = decide(client, app, "blocked")
    assert response.status_code == 302 and response["Location"] == PAGE
    authorization = AppAuthorization.objects.get(organization=membership.organization, app=app)
    assert (authorization.decision, authorization.decided_by) == ("blocked", membership.user)
    page = client.get(PAGE).content.decode()
    assert "Lab Buddy is blocked from the records of Riverside Clinic" in page
    assert "Blocked" in page and f"By {membership.user.display_name}" in page
    decide(client, app, "enabled", page="2")
    authorization.refresh_from_db()
    assert authorization.decision == "enabled"


def test_an_admin_decides_too(client):
    login(client, Membership.Role.ADMIN)
    app = AppFactory()
    assert decide(client, app, "blocked").status_code == 302
    assert AppAuthorization.objects.get(app=app).decision == "blocked"


@pytest.mark.parametrize("role", [Membership.Role.VIEWER, Membership.Role.DEVELOPER])
def test_viewers_and_developers_see_but_cannot_decide(client, role):
    login(client, role)
    app = AppFactory(name="Lab Buddy")
    html = client.get(PAGE).content.decode()
    assert "Lab Buddy" in html and "can see these decisions" in html
    assert "decision-form" not in html
    response = decide(client, app, "blocked")
    assert response.status_code == 403
    assert "Only an owner or admin" in response.content.decode()
    assert not AppAuthorization.objects.exists()


def test_a_non_provider_organization_is_refused(client):
    login(client, organization=OrganizationFactory(partner_type=Organization.PartnerType.DEVELOPER))
    app = AppFactory()
    response = client.get(PAGE)
    assert response.status_code == 403
    assert "only provider organizations decide" in response.content.decode()
    assert decide(client, app, "enabled").status_code == 403
    assert not AppAuthorization.objects.exists()


def test_a_user_without_an_organization_is_refused(client):
    from tests.factories import UserFactory

    client.force_login(UserFactory())
    assert client.get(PAGE).status_code == 403


def test_the_current_organization_decides(client):
    """With two organizations, the one chosen in the portal's switcher is the one acting."""
    membership = login(client, organization=OrganizationFactory(name="Aardvark Apps"))
    clinic = provider()
    Membership.objects.create(user=membership.user, organization=clinic, role=Membership.Role.OWNER)
    assert client.get(PAGE).status_code == 403  # the first organization by name is a developer
    session = client.session
    session["current_org_id"] = clinic.pk
    session.save()
    app = AppFactory()
    assert decide(client, app, "blocked").status_code == 302
    assert AppAuthorization.objects.get().organization == clinic


def test_an_own_app_or_an_unknown_one_is_not_found(client):
    membership = login(client)
    own = AppFactory(organization=membership.organization)
    assert decide(client, own, "blocked").status_code == 404
    assert client.post("/org/app-authorizations/999999/", {"decision": "blocked"}).status_code == 404


def test_a_bad_decision_is_refused_with_a_message(client):
    login(client)
    app = AppFactory()
    response = decide(client, app, "maybe")
    assert response.status_code == 302
    assert "Choose Enable or Block." in client.get(PAGE).content.decode()
    assert not AppAuthorization.objects.exists()


def test_get_does_not_decide(client):
    login(client)
    app = AppFactory()
    assert client.get(reverse("consent-org:app-authorization-decide", args=[app.pk])).status_code == 405
