"""/status/: the overall state, the dependencies, the workers' heartbeats, queue depth, the beat tasks'
last runs and the webhook backlog, as a page and as JSON; what staff see that others do not; a stopped
Redis reported quickly."""

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from marketplace import health
from partners.event_models import WebhookDelivery, WebhookSubscription
from partners.models import OutboxEvent
from portal import status
from tests.conftest import CLOSED_REDIS
from tests.factories import AppFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh(settings):
    # A heartbeat store of the test's own (the embedded one is a directory other runs share), and a
    # schedule of two tasks to reason about.
    settings.CACHES = {
        **settings.CACHES,
        "heartbeats": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex},
    }
    settings.CELERY_BEAT_SCHEDULE = {
        "queue-due-deliveries": {"task": "partners.tasks.queue_due_deliveries", "schedule": 5.0},
        "purge-old-events": {"task": "partners.tasks.purge_old_events", "schedule": 3600.0},
    }
    health._last_recorded.clear()
    status.forget()
    yield
    status.forget()


def interval(seconds: int) -> IntervalSchedule:
    return IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)[0]


def periodic(name: str, every: int, *, last_run_ago: timedelta | None, task: str = "", **fields) -> PeriodicTask:
    last_run = timezone.now() - last_run_ago if last_run_ago is not None else None
    return PeriodicTask.objects.create(
        name=name, task=task or f"tests.{name}", interval=interval(every), last_run_at=last_run, **fields
    )


def on_time_schedule():
    """Beat registered both configured tasks and ran them recently."""
    periodic("queue-due-deliveries", 5, last_run_ago=timedelta(seconds=30))
    periodic("purge-old-events", 3600, last_run_ago=timedelta(minutes=20))


def live_worker(name="celery@web-1"):
    health.heartbeat_record(name, force=True)


def get_json(client, **extra):
    response = client.get("/status/", {"format": "json"}, **extra)
    return response, response.json()


# --- The page ------------------------------------------------------------------------------------


def test_all_well_is_operational(client):
    on_time_schedule()
    live_worker()
    response = client.get("/status/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "All systems operational" in page
    for section in ("Dependencies", "Background workers", "Task queues", "Scheduled tasks", "Webhook delivery"):
        assert section in page
    assert "queue-due-deliveries" in page and "every 5 seconds" in page
    assert "no-cache" in response["Cache-Control"]
    assert "Accept" in response["Vary"]

    _, body = get_json(client)
    assert body["status"] == "operational" and body["reasons"] == []
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "cache": "ok",
        "broker": "ok",
    }
    assert body["workers"]["live"] == 1 and body["workers"]["missing"] == 0


def test_json_by_accept_header_too(client):
    response = client.get("/status/", HTTP_ACCEPT="application/json")
    assert response["Content-Type"] == "application/json"
    assert response.json()["status"] in ("operational", "degraded")
    browser = client.get("/status/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert browser["Content-Type"].startswith("text/html")


def test_the_footer_links_to_it(client):
    assert 'href="/status/"' in client.get("/accounts/login/").content.decode()


# --- Workers -------------------------------------------------------------------------------------


def test_a_worker_not_heard_for_a_minute_is_missing_and_degrades(client):
    on_time_schedule()
    health.heartbeat_record("celery@quiet", now=time.time() - 90)
    _, body = get_json(client)
    assert body["status"] == "degraded"
    (worker,) = body["workers"]["items"]
    assert worker["status"] == "missing" and worker["age_seconds"] >= 90
    assert "No background worker has been heard from in the last minute." in body["reasons"]


def test_no_worker_at_all_is_degraded(client):
    on_time_schedule()
    _, body = get_json(client)
    assert body["status"] == "degraded"
    assert body["workers"]["items"] == [] and body["workers"]["live"] == 0


def test_workers_are_numbered_for_the_public_and_named_for_staff(client):
    live_worker("celery@ip-10-0-3-17")
    _, public = get_json(client)
    assert public["workers"]["items"][0]["name"] == "worker 1"
    assert "ip-10-0-3-17" not in client.get("/status/").content.decode()
    client.force_login(UserFactory(is_staff=True))
    _, staff = get_json(client)
    assert staff["workers"]["items"][0]["name"] == "celery@ip-10-0-3-17"


# --- Queues and staff detail ---------------------------------------------------------------------


def test_queue_depth_total_for_everyone_per_queue_for_staff(client, settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://localhost//"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path)}
    for n in range(4):
        (tmp_path / f"{n}_{uuid.uuid4()}.celery.msg").write_bytes(b"{}")
    _, public = get_json(client)
    assert public["queues"] == {"total": 4}
    assert public["checks"]["broker"] == {"status": "ok", "label": "Task broker", "embedded": True}
    assert "detail" not in public["checks"]["database"]
    assert "task" not in (public["beat_tasks"][0])

    status.forget()
    client.force_login(UserFactory(is_staff=True))
    _, staff = get_json(client)
    assert staff["queues"]["queues"] == {"celery": 4}
    assert staff["checks"]["database"]["detail"] == "ok"
    assert staff["beat_tasks"][0]["task"] == "partners.tasks.queue_due_deliveries"
    page = client.get("/status/").content.decode()
    assert "partners.tasks.queue_due_deliveries" in page


# --- Beat tasks ----------------------------------------------------------------------------------


def test_beat_tasks_with_their_last_run_and_overdue_flag(client, settings):
    settings.CELERY_BEAT_SCHEDULE = {
        "on-time": {"task": "tests.on_time", "schedule": 60.0},
        "late": {"task": "tests.late", "schedule": 10.0},
        "never-registered": {"task": "tests.never", "schedule": 300.0},
    }
    periodic("on-time", 60, last_run_ago=timedelta(seconds=100))
    # 3 intervals plus beat's 3 minutes of recording lag: 210 s for a 10-second task.
    periodic("late", 10, last_run_ago=timedelta(seconds=400))
    periodic("paused", 10, last_run_ago=timedelta(days=2), enabled=False)
    crontab = CrontabSchedule.objects.create(minute="0", hour="4")
    PeriodicTask.objects.create(
        name="nightly", task="tests.nightly", crontab=crontab, last_run_at=timezone.now() - timedelta(hours=30)
    )
    live_worker()

    _, body = get_json(client)
    tasks = {task["name"]: task for task in body["beat_tasks"]}
    assert list(tasks)[:3] == ["on-time", "late", "never-registered"]  # configured first, then the rest
    on_time = tasks["on-time"]
    assert (on_time["schedule"], on_time["state"], on_time["overdue"]) == ("every minute", "on time", False)
    assert 95 <= on_time["last_run_age_seconds"] <= 110
    assert on_time["last_run_at"].endswith("Z")
    assert (tasks["late"]["state"], tasks["late"]["overdue"]) == ("overdue", True)
    assert tasks["never-registered"] == {
        "name": "never-registered",
        "schedule": "every 5 minutes",
        "last_run_at": None,
        "last_run_age_seconds": None,
        "state": "not registered",
        "overdue": True,
    }
    assert (tasks["paused"]["state"], tasks["paused"]["overdue"]) == ("paused", False)
    # Daily at 04:00, last run 30 hours ago: within three days.
    assert tasks["nightly"]["schedule"] == "cron 0 4 * * *"
    assert tasks["nightly"]["overdue"] is False
    assert body["status"] == "degraded"
    assert "Scheduled tasks are overdue." in body["reasons"]

    page = client.get("/status/").content.decode()
    assert "Overdue" in page and "The scheduler has not started." in page


def test_a_recent_run_recorded_late_by_beat_is_not_overdue(client):
    # A 5-second task whose row beat last wrote 2 minutes ago: within its recording lag.
    periodic("queue-due-deliveries", 5, last_run_ago=timedelta(minutes=2))
    periodic("purge-old-events", 3600, last_run_ago=timedelta(minutes=2))
    _, body = get_json(client)
    assert [task["overdue"] for task in body["beat_tasks"]] == [False, False]


# --- Webhook backlog -----------------------------------------------------------------------------


def test_the_webhook_backlog_counts_what_waits_and_what_failed(client):
    on_time_schedule()
    live_worker()
    app = AppFactory()
    subscription = WebhookSubscription.objects.create(app=app, url="https://hooks.example.com/in", event_types=["x"])
    now = timezone.now()
    pending = WebhookDelivery.Status.PENDING

    def delivery(**fields):
        event = OutboxEvent.objects.create(type="tier.changed", payload={}, organization=app.organization)
        return WebhookDelivery.objects.create(subscription=subscription, event=event, **fields)

    delivery(status=pending, next_attempt_at=now - timedelta(minutes=10))  # due, the oldest
    delivery(status=pending, next_attempt_at=now - timedelta(seconds=30), attempts=2)  # due, failed before
    delivery(status=pending)  # new: due at once
    delivery(status=pending, next_attempt_at=now + timedelta(hours=1), attempts=3)  # waits for its retry
    delivery(status=pending, next_attempt_at=now - timedelta(seconds=5), claimed_until=now + timedelta(seconds=50))
    delivery(status=WebhookDelivery.Status.FAILED, completed_at=now - timedelta(hours=2), attempts=10)
    delivery(status=WebhookDelivery.Status.FAILED, completed_at=now - timedelta(days=3), attempts=10)
    delivery(status=WebhookDelivery.Status.SUCCEEDED, completed_at=now)

    _, body = get_json(client)
    backlog = body["webhooks"]
    # The new delivery fell due when it was created, a moment ago; the oldest ten minutes ago.
    assert {k: v for k, v in backlog.items() if k != "oldest_due_age_seconds"} == {
        "pending": 5,
        "due": 3,
        "in_flight": 1,
        "retrying": 2,
        "failed_last_24h": 1,
    }
    assert 595 <= backlog["oldest_due_age_seconds"] <= 615
    assert body["status"] == "degraded"
    assert body["reasons"] == ["Webhook deliveries are delayed."]


def test_an_empty_backlog(client):
    _, body = get_json(client)
    assert body["webhooks"] == {
        "pending": 0,
        "due": 0,
        "in_flight": 0,
        "oldest_due_age_seconds": None,
        "retrying": 0,
        "failed_last_24h": 0,
    }


# --- A stopped Redis -----------------------------------------------------------------------------


def test_a_stopped_redis_is_reported_down_within_seconds(client, redis_stopped):
    started = time.monotonic()
    response, body = get_json(client)
    assert time.monotonic() - started < 3
    assert response.status_code == 503
    assert body["status"] == "down"
    assert body["checks"]["cache"]["status"] == "unreachable"
    assert body["checks"]["broker"]["status"] == "unreachable"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["workers"] is None and body["queues"] is None
    assert body["beat_tasks"] is not None and body["webhooks"] is not None  # the database still answers
    assert "The cache is unreachable" in body["reasons"][0]
    assert CLOSED_REDIS not in response.content.decode()

    status.forget()
    page = client.get("/status/")
    assert page.status_code == 503
    text = page.content.decode()
    assert "Service disruption" in text and "Unreachable" in text


# --- The snapshot is kept a few seconds ----------------------------------------------------------


def test_the_snapshot_is_built_once_per_few_seconds(client, django_assert_max_num_queries):
    client.get("/status/", {"format": "json"})
    with django_assert_max_num_queries(0):
        for _ in range(5):
            client.get("/status/", {"format": "json"})
