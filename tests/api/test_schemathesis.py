"""Property-based run of the published contract: schemathesis generates requests from the committed
openapi/<version>.json for every operation and sends them, in process, to the Django WSGI app with a token
of broad scopes. Every response must be no server error, with a documented status and content type, a body
that fits the documented schema and documented headers (the deprecation headers included: v1 visits are
deprecated here, as in the sandbox)."""

from datetime import timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.models import Deprecation
from api.openapi import committed_path
from tests.api.conftest import make_token
from tests.api.workflows.helpers import bookable
from tests.factories import AppFactory, OrganizationFactory

# Examples per operation: 15 operations per version, two versions, well under a minute in all.
MAX_EXAMPLES = 20
SCOPES = (
    "appointments.read appointments.write consent.read consent.write lab_results.read lab_results.share "
    "eligibility.read events.read webhooks.manage"
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

APPLICATION = get_wsgi_application()


def published(version: str):
    schema = schemathesis.openapi.from_path(committed_path(version))
    schema.app = APPLICATION
    schema.config.generation.update(modes=[GenerationMode.POSITIVE], max_examples=MAX_EXAMPLES, deterministic=True)
    return schema


V1 = published("v1")
V2 = published("v2")


@pytest.fixture
def in_test_transaction():
    """Requests through the WSGI handler in the test's own transaction: Django's test client does the same,
    closing no database connection at the start or end of a request (on PostgreSQL that would close the
    connection the test runs in)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def caller(db, in_test_transaction) -> dict:
    """A provider's sandbox app with a client-credentials token of every workflow scope, a patient who
    consented and a free slot; and v1 visits deprecated, as in the sandbox."""
    app = AppFactory(organization=OrganizationFactory(partner_type="provider"))
    bookable(app)
    Deprecation.objects.create(
        path_prefix="v1/visits",
        title="v1 visits",
        summary="Use v2.",
        replacement="/api/v2/visits",
        migration_guide="/docs/migrating-to-v2/",
        announced_at=timezone.now() - timedelta(days=1),
        sunset_at=timezone.now() + timedelta(days=200),
    )
    return {"Authorization": f"Bearer {make_token(app, SCOPES)}"}


RUN = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)


@V1.parametrize()
@RUN
def test_v1_contract_holds(case, caller):
    case.call_and_validate(headers=caller, checks=CHECKS)


@V2.parametrize()
@RUN
def test_v2_contract_holds(case, caller):
    case.call_and_validate(headers=caller, checks=CHECKS)
