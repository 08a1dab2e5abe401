"""Fixtures for OAuth flows driven by a real client library (authlib) against a live server."""

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from partners.models import App
from tests.factories import DEFAULT_PASSWORD, AppFactory, OrganizationFactory, UserFactory, tier

REDIRECT_URI = "http://127.0.0.1:8765/callback"
CLIENT_SECRET = "flow-test-client-secret-0123456789"


@pytest.fixture
def server(live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    settings.ALLOW_PRIVATE_NETWORK_URLS = True

    class Server:
        url = live_server.url
        authorize = f"{live_server.url}/oauth/authorize/"
        token = f"{live_server.url}/oauth/token/"
        introspect = f"{live_server.url}/oauth/introspect/"
        revoke = f"{live_server.url}/oauth/revoke_token/"
        fhir_base = f"{live_server.url}/fhir/r4"

    return Server


def make_app(*, tier_slug="sandbox", grant_types=("authorization-code",), client_type="confidential", **fields):
    organization = fields.pop("organization", None) or OrganizationFactory(tier=tier(tier_slug))
    return AppFactory(
        organization=organization,
        grant_types=list(grant_types),
        authorization_grant_type=grant_types[0],
        client_type=client_type,
        redirect_uris=REDIRECT_URI,
        client_secret=CLIENT_SECRET if client_type == App.CLIENT_CONFIDENTIAL else "",
        **fields,
    )


@pytest.fixture
def patient_user():
    return UserFactory(email="pat@example.com", fhir_patient_id="p-123")


class Browser:
    """A person in a browser: logs in to the portal and answers the approval page."""

    def __init__(self, server, user):
        self.server = server
        self.session = requests.Session()
        page = self.session.get(f"{server.url}/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = self.session.post(
            f"{server.url}/accounts/login/",
            data={"csrfmiddlewaretoken": token, "username": user.email, "password": DEFAULT_PASSWORD},
            headers={"Referer": f"{server.url}/accounts/login/"},
            allow_redirects=False,
        )
        assert response.status_code == 302, "login failed"

    def open(self, url):
        return self.session.get(url, allow_redirects=False)

    def approve(self, authorization_url, *, allow=True, untick=(), extra=()):
        """Open the approval page and answer it as a person would: send its hidden fields and the
        checkboxes left ticked (minus ``untick``, plus any forged ``extra`` pairs); return the
        redirect back to the app."""
        page = self.open(authorization_url)
        assert page.status_code == 200, page.text[:500]
        response = self.answer(page.text, authorization_url, allow=allow, untick=untick, extra=extra)
        assert response.status_code == 302, response.text[:500]
        return response.headers["Location"]

    def answer(self, page_html, authorization_url, *, allow=True, untick=(), extra=()):
        """POST the approval form found in ``page_html``; return the raw response."""
        fields = [(k, html.unescape(v)) for k, v in HIDDEN_INPUT.findall(page_html)]
        fields += [
            (k, html.unescape(v)) for k, v in TICKED_CHECKBOX.findall(page_html) if html.unescape(v) not in set(untick)
        ]
        fields += list(extra)
        if allow:
            fields.append(("allow", "Authorize"))
        return self.session.post(
            authorization_url.split("?")[0], data=fields, headers={"Referer": authorization_url}, allow_redirects=False
        )


HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
TICKED_CHECKBOX = re.compile(r'<input type="checkbox" name="([^"]+)" value="([^"]*)"[^>]*\schecked\b')


def query_of(url: str) -> dict:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
