"""Usage per endpoint (api.endpoints): what the changelog's per-app feed and the deprecation notices
read to know which apps called what a change touches."""

import functools
from datetime import timedelta

import pytest
from django.utils import timezone

from api import usage
from api.endpoints import InvalidPattern, Pattern, calls_by_endpoint, parse_patterns, route_template
from api.usage_models import UsageHour
from tests.api.conftest import bearer, make_token
from tests.factories import AppFactory, record_calls


def test_route_templates_are_written_the_way_the_openapi_documents_write_paths():
    assert route_template("api/v1/visits/<str:visit_id>") == "/api/v1/visits/{visit_id}"
    assert route_template("fhir/r4/Patient/<resource_id>") == "/fhir/r4/Patient/{resource_id}"
    assert route_template("api/v2/visits/<str:visit_id>/cancel") == "/api/v2/visits/{visit_id}/cancel"


@pytest.mark.parametrize(
    ("pattern", "endpoint", "covers"),
    [
        ("GET /api/v1/visits/{visit_id}", "GET /api/v1/visits/{visit_id}", True),
        ("GET /api/v1/visits/{visit_id}", "POST /api/v1/visits/{visit_id}/cancel", False),
        ("/api/v1/visits", "POST /api/v1/visits", True),
        ("/api/v1/visits/", "GET /api/v1/visits/{visit_id}", True),
        ("/api/v1/visits", "GET /api/v1/visits-archive", False),
        ("POST /api/v1", "POST /api/v1/lab-result-shares", True),
        ("POST /api/v1", "GET /api/v1/lab-result-shares", False),
        ("/api/v1", "GET /api/v2/visits", False),
    ],
)
def test_a_pattern_covers_its_route_and_the_routes_below_it(pattern, endpoint, covers):
    assert Pattern.parse(pattern).covers(endpoint) is covers


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("/api/v1/visits", "GET /api/v1/visits/{visit_id}", True),
        ("GET /api/v1/visits/{visit_id}", "/api/v1/visits", True),
        ("POST /api/v1/visits", "GET /api/v1/visits", False),
        ("/api/v1/visits", "/api/v1/lab-results", False),
    ],
)
def test_two_patterns_overlap_when_they_name_a_common_endpoint(a, b, overlap):
    assert Pattern.parse(a).overlaps(Pattern.parse(b)) is overlap


@pytest.mark.parametrize("text", ["visits", "FETCH /api/v1/visits", "GET api/v1/visits", "GET /a b"])
def test_a_line_that_is_not_an_endpoint_is_refused_with_the_form_to_use(text):
    with pytest.raises(InvalidPattern):
        Pattern.parse(text)


def test_patterns_are_one_per_line_and_blank_lines_are_skipped():
    assert [str(p) for p in parse_patterns("GET /api/v1/visits\n\n  /fhir/r4/Patient/  \n")] == [
        "GET /api/v1/visits",
        "/fhir/r4/Patient",
    ]


def test_a_real_request_is_counted_under_its_method_and_route_template(api_client, app):
    raw = make_token(app, scope="system/Patient.rs")
    api_client.get("/fhir/r4/Patient/does-not-exist", **bearer(raw))
    api_client.get("/fhir/r4/Patient", **bearer(raw))
    api_client.get("/fhir/r4/Patient", **bearer(raw))
    usage.flush()
    usage.rollup()

    counted = {}
    for row in UsageHour.objects.filter(app=app):
        counted[row.endpoint] = counted.get(row.endpoint, 0) + row.count
    assert counted == {"GET /fhir/r4/Patient/{resource_id}": 1, "GET /fhir/r4/Patient": 2}


def test_calls_by_endpoint_reads_the_last_30_days_for_the_endpoints_a_pattern_covers(db):
    now = timezone.now()
    caller, other = AppFactory(), AppFactory()

    hit = functools.partial(record_calls, group="writes", status=201)
    hit(caller, "POST /api/v1/visits", 3, now - timedelta(days=2))
    hit(caller, "GET /api/v1/visits/{visit_id}", 2, now)
    hit(caller, "POST /api/v1/visits", 5, now - timedelta(days=31))  # too long ago
    hit(other, "POST /api/v2/visits", 4, now)
    usage.flush()
    usage.rollup(hours=[now - timedelta(days=2), now - timedelta(days=31)], now=now)

    found = calls_by_endpoint(patterns=parse_patterns("/api/v1/visits"), now=now)

    assert found == {
        (caller.organization_id, caller.pk, "POST /api/v1/visits"): 3,
        (caller.organization_id, caller.pk, "GET /api/v1/visits/{visit_id}"): 2,
    }
    assert calls_by_endpoint(organization_id=other.organization_id, now=now) == {
        (other.organization_id, other.pk, "POST /api/v2/visits"): 4
    }
