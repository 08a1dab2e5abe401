"""What the workflow APIs share: opaque ids, cursor-paginated lists, body validation."""

import secrets

from django.core import signing
from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from api.audit import record_access
from api.idempotency import HEADER as IDEMPOTENCY_HEADER
from api.permissions import require_data_access
from api.problems import Problem
from api.views import problem_responses, versioned_schema

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
CURSOR_SALT = "api.workflows.cursor"
NO_STORE = {"Cache-Control": "no-store"}

# The Idempotency-Key header as every idempotent POST documents it.
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="A unique value per operation (a UUID). A retry with the same key and body returns the first "
    "result; the same key with another body is refused (422). Keys expire after 24 hours.",
)


# What the workflow endpoints document as application/problem+json.
WRITE_ERRORS = (400, 401, 403, 404, 405, 406, 409, 410, 413, 415, 422, 429, 500)
READ_ERRORS = (400, 401, 403, 404, 405, 406, 410, 429, 500)
PAGE_PARAMETERS = [
    OpenApiParameter("limit", int, description="1 to 100; default 20."),
    OpenApiParameter("cursor", str, description="From the previous page's next_cursor."),
]


def operation(version: str, name: str, tag: str, **kwargs):
    """The OpenAPI description of one version's copy of a shared handler: operation id ``<name>_<version>``."""
    return versioned_schema(operation_id=f"{name}_{version}", tags=[tag], **kwargs)


def write_operation(version: str, name: str, tag: str, *, success: dict, parameters=(), **kwargs):
    """``operation`` for a workflow write: it takes an ``Idempotency-Key`` (after ``parameters``) and may
    answer any of ``WRITE_ERRORS`` besides its ``success`` responses."""
    return operation(
        version,
        name,
        tag,
        parameters=[*parameters, IDEMPOTENCY_PARAMETER],
        responses={**success, **problem_responses(*WRITE_ERRORS)},
        **kwargs,
    )


def page_serializer(name: str, item_serializer) -> type:
    """The OpenAPI shape of ``paginate``'s answer for a list of ``item_serializer``."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "data": item_serializer(many=True),
            "next_cursor": serializers.CharField(allow_null=True, help_text="Pass as ?cursor= for the next page."),
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null on the last."),
        },
    )


def created(request, resource_id: str, body: dict) -> Response:
    """201 with ``Location`` naming the new record under the collection the request was posted to."""
    location = request.build_absolute_uri(f"{request.path.rstrip('/')}/{resource_id}")
    return Response(body, status=201, headers={"Location": location, **NO_STORE})


def new_id(prefix: str) -> str:
    """An opaque identifier that says what it names: ``visit-3f9c...``, ``share-...``."""
    return f"{prefix}-{secrets.token_hex(10)}"


def validated(serializer_class, data, **kwargs) -> dict:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def reference_id(value: str, resource_type: str, field: str | None = None) -> str:
    """The id in ``value``, which may be ``abc`` or ``<resource_type>/abc``; ``validation_error`` on
    ``field`` otherwise (without ``field``, from a serializer's ``validate_<field>``, which names it)."""
    value = (value or "").strip()
    if value.startswith(f"{resource_type}/"):
        value = value[len(resource_type) + 1 :]
    if not value or "/" in value or len(value) > 64:
        message = f"Give the {resource_type}'s id: abc or {resource_type}/abc."
        raise ValidationError({field: [message]} if field else [message])
    return value


def parse_limit(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ValidationError({"limit": [f"Give a whole number from 1 to {MAX_LIMIT}."]}) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError({"limit": [f"Give a whole number from 1 to {MAX_LIMIT}."]})
    return limit


def paginate(request, queryset, *, time_field: str, kind: str, serialize, on_page=None) -> Response:
    """One page of ``queryset``, newest first by (``time_field``, id), as
    ``{"data": [...], "next_cursor": ..., "next": <url>}``. The cursor is signed and names the list it
    belongs to (``kind``), so it cannot be forged or carried to another list; it is a keyset, never an
    offset, so rows added meanwhile neither repeat nor vanish. ``on_page(rows)`` sees the page's rows
    (to audit them) before they are serialized."""
    limit = parse_limit(request.query_params.get("limit"))
    raw_cursor = request.query_params.get("cursor")
    if raw_cursor:
        try:
            data = signing.loads(raw_cursor, salt=CURSOR_SALT)
        except signing.BadSignature:
            data = None
        if not isinstance(data, dict) or data.get("k") != kind:
            raise Problem("malformed_request", "The cursor is not one this server gave for this list; follow 'next'.")
        moment, last_id = data["t"], data["i"]
        queryset = queryset.filter(Q(**{f"{time_field}__lt": moment}) | Q(**{time_field: moment, "id__lt": last_id}))
    rows = list(queryset.order_by(f"-{time_field}", "-id")[: limit + 1])
    page, more = rows[:limit], len(rows) > limit
    if on_page is not None:
        on_page(page)
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = signing.dumps(
            {"k": kind, "t": getattr(last, time_field).isoformat(), "i": last.id}, salt=CURSOR_SALT
        )
    next_url = None
    if next_cursor:
        params = request.query_params.copy()
        params["cursor"] = next_cursor
        next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
    body = {"data": [serialize(row) for row in page], "next_cursor": next_cursor, "next": next_url}
    return Response(body, headers=NO_STORE)


def checked_access(request, *, patient_id: str, data_class: str, resource_type: str, action: str, resource_id=""):
    """``require_data_access``, with a refusal written to the access audit. Call it outside the
    transaction of the work (before ``idempotent``), so the refusal's record is not rolled back with it."""
    try:
        return require_data_access(request, patient_id=patient_id, data_class=data_class)
    except Problem as refusal:
        record_access(
            request,
            resource_type=resource_type,
            resource_id=resource_id,
            patient_id=patient_id,
            action=action,
            outcome="refused",
            refusal_code=refusal.code,
            consent_grant_id=getattr(refusal, "grant_id", None),
        )
        raise
