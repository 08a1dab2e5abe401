"""Consent in the Django admin: drafts edited then published for good; grants and the ledger
read-only; care relationships and app authorizations editable."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from consent.models import AppAuthorization, CareRelationship, ConsentText, LedgerEvent
from tests.consent.helpers import PATIENT, grant, holds, provider
from tests.factories import AppFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    admin = UserFactory(is_staff=True, is_superuser=True, email="admin@marketplace.test")
    client.force_login(admin)
    client.admin = admin
    return client


def url(model: str, view: str = "changelist", *args) -> str:
    return reverse(f"admin:consent_{model}_{view}", args=args)


def draft(version=2, data_classes=("demographics",)) -> ConsentText:
    return ConsentText.objects.create(
        purpose="app-access",
        version=version,
        title="Draft",
        body="Plain words.",
        data_classes=list(data_classes),
        effective_at=timezone.now(),
    )


def test_every_changelist_renders_with_its_filters_and_search(staff_client):
    app = AppFactory(name="Findable App")
    grant(app)
    holds(provider())
    pages = {
        "consenttext": {"purpose": "app-access", "q": "app"},
        "consentgrant": {"status__exact": "active", "channel__exact": "consent_screen", "q": PATIENT},
        "ledgerevent": {"kind__exact": "granted", "channel__exact": "consent_screen", "q": PATIENT},
        "carerelationship": {"q": PATIENT},
        "appauthorization": {"decision__exact": "enabled"},
    }
    for model, params in pages.items():
        response = staff_client.get(url(model), params)
        assert response.status_code == 200, model
    assert b"Findable App" in staff_client.get(url("consentgrant"), {"q": "Findable"}).content
    assert b"Findable App" in staff_client.get(url("ledgerevent"), {"q": PATIENT}).content


def test_a_draft_is_edited_then_published_by_the_action(staff_client):
    text = draft()
    form = {
        "purpose": "app-access",
        "version": 2,
        "title": "Reworded",
        "body": "Plainer words.",
        "data_classes": ["demographics", "observations"],
        "effective_at_0": timezone.now().strftime("%Y-%m-%d"),
        "effective_at_1": "00:00:00",
    }
    response = staff_client.post(url("consenttext", "change", text.pk), form)
    assert response.status_code == 302, response.content
    text.refresh_from_db()
    assert (text.title, text.data_classes) == ("Reworded", ["demographics", "observations"])

    done = staff_client.post(url("consenttext"), {"action": "publish", ACTION_CHECKBOX_NAME: [text.pk]}, follow=True)
    assert b"published" in done.content
    text.refresh_from_db()
    assert text.published_at is not None


def test_publishing_an_already_published_text_says_so(staff_client):
    published = ConsentText.objects.get(version=1)
    done = staff_client.post(
        url("consenttext"), {"action": "publish", ACTION_CHECKBOX_NAME: [published.pk]}, follow=True
    )
    assert b"already published" in done.content


def test_a_published_text_is_read_only_and_cannot_be_deleted(staff_client):
    published = ConsentText.objects.get(version=1)
    page = staff_client.get(url("consenttext", "change", published.pk))
    assert page.status_code == 200
    assert b'name="title"' not in page.content  # shown, not editable
    before = published.body
    refused = staff_client.post(url("consenttext", "change", published.pk), {"title": "x", "body": "y"})
    assert refused.status_code == 403
    assert staff_client.post(url("consenttext", "delete", published.pk), {"post": "yes"}).status_code == 403
    published.refresh_from_db()
    assert published.body == before


def test_a_draft_can_be_deleted(staff_client):
    text = draft()
    response = staff_client.post(url("consenttext", "delete", text.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not ConsentText.objects.filter(pk=text.pk).exists()


def test_grants_and_ledger_events_are_read_only(staff_client):
    given = grant(AppFactory())
    event = LedgerEvent.objects.get(grant=given)
    for model, pk in (("consentgrant", given.pk), ("ledgerevent", event.pk)):
        assert staff_client.get(url(model, "add")).status_code == 403
        assert staff_client.get(url(model, "change", pk)).status_code == 200  # viewable
        assert staff_client.post(url(model, "change", pk), {}).status_code == 403
        assert staff_client.post(url(model, "delete", pk), {"post": "yes"}).status_code == 403
    assert LedgerEvent.objects.count() == 1


def test_care_relationships_and_app_authorizations_are_editable(staff_client):
    clinic = provider()
    app = AppFactory()
    response = staff_client.post(url("carerelationship", "add"), {"patient_id": "789", "organization": clinic.pk})
    assert response.status_code == 302, response.content
    assert CareRelationship.objects.filter(patient_id="789", organization=clinic).exists()
    response = staff_client.post(
        url("appauthorization", "add"),
        {"organization": clinic.pk, "app": app.pk, "decision": "blocked", "reason": "Unvetted"},
    )
    assert response.status_code == 302, response.content
    decision = AppAuthorization.objects.get(organization=clinic, app=app)
    assert (decision.decision, decision.decided_by) == ("blocked", staff_client.admin)
