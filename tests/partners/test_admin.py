import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.urls import reverse

from partners.models import Membership, Organization, TierUpgradeRequest
from tests.factories import AppFactory, OrganizationFactory, TierUpgradeRequestFactory, UserFactory, member

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:partners_tierupgraderequest_changelist"


@pytest.fixture
def staff_client(client):
    admin = UserFactory(is_staff=True, is_superuser=True, email="reviewer@marketplace.test")
    client.force_login(admin)
    client.admin = admin
    return client


def bulk(client, action, requests, **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [r.pk for r in requests], **extra}
    return client.post(reverse(CHANGELIST), data, follow=True)


def test_changelist_filters_and_search_render(staff_client):
    TierUpgradeRequestFactory(organization=OrganizationFactory(name="Findable Health"))
    response = staff_client.get(reverse(CHANGELIST), {"status__exact": "pending", "q": "Findable"})
    assert response.status_code == 200
    assert b"Findable Health" in response.content
    for name in ("organization", "app", "tier"):
        assert staff_client.get(reverse(f"admin:partners_{name}_changelist"), {"q": "x"}).status_code == 200


def test_bulk_approve_asks_for_a_reason_then_approves_and_notifies(staff_client, django_capture_on_commit_callbacks):
    owner = member()
    upgrade = TierUpgradeRequestFactory(organization=owner.organization)
    step = bulk(staff_client, "approve", [upgrade])
    assert b"Approve tier upgrades" in step.content
    assert TierUpgradeRequest.objects.get(pk=upgrade.pk).is_pending  # nothing happens before confirming
    with django_capture_on_commit_callbacks(execute=True):
        done = bulk(staff_client, "approve", [upgrade], confirm="yes", reason="Welcome aboard")
    assert done.status_code == 200
    upgrade.refresh_from_db()
    owner.organization.refresh_from_db()
    assert upgrade.status == "approved"
    assert upgrade.reviewer == staff_client.admin
    assert owner.organization.tier.slug == "verified"
    assert [m.to for m in mail.outbox] == [[owner.user.email]]
    assert b"done" in done.content


def test_bulk_approve_twice_is_a_no_op(staff_client, django_capture_on_commit_callbacks):
    upgrade = TierUpgradeRequestFactory(organization=member().organization)
    with django_capture_on_commit_callbacks(execute=True):
        bulk(staff_client, "approve", [upgrade], confirm="yes")
        again = bulk(staff_client, "approve", [upgrade], confirm="yes")
    assert b"no change" in again.content
    assert len(mail.outbox) == 1


def test_reject_without_a_reason_is_refused_and_changes_nothing(staff_client):
    upgrade = TierUpgradeRequestFactory()
    response = bulk(staff_client, "reject", [upgrade], confirm="yes", reason="")
    assert b"A reason is required" in response.content
    assert TierUpgradeRequest.objects.get(pk=upgrade.pk).is_pending


def test_bulk_reject_records_the_reason(staff_client):
    first, second = TierUpgradeRequestFactory(), TierUpgradeRequestFactory()
    bulk(staff_client, "reject", [first, second], confirm="yes", reason="Questionnaire incomplete")
    assert list(TierUpgradeRequest.objects.order_by().values_list("status", "decision_reason").distinct()) == [
        ("rejected", "Questionnaire incomplete")
    ]


def test_admin_cannot_approve_their_own_organization(staff_client):
    org = OrganizationFactory()
    Membership.objects.create(user=staff_client.admin, organization=org, role="owner")
    upgrade = TierUpgradeRequestFactory(organization=org)
    response = bulk(staff_client, "approve", [upgrade], confirm="yes")
    assert b"another admin must decide" in response.content
    assert TierUpgradeRequest.objects.get(pk=upgrade.pk).is_pending
    assert Organization.objects.get(pk=org.pk).tier.slug == "sandbox"


def test_decide_buttons_on_the_change_page(staff_client):
    upgrade = TierUpgradeRequestFactory(organization=member().organization)
    change = staff_client.get(reverse("admin:partners_tierupgraderequest_change", args=[upgrade.pk]))
    decide_url = reverse("admin:partners_tierupgraderequest_decide", args=[upgrade.pk, "reject"])
    assert decide_url.encode() in change.content
    assert b"Reject tier upgrades" in staff_client.get(decide_url).content
    staff_client.post(decide_url, {"confirm": "yes", "reason": "Not yet"})
    upgrade.refresh_from_db()
    assert (upgrade.status, upgrade.decision_reason) == ("rejected", "Not yet")


def test_requests_cannot_be_deleted(staff_client):
    upgrade = TierUpgradeRequestFactory()
    response = staff_client.post(
        reverse("admin:partners_tierupgraderequest_delete", args=[upgrade.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert TierUpgradeRequest.objects.filter(pk=upgrade.pk).exists()


def test_suspend_action_requires_a_reason(staff_client):
    org = member().organization
    url = reverse("admin:partners_organization_changelist")
    staff_client.post(url, {"action": "suspend", ACTION_CHECKBOX_NAME: [org.pk], "confirm": "yes", "reason": ""})
    assert Organization.objects.get(pk=org.pk).is_active
    staff_client.post(url, {"action": "suspend", ACTION_CHECKBOX_NAME: [org.pk], "confirm": "yes", "reason": "Abuse"})
    org.refresh_from_db()
    assert (org.status, org.suspension_reason, org.suspended_by) == ("suspended", "Abuse", staff_client.admin)


def test_app_admin_never_shows_a_plain_secret(staff_client):
    app = AppFactory(client_secret="plain-secret-value")
    response = staff_client.get(reverse("admin:partners_app_change", args=[app.pk]))
    assert response.status_code == 200
    assert b"plain-secret-value" not in response.content


def test_non_staff_cannot_reach_admin(client):
    client.force_login(UserFactory())
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
