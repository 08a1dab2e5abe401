"""Every write of certification runs. Keyword-only, transactional, named ``<noun>_<verb>``.

A run goes queued -> running -> passed / failed / error. The suite itself (``api.certification``)
reads the API's and consent's records, so it lives above partners; it calls these to move a run along
and to write its results, all of them in one transaction at the end, so a run is never half-written.
"""

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from partners.certification_models import CertificationCheckResult, CertificationRun
from partners.exceptions import InvalidState
from partners.models import App, User
from partners.services import _require_active, _require_member

# A run still queued or running after this long was left by a worker that died (or a lost task):
# it no longer blocks a new run, and is closed with status error when the next one starts.
STALE_AFTER = timedelta(minutes=30)
ABANDONED = "Abandoned: no worker finished it within 30 minutes (a worker stopped, or the task was lost)."
MAX_ERROR_LENGTH = 2000


@transaction.atomic
def certification_run_start(*, app: App, user: User) -> CertificationRun:
    """Queue a run for a sandbox app of the user's organization (developers and above). One run at a
    time per app: a queued or running one refuses another (``InvalidState``). The caller queues the
    task once this commits."""
    _require_member(user, app.organization, permission="can_manage_apps")
    _require_active(app.organization)
    if app.environment != App.Environment.SANDBOX:
        raise InvalidState(
            "Certification runs on a sandbox app: it checks the behaviour the sandbox recorded. "
            "Certify the sandbox twin of this app."
        )
    app = App.objects.select_for_update().get(pk=app.pk)  # two clicks at once wait for each other here
    now = timezone.now()
    CertificationRun.objects.filter(app=app, status__in=CertificationRun.OPEN, created_at__lt=now - STALE_AFTER).update(
        status=CertificationRun.Status.ERROR, finished_at=now, error=ABANDONED
    )
    if CertificationRun.objects.filter(app=app, status__in=CertificationRun.OPEN).exists():
        raise InvalidState("A certification run of this app is already queued or running; wait for it to finish.")
    try:
        with transaction.atomic():
            return CertificationRun.objects.create(app=app, started_by=user)
    except IntegrityError as exc:  # the constraint, should another path have slipped past the lock
        raise InvalidState(
            "A certification run of this app is already queued or running; wait for it to finish."
        ) from exc


@transaction.atomic
def certification_run_begin(*, run_id: int) -> CertificationRun | None:
    """Take a queued run (queued -> running). None when it is not queued any more (a duplicate task,
    or a run closed as abandoned): the caller then does nothing."""
    now = timezone.now()
    taken = CertificationRun.objects.filter(pk=run_id, status=CertificationRun.Status.QUEUED).update(
        status=CertificationRun.Status.RUNNING, started_at=now
    )
    if not taken:
        return None
    return CertificationRun.objects.select_related("app", "app__organization").get(pk=run_id)


@transaction.atomic
def certification_run_finish(*, run: CertificationRun, results: list[dict]) -> CertificationRun:
    """Write every check's result and the verdict at once: passed only when every check passed.
    ``results``: dicts with ``key``, ``title``, ``passed``, ``summary``, ``evidence`` (a list of
    lines) and ``docs_url``, in the order to show them. A run no longer running (closed as abandoned
    meanwhile) is left as it is."""
    run = CertificationRun.objects.select_for_update().get(pk=run.pk)
    if run.status != CertificationRun.Status.RUNNING:
        return run
    if not results:
        raise ValueError("A run without results cannot pass or fail.")
    CertificationCheckResult.objects.bulk_create(
        [
            CertificationCheckResult(
                run=run,
                key=result["key"],
                position=position,
                title=result["title"],
                passed=bool(result["passed"]),
                summary=result["summary"],
                evidence=list(result.get("evidence") or []),
                docs_url=result["docs_url"],
            )
            for position, result in enumerate(results)
        ]
    )
    passed = all(result["passed"] for result in results)
    run.status = CertificationRun.Status.PASSED if passed else CertificationRun.Status.FAILED
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at"])
    return run


@transaction.atomic
def certification_run_error(*, run: CertificationRun, message: str) -> CertificationRun:
    """Close a run that crashed: status error, no results (whatever was computed is dropped)."""
    run = CertificationRun.objects.select_for_update().get(pk=run.pk)
    if not run.is_open:
        return run
    run.results.all().delete()
    run.status = CertificationRun.Status.ERROR
    run.error = message[:MAX_ERROR_LENGTH]
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    return run
