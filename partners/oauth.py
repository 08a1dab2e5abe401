"""The OAuth 2.0 server's rules: SMART scopes limited by tier and environment, token lifetimes per
tier, SMART Backend Services client assertions, and suspension. django-oauth-toolkit does the
protocol; this module is the policy it consults.
"""

import hashlib
import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.scopes import BaseScopes
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.openid import Server as OpenIDServer

from partners import sandbox_trace
from partners import scopes as registry
from partners.models import App, Tier, UsedClientAssertion

log = logging.getLogger(__name__)

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = 300  # SMART Backend Services: exp at most five minutes ahead
CLOCK_SKEW = 60
SYSTEM_TOKEN_CAP = 300
PATIENT_CONTEXT_SCOPES = {"launch/patient"}


# --- Token lifetimes -----------------------------------------------------------------------


def access_token_lifetime(request) -> int:
    """Seconds the access token being issued will live: the tier decides, per context.

    Backend-services (client credentials) tokens never exceed 300 s, whatever a tier says.
    """
    app = request.client
    tier = app.organization.tier if isinstance(app, App) else None
    if tier is None:
        return SYSTEM_TOKEN_CAP
    if request.grant_type == "client_credentials":
        return min(tier.system_token_lifetime, SYSTEM_TOKEN_CAP)
    return tier.patient_token_lifetime


class SmartServer(OpenIDServer):
    """oauthlib's OpenID Connect server, with token lifetimes taken from the caller's tier."""

    def __init__(self, request_validator, token_expires_in=None, *args, **kwargs):
        super().__init__(request_validator, access_token_lifetime, *args, **kwargs)


# --- Scopes backend --------------------------------------------------------------------------


class _Descriptions(dict):
    """DOT looks scope descriptions up by name; SMART scopes are patterns, so describe on demand."""

    def __missing__(self, name):
        try:
            return registry.parse(name).sentence
        except registry.UnknownScope:
            return name

    def __contains__(self, name):
        try:
            registry.parse(name)
        except registry.UnknownScope:
            return False
        return True


class RegistryScopes(BaseScopes):
    def get_all_scopes(self):
        return _Descriptions({scope.name: scope.sentence for scope in registry.documented_scopes()})

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        # Without an application (OpenID discovery) the answer is every scope the platform documents.
        if application is None:
            return [scope.name for scope in registry.documented_scopes()]
        return list(allowed_patterns(application))

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        return []


def allowed_patterns(app: App) -> list[str]:
    """What the app may be granted: its tier's patterns, and nothing for a production app whose
    tier lacks production credentials."""
    tier = app.organization.tier
    if app.is_production and not tier.production_credentials:
        return []
    return list(tier.allowed_scopes)


def lowest_tier_allowing(scope_names: list[str]) -> Tier | None:
    parsed = [registry.parse(name) for name in scope_names]
    for tier in Tier.objects.order_by("rank"):
        if all(registry.allowed_by(tier.allowed_scopes, scope) for scope in parsed):
            return tier
    return None


def check_requested_scopes(app: App, requested: list[str], *, grant_type: str) -> str | None:
    """Why these scopes cannot be granted to this app in this grant, or ``None`` when they can."""
    if not requested:
        return "Ask for at least one scope, for example patient/*.rs or system/*.rs."
    parsed, problems = registry.parse_many(requested)
    if problems:
        return " ".join(problems)
    if grant_type == "client_credentials":
        wrong = [s.name for s in parsed if (s.is_resource and not s.is_system) or s.kind in {"launch", "identity"}]
        if wrong:
            return (
                f"Backend services act for no patient or user, so these cannot be granted here: {' '.join(wrong)}. "
                "Use system/ scopes with client credentials."
            )
    else:
        wrong = [s.name for s in parsed if s.is_system]
        if wrong:
            return f"system/ scopes are for backend services (client credentials), not this grant: {' '.join(wrong)}."
    patterns = allowed_patterns(app)
    refused = [s.name for s in parsed if not registry.allowed_by(patterns, s)]
    if not refused:
        return None
    tier = app.organization.tier
    if app.is_production and not tier.production_credentials:
        return (
            f"The {tier.name} tier has no production credentials, so this production app can be granted nothing. "
            "Request the Production tier on the portal's Tier page."
        )
    better = lowest_tier_allowing(refused)
    hint = (
        f" The {better.name} tier allows them: request it on the portal's Tier page."
        if better and better.rank > tier.rank
        else ""
    )
    return f"The {tier.name} tier does not allow: {' '.join(refused)}.{hint}"


# --- Token context -------------------------------------------------------------------------


def token_checksum(raw_token: str) -> str:
    """How tokens are looked up: DOT stores them hashed (RFC 9700 token storage) under the hex
    SHA-256 of the raw value, its ``token_checksum``."""
    return hashlib.sha256(raw_token.encode("utf-8")).hexdigest()


def token_patient_id(scope_names, user) -> str | None:
    """The patient in context: the signed-in user's FHIR Patient, when the token is patient-facing."""
    if user is None or not getattr(user, "fhir_patient_id", ""):
        return None
    names = set(scope_names)
    if names & PATIENT_CONTEXT_SCOPES or any(name.startswith("patient/") for name in names):
        return user.fhir_patient_id
    return None


def fhir_user_reference(user) -> str | None:
    if user is not None and getattr(user, "fhir_patient_id", ""):
        return f"Patient/{user.fhir_patient_id}"
    return None


# --- Revocation ------------------------------------------------------------------------------


def revoke_tokens_of_apps(app_ids) -> int:
    """Revoke every access and refresh token of these apps at once; returns how many went."""
    refresh = RefreshToken.objects.filter(application_id__in=app_ids, revoked__isnull=True)
    count = refresh.update(revoked=timezone.now())
    deleted, _ = AccessToken.objects.filter(application_id__in=app_ids).delete()
    return count + deleted


# --- The validator ---------------------------------------------------------------------------


class SmartOAuth2Validator(OAuth2Validator):
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "fhirUser": "fhirUser"}

    # Suspension: refuse with a reason the developer can act on, not a bare invalid_client.
    def _load_application(self, client_id, request):
        app = App.objects.select_related("organization", "organization__tier").filter(client_id=client_id).first()
        if app is not None and not app.organization.is_active:
            reason = app.organization.suspension_reason or "no reason recorded"
            raise errors.AccessDeniedError(
                description=(
                    f"{app.organization.name} is suspended ({reason}), so its apps get no tokens. "
                    "Contact platform support to resolve the suspension."
                ),
                request=request,
            )
        if app is not None:
            request.client = app
            return app
        return super()._load_application(client_id, request)

    # Scopes: tier, environment and grant decide; the refusal names what and who would allow it.
    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):
        grant_type = getattr(request, "grant_type", None) or (
            "authorization_code" if getattr(request, "response_type", None) == "code" else ""
        )
        problem = check_requested_scopes(client, list(scopes), grant_type=grant_type)
        if problem:
            raise errors.InvalidScopeError(description=problem, request=request)
        return True

    # SMART Backend Services: private_key_jwt client authentication.
    def authenticate_client(self, request, *args, **kwargs):
        if getattr(request, "client_assertion_type", None) == JWT_BEARER:
            return self._authenticate_client_assertion(request)
        if getattr(request, "client_assertion", None):
            raise errors.InvalidClientError(description=f"client_assertion_type must be {JWT_BEARER}.", request=request)
        return super().authenticate_client(request, *args, **kwargs)

    def _authenticate_client_assertion(self, request):
        from partners.client_assertions import AssertionRejected, verify_client_assertion

        try:
            app, claims = verify_client_assertion(
                request.client_assertion,
                token_urls=_token_urls(request),
                client_id=getattr(request, "client_id", None),
            )
        except AssertionRejected as exc:
            raise errors.InvalidClientError(description=str(exc), request=request) from exc
        self._load_application(app.client_id, request)  # refuses a suspended organization
        if not self._remember_jti(app, claims, request):
            raise errors.InvalidClientError(
                description="This client assertion's jti was already used; sign a new assertion for every request.",
                request=request,
            )
        request.client = app
        request.client_id = app.client_id
        return True

    @staticmethod
    def _remember_jti(app, claims, request) -> bool:
        expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=UTC)
        try:
            with transaction.atomic():
                UsedClientAssertion.objects.create(app=app, jti=str(claims["jti"]), expires_at=expires_at)
        except IntegrityError:
            return False
        return True

    def client_authentication_required(self, request, *args, **kwargs):
        if getattr(request, "client_assertion_type", None) == JWT_BEARER:
            return True
        return super().client_authentication_required(request, *args, **kwargs)

    # Refresh tokens live as long as the tier allows.
    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        instance = getattr(request, "refresh_token_instance", None)
        tier = client.organization.tier
        return not (
            instance is not None and instance.created + timedelta(seconds=tier.refresh_token_lifetime) < timezone.now()
        )

    # The token response carries the patient in context (SMART) and the granted scope.
    def save_bearer_token(self, token, request, *args, **kwargs):
        # SMART: a refresh token only for offline_access (until revoked) or online_access (while the
        # user is around); without either, the app's access ends with its access token, as the
        # consent screen promises.
        scopes = set(token.get("scope", "").split())
        if request.grant_type == "authorization_code" and not scopes & {"offline_access", "online_access"}:
            token.pop("refresh_token", None)
        result = super().save_bearer_token(token, request, *args, **kwargs)
        # The onboarding milestone. Here rather than on DOT's app_authorized signal: every grant
        # (client credentials with a secret or private_key_jwt, authorization code, refresh) saves its
        # token here, in the token's own transaction, with the app already loaded. (Imported here:
        # partners.services imports this module.)
        from partners.services import app_record_first_token

        if isinstance(request.client, App):
            app_record_first_token(app=request.client)
        patient = token_patient_id(token.get("scope", "").split(), request.user)
        if patient:
            token["patient"] = patient
        sandbox_trace.token_issued(token, request)  # for certification; sandbox apps only, never raises
        return result

    # Revoking either token of a pair revokes both (RFC 7009 §2.1 permits it; SMART expects it).
    def revoke_token(self, token, token_type_hint, request, *args, **kwargs):
        checksum = token_checksum(token)
        client = request.client
        access = AccessToken.objects.filter(token_checksum=checksum, application=client).first()
        if access is not None:
            refresh = RefreshToken.objects.filter(access_token=access, revoked__isnull=True).first()
            if refresh is not None:
                refresh.revoke()  # also deletes its access token
            else:
                access.revoke()
            return
        refresh = RefreshToken.objects.filter(token_checksum=checksum, application=client, revoked__isnull=True).first()
        if refresh is not None:
            refresh.revoke()

    # OpenID Connect: SMART's fhirUser claim.
    def get_additional_claims(self, request):
        claims = {}
        reference = fhir_user_reference(request.user)
        if reference and "fhirUser" in request.scopes:
            claims["fhirUser"] = reference
        return claims


def _token_urls(oauth_request) -> set[str]:
    """The absolute token endpoint URL as this request reached it, and as configured publicly.

    DOT hands oauthlib the path only; the host and scheme come from the request's own headers,
    which Django has already checked against ALLOWED_HOSTS.
    """
    path = reverse("oauth2_provider:token")
    headers = oauth_request.headers
    scheme = "https" if headers.get("X_DJANGO_OAUTH_TOOLKIT_SECURE") else "http"
    urls = {f"{settings.PUBLIC_BASE_URL}{path}"}
    if headers.get("HTTP_HOST"):
        urls.add(f"{scheme}://{headers['HTTP_HOST']}{path}")
    return urls


def revoke_tokens_for_patient(app, patient_id: str) -> int:
    """Revoke this app's tokens issued to the accounts that speak for this patient."""
    from partners.models import User

    users = User.objects.filter(fhir_patient_id=patient_id)
    refresh = RefreshToken.objects.filter(application=app, user__in=users, revoked__isnull=True)
    count = refresh.update(revoked=timezone.now())
    deleted, _ = AccessToken.objects.filter(application=app, user__in=users).delete()
    return count + deleted
