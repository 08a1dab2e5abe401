"""Views that belong to no app: probes and the shared rate-limit refusal."""

from django.db import connection
from django.http import JsonResponse
from django.template.response import TemplateResponse


def healthz(request):
    """Liveness: the process answers. Never touches a dependency, so a slow database never
    makes a load balancer kill healthy web workers."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Readiness: the dependencies this process needs to serve are reachable."""
    from django.core.cache import cache

    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # report any driver failure, whatever its class
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        cache.set("readyz", "1", 5)
        checks["cache"] = "ok" if cache.get("readyz") == "1" else "error: value not kept"
    except Exception as exc:
        checks["cache"] = f"error: {exc.__class__.__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def ratelimited(request, exception):
    """django-ratelimit refuses with 403 by default; a throttled caller must see 429."""
    response = TemplateResponse(request, "429.html", status=429)
    response["Retry-After"] = "60"
    return response
