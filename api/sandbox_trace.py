"""The API's half of the sandbox trace (``partners.certification_models.SandboxTrace``): each
response a sandbox app got, with what certification needs to judge its behaviour.

``ProtectedAPIView.finalize_response`` calls ``record`` for every response. For a production app it
costs one comparison; for a sandbox app one INSERT (``partners.sandbox_trace``), never an error.

What a row says:

- when the request arrived and how long it took (a 429's moment is its arrival plus its duration;
  a call "after" it is one that arrived after that);
- the endpoint (method and route template, ``api.endpoints.endpoint_of``) and its quota group;
- the status and problem code; for a 429, the ``Retry-After`` the app was told;
- the patient the call was for: the token's patient, or the one the handler asked consent about
  (``api.permissions.require_data_access`` notes it on the request);
- the token's scopes, and those of them this call needed (the scope layer's own rules, asked one scope
  at a time), which is how ``least_privilege_scopes`` tells used scopes from unused ones.

A call with a token that no longer exists (revoked with a patient's consent, say) reaches no app
through the token layer. When it answers 401 and the token was issued to a sandbox app, the token's
``token_issued`` row names the app and patient, and the call is recorded against them: that is how
certification sees an app that keeps calling for a patient after the patient revoked its access.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from api.endpoints import endpoint_of
from api.permissions import RESOURCE_CONTEXTS, _wanted_resource_access, _wanted_scopes
from partners.certification_models import SandboxTrace
from partners.oauth import token_checksum
from partners.sandbox_trace import TOKEN_ID_LENGTH, is_traced, sandbox_trace_record
from partners.scopes import scope_grants

logger = logging.getLogger(__name__)

# Refusals that come before the scope layer has said yes: such a call used none of its scopes.
BEFORE_SCOPES = frozenset({"invalid_token", "token_required", "insufficient_scope"})


def scopes_exercised(view, request, context) -> list[str]:
    """The token's scopes that this request needed: each named scope the view requires, and each
    resource scope that alone grants the view's resource access."""
    used = {name for name in _wanted_scopes(view, request) if context.has_scope(name)}
    access = _wanted_resource_access(view, request)
    if access:
        resource, action, params = access
        contexts = getattr(view, "resource_access_contexts", RESOURCE_CONTEXTS)
        for name in context.scopes:
            if any(
                scope_grants([name], context=ctx, resource=resource, action=action, params=params) for ctx in contexts
            ):
                used.add(name)
    return sorted(used)


def _timing(request) -> tuple:
    started = getattr(request, "started_at", None)
    now = timezone.now()
    if started is None:
        return now, 0
    elapsed = max(0.0, time.monotonic() - started)
    return now - timedelta(seconds=elapsed), int(elapsed * 1000)


def _patient_of(request, context) -> str:
    if context is not None and context.patient_id:
        return str(context.patient_id)
    touched = getattr(getattr(request, "_request", request), "traced_patients", None)
    return str(touched[0]) if touched else ""


def _retry_after(response) -> int | None:
    value = response.get("Retry-After") if hasattr(response, "get") else None
    try:
        return max(0, int(value)) if value is not None else None
    except ValueError:
        return None


def record(view, request, response) -> None:
    """Trace this response if a sandbox app's token made the request; never raises."""
    if not settings.SANDBOX_TRACE:
        return
    context = getattr(request, "auth_context", None)
    if context is None:
        if response.status_code == 401:
            _record_with_a_stale_token(view, request, response)
        return
    if not is_traced(context.app):
        return
    try:
        at, duration_ms = _timing(request)
        code = getattr(response, "problem_code", None) or ""
        rate_limited = response.status_code == 429
        fields = {
            "at": at,
            "duration_ms": duration_ms,
            "endpoint": endpoint_of(request)[:300],
            "endpoint_group": view.get_endpoint_group(request),
            "status": response.status_code,
            "problem_code": code,
            "patient_id": _patient_of(request, context),
            "token_id": context.token_id[:TOKEN_ID_LENGTH],
            "scopes": list(context.scopes),
            "scopes_used": [] if code in BEFORE_SCOPES else scopes_exercised(view, request, context),
            "retry_after": _retry_after(response) if rate_limited else None,
        }
        kind = SandboxTrace.Kind.RATE_LIMITED if rate_limited else SandboxTrace.Kind.API_CALL
    except Exception:
        logger.exception("sandbox_trace_not_recorded", extra={"app_id": context.app.pk})
        return
    sandbox_trace_record(app_id=context.app.pk, kind=kind, **fields)


def _record_with_a_stale_token(view, request, response) -> None:
    """A 401 for a bearer token: if a sandbox app was issued it, record the call against that app."""
    scheme, _, raw = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw or len(raw) > 4096:
        return
    try:
        token_id = token_checksum(raw)[:TOKEN_ID_LENGTH]
        issued = (
            SandboxTrace.objects.filter(kind=SandboxTrace.Kind.TOKEN_ISSUED, token_id=token_id)
            .values("app_id", "patient_id", "scopes")
            .first()
        )
        if issued is None:
            return
        at, duration_ms = _timing(request)
        fields = {
            "at": at,
            "duration_ms": duration_ms,
            "endpoint": endpoint_of(request)[:300],
            "endpoint_group": view.get_endpoint_group(request),
            "status": response.status_code,
            "problem_code": getattr(response, "problem_code", None) or "",
            "patient_id": issued["patient_id"],
            "token_id": token_id,
            "scopes": issued["scopes"],
        }
    except Exception:
        logger.exception("sandbox_trace_not_recorded", extra={"token_id": "stale"})
        return
    sandbox_trace_record(app_id=issued["app_id"], kind=SandboxTrace.Kind.API_CALL, **fields)
