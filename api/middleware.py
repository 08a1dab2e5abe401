"""Errors under ``/api/`` and ``/fhir/`` are problems, never HTML pages.

DRF views already answer with problems (``api.exceptions``). This middleware covers what happens
outside them: an address no view serves (Django's 404), a plain view's 405, an exception Django
turns into its 500 page, a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``. It sits right after the access
log, so the log records the status the caller actually got. The portal's pages are untouched.
"""

from django.conf import settings

from api import errors
from api.exceptions import to_problem
from api.problems import Problem, bearer_challenge, is_api_path, is_problem_response, problem_response

# Headers of a bare error response that still mean something once it is reshaped.
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")

BARE_DETAILS = {
    404: "Nothing is served at this address.",
    500: "The platform failed while handling the request.",
}


def _content_length(request) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


class ApiErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_api_path(request):
            return self.get_response(request)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = _content_length(request)
        if limit is not None and length and length > limit:
            # DRF's parsers read the raw stream, which Django does not bound: refuse before reading.
            problem = Problem(
                "payload_too_large",
                f"The request body is {length:,} bytes; the limit is {limit:,} bytes.",
                max_bytes=limit,
            )
            return problem_response(request, problem)
        response = self.get_response(request)
        if response.status_code >= 400 and not is_problem_response(response):
            response = self.reshape(request, response)
        return response

    def process_exception(self, request, exception):
        """Expected refusals raised outside DRF (Http404, PermissionDenied, RequestDataTooBig...).
        Anything else goes on to Django, which logs it, signals it and renders its 500 page, which
        ``__call__`` then reshapes; ``DEBUG_PROPAGATE_EXCEPTIONS`` keeps its meaning."""
        if not is_api_path(request):
            return None
        problem = to_problem(exception)
        return problem_response(request, problem) if problem is not None else None

    def reshape(self, request, response):
        status = response.status_code
        code = errors.code_for_status(status)
        detail = BARE_DETAILS.get(status)
        if status == 405 and response.get("Allow"):
            detail = f"{request.method} is not allowed here. Allowed: {response['Allow']}."
        problem = Problem(code, detail, status=status)
        reshaped = problem_response(request, problem)
        for header in KEPT_HEADERS:
            if header in response:
                reshaped[header] = response[header]
        # Django logs each 4xx/5xx once; the reshaped response stands for the one already logged.
        reshaped._has_been_logged = getattr(response, "_has_been_logged", False)
        if status == 401 and "WWW-Authenticate" not in reshaped:
            reshaped["WWW-Authenticate"] = bearer_challenge()
        return reshaped
