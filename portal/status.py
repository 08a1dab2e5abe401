"""/status/: the platform's health for partners and operators, as a page or as JSON.

What it reads: the dependency probes ``/readyz`` answers from (``marketplace.health``: database,
cache, Celery broker, each with a short time limit), the Celery workers' heartbeats, the depth of each
Celery queue, the last run of each beat task (django-celery-beat's ``PeriodicTask``) and the webhook
backlog (``partners.webhook_selectors.delivery_backlog``).

One snapshot is built at most every ``STATUS_CACHE_SECONDS`` per process and kept in the process's
memory (the shared cache may be what is down), built by one request while the others wait for it:
however often /status/ is asked, the database sees a few queries every few seconds per process.

Public, so what it shows is chosen for everyone: states, counts, ages and the beat tasks' names.
Exception classes, worker names (a host name), queue names and task paths are for staff only;
others see workers numbered and the queues' total.
"""

import threading
import time
from datetime import UTC, datetime, timedelta

from celery import beat as celery_beat
from celery import schedules
from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers, patch_vary_headers

from marketplace import health
from marketplace.celery import app as celery_app
from partners.webhook_selectors import delivery_backlog

STATUS_CACHE_SECONDS = 5.0
# A beat task is overdue once its last recorded run is older than this many of its intervals, plus
# the time beat may take to write a run down: django-celery-beat saves last_run_at in batches, every
# ``sync_every`` seconds (3 minutes), so a 5-second task's row can lag its real last run by that much.
OVERDUE_INTERVALS = 3
BEAT_RECORDING_LAG = timedelta(seconds=celery_beat.Scheduler.sync_every)
# The longest-waiting due webhook delivery waiting longer than this makes the platform "degraded".
WEBHOOK_DELAY_DEGRADED = timedelta(minutes=5)
FAILED_WINDOW = timedelta(hours=24)

OPERATIONAL, DEGRADED, DOWN = "operational", "degraded", "down"
LABELS = {OPERATIONAL: "All systems operational", DEGRADED: "Degraded service", DOWN: "Service disruption"}
CHECK_LABELS = {"database": "Database", "cache": "Cache", "broker": "Task broker"}


# --- Beat tasks ------------------------------------------------------------------------------------


def _every(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    count = f"{seconds:g}"
    return "every second" if count == "1" else f"every {count} seconds"


def _describe(schedule) -> str:
    """A celery schedule in words."""
    if isinstance(schedule, schedules.crontab):
        fields = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
        return "cron " + " ".join(str(getattr(schedule, f"_orig_{field}")) for field in fields)
    if isinstance(schedule, schedules.schedule):
        return _every(schedule.run_every.total_seconds())
    return str(schedule)


def _interval(schedule, last_run: datetime, now: datetime) -> timedelta | None:
    """From one run to the next: a fixed interval's own or, for a crontab or a solar event, the gap
    between its two next occurrences after ``last_run``."""
    if isinstance(schedule, schedules.schedule) and not isinstance(schedule, schedules.crontab):
        return schedule.run_every

    def next_after(moment: datetime) -> datetime:
        return now + schedule.remaining_estimate(moment)  # celery: the next occurrence, less now

    try:
        first = next_after(last_run)
        # A second past it: each estimate reads the clock anew, and a microsecond short of ``first``
        # would find ``first`` again.
        return next_after(first + timedelta(seconds=1)) - first
    except Exception:  # a schedule that cannot say: no interval, never overdue
        return None


def beat_tasks(*, now: datetime) -> list[dict]:
    """Each beat task: the ones settings schedule (even before beat has registered them) and any an
    admin added; its schedule, its last recorded run and whether it is overdue."""
    from django_celery_beat.models import PeriodicTask

    rows = {task.name: task for task in PeriodicTask.objects.select_related("interval", "crontab", "solar", "clocked")}
    configured = getattr(settings, "CELERY_BEAT_SCHEDULE", {}) or {}
    tasks = []
    for name in [*configured, *sorted(set(rows) - set(configured))]:
        row = rows.get(name)
        entry = {"name": name, "task": row.task if row else configured[name]["task"]}
        if row is None:
            # Beat writes each configured task's row when it starts: none means it never has.
            schedule = schedules.maybe_schedule(configured[name]["schedule"])
            entry.update(schedule=_describe(schedule), enabled=True, last_run_at=None, runs=0, state="not registered")
            entry["overdue"] = True
            tasks.append(entry)
            continue
        schedule = row.schedule
        text = _describe(schedule)
        if row.clocked_id:
            text = f"once at {row.clocked.clocked_time:%Y-%m-%d %H:%M} UTC"
        reference = row.last_run_at or row.date_changed
        interval = None if row.one_off or row.clocked_id else _interval(schedule, reference, now)
        overdue = bool(
            row.enabled and interval is not None and now - reference > OVERDUE_INTERVALS * interval + BEAT_RECORDING_LAG
        )
        state = "paused" if not row.enabled else "overdue" if overdue else "on time" if row.last_run_at else "waiting"
        entry.update(
            schedule=text,
            enabled=row.enabled,
            last_run_at=row.last_run_at,
            runs=row.total_run_count,
            state=state,
            overdue=overdue,
        )
        tasks.append(entry)
    return tasks


# --- The snapshot ----------------------------------------------------------------------------------


def queue_names() -> list[str]:
    conf = celery_app.conf
    names = {conf.task_default_queue}
    names.update(queue.name for queue in conf.task_queues or ())
    routes = conf.task_routes
    if isinstance(routes, dict):
        names.update(route["queue"] for route in routes.values() if isinstance(route, dict) and "queue" in route)
    return sorted(names)


def _build(now_ts: float) -> dict:
    now = datetime.fromtimestamp(now_ts, tz=UTC)
    checks = {check.name: check for check in health.checks()}
    database_ok, cache_ok, broker_ok = checks["database"].ok, checks["cache"].ok, checks["broker"].ok
    # A dependency that failed its probe is not asked again here: each would wait its own time limit.
    workers = health.workers(now=now_ts) if cache_ok else None
    queues = health.queue_depths(queue_names()) if broker_ok else None
    beat = backlog = None
    if database_ok:
        try:
            beat = beat_tasks(now=now)
            backlog = delivery_backlog(now=now, failed_since=now - FAILED_WINDOW)
        except Exception:  # the database went away between the probe and these reads
            beat = backlog = None

    reasons = []
    if not database_ok:
        reasons.append("The database is unreachable: the API and the portal cannot serve requests.")
    if not cache_ok:
        reasons.append("The cache is unreachable: API requests cannot be rate-limited and are refused.")
    if not broker_ok:
        reasons.append("The task broker is unreachable: webhooks and background work are delayed.")
    if workers is None:
        if cache_ok:
            reasons.append("Worker heartbeats cannot be read.")
    elif not any(not worker.missing for worker in workers):
        reasons.append("No background worker has been heard from in the last minute.")
    elif any(worker.missing for worker in workers):
        reasons.append("A background worker has not been heard from in over a minute.")
    if beat and any(task["overdue"] for task in beat):
        reasons.append("Scheduled tasks are overdue.")
    if backlog and backlog["oldest_due_at"] and now - backlog["oldest_due_at"] > WEBHOOK_DELAY_DEGRADED:
        reasons.append("Webhook deliveries are delayed.")
    overall = DOWN if not (database_ok and cache_ok) else DEGRADED if reasons else OPERATIONAL
    return {
        "status": overall,
        "generated_at": now,
        "reasons": reasons,
        "checks": checks,
        "workers": workers,
        "queues": queues,
        "beat": beat,
        "webhooks": backlog,
        "broker_embedded": not health.broker_is_redis(),
    }


_lock = threading.Lock()
_snapshot: dict[tuple, tuple[float, dict]] = {}


def snapshot(*, now: float | None = None) -> dict:
    """The platform's state as of at most ``STATUS_CACHE_SECONDS`` ago (this process's copy)."""
    key = health.fingerprint()
    with _lock:  # one build at a time: requests arriving meanwhile take its result
        stamp = time.monotonic()
        cached = _snapshot.get(key)
        if cached and now is None and stamp - cached[0] < STATUS_CACHE_SECONDS:
            return cached[1]
        _snapshot.clear()
        built = _build(time.time() if now is None else now)
        _snapshot[key] = (stamp, built)
        return built


def forget() -> None:
    """Drop the kept snapshot and probe answers (tests)."""
    with _lock:
        _snapshot.clear()
    health.forget()


# --- What each reader sees -------------------------------------------------------------------------


def _age(now: datetime, then: datetime | None) -> int | None:
    return max(0, int((now - then).total_seconds())) if then else None


def present(snap: dict, *, staff: bool) -> dict:
    """The snapshot as the page and the JSON show it (datetimes stay datetimes: the template words them,
    JsonResponse's encoder writes them in ISO 8601), without what only staff may see for anyone else."""
    now = snap["generated_at"]
    checks = {}
    for name, check in snap["checks"].items():
        state = "ok" if check.ok else "timeout" if check.detail.startswith("timeout") else "unreachable"
        item = {"status": state, "label": CHECK_LABELS.get(name, name)}
        if name == "broker" and snap["broker_embedded"]:
            item["embedded"] = True
        if staff:
            item.update(detail=check.detail, seconds=check.seconds)
        checks[name] = item

    workers = None
    if snap["workers"] is not None:
        items = []
        for number, worker in enumerate(snap["workers"], start=1):
            item = {
                "name": worker.name if staff else f"worker {number}",
                "status": "missing" if worker.missing else "live",
                "last_heartbeat": datetime.fromtimestamp(worker.last_seen, tz=UTC),
                "age_seconds": int(worker.age),
            }
            items.append(item)
        workers = {
            "live": sum(1 for w in items if w["status"] == "live"),
            "missing": sum(1 for w in items if w["status"] == "missing"),
            "missing_after_seconds": int(health.HEARTBEAT_MISSING_AFTER),
            "items": items,
        }

    queues = None
    if snap["queues"] is not None:
        depths = snap["queues"]["queues"]
        queues = {"total": sum(depths.values())}
        if staff:
            queues["queues"] = depths
            queues["reserved"] = snap["queues"]["reserved"]

    beat = None
    if snap["beat"] is not None:
        beat = []
        for task in snap["beat"]:
            item = {
                "name": task["name"],
                "schedule": task["schedule"],
                "last_run_at": task["last_run_at"],
                "last_run_age_seconds": _age(now, task["last_run_at"]),
                "state": task["state"],
                "overdue": task["overdue"],
            }
            if staff:
                item.update(task=task["task"], enabled=task["enabled"], runs=task["runs"])
            beat.append(item)

    webhooks = None
    if snap["webhooks"] is not None:
        backlog = snap["webhooks"]
        webhooks = {
            "pending": backlog["pending"],
            "due": backlog["due"],
            "in_flight": backlog["in_flight"],
            "oldest_due_age_seconds": _age(now, backlog["oldest_due_at"]),
            "retrying": backlog["retrying"],
            "failed_last_24h": backlog["failed"],
        }

    return {
        "status": snap["status"],
        "label": LABELS[snap["status"]],
        "generated_at": now,
        "reasons": snap["reasons"],
        "checks": checks,
        "workers": workers,
        "queues": queues,
        "beat_tasks": beat,
        "webhooks": webhooks,
    }


def _wants_json(request) -> bool:
    if request.GET.get("format") == "json":
        return True
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def status(request):
    """/status/: 200 while the platform serves (operational or degraded), 503 when it is down; HTML
    for a browser, JSON for ``?format=json`` or ``Accept: application/json``."""
    data = present(snapshot(), staff=request.user.is_staff)
    code = 503 if data["status"] == DOWN else 200
    if _wants_json(request):
        response = JsonResponse(data, status=code)
    else:
        response = render(request, "portal/status.html", {"status": data, "staff": request.user.is_staff}, status=code)
    # Staff see more on the same URL, and the state changes by the second: nothing in between keeps it.
    add_never_cache_headers(response)
    patch_vary_headers(response, ["Accept", "Cookie"])
    return response
