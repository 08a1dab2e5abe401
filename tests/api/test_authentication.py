"""The token layer: header-only bearer tokens, found by checksum in one query."""

from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken
from rest_framework.test import APIRequestFactory

from api import deprecations
from api.authentication import BearerTokenAuthentication, token_checksum
from tests.api.conftest import bearer, make_token
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
TOKEN_INFO = "/api/v1/token-info"


def assert_invalid_token(response, description_contains: str):
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid_token"
    assert body["layer"] == "token"
    assert description_contains in body["detail"]
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="marketplace", error="invalid_token", error_description="')
    assert description_contains in challenge
    return body


def test_no_token_is_401_with_a_bare_challenge(client):
    response = client.get(TOKEN_INFO)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    # RFC 6750 §3.1: no error attribute when the request carried no credentials.
    assert response["WWW-Authenticate"] == 'Bearer realm="marketplace"'
    body = response.json()
    assert (body["code"], body["layer"], body["status"]) == ("token_required", "token", 401)


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Bearer two tokens", 'Bearer bad"quote', "Basic dXNlcjpwYXNz", "Token abc"],
)
def test_a_malformed_header_is_invalid_token(client, header):
    response = client.get(TOKEN_INFO, HTTP_AUTHORIZATION=header)
    assert_invalid_token(response, "Authorization header")


def test_an_unknown_token_is_invalid_token(client):
    assert_invalid_token(client.get(TOKEN_INFO, **bearer("never-issued-token")), "unknown")


def test_an_expired_token_says_when_it_expired(client, app):
    raw = make_token(app, "openid", expires_in=-60)
    expires = AccessToken.objects.get(token_checksum=token_checksum(raw)).expires
    body = assert_invalid_token(client.get(TOKEN_INFO, **bearer(raw)), "expired at ")
    assert expires.strftime("%Y-%m-%dT%H:%M:%SZ") in body["detail"]


def test_a_revoked_token_is_invalid_token(client, app):
    raw = make_token(app, "openid")
    assert client.get(TOKEN_INFO, **bearer(raw)).status_code == 200
    AccessToken.objects.get(token_checksum=token_checksum(raw)).revoke()  # DOT deletes the row
    assert_invalid_token(client.get(TOKEN_INFO, **bearer(raw)), "revoked")


def test_a_token_of_a_deactivated_user_is_invalid_token(client, app):
    user = UserFactory(is_active=False)
    raw = make_token(app, "openid", user=user)
    assert_invalid_token(client.get(TOKEN_INFO, **bearer(raw)), "deactivated")


def test_a_token_in_the_query_string_is_ignored(client, app):
    raw = make_token(app, "openid")
    response = client.get(f"{TOKEN_INFO}?access_token={raw}")
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "token_required"
    assert "query string is ignored" in body["detail"]
    assert body["instance"] == TOKEN_INFO  # the query string (and its token) is never echoed
    assert raw not in response.content.decode()


def test_the_bearer_scheme_is_case_insensitive(client, app):
    raw = make_token(app, "openid")
    assert client.get(TOKEN_INFO, HTTP_AUTHORIZATION=f"bearer {raw}").status_code == 200


def test_the_raw_token_is_never_stored(app):
    raw = make_token(app, "openid")
    stored = AccessToken.objects.get(token_checksum=token_checksum(raw))
    assert stored.token == ""


def test_authentication_is_one_query(app, django_assert_num_queries):
    user = UserFactory(fhir_patient_id="p-1")
    raw = make_token(app, "launch/patient patient/Observation.rs", user=user)
    request = APIRequestFactory().get(TOKEN_INFO, **bearer(raw))
    with django_assert_num_queries(1):
        authenticated_user, access_token = BearerTokenAuthentication().authenticate(request)
        context = request.auth_context
        # Everything the later layers read comes from that one query.
        assert (context.app, context.organization.slug, context.tier.slug) == (app, app.organization.slug, "sandbox")
        assert context.user == authenticated_user == user
        assert context.patient_id == "p-1"
        assert access_token.application_id == app.pk


def test_a_whole_token_info_request_is_one_query(client, app, django_assert_num_queries):
    raw = make_token(app, "openid events.read")
    deprecations.published_rules()  # read once per process every few seconds, not per request
    with django_assert_num_queries(1):
        assert client.get(TOKEN_INFO, **bearer(raw)).status_code == 200


def test_a_client_credentials_token_is_anonymous_with_a_context(app):
    raw = make_token(app, "system/Patient.rs")
    request = APIRequestFactory().get(TOKEN_INFO, **bearer(raw))
    user, _token = BearerTokenAuthentication().authenticate(request)
    assert not user.is_authenticated
    context = request.auth_context
    assert context.is_system and context.user is None and context.patient_id is None
    assert context.scopes == ["system/Patient.rs"]
    assert context.token_id == token_checksum(raw)[:16]


def test_no_patient_without_a_patient_scope(app):
    user = UserFactory(fhir_patient_id="p-2")
    raw = make_token(app, "openid user/Observation.rs", user=user)
    request = APIRequestFactory().get(TOKEN_INFO, **bearer(raw))
    BearerTokenAuthentication().authenticate(request)
    assert request.auth_context.patient_id is None


def test_expiry_is_checked_against_now(app):
    raw = make_token(app, "openid", expires_in=3600)
    AccessToken.objects.filter(token_checksum=token_checksum(raw)).update(expires=timezone.now() - timedelta(seconds=1))
    request = APIRequestFactory().get(TOKEN_INFO, **bearer(raw))
    with pytest.raises(Exception) as excinfo:
        BearerTokenAuthentication().authenticate(request)
    assert excinfo.value.code == "invalid_token"
