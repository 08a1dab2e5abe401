"""Idempotent POSTs, after the IETF draft "The Idempotency-Key HTTP Header Field".

A view wraps the work of a POST in ``idempotent(request, work)``. The app's ``Idempotency-Key``
names one operation for 24 hours (``IDEMPOTENCY_KEY_HOURS``):

- no key on an endpoint that requires one: 400 ``idempotency_key_required``;
- a key never seen: the record is claimed (committed at once, so a racing twin sees it), the work
  runs in a transaction, and its 2xx response is stored in that same transaction;
- the same key again after that: the stored status and body, with ``Idempotent-Replayed: true``;
- the same key while the first attempt still runs: 409 ``idempotency_request_in_progress``;
- the same key with another method, path or body: 422 ``idempotency_key_reused``.

Only a success is stored. When the work fails (a refusal, a validation error, a crash) the claim is
released, so a retry is judged afresh: a request refused because the patient had not consented yet
must succeed once they have. A claim left by a process that died is taken over after
``IDEMPOTENCY_CLAIM_SECONDS``.
"""

import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from api.models import IdempotencyRecord
from api.problems import Problem

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# Response headers a replay repeats (the body and status are always repeated).
KEPT_HEADERS = ("Location", "Content-Location")


def _key_from(request, *, required: bool) -> str | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        if required:
            raise Problem(
                "idempotency_key_required",
                f"{request.method} {request.path} needs an {HEADER} header, so that a retry never repeats the work.",
            )
        return None
    # The draft's value is a Structured Field string ("..."); a bare token is accepted too.
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or not all(32 < ord(c) < 127 for c in key):
        raise Problem(
            "malformed_request",
            f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters without spaces "
            "(a UUID is ideal).",
        )
    return key


def fingerprint_of(method: str, path: str, body) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method}\n{path}\n{canonical}".encode()).hexdigest()


def _fingerprint(request) -> str:
    try:
        body = request.data
    except Exception:  # an unreadable body fails in the view itself, with its own problem
        body = None
    return fingerprint_of(request.method, request.path, body)


def _replay(record: IdempotencyRecord) -> Response:
    headers = {**record.response_headers, REPLAYED_HEADER: "true"}
    return Response(record.response_body, status=record.response_status, headers=headers)


def _refuse_existing(record: IdempotencyRecord, fingerprint: str, request) -> Response:
    if record.fingerprint != fingerprint or record.method != request.method or record.path != request.path:
        raise Problem(
            "idempotency_key_reused",
            f"This {HEADER} was first sent with {record.method} {record.path} and another body "
            f"on {record.created_at:%Y-%m-%d %H:%M:%S} UTC.",
        )
    if record.state == IdempotencyRecord.State.COMPLETED:
        return _replay(record)
    raise Problem(
        "idempotency_request_in_progress",
        f"The first request with this {HEADER} is still being processed.",
        headers={"Retry-After": "1"},
    )


def _claim(app, key: str, fingerprint: str, request):
    """Our new claim on ``key``, or the response owed to a retry (a replay); raises a refusal."""
    now = timezone.now()
    try:
        with transaction.atomic():
            return (
                IdempotencyRecord.objects.create(
                    app=app,
                    key=key,
                    method=request.method,
                    path=request.path,
                    fingerprint=fingerprint,
                    created_at=now,
                    expires_at=now + timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS),
                ),
                None,
            )
    except IntegrityError:
        pass
    record = IdempotencyRecord.objects.filter(app=app, key=key).first()
    if record is None or record.expires_at <= now:
        # Gone since (released, or purged after expiry): an expired key is a new key.
        IdempotencyRecord.objects.filter(app=app, key=key, expires_at__lte=now).delete()
        return _claim(app, key, fingerprint, request)
    abandoned = now - timedelta(seconds=settings.IDEMPOTENCY_CLAIM_SECONDS)
    if (
        record.state == IdempotencyRecord.State.IN_PROGRESS
        and record.fingerprint == fingerprint
        and record.created_at <= abandoned
    ):
        taken = IdempotencyRecord.objects.filter(
            pk=record.pk, state=IdempotencyRecord.State.IN_PROGRESS, created_at__lte=abandoned
        ).update(created_at=now)
        if taken:
            record.created_at = now
            return record, None
    return None, _refuse_existing(record, fingerprint, request)


def idempotent(request, work, *, required: bool = True) -> Response:
    """Run ``work()`` (which returns a DRF ``Response``) at most once per ``Idempotency-Key``."""
    key = _key_from(request, required=required)
    if key is None:
        with transaction.atomic():
            return work()
    app = request.auth_context.app
    record, replay = _claim(app, key, _fingerprint(request), request)
    if replay is not None:
        return replay
    try:
        with transaction.atomic():
            response = work()
            if 200 <= response.status_code < 300:
                IdempotencyRecord.objects.filter(pk=record.pk).update(
                    state=IdempotencyRecord.State.COMPLETED,
                    response_status=response.status_code,
                    response_body=json.loads(json.dumps(response.data, default=str)),
                    response_headers={name: response[name] for name in KEPT_HEADERS if response.has_header(name)},
                    completed_at=timezone.now(),
                )
            else:
                IdempotencyRecord.objects.filter(pk=record.pk).delete()
    except BaseException:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        raise
    return response


def purge_expired(*, now=None) -> int:
    """Forget keys past their 24 hours (a beat task calls this)."""
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
