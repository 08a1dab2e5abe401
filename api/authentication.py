"""The token layer: who is calling, established from the bearer token alone.

``BearerTokenAuthentication`` reads ``Authorization: Bearer <token>`` from the header and nowhere
else (RFC 9700 §2.4 / RFC 6750 §2.1: never the query string, never a form body), finds DOT's
``AccessToken`` by the SHA-256 of the token (tokens are stored hashed, ``token_checksum`` is unique
and indexed) in one query that also brings the app, its organization and tier and the user, and
puts what the later layers need on ``request.auth_context``.

It refuses only what is wrong with the *token*: malformed, unknown, revoked (the row is gone),
expired, or issued for a deactivated account. Whether the organization is suspended, what the
tier allows and so on are policy decisions the permission classes make, with their own codes.
"""

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication

from api import ratelimit
from api.problems import Problem, bearer_challenge
from consent import access_cache
from partners.oauth import token_checksum, token_patient_id
from partners.token_cache import access_token_with

# RFC 6750 §2.1 b64token; bounded so a hostile header costs nothing to refuse.
_B64TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
MAX_TOKEN_LENGTH = 4096

# A token's app and patient never change, so each process remembers them, and from a token's second
# request on fetches the patient's consent facts (consent.access_cache) in the token's own round trip.
_TOKEN_SUBJECTS: dict[str, tuple[int, str]] = {}
_TOKEN_SUBJECTS_MAX = 50_000


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class AuthContext:
    """What the token says about the caller, for the layers after it and for the handler.

    ``token_id`` identifies the token in logs and support conversations: a prefix of its stored
    SHA-256 checksum, never the token itself. ``environment`` is set by ``EnvironmentAllows``.
    """

    app: object  # partners.models.App
    organization: object  # partners.models.Organization
    tier: object  # partners.models.Tier
    scopes: list[str]
    patient_id: str | None
    user: object | None  # partners.models.User, None for a client-credentials (system) token
    token_id: str
    expires_at: datetime
    issued_at: datetime | None = None
    environment: str | None = None
    extra: dict = field(default_factory=dict)
    # The consent facts of (app, patient_id) as fetched with the token; None when they were not.
    access_found: dict | None = None

    @property
    def client_id(self) -> str:
        return self.app.client_id

    @property
    def is_system(self) -> bool:
        """A backend-services token: no user behind it."""
        return self.user is None

    def has_scope(self, name: str) -> bool:
        return name in self.scopes


def build_auth_context(access_token) -> AuthContext:
    app = access_token.application
    user = access_token.user
    scopes = access_token.scope.split()
    patient_id = token_patient_id(scopes, user)  # the same rule the token endpoint applied
    return AuthContext(
        app=app,
        organization=app.organization,
        tier=app.organization.tier,
        scopes=scopes,
        patient_id=patient_id,
        user=user,
        token_id=access_token.token_checksum[:16],
        expires_at=access_token.expires,
        issued_at=access_token.created,
    )


def invalid_token(description: str, *, app=None) -> Problem:
    """``app``: the app the refused token was issued to, when its row still says (expired...)."""
    problem = Problem(
        "invalid_token",
        description,
        headers={"WWW-Authenticate": bearer_challenge("invalid_token", description)},
    )
    problem.app = app  # never rendered; api.denials ties the refusal to the app
    return problem


def _quota_plan(request) -> ratelimit.Plan | None:
    """A plan to count the request against its rate quotas along with the token, when its view is
    rate limited (``ProtectedAPIView.rate_limited_group``)."""
    view = (getattr(request, "parser_context", None) or {}).get("view")
    group = view.rate_limited_group(request) if hasattr(view, "rate_limited_group") else None
    return ratelimit.Plan(group) if group else None


class BearerTokenAuthentication(BaseAuthentication):
    """DRF authentication by OAuth 2.0 bearer token (RFC 6750), header only.

    Returns ``(user, access_token)``: the token's user, or an ``AnonymousUser`` for a
    client-credentials token (``request.auth_context`` still says which app is calling).
    Returns ``None`` when no Authorization header was sent, so the permission layer answers
    ``token_required`` with a bare ``WWW-Authenticate: Bearer realm=...`` (RFC 6750 §3.1).
    """

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw_token = header.partition(" ")
        raw_token = raw_token.strip()
        if scheme.lower() != "bearer":
            raise invalid_token(
                f"The Authorization header uses the {scheme[:20]} scheme; send 'Authorization: Bearer <token>'."
            )
        if not raw_token or len(raw_token) > MAX_TOKEN_LENGTH or not _B64TOKEN.fullmatch(raw_token):
            raise invalid_token("The Authorization header is malformed: expected 'Bearer <token>' with one token.")

        checksum = token_checksum(raw_token)
        subject = _TOKEN_SUBJECTS.get(checksum)
        also = access_cache.keys(app_id=subject[0], patient_id=subject[1]) if subject else ()
        plan = _quota_plan(request)
        counters_for = (lambda token: plan.counters_for(token, build_auth_context(token))) if plan else None
        access_token, found, admission = access_token_with(checksum, also, counters_for)
        if access_token is None:
            raise invalid_token("The access token is unknown: it was never issued here, or it was revoked.")
        # From here the token's row still names its app (when it has one): the refusal is that app's
        # to look up ("Why was I denied?", api.denials); an unknown or revoked token names no one.
        if access_token.is_expired():
            raise invalid_token(
                f"The access token expired at {utc_iso(access_token.expires)}.", app=access_token.application
            )
        if access_token.application is None:
            raise invalid_token("The access token was not issued to a registered app.")
        user = access_token.user
        if user is not None and not user.is_active:
            raise invalid_token(
                "The account the access token was issued for is deactivated.", app=access_token.application
            )

        if admission is not None:
            context = plan.context  # built from this very token by counters_for
            getattr(request, "_request", request).rate_verdict = plan.verdict(admission)
        else:
            context = build_auth_context(access_token)
        if context.patient_id and access_cache.enabled():
            current = (context.app.pk, context.patient_id)
            if subject == current and found is not None:
                context.access_found = found
            elif subject is None:
                if len(_TOKEN_SUBJECTS) >= _TOKEN_SUBJECTS_MAX:
                    _TOKEN_SUBJECTS.clear()
                _TOKEN_SUBJECTS[checksum] = current
        # On the Django request, so the DRF request (which reads through to it), middleware and
        # the access log all see the same object.
        getattr(request, "_request", request).auth_context = context
        structlog.contextvars.bind_contextvars(
            client_id=context.client_id, organization=context.organization.slug, token_id=context.token_id
        )
        return (user if user is not None else AnonymousUser(), access_token)

    def authenticate_header(self, request):
        return bearer_challenge()


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Tells drf-spectacular how ``BearerTokenAuthentication`` appears in the OpenAPI document."""

    target_class = "api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An OAuth 2.0 access token from /oauth/token/, sent as 'Authorization: Bearer <token>'.",
        }
