"""Every problem's ``type`` URI is a real page: one per error code, generated from the catalogue."""

import pytest
from django.utils.html import escape

from api import errors
from tests.api.fhir import helpers as fhir
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("code", sorted(errors.ERRORS))
def test_every_error_code_has_its_page_with_the_explanation_and_the_fix(client, code):
    error = errors.ERRORS[code]
    response = client.get(errors.docs_path(code))
    assert response.status_code == 200
    page = response.content.decode()
    assert f"<code>{code}</code>" in page
    assert str(error.status) in page
    for text in (error.explanation, error.fix):
        assert escape(text) in page


def test_the_errors_page_lists_every_code_with_a_link(client):
    page = client.get("/docs/errors/").content.decode()
    for code in errors.ERRORS:
        assert f'href="/docs/errors/{code}/"' in page


def test_the_type_uri_of_a_real_refusal_resolves(client):
    app = AppFactory()
    raw = fhir.system_token(app, scope="consent.read")
    refused = client.get("/api/v1/visits", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert refused.status_code == 403
    type_uri = refused.json()["type"]
    page = client.get(type_uri.removeprefix("http://testserver"))
    assert page.status_code == 200 and refused.json()["code"] in page.content.decode()


def test_a_renamed_code_s_old_uri_leads_to_its_new_page(client):
    response = client.get("/docs/errors/rate_limited/")
    assert response.status_code == 301 and response["Location"] == "/docs/errors/quota_exceeded/"
    assert "rate_limited" in client.get("/docs/errors/quota_exceeded/").content.decode()


def test_an_unknown_code_is_a_404_that_lists_the_pages(client):
    response = client.get("/docs/errors/no_such_code/")
    assert response.status_code == 404
    assert "/docs/errors/" in response.content.decode()
