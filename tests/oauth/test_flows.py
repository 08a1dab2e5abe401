"""Full OAuth 2.0 / SMART flows through a real client library (authlib) against a live server."""

import secrets
import time

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from oauth2_provider.models import AccessToken, RefreshToken

from partners import services
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.oauth.conftest import CLIENT_SECRET, REDIRECT_URI, Browser, make_app, query_of

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def authorization_code_flow(server, browser, app, scope, *, secret=CLIENT_SECRET, **extra):
    client = OAuth2Session(app.client_id, secret, scope=scope, redirect_uri=REDIRECT_URI, code_challenge_method="S256")
    verifier = secrets.token_urlsafe(48)
    url, state = client.create_authorization_url(
        server.authorize, code_verifier=verifier, aud=server.fhir_base, **extra
    )
    callback = browser.approve(url)
    assert query_of(callback)["state"] == state
    assert query_of(callback)["iss"] == f"{server.url}/oauth"  # RFC 9207, the issuer of the metadata
    token = client.fetch_token(server.token, authorization_response=callback, code_verifier=verifier)
    return client, token


# --- Authorization code with PKCE ------------------------------------------------------------


def test_authorization_code_with_pkce_gives_a_patient_token(server, patient_user):
    app = make_app()
    _client, token = authorization_code_flow(
        server,
        Browser(server, patient_user),
        app,
        "launch/patient patient/Observation.rs openid fhirUser offline_access",
    )
    assert token["token_type"] == "Bearer"
    assert token["patient"] == "p-123"
    assert set(token["scope"].split()) == {
        "launch/patient",
        "patient/Observation.rs",
        "openid",
        "fhirUser",
        "offline_access",
    }
    assert 3590 <= token["expires_in"] <= 3600  # the Sandbox tier's patient-token lifetime
    assert "refresh_token" in token
    claims = jwt.decode(token["id_token"], _jwks(server), algorithms=["RS256"]).claims
    assert claims["fhirUser"] == "Patient/p-123"
    assert claims["aud"] == app.client_id
    stored = AccessToken.objects.get()
    assert stored.token_checksum and token["access_token"] not in (stored.token or "")  # stored hashed


def _jwks(server):
    return KeySet.import_key_set(requests.get(f"{server.url}/oauth/.well-known/jwks.json", timeout=5).json())


def test_the_approval_page_speaks_plainly(server, patient_user):
    app = make_app()
    client = OAuth2Session(
        app.client_id,
        CLIENT_SECRET,
        scope="patient/Observation.rs?category=laboratory offline_access",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    url, _ = client.create_authorization_url(
        server.authorize, code_verifier=secrets.token_urlsafe(48), aud=server.fhir_base
    )
    page = Browser(server, patient_user).open(url).text
    assert "See your lab results." in page
    assert "until you revoke it" in page
    assert app.organization.name in page


def test_denying_sends_access_denied_back_to_the_app(server, patient_user):
    app = make_app()
    client = OAuth2Session(
        app.client_id,
        CLIENT_SECRET,
        scope="patient/Patient.rs",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    url, state = client.create_authorization_url(
        server.authorize, code_verifier=secrets.token_urlsafe(48), aud=server.fhir_base
    )
    callback = Browser(server, patient_user).approve(url, allow=False)
    assert query_of(callback)["error"] == "access_denied"
    assert query_of(callback)["state"] == state
    assert not AccessToken.objects.exists()


def test_plain_pkce_is_refused(server, patient_user):
    app = make_app()
    url = (
        f"{server.authorize}?response_type=code&client_id={app.client_id}&redirect_uri={REDIRECT_URI}"
        f"&scope=patient/Patient.rs&state=s1&aud={server.fhir_base}&code_challenge=abc&code_challenge_method=plain"
    )
    response = Browser(server, patient_user).open(url)
    assert response.status_code == 302
    assert "error=invalid_request" in response.headers["Location"]


def test_missing_pkce_challenge_is_refused(server, patient_user):
    app = make_app()
    url = (
        f"{server.authorize}?response_type=code&client_id={app.client_id}&redirect_uri={REDIRECT_URI}"
        f"&scope=patient/Patient.rs&state=s1&aud={server.fhir_base}"
    )
    response = Browser(server, patient_user).open(url)
    assert "error=invalid_request" in response.headers["Location"]
    assert "challenge" in query_of(response.headers["Location"])["error_description"].lower()


def test_missing_code_verifier_at_the_token_endpoint_is_refused(server, patient_user):
    app = make_app()
    client = OAuth2Session(
        app.client_id,
        CLIENT_SECRET,
        scope="patient/Patient.rs",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    url, _ = client.create_authorization_url(
        server.authorize, code_verifier=secrets.token_urlsafe(48), aud=server.fhir_base
    )
    callback = Browser(server, patient_user).approve(url)
    response = requests.post(
        server.token,
        data={"grant_type": "authorization_code", "code": query_of(callback)["code"], "redirect_uri": REDIRECT_URI},
        auth=(app.client_id, CLIENT_SECRET),
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_wrong_redirect_uri_is_not_followed(server, patient_user):
    app = make_app()
    url = (
        f"{server.authorize}?response_type=code&client_id={app.client_id}&redirect_uri=https://evil.example/cb"
        f"&scope=patient/Patient.rs&state=s1&aud={server.fhir_base}"
        f"&code_challenge={'a' * 43}&code_challenge_method=S256"
    )
    response = Browser(server, patient_user).open(url)
    assert response.status_code == 400  # an error page, never a redirect to an unregistered URI
    assert "evil.example" not in response.headers.get("Location", "")


def test_wrong_aud_is_refused(server, patient_user):
    app = make_app()
    client = OAuth2Session(
        app.client_id,
        CLIENT_SECRET,
        scope="patient/Patient.rs",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    url, state = client.create_authorization_url(
        server.authorize, code_verifier=secrets.token_urlsafe(48), aud="https://other.example/fhir"
    )
    response = Browser(server, patient_user).open(url)
    params = query_of(response.headers["Location"])
    assert params["error"] == "invalid_request"
    assert server.fhir_base in params["error_description"]
    assert params["state"] == state


def test_patient_scopes_need_an_account_linked_to_a_patient(server):
    app = make_app()
    client = OAuth2Session(
        app.client_id,
        CLIENT_SECRET,
        scope="patient/Patient.rs",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    url, _ = client.create_authorization_url(
        server.authorize, code_verifier=secrets.token_urlsafe(48), aud=server.fhir_base
    )
    response = Browser(server, UserFactory(fhir_patient_id="")).open(url)
    params = query_of(response.headers["Location"])
    assert params["error"] == "access_denied"
    assert "not linked to a patient" in params["error_description"]


def test_scope_beyond_the_tier_names_the_scope_and_the_tier(server, patient_user):
    app = make_app()
    client = OAuth2Session(
        app.client_id,
        CLIENT_SECRET,
        scope="patient/Patient.rs consent.write",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    url, _ = client.create_authorization_url(
        server.authorize, code_verifier=secrets.token_urlsafe(48), aud=server.fhir_base
    )
    params = query_of(Browser(server, patient_user).open(url).headers["Location"])
    assert params["error"] == "invalid_scope"
    assert "consent.write" in params["error_description"]
    assert "Verified tier allows" in params["error_description"]


# --- Refresh, introspection, revocation --------------------------------------------------------


def test_refresh_rotates_and_the_old_refresh_token_is_dead(server, patient_user):
    app = make_app()
    client, first = authorization_code_flow(
        server, Browser(server, patient_user), app, "patient/Patient.rs offline_access"
    )
    second = client.refresh_token(server.token, refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["patient"] == "p-123"
    replay = requests.post(
        server.token,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=(app.client_id, CLIENT_SECRET),
        timeout=5,
    )
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"


def test_introspection_describes_the_token_to_its_client_only(server, patient_user):
    app = make_app()
    _, token = authorization_code_flow(
        server, Browser(server, patient_user), app, "launch/patient patient/Patient.rs fhirUser"
    )
    body = requests.post(
        server.introspect, data={"token": token["access_token"]}, auth=(app.client_id, CLIENT_SECRET), timeout=5
    ).json()
    assert body["active"] is True
    assert body["client_id"] == app.client_id
    assert body["patient"] == "p-123"
    assert body["fhirUser"] == "Patient/p-123"
    assert body["aud"] == server.fhir_base
    assert {"scope", "exp", "iat", "sub", "iss"} <= set(body)
    other = make_app()
    stranger = requests.post(
        server.introspect, data={"token": token["access_token"]}, auth=(other.client_id, CLIENT_SECRET), timeout=5
    )
    assert stranger.json() == {"active": False}
    unauthenticated = requests.post(server.introspect, data={"token": token["access_token"]}, timeout=5)
    assert unauthenticated.status_code == 401


def test_revoking_the_access_token_revokes_the_refresh_token_too(server, patient_user):
    app = make_app()
    _client, token = authorization_code_flow(
        server, Browser(server, patient_user), app, "patient/Patient.rs offline_access"
    )
    response = requests.post(
        server.revoke, data={"token": token["access_token"]}, auth=(app.client_id, CLIENT_SECRET), timeout=5
    )
    assert response.status_code == 200
    introspected = requests.post(
        server.introspect, data={"token": token["access_token"]}, auth=(app.client_id, CLIENT_SECRET), timeout=5
    )
    assert introspected.json() == {"active": False}
    refresh = requests.post(
        server.token,
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=(app.client_id, CLIENT_SECRET),
        timeout=5,
    )
    assert refresh.status_code == 400


def test_revoking_the_refresh_token_revokes_the_access_token_too(server, patient_user):
    app = make_app()
    _, token = authorization_code_flow(server, Browser(server, patient_user), app, "patient/Patient.rs offline_access")
    requests.post(
        server.revoke,
        data={"token": token["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(app.client_id, CLIENT_SECRET),
        timeout=5,
    )
    assert not AccessToken.objects.exists()
    assert RefreshToken.objects.get().revoked is not None


# --- Client credentials --------------------------------------------------------------------


def test_client_credentials_with_a_secret(server):
    app = make_app(tier_slug="verified", grant_types=("client-credentials",))
    client = OAuth2Session(app.client_id, CLIENT_SECRET, scope="system/Patient.rs")
    token = client.fetch_token(server.token, grant_type="client_credentials")
    assert token["scope"] == "system/Patient.rs"
    assert token["expires_in"] <= 300
    assert "refresh_token" not in token and "patient" not in token


def test_sandbox_tier_cannot_have_system_scopes(server):
    app = make_app(grant_types=("client-credentials",))
    response = requests.post(
        server.token,
        data={"grant_type": "client_credentials", "scope": "system/*.rs"},
        auth=(app.client_id, CLIENT_SECRET),
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert "Verified tier allows" in response.json()["error_description"]


def test_client_credentials_cannot_ask_for_patient_scopes(server):
    app = make_app(tier_slug="verified", grant_types=("client-credentials",))
    response = requests.post(
        server.token,
        data={"grant_type": "client_credentials", "scope": "patient/*.rs"},
        auth=(app.client_id, CLIENT_SECRET),
        timeout=5,
    )
    assert response.json()["error"] == "invalid_scope"
    assert "system/" in response.json()["error_description"]


def test_an_app_without_the_grant_cannot_use_it(server):
    app = make_app(tier_slug="verified", grant_types=("authorization-code",))
    response = requests.post(
        server.token,
        data={"grant_type": "client_credentials", "scope": "system/*.rs"},
        auth=(app.client_id, CLIENT_SECRET),
        timeout=5,
    )
    assert response.json()["error"] == "unauthorized_client"


def test_password_grant_does_not_exist(server, patient_user):
    app = make_app()
    response = requests.post(
        server.token,
        data={
            "grant_type": "password",
            "username": patient_user.email,
            "password": DEFAULT_PASSWORD,
            "scope": "patient/Patient.rs",
        },
        auth=(app.client_id, CLIENT_SECRET),
        timeout=5,
    )
    assert response.status_code in {400, 401}
    assert response.json()["error"] in {"unsupported_grant_type", "unauthorized_client"}


# --- Backend services: private_key_jwt -------------------------------------------------------


@pytest.fixture
def backend_app():
    key = RSAKey.generate_key(2048, parameters={"kid": "backend-key-1"})
    app = make_app(tier_slug="verified", grant_types=("client-credentials",), jwks=KeySet([key]).as_dict(private=False))
    return app, key


def signed_assertion(app, key, server, **overrides):
    now = int(time.time())
    claims = {
        "iss": app.client_id,
        "sub": app.client_id,
        "aud": server.token,
        "exp": now + 240,
        "jti": secrets.token_hex(16),
    }
    claims.update(overrides)
    alg = "ES384" if isinstance(key, ECKey) else "RS384"
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def assertion_request(server, assertion, scope="system/*.rs"):
    return requests.post(
        server.token,
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        timeout=5,
    )


def test_backend_services_with_authlib_private_key_jwt(server, backend_app):
    app, key = backend_app
    client = OAuth2Session(app.client_id, key, token_endpoint_auth_method="private_key_jwt", scope="system/*.rs")
    # SMART caps assertions at five minutes; authlib signs an hour ahead unless told.
    short_lived = {"exp": int(time.time()) + 240}
    client.register_client_auth_method(
        PrivateKeyJWT(server.token, alg="RS384", headers={"kid": key.kid}, claims=short_lived)
    )
    token = client.fetch_token(server.token, grant_type="client_credentials")
    assert token["scope"] == "system/*.rs"
    assert token["expires_in"] <= 300


def test_backend_services_with_an_es384_key_fetched_from_a_jwks_url(server, live_server, settings):
    key = ECKey.generate_key("P-384", parameters={"kid": "ec-1"})
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    body = json.dumps(KeySet([key]).as_dict(private=False)).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "max-age=60")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        app = make_app(
            tier_slug="verified",
            grant_types=("client-credentials",),
            jwks_url=f"http://127.0.0.1:{httpd.server_port}/jwks.json",
        )
        response = assertion_request(server, signed_assertion(app, key, server))
        assert response.status_code == 200, response.text
    finally:
        httpd.shutdown()


def test_a_replayed_jti_is_refused(server, backend_app):
    app, key = backend_app
    assertion = signed_assertion(app, key, server)
    assert assertion_request(server, assertion).status_code == 200
    replay = assertion_request(server, assertion)
    assert replay.status_code == 401
    assert "jti" in replay.json()["error_description"]


def test_exp_too_far_ahead_is_refused(server, backend_app):
    app, key = backend_app
    response = assertion_request(server, signed_assertion(app, key, server, exp=int(time.time()) + 3600))
    assert response.status_code == 401
    assert "300 seconds" in response.json()["error_description"]


def test_wrong_aud_in_the_assertion_is_refused(server, backend_app):
    app, key = backend_app
    response = assertion_request(server, signed_assertion(app, key, server, aud="https://elsewhere.example/token"))
    assert response.status_code == 401
    assert "aud must be the token endpoint" in response.json()["error_description"]


def test_an_assertion_signed_by_another_key_is_refused(server, backend_app):
    app, _ = backend_app
    impostor = RSAKey.generate_key(2048, parameters={"kid": "backend-key-1"})
    response = assertion_request(server, signed_assertion(app, impostor, server))
    assert response.status_code == 401
    assert "signature" in response.json()["error_description"]


def test_an_assertion_without_kid_or_with_rs256_is_refused(server, backend_app):
    app, key = backend_app
    now = int(time.time())
    claims = {"iss": app.client_id, "sub": app.client_id, "aud": server.token, "exp": now + 60, "jti": "x1"}
    no_kid = jwt.encode({"alg": "RS384"}, claims, key, algorithms=["RS384"])
    assert "kid" in assertion_request(server, no_kid).json()["error_description"]
    rs256 = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
    assert "RS256" in assertion_request(server, rs256).json()["error_description"]


# --- Suspension --------------------------------------------------------------------------------


def test_suspension_stops_tokens_at_once_and_refuses_new_ones(server, patient_user):
    app = make_app()
    _client, token = authorization_code_flow(
        server, Browser(server, patient_user), app, "patient/Patient.rs offline_access"
    )
    services.organization_suspend(
        organization=app.organization, actor=UserFactory(is_staff=True), reason="Security review"
    )
    introspected = requests.post(
        server.introspect, data={"token": token["access_token"]}, auth=(app.client_id, CLIENT_SECRET), timeout=5
    )
    assert introspected.status_code == 401
    assert "suspended" in introspected.json()["error_description"]
    refresh = requests.post(
        server.token,
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=(app.client_id, CLIENT_SECRET),
        timeout=5,
    )
    assert refresh.status_code in {400, 401, 403}
    assert "suspended" in refresh.json()["error_description"]
    assert "Security review" in refresh.json()["error_description"]
    assert not AccessToken.objects.filter(application=app).exists()
