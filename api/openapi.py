"""One OpenAPI document per published API version, and its committed copy.

``schema_for("v1")`` is what drf-spectacular makes of the code's ``/api/v1/`` operations, and nothing
else: the FHIR base and the other version have documents (or a CapabilityStatement) of their own.
``/api/schema/<version>/`` serves it; ``openapi/<version>.json`` is its committed copy, the published
contract (``manage.py openapi_export`` writes it, ``manage.py openapi_check`` compares it with the code
and asks an OpenAPI diff tool whether any difference breaks a client). See docs/versioning.md.
"""

import copy
import json
from pathlib import Path

from django.conf import settings
from django.core import checks
from drf_spectacular.generators import SchemaGenerator

from api.problems import PROBLEM_CONTENT_TYPE

# The versions a partner can call, oldest first. A version is published once listed here: from then on
# its document only grows (docs/versioning.md says what "grows" allows).
VERSIONS = ("v1", "v2")

CONTRACT_DIR = Path(settings.BASE_DIR) / "openapi"

_COMMON = (
    "Requests carry an OAuth 2.0 bearer token (`Authorization: Bearer <token>`); every error is an RFC 9457 "
    "problem (`application/problem+json`) whose `type` is its documentation page ([Errors](/docs/errors/)).\n\n"
    "A published version only grows: [Versioning](/docs/versioning/) says what may be added and what would "
    "need a new version. A deprecated part of the API says so on every response (`Deprecation`, `Sunset` and "
    "`Link` headers) and, once retired, answers 410 `endpoint_retired`."
)

DESCRIPTIONS = {
    "v1": f"The platform's workflow APIs, version 1. {_COMMON}",
    "v2": f"The platform's workflow APIs, version 2. It differs from v1 in one thing: a visit's time is a "
    f"`period` object and its status an object ([Migrating to v2](/docs/migrating-to-v2/)). {_COMMON}",
}


def visit_statuses() -> list[str]:
    """A visit's status codes, one enum in every document (SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"])."""
    from api.workflows import visits

    return [visits.BOOKED, visits.CANCELLED]


class UnknownVersion(LookupError):
    pass


def check_version(version: str) -> str:
    if version not in VERSIONS:
        raise UnknownVersion(version)
    return version


def path_prefix(version: str) -> str:
    return f"/api/{version}/"


class VersionSchemaGenerator(SchemaGenerator):
    """drf-spectacular's generator, kept to the operations under ``/api/<api_version>/``."""

    def _get_paths_and_endpoints(self):
        prefix = path_prefix(self.api_version)
        return [endpoint for endpoint in super()._get_paths_and_endpoints() if endpoint[0].startswith(prefix)]

    def get_schema(self, request=None, public=False):
        schema = super().get_schema(request=None, public=True)  # never request-dependent: it is committed
        schema["info"] = {
            "title": f"{settings.SPECTACULAR_SETTINGS['TITLE']} {self.api_version}",
            "version": self.api_version,
            "description": DESCRIPTIONS[self.api_version],
        }
        document_deprecations(schema)
        return schema


# Any operation can be deprecated and, later, retired by data (api.models.Deprecation), so every
# response may carry these headers and every operation may answer 410 (api/deprecations.py).
DEPRECATION_HEADERS = {
    "Deprecation": {
        "description": "Sent once this operation is deprecated (RFC 9745): '@' and the Unix time of the "
        "announcement, e.g. @1795478400. See /docs/versioning/.",
        "schema": {"type": "string", "example": "@1795478400"},
    },
    "Sunset": {
        "description": "Sent with Deprecation (RFC 8594): the HTTP-date after which the operation may answer "
        "410 Gone, e.g. Wed, 30 Jun 2027 00:00:00 GMT.",
        "schema": {"type": "string", "example": "Wed, 30 Jun 2027 00:00:00 GMT"},
    },
    "Link": {
        "description": 'Sent with Deprecation: the migration guide (rel="deprecation") and, when there is one, '
        'the replacement (rel="successor-version").',
        "schema": {"type": "string"},
    },
}


def document_deprecations(schema: dict) -> None:
    schema.setdefault("components", {})["headers"] = DEPRECATION_HEADERS
    refs = {name: {"$ref": f"#/components/headers/{name}"} for name in DEPRECATION_HEADERS}
    retired = {
        "description": "This operation was deprecated and has now been retired: the problem (endpoint_retired) "
        "names its replacement and the migration guide.",
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.setdefault("410", copy.deepcopy(retired))
            for response in responses.values():
                response.setdefault("headers", {}).update(refs)


_SCHEMAS: dict[str, dict] = {}


def schema_for(version: str, *, fresh: bool = False) -> dict:
    """The OpenAPI document of ``version`` as the code describes it. The code does not change while a
    process runs, so each process makes each document once (``fresh`` makes it again)."""
    check_version(version)
    if fresh or version not in _SCHEMAS:
        _SCHEMAS[version] = VersionSchemaGenerator(api_version=version).get_schema()
    return _SCHEMAS[version]


def render(schema: dict) -> str:
    """The committed form: sorted keys, two-space indent, one trailing newline; the same document is
    always the same bytes, so a diff of two commits is a diff of their contracts."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def committed_path(version: str) -> Path:
    return CONTRACT_DIR / f"{check_version(version)}.json"


def problem_free_4xx(schema: dict) -> list[str]:
    """Every 4xx response that is *not* documented as ``application/problem+json`` only (should be none)."""
    found = []
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if status.startswith("4") and set(response.get("content", {})) != {PROBLEM_CONTENT_TYPE}:
                    found.append(f"{method.upper()} {path} {status}")
    return found


@checks.register(deploy=True)
def published_documents_check(app_configs, **kwargs):
    """drf-spectacular's own deploy check, on the documents that are published: each version's (its check
    would generate one document of every route, where v1 and v2 share operation ids by design)."""
    from drf_spectacular.drainage import GENERATOR_STATS

    found = []
    for version in VERSIONS:
        try:
            with GENERATOR_STATS.silence():
                VersionSchemaGenerator(api_version=version).get_schema()
        except Exception as exc:  # the check reports it; Django goes on
            found.append(checks.Error(f"{version}: schema generation failed: {exc}", id="api.E001"))
        for warning in sorted(GENERATOR_STATS._warn_cache):
            found.append(checks.Warning(f"{version}: {warning}", id="api.W001"))
        for error in sorted(GENERATOR_STATS._error_cache):
            found.append(checks.Warning(f"{version}: {error}", id="api.W002"))
    return found
