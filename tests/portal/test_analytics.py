"""The portal's analytics: docs page views, searches (and those that found nothing) and error pages
visited are counted (portal.analytics) and shown to admins at /admin/portal/analytics/ with the
onboarding funnel, whose milestones the token endpoint and the usage rollup record on each app."""

import base64
import importlib
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Permission
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from api import usage
from api.usage_models import UsageHour
from partners.models import App, Membership, User
from portal import analytics_selectors, search, tasks
from portal.models import PortalEvent
from tests.factories import AppFactory, MembershipFactory, OrganizationFactory, UserFactory
from tests.oauth.conftest import CLIENT_SECRET, make_app

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.fixture(autouse=True)
def _fresh_index():
    search.forget()
    yield
    search.forget()


@pytest.fixture
def browser(client):
    client.defaults["HTTP_USER_AGENT"] = BROWSER
    return client


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def events(kind=None):
    found = PortalEvent.objects.order_by("at", "pk")
    return list(found.filter(kind=kind) if kind else found)


# --- Recording -------------------------------------------------------------------------------------


def test_docs_page_views_are_counted_with_a_visitor_hash_and_no_address(browser):
    for path in ("/docs/", "/docs/rate-limits/", "/docs/rate-limits/", "/deprecations/"):
        assert browser.get(path, REMOTE_ADDR="203.0.113.9").status_code == 200
    views = events(PortalEvent.Kind.PAGE_VIEW)
    assert [e.path for e in views] == ["/docs/", "/docs/rate-limits/", "/docs/rate-limits/", "/deprecations/"]
    assert len({e.visitor for e in views}) == 1  # one anonymous visitor, that day
    visitor = views[0].visitor
    assert len(visitor) == 64 and "203.0.113.9" not in visitor
    assert views[0].user is None
    # Another address is another visitor.
    browser.get("/docs/", REMOTE_ADDR="198.51.100.7")
    assert events(PortalEvent.Kind.PAGE_VIEW)[-1].visitor != visitor


def test_a_signed_in_developer_is_one_visitor(client):
    user = UserFactory()
    client.force_login(user)
    client.get("/docs/", REMOTE_ADDR="203.0.113.9")
    client.get("/docs/errors/", REMOTE_ADDR="198.51.100.7")
    views = events(PortalEvent.Kind.PAGE_VIEW)
    assert [e.user for e in views] == [user, user]
    assert views[0].visitor == views[1].visitor


def test_a_missing_page_is_not_a_page_view(browser):
    assert browser.get("/docs/no-such-page/").status_code == 404
    assert events() == []


def test_searches_are_counted_with_how_many_they_found(browser):
    browser.get("/docs/search/", {"q": "  Retry-After  "})
    browser.get("/docs/search/", {"q": "qwertyuiopzz"})
    browser.get("/docs/search/", {"q": ""})
    found, nothing = events(PortalEvent.Kind.SEARCH)
    assert (found.query, found.path) == ("Retry-After", "/docs/search/")
    assert found.results > 0
    assert (nothing.query, nothing.results) == ("qwertyuiopzz", 0)


def test_error_page_visits_are_counted_as_such(browser):
    assert browser.get("/docs/errors/quota_exceeded/").status_code == 200
    (visit,) = events()
    assert (visit.kind, visit.path) == (PortalEvent.Kind.ERROR_PAGE, "/docs/errors/quota_exceeded/")


@pytest.mark.parametrize(
    "agent",
    [
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0)",
        "SomeCrawler/1.0",
        "Spider",
    ],
)
def test_bots_are_not_counted(client, agent):
    client.get("/docs/", HTTP_USER_AGENT=agent)
    client.get("/docs/search/", {"q": "token"}, HTTP_USER_AGENT=agent)
    client.get("/docs/errors/quota_exceeded/", HTTP_USER_AGENT=agent)
    assert events() == []


def test_head_requests_are_not_counted(browser):
    assert browser.head("/docs/").status_code == 200
    assert browser.head("/docs/errors/quota_exceeded/").status_code == 200
    assert events() == []


def test_a_failure_to_count_never_fails_the_page(browser, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(PortalEvent.objects, "create", broken)
    with caplog.at_level(logging.WARNING, logger="portal.analytics"):
        assert browser.get("/docs/rate-limits/").status_code == 200
        response = browser.get("/docs/search/", {"q": "Retry-After"})
        assert response.status_code == 200 and "search-results" in response.text
        assert browser.get("/docs/errors/quota_exceeded/").status_code == 200
    assert sum("portal event not recorded" in r.getMessage() for r in caplog.records) == 3


def test_old_events_are_purged_by_the_daily_task(settings):
    settings.PORTAL_ANALYTICS_RETENTION_DAYS = 180
    now = timezone.now()
    old = PortalEvent.objects.create(kind="page_view", path="/docs/", at=now - timedelta(days=181))
    kept = PortalEvent.objects.create(kind="page_view", path="/docs/", at=now - timedelta(days=179))
    assert tasks.purge_old_portal_events.delay().get() == 1
    assert list(PortalEvent.objects.all()) == [kept]
    assert not PortalEvent.objects.filter(pk=old.pk).exists()
    assert "purge-old-portal-events" in settings.CELERY_BEAT_SCHEDULE


# --- The admin page ----------------------------------------------------------------------------------


def test_the_admin_page_shows_views_searches_and_error_pages(browser, admin_client):
    for _ in range(3):
        browser.get("/docs/rate-limits/")
    browser.get("/docs/webhooks/")
    browser.get("/docs/search/", {"q": "Retry-After"})
    browser.get("/docs/search/", {"q": "fax machine"})
    browser.get("/docs/search/", {"q": "Fax Machine"})
    browser.get("/docs/errors/consent_required/")
    response = admin_client.get("/admin/portal/analytics/?days=7")
    assert response.status_code == 200
    page = response.text
    dashboard = response.context["analytics"]
    assert [(row.label, row.count, row.visitors) for row in dashboard.top_pages][:2] == [
        ("/docs/rate-limits/", 3, 1),
        ("/docs/webhooks/", 1, 1),
    ]
    # Searches group case-insensitively; the ones that found nothing are listed apart.
    assert [(row.label, row.count) for row in dashboard.zero_result_queries] == [("fax machine", 2)]
    assert ("fax machine", 2) in [(row.label, row.count) for row in dashboard.top_searches]
    assert [(row.label, row.count) for row in dashboard.error_pages] == [("consent_required", 1)]
    assert (dashboard.page_views, dashboard.searches, dashboard.zero_result_searches) == (4, 3, 2)
    for text in (
        "/docs/rate-limits/",
        "fax machine",
        "consent_required",
        "Searches that found nothing",
        "Onboarding funnel",
    ):
        assert text in page


def test_the_period_selector_leaves_older_events_out(admin_client):
    PortalEvent.objects.create(kind="page_view", path="/docs/old/", at=timezone.now() - timedelta(days=20))
    PortalEvent.objects.create(kind="page_view", path="/docs/new/", at=timezone.now() - timedelta(days=2))
    week = admin_client.get("/admin/portal/analytics/?days=7").context["analytics"]
    month = admin_client.get("/admin/portal/analytics/?days=30").context["analytics"]
    assert [row.label for row in week.top_pages] == ["/docs/new/"]
    assert {row.label for row in month.top_pages} == {"/docs/new/", "/docs/old/"}
    assert admin_client.get("/admin/portal/analytics/?days=12345").context["analytics"].days == 30


def test_the_admin_page_is_for_staff_who_may_view_events(client):
    assert client.get("/admin/portal/analytics/").status_code == 302  # anonymous: to the admin login
    developer = UserFactory()
    client.force_login(developer)
    response = client.get("/admin/portal/analytics/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/portal/analytics/").status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_portalevent"))
    staff = User.objects.get(pk=staff.pk)
    client.force_login(staff)
    assert client.get("/admin/portal/analytics/").status_code == 200


def test_the_events_list_links_to_the_analytics_page(admin_client):
    response = admin_client.get("/admin/portal/portalevent/")
    assert response.status_code == 200
    assert 'href="/admin/portal/analytics/"' in response.text


# --- The onboarding funnel -------------------------------------------------------------------------


def at_days_ago(days: float, hours: float = 0) -> datetime:
    return timezone.now() - timedelta(days=days, hours=hours)


def developer(joined: datetime, **fields) -> User:
    user = UserFactory(**fields)
    User.objects.filter(pk=user.pk).update(date_joined=joined)
    return user


def joins(user: User, organization, at: datetime) -> Membership:
    membership = MembershipFactory(user=user, organization=organization)
    Membership.objects.filter(pk=membership.pk).update(created_at=at)
    return membership


def app_of(organization, created: datetime, first_token_at=None, first_success_at=None) -> App:
    app = AppFactory(organization=organization)
    App.objects.filter(pk=app.pk).update(
        created=created, first_token_at=first_token_at, first_success_at=first_success_at
    )
    return app


def test_the_funnel_follows_developers_to_where_they_stop(admin_client):
    start = at_days_ago(6)
    h = timedelta(hours=1)
    # Signed up only.
    developer(start)
    # ... and created an organization an hour later.
    alone = developer(start)
    joins(alone, OrganizationFactory(), start + h)
    # ... and registered an app two hours after that.
    builder = developer(start)
    org = OrganizationFactory()
    joins(builder, org, start + h)
    app_of(org, start + 3 * h)
    # ... and got a first token.
    tokened = developer(start)
    org = OrganizationFactory()
    joins(tokened, org, start + h)
    app_of(org, start + 3 * h, first_token_at=start + 4 * h)
    # The whole path.
    shipped = developer(start)
    org = OrganizationFactory()
    joins(shipped, org, start + 3 * h)
    app_of(org, start + 5 * h, first_token_at=start + 6 * h, first_success_at=start + 9 * h)
    # Not counted: a patient account, staff, and a developer who signed up before the period.
    developer(start, fhir_patient_id="p-1")
    developer(start, is_staff=True)
    veteran = developer(at_days_ago(40))
    joins(veteran, OrganizationFactory(), at_days_ago(39))

    response = admin_client.get("/admin/portal/analytics/?days=7")
    funnel = {step.key: step for step in response.context["analytics"].funnel}
    assert [step.count for step in funnel.values()] == [5, 4, 3, 2, 1]
    assert [step.dropped for step in funnel.values()] == [None, 1, 1, 1, 1]
    assert [round(step.percent_of_signups) for step in funnel.values()] == [100, 80, 60, 40, 20]
    assert round(funnel["token"].percent_dropped) == 33  # 1 of the 3 with an app
    assert funnel["organization"].median_from_previous == timedelta(hours=1)  # 1, 1, 1, 3
    assert funnel["app"].median_from_previous == timedelta(hours=2)
    assert funnel["token"].median_from_previous == timedelta(hours=1)
    assert funnel["success"].median_from_previous == timedelta(hours=3)
    assert funnel["success"].median_text == "3 hours"
    page = response.text
    assert "Made a first successful API call" in page and "20%" in page


def test_a_teammate_who_joins_later_reaches_the_apps_milestones_when_joining(admin_client):
    org = OrganizationFactory()
    now = timezone.now()
    long_ago = now - timedelta(days=60)
    app_of(org, long_ago, first_token_at=long_ago, first_success_at=long_ago)
    invited = developer(now - timedelta(days=2))
    joins(invited, org, now - timedelta(days=1))
    funnel = analytics_selectors.onboarding_funnel(since=now - timedelta(days=7), until=now)
    assert [step.count for step in funnel] == [1, 1, 1, 1, 1]
    assert funnel[1].median_from_previous == timedelta(days=1)
    assert all(step.median_from_previous == timedelta(0) for step in funnel[2:])


def test_no_signups_is_an_empty_funnel_not_an_error(admin_client):
    response = admin_client.get("/admin/portal/analytics/")
    assert response.status_code == 200
    assert [step.count for step in response.context["analytics"].funnel] == [0, 0, 0, 0, 0]


# --- The milestones the funnel reads -------------------------------------------------------------


def token_request(client, app):
    credentials = base64.b64encode(f"{app.client_id}:{CLIENT_SECRET}".encode()).decode()
    return client.post(
        "/oauth/token/",
        urlencode({"grant_type": "client_credentials", "scope": "system/*.rs"}),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Basic {credentials}",
    )


def test_the_first_token_is_recorded_once(client):
    app = make_app(tier_slug="verified", grant_types=("client-credentials",))
    assert app.first_token_at is None
    before = timezone.now()
    assert token_request(client, app).status_code == 200
    app.refresh_from_db()
    first = app.first_token_at
    assert first is not None and before <= first <= timezone.now()
    assert token_request(client, app).status_code == 200
    app.refresh_from_db()
    assert app.first_token_at == first


def test_a_refused_token_request_is_no_milestone(client):
    app = make_app(tier_slug="verified", grant_types=("client-credentials",))
    credentials = base64.b64encode(f"{app.client_id}:wrong-secret".encode()).decode()
    response = client.post(
        "/oauth/token/",
        urlencode({"grant_type": "client_credentials", "scope": "system/*.rs"}),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Basic {credentials}",
    )
    assert response.status_code == 401
    app.refresh_from_db()
    assert app.first_token_at is None


NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
HOUR = datetime(2026, 3, 10, 12, tzinfo=UTC)


def calls(app, status, at, times=1):
    for _ in range(times):
        usage.record(
            app_id=app.pk,
            organization_id=app.organization_id,
            group="fhir_read",
            status=status,
            error_code=None,
            policy=None,
            at=at,
        )


def test_the_rollup_records_the_first_successful_call_and_never_moves_it():
    succeeded, refused = AppFactory(), AppFactory()
    calls(succeeded, 403, HOUR - timedelta(hours=2))
    calls(succeeded, 200, HOUR - timedelta(hours=1), times=3)
    calls(refused, 401, HOUR - timedelta(hours=1), times=5)
    usage.rollup(hours=[HOUR - timedelta(hours=2), HOUR - timedelta(hours=1)], now=NOW)
    succeeded.refresh_from_db()
    refused.refresh_from_db()
    assert succeeded.first_success_at == HOUR - timedelta(hours=1)
    assert refused.first_success_at is None
    # A later successful hour, and a rerun of the same hours, leave it where it is.
    calls(succeeded, 201, HOUR)
    usage.rollup(hours=[HOUR], now=NOW)
    usage.rollup(hours=[HOUR - timedelta(hours=1)], now=NOW)
    succeeded.refresh_from_db()
    assert succeeded.first_success_at == HOUR - timedelta(hours=1)
    assert UsageHour.objects.filter(app=succeeded, status_class="2xx").count() == 2


def test_the_migration_backfills_milestones_from_tokens_and_usage():
    tokened, called, already = AppFactory(), AppFactory(), AppFactory()
    user = UserFactory()
    early, later = timezone.now() - timedelta(days=3), timezone.now() - timedelta(days=1)
    access = AccessToken.objects.create(
        application=tokened, user=user, token="a1", expires=timezone.now() + timedelta(hours=1), scope="x"
    )
    AccessToken.objects.filter(pk=access.pk).update(created=later)
    refresh = RefreshToken.objects.create(application=tokened, user=user, token="r1")
    RefreshToken.objects.filter(pk=refresh.pk).update(created=early)
    for app, klass, hour in ((called, "4xx", HOUR - timedelta(hours=5)), (called, "2xx", HOUR), (already, "2xx", HOUR)):
        UsageHour.objects.create(
            hour=hour, app=app, organization_id=app.organization_id, group="fhir_read", status_class=klass, count=1
        )
    App.objects.filter(pk=already.pk).update(first_success_at=HOUR - timedelta(days=30))

    migration = importlib.import_module("partners.migrations.0008_backfill_onboarding_milestones")
    migration.backfill(django_apps, None)

    tokened.refresh_from_db()
    called.refresh_from_db()
    already.refresh_from_db()
    assert tokened.first_token_at == early
    assert tokened.first_success_at is None
    assert called.first_success_at == HOUR and called.first_token_at is None
    assert already.first_success_at == HOUR - timedelta(days=30)  # never overwritten
