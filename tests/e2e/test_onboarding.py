"""The first journey, in a real browser: a developer signs up, confirms the address, creates an
organization, registers an app, sees its credentials once, asks for the next tier; an admin approves it
in /admin/; the developer sees the new tier."""

import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from partners.models import App, Organization, TierUpgradeRequest
from partners.tiers import SECURITY_QUESTIONNAIRE
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_signup_to_approved_upgrade(new_page):
    page = new_page()

    # Sign up.
    page.goto("/accounts/signup/")
    page.fill("#id_email", "ada@clinic.example")
    page.fill("#id_first_name", "Ada")
    page.fill("#id_last_name", "Lovelace")
    page.fill("#id_password", "analytical-engine-1843")
    page.fill("#id_password_confirm", "analytical-engine-1843")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_text("We sent a confirmation link to ada@clinic.example")).to_be_visible()

    # Confirm the address with the link from the email.
    verification = next(m for m in mail.outbox if m.to == ["ada@clinic.example"])
    link = re.search(r"https?://\S+/accounts/verify/\S+", verification.body).group(0)
    page.goto(path_of(link))
    expect(page.get_by_text("is confirmed")).to_be_visible()

    # Create an organization.
    page.goto("/org/new/")
    page.fill("#id_name", "Ada Clinic Apps")
    page.fill("#id_slug", "ada-clinic")
    page.check("input[name=partner_type][value=developer]")
    page.get_by_role("button", name="Create organization").click()
    expect(page.get_by_role("heading", name="Ada Clinic Apps")).to_be_visible()

    # Register an app; the secret is shown exactly once.
    page.goto("/apps/new/")
    page.fill("#id_name", "Lab Results Viewer")
    page.check("input[name=environment][value=sandbox]")
    page.check("input[name=client_type][value=confidential]")
    page.check("input[name=grant_types][value=authorization-code]")
    page.fill("#id_redirect_uris", "https://labs.example.com/callback")
    page.get_by_role("button", name="Register app").click()
    expect(page.get_by_role("heading", name="Your client secret")).to_be_visible()
    app = App.objects.get(name="Lab Results Viewer")
    expect(page.locator("#client-id")).to_have_text(app.client_id)
    secret = page.locator("#client-secret").inner_text()
    assert len(secret) > 30 and secret != app.client_secret
    page.reload()
    expect(page.locator("#client-secret")).to_have_count(0)

    # Ask for the next tier.
    page.goto("/tiers/")
    page.fill("#id_justification", "We are piloting with two clinics.")
    for question in SECURITY_QUESTIONNAIRE:
        page.check(f"input[name=q_{question.key}][value=yes]")
    page.get_by_role("button", name="Send upgrade request").click()
    expect(page.get_by_text("Your request for the Verified tier is sent")).to_be_visible()
    upgrade = TierUpgradeRequest.objects.get(organization__slug="ada-clinic")
    assert upgrade.status == "pending"

    # A platform admin approves it in Django admin.
    UserFactory(email="reviewer@marketplace.test", is_staff=True, is_superuser=True)
    admin_page = new_page()
    admin_page.goto("/admin/login/")
    admin_page.fill("#id_username", "reviewer@marketplace.test")
    admin_page.fill("#id_password", DEFAULT_PASSWORD)
    admin_page.get_by_role("button", name="Log in").click()
    admin_page.goto("/admin/partners/tierupgraderequest/?status__exact=pending")
    admin_page.check(f"input[name=_selected_action][value='{upgrade.pk}']")
    admin_page.select_option("select[name=action]", "approve")
    admin_page.click("button[name=index]")
    expect(admin_page.get_by_role("heading", name="Approve tier upgrades")).to_be_visible()
    admin_page.fill("#id_reason", "Welcome to Verified")
    admin_page.get_by_role("button", name="Confirm: approve").click()
    expect(admin_page.get_by_text("done")).to_be_visible()

    # The partner sees the new tier, the decision and the notice.
    assert Organization.objects.get(slug="ada-clinic").tier.slug == "verified"
    page.goto("/tiers/")
    expect(page.locator("main")).to_contain_text("Verified")
    expect(page.locator("main")).to_contain_text("Welcome to Verified")
    assert any("Verified" in m.subject and m.to == ["ada@clinic.example"] for m in mail.outbox)
    page.goto("/inbox/")
    expect(page.get_by_text("Ada Clinic Apps is now on the Verified tier")).to_be_visible()
