"""Discovery: SMART configuration, RFC 8414 metadata, the JWKS and the FHIR CapabilityStatement."""

import pydantic
import pytest
from django.test import RequestFactory
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from joserfc.jwk import KeySet, RSAKey
from oauth2_provider.settings import oauth2_settings

from api import capability
from partners.scopes import documented_scopes

HOST = "sandbox.example.org"
ORIGIN = f"https://{HOST}"
SMART_URL = "/fhir/r4/.well-known/smart-configuration"
RFC8414_URL = "/.well-known/oauth-authorization-server"

SMART_FIELDS = {
    "issuer",
    "jwks_uri",
    "authorization_endpoint",
    "token_endpoint",
    "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported",
    "grant_types_supported",
    "scopes_supported",
    "response_types_supported",
    "management_endpoint",
    "introspection_endpoint",
    "revocation_endpoint",
    "code_challenge_methods_supported",
    "capabilities",
}
CAPABILITIES = [
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-standalone-patient",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
]
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture
def on_host(client, settings):
    """GET as a client of https://sandbox.example.org, so every URL must carry that host."""
    settings.ALLOWED_HOSTS = [HOST]

    def get(path):
        return client.get(path, HTTP_HOST=HOST, secure=True)

    return get


def test_smart_configuration_has_every_field_with_absolute_urls_on_the_request_host(on_host):
    response = on_host(SMART_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Cache-Control"] == "public, max-age=3600"
    body = response.json()
    assert body.keys() >= SMART_FIELDS

    assert body["issuer"] == f"{ORIGIN}/oauth"
    assert body["jwks_uri"] == f"{ORIGIN}/.well-known/jwks.json"
    assert body["authorization_endpoint"] == f"{ORIGIN}/oauth/authorize/"
    assert body["token_endpoint"] == f"{ORIGIN}/oauth/token/"
    assert body["introspection_endpoint"] == f"{ORIGIN}/oauth/introspect/"
    assert body["revocation_endpoint"] == f"{ORIGIN}/oauth/revoke_token/"
    assert body["management_endpoint"] == f"{ORIGIN}/me/apps/"

    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["response_types_supported"] == ["code"]
    assert body["grant_types_supported"] == ["authorization_code", "client_credentials", "refresh_token"]
    assert body["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    assert body["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert body["scopes_supported"] == [scope.name for scope in documented_scopes()]
    assert {"openid", "fhirUser", "launch/patient", "offline_access", "patient/*.rs", "system/*.rs"} <= set(
        body["scopes_supported"]
    )


def test_smart_capabilities_are_exactly_what_works(on_host):
    capabilities = on_host(SMART_URL).json()["capabilities"]
    assert capabilities == CAPABILITIES
    assert not [c for c in capabilities if c.startswith(("launch-ehr", "context-ehr"))]
    assert "authorize-post" not in capabilities  # DOT's POST is the consent form's answer


def test_the_smart_issuer_is_the_openid_connect_issuer(client, on_host):
    """sso-openid-connect: the issuer must be what id_tokens carry in iss, and where OpenID Connect
    discovery finds the provider (issuer + /.well-known/openid-configuration)."""
    issuer = on_host(SMART_URL).json()["issuer"]
    request = RequestFactory().get("/", HTTP_HOST=HOST, secure=True)
    assert issuer == oauth2_settings.OAUTH2_VALIDATOR_CLASS().get_oidc_issuer_endpoint(request)
    assert issuer == oauth2_settings.oidc_issuer(request)
    oidc = on_host(issuer.removeprefix(ORIGIN) + "/.well-known/openid-configuration")
    assert oidc.status_code == 200
    assert oidc.json()["issuer"] == issuer
    # The root copy is the same document.
    assert on_host("/.well-known/openid-configuration").json() == oidc.json()


def test_rfc8414_metadata_shares_the_smart_fields(on_host):
    response = on_host(RFC8414_URL)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Cache-Control"] == "public, max-age=3600"
    body = response.json()
    smart = on_host(SMART_URL).json()
    shared = SMART_FIELDS - {"management_endpoint", "capabilities"}
    assert {key: body[key] for key in shared} == {key: smart[key] for key in shared}
    assert body["service_documentation"] == f"{ORIGIN}/docs/"
    assert body["introspection_endpoint_auth_methods_supported"] == body["token_endpoint_auth_methods_supported"]
    assert body["revocation_endpoint_auth_methods_supported"] == body["token_endpoint_auth_methods_supported"]
    assert body["authorization_response_iss_parameter_supported"] is True
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert "capabilities" not in body


def test_rfc8414_metadata_is_also_where_the_issuer_path_puts_it(on_host):
    """RFC 8414 §3: issuer https://host/oauth -> /.well-known/oauth-authorization-server/oauth."""
    response = on_host(f"{RFC8414_URL}/oauth")
    assert response.status_code == 200
    assert response.json() == on_host(RFC8414_URL).json()
    assert on_host(f"{RFC8414_URL}/someone-else").status_code == 404


def test_the_iss_of_authorization_responses_is_the_metadata_issuer(on_host):
    """RFC 9207: with authorization_response_iss_parameter_supported, the ``iss`` DOT adds to every
    authorization response must equal the issuer the metadata publishes."""
    request = RequestFactory().get("/oauth/authorize/", HTTP_HOST=HOST, secure=True)
    assert oauth2_settings.oauth2_authorization_server_issuer(request) == on_host(RFC8414_URL).json()["issuer"]


def test_jwks_serves_the_id_token_signing_key_public_half_only(on_host, settings):
    response = on_host("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    keys = response.json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert key["kty"] == "RSA"
    assert key["use"] == "sig"
    assert key["kid"]
    assert {"n", "e"} <= key.keys()
    assert not PRIVATE_MEMBERS & key.keys()
    imported = KeySet.import_key_set({"keys": keys}).keys[0]
    assert not imported.is_private
    signing_key = RSAKey.import_key(oauth2_settings.OIDC_RSA_PRIVATE_KEY)
    assert key["n"] == signing_key.as_dict(private=False)["n"]


# --- CapabilityStatement ---------------------------------------------------------------------


def test_metadata_is_a_valid_r4_capability_statement_with_the_smart_oauth_uris(on_host):
    response = on_host("/fhir/r4/metadata")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    # fhir.resources forbids any key that is not a FHIR element, at every level.
    statement = CapabilityStatement.model_validate(body)
    assert statement.status == "active"
    assert statement.kind == "instance"
    assert statement.fhirVersion == "4.0.1"
    assert statement.format == ["json"]
    assert statement.date is not None
    assert statement.software.name
    assert body["implementation"]["url"] == f"{ORIGIN}/fhir/r4"

    rest = body["rest"][0]
    assert rest["mode"] == "server"
    assert [r["type"] for r in rest["resource"]] == sorted(capability.SERVED_RESOURCES)
    security = rest["security"]
    assert security["service"][0]["coding"] == [
        {
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR",
            "display": "SMART-on-FHIR",
        }
    ]
    (oauth_uris,) = [
        ext
        for ext in security["extension"]
        if ext["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    ]
    uris = {ext["url"]: ext["valueUri"] for ext in oauth_uris["extension"]}
    smart = on_host(SMART_URL).json()
    assert uris == {
        "authorize": smart["authorization_endpoint"],
        "token": smart["token_endpoint"],
        "introspect": smart["introspection_endpoint"],
        "revoke": smart["revocation_endpoint"],
        "manage": smart["management_endpoint"],
    }
    assert all(uri.startswith(f"{ORIGIN}/") for uri in uris.values())


def test_the_validation_above_would_catch_a_key_outside_fhir(on_host):
    body = on_host("/fhir/r4/metadata").json()
    body["rest"][0]["security"]["smart"] = True
    with pytest.raises(pydantic.ValidationError):
        CapabilityStatement.model_validate(body)


def test_metadata_lists_exactly_the_served_resources(on_host, monkeypatch):
    monkeypatch.setattr(capability, "SERVED_RESOURCES", {})
    body = on_host("/fhir/r4/metadata").json()
    assert "resource" not in body["rest"][0]  # FHIR JSON has no empty arrays
    monkeypatch.setitem(
        capability.SERVED_RESOURCES,
        "Observation",
        capability.ServedResource(
            interactions=("read", "search-type"),
            search_params=(("patient", "reference"), ("category", "token")),
        ),
    )
    monkeypatch.setitem(capability.SERVED_RESOURCES, "Patient", capability.ServedResource(interactions=("read",)))
    body = on_host("/fhir/r4/metadata").json()
    CapabilityStatement.model_validate(body)
    assert body["rest"][0]["resource"] == [
        {
            "type": "Observation",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": "patient", "type": "reference"}, {"name": "category", "type": "token"}],
        },
        {"type": "Patient", "interaction": [{"code": "read"}]},
    ]


def test_discovery_documents_answer_get_only(client):
    assert client.post(SMART_URL).status_code == 405
    assert client.post("/fhir/r4/metadata").status_code == 405
