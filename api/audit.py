"""Recording every touch of patient data (and every refused attempt) in the access audit.

Views call ``record_access`` inside the transaction of the access, so the audit row exists exactly
when the access happened. Rows are only ever inserted; ``api.audit_seal`` seals them into
hash-chained batches later, so writers never wait on each other.
"""

from django.conf import settings
from django.db import connection
from django.utils import timezone

from api.models import AccessEvent

USER_AGENT_MAX = 300


def _client_ip(request) -> str | None:
    # Behind a load balancer REMOTE_ADDR is the balancer; it appends the caller's address to
    # X-Forwarded-For, so the last entry is the one it saw. Without a trusted proxy the header is the
    # caller's own words and is ignored.
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[-1].strip() or None
    return request.META.get("REMOTE_ADDR") or None


def record_access(
    request,
    *,
    resource_type: str,
    resource_id: str = "",
    patient_id: str | None = None,
    action: str,
    outcome: str,
    refusal_code: str = "",
    consent_grant_id: int | None = None,
    environment: str = "",
) -> None:
    context = getattr(request, "auth_context", None) or getattr(
        getattr(request, "_request", None), "auth_context", None
    )
    user = getattr(context, "user", None)
    _insert(
        occurred_at=timezone.now(),
        app_id=getattr(getattr(context, "app", None), "pk", None),
        client_id=getattr(context, "client_id", "") if context else "",
        organization_id=getattr(getattr(context, "organization", None), "pk", None),
        user_id=getattr(user, "pk", None),
        patient_id=patient_id or "",
        token_id=getattr(context, "token_id", "") if context else "",
        resource_type=resource_type,
        resource_id=resource_id,
        action=action,
        outcome=outcome,
        refusal_code=refusal_code,
        consent_grant_id=consent_grant_id,
        environment=environment or (getattr(context, "environment", "") or "" if context else ""),
        ip=_client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX],
        correlation_id=getattr(request, "request_id", "")
        or getattr(getattr(request, "_request", None), "request_id", ""),
    )


_FIELDS = [field for field in AccessEvent._meta.concrete_fields if not field.primary_key]
_STATEMENTS: dict[str, str] = {}


def _insert(**values) -> None:
    """One plain INSERT, prepared by each field as the ORM would: this runs on every read of patient
    data, and a model save's bookkeeping costs more than the statement."""
    sql = _STATEMENTS.get(connection.vendor)
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in _FIELDS)
        placeholders = ", ".join(["%s"] * len(_FIELDS))
        sql = _STATEMENTS[connection.vendor] = (
            f"INSERT INTO {quote(AccessEvent._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608 - names from the model, values bound
        )
    params = [field.get_db_prep_save(values[field.attname], connection) for field in _FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
