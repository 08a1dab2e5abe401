"""A passing certification run from the last 30 days: on the tier checklist, and enforced when an admin
approves a tier that requires one (in the service and through the admin's approve action)."""

from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from partners import selectors, services
from partners.certification_models import CertificationRun
from partners.exceptions import InvalidState
from partners.models import TierUpgradeRequest
from tests.factories import AppFactory, OrganizationFactory, TierUpgradeRequestFactory, UserFactory, tier

pytestmark = pytest.mark.django_db


@pytest.fixture
def upgrade():
    """A Verified organization asking for Production, which requires certification."""
    organization = OrganizationFactory(tier=tier("verified"), baa_signed_at=timezone.now(), baa_version="2026-1")
    request = TierUpgradeRequestFactory(organization=organization)
    assert request.to_tier.requires_certification
    return request


def run(organization, *, status=CertificationRun.Status.PASSED, days_ago: float = 1) -> CertificationRun:
    app = AppFactory(organization=organization)
    return CertificationRun.objects.create(
        app=app, status=status, finished_at=timezone.now() - timedelta(days=days_ago)
    )


def approve(upgrade_request):
    return services.tier_upgrade_request_approve(upgrade_request=upgrade_request, reviewer=UserFactory(is_staff=True))


def test_approval_without_a_passing_run_is_refused_naming_the_requirement(upgrade):
    run(upgrade.organization, status=CertificationRun.Status.FAILED)
    with pytest.raises(InvalidState, match="requires a passing certification run in the last 30 days"):
        approve(upgrade)
    upgrade.refresh_from_db()
    upgrade.organization.refresh_from_db()
    assert upgrade.is_pending
    assert upgrade.organization.tier.slug == "verified"


def test_approval_with_a_recent_passing_run_goes_through(upgrade):
    run(upgrade.organization, days_ago=29)
    assert approve(upgrade)
    upgrade.organization.refresh_from_db()
    assert upgrade.organization.tier.slug == "production"


def test_a_pass_31_days_old_no_longer_counts(upgrade):
    run(upgrade.organization, days_ago=31)
    with pytest.raises(InvalidState, match="certification"):
        approve(upgrade)


def test_tiers_that_do_not_require_it_are_approved_without_a_run():
    upgrade = TierUpgradeRequestFactory()
    assert not upgrade.to_tier.requires_certification
    assert approve(upgrade)


def test_the_admin_approve_action_shows_the_refusal(client, upgrade):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.post(
        reverse("admin:partners_tierupgraderequest_changelist"),
        {"action": "approve", ACTION_CHECKBOX_NAME: [upgrade.pk], "confirm": "yes"},
        follow=True,
    )
    assert b"requires a passing certification run in the last 30 days" in response.content
    assert TierUpgradeRequest.objects.get(pk=upgrade.pk).is_pending


def test_the_checklist_shows_the_run_or_how_to_get_one(upgrade):
    organization = upgrade.organization
    (item,) = [r for r in selectors.tier_checklist(organization) if r.key == "certification"]
    assert not item.done
    assert "Certification page" in item.detail
    passed = run(organization, days_ago=2)
    (item,) = [r for r in selectors.tier_checklist(organization) if r.key == "certification"]
    assert item.done
    assert item.detail == f"{passed.app.name} passed run #{passed.pk} on {passed.finished_at:%Y-%m-%d}."
