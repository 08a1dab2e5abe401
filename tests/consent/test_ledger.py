"""The consent ledger: append-only in the ORM and (on PostgreSQL) in the database, and every edit,
removal or reordering that gets past both is caught by ``manage.py verify_ledger``."""

import itertools
import threading
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction

from consent import ledger
from consent.models import AppendOnlyError, ConsentGrant, LedgerEvent, LedgerHead
from consent.services import consent_revoke
from tests.consent.helpers import PATIENT, grant
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db

TRIGGER = "consent_ledger_append_only"


@contextmanager
def trigger_disabled():
    """What an attacker with the table owner's power does first on PostgreSQL (a no-op elsewhere)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        disable(cursor)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            enable(cursor)


def disable(cursor) -> None:
    # The test's transaction holds deferred foreign-key checks, which ALTER TABLE will not wait on.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute(f"ALTER TABLE consent_ledgerevent DISABLE TRIGGER {TRIGGER}")


def enable(cursor) -> None:
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute(f"ALTER TABLE consent_ledgerevent ENABLE TRIGGER {TRIGGER}")
    cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def raw(sql: str, params=()) -> None:
    """Tamper with the table behind the ORM's back."""
    with trigger_disabled(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def verify() -> str:
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    return out.getvalue()


def tampered(expected: str, *args) -> CommandError:
    err = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("verify_ledger", *args, stderr=err)
    assert caught.value.returncode == 1
    assert expected in str(caught.value), str(caught.value)
    assert err.getvalue().startswith("TAMPERED ")
    return caught.value


@pytest.fixture
def history():
    """One patient's history of four events: granted, superseded, granted, revoked."""
    app = AppFactory()
    first = grant(app)
    second = grant(app, scopes=["patient/Observation.rs", "patient/Patient.rs"])
    consent_revoke(grant=second, actor="user:1", channel="consent_screen", reason="No longer needed.")
    assert ConsentGrant.objects.get(pk=first.pk).status == "superseded"
    events = list(LedgerEvent.objects.filter(patient_id=PATIENT).order_by("sequence"))
    assert [e.kind for e in events] == ["granted", "superseded", "granted", "revoked"]
    return events


# --- a healthy ledger ------------------------------------------------------------------------------


def test_a_healthy_ledger_passes_with_exit_zero_and_the_count(history):
    grant(AppFactory(), patient_id="456")
    assert verify().strip() == "The consent ledger is intact: 5 events verified."


def test_an_empty_ledger_passes():
    assert "intact: 0 events verified" in verify()


def test_each_event_chains_to_the_one_before_it(history):
    assert history[0].previous_hash == ledger.GENESIS
    for before, after in itertools.pairwise(history):
        assert after.previous_hash == before.hash
        assert after.sequence == before.sequence + 1
    head = LedgerHead.objects.get(pk=PATIENT)
    assert (head.length, head.last_hash) == (4, history[-1].hash)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_appending_outside_the_change_s_transaction_is_refused():
    app = AppFactory()
    with pytest.raises(RuntimeError, match="inside the transaction"):
        ledger.append(patient_id=PATIENT, kind="denied", app=app, purpose="app-access", actor="system", channel="api")
    assert not LedgerEvent.objects.exists()


# --- the ORM refuses --------------------------------------------------------------------------------


def test_the_orm_refuses_to_save_an_existing_event(history):
    event = history[1]
    event.reason = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    fresh = LedgerEvent.objects.get(pk=event.pk)
    with pytest.raises(AppendOnlyError):
        fresh.save(update_fields=["reason"])
    assert LedgerEvent.objects.get(pk=event.pk).reason == "Replaced by a new consent."


def test_the_orm_refuses_to_delete_an_event(history):
    with pytest.raises(AppendOnlyError):
        history[0].delete()


def test_the_orm_refuses_queryset_update_and_delete(history):
    with pytest.raises(AppendOnlyError):
        LedgerEvent.objects.filter(patient_id=PATIENT).update(reason="x")
    with pytest.raises(AppendOnlyError):
        LedgerEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        LedgerEvent.objects.bulk_update(history, ["reason"])
    assert LedgerEvent.objects.count() == 4
    assert "intact: 4 events" in verify()


# --- tampering past the ORM is caught ----------------------------------------------------------------


def test_an_event_edited_with_raw_sql_is_caught_naming_it(history):
    target = history[2]
    raw("UPDATE consent_ledgerevent SET reason='x' WHERE id=%s", [target.pk])
    error = tampered(f"Patient/{PATIENT} event #2 (id {target.pk}): its content was changed")
    assert "failed verification" in str(error)


def test_an_edited_hash_is_caught_at_the_next_event(history):
    # Rewriting an event together with its own hash still breaks the link the next event holds.
    target = history[1]
    target.reason = "x"
    raw(
        "UPDATE consent_ledgerevent SET reason='x', hash=%s WHERE id=%s",
        [ledger.event_hash(target), target.pk],
    )
    tampered(f"event #2 (id {history[2].pk}): does not chain to the event before it")


def test_a_removed_middle_event_is_caught(history):
    raw("DELETE FROM consent_ledgerevent WHERE id=%s", [history[1].pk])
    tampered(f"event #2 (id {history[2].pk}): expected event #1 here; events were removed or reordered")


def test_a_removed_last_event_is_caught(history):
    raw("DELETE FROM consent_ledgerevent WHERE id=%s", [history[-1].pk])
    tampered(f"Patient/{PATIENT}: the chain holds 3 events but 4 were recorded; the last were removed")


def test_a_whole_removed_chain_is_caught(history):
    raw("DELETE FROM consent_ledgerevent WHERE patient_id=%s", [PATIENT])
    tampered(f"Patient/{PATIENT}: 4 events were recorded and all were removed")


def test_two_swapped_events_are_caught(history):
    one, two = history[1], history[2]
    raw("UPDATE consent_ledgerevent SET sequence=1000 WHERE id=%s", [one.pk])
    raw("UPDATE consent_ledgerevent SET sequence=1 WHERE id=%s", [two.pk])
    raw("UPDATE consent_ledgerevent SET sequence=2 WHERE id=%s", [one.pk])
    tampered(f"event #1 (id {two.pk})")


def test_all_reports_every_broken_chain(history):
    grant(AppFactory(), patient_id="456")
    other = LedgerEvent.objects.get(patient_id="456")
    raw("UPDATE consent_ledgerevent SET reason='x' WHERE id IN (%s, %s)", [history[0].pk, other.pk])
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("verify_ledger", "--all", stderr=err)
    assert err.getvalue().count("TAMPERED") == 2


# --- PostgreSQL: the database itself refuses ----------------------------------------------------------


def _trigger_enabled() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = %s", [TRIGGER])
        return cursor.fetchone()[0] == "O"


@pytest.mark.postgres
def test_postgres_refuses_a_raw_update_and_delete(history):
    target = history[1]
    for sql in (
        "UPDATE consent_ledgerevent SET reason='x' WHERE id=%s",
        "DELETE FROM consent_ledgerevent WHERE id=%s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [target.pk])
    assert LedgerEvent.objects.get(pk=target.pk).reason == "Replaced by a new consent."
    assert "intact: 4 events" in verify()


@pytest.mark.postgres
def test_postgres_with_the_trigger_disabled_an_edit_is_still_caught(history):
    target = history[3]
    with connection.cursor() as cursor:
        disable(cursor)  # ALTER TABLE consent_ledgerevent DISABLE TRIGGER consent_ledger_append_only
        try:
            cursor.execute("UPDATE consent_ledgerevent SET reason='x' WHERE id=%s", [target.pk])
        finally:
            enable(cursor)
    assert _trigger_enabled()
    tampered(f"event #3 (id {target.pk}): its content was changed")


# --- two revocations at once --------------------------------------------------------------------------


def _one_revocation_recorded(revoked: ConsentGrant) -> None:
    revoked.refresh_from_db()
    assert revoked.status == "revoked"
    kinds = list(LedgerEvent.objects.filter(grant=revoked).order_by("sequence").values_list("kind", flat=True))
    assert kinds == ["granted", "revoked"]
    assert "intact: 2 events verified" in verify()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_simultaneous_revocations_leave_exactly_one():
    target = grant(AppFactory())
    barrier = threading.Barrier(2)
    outcomes, failures = [], []

    def revoke(n: int):
        try:
            barrier.wait(timeout=10)
            outcomes.append(consent_revoke(grant=target, actor=f"user:{n}", channel="consent_screen"))
        except Exception as exc:  # reported below, in the test's thread
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=revoke, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures
    assert sorted(outcomes) == [False, True]
    _one_revocation_recorded(target)


def test_a_second_revocation_changes_nothing():
    """The sequential twin of the test above, for every database: the second revocation finds the
    grant no longer active under its row lock and records nothing."""
    target = grant(AppFactory())
    assert consent_revoke(grant=target, actor="user:1", channel="consent_screen") is True
    assert consent_revoke(grant=target, actor="user:2", channel="api") is False
    _one_revocation_recorded(target)
