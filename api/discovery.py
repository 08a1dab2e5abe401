"""Discovery documents: SMART's ``.well-known/smart-configuration`` and RFC 8414 authorization-server
metadata. (OpenID Connect discovery is DOT's own view, routed in ``partners.oauth_urls`` and
``api.wellknown_urls``.)

Both describe one authorization server, so they are built from one function,
``authorization_server_metadata``, and differ only in the few fields each specification adds.
Every URL is absolute and built from the request's host, so a sandbox host, a production host and
a developer's laptop each describe themselves.

Values that the OAuth server itself decides are read from where the server reads them (the issuer
from DOT's validator, PKCE methods and response types from DOT's settings, assertion algorithms
from ``partners.client_assertions``), so a document cannot advertise what the server does not do.
"""

from urllib.parse import urlsplit

from django.http import Http404, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET
from oauth2_provider.models import AbstractGrant
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views.metadata import bcp_filter_code_challenge_methods, bcp_filter_response_types

from partners import scopes as registry
from partners.client_assertions import ALGORITHMS as ASSERTION_ALGORITHMS

CACHE_CONTROL = "public, max-age=3600"
# Where a patient sees and revokes the apps they connected (SMART's management_endpoint).
MANAGEMENT_PATH = "/me/apps/"
SERVICE_DOCUMENTATION_PATH = "/docs/"

GRANT_TYPES = ["authorization_code", "client_credentials", "refresh_token"]
TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

# SMART App Launch 2.x capabilities, only those that work end to end. Left out on purpose:
# launch-ehr and context-ehr-* (there is no EHR to launch from), context-banner and
# context-style (nothing to hide or style), authorize-post (DOT's authorization endpoint takes the
# request by GET; its POST is the consent form's answer).
SMART_CAPABILITIES = [
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


def issuer(request) -> str:
    """The authorization server's issuer identifier.

    It is, character for character, what DOT writes into an id_token's ``iss`` (SMART's
    ``sso-openid-connect`` requires the two to match), so it is asked of the validator that signs
    the id_tokens rather than derived a second time here.
    """
    return oauth2_settings.OAUTH2_VALIDATOR_CLASS().get_oidc_issuer_endpoint(request)


def _absolute(request, path: str) -> str:
    return request.build_absolute_uri(path)


def oauth_endpoints(request) -> dict[str, str]:
    """The OAuth endpoints (partners.oauth_urls), as absolute URLs."""
    return {
        "authorization_endpoint": _absolute(request, reverse("oauth2_provider:authorize")),
        "token_endpoint": _absolute(request, reverse("oauth2_provider:token")),
        "introspection_endpoint": _absolute(request, reverse("oauth2_provider:introspect")),
        "revocation_endpoint": _absolute(request, reverse("oauth2_provider:revoke-token")),
    }


def management_endpoint(request) -> str:
    return _absolute(request, MANAGEMENT_PATH)


def scopes_supported() -> list[str]:
    return [scope.name for scope in registry.documented_scopes()]


def authorization_server_metadata(request) -> dict:
    """The fields the SMART and RFC 8414 documents share."""
    data = {
        "issuer": issuer(request),
        "jwks_uri": _absolute(request, reverse("wellknown:jwks")),
        **oauth_endpoints(request),
        "token_endpoint_auth_methods_supported": list(TOKEN_ENDPOINT_AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "grant_types_supported": list(GRANT_TYPES),
        "scopes_supported": scopes_supported(),
        "response_types_supported": bcp_filter_response_types(oauth2_settings.OIDC_RESPONSE_TYPES_SUPPORTED),
        # RFC 9700 drops "plain" once COMPLIANT_BCP_RFC9700_PKCE_METHOD is on: S256 only.
        "code_challenge_methods_supported": bcp_filter_code_challenge_methods(
            [method for method, _label in AbstractGrant.CODE_CHALLENGE_METHODS]
        ),
    }
    if oauth2_settings.COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS:
        # RFC 9207: DOT adds ``iss`` to every authorization response.
        data["authorization_response_iss_parameter_supported"] = True
    return data


def smart_configuration(request) -> dict:
    """SMART App Launch 2.x ``.well-known/smart-configuration``."""
    return {
        **authorization_server_metadata(request),
        "management_endpoint": management_endpoint(request),
        "capabilities": list(SMART_CAPABILITIES),
    }


def oauth_authorization_server(request) -> dict:
    """RFC 8414 authorization-server metadata."""
    data = authorization_server_metadata(request)
    data.update(
        {
            "service_documentation": _absolute(request, SERVICE_DOCUMENTATION_PATH),
            "introspection_endpoint_auth_methods_supported": list(TOKEN_ENDPOINT_AUTH_METHODS),
            "revocation_endpoint_auth_methods_supported": list(TOKEN_ENDPOINT_AUTH_METHODS),
        }
    )
    return data


def _document(data: dict) -> JsonResponse:
    response = JsonResponse(data)
    # Browser apps read these documents from another origin; they carry nothing private.
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = CACHE_CONTROL
    return response


@require_GET
def smart_configuration_view(request):
    return _document(smart_configuration(request))


@require_GET
def oauth_authorization_server_view(request, issuer_path: str = ""):
    """Served at the root and, for an issuer with a path (``https://host/oauth``), at the RFC 8414
    location that path gives (``/.well-known/oauth-authorization-server/oauth``); other paths 404."""
    if issuer_path and issuer_path.strip("/") != urlsplit(issuer(request)).path.strip("/"):
        raise Http404("No authorization server has that issuer.")
    return _document(oauth_authorization_server(request))
