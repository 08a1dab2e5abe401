"""An app's Certification page: its runs, each check's result with its evidence and docs link, and the
button that starts a run.

Members of the app's organization see the page (anyone else gets 404, as for the app itself); the
service checks the acting member may manage apps (developers and above) and that the app is a sandbox
app, and refuses a second run while one is open. The run itself is a Celery task (``api.certification``).
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from api.certification import CHECKS, certification_run_request
from partners import certification_selectors, selectors
from portal.views import _app_or_404, perform, rate_limited


@login_required
def certification(request, pk):
    app = _app_or_404(request, pk)
    runs = certification_selectors.runs_of(app)
    return render(
        request,
        "portal/app_certification.html",
        {
            "app": app,
            "organization": app.organization,
            "membership": selectors.membership_for(user=request.user, organization=app.organization),
            "runs": runs,
            "open_run": next((run for run in runs if run.is_open), None),
            "passing": certification_selectors.passing_run(app.organization),
            "checks": CHECKS,
        },
    )


@login_required
@require_POST
@rate_limited(group="portal:certification", key="user", rate="20/h")
def certification_start(request, pk):
    app = _app_or_404(request, pk)
    return perform(
        request,
        lambda: certification_run_request(app=app, user=request.user),
        success=lambda run: f"Certification run #{run.pk} is queued. Its results appear here when it ends.",
        then=reverse("portal:app-certification", args=[app.pk]),
    )
