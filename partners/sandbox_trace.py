"""Writes of the sandbox trace (``partners.certification_models.SandboxTrace``): what certification
reads about a sandbox app's behaviour.

Recording is on the request path, so it is cheap and harmless: one INSERT, for sandbox apps only
(production traffic is never traced), and a failure is logged, never raised: a request must not fail
because its trace could not be written. Inside a transaction the insert gets a savepoint of its own,
so a failed insert cannot poison the caller's transaction (PostgreSQL refuses everything after an
error until the savepoint is rolled back).

The token endpoint records here (``token_issued``); the API records through ``api.sandbox_trace``.
"""

import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from partners.certification_models import TRACE_RETENTION, SandboxTrace
from partners.models import App

logger = logging.getLogger(__name__)

TOKEN_ID_LENGTH = 16


def is_traced(app) -> bool:
    return settings.SANDBOX_TRACE and isinstance(app, App) and app.environment == App.Environment.SANDBOX


def sandbox_trace_record(*, app_id: int, kind: str, at=None, **fields) -> None:
    """Write one trace row; never raises. The caller has checked the app is a sandbox app."""
    try:
        row = SandboxTrace(app_id=app_id, kind=kind, at=at or timezone.now(), **fields)
        if connection.in_atomic_block:
            with transaction.atomic():
                row.save(force_insert=True)
        else:
            row.save(force_insert=True)
    except Exception:
        logger.exception("sandbox_trace_not_recorded", extra={"app_id": app_id, "kind": kind})


def token_issued(token: dict, request) -> None:
    """The token endpoint issued ``token`` (oauthlib's dict, after it was saved) for ``request``:
    record the grant, whether a PKCE verifier was checked and with which method, the scopes granted,
    the patient in context and the token's id (so a later call with it, once revoked, can still be
    attributed: ``api.sandbox_trace``)."""
    app = getattr(request, "client", None)
    if not is_traced(app):
        return
    try:
        from oauth2_provider.models import Grant

        from partners.oauth import token_checksum

        grant_type = getattr(request, "grant_type", "") or ""
        pkce_method = ""
        if grant_type == "authorization_code" and getattr(request, "code_verifier", None):
            # oauthlib has checked the verifier against the grant's challenge by now; the grant is
            # invalidated only after the token is saved, so its method can still be read.
            pkce_method = (
                Grant.objects.filter(code=getattr(request, "code", ""), application=app)
                .values_list("code_challenge_method", flat=True)
                .first()
                or ""
            )
        raw = token.get("access_token") or ""
        fields = {
            "grant_type": grant_type,
            "pkce_method": pkce_method,
            "scopes": (token.get("scope") or "").split(),
            "patient_id": str(token.get("patient") or ""),
            "token_id": token_checksum(raw)[:TOKEN_ID_LENGTH] if raw else "",
            "status": 200,
        }
    except Exception:
        logger.exception("sandbox_trace_not_recorded", extra={"app_id": app.pk, "kind": "token_issued"})
        return
    sandbox_trace_record(app_id=app.pk, kind=SandboxTrace.Kind.TOKEN_ISSUED, **fields)


def sandbox_traces_purge(*, now=None) -> int:
    """Delete what is older than ``TRACE_RETENTION`` (beat, daily); how many rows went."""
    cutoff = (now or timezone.now()) - TRACE_RETENTION
    deleted, _ = SandboxTrace.objects.filter(at__lt=cutoff).delete()
    return deleted
