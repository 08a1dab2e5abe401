"""The access audit: ``record_access`` writes one row per access; the beat task seals settled rows
into hash-chained batches; ``manage.py verify_audit`` catches every edit, removal, insertion or
reordering that gets past the ORM (and, on PostgreSQL, past the trigger); admins and partners read
and export it."""

import csv
import hashlib
import io
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.http import urlencode
from oauth2_provider.models import AccessToken

from api import audit_seal
from api.audit import record_access
from api.audit_export import ADMIN_COLUMNS, PARTNER_COLUMNS
from api.audit_seal import GENESIS, audit_batch_seal, audit_seal_pending, batch_hash, event_hash
from api.authentication import build_auth_context, token_checksum
from api.models import AccessEvent, AuditBatch
from api.tasks import seal_access_audit
from partners.models import Membership
from tests.api.conftest import make_token
from tests.factories import AppFactory, UserFactory, member

pytestmark = pytest.mark.django_db

TRIGGERS = {"api_accessevent": "api_accessevent_append_only", "api_auditbatch": "api_auditbatch_append_only"}


# --- helpers ------------------------------------------------------------------------------------


def event(app=None, *, age: timedelta = timedelta(minutes=5), **fields) -> AccessEvent:
    """One access event, by default old enough to be sealed."""
    values = {
        "occurred_at": timezone.now() - age,
        "action": "read",
        "outcome": AccessEvent.Outcome.ALLOWED,
        "resource_type": "Patient",
        "resource_id": "123",
        "patient_id": "123",
        "environment": "sandbox",
        "correlation_id": "req-0000000000",
    }
    if app is not None:
        values.update(app_id=app.pk, client_id=app.client_id, organization_id=app.organization_id)
    values.update(fields)
    return AccessEvent.objects.create(**values)


def events(n: int, app=None, **fields) -> list[AccessEvent]:
    return [event(app, resource_id=str(i), **fields) for i in range(n)]


def verify() -> str:
    out = StringIO()
    call_command("verify_audit", stdout=out)
    return out.getvalue()


def tampered(expected: str, *args) -> CommandError:
    err = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("verify_audit", *args, stderr=err)
    assert caught.value.returncode == 1
    assert expected in str(caught.value), str(caught.value)
    assert "failed verification" in str(caught.value)
    assert err.getvalue().startswith("TAMPERED ")
    return caught.value


@contextmanager
def triggers_disabled():
    """What an attacker with the table owner's power does first on PostgreSQL (a no-op elsewhere)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        set_triggers(cursor, "DISABLE")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            set_triggers(cursor, "ENABLE")


def set_triggers(cursor, state: str) -> None:
    # The test's transaction holds deferred foreign-key checks, which ALTER TABLE will not wait on.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for table, trigger in TRIGGERS.items():
        cursor.execute(f"ALTER TABLE {table} {state} TRIGGER {trigger}")
    if state == "ENABLE":
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def raw(sql: str, params=()) -> None:
    """Tamper with the tables behind the ORM's back."""
    with triggers_disabled(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def insert_event_with_id(pk: int) -> None:
    raw(
        "INSERT INTO api_accessevent (id, occurred_at, client_id, patient_id, token_id, resource_type, resource_id,"
        " action, outcome, refusal_code, environment, user_agent, correlation_id)"
        " VALUES (%s, %s, '', '123', '', 'Patient', '123', 'read', 'allowed', '', 'sandbox', '', 'forged')",
        [pk, timezone.now() - timedelta(minutes=5)],
    )


@pytest.fixture
def sealed():
    """Two sealed batches (3 events, then 2) and one event not sealed yet."""
    first = events(3)
    batch1 = audit_batch_seal()
    second = events(2)
    batch2 = audit_batch_seal()
    young = event(age=timedelta(0))
    assert audit_batch_seal() is None
    return {"events": first + second, "batches": [batch1, batch2], "young": young}


# --- record_access -------------------------------------------------------------------------------


def _api_request(app, user, **meta):
    raw_token = make_token(app, "launch/patient patient/Patient.rs", user=user)
    request = RequestFactory().get("/fhir/r4/Patient/123", **meta)
    request.request_id = "corr-1234567890"
    request.auth_context = build_auth_context(AccessToken.objects.get(token_checksum=token_checksum(raw_token)))
    return request, raw_token


def test_record_access_writes_a_row_with_who_what_and_where():
    app = AppFactory()
    patient = UserFactory(fhir_patient_id="123")
    request, raw_token = _api_request(app, patient, HTTP_USER_AGENT="HealthApp/2.1", REMOTE_ADDR="203.0.113.9")
    record_access(
        request, resource_type="Patient", resource_id="123", patient_id="123", action="read", outcome="allowed"
    )
    row = AccessEvent.objects.get()
    assert row.correlation_id == "corr-1234567890"
    assert row.token_id == token_checksum(raw_token)[:16]
    assert raw_token not in {row.token_id, row.correlation_id, row.user_agent}
    assert (row.ip, row.user_agent) == ("203.0.113.9", "HealthApp/2.1")
    assert (row.app_id, row.client_id, row.organization_id, row.user_id) == (
        app.pk,
        app.client_id,
        app.organization_id,
        patient.pk,
    )
    assert (row.resource_type, row.resource_id, row.patient_id, row.action, row.outcome) == (
        "Patient",
        "123",
        "123",
        "read",
        "allowed",
    )
    assert timezone.now() - row.occurred_at < timedelta(seconds=10)


def test_record_access_records_a_refusal_and_bounds_the_user_agent():
    request, _ = _api_request(AppFactory(), None, HTTP_USER_AGENT="x" * 1000)
    record_access(
        request,
        resource_type="Observation",
        patient_id="456",
        action="search",
        outcome="refused",
        refusal_code="no_consent",
    )
    row = AccessEvent.objects.get()
    assert (row.outcome, row.refusal_code, row.user_id) == ("refused", "no_consent", None)
    assert len(row.user_agent) == 300


def test_the_forwarded_address_counts_only_behind_a_trusted_proxy(settings):
    meta = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 198.51.100.7"}
    request, _ = _api_request(AppFactory(), None, **meta)
    settings.TRUST_X_FORWARDED_FOR = False
    record_access(request, resource_type="Patient", action="read", outcome="allowed")
    settings.TRUST_X_FORWARDED_FOR = True
    record_access(request, resource_type="Patient", action="read", outcome="allowed")
    assert list(AccessEvent.objects.values_list("ip", flat=True)) == ["10.0.0.2", "198.51.100.7"]


def test_events_are_append_only_in_the_orm():
    row = event()
    row.patient_id = "999"
    with pytest.raises(PermissionError):
        row.save()
    with pytest.raises(PermissionError):
        row.delete()
    with pytest.raises(PermissionError):
        AccessEvent.objects.filter(pk=row.pk).update(patient_id="999")
    with pytest.raises(PermissionError):
        AccessEvent.objects.all().delete()
    assert AccessEvent.objects.get(pk=row.pk).patient_id == "123"


# --- sealing -------------------------------------------------------------------------------------


def test_sealing_makes_one_chained_batch_over_the_settled_events():
    made = events(3)
    batch = audit_batch_seal()
    assert batch is not None
    assert (batch.sequence, batch.first_event_id, batch.last_event_id, batch.event_count) == (
        1,
        made[0].pk,
        made[-1].pk,
        3,
    )
    assert batch.previous_hash == GENESIS
    stored = [AccessEvent.objects.get(pk=e.pk) for e in made]
    expected_digest = hashlib.sha256("".join(event_hash(e) for e in stored).encode()).hexdigest()
    assert batch.events_digest == expected_digest
    assert AuditBatch.objects.get().hash == batch.hash == batch_hash(AuditBatch.objects.get())


def test_a_second_run_with_no_new_events_makes_no_batch():
    events(2)
    assert audit_batch_seal() is not None
    assert audit_batch_seal() is None
    assert audit_seal_pending() == []
    assert AuditBatch.objects.count() == 1


def test_the_next_batch_chains_to_the_previous_one():
    events(2)
    first = audit_batch_seal()
    events(2)
    second = audit_batch_seal()
    assert (second.sequence, second.previous_hash) == (2, first.hash)
    assert second.first_event_id > first.last_event_id


def test_events_inside_the_settle_delay_wait_for_the_next_run():
    old = events(2)
    young = event(age=timedelta(seconds=5))
    batch = audit_batch_seal()
    assert (batch.first_event_id, batch.last_event_id) == (old[0].pk, old[-1].pk)
    assert audit_batch_seal() is None
    later = audit_batch_seal(now=timezone.now() + timedelta(seconds=31))
    assert (later.first_event_id, later.last_event_id, later.event_count) == (young.pk, young.pk, 1)


def test_sealing_stops_at_the_first_young_event_even_if_later_ids_are_older():
    """Ids follow insertion, clocks are read a moment before: the sealed run stays contiguous."""
    first = event()
    young = event(age=timedelta(seconds=5))
    older_clock = event(age=timedelta(minutes=10))
    batch = audit_batch_seal()
    assert (batch.first_event_id, batch.last_event_id) == (first.pk, first.pk)
    later = audit_batch_seal(now=timezone.now() + timedelta(minutes=1))
    assert (later.first_event_id, later.last_event_id) == (young.pk, older_clock.pk)
    assert "2 batches" in verify()


def test_the_settle_delay_is_a_setting(settings):
    settings.ACCESS_AUDIT_SETTLE_SECONDS = 600
    event(age=timedelta(minutes=5))
    assert audit_batch_seal() is None
    settings.ACCESS_AUDIT_SETTLE_SECONDS = 60
    assert audit_batch_seal() is not None


def test_a_backlog_is_sealed_in_bounded_batches():
    made = events(5)
    batches = audit_seal_pending(batch_size=2)
    assert [(b.first_event_id, b.last_event_id, b.event_count) for b in batches] == [
        (made[0].pk, made[1].pk, 2),
        (made[2].pk, made[3].pk, 2),
        (made[4].pk, made[4].pk, 1),
    ]
    assert "5 events in 3 batches verified" in verify()


def test_the_beat_task_seals_and_is_scheduled_every_minute():
    events(3)
    assert seal_access_audit.delay().get() == 3
    assert seal_access_audit() == 0
    entry = settings.CELERY_BEAT_SCHEDULE["seal-access-audit"]
    assert (entry["task"], entry["schedule"]) == ("api.tasks.seal_access_audit", 60.0)


# --- verify: a healthy chain ----------------------------------------------------------------------


def test_a_healthy_chain_passes_with_the_counts(sealed):
    out = verify()
    assert "The access audit is intact: 5 events in 2 batches verified; 1 event not sealed yet." in out
    assert f"Last batch: #2, hash {sealed['batches'][1].hash}." in out


def test_an_empty_audit_passes():
    assert "intact: 0 events in 0 batches verified; 0 events not sealed yet." in verify()


# --- verify: tampering is caught ------------------------------------------------------------------


def test_an_event_edited_with_raw_sql_is_caught(sealed):
    target = sealed["events"][1]
    raw("UPDATE api_accessevent SET patient_id='999' WHERE id=%s", [target.pk])
    batch = sealed["batches"][0]
    tampered(
        f"batch #1: the events in ids {batch.first_event_id}-{batch.last_event_id} no longer match its digest: "
        "an event was changed"
    )


def test_an_edit_in_a_later_batch_is_named_by_its_batch(sealed):
    raw("UPDATE api_accessevent SET outcome='refused' WHERE id=%s", [sealed["events"][4].pk])
    tampered("batch #2: the events in ids")


def test_a_deleted_event_inside_a_sealed_range_is_caught(sealed):
    middle = sealed["events"][1]
    raw("DELETE FROM api_accessevent WHERE id=%s", [middle.pk])
    tampered("batch #1: 2 of its 3 sealed events remain in ids")


def test_a_deleted_first_event_is_named(sealed):
    first = sealed["events"][0]
    raw("DELETE FROM api_accessevent WHERE id=%s", [first.pk])
    tampered(f"batch #1, event {first.pk}: the batch's first event was removed")


def test_a_deleted_last_sealed_event_is_named(sealed):
    last = sealed["events"][-1]
    raw("DELETE FROM api_accessevent WHERE id=%s", [last.pk])
    tampered(f"batch #2, event {last.pk}: the batch's last event was removed")


def test_an_event_inserted_inside_a_batch_s_range_is_caught():
    for pk in (1_000_010, 1_000_020, 1_000_030):
        event(id=pk)
    audit_batch_seal()
    insert_event_with_id(1_000_015)
    tampered("batch #1: 4 events lie in ids 1000010-1000030 but 3 were sealed: events were inserted")


def test_an_event_inserted_between_two_batches_is_named():
    event(id=2_000_010)
    audit_batch_seal()
    event(id=2_000_030)
    audit_batch_seal()
    insert_event_with_id(2_000_020)
    tampered("batch #2, event 2000020: lies inside the sealed range (before batch #2) but was never sealed")


def test_a_renumbered_event_is_caught(sealed):
    target = sealed["events"][2]
    raw("UPDATE api_accessevent SET id=%s WHERE id=%s", [target.pk + 100_000, target.pk])
    tampered("batch #1")


def test_an_edited_batch_is_caught(sealed):
    batch = sealed["batches"][0]
    raw("UPDATE api_auditbatch SET event_count=2 WHERE id=%s", [batch.pk])
    tampered("batch #1: the batch record was changed after it was sealed")


def test_a_batch_rewritten_with_a_fresh_hash_breaks_the_next_link(sealed):
    batch = AuditBatch.objects.get(pk=sealed["batches"][0].pk)
    batch.sealed_at = batch.sealed_at - timedelta(days=1)
    raw(
        "UPDATE api_auditbatch SET sealed_at=%s, hash=%s WHERE id=%s",
        [batch.sealed_at, batch_hash(batch), batch.pk],
    )
    tampered("batch #2: does not chain to the batch before it")


def test_reordered_batches_are_caught(sealed):
    one, two = sealed["batches"]
    raw("UPDATE api_auditbatch SET sequence=1000 WHERE id=%s", [one.pk])
    raw("UPDATE api_auditbatch SET sequence=1 WHERE id=%s", [two.pk])
    raw("UPDATE api_auditbatch SET sequence=2 WHERE id=%s", [one.pk])
    tampered("batch #1: does not chain to the batch before it")


def test_a_removed_batch_is_caught(sealed):
    assert audit_batch_seal(now=timezone.now() + timedelta(minutes=1)).sequence == 3
    raw("DELETE FROM api_auditbatch WHERE sequence=2")
    tampered("batch #3: expected batch #2 here; batches were removed or reordered")


def test_all_reports_every_problem(sealed):
    raw("UPDATE api_accessevent SET patient_id='999' WHERE id IN (%s, %s)", [e.pk for e in sealed["events"][::4]])
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("verify_audit", "--all", stderr=err)
    assert err.getvalue().count("TAMPERED") == 2


# --- PostgreSQL: the database itself refuses --------------------------------------------------------


def _trigger_enabled(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = %s", [name])
        return cursor.fetchone()[0] == "O"


@pytest.mark.postgres
def test_postgres_refuses_a_raw_update_or_delete_of_events_and_batches(sealed):
    target, batch = sealed["events"][1], sealed["batches"][0]
    for sql, pk in (
        ("UPDATE api_accessevent SET patient_id='999' WHERE id=%s", target.pk),
        ("DELETE FROM api_accessevent WHERE id=%s", target.pk),
        ("UPDATE api_auditbatch SET event_count=2 WHERE id=%s", batch.pk),
        ("DELETE FROM api_auditbatch WHERE id=%s", batch.pk),
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [pk])
    assert AccessEvent.objects.get(pk=target.pk).patient_id == "123"
    assert "5 events in 2 batches verified" in verify()


@pytest.mark.postgres
def test_postgres_with_the_trigger_disabled_an_edit_is_still_caught(sealed):
    target = sealed["events"][0]
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE api_accessevent DISABLE TRIGGER {TRIGGERS['api_accessevent']}")
        try:
            cursor.execute("UPDATE api_accessevent SET user_agent='x' WHERE id=%s", [target.pk])
        finally:
            cursor.execute(f"ALTER TABLE api_accessevent ENABLE TRIGGER {TRIGGERS['api_accessevent']}")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    assert _trigger_enabled(TRIGGERS["api_accessevent"])
    tampered("batch #1: the events in ids")


# --- PostgreSQL: sealers at once, and writers never wait on them -----------------------------------


def _in_threads(*targets) -> list:
    barrier = threading.Barrier(len(targets))
    results, failures = [], []

    def run(target):
        try:
            barrier.wait(timeout=10)
            results.append(target())
        except Exception as exc:  # reported below, in the test's thread
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_sealers_at_once_make_non_overlapping_batches():
    made = events(5)
    results = _in_threads(lambda: audit_batch_seal(batch_size=3), lambda: audit_batch_seal(batch_size=3))
    batches = list(AuditBatch.objects.order_by("sequence"))
    assert sorted(b.sequence for b in results if b is not None) == [1, 2]
    assert [(b.first_event_id, b.last_event_id) for b in batches] == [
        (made[0].pk, made[2].pk),
        (made[3].pk, made[4].pk),
    ]
    assert batches[1].previous_hash == batches[0].hash
    assert "5 events in 2 batches verified" in verify()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_writer_does_not_wait_for_a_sealer_holding_the_lock():
    holding, release = threading.Event(), threading.Event()

    def sealer():
        try:
            with transaction.atomic():
                audit_seal._lock_sealing()
                holding.set()
                release.wait(timeout=20)
        finally:
            connections.close_all()

    thread = threading.Thread(target=sealer)
    thread.start()
    try:
        assert holding.wait(timeout=10)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '2s'")
            written = event()
        assert AccessEvent.objects.filter(pk=written.pk).exists()
    finally:
        release.set()
        thread.join(timeout=30)


# --- Django admin ----------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def admin_url(model: str, view: str = "changelist", *args) -> str:
    return reverse(f"admin:api_{model}_{view}", args=args)


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="')
    assert "no-store" in response["Cache-Control"]
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_admin_changelist_renders_with_filters_search_and_dates(staff_client):
    event(patient_id="p-allowed")
    event(patient_id="p-refused", outcome="refused", refusal_code="no_consent", action="search")
    page = staff_client.get(admin_url("accessevent"))
    assert page.status_code == 200
    assert b"p-allowed" in page.content and b"p-refused" in page.content
    assert b"Export CSV (this filtered list)" in page.content
    today = timezone.now()
    for params in (
        {"outcome__exact": "refused"},
        {"action": "search"},
        {"resource_type": "Patient", "environment": "sandbox"},
        {"q": "p-refused"},
        {"occurred_at__year": today.year, "occurred_at__month": today.month},
    ):
        response = staff_client.get(admin_url("accessevent"), params)
        assert response.status_code == 200, params
        assert escape(f"export/?{urlencode(sorted(params.items()))}").encode() in response.content, params
        if "occurred_at__year" not in params and "resource_type" not in params:
            assert b"p-refused" in response.content and b"p-allowed" not in response.content, params
    assert staff_client.get(admin_url("auditbatch")).status_code == 200


def test_the_admin_refuses_every_change(staff_client, sealed):
    target, batch = sealed["events"][0], sealed["batches"][0]
    assert staff_client.get(admin_url("accessevent", "add")).status_code == 403
    assert staff_client.get(admin_url("auditbatch", "add")).status_code == 403
    view = staff_client.get(admin_url("accessevent", "change", target.pk))
    assert view.status_code == 200 and b'name="_save"' not in view.content
    assert staff_client.post(admin_url("accessevent", "change", target.pk), {"patient_id": "999"}).status_code == 403
    assert staff_client.post(admin_url("accessevent", "delete", target.pk), {"post": "yes"}).status_code == 403
    assert staff_client.post(admin_url("auditbatch", "delete", batch.pk), {"post": "yes"}).status_code == 403
    bulk_delete = staff_client.post(
        admin_url("accessevent"), {"action": "delete_selected", ACTION_CHECKBOX_NAME: [target.pk], "post": "yes"}
    )
    assert bulk_delete.status_code in (200, 302)
    assert AccessEvent.objects.filter(pk=target.pk, patient_id="123").exists()
    assert "intact" in verify()


def test_the_admin_exports_the_selected_events_as_csv(staff_client):
    chosen = events(2)
    event(patient_id="not-chosen")
    response = staff_client.post(
        admin_url("accessevent"), {"action": "export_csv", ACTION_CHECKBOX_NAME: [e.pk for e in chosen]}
    )
    rows = csv_rows(response)
    assert rows[0] == list(ADMIN_COLUMNS)
    assert [int(r[0]) for r in rows[1:]] == [e.pk for e in chosen]
    stored = AccessEvent.objects.get(pk=chosen[0].pk)
    assert datetime.fromisoformat(rows[1][1]) == stored.occurred_at
    assert rows[1][1].endswith("+00:00")


def test_the_admin_exports_the_filtered_changelist(staff_client):
    event(patient_id="p-allowed")
    refused = [event(patient_id=f"p-refused-{i}", outcome="refused") for i in range(3)]
    response = staff_client.get(reverse("admin:api_accessevent_export"), {"outcome__exact": "refused"})
    rows = csv_rows(response)
    assert rows[0] == list(ADMIN_COLUMNS)
    assert [int(r[0]) for r in rows[1:]] == [e.pk for e in refused]
    searched = csv_rows(staff_client.get(reverse("admin:api_accessevent_export"), {"q": "p-allowed"}))
    assert [r[ADMIN_COLUMNS.index("patient_id")] for r in searched[1:]] == ["p-allowed"]
    partial = csv_rows(staff_client.get(reverse("admin:api_accessevent_export"), {"q": "p-refused"}))
    assert partial == [list(ADMIN_COLUMNS)]  # identifiers match exactly, never by substring


def test_the_admin_export_is_for_staff_only(client):
    event()
    response = client.get(reverse("admin:api_accessevent_export"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(UserFactory())
    assert client.get(reverse("admin:api_accessevent_export")).status_code == 302


# --- portal: a partner's own access log -------------------------------------------------------------


@pytest.fixture
def partner():
    """A member of the organization owning ``app``, logged in; another organization's ``other`` app."""
    membership = member(Membership.Role.DEVELOPER)
    return {
        "membership": membership,
        "app": AppFactory(organization=membership.organization),
        "other": AppFactory(),
    }


def log_url(app) -> str:
    return reverse("portal:app-access-log", args=[app.pk])


def test_the_access_log_shows_only_the_app_s_own_events(client, partner):
    client.force_login(partner["membership"].user)
    event(partner["app"], patient_id="mine-1")
    event(partner["app"], patient_id="mine-2", outcome="refused", refusal_code="no_consent")
    event(partner["other"], patient_id="theirs")
    event(patient_id="nobody")  # an unauthenticated attempt: no app
    page = client.get(log_url(partner["app"]))
    assert page.status_code == 200
    assert b"Patient/mine-1" in page.content and b"Patient/mine-2" in page.content
    assert b"theirs" not in page.content and b"nobody" not in page.content
    assert b"no_consent" in page.content
    detail = client.get(reverse("portal:app-detail", args=[partner["app"].pk]))
    assert log_url(partner["app"]).encode() in detail.content


def test_the_access_log_filters_by_outcome_and_dates(client, partner):
    client.force_login(partner["membership"].user)
    app = partner["app"]
    event(app, patient_id="old-allowed", age=timedelta(days=10))
    event(app, patient_id="new-refused", outcome="refused")
    refused = client.get(log_url(app), {"outcome": "refused"})
    assert b"new-refused" in refused.content and b"old-allowed" not in refused.content
    ten_days_ago = (timezone.now() - timedelta(days=10)).date().isoformat()
    dated = client.get(log_url(app), {"since": ten_days_ago, "until": ten_days_ago})
    assert b"old-allowed" in dated.content and b"new-refused" not in dated.content
    backwards = client.get(log_url(app), {"since": "2026-02-02", "until": "2026-02-01"})
    assert backwards.status_code == 400
    assert b"The end date is before the start date." in backwards.content


def test_the_access_log_is_paginated_keeping_the_filters(client, partner, monkeypatch):
    monkeypatch.setattr("portal.views.ACCESS_LOG_PAGE_SIZE", 2)
    client.force_login(partner["membership"].user)
    made = events(3, partner["app"], outcome="refused")
    first = client.get(log_url(partner["app"]), {"outcome": "refused"})
    assert b"Page 1 of 2" in first.content
    assert b"?outcome=refused&amp;page=2" in first.content
    second = client.get(log_url(partner["app"]), {"outcome": "refused", "page": 2})
    assert f"/{made[0].resource_id}".encode() in second.content


def test_another_organization_s_app_is_404(client, partner):
    client.force_login(partner["membership"].user)
    event(partner["other"])
    assert client.get(log_url(partner["other"])).status_code == 404
    assert client.get(log_url(partner["other"]), {"format": "csv"}).status_code == 404


def test_the_access_log_needs_a_login(client, partner):
    response = client.get(log_url(partner["app"]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_partner_csv_has_a_header_and_only_the_app_s_rows(client, partner):
    client.force_login(partner["membership"].user)
    app = partner["app"]
    mine = [event(app, patient_id=f"mine-{i}", ip="203.0.113.5", user_agent="=HYPERLINK(1)") for i in range(3)]
    event(partner["other"], patient_id="theirs")
    rows = csv_rows(client.get(log_url(app), {"format": "csv"}))
    assert rows[0] == list(PARTNER_COLUMNS)
    assert "app_id" not in rows[0] and "organization_id" not in rows[0]
    column = {name: i for i, name in enumerate(rows[0])}
    body = rows[1:]
    assert [int(r[column["id"]]) for r in body] == [e.pk for e in mine]  # oldest first
    assert {r[column["client_id"]] for r in body} == {app.client_id}
    assert {r[column["ip"]] for r in body} == {"203.0.113.5"}
    assert {r[column["user_agent"]] for r in body} == {"'=HYPERLINK(1)"}  # never a live formula
    assert datetime.fromisoformat(body[0][column["occurred_at"]]).tzinfo == UTC


def test_the_partner_csv_honours_the_filters(client, partner):
    client.force_login(partner["membership"].user)
    app = partner["app"]
    event(app, patient_id="allowed")
    refused = event(app, patient_id="refused", outcome="refused")
    rows = csv_rows(client.get(log_url(app), {"format": "csv", "outcome": "refused"}))
    assert [int(r[0]) for r in rows[1:]] == [refused.pk]
