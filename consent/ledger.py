"""The hash chain of the consent ledger: how an event's hash is made, how one is appended, and how
a chain is verified."""

import hashlib
import json
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from consent.models import LedgerEvent, LedgerHead

GENESIS = "0" * 64


def event_hash(event: LedgerEvent) -> str:
    """SHA-256 of the event's content in canonical JSON, chained to the previous event's hash."""
    content = {
        "patient_id": event.patient_id,
        "sequence": event.sequence,
        "kind": event.kind,
        "grant_id": event.grant_id,
        "app_id": event.app_id,
        "purpose": event.purpose,
        "text_label": event.text_label,
        "scopes": list(event.scopes),
        "actor": event.actor,
        "channel": event.channel,
        "reason": event.reason,
        "occurred_at": event.occurred_at.isoformat(),
        "previous_hash": event.previous_hash,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def append(
    *,
    patient_id: str,
    kind: str,
    app,
    purpose: str,
    actor: str,
    channel: str,
    grant=None,
    text_label: str = "",
    scopes=(),
    reason: str = "",
) -> LedgerEvent:
    """Append one event to the patient's chain. Must run inside the transaction that made the change
    it records, so the history and the state never disagree."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ledger.append must run inside the transaction of the change it records")
    LedgerHead.objects.get_or_create(patient_id=patient_id)
    head = LedgerHead.objects.select_for_update().get(patient_id=patient_id)
    event = LedgerEvent(
        patient_id=patient_id,
        sequence=head.length,
        kind=kind,
        grant=grant,
        app=app,
        purpose=purpose,
        text_label=text_label,
        scopes=list(scopes),
        actor=actor,
        channel=channel,
        reason=reason,
        occurred_at=timezone.now(),
        previous_hash=head.last_hash or GENESIS,
    )
    event.hash = event_hash(event)
    event.save()
    head.length += 1
    head.last_hash = event.hash
    head.save(update_fields=["length", "last_hash"])
    return event


@dataclass(frozen=True)
class Problem:
    patient_id: str
    sequence: int | None
    event_id: int | None
    what: str

    def __str__(self):
        where = f"Patient/{self.patient_id}"
        if self.sequence is not None:
            where += f" event #{self.sequence} (id {self.event_id})"
        return f"{where}: {self.what}"


def verify_chain(patient_id: str, events, head: LedgerHead | None) -> Problem | None:
    """The first problem in one patient's chain, or None. ``events`` in sequence order."""
    previous = GENESIS
    expected_sequence = 0
    for event in events:
        if event.sequence != expected_sequence:
            what = (
                f"expected event #{expected_sequence} here; events were removed or reordered"
                if event.sequence > expected_sequence
                else "sequence out of order; events were reordered"
            )
            return Problem(patient_id, event.sequence, event.pk, what)
        if event.previous_hash != previous:
            return Problem(
                patient_id, event.sequence, event.pk, "does not chain to the event before it (reordered or removed)"
            )
        if event_hash(event) != event.hash:
            return Problem(patient_id, event.sequence, event.pk, "its content was changed after it was recorded")
        previous = event.hash
        expected_sequence += 1
    if head is None:
        if expected_sequence:
            return Problem(patient_id, None, None, "the chain has no head record")
        return None
    if head.length != expected_sequence or (head.last_hash or GENESIS) != previous:
        return Problem(
            patient_id,
            None,
            None,
            f"the chain holds {expected_sequence} events but {head.length} were recorded; the last were removed",
        )
    return None


def verify_all(*, chunk_size: int = 5000, heads_per_query: int = 1000):
    """Yield each chain's first problem, walking the ledger once in (patient, sequence) order.

    One patient's chain is held in memory at a time (chains are a patient's consent history: short);
    the ledger is streamed, and chain heads are read a thousand at a time, so a million events
    verify in minutes, not hours.
    """

    def chains():
        current, events = None, []
        for event in LedgerEvent.objects.order_by("patient_id", "sequence").iterator(chunk_size=chunk_size):
            if event.patient_id != current:
                if current is not None:
                    yield current, events
                current, events = event.patient_id, []
            events.append(event)
        if current is not None:
            yield current, events

    pending = []

    def flush():
        heads = LedgerHead.objects.in_bulk([patient_id for patient_id, _ in pending])
        for patient_id, events in pending:
            problem = verify_chain(patient_id, events, heads.get(patient_id))
            if problem:
                yield problem
        pending.clear()

    for chain in chains():
        pending.append(chain)
        if len(pending) >= heads_per_query:
            yield from flush()
    yield from flush()
    emptied = LedgerHead.objects.filter(length__gt=0).filter(
        ~Exists(LedgerEvent.objects.filter(patient_id=OuterRef("pk")))
    )
    for head in emptied:
        yield Problem(head.patient_id, None, None, f"{head.length} events were recorded and all were removed")
