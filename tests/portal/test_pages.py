from django.test import Client
from django.urls import reverse

from partners.models import Organization, User
from tests.factories import DEFAULT_PASSWORD, AppFactory, UserFactory


def test_the_landing_page_explains_the_platform_and_offers_sign_up(client, db):
    page = client.get(reverse("portal:home"))
    assert page.status_code == 200
    assert "Create a developer account" in page.text
    assert f'href="{reverse("signup")}"' in page.text
    assert f'href="{reverse("login")}"' in page.text


def test_the_dashboard_shows_next_steps(client, db):
    client.force_login(UserFactory(email_verified_at=None))
    page = client.get(reverse("portal:home"))
    assert "Next steps" in page.text
    assert "Confirm your email address" in page.text
    assert "Resend the confirmation email" in page.text
    assert "Create or join an organization" in page.text


def test_the_dashboard_shows_organization_apps_tier_and_unread(owner_client, owner):
    AppFactory(organization=owner.organization)
    page = owner_client.get(reverse("portal:home"))
    assert owner.organization.name in page.text
    assert "of 3 allowed" in page.text
    assert "badge-tier-sandbox" in page.text


def test_pages_are_accessible_and_local(owner_client):
    page = owner_client.get(reverse("portal:apps"))
    assert 'class="skip-link" href="#main"' in page.text
    assert '<main id="main"' in page.text
    assert 'aria-current="page"' in page.text
    assert "https://" not in page.text.split("<body>")[0]  # no CDN or external font in <head>
    assert '<form method="post" action="/accounts/logout/">' in page.text


def test_custom_404_page(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "We could not find that page" in response.text


def test_a_post_without_the_csrf_token_is_refused(db):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        reverse("signup"),
        {"email": "a@example.com", "password": DEFAULT_PASSWORD, "password_confirm": DEFAULT_PASSWORD},
    )
    assert response.status_code == 403
    assert not User.objects.exists()

    user = UserFactory()
    client.force_login(user)
    response = client.post(
        reverse("portal:organization-create"), {"name": "X", "slug": "x", "partner_type": "developer"}
    )
    assert response.status_code == 403
    assert "This form has expired" in response.text
    assert not Organization.objects.exists()


def test_a_post_with_the_csrf_token_works(db):
    client = Client(enforce_csrf_checks=True)
    client.get(reverse("login"))
    UserFactory(email="dev@example.com")
    token = client.cookies["csrftoken"].value
    response = client.post(
        reverse("login"),
        {"username": "dev@example.com", "password": DEFAULT_PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
