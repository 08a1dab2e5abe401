"""Why was I denied? Each refusal of an app is recorded under its correlation id, for its members.

Every 401, 403 and 429 under ``/api/`` and ``/fhir/`` is a problem rendered by
``api.problems.problem_response``, which hands it to ``record`` here. When the refusal can be tied
to an app (the token's ``auth_context``, or the app of an expired token: ``Problem.app``), it goes to
the denial log (``marketplace.denial_log``: the shared cache, kept a week, capped per app and hour;
its docstring says why not the database) as a ``Denial``: when, which app and organization, the
method and route template, the status and code, which layer refused in plain words, the rule that
was broken this time, the fix and the docs page. The token endpoint records its own refusals there
too (``partners.oauth_views``). A refusal no app can be tied to (no token, an unknown or revoked
token) belongs to no partner and is never recorded.

``denial_lookup_for_member`` is the portal's read, the pattern of ``partners.token_selectors``: it
only ever reads the keys of the apps of the member's own organizations, so another partner's
correlation id, an unknown one, an expired one and a malformed one all give the same ``None``.

Recording never fails the response it explains: ``record`` swallows and logs whatever goes wrong.
"""

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from api import errors
from api.endpoints import endpoint_of
from marketplace import denial_log, quota
from marketplace.denial_log import Denial
from marketplace.middleware import request_id_from_header
from partners.models import App
from partners.scopes import DATA_CLASSES

log = logging.getLogger(__name__)

# The statuses that refuse a caller: the ones "Why was I denied?" explains.
RECORDED_STATUSES = frozenset({401, 403, 429})


@dataclass(frozen=True)
class Layer:
    name: str
    explanation: str


# The layers in the portal's words. The catalogue's ``policy`` layer is split into what the partner
# acts on (tier, environment, organization, partner type, quota) and its ``data`` layer into consent
# and the provider's authorization.
LAYERS = {
    "token": Layer(
        "Token",
        "Who is calling: every request must carry a valid access token (and the token endpoint valid client "
        "credentials): present, issued here, not expired and not revoked.",
    ),
    "scope": Layer(
        "Scope",
        "What the token was granted: each endpoint needs particular scopes, and a token carries only those the "
        "user (or your registration, for a backend service) agreed to.",
    ),
    "organization": Layer(
        "Organization status",
        "Whether your organization may use the platform at all: while a platform administrator has it "
        "suspended, all of its apps are refused, whatever their tokens allow.",
    ),
    "tier": Layer(
        "Tier",
        "What your organization's tier includes: some requests, such as writes, start at a higher tier.",
    ),
    "environment": Layer(
        "Environment",
        "Which data an app may reach: sandbox apps reach sandbox (synthetic) data only, production apps "
        "production data only.",
    ),
    "partner_type": Layer(
        "Partner type",
        "Who an endpoint serves: some are reserved to one kind of partner (providers, payers...).",
    ),
    "quota": Layer(
        "Quota",
        "How often you may call: each endpoint group has per-second, per-minute and per-day quotas from your "
        "tier, shared by your organization, with shares per token and per patient.",
    ),
    "consent": Layer(
        "Consent",
        "Whether the patient allowed this app this data: consent is per patient, per app and per data class, "
        "and the patient can revoke it at any time.",
    ),
    "organization_authorization": Layer(
        "Organization authorization",
        "Whether the provider organization holding the patient's records lets your app reach them: it decides "
        "separately from the patient's consent.",
    ),
    "policy": Layer(
        "Policy",
        "A platform rule that has no more specific layer; the rule below says which.",
    ),
    "request": Layer("Request", "The request itself: its address, method or body."),
}

CODE_LAYERS = {
    "token_required": "token",
    "invalid_token": "token",
    "insufficient_scope": "scope",
    "organization_suspended": "organization",
    "tier_policy": "tier",
    "environment_policy": "environment",
    "partner_type_policy": "partner_type",
    "quota_exceeded": "quota",
    "consent_required": "consent",
    "consent_revoked": "consent",
    "consent_expired": "consent",
    "organization_authorization": "organization_authorization",
}
CATALOGUE_LAYERS = {"token": "token", "scope": "scope", "policy": "policy", "data": "consent"}


def layer_of(code: str) -> str:
    """The portal's layer of a catalogue code."""
    if code in CODE_LAYERS:
        return CODE_LAYERS[code]
    entry = errors.ERRORS.get(code)
    return CATALOGUE_LAYERS.get(entry.layer, "request") if entry else "policy"


def layer(key: str) -> Layer:
    return LAYERS.get(key) or LAYERS["policy"]


# --- the rule of a refusal ---------------------------------------------------------------------------

# A patient's logical id in a detail ("Patient/123 has not consented..."): never kept in the log.
_PATIENT_REFERENCE = re.compile(r"Patient/[A-Za-z0-9\-.]{1,64}")


def redacted(text: str) -> str:
    """``text`` without patient ids: "Patient/123's consent" -> "The patient's consent"."""
    text = _PATIENT_REFERENCE.sub("the patient", str(text or ""))
    return text[:1].upper() + text[1:]


def _data_class(value) -> str:
    found = DATA_CLASSES.get(value or "")
    return f"{value} ({found.description.lower()})" if found else "this data class"


def _quota_rule(request, problem) -> str:
    verdict = getattr(request, "rate_verdict", None)
    violated = list(getattr(verdict, "violated", None) or [])
    if violated:
        return "; ".join(
            f"{policy.name}: {policy.quota} {'request' if policy.quota == 1 else 'requests'} "
            f"per {quota.window_name(policy.window)}"
            for policy in violated
        )
    names = problem.extra.get("violated-policies") or []
    return ", ".join(names) if names else redacted(problem.detail)


def rule_of(request, problem) -> str:
    """What was broken this time, in a sentence, from the problem's detail and fields."""
    code, extra = problem.code, problem.extra
    if code == "insufficient_scope":
        missing = extra.get("missing_scopes") or []
        granted = extra.get("granted_scopes") or []
        plural = "s" if len(missing) > 1 else ""
        carries = f"it carries {' '.join(granted)}" if granted else "it carries no scope"
        return f"The token lacks the scope{plural} {', '.join(missing)}; {carries}."
    if code == "quota_exceeded":
        return _quota_rule(request, problem)
    data_class = _data_class(extra.get("data_class"))
    if code == "consent_required":
        return f"No active consent from the patient covers {data_class} for this app."
    if code == "consent_revoked":
        return f"The patient revoked this app's consent; the request was for {data_class}."
    if code == "consent_expired":
        return f"The patient's consent for this app has expired; the request was for {data_class}."
    if code == "environment_policy":
        app_environment, data_environment = extra.get("app_environment"), extra.get("data_environment")
        if app_environment and data_environment:
            return (
                f"{app_environment.capitalize()} apps reach {app_environment} data only; "
                f"this request touched {data_environment} data."
            )
    return redacted(problem.detail)


# --- recording -----------------------------------------------------------------------------------------


def _app_of(request, problem):
    app = getattr(problem, "app", None)  # a refused token that still names its app (expired...)
    if app is not None:
        return app
    context = getattr(request, "auth_context", None)
    return getattr(context, "app", None)


def denial_of(request, problem) -> Denial | None:
    """The denial ``problem`` makes of ``request``, or None when it is not one the log keeps: not a
    401, 403 or 429, or no app to tie it to."""
    if problem.status_code not in RECORDED_STATUSES:
        return None
    correlation_id = getattr(request, "request_id", None)
    app = _app_of(request, problem)
    if not correlation_id or app is None:
        return None
    method, _, path = endpoint_of(request).partition(" ")
    return Denial(
        correlation_id=correlation_id,
        at=time.time(),
        organization_id=app.organization_id,
        app_id=app.pk,
        method=method,
        path=path,
        status=problem.status_code,
        code=problem.code,
        layer=layer_of(problem.code),
        rule=rule_of(request, problem),
        detail=redacted(problem.detail),
        fix=str(problem.fix),
        docs=errors.docs_path(problem.code),
    )


def record(request, problem) -> None:
    """Keep ``problem``'s refusal of ``request`` in the denial log, when it is one. Never raises."""
    try:
        denial = denial_of(request, problem)
        if denial is not None:
            denial_log.store(denial)
    except Exception:  # the response it explains goes out whatever happens here
        log.warning("denial log: could not record a refusal", exc_info=True)


# --- the portal's lookup ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DenialReport:
    """What "Why was I denied?" shows about one refusal of one of the member's apps."""

    denial: Denial
    app: App

    @property
    def organization(self):
        return self.app.organization

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.denial.at, tz=UTC)

    @property
    def layer(self) -> Layer:
        return layer(self.denial.layer)

    @property
    def is_token_endpoint(self) -> bool:
        return self.denial.path.startswith("/oauth/")


def well_formed(correlation_id: str) -> str | None:
    """The correlation id, when it is one the platform could have used (the middleware's rule)."""
    return request_id_from_header((correlation_id or "").strip())


def denial_lookup_for_member(user, correlation_id: str) -> DenialReport | None:
    """The latest refusal recorded under ``correlation_id`` for an app of one of ``user``'s
    organizations; ``None`` otherwise (malformed, unknown, expired, or another partner's)."""
    correlation_id = well_formed(correlation_id)
    if not correlation_id or not user.is_authenticated:
        return None
    apps = {
        app.pk: app
        for app in App.objects.select_related("organization").filter(organization__memberships__user=user).distinct()
    }
    for denial in denial_log.fetch(apps, correlation_id):
        app = apps[denial.app_id]
        if denial.organization_id == app.organization_id:
            return DenialReport(denial=denial, app=app)
    return None
