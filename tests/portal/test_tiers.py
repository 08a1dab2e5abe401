from django.urls import reverse

from partners import services
from partners.models import Membership, TierUpgradeRequest
from partners.tiers import BAA_VERSION, SECURITY_QUESTIONNAIRE
from tests.factories import OrganizationFactory, TierUpgradeRequestFactory, UserFactory, tier
from tests.portal.conftest import login_as


def questionnaire(answer="yes"):
    data = {}
    for question in SECURITY_QUESTIONNAIRE:
        data[f"q_{question.key}"] = answer
        data[f"q_{question.key}_notes"] = f"notes on {question.key}"
    return data


def test_tier_page_shows_capabilities_quotas_comparison_and_checklist(owner_client):
    page = owner_client.get(reverse("portal:tiers"))
    assert page.status_code == 200
    text = page.text
    for expected in (
        "Your tier:",
        "Sandbox",
        'Verified <span class="muted">(next)</span>',
        "Production credentials",
        "Write access",
        "Webhook subscriptions",
        "Patient-app access token lifetime",
        "1 hour",
        "5 minutes",
        "30 days",  # sandbox refresh tokens
        "90 days",  # verified refresh tokens
        "<code>patient/*.read</code>",
        "<code>system/*.read</code>",  # added by Verified
        "FHIR reads (GET /fhir/r4/&lt;Resource&gt;/&lt;id&gt;)",
        "10,000",  # sandbox FHIR reads per day
        "30,000",  # verified FHIR reads per day
        "Security questionnaire answered",
        "Approved by a platform admin",
        "Answer it in the upgrade request below.",
        "Encryption" if False else SECURITY_QUESTIONNAIRE[0].text,
    ):
        assert expected in text, expected
    assert "✗" in text


def test_an_upgrade_request_needs_the_questionnaire_for_verified(owner_client, owner):
    response = owner_client.post(reverse("portal:upgrade-request"), {"justification": "We are ready."})
    assert response.status_code == 200
    assert "Answer yes or no." in response.text
    assert not TierUpgradeRequest.objects.exists()


def test_an_upgrade_request_creates_a_pending_request(owner_client, owner):
    data = {
        "justification": "Backend services.",
        "evidence_links": "https://acme.example/security",
        **questionnaire(),
    }
    response = owner_client.post(reverse("portal:upgrade-request"), data)
    assert response.status_code == 302
    upgrade = TierUpgradeRequest.objects.get()
    assert upgrade.status == TierUpgradeRequest.Status.PENDING
    assert upgrade.to_tier.slug == "verified"
    assert upgrade.requested_by == owner.user
    assert upgrade.questionnaire_answers[SECURITY_QUESTIONNAIRE[0].key] == {
        "answer": "yes",
        "notes": f"notes on {SECURITY_QUESTIONNAIRE[0].key}",
    }

    page = owner_client.get(reverse("portal:tiers"))
    assert "Your request is pending" in page.text
    assert "Withdraw the request" in page.text
    assert "Send upgrade request" not in page.text
    assert "Submitted" in page.text  # the questionnaire item of the checklist is done
    assert "✓" in page.text


def test_bad_evidence_links_show_inline(owner_client):
    data = {"evidence_links": "ftp://nope", **questionnaire()}
    response = owner_client.post(reverse("portal:upgrade-request"), data)
    assert "Not a web address: ftp://nope" in response.text
    assert 'id="id_evidence_links_error"' in response.text
    assert not TierUpgradeRequest.objects.exists()


def test_the_baa_is_asked_for_when_the_next_tier_needs_it(client, db):
    organization = OrganizationFactory(tier=tier("verified"))
    login_as(client, Membership.Role.ADMIN, organization=organization)
    page = client.get(reverse("portal:tiers"))
    assert f"version {BAA_VERSION}" in page.text
    assert 'name="baa_accepted"' in page.text

    response = client.post(reverse("portal:upgrade-request"), questionnaire())
    assert "needs the business associate agreement accepted" in response.text
    assert not TierUpgradeRequest.objects.exists()

    response = client.post(reverse("portal:upgrade-request"), {**questionnaire(), "baa_accepted": "on"})
    assert response.status_code == 302
    upgrade = TierUpgradeRequest.objects.get()
    assert upgrade.to_tier.slug == "production"
    assert upgrade.baa_accepted
    organization.refresh_from_db()
    assert organization.baa_version == BAA_VERSION


def test_withdrawing_a_pending_request(owner_client, owner):
    upgrade = TierUpgradeRequestFactory(organization=owner.organization, requested_by=owner.user)
    response = owner_client.post(reverse("portal:upgrade-withdraw", args=[upgrade.pk]), follow=True)
    assert "is withdrawn" in response.text
    upgrade.refresh_from_db()
    assert upgrade.status == TierUpgradeRequest.Status.WITHDRAWN
    assert "Send upgrade request" in response.text


def test_another_organizations_request_cannot_be_withdrawn(owner_client):
    foreign = TierUpgradeRequestFactory()
    assert owner_client.post(reverse("portal:upgrade-withdraw", args=[foreign.pk])).status_code == 404
    foreign.refresh_from_db()
    assert foreign.is_pending


def test_a_rejection_reason_is_visible_on_the_tiers_page(owner_client, owner):
    admin = UserFactory(is_staff=True, email="reviewer@platform.example")
    upgrade = TierUpgradeRequestFactory(organization=owner.organization, requested_by=owner.user)
    services.tier_upgrade_request_reject(
        upgrade_request=upgrade, reviewer=admin, reason="Your incident-response plan names no contact."
    )
    page = owner_client.get(reverse("portal:tiers"))
    assert "Rejected" in page.text
    assert "Your incident-response plan names no contact." in page.text
    assert "Platform admin" in page.text
    assert "reviewer@platform.example" not in page.text
    assert "Send upgrade request" in page.text  # a new request can follow


def test_an_approval_moves_the_tier_shown(owner_client, owner):
    admin = UserFactory(is_staff=True)
    upgrade = TierUpgradeRequestFactory(organization=owner.organization, requested_by=owner.user)
    services.tier_upgrade_request_approve(upgrade_request=upgrade, reviewer=admin, reason="Welcome aboard.")
    page = owner_client.get(reverse("portal:tiers"))
    assert "badge-tier-verified" in page.text
    assert "Approved" in page.text
    assert "Welcome aboard." in page.text


def test_a_developer_cannot_request_an_upgrade(client, owner):
    login_as(client, Membership.Role.DEVELOPER, organization=owner.organization)
    page = client.get(reverse("portal:tiers"))
    assert "Send upgrade request" not in page.text
    assert "Only owners and admins can request a tier upgrade" in page.text
    response = client.post(reverse("portal:upgrade-request"), questionnaire())
    assert response.status_code == 403
    assert not TierUpgradeRequest.objects.exists()


def test_the_highest_tier_offers_no_request(client, db):
    login_as(client, Membership.Role.OWNER, organization=OrganizationFactory(tier=tier("strategic")))
    page = client.get(reverse("portal:tiers"))
    assert "Strategic is the highest tier." in page.text
    assert "Send upgrade request" not in page.text
