"""/api/v1/ and /api/v2/ side by side; deprecations as data: headers from the announcement, 410 once
enforced; each version's OpenAPI document and interactive reference."""

import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.db import DatabaseError
from django.urls import reverse
from django.utils import timezone
from django.utils.http import parse_http_date

from api import deprecations
from api.models import Deprecation
from api.openapi import VERSIONS, problem_free_4xx, published_documents_check
from api.seed import seed_deprecations
from tests.api.conftest import make_token
from tests.api.workflows.helpers import VISIT_SCOPES, bookable, get, post, problem
from tests.factories import AppFactory, UserFactory

pytestmark = pytest.mark.django_db

V1 = "/api/v1/visits"
V2 = "/api/v2/visits"
GUIDE = "http://testserver/docs/migrating-to-v2/"


def patient_token(app, patient_id="p1", scope=VISIT_SCOPES):
    return make_token(app, scope, user=UserFactory(fhir_patient_id=patient_id))


def book(client, raw, url, slot="Slot/sl1"):
    return post(client, url, raw, {"slot": slot, "patient": "Patient/p1", "reason": "Annual check-up"})


def deprecate(prefix="v1/visits", *, announced=-1, sunset=200, enforced=None, **fields) -> Deprecation:
    """A published deprecation of ``prefix``; the dates are days from now (negative: past)."""
    now = timezone.now().replace(microsecond=0)
    return Deprecation.objects.create(
        path_prefix=prefix,
        title=fields.pop("title", "v1 visits"),
        summary="v2 reads a visit's time as a period.",
        replacement=fields.pop("replacement", "/api/v2/visits"),
        migration_guide=fields.pop("migration_guide", "/docs/migrating-to-v2/"),
        announced_at=now + timedelta(days=announced),
        sunset_at=now + timedelta(days=sunset),
        enforced_at=None if enforced is None else now + timedelta(days=enforced),
        **fields,
    )


def assert_deprecated(response, rule: Deprecation):
    assert response["Deprecation"] == f"@{int(rule.announced_at.timestamp())}"
    assert parse_http_date(response["Sunset"]) == int(rule.sunset_at.timestamp())
    assert response["Sunset"].endswith(" GMT")
    links = response["Link"]
    assert f'<{GUIDE}>; rel="deprecation"; type="text/html"' in links
    assert '<http://testserver/api/v2/visits>; rel="successor-version"' in links


def assert_not_deprecated(response):
    for header in ("Deprecation", "Sunset", "Link"):
        assert header not in response, (header, response[header])


# --- v1 and v2 side by side ------------------------------------------------------------------------------


def test_one_visit_reads_differently_in_v1_and_v2(client):
    app = AppFactory()
    bookable(app, slots=("sl1", "sl2"))
    raw = patient_token(app)
    booked = book(client, raw, V2)
    assert booked.status_code == 201, booked.content
    assert booked["Location"].endswith(f"/api/v2/visits/{booked.json()['id']}")
    visit_id = booked.json()["id"]

    v1 = get(client, f"{V1}/{visit_id}", raw).json()
    v2 = get(client, f"{V2}/{visit_id}", raw).json()
    assert v1["id"] == v2["id"] == visit_id
    # v1: flat start/end and a status string; v2: a period and a status object.
    assert {"start", "end"} <= set(v1) and "period" not in v1
    assert v1["status"] == "booked"
    assert set(v2["period"]) == {"start", "end"} and "start" not in v2 and "end" not in v2
    assert (v2["period"]["start"], v2["period"]["end"]) == (v1["start"], v1["end"])
    assert v2["status"]["code"] == "booked" and v2["status"]["cancellable"] is True
    # Lists too.
    assert get(client, V1, raw).json()["data"][0]["status"] == "booked"
    assert get(client, V2, raw).json()["data"][0]["status"]["code"] == "booked"
    # A visit booked through v1 reads in v2's shape.
    other = book(client, raw, V1, slot="Slot/sl2").json()
    assert set(get(client, f"{V2}/{other['id']}", raw).json()["period"]) == {"start", "end"}


def test_v2_is_a_complete_version(client):
    app = AppFactory()
    raw = make_token(app, "openid consent.read")
    for version in VERSIONS:
        name = "token-info" if version == "v1" else f"{version}-token-info"
        assert reverse(f"api:{name}") == f"/api/{version}/token-info"
        response = client.get(f"/api/{version}/token-info", HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert response.status_code == 200, response.content
        consent = client.get(f"/api/{version}/consents/status?patient=p1", HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert consent.status_code == 200, consent.content
    assert reverse("api:consents") == "/api/v1/consents"
    assert reverse("api:v2-consent-revoke", kwargs={"consent_id": 3}) == "/api/v2/consents/3/revoke"


# --- deprecation headers -----------------------------------------------------------------------------------


def test_v1_visits_carry_the_deprecation_headers_and_v2_does_not(client):
    app = AppFactory()
    bookable(app)
    raw = patient_token(app)
    rule = deprecate()
    booked = book(client, raw, V1)
    assert booked.status_code == 201
    assert_deprecated(booked, rule)
    assert_deprecated(get(client, V1, raw), rule)
    assert_deprecated(get(client, f"{V1}/{booked.json()['id']}", raw), rule)
    # Errors too: no token, a visit that does not exist, an address nothing serves under the prefix.
    for response, status, code in (
        (client.get(V1), 401, "token_required"),
        (get(client, f"{V1}/visit-nope", raw), 404, "not_found"),
        (client.get(f"{V1}/visit-nope/cancel/extra"), 404, "not_found"),
        (client.delete(V1, HTTP_AUTHORIZATION=f"Bearer {raw}"), 405, "method_not_allowed"),
    ):
        problem(response, status, code)
        assert_deprecated(response, rule)
    # v2 and the rest of v1 are untouched.
    assert_not_deprecated(get(client, V2, raw))
    assert_not_deprecated(client.get("/api/v1/token-info"))
    assert_not_deprecated(client.get("/api/v1/visitsfoo"))  # a prefix covers whole path segments


def test_no_headers_before_the_announcement(client):
    app = AppFactory()
    bookable(app)
    raw = patient_token(app)
    deprecate(announced=3)
    response = get(client, V1, raw)
    assert response.status_code == 200
    assert_not_deprecated(response)


def test_an_unpublished_deprecation_does_nothing(client):
    app = AppFactory()
    bookable(app)
    raw = patient_token(app)
    deprecate(published=False, enforced=-1)
    response = get(client, V1, raw)
    assert response.status_code == 200
    assert_not_deprecated(response)


def test_after_enforcement_it_is_410_before_any_token_is_needed(client):
    app = AppFactory()
    bookable(app)
    raw = patient_token(app)
    visit = book(client, raw, V1).json()
    rule = deprecate(announced=-200, sunset=-2, enforced=-1)
    for response in (client.get(V1), get(client, f"{V1}/{visit['id']}", raw), book(client, raw, V1)):
        body = problem(response, 410, "endpoint_retired")
        assert body["migration_guide"] == GUIDE
        assert body["replacement"] == "http://testserver/api/v2/visits"
        assert datetime.fromisoformat(body["sunset"]) == rule.sunset_at
        assert GUIDE in body["detail"] and "/api/v2/visits" in body["detail"]
        assert GUIDE in body["fix"]
        assert body["type"] == "http://testserver/docs/errors/endpoint_retired/"
        assert_deprecated(response, rule)
    assert "WWW-Authenticate" not in client.get(V1)
    # v2 still answers.
    assert get(client, f"{V2}/{visit['id']}", raw).status_code == 200


def test_a_whole_version_and_the_longest_prefix_wins(client):
    raw = make_token(AppFactory(), "openid")
    whole = deprecate(
        "v1/",
        title="API v1",
        replacement="/api/v2/",
        migration_guide="https://developer.example.org/docs/migrating-to-v2/",
        sunset=400,
    )
    visits = deprecate("/api/v1/visits/", sunset=200)
    token_info = client.get("/api/v1/token-info", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert token_info.status_code == 200
    assert token_info["Deprecation"] == f"@{int(whole.announced_at.timestamp())}"
    assert parse_http_date(token_info["Sunset"]) == int(whole.sunset_at.timestamp())
    assert token_info["Link"] == (
        '<https://developer.example.org/docs/migrating-to-v2/>; rel="deprecation"; type="text/html", '
        '<http://testserver/api/v2/>; rel="successor-version"'
    )
    assert parse_http_date(client.get(V1)["Sunset"]) == int(visits.sunset_at.timestamp())
    assert_not_deprecated(client.get("/api/v2/token-info"))
    assert_not_deprecated(client.get("/api/schema/v1/"))


def test_a_deprecation_without_a_replacement_links_the_guide_only(client):
    deprecate(replacement="")
    response = client.get(V1)
    assert response["Link"] == f'<{GUIDE}>; rel="deprecation"; type="text/html"'


def test_the_rules_are_cached_and_a_save_or_delete_refreshes_them(client, django_assert_num_queries):
    rule = deprecate(announced=5)
    assert deprecations.rule_for("/api/v1/visits") is not None  # loads the cache
    with django_assert_num_queries(0):
        assert deprecations.rule_for("/api/v1/visits/abc").prefix == "v1/visits"
        assert deprecations.rule_for("/api/v2/visits") is None
        assert deprecations.rule_for("/fhir/r4/Appointment") is None
    assert_not_deprecated(client.get(V1))
    rule.announced_at = timezone.now() - timedelta(minutes=1)
    rule.save()  # seen at once, not after the cache expires
    assert_deprecated(client.get(V1), rule)
    rule.delete()
    assert_not_deprecated(client.get(V1))


def test_fhir_is_untouched(client):
    deprecate("fhir/", enforced=-1)  # a prefix is relative to /api/: this one covers /api/fhir/...
    response = client.get("/fhir/r4/metadata")
    assert response.status_code == 200
    assert_not_deprecated(response)


def test_the_sandbox_seed_deprecates_v1_visits_once():
    assert seed_deprecations() == {"v1/visits": "created"}
    Deprecation.objects.filter(path_prefix="v1/visits").update(title="Edited by an admin")
    assert seed_deprecations() == {"v1/visits": "kept"}
    rule = Deprecation.objects.get()
    assert (rule.title, rule.replacement, rule.migration_guide, rule.enforced_at) == (
        "Edited by an admin",
        "/api/v2/visits",
        "/docs/migrating-to-v2/",
        None,
    )
    assert rule.announced_at == datetime(2026, 11, 24, tzinfo=UTC)
    assert rule.sunset_at == datetime(2027, 6, 30, tzinfo=UTC)


def test_the_admin_lists_and_filters_deprecations(admin_client):
    deprecate()
    deprecate("v1/consents", announced=10, title="v1 consents")
    page = admin_client.get(reverse("admin:api_deprecation_changelist"))
    assert page.status_code == 200
    assert b"announced" in page.content and b"scheduled" in page.content
    enforced = admin_client.get(reverse("admin:api_deprecation_changelist") + "?state=scheduled")
    assert b"v1 consents" in enforced.content and b"v1/visits" not in enforced.content


# --- the OpenAPI documents ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_each_version_has_its_own_document(client, version):
    response = client.get(f"/api/schema/{version}/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["version"] == version
    assert "/docs/versioning/" in schema["info"]["description"]
    paths = schema["paths"]
    assert paths and all(path.startswith(f"/api/{version}/") for path in paths)
    assert {f"/api/{version}/visits", f"/api/{version}/token-info", f"/api/{version}/consents"} <= set(paths)
    operation_ids = [operation["operationId"] for ops in paths.values() for operation in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))
    # Every operation needs the bearer token, and every 4xx is a problem.
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert all(op["security"] == [{"bearerAuth": []}] for ops in paths.values() for op in ops.values())
    assert problem_free_4xx(schema) == []
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for ops in paths.values():
        for operation in ops.values():
            assert operation["responses"]["410"]["content"]["application/problem+json"]["schema"] == problem_ref
            success = next(status for status in operation["responses"] if status.startswith("2"))
            assert set(operation["responses"][success]["headers"]) >= {
                "Deprecation",
                "Sunset",
                "Link",
            }


def test_the_documents_carry_each_version_s_own_visit(client):
    v1 = client.get("/api/schema/v1/").json()
    v2 = client.get("/api/schema/v2/").json()
    read = "/api/{v}/visits/{{visit_id}}"
    assert v1["paths"][read.format(v="v1")]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/VisitV1"
    }
    assert v2["paths"][read.format(v="v2")]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/VisitV2"
    }
    assert {"start", "end"} <= set(v1["components"]["schemas"]["VisitV1"]["properties"])
    assert "period" in v2["components"]["schemas"]["VisitV2"]["properties"]
    # No document carries another version's shapes.
    for schema, other in ((v1, "V2"), (v2, "V1")):
        assert not [name for name in schema["components"]["schemas"] if name.endswith(other)]


def test_an_unknown_version_is_a_404_problem(client):
    for url in ("/api/schema/v9/", "/api/reference/v9/", "/api/schema/latest/"):
        body = problem(client.get(url), 404, "not_found")
        assert "v1, v2" in body["detail"]


def test_the_documents_need_no_token_and_ignore_a_bad_one(client):
    response = client.get("/api/schema/v2/", HTTP_AUTHORIZATION="Bearer expired-or-garbage")
    assert response.status_code == 200


@pytest.mark.parametrize("version", VERSIONS)
def test_the_reference_renders_with_local_assets_only(client, version):
    response = client.get(f"/api/reference/{version}/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert f"/api/schema/{version}/" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        assert asset.startswith("/static/drf_spectacular_sidecar/"), asset
        assert finders.find(asset.removeprefix("/static/")), asset
    # Nothing is fetched from elsewhere: no absolute URL anywhere in the page or its inline script.
    assert not re.search(r"https?://(?!www\.w3\.org)", html), re.findall(r"https?://[^\s\"']+", html)


def test_openapi_export_check_passes_on_the_committed_documents():
    out = StringIO()
    call_command("openapi_export", "--check", stdout=out)
    assert "up to date" in out.getvalue()


def test_the_published_documents_generate_without_warnings():
    """drf-spectacular's warnings (an unresolvable type, a colliding name...) on any published document."""
    assert published_documents_check(None) == []


def test_without_the_deprecations_table_requests_go_on(client, monkeypatch):
    def broken():
        raise DatabaseError("no such table: api_deprecation")

    monkeypatch.setattr(deprecations, "_load", broken)
    problem(client.get(V1), 401, "token_required")
