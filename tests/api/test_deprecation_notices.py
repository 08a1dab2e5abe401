"""Deprecation notices (api/deprecation_notices.py): the organizations whose apps called a deprecated
endpoint in the last 30 days hear of it at each milestone, by inbox and email, exactly once."""

import smtplib
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from api import deprecation_notices
from api.deprecation_notices import deprecation_notices_send, milestone_due, milestones
from api.models import Deprecation, DeprecationNotice
from api.tasks import send_deprecation_notices
from api.usage import floor_hour
from api.usage_models import UsageHour
from partners.models import InboxMessage, Membership
from tests.factories import AppFactory, DeprecationFactory, OrganizationFactory, member

pytestmark = pytest.mark.django_db

ANNOUNCED = datetime(2026, 11, 24, tzinfo=UTC)
SUNSET = datetime(2027, 6, 30, tzinfo=UTC)


def deprecate(prefix="v1/visits", **fields) -> Deprecation:
    defaults = {
        "title": "v1 visits",
        "summary": "v2 gives a visit's time as a period.",
        "announced_at": ANNOUNCED,
        "sunset_at": SUNSET,
    }
    return DeprecationFactory(path_prefix=prefix, **{**defaults, **fields})


def organization(members=2, name=None):
    org = OrganizationFactory(**({"name": name} if name else {}))
    users = [member(organization=org).user for _ in range(members)]
    return org, users


def called(app, endpoint, count, at):
    UsageHour.objects.create(
        hour=floor_hour(at),
        app=app,
        organization_id=app.organization_id,
        group="writes",
        status_class="2xx",
        endpoint=endpoint,
        count=count,
    )


def inbox(user):
    return list(InboxMessage.objects.filter(recipient=user))


def emails_to(user):
    return [m for m in mail.outbox if m.to == [user.email]]


def test_only_organizations_whose_apps_called_a_covered_endpoint_in_the_last_30_days_are_told():
    deprecate()
    now = ANNOUNCED + timedelta(hours=1)
    caller, caller_users = organization()
    v2_only, v2_users = organization()
    long_ago, long_ago_users = organization()
    elsewhere_in_v1, elsewhere_users = organization()
    called(AppFactory(organization=caller), "GET /api/v1/visits/{visit_id}", 3, now - timedelta(days=29))
    called(AppFactory(organization=v2_only), "GET /api/v2/visits/{visit_id}", 50, now - timedelta(hours=2))
    called(AppFactory(organization=long_ago), "POST /api/v1/visits", 9, now - timedelta(days=31))
    called(AppFactory(organization=elsewhere_in_v1), "POST /api/v1/lab-result-shares", 4, now - timedelta(days=1))

    assert deprecation_notices_send(now=now) == {"told": 1, "emailed": 2}

    (notice,) = DeprecationNotice.objects.all()
    assert (notice.organization, notice.milestone) == (caller, "announced")
    assert sorted(r["email"] for r in notice.recipients) == sorted(u.email for u in caller_users)
    for user in caller_users:
        assert len(inbox(user)) == 1 and len(emails_to(user)) == 1
    for user in v2_users + long_ago_users + elsewhere_users:
        assert inbox(user) == [] and emails_to(user) == []


def test_the_notice_lists_the_organization_s_own_calls_per_app_and_endpoint_with_dates_and_links():
    deprecate(enforced_at=datetime(2027, 7, 1, tzinfo=UTC))
    now = ANNOUNCED + timedelta(hours=1)
    ours, (reader,) = organization(members=1)
    theirs, (other_reader,) = organization(members=1)
    scheduler = AppFactory(organization=ours, name="Our Scheduler")
    reminders = AppFactory(organization=ours, name="Our Reminders")
    called(scheduler, "GET /api/v1/visits/{visit_id}", 1234, now - timedelta(days=1))
    called(scheduler, "GET /api/v1/visits/{visit_id}", 1, now - timedelta(days=2))
    called(scheduler, "POST /api/v1/visits", 56, now - timedelta(days=1))
    called(reminders, "GET /api/v1/visits", 7, now - timedelta(days=3))
    called(AppFactory(organization=theirs, name="Their Kiosk"), "POST /api/v1/visits", 999, now - timedelta(days=1))

    deprecation_notices_send(now=now)

    (message,) = inbox(reader)
    (email,) = emails_to(reader)
    assert message.subject == email.subject == "Deprecated: v1 visits (/api/v1/visits), sunset 2027-06-30"
    assert message.body == email.body
    body = message.body
    assert f"- Our Scheduler (sandbox, app {scheduler.pk}):" in body
    assert "    GET /api/v1/visits/{visit_id}: 1,235" in body
    assert "    POST /api/v1/visits: 56" in body
    assert f"- Our Reminders (sandbox, app {reminders.pk}):" in body and "    GET /api/v1/visits: 7" in body
    assert "called it 1,298 times in the last 30 days" in body
    assert "Their Kiosk" not in body and "999" not in body
    assert "Announced 2026-11-24; sunset 2027-06-30. From 2027-07-01 every request to it will get 410 Gone" in body
    assert "Use instead: http://testserver/api/v2/visits" in body
    assert "Migration guide: http://testserver/docs/migrating-to-v2/" in body
    assert "http://testserver/deprecations/" in body and message.link == "/deprecations/"
    assert message.organization == ours

    (theirs_message,) = inbox(other_reader)
    assert "Their Kiosk" in theirs_message.body and "Our Scheduler" not in theirs_message.body
    notice = DeprecationNotice.objects.get(organization=ours)
    assert notice.total_calls == 1298 and {row["app_id"] for row in notice.calls} == {scheduler.pk, reminders.pk}


def test_every_active_member_gets_one_email_and_one_inbox_message_and_a_retry_sends_nothing_more():
    deprecate()
    now = ANNOUNCED + timedelta(hours=1)
    org, (owner,) = organization(members=1)
    viewer = member(role=Membership.Role.VIEWER, organization=org).user
    gone = member(role=Membership.Role.DEVELOPER, organization=org, is_active=False).user
    called(AppFactory(organization=org), "GET /api/v1/visits", 5, now - timedelta(days=1))

    deprecation_notices_send(now=now)
    assert deprecation_notices_send(now=now) == {"told": 0, "emailed": 0}  # the task's retry
    assert deprecation_notices_send(now=now + timedelta(hours=1)) == {"told": 0, "emailed": 0}  # the next beat

    for user in (owner, viewer):
        assert len(inbox(user)) == 1 and len(emails_to(user)) == 1
    assert inbox(gone) == [] and emails_to(gone) == []
    assert len(mail.outbox) == 2
    notice = DeprecationNotice.objects.get()
    assert notice.email_state == "sent" and notice.emailed_at is not None
    assert all(r["emailed_at"] and r["attempts"] == 1 for r in notice.recipients)


def test_milestones_progress_with_time_each_once():
    deprecate()
    org, (reader,) = organization(members=1)
    app = AppFactory(organization=org)
    steps = [
        (ANNOUNCED - timedelta(hours=1), None),  # not announced yet
        (ANNOUNCED + timedelta(hours=1), "announced"),
        (ANNOUNCED + timedelta(days=2), None),
        (SUNSET - timedelta(days=90) + timedelta(hours=1), "90_days"),
        (SUNSET - timedelta(days=89), None),
        (SUNSET - timedelta(days=30) + timedelta(hours=1), "30_days"),
        (SUNSET - timedelta(days=7) + timedelta(hours=1), "7_days"),
        (SUNSET + timedelta(hours=1), "sunset"),
        (SUNSET + timedelta(days=3), None),
    ]
    for now, expected in steps:
        called(app, "GET /api/v1/visits", 1, now - timedelta(hours=2))
        before = set(DeprecationNotice.objects.values_list("milestone", flat=True))
        deprecation_notices_send(now=now)
        after = set(DeprecationNotice.objects.values_list("milestone", flat=True))
        assert after - before == ({expected} if expected else set()), now

    subjects = [m.subject for m in sorted(emails_to(reader), key=lambda m: m.subject)]
    assert len(subjects) == 5 and len(inbox(reader)) == 5
    assert "30 days to the sunset of v1 visits (/api/v1/visits): 2027-06-30" in subjects
    assert "7 days to the sunset of v1 visits (/api/v1/visits): 2027-06-30" in subjects
    assert "90 days to the sunset of v1 visits (/api/v1/visits): 2027-06-30" in subjects
    assert "Sunset reached: v1 visits (/api/v1/visits)" in subjects


def test_a_deprecation_published_20_days_before_its_sunset_skips_the_stale_milestones():
    announced = SUNSET - timedelta(days=20)
    late = deprecate(announced_at=announced)
    assert [m.milestone for m in milestones(late)] == ["announced", "7_days", "sunset"]
    org, (reader,) = organization(members=1)
    app = AppFactory(organization=org)
    for now in (announced + timedelta(hours=1), SUNSET - timedelta(days=10), SUNSET - timedelta(days=7, hours=-1)):
        called(app, "GET /api/v1/visits", 1, now - timedelta(hours=2))
        deprecation_notices_send(now=now)
    assert list(DeprecationNotice.objects.order_by("created_at").values_list("milestone", flat=True)) == [
        "announced",
        "7_days",
    ]
    assert len(emails_to(reader)) == 2


def test_a_scheduler_down_across_milestones_sends_only_the_latest():
    deprecation = deprecate()
    now = SUNSET - timedelta(days=25)  # announced and 90 days both passed unseen
    assert milestone_due(deprecation, now).milestone == "30_days"
    org, _ = organization(members=1)
    called(AppFactory(organization=org), "GET /api/v1/visits", 1, now - timedelta(days=1))
    deprecation_notices_send(now=now)
    assert list(DeprecationNotice.objects.values_list("milestone", flat=True)) == ["30_days"]


def test_an_organization_that_starts_calling_after_a_milestone_hears_it_at_the_next_run():
    deprecate()
    first, _ = organization(members=1)
    latecomer, (late_reader,) = organization(members=1)
    now = ANNOUNCED + timedelta(hours=1)
    called(AppFactory(organization=first), "GET /api/v1/visits", 1, now - timedelta(hours=2))
    deprecation_notices_send(now=now)
    later = ANNOUNCED + timedelta(days=10)
    called(AppFactory(organization=latecomer), "POST /api/v1/visits", 2, later - timedelta(hours=2))
    assert deprecation_notices_send(now=later)["told"] == 1
    assert DeprecationNotice.objects.get(organization=latecomer).milestone == "announced"
    assert len(inbox(late_reader)) == 1


def test_unpublished_and_not_yet_announced_deprecations_notify_nobody():
    deprecate(published=False)
    deprecate(prefix="v1/lab-result-shares", announced_at=timezone.now() + timedelta(days=1))
    org, (reader,) = organization(members=1)
    app = AppFactory(organization=org)
    now = timezone.now()
    called(app, "GET /api/v1/visits", 5, now - timedelta(hours=2))
    called(app, "GET /api/v1/lab-result-shares", 5, now - timedelta(hours=2))
    assert deprecation_notices_send(now=now) == {"told": 0, "emailed": 0}
    assert not DeprecationNotice.objects.exists() and inbox(reader) == [] and mail.outbox == []


def test_an_organization_without_active_members_is_told_once_someone_joins():
    deprecate()
    now = ANNOUNCED + timedelta(hours=1)
    org, _ = organization(members=0)
    called(AppFactory(organization=org), "GET /api/v1/visits", 5, now - timedelta(hours=2))
    assert deprecation_notices_send(now=now)["told"] == 0
    assert not DeprecationNotice.objects.exists()
    newcomer = member(organization=org).user
    assert deprecation_notices_send(now=now + timedelta(hours=1))["told"] == 1
    assert len(inbox(newcomer)) == 1 and len(emails_to(newcomer)) == 1


def test_a_failing_mail_server_leaves_the_notice_to_be_emailed_next_run_without_a_second_inbox_message():
    deprecate()
    now = ANNOUNCED + timedelta(hours=1)
    org, users = organization(members=2)
    called(AppFactory(organization=org), "GET /api/v1/visits", 5, now - timedelta(hours=2))

    with mock.patch.object(EmailBackend, "send_messages", side_effect=smtplib.SMTPServerDisconnected("gone")):
        assert deprecation_notices_send(now=now) == {"told": 1, "emailed": 0}
    notice = DeprecationNotice.objects.get()
    assert notice.emailed_at is None and notice.email_state == "pending"
    assert "SMTPServerDisconnected: gone" in notice.email_error
    assert mail.outbox == [] and InboxMessage.objects.count() == 2

    assert deprecation_notices_send(now=now + timedelta(hours=1)) == {"told": 0, "emailed": 2}
    assert deprecation_notices_send(now=now + timedelta(hours=2)) == {"told": 0, "emailed": 0}
    notice.refresh_from_db()
    assert notice.emailed_at is not None and notice.email_state == "sent"
    for user in users:
        assert len(inbox(user)) == 1 and len(emails_to(user)) == 1


def test_a_send_that_fails_halfway_emails_only_the_rest_next_run():
    deprecate()
    now = ANNOUNCED + timedelta(hours=1)
    org, users = organization(members=3)
    called(AppFactory(organization=org), "GET /api/v1/visits", 5, now - timedelta(hours=2))
    real_send = EmailBackend.send_messages
    calls = []

    def second_fails(self, messages):
        calls.append(messages)
        if len(calls) == 2:
            raise ConnectionRefusedError("refused")
        return real_send(self, messages)

    with mock.patch.object(EmailBackend, "send_messages", second_fails):
        assert deprecation_notices_send(now=now)["emailed"] == 1
    assert deprecation_notices_send(now=now + timedelta(hours=1))["emailed"] == 2
    assert sorted(m.to[0] for m in mail.outbox) == sorted(u.email for u in users)


def test_a_recipient_the_mail_server_keeps_refusing_is_given_up_after_the_last_attempt():
    deprecate()
    now = ANNOUNCED + timedelta(hours=1)
    org, _ = organization(members=1)
    called(AppFactory(organization=org), "GET /api/v1/visits", 5, now - timedelta(hours=2))
    with mock.patch.object(EmailBackend, "send_messages", side_effect=smtplib.SMTPRecipientsRefused({})):
        for hour in range(deprecation_notices.MAX_EMAIL_ATTEMPTS + 2):
            deprecation_notices_send(now=now + timedelta(hours=hour))
    notice = DeprecationNotice.objects.get()
    (recipient,) = notice.recipients
    assert recipient["attempts"] == deprecation_notices.MAX_EMAIL_ATTEMPTS and recipient["gave_up_at"]
    assert notice.email_state == "failed" and notice.emailed_at is not None


def test_the_task_runs_the_service_and_is_on_the_beat_schedule():
    entry = settings.CELERY_BEAT_SCHEDULE["send-deprecation-notices"]
    assert entry["task"] == "api.tasks.send_deprecation_notices"
    assert entry["options"]["expire_seconds"] < entry["schedule"]
    deprecate(announced_at=timezone.now() - timedelta(hours=1), sunset_at=timezone.now() + timedelta(days=200))
    org, (reader,) = organization(members=1)
    called(AppFactory(organization=org), "GET /api/v1/visits", 5, timezone.now() - timedelta(hours=3))
    assert send_deprecation_notices.delay().get() == {"told": 1, "emailed": 1}
    assert len(inbox(reader)) == 1


def test_admin_shows_who_was_told_what_and_when(admin_client):
    deprecation = deprecate()
    now = ANNOUNCED + timedelta(hours=1)
    org, (reader,) = organization(members=1, name="Findable Clinic")
    called(AppFactory(organization=org, name="Findable App"), "GET /api/v1/visits", 5, now - timedelta(hours=2))
    deprecation_notices_send(now=now)
    notice = DeprecationNotice.objects.get()

    changelist = admin_client.get(
        reverse("admin:api_deprecationnotice_changelist"),
        {"deprecation__id__exact": deprecation.pk, "milestone__exact": "announced"},
    )
    page = changelist.content.decode()
    assert changelist.status_code == 200
    assert "Findable Clinic" in page and reader.email in page and "Announced" in page

    detail = admin_client.get(reverse("admin:api_deprecationnotice_change", args=[notice.pk])).content.decode()
    assert "Findable App" in detail and "GET /api/v1/visits" in detail and reader.email in detail
    assert "Deprecated: v1 visits" in detail
    assert admin_client.get(reverse("admin:api_deprecationnotice_add")).status_code == 403

    deprecation_page = admin_client.get(reverse("admin:api_deprecation_change", args=[deprecation.pk]))
    assert "Announced: 1 organization" in deprecation_page.content.decode()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_runs_tell_each_organization_once_per_milestone(mailoutbox):
    now = timezone.now()
    deprecate(announced_at=now - timedelta(hours=1), sunset_at=now + timedelta(days=200))
    readers = []
    for _ in range(4):
        org, users = organization(members=2)
        readers += users
        called(AppFactory(organization=org), "GET /api/v1/visits", 3, now - timedelta(hours=3))
    runs = 6
    start = threading.Barrier(runs)
    errors, results = [], []

    def run():
        try:
            start.wait()
            results.append(deprecation_notices_send(now=now))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(r["told"] for r in results) == 4 and sum(r["emailed"] for r in results) == 8
    assert DeprecationNotice.objects.count() == 4
    assert all(n.emailed_at is not None for n in DeprecationNotice.objects.all())
    assert Counter(InboxMessage.objects.values_list("recipient_id", flat=True)) == {u.pk: 1 for u in readers}
    assert Counter(m.to[0] for m in mailoutbox) == {u.email: 1 for u in readers}
