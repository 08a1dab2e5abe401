"""Request-scoped middleware: correlation ids and the access log."""

import re
import time
import uuid

import structlog

REQUEST_ID_HEADER = "X-Request-ID"
# Accept a caller's id only when it is safe to echo and to log: printable, no spaces, bounded.
_WELL_FORMED_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")

access_log = structlog.get_logger("marketplace.access")


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from_header(value: str | None) -> str | None:
    if value and _WELL_FORMED_REQUEST_ID.fullmatch(value):
        return value
    return None


class RequestIDMiddleware:
    """Gives each request a correlation id, taken from a well-formed ``X-Request-ID`` or made anew.

    The id is on ``request.request_id``, in every log line of the request (structlog context
    variables) and echoed on the response, so a partner quoting it lets support find the request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_from_header(request.headers.get(REQUEST_ID_HEADER)) or new_request_id()
        request.request_id = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            response = self.get_response(request)
        finally:
            # Everything the request bound (request id, client id, token id...) ends with it.
            structlog.contextvars.clear_contextvars()
        response[REQUEST_ID_HEADER] = request_id
        return response


class AccessLogMiddleware:
    """One structured line per request: method, path, status, duration and who made it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        user = getattr(request, "user", None)
        access_log.info(
            "request",
            request_id=getattr(request, "request_id", None),
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            user_id=user.pk if user is not None and user.is_authenticated else None,
            remote_addr=request.META.get("REMOTE_ADDR"),
        )
        return response
