import pytest
from django.contrib.auth.hashers import check_password
from django.urls import reverse

from partners.models import App, Membership
from tests.factories import AppFactory, OrganizationFactory, tier
from tests.portal.conftest import login_as

NEW_APP = {
    "name": "Care Companion",
    "environment": "sandbox",
    "client_type": "confidential",
    "grant_types": ["authorization-code", "client-credentials"],
    "redirect_uris": "https://care.example.com/callback\nhttp://127.0.0.1:8080/callback",
    "description": "Helps patients track their visits.",
    "homepage_url": "https://care.example.com",
    "privacy_policy_url": "https://care.example.com/privacy",
}


def test_registering_an_app_shows_the_secret_exactly_once(owner_client, owner):
    response = owner_client.post(reverse("portal:app-create"), NEW_APP)
    assert response.status_code == 302
    app = App.objects.get()
    assert response.url == reverse("portal:app-detail", args=[app.pk])
    assert app.organization == owner.organization
    assert app.grant_types == ["authorization-code", "client-credentials"]
    assert app.redirect_uri_list == ["https://care.example.com/callback", "http://127.0.0.1:8080/callback"]

    first = owner_client.get(response.url)
    assert first.status_code == 200
    assert "Copy it now: it will not be shown again" in first.text
    assert "no-store" in first["Cache-Control"]
    secret = first.context["secret"]
    assert secret and secret in first.text

    stored = App.objects.get().client_secret
    assert stored != secret  # only a hash is kept
    assert check_password(secret, stored)

    second = owner_client.get(response.url)
    assert second.status_code == 200
    assert secret not in second.text
    assert "Copy it now" not in second.text


def test_the_detail_page_shows_the_app(owner_client, owner):
    owner_client.post(reverse("portal:app-create"), NEW_APP)
    app = App.objects.get()
    owner_client.get(app.get_absolute_url())  # the one view with the secret
    page = owner_client.get(app.get_absolute_url())
    for text in (
        "Care Companion",
        app.client_id,
        "Sandbox",
        "Confidential",
        "Authorization code with PKCE",
        "Client credentials (backend services)",
        "https://care.example.com/callback",
        "https://care.example.com/privacy",
        "Helps patients track their visits.",
        'data-copy="#client-id"',
        "Rotate secret",
    ):
        assert text in page.text, text


def test_apps_list_shows_the_organizations_apps_only(owner_client, owner):
    mine = AppFactory(organization=owner.organization, name="Mine")
    AppFactory(name="Somebody else's")
    page = owner_client.get(reverse("portal:apps"))
    assert "Mine" in page.text
    assert mine.client_id in page.text
    assert "Somebody else" not in page.text
    assert "Register an app" in page.text


def test_a_public_client_gets_no_secret(owner_client):
    data = {**NEW_APP, "client_type": "public", "grant_types": ["authorization-code"]}
    response = owner_client.post(reverse("portal:app-create"), data, follow=True)
    assert response.status_code == 200
    assert "Copy it now" not in response.text
    assert App.objects.get().client_type == "public"
    assert "Rotate secret" not in response.text


def test_a_public_client_cannot_use_client_credentials(owner_client):
    data = {**NEW_APP, "client_type": "public"}
    response = owner_client.post(reverse("portal:app-create"), data)
    assert response.status_code == 200
    assert "cannot use client credentials" in response.text
    assert 'id="id_grant_types_error"' in response.text
    assert not App.objects.exists()


@pytest.mark.parametrize(
    ("environment", "uri", "message"),
    [
        ("sandbox", "https://*.example.com/callback", "wildcards are not allowed"),
        ("sandbox", "https://app.example.com/callback#done", "must not contain a fragment"),
        ("production", "http://app.example.com/callback", "production apps must use https"),
        ("sandbox", "/callback", "must be an absolute http or https URL"),
    ],
)
def test_invalid_redirect_uris_show_inline_errors_and_create_nothing(client, db, environment, uri, message):
    organization = OrganizationFactory(tier=tier("production"))
    login_as(client, Membership.Role.DEVELOPER, organization=organization)
    data = {**NEW_APP, "environment": environment, "redirect_uris": uri}
    response = client.post(reverse("portal:app-create"), data)
    assert response.status_code == 200
    assert message in response.text
    assert 'id="id_redirect_uris_error"' in response.text
    assert 'aria-invalid="true"' in response.text
    assert not App.objects.exists()


def test_an_oversized_name_shows_an_error(owner_client):
    response = owner_client.post(reverse("portal:app-create"), {**NEW_APP, "name": "x" * 256})
    assert response.status_code == 200
    assert 'id="id_name_error"' in response.text
    assert "at most 255 characters" in response.text
    assert not App.objects.exists()


def test_a_sandbox_tier_cannot_register_a_production_app(owner_client):
    response = owner_client.post(reverse("portal:app-create"), {**NEW_APP, "environment": "production"})
    assert response.status_code == 403
    assert "cannot register production apps" in response.text
    assert 'name="redirect_uris"' in response.text  # the form is shown again, with the message
    assert not App.objects.exists()


def test_the_tier_app_limit_is_explained(owner_client, owner):
    for _ in range(owner.organization.tier.max_apps):
        AppFactory(organization=owner.organization)
    response = owner_client.post(reverse("portal:app-create"), NEW_APP)
    assert "allows 3 apps" in response.text
    assert App.objects.count() == 3


def test_rotating_changes_the_secret_and_shows_the_new_one_once(owner_client, owner):
    app = AppFactory(organization=owner.organization)
    page = owner_client.get(app.get_absolute_url())
    assert "stops working at once" in page.text

    response = owner_client.post(reverse("portal:app-rotate-secret", args=[app.pk]))
    assert response.status_code == 302
    assert response.url == app.get_absolute_url()
    shown = owner_client.get(app.get_absolute_url())
    new_secret = shown.context["secret"]
    assert new_secret in shown.text
    assert "no-store" in shown["Cache-Control"]

    app.refresh_from_db()
    assert check_password(new_secret, app.client_secret)
    assert not check_password("factory-secret", app.client_secret)
    assert app.secret_rotated_at is not None
    assert new_secret not in owner_client.get(app.get_absolute_url()).text


def test_rotate_is_post_only(owner_client, owner):
    app = AppFactory(organization=owner.organization)
    assert owner_client.get(reverse("portal:app-rotate-secret", args=[app.pk])).status_code == 405


def test_editing_an_app(owner_client, owner):
    app = AppFactory(organization=owner.organization)
    form = owner_client.get(reverse("portal:app-edit", args=[app.pk]))
    assert "https://app.example.com/callback" in form.text
    response = owner_client.post(
        reverse("portal:app-edit", args=[app.pk]),
        {"name": "Renamed", "redirect_uris": "https://new.example.com/cb", "description": "New words."},
    )
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.name == "Renamed"
    assert app.redirect_uri_list == ["https://new.example.com/cb"]


def test_editing_with_a_bad_redirect_uri_changes_nothing(owner_client, owner):
    app = AppFactory(organization=owner.organization)
    response = owner_client.post(
        reverse("portal:app-edit", args=[app.pk]),
        {"name": "Renamed", "redirect_uris": "https://x.example.com/*"},
    )
    assert response.status_code == 200
    assert "wildcards are not allowed" in response.text
    app.refresh_from_db()
    assert app.name != "Renamed"


def test_a_viewer_cannot_register_apps_or_rotate_secrets(client, owner):
    app = AppFactory(organization=owner.organization)
    stored_secret = App.objects.get().client_secret
    login_as(client, Membership.Role.VIEWER, organization=owner.organization)

    apps_page = client.get(reverse("portal:apps"))
    assert app.name in apps_page.text
    assert reverse("portal:app-create") not in apps_page.text
    detail = client.get(app.get_absolute_url())
    assert detail.status_code == 200
    assert "Rotate secret" not in detail.text
    assert "Edit app" not in detail.text

    page = client.get(reverse("portal:app-create"))
    assert page.status_code == 403
    assert "Your role (Viewer) does not allow" in page.text

    response = client.post(reverse("portal:app-create"), NEW_APP)
    assert response.status_code == 403
    assert "Your role (Viewer) does not allow this." in response.text
    assert App.objects.count() == 1

    response = client.post(reverse("portal:app-rotate-secret", args=[app.pk]))
    assert response.status_code == 403
    assert "Your role (Viewer) does not allow this." in response.text
    assert App.objects.get().client_secret == stored_secret

    response = client.post(reverse("portal:app-edit", args=[app.pk]), {"name": "Hijacked", "redirect_uris": ""})
    assert response.status_code == 403
    assert App.objects.get().name == app.name


def test_another_organizations_app_is_404_everywhere(owner_client, owner):
    foreign = AppFactory(name="Foreign App")
    stored_secret = App.objects.get().client_secret
    assert owner_client.get(reverse("portal:app-detail", args=[foreign.pk])).status_code == 404
    assert owner_client.get(reverse("portal:app-edit", args=[foreign.pk])).status_code == 404
    assert owner_client.post(reverse("portal:app-edit", args=[foreign.pk]), {"name": "x"}).status_code == 404
    response = owner_client.post(reverse("portal:app-rotate-secret", args=[foreign.pk]))
    assert response.status_code == 404
    assert "Foreign App" not in response.text
    assert App.objects.get().client_secret == stored_secret


def test_app_pages_of_an_unknown_id_are_404(owner_client):
    assert owner_client.get(reverse("portal:app-detail", args=[999_999])).status_code == 404
