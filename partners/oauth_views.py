"""django-oauth-toolkit's endpoints with the platform's SMART rules on top."""

import calendar

from django.conf import settings
from django.http import JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider import views as dot_views
from oauth2_provider.exceptions import OAuthToolkitError
from oauth2_provider.models import AccessToken
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauth2_provider.settings import oauth2_settings
from oauthlib.common import Request as OauthlibRequest
from oauthlib.oauth2.rfc6749 import errors

from marketplace import metrics
from partners import scopes as registry
from partners import token_denials, token_limits
from partners.models import App
from partners.oauth import fhir_user_reference, token_checksum, token_patient_id


def fhir_base_url(request) -> str:
    return request.build_absolute_uri(settings.FHIR_BASE_PATH)


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


class AuthorizationView(dot_views.AuthorizationView):
    """The authorization endpoint. Beyond DOT's checks (exact redirect URI, PKCE S256, state):

    - ``aud`` must be this server's FHIR base URL (SMART App Launch 2.x), so a token is never
      minted for a resource server the app did not mean;
    - patient-facing scopes need an account linked to a patient record.
    """

    template_name = "oauth2_provider/authorize.html"

    def error_response(self, error, application, **kwargs):
        # DOT passes no application when oauthlib refused the request, and then redirects only to
        # the global https-only schemes; errors for a registered http (sandbox or loopback)
        # redirect URI must still reach the app.
        if application is None:
            application = App.objects.filter(client_id=self.request.GET.get("client_id", "")).first()
        return super().error_response(error, application, **kwargs)

    def _refuse(self, application, credentials, error):
        return self.error_response(
            OAuthToolkitError(error=error, redirect_uri=credentials.get("redirect_uri")), application
        )

    def get(self, request, *args, **kwargs):
        try:
            scopes, credentials = self.validate_authorization_request(request)
        except OAuthToolkitError as error:
            return self.error_response(error, application=None)
        application = App.objects.select_related("organization", "organization__tier").get(
            client_id=credentials["client_id"]
        )
        state = credentials.get("state")
        # Refuse before the approval page, not after the person has said yes (DOT alone refuses
        # "plain" only when it mints the code).
        if not credentials.get("code_challenge") or credentials.get("code_challenge_method") != "S256":
            return self._refuse(
                application,
                credentials,
                errors.InvalidRequestError(
                    description="PKCE is required with code_challenge_method=S256 (plain is not accepted).",
                    state=state,
                ),
            )
        aud = request.GET.get("aud", "")
        expected = fhir_base_url(request)
        if not _same_url(aud, expected):
            detail = f"aud must be this server's FHIR base URL, {expected}" + (f" (got {aud})." if aud else ".")
            return self._refuse(application, credentials, errors.InvalidRequestError(description=detail, state=state))
        if token_patient_id(scopes, _Linked()) and not request.user.fhir_patient_id:
            return self._refuse(
                application,
                credentials,
                errors.AccessDeniedError(
                    description="The signed-in account is not linked to a patient record, "
                    "so patient-facing scopes cannot be granted.",
                    state=state,
                ),
            )
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        parsed, _ = registry.parse_many(context.get("scopes", []))
        context["scope_groups"] = registry.grouped_by_data_class(parsed)
        context["offline"] = "offline_access" in context.get("scopes", [])
        return context


class TokenView(dot_views.TokenView):
    """DOT's token endpoint behind its rate limits (``partners.token_limits``): a request over a
    quota is refused before DOT looks at it, and every answer says where the quotas stand. Every
    error carries its correlation id, and a refusal of a named app is kept for its members' "Why was
    I denied?" (``partners.token_denials``)."""

    def post(self, request, *args, **kwargs):
        response, verdict = self._answer(request, *args, **kwargs)
        token_denials.record(request, response, verdict)
        return token_denials.with_correlation_id(request, response)

    def _answer(self, request, *args, **kwargs):
        if not settings.RATE_LIMITS:
            return super().post(request, *args, **kwargs), None
        verdict = token_limits.check(request)
        if not verdict.admitted:
            metrics.rate_limited(verdict.violated[0].name)
            return token_limits.refusal(verdict), verdict
        response = super().post(request, *args, **kwargs)
        token_limits.add_headers(response, token_limits.settle(request, verdict, response))
        return response, verdict


class RevokeTokenView(dot_views.RevokeTokenView):
    """DOT's revocation endpoint (RFC 7009); its errors carry their correlation id."""

    def post(self, request, *args, **kwargs):
        return token_denials.with_correlation_id(request, super().post(request, *args, **kwargs))


class _Linked:
    """Stands in for a user who has a patient link, to ask whether the scopes need one."""

    fhir_patient_id = "linked"


class IntrospectTokenView(View):
    """RFC 7662 introspection for the client that holds the token.

    The caller authenticates as a client (HTTP Basic, credentials in the body, or a
    private_key_jwt assertion). It learns about its own tokens only: another client's token, an
    unknown, expired or revoked one all answer ``{"active": false}`` and nothing more.
    """

    http_method_names = ["post", "get"]

    @method_decorator(csrf_exempt)  # a machine-to-machine endpoint authenticated by client credentials
    def dispatch(self, request, *args, **kwargs):
        return token_denials.with_correlation_id(request, self._dispatch(request, *args, **kwargs))

    def _dispatch(self, request, *args, **kwargs):
        core = get_oauthlib_core()
        uri, method, body, headers = core._extract_params(request)
        oauth_request = OauthlibRequest(uri, method, body, headers)
        try:
            authenticated = core.server.request_validator.authenticate_client(oauth_request)
        except errors.OAuth2Error as exc:
            return JsonResponse({"error": exc.error, "error_description": exc.description}, status=401)
        if not authenticated or oauth_request.client is None:
            response = JsonResponse(
                {"error": "invalid_client", "error_description": "Authenticate as the client that holds the token."},
                status=401,
            )
            response["WWW-Authenticate"] = 'Basic realm="marketplace"'
            return response
        request.introspecting_client = oauth_request.client
        return super().dispatch(request, *args, **kwargs)

    def get(self, request, *args, **kwargs):
        return self._response(request, request.GET.get("token"))

    def post(self, request, *args, **kwargs):
        return self._response(request, request.POST.get("token"))

    def _response(self, request, token_value):
        if not token_value:
            return JsonResponse(
                {"error": "invalid_request", "error_description": "The token parameter is missing."}, status=400
            )
        checksum = token_checksum(token_value)
        token = (
            AccessToken.objects.select_related("application", "user", "application__organization")
            .filter(token_checksum=checksum, application=request.introspecting_client)
            .first()
        )
        if token is None or not token.is_valid() or not token.application.organization.is_active:
            return JsonResponse({"active": False})
        scopes = token.scope.split()
        data = {
            "active": True,
            "scope": token.scope,
            "client_id": token.application.client_id,
            "token_type": "Bearer",
            "exp": int(calendar.timegm(token.expires.timetuple())),
            "iat": int(calendar.timegm(token.created.timetuple())),
            "iss": oauth2_settings.oidc_issuer(request),
            "aud": fhir_base_url(request),
            "sub": str(token.user.pk) if token.user else token.application.client_id,
        }
        patient = token_patient_id(scopes, token.user)
        if patient:
            data["patient"] = patient
        reference = fhir_user_reference(token.user)
        if reference and "fhirUser" in scopes:
            data["fhirUser"] = reference
        return JsonResponse(data)
