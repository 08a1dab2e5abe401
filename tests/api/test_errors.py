"""The error catalogue is complete and renderable on its own."""

import pytest

from api import errors

REQUIRED = {
    "invalid_token": 401,
    "insufficient_scope": 403,
    "tier_policy": 403,
    "environment_policy": 403,
    "organization_suspended": 403,
    "partner_type_policy": 403,
    "consent_required": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "unsupported_media_type": 415,
    "payload_too_large": 413,
    "validation_error": 400,
    "malformed_request": 400,
    "server_error": 500,
    "quota_exceeded": 429,
}
# The FHIR R4 IssueType codes the catalogue may use.
FHIR_ISSUE_TYPES = {
    "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown", "expired",
    "forbidden", "suppressed", "processing", "not-supported", "duplicate", "multiple-matches", "not-found",
    "deleted", "too-long", "code-invalid", "extension", "too-costly", "business-rule", "conflict",
    "transient", "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled", "informational",
}  # fmt: skip


@pytest.mark.parametrize(("code", "status"), REQUIRED.items())
def test_every_required_code_is_catalogued_with_its_status(code, status):
    assert errors.get(code).status == status


@pytest.mark.parametrize("entry", errors.ERRORS.values(), ids=lambda e: e.code)
def test_every_entry_is_complete(entry):
    assert entry.layer in errors.LAYERS
    assert entry.fhir_issue in FHIR_ISSUE_TYPES
    assert entry.title and entry.explanation and entry.fix
    assert entry.code.isidentifier() and entry.code.islower()
    assert errors.docs_path(entry.code) == f"/docs/errors/{entry.code}/"


def test_bare_http_statuses_map_to_codes_with_that_status():
    for status, code in errors.STATUS_CODES.items():
        assert errors.get(code).status == status
    assert errors.code_for_status(418) == "client_error"
    assert errors.code_for_status(502) == "server_error"


def test_layers_are_named_per_code():
    assert errors.get("invalid_token").layer == "token"
    assert errors.get("insufficient_scope").layer == "scope"
    assert errors.get("tier_policy").layer == "policy"
    assert errors.get("consent_required").layer == "data"
    assert errors.get("not_found").layer == "request"
    assert errors.get("server_error").layer == "server"
