"""Discovery documents at the root /.well-known/ (RFC 8414, OpenID Connect, JWKS)."""

from django.urls import path
from oauth2_provider.views import ConnectDiscoveryInfoView, JwksInfoView

from api import discovery

app_name = "wellknown"

urlpatterns = [
    path("oauth-authorization-server", discovery.oauth_authorization_server_view, name="oauth-authorization-server"),
    # RFC 8414 §3: an issuer with a path (https://host/oauth) has its document at
    # /.well-known/oauth-authorization-server/oauth.
    path(
        "oauth-authorization-server/<path:issuer_path>",
        discovery.oauth_authorization_server_view,
        name="oauth-authorization-server-issuer",
    ),
    # DOT's OpenID Connect discovery, the same document as at the issuer's own location
    # (/oauth/.well-known/openid-configuration), for clients that look at the root.
    path("openid-configuration", ConnectDiscoveryInfoView.as_view(), name="openid-configuration"),
    # The public half of the key that signs id_tokens (DOT publishes it from OIDC_RSA_PRIVATE_KEY).
    path("jwks.json", JwksInfoView.as_view(), name="jwks"),
]
