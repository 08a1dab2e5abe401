"""Reads of certification runs: an app's runs for the portal, and whether an organization holds a
passing run recent enough for the tier checklist and the approval of a tier that requires one."""

from datetime import datetime

from django.db.models import Prefetch
from django.utils import timezone

from partners.certification_models import PASS_VALID_FOR, CertificationCheckResult, CertificationRun
from partners.models import App, Organization

RUNS_SHOWN = 20


def runs_of(app: App, *, limit: int = RUNS_SHOWN) -> list[CertificationRun]:
    """The app's latest runs, newest first, each with its results in order."""
    return list(
        CertificationRun.objects.filter(app=app)
        .select_related("started_by")
        .prefetch_related(Prefetch("results", queryset=CertificationCheckResult.objects.order_by("position")))
        .order_by("-created_at", "-pk")[:limit]
    )


def open_run(app: App) -> CertificationRun | None:
    return CertificationRun.objects.filter(app=app, status__in=CertificationRun.OPEN).first()


def passing_run(organization: Organization, *, now: datetime | None = None) -> CertificationRun | None:
    """The organization's latest run that passed and finished within ``PASS_VALID_FOR`` (30 days), of
    any of its apps; None when there is none."""
    cutoff = (now or timezone.now()) - PASS_VALID_FOR
    return (
        CertificationRun.objects.filter(
            app__organization=organization,
            status=CertificationRun.Status.PASSED,
            finished_at__gte=cutoff,
        )
        .select_related("app")
        .order_by("-finished_at")
        .first()
    )
