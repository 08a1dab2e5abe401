"""OAuth 2.0 endpoints (django-oauth-toolkit, with the platform's SMART rules)."""

from django.urls import path
from django.views.generic import RedirectView
from oauth2_provider import views as dot_views

from partners import oauth_views

app_name = "oauth2_provider"

urlpatterns = [
    path("authorize/", oauth_views.AuthorizationView.as_view(), name="authorize"),
    path("token/", oauth_views.TokenView.as_view(), name="token"),
    path("revoke_token/", oauth_views.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", oauth_views.IntrospectTokenView.as_view(), name="introspect"),
    # OpenID Connect (SMART sso-openid-connect). The issuer is /oauth, so its discovery document
    # sits at /oauth/.well-known/openid-configuration as OpenID Connect Discovery requires.
    path(
        ".well-known/openid-configuration",
        dot_views.ConnectDiscoveryInfoView.as_view(),
        name="oidc-connect-discovery-info",
    ),
    path(".well-known/jwks.json", dot_views.JwksInfoView.as_view(), name="jwks-info"),
    # DOT derives the RFC 9207 ``iss`` of authorization responses from this name; RFC 8414 puts
    # the document of an issuer with a path (/oauth) at /.well-known/oauth-authorization-server/oauth.
    path(
        ".well-known/oauth-authorization-server",
        RedirectView.as_view(url="/.well-known/oauth-authorization-server/oauth"),
        name="oauth-server-metadata",
    ),
    path("userinfo/", dot_views.UserInfoView.as_view(), name="user-info"),
]
