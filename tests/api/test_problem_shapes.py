"""One error shape: problem+json under /api/, OperationOutcome under /fhir/, HTML pages elsewhere."""

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from api.problems import PROBLEM_FIELDS
from tests.api.conftest import bearer, make_token

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]


def extensions(body) -> dict:
    return {
        e["url"].rsplit("/", 1)[1]: next(v for k, v in e.items() if k.startswith("value")) for e in body["extension"]
    }


def test_every_problem_carries_every_field(client):
    response = client.get("/api/v1/token-info", HTTP_X_REQUEST_ID="partner-trace-0042")
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert list(body)[: len(PROBLEM_FIELDS)] == list(PROBLEM_FIELDS)
    assert body["type"] == "http://testserver/docs/errors/token_required/"
    assert body["type"].startswith("http") and body["type"].endswith(f"/docs/errors/{body['code']}/")
    assert body["status"] == response.status_code == 401
    assert body["instance"] == "/api/v1/token-info"
    assert body["correlation_id"] == response["X-Request-ID"] == "partner-trace-0042"
    assert body["title"] and body["detail"] and body["fix"]


def test_a_generated_request_id_is_the_correlation_id(client):
    response = client.get("/api/nothing-here")
    assert response.json()["correlation_id"] == response["X-Request-ID"]


def test_an_unknown_api_address_is_a_404_problem(client):
    response = client.get("/api/v9/nothing-here")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["code"], body["layer"]) == ("not_found", "request")
    assert body["instance"] == "/api/v9/nothing-here"


def test_an_unknown_fhir_address_is_a_404_operation_outcome(client):
    response = client.get("/fhir/r4/NoSuchResource/1", HTTP_X_REQUEST_ID="fhir-trace-0001")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/fhir+json"
    body = response.json()
    outcome = OperationOutcome.model_validate(body)
    assert outcome.issue[0].code == "not-found"
    found = extensions(body)
    assert found["problem-code"] == "not_found"
    assert found["correlation-id"] == "fhir-trace-0001" == response["X-Request-ID"]
    assert found["problem-type"] == "http://testserver/docs/errors/not_found/"
    assert found["problem-layer"] == "request"
    assert found["problem-fix"]
    assert all(e["url"].startswith("http://testserver/fhir/StructureDefinition/") for e in body["extension"])
    diagnostics = body["issue"][0]["diagnostics"]
    assert "fhir-trace-0001" in diagnostics and "not_found" in diagnostics and found["problem-fix"] in diagnostics


def test_a_fhir_401_is_a_security_operation_outcome_with_the_challenge(client):
    response = client.get("/fhir/r4/TestObservation")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="marketplace"'
    outcome = OperationOutcome.model_validate(response.json())
    assert outcome.issue[0].code == "security"
    assert outcome.issue[0].details.coding[0].code == "token_required"


def test_method_not_allowed_is_a_problem_with_allow(client, app):
    response = client.delete("/api/v1/token-info", **bearer(make_token(app, "openid")))
    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "method_not_allowed"
    assert "GET" in response["Allow"]


def test_a_plain_text_body_is_415(client, app):
    raw = make_token(app, "events.read")
    response = client.post("/api/test/events", "hello", content_type="text/plain", **bearer(raw))
    assert response.status_code == 415
    body = response.json()
    assert body["code"] == "unsupported_media_type"
    assert body["accepted_media_types"] == ["application/json"]
    assert "application/json" in body["detail"]


def test_malformed_json_is_400_malformed_request(client, app):
    raw = make_token(app, "events.read")
    response = client.post("/api/test/events", "{not json", content_type="application/json", **bearer(raw))
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_validation_errors_list_each_field(client, app):
    raw = make_token(app, "appointments.write")
    payload = {"reason": "x" * 30, "slots": [1, 0]}
    response = client.post("/api/test/visits", payload, content_type="application/json", **bearer(raw))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["detail"] == "2 fields are invalid: reason, slots[1]."
    by_pointer = {e["pointer"]: e for e in body["errors"]}
    assert set(by_pointer) == {"#/reason", "#/slots/1"}
    assert by_pointer["#/reason"]["code"] == "max_length"
    assert by_pointer["#/slots/1"]["field"] == "slots[1]"


def test_validation_errors_become_fhir_issues(client, app):
    raw = make_token(app, "appointments.write")
    response = client.post("/fhir/r4/test/visits", {"slots": []}, content_type="application/json", **bearer(raw))
    assert response.status_code == 400
    outcome = OperationOutcome.model_validate(response.json())
    assert outcome.issue[0].code == "invalid"
    assert [issue.expression for issue in outcome.issue[1:]] == [["reason"]]


def test_an_oversized_body_is_413_before_it_is_read(client, app, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    raw = make_token(app, "events.read")
    body = '{"a": "' + "x" * 2000 + '"}'
    response = client.post("/api/test/events", body, content_type="application/json", **bearer(raw))
    assert response.status_code == 413
    problem = response.json()
    assert problem["code"] == "payload_too_large"
    assert problem["max_bytes"] == 1000
    assert response["Content-Type"] == "application/problem+json"


def test_a_body_under_the_limit_is_read(client, app, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    raw = make_token(app, "events.read")
    response = client.post("/api/test/events", {"a": 1}, content_type="application/json", **bearer(raw))
    assert response.status_code == 201


@pytest.mark.parametrize("path", ["/api/test/broken", "/api/test/plain-broken"])
def test_a_view_that_raises_is_a_500_problem(api_client, app, settings, path):
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    response = api_client.get(path, **bearer(make_token(app, "openid")))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["code"], body["layer"]) == ("server_error", "server")
    assert "boom" not in response.content.decode()  # no exception text leaks to the caller
    assert body["correlation_id"] == response["X-Request-ID"]


def test_a_fhir_view_that_raises_is_a_fatal_operation_outcome(api_client, app, settings):
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    response = api_client.get("/fhir/r4/test/broken", **bearer(make_token(app, "openid")))
    assert response.status_code == 500
    outcome = OperationOutcome.model_validate(response.json())
    assert (outcome.issue[0].severity, outcome.issue[0].code) == ("fatal", "exception")


def test_the_portal_404_stays_html(client):
    response = client.get("/no-such-portal-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"We could not find that page" in response.content


def test_an_oversized_portal_post_is_not_a_problem(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    response = client.post("/accounts/login/", {"username": "x" * 100, "password": "y"})
    assert not response["Content-Type"].startswith("application/problem+json")
