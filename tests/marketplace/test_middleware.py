import json
import logging

import pytest

from marketplace.logging import formatter_factory

pytestmark = pytest.mark.django_db


def test_a_request_id_is_made_when_none_is_given(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert len(response["X-Request-ID"]) == 32


def test_a_well_formed_request_id_is_echoed(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="partner-trace-0001")
    assert response["X-Request-ID"] == "partner-trace-0001"


@pytest.mark.parametrize("bad", ["short", "has spaces in it", "x" * 200, "<script>alert(1)</script>", "ümlaut-id-1234"])
def test_a_malformed_request_id_is_replaced(client, bad):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=bad)
    assert response["X-Request-ID"] != bad
    assert len(response["X-Request-ID"]) == 32


def test_every_log_line_is_json_with_the_request_id(client, caplog):
    caplog.set_level(logging.INFO, logger="marketplace.access")
    client.get("/healthz", HTTP_X_REQUEST_ID="trace-for-logs-42")
    formatter = formatter_factory("json")
    lines = [json.loads(formatter.format(record)) for record in caplog.records if record.name == "marketplace.access"]
    assert lines, "the access log wrote nothing"
    line = lines[-1]
    assert line["request_id"] == "trace-for-logs-42"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/healthz", 200)


def test_library_log_lines_carry_the_request_id_too(client, caplog):
    """A record from plain ``logging`` inside the request still gets the id (structlog's foreign chain)."""
    import structlog

    structlog.contextvars.bind_contextvars(request_id="bound-in-context-1")
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Not Found: %s", ("/x",), None)
    line = json.loads(formatter_factory("json").format(record))
    structlog.contextvars.clear_contextvars()
    assert line["request_id"] == "bound-in-context-1"
    assert line["event"] == "Not Found: /x"


def test_readyz_reports_dependencies(client):
    body = client.get("/readyz").json()  # each check in detail: tests/marketplace/test_health.py
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "broker"}
