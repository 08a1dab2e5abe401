import secrets
from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, set_token_value

from partners.models import App
from tests.factories import AppFactory, UserFactory


def make_token(app, scope: str = "", user=None, expires_in: int = 3600) -> str:
    """Store a DOT access token for ``app`` the way DOT does (hashed at rest) and return the raw value."""
    raw = secrets.token_urlsafe(30)
    token = AccessToken(user=user, application=app, expires=timezone.now() + timedelta(seconds=expires_in), scope=scope)
    set_token_value(token, raw)
    token.save()
    return raw


def bearer(raw: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def app(db) -> App:
    return AppFactory()


@pytest.fixture
def patient(db):
    return UserFactory(fhir_patient_id="123")


@pytest.fixture
def api_client(client):
    """The test client, answering server errors with the response instead of re-raising them."""
    client.raise_request_exception = False
    return client
