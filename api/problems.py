"""Problem details: the one error shape of the API, and its FHIR twin.

``Problem`` is the exception a view, an authentication or a permission class raises to refuse a
request with a catalogue code (``api.errors``). ``problem_response`` renders any problem for the
path it answers: RFC 9457 ``application/problem+json`` everywhere, except under ``/fhir/`` where the
same fields travel in a FHIR ``OperationOutcome`` (``application/fhir+json``), as extensions and in
``diagnostics``. DRF's exception handler (``api.exceptions``) and the error middleware
(``api.middleware``) both render through here, so every refusal looks the same, and every refusal
of an identified app is recorded for "Why was I denied?" (``api.denials``).
"""

import json

from django.http import HttpResponse
from rest_framework.exceptions import APIException

from api import denials, errors

PROBLEM_CONTENT_TYPE = "application/problem+json"
FHIR_CONTENT_TYPE = "application/fhir+json"
API_PATH_PREFIX = "/api/"
FHIR_PATH_PREFIX = "/fhir/"
REALM = "marketplace"
# Problem fields every body carries, in this order; anything else a problem adds follows them.
PROBLEM_FIELDS = ("type", "title", "status", "detail", "instance", "code", "correlation_id", "layer", "fix")


class Problem(APIException):
    """A refusal with a catalogue code. Raise it from a view, authentication or permission class.

    ``detail`` says what happened this time (the catalogue's title is the fallback); ``fix``
    overrides the catalogue's generic advice when the refusal knows better (e.g. which tier to
    ask for). ``headers`` are sent as they are (``WWW-Authenticate``, ``Retry-After``); keyword
    ``extra`` fields become members of the problem body (``missing_scopes=[...]``).
    """

    def __init__(
        self,
        code: str,
        detail: str | None = None,
        *,
        fix: str | None = None,
        status: int | None = None,
        headers: dict | None = None,
        **extra,
    ):
        entry = errors.get(code)
        self.entry = entry
        self.status_code = status or entry.status
        self.fix = fix or entry.fix
        self.headers = dict(headers or {})
        self.extra = extra
        super().__init__(detail=detail or entry.title, code=code)

    @property
    def code(self) -> str:
        return self.entry.code

    @property
    def layer(self) -> str:
        return self.entry.layer

    def __repr__(self):
        return f"Problem({self.code!r}, {str(self.detail)!r})"


# --- where a request belongs ---------------------------------------------------------------------


def is_fhir_path(request) -> bool:
    return request.path_info.startswith(FHIR_PATH_PREFIX)


def is_api_path(request) -> bool:
    """Paths whose errors are never HTML: the workflow APIs and the FHIR base."""
    return request.path_info.startswith((API_PATH_PREFIX, FHIR_PATH_PREFIX))


def is_problem_response(response) -> bool:
    content_type = response.get("Content-Type", "")
    return content_type.startswith((PROBLEM_CONTENT_TYPE, FHIR_CONTENT_TYPE))


# --- WWW-Authenticate ----------------------------------------------------------------------------


def _quoted(value: str) -> str:
    """An RFC 7230 quoted-string holding ``value`` (ASCII only, per RFC 6750 §3)."""
    value = value.translate({0x2018: "'", 0x2019: "'", 0x201C: "'", 0x201D: "'"})
    value = "".join(ch if 0x20 <= ord(ch) < 0x7F else "?" for ch in value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer_challenge(error: str | None = None, description: str | None = None, scope: str | None = None) -> str:
    """The ``WWW-Authenticate`` value of RFC 6750 §3; without ``error`` when no token was sent (§3.1)."""
    parts = [f"realm={_quoted(REALM)}"]
    if error:
        parts.append(f"error={_quoted(error)}")
    if description:
        parts.append(f"error_description={_quoted(description)}")
    if scope:
        parts.append(f"scope={_quoted(scope)}")
    return "Bearer " + ", ".join(parts)


# --- rendering -----------------------------------------------------------------------------------


def type_uri(request, code: str) -> str:
    return request.build_absolute_uri(errors.docs_path(code))


def problem_body(request, problem: Problem) -> dict:
    """The RFC 9457 body: the standard members, the platform's members, then the problem's own."""
    body = {
        "type": type_uri(request, problem.code),
        "title": problem.entry.title,
        "status": problem.status_code,
        "detail": str(problem.detail),
        # The path only: a query string may carry what must never be echoed (an access_token).
        "instance": request.path,
        "code": problem.code,
        "correlation_id": getattr(request, "request_id", None),
        "layer": problem.layer,
        "fix": problem.fix,
    }
    for key, value in problem.extra.items():
        if key not in body:
            body[key] = value
    return body


def _structure_definition(request, name: str) -> str:
    return request.build_absolute_uri(f"{FHIR_PATH_PREFIX}StructureDefinition/{name}")


def operation_outcome(request, problem: Problem) -> dict:
    """The same problem as a FHIR R4 ``OperationOutcome``.

    The problem's type, code, layer, correlation id and fix ride as extensions on the resource
    (URLs under ``<base>/fhir/StructureDefinition/``) and, for clients that only show text, in the
    first issue's ``diagnostics``. A validation error adds one issue per invalid field.
    """
    body = problem_body(request, problem)
    extension = [
        {"url": _structure_definition(request, "problem-type"), "valueUri": body["type"]},
        {"url": _structure_definition(request, "problem-code"), "valueCode": body["code"]},
        {"url": _structure_definition(request, "problem-layer"), "valueCode": body["layer"]},
        {"url": _structure_definition(request, "problem-fix"), "valueString": body["fix"]},
    ]
    if body["correlation_id"]:
        extension.insert(
            2, {"url": _structure_definition(request, "correlation-id"), "valueString": body["correlation_id"]}
        )
    severity = "fatal" if problem.status_code >= 500 else "error"
    diagnostics = (
        f"{body['detail']} Fix: {body['fix']} "
        f"(code {body['code']}, layer {body['layer']}, correlation id {body['correlation_id']}; see {body['type']})"
    )
    issues = [
        {
            "severity": severity,
            "code": problem.entry.fhir_issue,
            "details": {
                "coding": [
                    {
                        "system": request.build_absolute_uri("/docs/errors/"),
                        "code": body["code"],
                        "display": body["title"],
                    }
                ],
                "text": body["detail"],
            },
            "diagnostics": diagnostics,
        }
    ]
    for error in body.get("errors") or []:
        issue = {"severity": "error", "code": "invalid", "diagnostics": error["message"]}
        if error.get("field"):
            issue["expression"] = [error["field"]]
        issues.append(issue)
    return {"resourceType": "OperationOutcome", "extension": extension, "issue": issues}


def problem_response(request, problem: Problem) -> HttpResponse:
    """The response for ``problem`` in the shape the path calls for, with the problem's headers."""
    if is_fhir_path(request):
        payload, content_type = operation_outcome(request, problem), FHIR_CONTENT_TYPE
    else:
        payload, content_type = problem_body(request, problem), PROBLEM_CONTENT_TYPE
    # JSON is UTF-8 by definition (RFC 8259), so neither media type needs a charset parameter.
    response = HttpResponse(
        json.dumps(payload, ensure_ascii=False, default=str).encode(),
        status=problem.status_code,
        content_type=content_type,
    )
    for header, value in problem.headers.items():
        response[header] = value
    response.problem_code = problem.code  # for the usage counters (api.usage)
    # A 401, 403 or 429 of an identified app is kept for its members' "Why was I denied?"; this
    # never raises, so a cache that is down costs the record, never the response.
    denials.record(request, problem)
    return response
