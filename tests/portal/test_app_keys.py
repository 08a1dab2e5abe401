"""SMART Backend Services keys: registering an app's JWK Set or JWKS URL in the portal."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from joserfc.jwk import ECKey, RSAKey

from partners.models import App, Membership
from partners.services import app_set_keys
from tests.factories import AppFactory
from tests.portal.conftest import login_as


@pytest.fixture(scope="module")
def rsa_key():
    return RSAKey.generate_key(2048)


@pytest.fixture
def app(owner):
    return AppFactory(
        organization=owner.organization,
        grant_types=[App.GRANT_CLIENT_CREDENTIALS],
        authorization_grant_type=App.GRANT_CLIENT_CREDENTIALS,
    )


def keys_url(app):
    return reverse("portal:app-keys", args=[app.pk])


def public_jwks(rsa_key) -> dict:
    return {
        "keys": [
            rsa_key.as_dict(private=False, kid="backend-2026", alg="RS384", use="sig"),
            ECKey.generate_key("P-384").as_dict(private=False, kid="backend-ec"),
        ]
    }


def post_keys(client, app, *, jwks="", jwks_url=""):
    return client.post(keys_url(app), {"jwks": jwks, "jwks_url": jwks_url})


def test_a_valid_jwk_set_is_saved_and_its_key_ids_shown(owner_client, app, rsa_key):
    jwks = public_jwks(rsa_key)
    response = post_keys(owner_client, app, jwks=json.dumps(jwks))
    assert response.status_code == 302
    assert response.url == app.get_absolute_url()
    app.refresh_from_db()
    assert app.jwks == jwks
    assert app.jwks_url == ""
    assert app.uses_key_authentication
    detail = owner_client.get(app.get_absolute_url()).text
    assert "Your app&#x27;s public keys are saved." in detail
    assert "backend-2026" in detail
    assert "backend-ec" in detail
    assert "RS384" in detail


def test_the_edit_page_offers_the_keys_form_with_the_registered_set(owner_client, app, rsa_key):
    app.jwks = public_jwks(rsa_key)
    app.save()
    page = owner_client.get(reverse("portal:app-edit", args=[app.pk]))
    assert page.status_code == 200
    assert f'action="{keys_url(app)}"' in page.text
    assert "backend-2026" in page.text  # the textarea holds the current set


def test_a_private_key_is_refused(owner_client, app, rsa_key):
    private = {"keys": [rsa_key.as_dict(private=True, kid="oops")]}
    response = post_keys(owner_client, app, jwks=json.dumps(private))
    assert response.status_code == 200
    assert "contains private key material" in response.text
    assert rsa_key.as_dict(private=True)["d"] not in response.text  # nor echoed back
    app.refresh_from_db()
    assert app.jwks is None


def test_bad_json_is_refused(owner_client, app):
    response = post_keys(owner_client, app, jwks='{"keys": [')
    assert response.status_code == 200
    assert "This is not valid JSON" in response.text
    app.refresh_from_db()
    assert app.jwks is None


@pytest.mark.parametrize(
    ("jwks", "message"),
    [
        ('[{"kty": "RSA"}]', "A JWK Set is a JSON object"),
        ('{"keys": []}', "The &quot;keys&quot; list is empty"),
        ('{"keys": [{"kty": "oct", "kid": "s"}]}', "kty must be RSA or EC"),
        ('{"keys": [{"kty": "RSA", "n": "abc", "e": "AQAB"}]}', "has no kid"),
        ('{"keys": [{"kty": "RSA", "kid": "x", "n": "abc", "e": "AQAB"}]}', "is not a valid JWK"),
    ],
)
def test_what_is_not_a_set_of_public_signing_keys_is_refused(owner_client, app, jwks, message):
    response = post_keys(owner_client, app, jwks=jwks)
    assert response.status_code == 200
    assert message in response.text
    app.refresh_from_db()
    assert app.jwks is None


def test_more_than_ten_keys_or_twenty_kilobytes_are_refused(owner, app, rsa_key):
    key = rsa_key.as_dict(private=False)
    with pytest.raises(ValidationError, match="at most 10 keys"):
        app_set_keys(
            app=app, actor=owner.user, jwks={"keys": [{**key, "kid": f"k{i}"} for i in range(11)]}, jwks_url=""
        )
    padded = {"keys": [{**key, "kid": "k" + "x" * 21000}]}
    with pytest.raises(ValidationError, match="larger than 20 KB"):
        app_set_keys(app=app, actor=owner.user, jwks=padded, jwks_url="")


def test_an_http_url_is_refused(owner_client, app):
    response = post_keys(owner_client, app, jwks_url="http://keys.example.com/jwks.json")
    assert response.status_code == 200
    assert "must use https" in response.text
    app.refresh_from_db()
    assert app.jwks_url == ""


def test_an_https_url_is_saved(owner_client, app):
    response = post_keys(owner_client, app, jwks_url="https://keys.example.com/jwks.json")
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.jwks_url == "https://keys.example.com/jwks.json"
    assert app.jwks is None
    assert "https://keys.example.com/jwks.json" in owner_client.get(app.get_absolute_url()).text


@pytest.mark.parametrize(("private_allowed", "saved"), [(True, True), (False, False)])
def test_http_on_loopback_only_in_development(owner_client, app, settings, private_allowed, saved):
    settings.ALLOW_PRIVATE_NETWORK_URLS = private_allowed
    response = post_keys(owner_client, app, jwks_url="http://127.0.0.1:9000/jwks.json")
    app.refresh_from_db()
    assert (app.jwks_url == "http://127.0.0.1:9000/jwks.json") is saved
    assert response.status_code == (302 if saved else 200)


def test_a_set_and_a_url_at_once_are_refused(owner_client, app, rsa_key):
    response = post_keys(
        owner_client, app, jwks=json.dumps(public_jwks(rsa_key)), jwks_url="https://keys.example.com/jwks.json"
    )
    assert response.status_code == 200
    assert "not both" in response.text


def test_empty_fields_remove_the_keys(owner_client, app, rsa_key):
    app.jwks = public_jwks(rsa_key)
    app.save()
    response = post_keys(owner_client, app)
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.jwks is None
    assert not app.uses_key_authentication


def test_a_viewer_is_refused(client, app, rsa_key):
    login_as(client, Membership.Role.VIEWER, organization=app.organization)
    response = post_keys(client, app, jwks=json.dumps(public_jwks(rsa_key)))
    assert response.status_code == 403
    app.refresh_from_db()
    assert app.jwks is None


def test_another_organizations_app_is_not_found(owner_client, rsa_key):
    stranger = AppFactory()
    response = post_keys(owner_client, stranger, jwks=json.dumps(public_jwks(rsa_key)))
    assert response.status_code == 404
    stranger.refresh_from_db()
    assert stranger.jwks is None


def test_a_suspended_organization_cannot_change_keys(owner_client, owner, app, rsa_key):
    owner.organization.status = owner.organization.Status.SUSPENDED
    owner.organization.save()
    response = post_keys(owner_client, app, jwks=json.dumps(public_jwks(rsa_key)))
    assert response.status_code == 409
    assert "is suspended" in response.text


def test_keys_take_post_only(owner_client, app):
    assert owner_client.get(keys_url(app)).status_code == 405
