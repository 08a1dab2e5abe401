"""DRF's exception handler (``REST_FRAMEWORK["EXCEPTION_HANDLER"]``): every error becomes a problem.

``to_problem`` maps DRF's and Django's exceptions to catalogue codes; the error middleware uses it
too, for exceptions raised outside DRF views under ``/api/`` and ``/fhir/``. Anything it does not
know (a bug) is left to Django, which logs it and answers 500; the middleware reshapes that 500.
"""

import math

from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from api import errors
from api.problems import Problem, bearer_challenge, problem_response


def _pointer_token(part) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def _field_name(path) -> str | None:
    if not path:
        return None
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def flatten_errors(detail, path=()) -> list[dict]:
    """DRF's nested ``ValidationError.detail`` as a flat list of ``{field, pointer, message, code}``.

    ``pointer`` is an RFC 6901 JSON pointer into the request body (``#/items/1/qty``; ``#`` for the
    body as a whole), ``field`` the same place written as a path (``items[1].qty``).
    """
    if isinstance(detail, dict):
        found = []
        for key, value in detail.items():
            inner = path if key == api_settings.NON_FIELD_ERRORS_KEY else (*path, key)
            found.extend(flatten_errors(value, inner))
        return found
    if isinstance(detail, list):
        found = []
        for index, item in enumerate(detail):
            found.extend(flatten_errors(item, path if isinstance(item, str) else (*path, index)))
        return found
    return [
        {
            "field": _field_name(path),
            "pointer": "#" + "".join(f"/{_pointer_token(part)}" for part in path),
            "message": str(detail),
            "code": getattr(detail, "code", None) or "invalid",
        }
    ]


def _validation_problem(exc: exceptions.ValidationError) -> Problem:
    found = flatten_errors(exc.detail)
    fields = list(dict.fromkeys(e["field"] for e in found if e["field"]))
    if fields:
        noun = "field is" if len(fields) == 1 else "fields are"
        detail = f"{len(fields)} {noun} invalid: {', '.join(fields)}."
    else:
        detail = " ".join(e["message"] for e in found) or "The request is invalid."
    return Problem("validation_error", detail, errors=found)


def _accepted_media_types(view) -> list[str]:
    if view is None or not hasattr(view, "get_parsers"):
        return []
    return [parser.media_type for parser in view.get_parsers()]


def to_problem(exc, view=None) -> Problem | None:
    """The problem an exception is answered with, or None when it is not an expected refusal."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, Http404):
        return Problem("not_found", "Nothing was found at this address.")
    if isinstance(exc, Ratelimited):  # django-ratelimit's refusal is a PermissionDenied: never a 403
        return Problem(
            "quota_exceeded", "Too many requests from this caller; slow down.", headers={"Retry-After": "60"}
        )
    if isinstance(exc, DjangoPermissionDenied):
        return Problem("forbidden", str(exc) or None)
    if isinstance(exc, RequestDataTooBig):
        return Problem("payload_too_large", str(exc) or None)
    if isinstance(exc, SuspiciousOperation | BadRequest):
        return Problem("malformed_request", str(exc) or None)
    if not isinstance(exc, exceptions.APIException):
        return None

    detail = str(exc.detail) if not isinstance(exc.detail, list | dict) else None
    if isinstance(exc, exceptions.NotAuthenticated):
        if exc.status_code != 401:  # a view without a bearer authenticator: DRF made it 403
            return Problem("forbidden", detail)
        challenge = getattr(exc, "auth_header", None) or bearer_challenge()
        return Problem("token_required", detail, headers={"WWW-Authenticate": challenge})
    if isinstance(exc, exceptions.AuthenticationFailed):
        if exc.status_code != 401:
            return Problem("forbidden", detail)
        challenge = bearer_challenge("invalid_token", detail)
        return Problem("invalid_token", detail, headers={"WWW-Authenticate": challenge})
    if isinstance(exc, exceptions.ValidationError):
        return _validation_problem(exc)
    if isinstance(exc, exceptions.ParseError):
        return Problem("malformed_request", detail)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        accepted = _accepted_media_types(view)
        if accepted:
            detail = f"{detail} Send one of: {', '.join(accepted)}."
        return Problem("unsupported_media_type", detail, accepted_media_types=accepted)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return Problem("method_not_allowed", detail)
    if isinstance(exc, exceptions.NotAcceptable):
        return Problem("not_acceptable", detail)
    if isinstance(exc, exceptions.Throttled):
        headers, extra = {}, {}
        if exc.wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))
            extra["retry_after"] = int(headers["Retry-After"])
        return Problem("quota_exceeded", detail, headers=headers, **extra)
    if isinstance(exc, exceptions.NotFound):
        return Problem("not_found", detail)
    if isinstance(exc, exceptions.PermissionDenied):
        return Problem("forbidden", detail)
    code = errors.code_for_status(exc.status_code)
    return Problem(code, detail, status=exc.status_code)


def exception_handler(exc, context):
    """DRF's hook: render what ``to_problem`` makes of ``exc`` for the request's path."""
    problem = to_problem(exc, context.get("view"))
    if problem is None:
        return None  # DRF re-raises; Django logs it and the error middleware answers 500
    set_rollback()
    return problem_response(context["request"], problem)
