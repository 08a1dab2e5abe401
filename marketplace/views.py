"""Views that belong to no app: probes and the shared rate-limit refusal."""

import json

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from marketplace import health, metrics


def healthz(request):
    """Liveness: the process answers. Never touches a dependency, so a slow database never
    makes a load balancer kill healthy web workers."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Readiness: the dependencies this process needs to serve (database, cache, Celery broker) are
    reachable. Each is asked with a short time limit (``marketplace.health``), so a dead one answers
    503 within seconds; the body lists every check. Never cached by anything in between."""
    checks = health.checks()
    ready = all(check.ok for check in checks)
    response = JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": {check.name: check.detail for check in checks}},
        status=200 if ready else 503,
    )
    add_never_cache_headers(response)
    return response


# django-ratelimit's refusal, in each path's own error shape. marketplace imports no app, so these
# mirror by hand what api.problems renders for the catalogue's ``quota_exceeded``.
RETRY_AFTER = 60  # the refusal does not say which rate tripped; the portal's windows are a minute or more
QUOTA_EXCEEDED = "quota_exceeded"
QUOTA_EXCEEDED_DOCS = f"/docs/errors/{QUOTA_EXCEEDED}/"
QUOTA_EXCEEDED_TITLE = "Too many requests"
QUOTA_EXCEEDED_FIX = "Wait the number of seconds in the Retry-After header before retrying, and spread requests out."


def _problem(request) -> dict:
    return {
        "type": request.build_absolute_uri(QUOTA_EXCEEDED_DOCS),
        "title": QUOTA_EXCEEDED_TITLE,
        "status": 429,
        "detail": f"Too many requests from your network in a short time; retry in {RETRY_AFTER} s.",
        "instance": request.path,
        "code": QUOTA_EXCEEDED,
        "correlation_id": getattr(request, "request_id", None),
        "layer": "policy",
        "fix": QUOTA_EXCEEDED_FIX,
        "retry_after": RETRY_AFTER,
    }


def _operation_outcome(request) -> dict:
    problem = _problem(request)

    def definition(name):
        return request.build_absolute_uri(f"/fhir/StructureDefinition/{name}")

    extension = [
        {"url": definition("problem-type"), "valueUri": problem["type"]},
        {"url": definition("problem-code"), "valueCode": problem["code"]},
        {"url": definition("problem-layer"), "valueCode": problem["layer"]},
        {"url": definition("problem-fix"), "valueString": problem["fix"]},
    ]
    if problem["correlation_id"]:
        extension.insert(2, {"url": definition("correlation-id"), "valueString": problem["correlation_id"]})
    diagnostics = (
        f"{problem['detail']} Fix: {problem['fix']} (code {problem['code']}, layer {problem['layer']}, "
        f"correlation id {problem['correlation_id']}; see {problem['type']})"
    )
    issue = {
        "severity": "error",
        "code": "throttled",
        "details": {
            "coding": [
                {
                    "system": request.build_absolute_uri("/docs/errors/"),
                    "code": QUOTA_EXCEEDED,
                    "display": QUOTA_EXCEEDED_TITLE,
                }
            ],
            "text": problem["detail"],
        },
        "diagnostics": diagnostics,
    }
    return {"resourceType": "OperationOutcome", "extension": extension, "issue": [issue]}


def _oauth_error(request) -> dict:
    return {
        "error": QUOTA_EXCEEDED,
        "error_description": f"Too many requests from your network in a short time; retry in {RETRY_AFTER} s.",
        "error_uri": f"{settings.PUBLIC_BASE_URL}{QUOTA_EXCEEDED_DOCS}",
        "retry_after": RETRY_AFTER,
    }


def ratelimited(request, exception):
    """django-ratelimit refuses with 403; a throttled caller must see 429, in the shape its path
    speaks (problem+json on /api/, an OperationOutcome on /fhir/, an OAuth error on /oauth/) and
    never HTML to a program: the portal's page only to a caller that accepts HTML."""
    metrics.rate_limited("portal")  # django-ratelimit's limits on the portal's forms (sign-up, log-in, ...)
    path = request.path_info
    if path.startswith("/fhir/"):
        response = _json(_operation_outcome(request), "application/fhir+json")
    elif path.startswith("/oauth/"):
        response = _json(_oauth_error(request), "application/json")
        response["Cache-Control"] = "no-store"
    elif path.startswith("/api/") or not request.accepts("text/html"):
        response = _json(_problem(request), "application/problem+json")
    else:
        response = TemplateResponse(request, "429.html", status=429)
    response["Retry-After"] = str(RETRY_AFTER)
    return response


def _json(payload: dict, content_type: str) -> HttpResponse:
    return HttpResponse(json.dumps(payload, ensure_ascii=False).encode(), status=429, content_type=content_type)
