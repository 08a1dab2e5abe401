"""The shared-cache snapshot of bearer tokens: one cache hit per request, forgotten at once when
the token, its app, organization, tier or user changes."""

import pytest
from django.core.cache import cache
from django.urls import reverse
from oauth2_provider.models import AccessToken

from partners import services, token_cache
from partners.models import Tier
from partners.oauth import token_checksum
from tests.api.conftest import bearer, make_token
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/token-info"


@pytest.fixture(autouse=True)
def _shared_cache(settings):
    settings.TOKEN_CACHE_SECONDS = 60


def test_a_cached_token_costs_no_query(client, app, django_assert_num_queries):
    raw = make_token(app, scope="events.read")
    assert client.get(URL, **bearer(raw)).status_code == 200
    with django_assert_num_queries(0):
        assert client.get(URL, **bearer(raw)).status_code == 200


def test_revocation_takes_effect_on_the_very_next_request(client, app):
    raw = make_token(app, scope="events.read")
    assert client.get(URL, **bearer(raw)).status_code == 200
    AccessToken.objects.filter(application=app).delete()
    response = client.get(URL, **bearer(raw))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_suspension_is_seen_at_once(client, app):
    raw = make_token(app, scope="events.read")
    assert client.get(URL, **bearer(raw)).status_code == 200
    services.organization_suspend(organization=app.organization, actor=UserFactory(is_staff=True), reason="Audit")
    assert client.get(URL, **bearer(raw)).status_code == 401  # its tokens were revoked with it


def test_a_tier_change_is_seen_at_once(client, app):
    raw = make_token(app, scope="events.read")
    assert client.get(URL, **bearer(raw)).json()["tier"]["slug"] == "sandbox"
    organization = app.organization
    organization.tier = Tier.objects.get(slug="verified")
    organization.save()
    assert client.get(URL, **bearer(raw)).json()["tier"]["slug"] == "verified"


def test_editing_a_tier_is_seen_at_once(client, app):
    raw = make_token(app, scope="events.read")
    assert client.get(URL, **bearer(raw)).json()["tier"]["write_access"] is True
    Tier.objects.filter(slug="sandbox").update(write_access=False)  # no signal: bulk update
    tier = Tier.objects.get(slug="sandbox")
    tier.save()  # an admin saving the tier in Django admin sends it
    assert client.get(URL, **bearer(raw)).json()["tier"]["write_access"] is False


def test_deactivating_the_user_is_seen_at_once(client, app):
    user = UserFactory()
    raw = make_token(app, scope="events.read", user=user)
    assert client.get(URL, **bearer(raw)).status_code == 200
    user.is_active = False
    user.save()
    assert client.get(URL, **bearer(raw)).status_code == 401


def test_url_name_is_stable():
    assert reverse("api:token-info") == URL


def test_a_token_put_back_while_its_revocation_was_uncommitted_is_dropped_at_commit(
    client, app, django_capture_on_commit_callbacks
):
    raw = make_token(app, scope="events.read")
    checksum = token_checksum(raw)
    as_read_before = token_cache.access_token_by_checksum(checksum)
    with django_capture_on_commit_callbacks(execute=True):
        AccessToken.objects.get(token_checksum=checksum).delete()
        # Another request read the row before the deletion committed, and caches what it read.
        cache.set_many({token_cache.PREFIX + checksum: as_read_before, token_cache.STAMP_PREFIX + checksum: 1}, 60)
    response = client.get(URL, **bearer(raw))
    assert response.status_code == 401
