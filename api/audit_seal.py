"""Sealing the access audit into hash-chained batches, and verifying the chain.

Writers (``api.audit.record_access``) only insert ``AccessEvent`` rows, in the transaction of the
access they record, and never wait on anything here. Every minute a beat task seals the events
written since the last batch into one ``AuditBatch``:

- ``events_digest``: SHA-256 over each event's content hash (``event_hash``), in id order;
- ``hash``: SHA-256 over the batch's canonical content, which includes ``previous_hash``, the
  previous batch's ``hash`` (``GENESIS`` for the first), so the batches form one chain.

Ids are allocated when a row is inserted, not when its transaction commits, so an event with a
lower id can become visible after one with a higher id. Sealing therefore only takes events older
than a settle delay (``ACCESS_AUDIT_SETTLE_SECONDS``, 30 s by default), and only a contiguous run
of them in id order: it stops before the first event that is still too young. An access whose
transaction stays open longer than the delay is committed below a sealed range and is reported by
``manage.py verify_audit`` (as it must be: it is indistinguishable from an inserted row).

One sealer at a time: each seal runs in a transaction holding a PostgreSQL advisory lock
(``pg_advisory_xact_lock``), so a second sealer (two beat schedulers, a manual run) waits, then
reads the new last batch and seals only the events after it. Writers never take that lock: it is
not a row or table lock, only sealers ask for it. SQLite serialises writing transactions by itself
(``transaction_mode`` IMMEDIATE). Whatever the database, ``AuditBatch.sequence`` is unique, so two
sealers that somehow raced could not both extend the chain: the loser's insert fails and is dropped.
"""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from api.models import AccessEvent, AuditBatch

GENESIS = "0" * 64
SETTLE_SECONDS = 30
BATCH_SIZE = 10_000
# pg_advisory_xact_lock's key: any 64-bit integer no other part of the project uses ("auditsea").
LOCK_KEY = int.from_bytes(b"auditsea", "big") >> 1
# How long a sealer waits for another to finish before this run gives up (the next run catches up).
LOCK_TIMEOUT = "60s"

log = structlog.get_logger("api.audit")


# --- hashes ----------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _sha256_of(content: dict) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def event_hash(event: AccessEvent) -> str:
    """SHA-256 of the event's whole content (its id included) in canonical JSON. Computed from the
    row as the database returns it, both when sealing and when verifying."""
    return _sha256_of(
        {
            "id": event.pk,
            "occurred_at": _iso(event.occurred_at),
            "app_id": event.app_id,
            "client_id": event.client_id,
            "organization_id": event.organization_id,
            "user_id": event.user_id,
            "patient_id": event.patient_id,
            "token_id": event.token_id,
            "resource_type": event.resource_type,
            "resource_id": event.resource_id,
            "action": event.action,
            "outcome": event.outcome,
            "refusal_code": event.refusal_code,
            "consent_grant_id": event.consent_grant_id,
            "environment": event.environment,
            "ip": None if event.ip is None else str(event.ip),
            "user_agent": event.user_agent,
            "correlation_id": event.correlation_id,
        }
    )


def batch_hash(batch: AuditBatch) -> str:
    """SHA-256 of the batch's canonical content: the previous batch's hash, the events' digest,
    their first and last ids and count, and the batch's own sequence and sealing time (so neither
    can be edited unnoticed either)."""
    return _sha256_of(
        {
            "sequence": batch.sequence,
            "previous_hash": batch.previous_hash,
            "events_digest": batch.events_digest,
            "first_event_id": batch.first_event_id,
            "last_event_id": batch.last_event_id,
            "event_count": batch.event_count,
            "sealed_at": _iso(batch.sealed_at),
        }
    )


class _Digest:
    """The running ``events_digest`` of a run of events, with its first and last ids and count."""

    def __init__(self):
        self._sha = hashlib.sha256()
        self.count = 0
        self.first_id: int | None = None
        self.last_id: int | None = None

    def add(self, event: AccessEvent) -> None:
        self._sha.update(event_hash(event).encode())
        if self.first_id is None:
            self.first_id = event.pk
        self.last_id = event.pk
        self.count += 1

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


# --- sealing ---------------------------------------------------------------------------------


def _lock_sealing() -> None:
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])


def audit_batch_seal(
    *, now: datetime | None = None, settle_seconds: int | None = None, batch_size: int = BATCH_SIZE
) -> AuditBatch | None:
    """Seal the next run of settled events into one batch; ``None`` when there is nothing to seal
    (or another sealer won a race the lock should have prevented)."""
    now = now or timezone.now()
    if settle_seconds is None:
        settle_seconds = getattr(settings, "ACCESS_AUDIT_SETTLE_SECONDS", SETTLE_SECONDS)
    cutoff = now - timedelta(seconds=settle_seconds)
    try:
        with transaction.atomic():
            _lock_sealing()
            last = AuditBatch.objects.order_by("-sequence").first()
            candidates = AccessEvent.objects.filter(pk__gt=last.last_event_id if last else 0).order_by("pk")
            # A contiguous run only: stop before the first event still inside the settle delay,
            # even if later ids (their clocks read a moment earlier) are already old enough.
            too_young = candidates.filter(occurred_at__gt=cutoff).values_list("pk", flat=True).first()
            if too_young is not None:
                candidates = candidates.filter(pk__lt=too_young)
            digest = _Digest()
            for event in candidates[:batch_size].iterator(chunk_size=2000):
                digest.add(event)
            if not digest.count:
                return None
            batch = AuditBatch(
                sequence=last.sequence + 1 if last else 1,
                first_event_id=digest.first_id,
                last_event_id=digest.last_id,
                event_count=digest.count,
                events_digest=digest.hexdigest(),
                previous_hash=last.hash if last else GENESIS,
                sealed_at=timezone.now(),
            )
            batch.hash = batch_hash(batch)
            batch.save()
    except IntegrityError:
        log.warning("audit_seal_lost_race")
        return None
    # The log is the chain's external anchor: removing the newest batches (which nothing inside the
    # database can reveal) shows as a mismatch with the hash logged here.
    log.info(
        "audit_batch_sealed",
        sequence=batch.sequence,
        first_event_id=batch.first_event_id,
        last_event_id=batch.last_event_id,
        event_count=batch.event_count,
        hash=batch.hash,
    )
    return batch


def audit_seal_pending(*, max_batches: int = 10, **options) -> list[AuditBatch]:
    """Seal batch after batch (each its own transaction) until nothing settled is left, at most
    ``max_batches`` in one run, so a backlog is caught up without one endless run."""
    sealed = []
    while len(sealed) < max_batches:
        batch = audit_batch_seal(**options)
        if batch is None:
            break
        sealed.append(batch)
    return sealed


# --- verifying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    sequence: int | None
    event_id: int | None
    what: str

    def __str__(self):
        where = f"batch #{self.sequence}" if self.sequence is not None else "the audit"
        if self.event_id is not None:
            where += f", event {self.event_id}"
        return f"{where}: {self.what}"


@dataclass
class Tally:
    """What a verification walked through, filled in as it goes."""

    batches: int = 0
    events: int = 0
    last_sequence: int | None = None
    last_hash: str = ""
    unsealed: int = 0
    oldest_unsealed: datetime | None = None


class _Peekable:
    def __init__(self, iterator):
        self._iterator = iterator
        self._next = next(iterator, None)

    def peek(self):
        return self._next

    def take(self):
        current, self._next = self._next, next(self._iterator, None)
        return current


def _range_problem(batch: AuditBatch, found: _Digest) -> Problem | None:
    """The first difference between a batch and the events now in its id range."""
    span = f"ids {batch.first_event_id}-{batch.last_event_id}"
    if found.count < batch.event_count:
        if found.first_id != batch.first_event_id:
            return Problem(batch.sequence, batch.first_event_id, "the batch's first event was removed")
        if found.last_id != batch.last_event_id:
            return Problem(batch.sequence, batch.last_event_id, "the batch's last event was removed")
        return Problem(
            batch.sequence,
            None,
            f"{found.count} of its {batch.event_count} sealed events remain in {span}: events were removed",
        )
    if found.count > batch.event_count:
        return Problem(
            batch.sequence,
            None,
            f"{found.count} events lie in {span} but {batch.event_count} were sealed: "
            "events were inserted into its range",
        )
    if found.hexdigest() != batch.events_digest:
        return Problem(batch.sequence, None, f"the events in {span} no longer match its digest: an event was changed")
    return None


def verify_all(tally: Tally | None = None, *, chunk_size: int = 5000) -> Iterator[Problem]:
    """Yield every problem in the chain, walking batches in sequence order and events in id order
    once, side by side. ``tally`` (if given) is filled with what was verified and what is not
    sealed yet. Batches sealed while this runs are left for the next run."""
    tally = tally if tally is not None else Tally()
    bounds = AuditBatch.objects.aggregate(top=Max("sequence"), end=Max("last_event_id"))
    top, end = bounds["top"] or 0, bounds["end"] or 0
    batches = AuditBatch.objects.filter(sequence__lte=top).order_by("sequence").iterator(chunk_size=1000)
    events = _Peekable(AccessEvent.objects.filter(pk__lte=end).order_by("pk").iterator(chunk_size=chunk_size))
    expected, previous_hash, previous_last = 1, GENESIS, 0
    for batch in batches:
        if batch.sequence != expected:
            yield Problem(
                batch.sequence,
                None,
                f"expected batch #{expected} here; batches were removed or reordered"
                if batch.sequence > expected
                else "sequence out of order; batches were reordered",
            )
        elif batch.previous_hash != previous_hash:
            yield Problem(
                batch.sequence, None, "does not chain to the batch before it (reordered, removed or rewritten)"
            )
        if batch_hash(batch) != batch.hash:
            yield Problem(batch.sequence, None, "the batch record was changed after it was sealed")
        if batch.first_event_id <= previous_last or batch.first_event_id > batch.last_event_id:
            yield Problem(batch.sequence, None, "its event range overlaps the batch before it or is empty")
        # Events between the previous batch and this one were not visible when this one was sealed.
        while (event := events.peek()) is not None and event.pk < batch.first_event_id:
            events.take()
            if event.pk > previous_last:
                yield Problem(
                    batch.sequence,
                    event.pk,
                    f"lies inside the sealed range (before batch #{batch.sequence}) but was never sealed: "
                    "inserted afterwards, or committed after the settle delay",
                )
        found = _Digest()
        while (event := events.peek()) is not None and event.pk <= batch.last_event_id:
            found.add(events.take())
        if (problem := _range_problem(batch, found)) is not None:
            yield problem
        tally.batches += 1
        tally.events += found.count
        tally.last_sequence, tally.last_hash = batch.sequence, batch.hash
        expected, previous_hash = batch.sequence + 1, batch.hash
        previous_last = max(previous_last, batch.last_event_id)
    unsealed = AccessEvent.objects.filter(pk__gt=end)
    tally.unsealed = unsealed.count()
    tally.oldest_unsealed = unsealed.order_by("pk").values_list("occurred_at", flat=True).first()
