"""The per-app usage page in the portal, and the cross-partner usage page in the admin."""

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.urls import reverse

from api import usage, usage_selectors
from api.usage_models import UsageHour
from partners.models import Membership
from tests.factories import AppFactory, UserFactory
from tests.portal.conftest import login_as

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
CURRENT = datetime(2026, 3, 10, 12, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture(autouse=True)
def _clock(monkeypatch):
    """The dashboards' clock, fixed, so that the projection is exact."""
    monkeypatch.setattr(usage_selectors, "timezone", SimpleNamespace(now=lambda: NOW))


def hit(app, times=1, *, group="fhir_read", status=200, error_code=None, policy=None, at=NOW):
    for _ in range(times):
        usage.record(
            app_id=app.pk,
            organization_id=app.organization_id,
            group=group,
            status=status,
            error_code=error_code,
            policy=policy,
            at=at,
        )


def chart_svg(page: str) -> str:
    start = page.index('<figure class="chart"')
    return page[start : page.index("</svg>", start)]


@pytest.fixture
def app(owner):
    return AppFactory(organization=owner.organization, name="Care Companion")


@pytest.fixture
def busy_app(app):
    """Sandbox tier: fhir_read 10,000 a day: 9,404 used before 12:00 and 300 since, at 600 an hour."""
    for hour, count in ((CURRENT - 3 * H, 8_800), (CURRENT - H, 600)):
        UsageHour.objects.create(
            hour=hour, app=app, organization=app.organization, group="fhir_read", status_class="2xx", count=count
        )
    hit(app, 294, at=CURRENT + timedelta(minutes=5))
    hit(app, 6, status=403, error_code="consent_required")
    hit(app, 4, status=500, error_code="server_error", at=CURRENT - 2 * H)
    hit(app, 7, status=429, error_code="quota_exceeded", policy="org-fhir_read-minute")
    hit(app, 2, status=429, error_code="quota_exceeded", policy="token-fhir_read-minute")
    hit(app, 1, group="writes", status=201)
    usage.rollup(hours=[CURRENT - 2 * H], now=NOW)
    return app


def test_the_usage_page_shows_the_chart_errors_429s_and_quota_projection(owner_client, busy_app):
    response = owner_client.get(reverse("portal:app-usage", args=[busy_app.pk]))

    assert response.status_code == 200
    page = response.text
    # The chart: server-rendered SVG, labelled, with a bar segment per status class that has requests.
    svg = chart_svg(page)
    assert 'role="img"' in svg and 'aria-labelledby="requests-chart-title requests-chart-desc"' in svg
    assert '<title id="requests-chart-title">Requests per hour by status class, last 24 hours</title>' in svg
    desc = re.search(r'<desc id="requests-chart-desc">(.*?)</desc>', svg).group(1)
    assert "9,714 in total" in desc and "The busiest hour was 2026-03-10 09:00 UTC with 8,800" in desc
    assert "Requests per hour" in svg and "Hour (UTC)" in svg and "09:00" in svg
    assert svg.count("<title>") == 24  # one hover title per hour
    for color in ("#1f7a4d", "#b86e00", "#b42318"):  # 2xx, 4xx, 5xx
        assert f'fill="{color}"' in svg
    assert "<script" not in svg and not re.search(r'(?:src|href)="(?:https?:)?//', page)  # no external assets
    # The table fallback.
    assert "Show the numbers as a table" in page and "2026-03-10 09:00" in page
    # Errors, each linked to its docs page.
    assert '<a href="/docs/errors/consent_required/"><code>consent_required</code></a>' in page
    assert '<a href="/docs/errors/server_error/"><code>server_error</code></a>' in page
    assert '<a href="/docs/errors/quota_exceeded/"><code>quota_exceeded</code></a>' in page
    # 429s by policy.
    limited = page[page.index('id="limited-title"') :]
    assert limited.index("org-fhir_read-minute") < limited.index("token-fhir_read-minute")
    # Today's quota: 9,704 of 10,000 used (429s use none); 296 left at 600 an hour: 29.6 minutes.
    quota = page[page.index('id="quota-title"') :]
    assert "9,704" in quota and "10,000" in quota
    assert 'Runs out at ~<time datetime="2026-03-10T12:59:36+00:00">12:59</time> UTC' in quota
    assert "Won't run out today" in quota  # writes: 1 of 1,000
    assert response.context["usage"].quotas[0].app_used == 9_704


def test_the_week_view_has_a_bar_per_hour_and_a_label_per_day(owner_client, busy_app):
    response = owner_client.get(reverse("portal:app-usage", args=[busy_app.pk]) + "?range=7d")
    assert response.status_code == 200
    svg = chart_svg(response.text)
    assert svg.count("<title>") == 168
    assert "Mar 10" in svg and "Mar 04" in svg
    assert 'aria-current="page">Last 7 days' in response.text


def test_a_page_with_no_usage_yet_still_renders(owner_client, app):
    response = owner_client.get(reverse("portal:app-usage", args=[app.pk]))
    assert response.status_code == 200
    assert "<rect" in chart_svg(response.text) and "0 in total" in response.text
    assert "No errors in the last 24 hours" in response.text


def test_the_app_page_links_to_its_usage(owner_client, app):
    response = owner_client.get(app.get_absolute_url())
    assert reverse("portal:app-usage", args=[app.pk]) in response.text


def test_every_member_sees_the_page_whatever_their_role(client, app):
    login_as(client, Membership.Role.VIEWER, organization=app.organization)
    assert client.get(reverse("portal:app-usage", args=[app.pk])).status_code == 200


def test_another_organizations_app_is_not_found(owner_client):
    stranger = AppFactory()
    hit(stranger, 3)
    response = owner_client.get(reverse("portal:app-usage", args=[stranger.pk]))
    assert response.status_code == 404


def test_signed_out_visitors_are_sent_to_log_in(client, app):
    response = client.get(reverse("portal:app-usage", args=[app.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response.url


# --- Admin -----------------------------------------------------------------------------------


def test_the_admin_summary_shows_usage_across_partners(client, busy_app):
    other = AppFactory()
    hit(other, 20_000 // 1_000)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = client.get("/admin/usage/")

    assert response.status_code == 200
    page = response.text
    assert '<title id="requests-chart-title">' in chart_svg(page)
    top = response.context["usage"].top_organizations
    assert [row.organization for row in top] == [busy_app.organization, other.organization]
    assert f"?organization={busy_app.organization_id}" in page
    assert '<a href="/docs/errors/consent_required/">' in page and "org-fhir_read-minute" in page

    one = client.get(f"/admin/usage/?organization={busy_app.organization_id}&range=7d")
    assert one.status_code == 200
    assert one.context["usage"].top_organizations == [] and "Runs out at ~" in one.text
    assert client.get("/admin/usage/?organization=999999").status_code == 404


def test_the_admin_summary_is_for_staff_only(client, owner):
    client.force_login(owner.user)  # a partner, not staff
    response = client.get("/admin/usage/")
    assert response.status_code == 302 and "/admin/login/" in response.url

    client.force_login(UserFactory(is_staff=True))  # staff without the permission to view usage
    assert client.get("/admin/usage/").status_code == 403


def test_the_usage_rows_have_a_filtered_read_only_changelist(client, busy_app):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = reverse("admin:api_usagehour_changelist")
    response = client.get(url, {"organization__id__exact": busy_app.organization_id, "status_class": "5xx"})
    assert response.status_code == 200
    assert "server_error" in response.text and "/admin/usage/" in response.text
    assert client.get(url, {"group": "fhir_read", "hour__year": "2026"}).status_code == 200
    assert client.get(reverse("admin:api_usagehour_add")).status_code == 403
