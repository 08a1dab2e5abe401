"""The scope and policy layers, as DRF permission classes, and the helpers views call for data.

A view declares what it needs and lists the layers to apply; ``API_PERMISSION_CLASSES`` is the
usual list, in the order a request passes the layers (DESIGN.md, "One API request, layer by
layer")::

    token -> scope -> organization -> tier -> environment -> partner type

DRF checks permission classes in order and stops at the first refusal, so the problem a caller gets
always names the earliest layer that failed. Each class *raises* its ``Problem`` rather than
returning False, so the refusal keeps its own code, headers (``WWW-Authenticate``) and fields; for
the same reason they compose by listing, not with DRF's ``&``/``|`` operators.

What a view declares:

- ``required_scopes``: named scopes (``["events.read"]``), or a dict by HTTP method;
- ``required_resource_access``: ``(resource, action)`` or ``(resource, action, params)`` for FHIR
  views, granted by a SMART scope in any allowed context (``resource_access_contexts``,
  patient/user/system by default); or override ``get_required_resource_access(request)``;
- ``requires_write_access``: True/False to override "unsafe method means write";
- ``data_environment``: for a view that only serves one environment's data;
- ``allowed_partner_types``: e.g. ``{"provider"}``.

Inside the handler, for the records it touches: ``require_environment(request, env)`` and
``require_data_access(request, patient_id=..., data_class=...)``.
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from api import policy
from api.authentication import utc_iso
from api.problems import Problem, bearer_challenge
from partners.models import App, Organization, Tier
from partners.scopes import ACTION_WORDS, scope_grants

RESOURCE_CONTEXTS = ("patient", "user", "system")


def auth_context(request):
    """The caller's ``AuthContext``; raises ``token_required`` when the request has none."""
    context = getattr(request, "auth_context", None)
    if context is None:
        raise token_required(request)
    return context


def token_required(request) -> Problem:
    detail = "No access token was sent: the Authorization header is missing."
    if "access_token" in request.GET:
        detail += " An access_token in the query string is ignored; send it in the Authorization header."
    return Problem("token_required", detail, headers={"WWW-Authenticate": bearer_challenge()})


# --- refusals: each layer's check, shared by the permission classes and by token-info -------------


def _wanted_resource_access(view, request):
    getter = getattr(view, "get_required_resource_access", None)
    access = getter(request) if getter else getattr(view, "required_resource_access", None)
    if not access:
        return None
    resource, action, *rest = access
    return resource, action, dict(rest[0]) if rest else {}


def _wanted_scopes(view, request) -> list[str]:
    required = getattr(view, "required_scopes", None) or []
    if isinstance(required, dict):
        required = required.get(request.method, [])
    return list(required)


def _suggested_context(context) -> str:
    if context.is_system:
        return "system"
    return "patient" if context.patient_id else "user"


def scope_refusal(context, *, required=(), resource_access=None, contexts=RESOURCE_CONTEXTS) -> Problem | None:
    missing = [name for name in required if not context.has_scope(name)]
    sentences = []
    if missing:
        plural = "s" if len(missing) > 1 else ""
        sentences.append(
            f"This request needs the scope{plural} {', '.join(missing)}, which the access token was not granted."
        )
    if resource_access:
        resource, action, params = resource_access
        granted = any(
            scope_grants(context.scopes, context=ctx, resource=resource, action=action, params=params)
            for ctx in contexts
        )
        if not granted:
            query = "?" + "&".join(f"{k}={v}" for k, v in sorted(params.items())) if params else ""
            options = [f"{ctx}/{resource}.{action}{query}" for ctx in contexts]
            suggested = _suggested_context(context)
            missing.append(next((o for o in options if o.startswith(suggested + "/")), options[0]))
            alternatives = ", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0]
            sentences.append(
                f"This request needs {ACTION_WORDS.get(action, action)} access to {resource}{query}, which none "
                f"of the token's scopes grants: it takes {alternatives}."
            )
    if not missing:
        return None
    detail = " ".join(sentences)
    return Problem(
        "insufficient_scope",
        detail,
        headers={"WWW-Authenticate": bearer_challenge("insufficient_scope", detail, scope=" ".join(missing))},
        missing_scopes=missing,
        granted_scopes=list(context.scopes),
    )


def organization_refusal(context) -> Problem | None:
    organization = context.organization
    if organization.is_active:
        return None
    since = f" since {utc_iso(organization.suspended_at)}" if organization.suspended_at else ""
    reason = organization.suspension_reason.strip() or "no reason was recorded"
    return Problem(
        "organization_suspended",
        f"The organization {organization.name} is suspended{since}: {reason}",
        organization=organization.slug,
        suspended_at=utc_iso(organization.suspended_at) if organization.suspended_at else None,
        reason=organization.suspension_reason,
    )


def lowest_tier_with_write_access(tier) -> Tier | None:
    return Tier.objects.filter(write_access=True, rank__gt=tier.rank).order_by("rank").first()


def tier_write_refusal(context, what: str, request=None) -> Problem | None:
    """``what`` names the refused request in the detail: "POST /api/v1/visits", "a write request"."""
    tier = context.tier
    if tier.write_access:
        return None
    upgrade_url = request.build_absolute_uri("/tiers/") if request is not None else "/tiers/"
    target = lowest_tier_with_write_access(tier)
    if target is not None:
        detail = (
            f"Your organization's tier, {tier.name}, allows reads only: {what} requires write access, "
            f"which starts at the {target.name} tier."
        )
        fix = f"Request an upgrade to {target.name} at {upgrade_url}; writes work as soon as it is approved."
    else:
        detail = f"Your organization's tier, {tier.name}, allows reads only: {what} requires write access."
        fix = "No higher tier offers write access at the moment; contact platform support."
    return Problem(
        "tier_policy",
        detail,
        fix=fix,
        tier=tier.slug,
        required_tier=target.slug if target else None,
        upgrade_url=upgrade_url,
    )


def _environment_label(environment: str) -> str:
    return App.Environment(environment).label if environment in App.Environment.values else environment


def environment_refusal(context, data_environment: str) -> Problem | None:
    app_environment = context.environment or context.app.environment
    if app_environment == data_environment:
        return None
    label = _environment_label(app_environment)
    return Problem(
        "environment_policy",
        f"{label} apps reach {app_environment} data only: {context.app.name} is a {app_environment} app "
        f"and this request touches {data_environment} data.",
        app_environment=app_environment,
        data_environment=data_environment,
    )


def partner_type_refusal(context, allowed) -> Problem | None:
    partner_type = context.organization.partner_type
    if not allowed or partner_type in allowed:
        return None
    labels = dict(Organization.PartnerType.choices)
    allowed_labels = " and ".join(labels.get(t, t).lower() for t in sorted(allowed))
    return Problem(
        "partner_type_policy",
        f"This endpoint is open to {allowed_labels} partners only; {context.organization.name} is a "
        f"{labels.get(partner_type, partner_type).lower()} partner.",
        partner_type=partner_type,
        allowed_partner_types=sorted(allowed),
    )


# --- the permission classes ------------------------------------------------------------------------


class LayerPermission(BasePermission):
    """Base: no context means no token (``token_required``); ``refusal`` returns a Problem or None."""

    def has_permission(self, request, view):
        context = auth_context(request)
        problem = self.refusal(request, view, context)
        if problem is not None:
            raise problem
        return True

    def refusal(self, request, view, context) -> Problem | None:
        return None


class HasValidToken(LayerPermission):
    """Token layer: a valid bearer token was presented (the authentication class already refused
    a bad one with ``invalid_token``; this refuses no token at all with ``token_required``)."""


class HasScopes(LayerPermission):
    """Scope layer: ``required_scopes`` and/or ``required_resource_access`` (``insufficient_scope``)."""

    def refusal(self, request, view, context):
        return scope_refusal(
            context,
            required=_wanted_scopes(view, request),
            resource_access=_wanted_resource_access(view, request),
            contexts=getattr(view, "resource_access_contexts", RESOURCE_CONTEXTS),
        )


class OrganizationActive(LayerPermission):
    """Policy layer: the app's organization is not suspended (``organization_suspended``)."""

    def refusal(self, request, view, context):
        return organization_refusal(context)


class TierAllows(LayerPermission):
    """Policy layer: unsafe methods need the tier's write access (``tier_policy``)."""

    def refusal(self, request, view, context):
        needs_write = getattr(view, "requires_write_access", None)
        if needs_write is None:
            needs_write = request.method not in SAFE_METHODS
        if not needs_write:
            return None
        return tier_write_refusal(context, f"{request.method} {request.path}", request)


class EnvironmentAllows(LayerPermission):
    """Policy layer: records the app's environment on the context, so the handler's
    ``require_environment`` calls compare against it; a view serving one environment's data only
    says so with ``data_environment`` and is refused here (``environment_policy``)."""

    def refusal(self, request, view, context):
        context.environment = context.app.environment
        data_environment = getattr(view, "data_environment", None)
        return environment_refusal(context, data_environment) if data_environment else None


class PartnerTypeAllows(LayerPermission):
    """Policy layer: ``allowed_partner_types`` on the view (``partner_type_policy``)."""

    def refusal(self, request, view, context):
        return partner_type_refusal(context, getattr(view, "allowed_partner_types", None))


API_PERMISSION_CLASSES = (
    HasValidToken,
    HasScopes,
    OrganizationActive,
    TierAllows,
    EnvironmentAllows,
    PartnerTypeAllows,
)


# --- helpers the handler calls for the data it touches --------------------------------------------


def require_environment(request, data_environment: str) -> None:
    """Refuse with ``environment_policy`` unless the calling app lives in ``data_environment``
    ("sandbox" or "production"): sandbox apps reach sandbox data only, and the reverse."""
    problem = environment_refusal(auth_context(request), data_environment)
    if problem is not None:
        raise problem


def require_data_access(request, *, patient_id: str | None, data_class: str) -> policy.Decision:
    """The data layer: ask ``api.policy.check_data_access`` and refuse with the code it names
    (``consent_required`` by default) when it says no. Returns the decision when it says yes: its
    ``grant_id`` is the consent the access rests on, for the access audit."""
    if patient_id:  # the patient the call was for, for the sandbox trace (api.sandbox_trace)
        getattr(request, "_request", request).__dict__.setdefault("traced_patients", []).append(patient_id)
    decision = policy.check_data_access(context=auth_context(request), patient_id=patient_id, data_class=data_class)
    if not decision.allowed:
        raise data_refusal(decision, patient_id=patient_id, data_class=data_class)
    return decision


def data_refusal(decision, *, patient_id: str | None, data_class: str) -> Problem:
    """The problem a refused ``policy.Decision`` is answered with. It keeps the decision's
    ``grant_id`` (never rendered) so the access audit can name the consent a refusal rests on."""
    problem = Problem(
        decision.code or "consent_required",
        decision.detail or None,
        patient=f"Patient/{patient_id}" if patient_id else None,
        data_class=data_class,
    )
    problem.grant_id = decision.grant_id
    return problem


# --- what token-info shows -------------------------------------------------------------------------


def _verdict(layer, check, verdict, detail, code=None) -> dict:
    return {"layer": layer, "check": check, "verdict": verdict, "code": code, "detail": detail}


def describe_layers(context, request=None) -> list[dict]:
    """Each layer's verdict for this token, in order, for ``GET /api/v1/token-info``.

    ``verdict`` is ``allow``, ``deny`` (every call is refused here), ``limited`` (some calls are)
    or ``per_request`` (decided for each endpoint or record).
    """
    app, organization, tier = context.app, context.organization, context.tier
    layers = [
        _verdict(
            "token",
            "token",
            "allow",
            f"Valid until {utc_iso(context.expires_at)}; issued to {app.name} ({app.client_id}).",
        ),
        _verdict(
            "scope",
            "scopes",
            "per_request",
            f"{len(context.scopes)} scope(s) granted; each endpoint checks the ones it needs "
            "and refuses with insufficient_scope otherwise.",
        ),
    ]
    suspended = organization_refusal(context)
    layers.append(
        _verdict("policy", "organization", "deny", str(suspended.detail), suspended.code)
        if suspended
        else _verdict("policy", "organization", "allow", f"{organization.name} is active.")
    )
    read_only = tier_write_refusal(context, "a write request", request)
    layers.append(
        _verdict("policy", "tier", "limited", str(read_only.detail), read_only.code)
        if read_only
        else _verdict("policy", "tier", "allow", f"Tier {tier.name} allows reads and writes.")
    )
    environment = context.app.environment
    layers.append(
        _verdict(
            "policy",
            "environment",
            "limited",
            f"{_environment_label(environment)} app: reaches {environment} data only (environment_policy otherwise).",
            "environment_policy",
        )
    )
    partner_label = dict(Organization.PartnerType.choices).get(organization.partner_type, organization.partner_type)
    layers.append(
        _verdict(
            "policy",
            "partner_type",
            "per_request",
            f"{partner_label}: endpoints reserved to other partner types refuse with partner_type_policy.",
        )
    )
    layers.append(
        _verdict(
            "data",
            "consent",
            "per_request",
            "Checked for each patient and data class the request touches (consent_required when refused).",
        )
    )
    return layers
