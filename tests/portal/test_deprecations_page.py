"""/deprecations/: the published deprecations, from the rows that send the headers."""

from datetime import timedelta

import pytest
from django.utils import timezone

from api.models import Deprecation
from tests.factories import DeprecationFactory

pytestmark = pytest.mark.django_db


def deprecation(prefix, **fields):
    now = timezone.now()
    defaults = {
        "summary": "Use **the new one**. <script>alert(1)</script>",
        "announced_at": now - timedelta(days=1),
        "sunset_at": now + timedelta(days=30, hours=1),
    }
    return DeprecationFactory(path_prefix=prefix, **{**defaults, **fields})


def test_a_published_deprecation_shows_its_dates_countdown_replacement_and_guide(client):
    deprecation("v1/visits")
    page = client.get("/deprecations/").content.decode()
    assert "v1/visits goes away" in page and "/api/v1/visits/" in page
    assert "30 days left" in page and "announced" in page
    assert "/api/v2/visits" in page and 'href="/docs/migrating-to-v2/"' in page
    assert "<strong>the new one</strong>" in page and "<script>alert(1)</script>" not in page


def test_drafts_are_not_listed_and_an_enforced_one_says_so(client):
    deprecation("v1/drafts", published=False)
    deprecation("v1/old", sunset_at=timezone.now() - timedelta(days=2), enforced_at=timezone.now() - timedelta(days=1))
    page = client.get("/deprecations/").content.decode()
    assert "v1/drafts goes away" not in page
    assert "v1/old goes away" in page and "enforced" in page and "days left" not in page


def test_nothing_deprecated_says_so(client):
    Deprecation.objects.all().delete()
    assert "Nothing is deprecated today." in client.get("/deprecations/").content.decode()
