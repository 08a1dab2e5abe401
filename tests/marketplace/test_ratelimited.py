"""django-ratelimit's refusal is a 429 in the shape of the path it refuses, never a 403, and never
HTML to a program."""

import pytest
from django.http import HttpResponse
from django.urls import path
from django_ratelimit.decorators import ratelimit

from marketplace.urls import urlpatterns as project_urlpatterns

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def _limited(name):
    @ratelimit(group=f"test:{name}", key="ip", rate="1/m", block=True)
    def view(request):
        return HttpResponse("ok")

    return view


urlpatterns = [
    path("api/v1/limited-test", _limited("api")),
    path("fhir/r4/limited-test", _limited("fhir")),
    path("oauth/limited-test/", _limited("oauth")),
    path("limited-test/", _limited("portal")),
    *project_urlpatterns,
]


def refused(client, url, **headers):
    assert client.get(url, **headers).status_code == 200
    response = client.get(url, **headers)
    assert response.status_code == 429
    assert response["Retry-After"] == "60"
    return response


def test_on_api_it_is_a_quota_exceeded_problem(client):
    response = refused(client, "/api/v1/limited-test", HTTP_X_REQUEST_ID="limited-trace-0001")
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "http://testserver/docs/errors/quota_exceeded/"
    assert body["status"] == 429
    assert body["code"] == "quota_exceeded"
    assert body["instance"] == "/api/v1/limited-test"
    assert body["correlation_id"] == "limited-trace-0001"
    assert body["retry_after"] == 60


def test_on_fhir_it_is_a_throttled_operation_outcome(client):
    response = refused(client, "/fhir/r4/limited-test")
    assert response["Content-Type"] == "application/fhir+json"
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "throttled"
    assert body["issue"][0]["details"]["coding"][0]["code"] == "quota_exceeded"
    codes = {e["url"].rsplit("/", 1)[-1]: e for e in body["extension"]}
    assert codes["problem-code"]["valueCode"] == "quota_exceeded"


def test_on_oauth_it_is_an_oauth_error(client):
    response = refused(client, "/oauth/limited-test/")
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == "quota_exceeded"
    assert body["error_uri"] == "http://testserver/docs/errors/quota_exceeded/"
    assert body["retry_after"] == 60


def test_a_browser_gets_the_page(client):
    response = refused(client, "/limited-test/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert response["Content-Type"].startswith("text/html")
    assert "Too many attempts" in response.content.decode()


def test_a_program_that_does_not_take_html_gets_a_problem_anywhere(client):
    response = refused(client, "/limited-test/", HTTP_ACCEPT="application/json")
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "quota_exceeded"
