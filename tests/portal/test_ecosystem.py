"""The admins' ecosystem health page (/admin/ecosystem/, portal.ecosystem): each metric computed from
rows at known times, per partner type, and the page that shows them with their definitions and charts.

The selector tests pin ``now`` to a fixed instant (every read takes the period's bounds from it), so
calendar months and medians come out exactly."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from api.models import Appointment, EligibilityCheck, LabResultShare
from api.usage_models import UsageHour
from consent.models import ConsentScreenShown
from partners.models import App, Membership, Organization, User
from portal import ecosystem
from tests.factories import AppFactory, MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 20, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
PROVIDER = Organization.PartnerType.PROVIDER
PAYER = Organization.PartnerType.PAYER


def org(partner_type=PROVIDER, **fields) -> Organization:
    return OrganizationFactory(partner_type=partner_type, **fields)


def developer(joined: datetime, **fields) -> User:
    user = UserFactory(**fields)
    User.objects.filter(pk=user.pk).update(date_joined=joined)
    return user


def joins(user: User, organization: Organization, at: datetime) -> None:
    membership = MembershipFactory(user=user, organization=organization)
    Membership.objects.filter(pk=membership.pk).update(created_at=at)


def app_of(organization, *, created=None, first_success_at=None, environment=App.Environment.SANDBOX) -> App:
    app = AppFactory(organization=organization, environment=environment)
    App.objects.filter(pk=app.pk).update(
        created=created or NOW - 60 * D, first_token_at=first_success_at, first_success_at=first_success_at
    )
    app.refresh_from_db()
    return app


def usage(app: App, hour: datetime, status_class: str = "2xx", code: str = "", count: int = 1, group="fhir_read"):
    return UsageHour.objects.create(
        hour=hour,
        app=app,
        organization_id=app.organization_id,
        group=group,
        status_class=status_class,
        error_code=code,
        count=count,
        endpoint=f"GET /fhir/r4/Patient/{{id}} {uuid.uuid4().hex[:6]}",  # keeps rows of one hour distinct
    )


def by_segment(rows) -> dict:
    return {row.segment: row for row in rows}


# --- Onboarding time -------------------------------------------------------------------------------


def test_onboarding_time_is_signup_to_first_successful_call_per_partner_type():
    since = NOW - 30 * D
    # Providers: 2 hours, 6 hours and 30 hours from signup to a first successful call.
    for days_ago, hours in ((10, 2), (9, 6), (8, 30)):
        joined = NOW - days_ago * D
        user, organization = developer(joined), org(PROVIDER)
        joins(user, organization, joined)
        app_of(organization, created=joined, first_success_at=joined + hours * H)
    # Payers: one in an hour; one without an app yet.
    joined = NOW - 7 * D
    quick, payer = developer(joined), org(PAYER)
    joins(quick, payer, joined)
    app_of(payer, created=joined, first_success_at=joined + H)
    stuck = developer(joined)
    joins(stuck, org(PAYER), joined)
    # In no organization: counted under "All partners" only. Not counted: staff, patients, earlier signups.
    developer(NOW - 5 * D)
    developer(NOW - 5 * D, is_staff=True)
    developer(NOW - 5 * D, fhir_patient_id="p-1")
    veteran = developer(NOW - 40 * D)
    joins(veteran, org(PROVIDER), NOW - 40 * D)

    rows = by_segment(ecosystem.onboarding(since=since, until=NOW))

    assert (rows["all"].signups, rows["all"].reached) == (6, 4)
    assert rows["all"].median == 4 * H  # 1, 2, 6, 30 hours
    assert rows["all"].p75 == 6 * H  # the third of four
    assert (rows[PROVIDER].signups, rows[PROVIDER].reached) == (3, 3)
    assert rows[PROVIDER].median == 6 * H and rows[PROVIDER].p75 == 30 * H
    assert rows[PROVIDER].buckets == [0, 2, 1, 0, 0]  # 2 h and 6 h: 1 to 24 hours; 30 h: 1 to 7 days
    assert (rows[PAYER].signups, rows[PAYER].reached) == (2, 1)
    assert rows[PAYER].median == rows[PAYER].p75 == H
    assert rows[PAYER].percent_reached == 50
    assert rows[PAYER].median_text == "1 hour"
    assert (rows["developer"].signups, rows["developer"].median, rows["developer"].percent_reached) == (0, None, None)


# --- Sandbox to production -------------------------------------------------------------------------


def test_sandbox_to_production_conversion_per_partner_type():
    since = NOW - 30 * D
    # Providers: two reached production, 3 and 5 days after their first sandbox success; one did not.
    for days_ago, days_to_production in ((10, 3), (9, 5), (8, None)):
        organization = org(PROVIDER)
        sandbox_success = NOW - days_ago * D
        app_of(organization, first_success_at=sandbox_success)
        app_of(organization, first_success_at=sandbox_success + 2 * D)  # a later sandbox app: not the first
        if days_to_production is not None:
            app_of(
                organization,
                first_success_at=sandbox_success + days_to_production * D,
                environment=App.Environment.PRODUCTION,
            )
    # A payer with a production app that never made a successful call: not converted.
    payer = org(PAYER)
    app_of(payer, first_success_at=NOW - 7 * D)
    app_of(payer, environment=App.Environment.PRODUCTION)
    # Not in the cohort: a first sandbox success before the period, and an organization with none.
    earlier = org(PAYER)
    app_of(earlier, first_success_at=NOW - 40 * D)
    app_of(earlier, first_success_at=NOW - 35 * D, environment=App.Environment.PRODUCTION)
    app_of(org(PAYER))

    rows = by_segment(ecosystem.conversion(since=since, until=NOW))

    assert (rows[PROVIDER].sandbox, rows[PROVIDER].converted, rows[PROVIDER].not_converted) == (3, 2, 1)
    assert round(rows[PROVIDER].percent) == 67
    assert rows[PROVIDER].median_days == 4.0
    assert (rows[PAYER].sandbox, rows[PAYER].converted, rows[PAYER].percent, rows[PAYER].median_days) == (
        1,
        0,
        0,
        None,
    )
    assert (rows["all"].sandbox, rows["all"].converted, rows["all"].percent, rows["all"].median_days) == (4, 2, 50, 4.0)
    assert (rows["research"].sandbox, rows["research"].percent) == (0, None)


# --- Consent completion ----------------------------------------------------------------------------


def screen(app, shown_at, decision="", patient=None) -> ConsentScreenShown:
    return ConsentScreenShown.objects.create(
        key=uuid.uuid4(),
        patient_id=patient or uuid.uuid4().hex[:8],
        app=app,
        scopes=["patient/Patient.rs"],
        data_classes=["demographics"],
        shown_at=shown_at,
        decision=decision,
        decided_at=shown_at + timedelta(minutes=2) if decision else None,
    )


def test_consent_completion_counts_screens_shown_against_approvals():
    provider_app, payer_app = app_of(org(PROVIDER)), app_of(org(PAYER))
    screen(provider_app, NOW - 5 * D, "approved")
    screen(provider_app, NOW - 4 * D, "approved")
    screen(provider_app, NOW - 3 * D, "denied")
    screen(provider_app, NOW - 2 * D)  # never answered: abandoned
    screen(provider_app, NOW - timedelta(minutes=10))  # still answerable: open
    screen(payer_app, NOW - 6 * D, "approved")
    screen(payer_app, NOW - 2 * H)  # its page expired an hour ago: abandoned
    screen(payer_app, NOW - 40 * D, "approved")  # before the period

    rows = by_segment(ecosystem.consent_completion(since=NOW - 30 * D, until=NOW))

    provider = rows[PROVIDER]
    assert (provider.shown, provider.approved, provider.denied, provider.abandoned, provider.open) == (5, 2, 1, 1, 1)
    assert provider.completion == 40
    payer = rows[PAYER]
    assert (payer.shown, payer.approved, payer.denied, payer.abandoned, payer.open) == (2, 1, 0, 1, 0)
    assert payer.completion == 50 and payer.percent_abandoned == 50
    everyone = rows["all"]
    assert (everyone.shown, everyone.approved, everyone.denied, everyone.abandoned, everyone.open) == (7, 3, 1, 2, 1)
    assert round(everyone.completion, 2) == 42.86
    assert (rows["developer"].shown, rows["developer"].completion) == (0, None)


# --- Time to resolve errors ------------------------------------------------------------------------


def hours(start: datetime, *offsets: int) -> list[datetime]:
    return [start + offset * H for offset in offsets]


@pytest.mark.parametrize(
    ("errors", "successes", "expected"),
    [
        # Resolved by the first success after the last error hour, confirmed 24 hours later.
        ([0, 1, 2], [5, 6], [(0, 2, 5)]),
        # A success in the same hour as an error does not resolve it; the next one does.
        ([0], [0, 3], [(0, 0, 3)]),
        # The error came back within 24 hours of a success: one episode, resolved by the later success.
        ([0, 10], [2, 12], [(0, 10, 12)]),
        # It came back 24 hours or more after the success: two episodes.
        ([0, 26], [2, 28], [(0, 0, 2), (26, 26, 28)]),
        # No success since: open, however many error hours follow.
        ([0, 40, 80], [], [(0, 80, None)]),
        # A success less than 24 hours ago: not confirmed yet, so open.
        ([90], [95], [(90, 90, None)]),
    ],
)
def test_error_episodes_follow_the_definition(errors, successes, expected):
    start = NOW - 100 * H
    found = ecosystem.episodes_of(hours(start, *errors), hours(start, *successes), app_id=1, code="x", now=NOW)
    assert [
        (
            round((e.started - start) / H),
            round((e.last_error - start) / H),
            None if e.resolved is None else round((e.resolved - start) / H),
        )
        for e in found
    ] == expected


def test_time_to_resolve_errors_per_partner_type_and_code():
    provider_app, other_provider_app, payer_app = app_of(org(PROVIDER)), app_of(org(PROVIDER)), app_of(org(PAYER))
    start = NOW - 20 * D
    # invalid_token: errors for three hours, then successes: resolved in 5 hours.
    for hour in hours(start, 0, 1, 2):
        usage(provider_app, hour, "4xx", "invalid_token", count=3)
    usage(provider_app, start + 5 * H)
    # invalid_token again three days later: back 10 hours in (within 24 hours of a success), then
    # successes: one episode of 12 hours.
    again = start + 3 * D
    usage(provider_app, again, "4xx", "invalid_token")
    usage(provider_app, again + 2 * H)
    usage(provider_app, again + 10 * H, "4xx", "invalid_token")
    usage(provider_app, again + 12 * H)
    # quota_exceeded three hours ago, no success since: open.
    usage(provider_app, NOW - 3 * H, "4xx", "quota_exceeded")
    # server_error for the other provider app: resolved 30 hours later.
    usage(other_provider_app, NOW - 15 * D, "5xx", "server_error")
    usage(other_provider_app, NOW - 15 * D, "2xx")  # the same hour: not yet a resolution
    usage(other_provider_app, NOW - 15 * D + 30 * H)
    # The payer: resolved in an hour; then again five hours ago, a success two hours later but not
    # 24 hours of it yet: open.
    usage(payer_app, NOW - 10 * D, "4xx", "insufficient_scope")
    usage(payer_app, NOW - 10 * D + H)
    usage(payer_app, NOW - 5 * H, "4xx", "insufficient_scope")
    usage(payer_app, NOW - 3 * H)
    # Not counted: errors before the period, an error without a code, a row that counted nothing.
    usage(payer_app, NOW - 40 * D, "5xx", "server_error")
    usage(payer_app, NOW - 9 * D, "5xx", "")
    usage(payer_app, NOW - 8 * D, "4xx", "not_found", count=0)

    summary = ecosystem.errors(since=NOW - 30 * D, until=NOW)
    rows = by_segment(summary.rows)

    provider = rows[PROVIDER]
    assert (provider.episodes, provider.resolved, provider.open) == (4, 3, 1)
    assert provider.median == 12 * H and provider.p75 == 30 * H  # 5, 12, 30 hours
    assert provider.buckets == [0, 1, 1, 1, 0]
    payer = rows[PAYER]
    assert (payer.episodes, payer.resolved, payer.open, payer.median, payer.p75) == (2, 1, 1, H, H)
    assert payer.buckets == [1, 0, 0, 0, 0]
    everyone = rows["all"]
    assert (everyone.episodes, everyone.resolved, everyone.open) == (6, 4, 2)
    assert everyone.median == 8.5 * H and everyone.p75 == 12 * H  # 1, 5, 12, 30 hours
    assert (rows["research"].episodes, rows["research"].median) == (0, None)
    assert [(row.segment, row.episodes, row.resolved, row.open, row.median) for row in summary.by_code] == [
        ("insufficient_scope", 2, 1, 1, H),
        ("invalid_token", 2, 2, 0, 8.5 * H),
        ("quota_exceeded", 1, 0, 1, None),
        ("server_error", 1, 1, 0, 30 * H),
    ]


# --- Partner retention -----------------------------------------------------------------------------


def test_retention_over_the_period_and_by_month():
    p1, p2, p3 = org(PROVIDER), org(PROVIDER), org(PROVIDER)
    y1, y2 = org(PAYER), org(PAYER)
    apps = {organization: app_of(organization) for organization in (p1, p2, p3, y1, y2)}
    # The 30 days before the period (Apr 21 to May 21): p1, p3 and y2 were active.
    for organization in (p1, p3, y2):
        usage(apps[organization], NOW - 45 * D)  # May 6
    # The period: p1, p2 and y1.
    usage(apps[p1], NOW - 20 * D)  # May 31
    usage(apps[p1], NOW - 17 * D)  # Jun 3
    usage(apps[p2], NOW - 15 * D)  # Jun 5
    usage(apps[y1], NOW - 10 * D)  # Jun 10
    # p1 in April too; errors alone are no activity.
    usage(apps[p1], NOW - 70 * D)  # Apr 11
    usage(apps[y2], NOW - 5 * D, "4xx", "invalid_token")

    retention = ecosystem.retention(since=NOW - 30 * D, until=NOW)
    rows = by_segment(retention.rows)

    assert (rows[PROVIDER].previous, rows[PROVIDER].retained, rows[PROVIDER].current, rows[PROVIDER].new) == (
        2,
        1,
        2,
        1,
    )
    assert rows[PROVIDER].percent == 50
    assert (rows[PAYER].previous, rows[PAYER].retained, rows[PAYER].current, rows[PAYER].percent) == (1, 0, 1, 0)
    assert (rows["all"].previous, rows["all"].retained, rows["all"].current, rows["all"].new) == (3, 1, 3, 2)
    assert round(rows["all"].percent) == 33
    assert rows["developer"].percent is None

    months = retention.months
    assert [f"{month.month:%Y-%m}" for month in months] == [
        "2026-01",
        "2026-02",
        "2026-03",
        "2026-04",
        "2026-05",
        "2026-06",
    ]
    assert [month.partial for month in months] == [False] * 5 + [True]
    assert [(month.active, month.retained) for month in months] == [(0, 0), (0, 0), (0, 0), (1, 0), (3, 1), (3, 1)]
    segments = [key for key, _ in ecosystem.SEGMENTS]
    may = dict(zip(segments, months[4].percent_by_segment, strict=True))
    june = dict(zip(segments, months[5].percent_by_segment, strict=True))
    assert may == {"all": 100, PROVIDER: 100, PAYER: None, "developer": None, "research": None}
    assert june["all"] == pytest.approx(100 / 3) and june[PROVIDER] == 50 and june[PAYER] == 0
    assert months[3].percent is None  # nobody was active in March


# --- Workflow completion ---------------------------------------------------------------------------


def visit(app, booked_at, status="booked"):
    return Appointment.objects.create(
        id=uuid.uuid4().hex[:20],
        last_updated=booked_at,
        body={},
        status=status,
        patient_id="p-1",
        app_id=app.pk if app else None,
        booked_at=booked_at,
        cancelled_at=booked_at + H if status == "cancelled" else None,
    )


def share(app, expires_at, status="active"):
    return LabResultShare.objects.create(
        id=uuid.uuid4().hex[:20],
        environment="sandbox",
        app=app,
        organization=app.organization,
        recipient=org(PAYER),
        observation_id="obs-1",
        patient_id="p-1",
        consent_grant_id=1,
        starts_at=NOW - 5 * D,
        expires_at=expires_at,
        status=status,
        revoked_at=NOW - D if status == "revoked" else None,
        created_at=NOW - 5 * D,
    )


def check(app, outcome, created_at=None):
    return EligibilityCheck.objects.create(
        id=uuid.uuid4().hex[:20],
        environment="sandbox",
        app=app,
        organization=app.organization,
        patient_id="p-1",
        coverage_id="cov-1",
        payer="Organization/payer",
        service_type="office_visit",
        outcome=outcome,
        created_at=created_at or NOW - 3 * D,
    )


def test_workflow_completion_per_partner_type_of_the_app():
    provider_app, payer_app = app_of(org(PROVIDER)), app_of(org(PAYER))
    visit(provider_app, NOW - 5 * D)
    visit(provider_app, NOW - 4 * D)
    visit(provider_app, NOW - 3 * D, "cancelled")
    visit(payer_app, NOW - 2 * D, "cancelled")
    visit(provider_app, NOW - 40 * D)  # before the period
    visit(None, NOW - 2 * D)  # not booked by an app
    share(provider_app, NOW + 10 * D)  # still active
    share(provider_app, NOW - D)  # ran to its end
    share(provider_app, NOW + 10 * D, "revoked")
    for outcome in ("eligible", "eligible", "not_eligible", "unknown"):
        check(payer_app, outcome)
    check(payer_app, "eligible", created_at=NOW - 40 * D)  # before the period
    usage(payer_app, NOW - 3 * D, "5xx", "payer_unavailable", count=3, group="eligibility")
    usage(payer_app, NOW - 2 * D, "4xx", "consent_required", count=1, group="eligibility")
    usage(payer_app, NOW - 2 * D, "2xx", count=4, group="eligibility")
    usage(payer_app, NOW - 2 * D, "4xx", "not_found", count=7, group="fhir_read")  # not an eligibility check

    found = {workflow.key: by_segment(workflow.rows) for workflow in ecosystem.workflows(since=NOW - 30 * D, until=NOW)}

    visits = found["visits"]
    assert (visits[PROVIDER].started, visits[PROVIDER].completed, visits[PROVIDER].counts) == (3, 2, [2, 1])
    assert (visits[PAYER].started, visits[PAYER].completed, visits[PAYER].percent) == (1, 0, 0)
    assert (visits["all"].started, visits["all"].completed, visits["all"].percent) == (4, 2, 50)
    shares = found["lab-shares"]
    assert (shares[PROVIDER].started, shares[PROVIDER].completed, shares[PROVIDER].counts) == (3, 2, [1, 1, 1])
    assert (shares[PAYER].started, shares[PAYER].percent) == (0, None)
    checks = found["eligibility"]
    assert (checks[PAYER].started, checks[PAYER].completed, checks[PAYER].counts) == (8, 3, [2, 1, 1, 4])
    assert checks[PAYER].percent == 37.5
    assert checks["all"].counts == [2, 1, 1, 4]
    assert (checks[PROVIDER].started, checks[PROVIDER].percent) == (0, None)


# --- Partners, periods, queries --------------------------------------------------------------------


def test_partners_today_per_type():
    provider = org(PROVIDER)
    app_of(provider)
    app_of(provider, environment=App.Environment.PRODUCTION)
    app_of(org(PROVIDER, status=Organization.Status.SUSPENDED))
    org(PAYER)
    provider = by_segment(ecosystem.partners())[PROVIDER]
    assert (provider.organizations, provider.active, provider.with_sandbox, provider.with_production) == (2, 1, 2, 1)
    rows = by_segment(ecosystem.partners())
    assert (rows[PAYER].organizations, rows[PAYER].with_sandbox) == (1, 0)
    assert rows["all"].organizations == Organization.objects.count()


@pytest.mark.parametrize(("asked", "days"), [("90", 90), ("180", 180), ("7", 30), ("x", 30), (None, 30)])
def test_the_period_is_30_90_or_180_days(asked, days):
    assert ecosystem.period_days(asked) == days


def test_the_dashboard_takes_a_bounded_number_of_queries(django_assert_max_num_queries):
    for index in range(5):
        organization = org(PROVIDER if index % 2 else PAYER)
        user = developer(NOW - (index + 1) * D)
        joins(user, organization, NOW - (index + 1) * D)
        app = app_of(organization, first_success_at=NOW - index * D)
        usage(app, NOW - index * D - 2 * H, "4xx", "invalid_token")
        usage(app, NOW - index * D)
        screen(app, NOW - index * D, "approved")
        visit(app, NOW - index * D)
    with django_assert_max_num_queries(20):
        ecosystem.dashboard(days=90, now=NOW)


# --- The page --------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_the_page_shows_each_metric_with_its_definition_and_charts(admin_client):
    provider = org(PROVIDER, name="Riverside Clinic")
    joined = timezone.now() - 3 * D
    user = developer(joined)
    joins(user, provider, joined)
    app = app_of(provider, created=joined, first_success_at=joined + 2 * H)
    screen(app, joined + 3 * H, "approved")
    screen(app, joined + 4 * H)
    usage(app, ecosystem.floor_hour(joined + 2 * H))

    response = admin_client.get("/admin/ecosystem/?days=90")

    assert response.status_code == 200
    board = response.context["board"]
    assert board.days == 90
    page = response.content.decode()
    for heading in (
        "Onboarding time: signup to first successful call",
        "Sandbox to production",
        "Consent completion",
        "Time to resolve errors",
        "Partner retention",
        "Workflow completion",
    ):
        assert f"<h2>{heading}</h2>" in page
    # Definitions are on the page.
    assert "Completion rate: approved ÷ shown" in page
    assert "provided no error hour with that code follows within 24 hours of that success" in page
    # The numbers, per partner type: one developer in 2 hours; two screens, one approved.
    assert by_segment(board.onboarding)[PROVIDER].median == 2 * H
    assert by_segment(board.consent)[PROVIDER].completion == 50
    assert '<tr data-segment="provider">' in page and "2 hours" in page and "50%" in page
    # Charts: server-drawn SVG with a title and a description, and the same numbers in words.
    assert 'id="onboarding-chart"' in page and 'id="consent-chart"' in page and 'id="retention-chart"' in page
    assert 'role="img"' in page and '<desc id="consent-chart-desc">' in page
    assert "Provider: 2 screens (1 approved, 1 abandoned); Payer: 0 screens;" in page
    assert "1 to 24 hours: 1 developer (1 provider);" in page
    assert "<script" not in page.split('<div id="content-main">', 1)[1]
    # A cohort of one sandbox organization, none in production yet: 0%, a real figure, not "no data".
    assert by_segment(board.conversion)[PROVIDER].percent == 0
    assert "no data for conversion" not in page
    # Links to the other dashboards.
    assert 'href="/admin/usage/"' in page and 'href="/admin/portal/analytics/"' in page


def test_an_empty_database_says_no_data(admin_client):
    response = admin_client.get("/admin/ecosystem/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "no data" in page
    assert "No consent screen was shown in the period: no data." in page
    assert "No organization made its first successful sandbox call in the period: no data for conversion." in page
    assert "No error episode started in the period: no data." in page
    board = response.context["board"]
    assert all(row.completion is None for row in board.consent)
    assert all(row.percent is None for workflow in board.workflows for row in workflow.rows)


def test_the_page_is_for_staff_who_may_view_organizations(client):
    assert client.get("/admin/ecosystem/").status_code == 302  # anonymous: to the admin login
    client.force_login(UserFactory())
    response = client.get("/admin/ecosystem/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/ecosystem/").status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_organization", content_type__app_label="partners"))
    client.force_login(User.objects.get(pk=staff.pk))
    assert client.get("/admin/ecosystem/").status_code == 200


def test_the_admin_index_and_the_analytics_page_link_to_it(admin_client, client):
    assert 'href="/admin/ecosystem/"' in admin_client.get("/admin/").content.decode()
    assert 'href="/admin/ecosystem/"' in admin_client.get("/admin/portal/analytics/").content.decode()
    # Staff who may not open it are not shown the link.
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_portalevent"))
    client.force_login(User.objects.get(pk=staff.pk))
    index = client.get("/admin/").content.decode()
    assert 'href="/admin/portal/analytics/"' in index and 'href="/admin/ecosystem/"' not in index
