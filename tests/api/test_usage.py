"""Usage counting (api.usage), the hourly rollup, retention and the dashboard selectors.

Every test but those marked ``redis`` runs on whichever store the settings choose: the local-memory
cache without ``REDIS_URL``, Redis with it."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from unittest import mock

import pytest
from django.db.models import Sum

from api import tasks, usage, usage_selectors
from api.usage_models import UsageHour
from tests.factories import AppFactory, tier

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
H = timedelta(hours=1)
CURRENT = datetime(2026, 3, 10, 12, tzinfo=UTC)


def hit(app, times: int = 1, *, group="fhir_read", status=200, error_code=None, policy=None, at=NOW):
    """``times`` responses of ``app``, as ``ProtectedAPIView.finalize_response`` records them."""
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


def table() -> dict[tuple, int]:
    return {
        (row.hour, row.app_id, row.group, row.status_class, row.error_code, row.policy): row.count
        for row in UsageHour.objects.all()
    }


def total() -> int:
    return UsageHour.objects.aggregate(n=Sum("count"))["n"] or 0


@pytest.fixture
def other_app(db):
    return AppFactory()


# --- Recording and rollup --------------------------------------------------------------------


def test_rollup_writes_the_counted_totals_per_app_group_status_error_policy_and_hour(app, other_app):
    hit(app, 3, at=CURRENT - 2 * H)
    hit(app, 2, at=CURRENT - 2 * H + timedelta(minutes=59))
    hit(app, 1, status=403, error_code="consent_required", at=CURRENT - 2 * H)
    hit(app, 2, status=429, error_code="quota_exceeded", policy="org-fhir_read-minute", at=CURRENT - H)
    hit(app, 1, group="writes", status=201, at=CURRENT)
    hit(other_app, 4, group="fhir_search", status=200, at=CURRENT)

    written = usage.rollup(now=NOW)

    assert written == 5
    assert table() == {
        (CURRENT - 2 * H, app.pk, "fhir_read", "2xx", "", ""): 5,
        (CURRENT - 2 * H, app.pk, "fhir_read", "4xx", "consent_required", ""): 1,
        (CURRENT - H, app.pk, "fhir_read", "4xx", "quota_exceeded", "org-fhir_read-minute"): 2,
        (CURRENT, app.pk, "writes", "2xx", "", ""): 1,
        (CURRENT, other_app.pk, "fhir_search", "2xx", "", ""): 4,
    }
    row = UsageHour.objects.get(app=other_app)
    assert row.organization_id == other_app.organization_id


def test_running_the_rollup_again_gives_the_same_totals(app):
    hit(app, 5, at=CURRENT - 3 * H)
    hit(app, 2, status=500, error_code="server_error", at=CURRENT - H)
    hit(app, 7, at=CURRENT)

    usage.rollup(now=NOW)
    first = table()
    usage.rollup(now=NOW)
    usage.rollup(now=NOW + timedelta(minutes=5))
    usage.rollup(hours=[CURRENT - 3 * H, CURRENT - H, CURRENT], now=NOW)

    assert table() == first
    assert total() == 14
    assert UsageHour.objects.count() == 3


def test_a_rollup_that_crashes_between_hours_and_reruns_with_new_records_never_double_counts(app):
    hit(app, 4, at=CURRENT - 2 * H)
    hit(app, 6, at=CURRENT - H)
    hit(app, 1, at=CURRENT)

    real_bulk_create = UsageHour.objects.bulk_create
    calls = []

    def crash_on_the_second_hour(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real_bulk_create(*args, **kwargs)

    with (
        mock.patch.object(UsageHour.objects, "bulk_create", side_effect=crash_on_the_second_hour),
        pytest.raises(RuntimeError),
    ):
        usage.rollup(now=NOW)
    # The first hour committed on its own; the second and the current one did not.
    assert table() == {(CURRENT - 2 * H, app.pk, "fhir_read", "2xx", "", ""): 4}

    # Requests go on while the task waits for its retry; a late one even lands in a finished hour.
    hit(app, 2, at=CURRENT)
    hit(app, 1, at=CURRENT - H + timedelta(minutes=59, seconds=59))
    usage.rollup(now=NOW + timedelta(minutes=1))
    usage.rollup(now=NOW + timedelta(minutes=2))  # and it overlaps with the next scheduled run

    assert table() == {
        (CURRENT - 2 * H, app.pk, "fhir_read", "2xx", "", ""): 4,
        (CURRENT - H, app.pk, "fhir_read", "2xx", "", ""): 7,
        (CURRENT, app.pk, "fhir_read", "2xx", "", ""): 3,
    }


def test_the_current_hour_is_rolled_up_as_a_partial_total_and_replaced_by_the_next_run(app):
    hit(app, 2, at=CURRENT)
    usage.rollup(now=NOW)
    assert total() == 2

    hit(app, 3, at=CURRENT + timedelta(minutes=40))
    usage.rollup(now=NOW + timedelta(minutes=15))

    assert table() == {(CURRENT, app.pk, "fhir_read", "2xx", "", ""): 5}


def test_an_hour_leaves_the_pending_set_only_once_it_has_ended_and_is_rolled_up(app):
    hit(app, at=CURRENT - H)
    hit(app, at=CURRENT)
    store = usage.counters()
    assert store.pending() == {usage.hour_key(CURRENT - H), usage.hour_key(CURRENT)}

    usage.rollup(now=CURRENT + timedelta(minutes=2))  # the previous hour ended 2 minutes ago: not final
    assert store.pending() == {usage.hour_key(CURRENT - H), usage.hour_key(CURRENT)}

    usage.rollup(now=NOW)
    assert store.pending() == {usage.hour_key(CURRENT)}


def test_an_hour_whose_counters_are_gone_keeps_its_rows(app):
    hit(app, 3, at=CURRENT - 2 * H)
    usage.rollup(now=NOW)
    from django.core.cache import cache

    cache.clear()  # the counters expired (or Redis was flushed)

    assert usage.rollup(hours=[CURRENT - 2 * H], now=NOW) == 0
    assert table() == {(CURRENT - 2 * H, app.pk, "fhir_read", "2xx", "", ""): 3}


def test_counters_of_an_app_deleted_since_are_dropped(app):
    usage.record(app_id=987654, organization_id=1, group="fhir_read", status=200, error_code=None, policy=None, at=NOW)
    hit(app, at=NOW)

    assert usage.rollup(now=NOW) == 1
    assert list(UsageHour.objects.values_list("app_id", flat=True)) == [app.pk]


def test_odd_values_are_made_safe_for_the_counter_field(app):
    hit(app, status=418, error_code="odd|code", policy="x" * 300, group="fhir_read", at=NOW)
    usage.rollup(now=NOW)

    row = UsageHour.objects.get()
    assert (row.status_class, row.error_code, len(row.policy)) == ("4xx", "odd/code", 100)


def test_recording_never_raises_into_the_request(app, caplog):
    with mock.patch.object(usage, "counters", side_effect=ConnectionError("redis is down")):
        hit(app)  # no exception
    assert "usage counts lost" in caplog.text


def test_recording_with_redis_is_one_pipelined_round_trip(app, settings):
    settings.REDIS_URL = "redis://redis.invalid:6379/1"
    connection = mock.MagicMock(name="redis")
    with mock.patch("django_redis.get_redis_connection", return_value=connection):
        hit(app, status=429, error_code="quota_exceeded", policy="org-fhir_read-minute")

    pipe = connection.pipeline.return_value
    outside_the_pipeline = [call for call in connection.mock_calls if not call[0].startswith("pipeline()")]
    assert outside_the_pipeline == [mock.call.pipeline(transaction=False)]
    assert pipe.execute.call_count == 1
    hour = usage.hour_key(NOW)
    field = f"{app.organization_id}|fhir_read|4xx|quota_exceeded|org-fhir_read-minute|-"
    pipe.hincrby.assert_called_once_with(f"usage:{hour}:{app.pk}", field, 1)
    pipe.sadd.assert_any_call(usage.PENDING_KEY, hour)


@pytest.mark.redis
def test_counters_live_in_one_redis_hash_per_hour_and_app_with_a_ttl(app):
    from django_redis import get_redis_connection

    hit(app, 2, at=NOW)
    hit(app, status=403, error_code="consent_required", at=NOW)

    client = get_redis_connection("default")
    key = f"usage:{usage.hour_key(NOW)}:{app.pk}"
    assert client.hgetall(key) == {
        f"{app.organization_id}|fhir_read|2xx|-|-|-".encode(): b"2",
        f"{app.organization_id}|fhir_read|4xx|consent_required|-|-".encode(): b"1",
    }
    assert 0 < client.ttl(key) <= usage.COUNTER_TTL
    assert client.smembers(f"usage:{usage.hour_key(NOW)}:apps") == {str(app.pk).encode()}

    usage.rollup(now=NOW)
    usage.rollup(now=NOW)
    assert total() == 3


def test_counter_fields_written_before_endpoints_were_counted_still_roll_up(app):
    usage.counters().add_many({(usage.hour_key(NOW), app.pk, f"{app.organization_id}|fhir_read|2xx|-|-"): 4})
    usage.rollup(now=NOW)
    row = UsageHour.objects.get()
    assert (row.group, row.status_class, row.endpoint, row.count) == ("fhir_read", "2xx", "", 4)


def test_the_beat_tasks_call_the_rollup_and_the_purge(app):
    hit(app, 2, at=datetime.now(UTC))
    assert tasks.rollup_usage.delay().get() == 1
    assert tasks.purge_old_usage.delay().get() == 0
    assert total() == 2


# --- Retention -------------------------------------------------------------------------------


def test_usage_is_kept_13_months(app):
    now = datetime(2026, 3, 31, 10, 15, tzinfo=UTC)
    kept = datetime(2025, 2, 28, 10, tzinfo=UTC)  # 13 months back from March 31st is February 28th
    for hour in (datetime(2025, 2, 28, 9, tzinfo=UTC), datetime(2024, 12, 1, tzinfo=UTC), kept, CURRENT):
        UsageHour.objects.create(
            hour=hour, app=app, organization=app.organization, group="fhir_read", status_class="2xx", count=1
        )

    assert usage.purge_older_than(months=13, now=now) == 2
    assert sorted(UsageHour.objects.values_list("hour", flat=True)) == [kept, CURRENT]


def test_months_before_clamps_to_the_end_of_a_shorter_month():
    assert usage.months_before(datetime(2024, 3, 31, 5, tzinfo=UTC), 1) == datetime(2024, 2, 29, 5, tzinfo=UTC)
    assert usage.months_before(datetime(2026, 1, 15, tzinfo=UTC), 13) == datetime(2024, 12, 15, tzinfo=UTC)


# --- Selectors -------------------------------------------------------------------------------


def test_the_dashboard_reads_rolled_up_hours_and_the_live_counters_once_each(app, other_app):
    hit(app, 5, at=CURRENT - 5 * H)
    hit(app, 2, status=404, error_code="not_found", at=CURRENT - 5 * H)
    usage.rollup(now=NOW)  # hour -5 is final: it now comes from the table only
    hit(app, 3, at=CURRENT)  # live only, not rolled up yet
    hit(app, 1, status=503, error_code="service_unavailable", at=CURRENT - H)
    usage.rollup(now=NOW)  # the live counters win for these hours; rows are not added on top
    hit(app, 1, at=CURRENT)
    hit(other_app, 50, at=CURRENT)  # another organization's app

    dashboard = usage_selectors.app_dashboard(app=app, now=NOW)

    by_hour = {hour.hour: hour.counts for hour in dashboard.hours}
    assert len(dashboard.hours) == 24 and dashboard.hours[-1].hour == CURRENT
    assert by_hour[CURRENT - 5 * H] == {"2xx": 5, "3xx": 0, "4xx": 2, "5xx": 0}
    assert by_hour[CURRENT - H] == {"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 1}
    assert by_hour[CURRENT] == {"2xx": 4, "3xx": 0, "4xx": 0, "5xx": 0}
    assert dashboard.total == 12
    assert [(e.code, e.count, e.docs_url) for e in dashboard.errors] == [
        ("not_found", 2, "/docs/errors/not_found/"),
        ("service_unavailable", 1, "/docs/errors/service_unavailable/"),
    ]


def test_the_dashboard_is_the_same_before_and_after_a_rollup(app):
    hit(app, 4, at=CURRENT - 3 * H)
    hit(app, 2, status=429, error_code="quota_exceeded", policy="org-fhir_read-minute", at=CURRENT - H)
    hit(app, 3, at=CURRENT)
    before = usage_selectors.app_dashboard(app=app, now=NOW, period="7d")
    usage.rollup(now=NOW)
    after = usage_selectors.app_dashboard(app=app, now=NOW, period="7d")
    assert len(after.hours) == 168
    assert before.hours == after.hours and before.rate_limited == after.rate_limited


def test_429s_are_grouped_by_policy(app):
    hit(app, 3, status=429, error_code="quota_exceeded", policy="org-fhir_read-minute")
    hit(app, 1, status=429, error_code="quota_exceeded", policy="token-fhir_read-minute")
    hit(app, 1, status=429, error_code="quota_exceeded", policy="org-fhir_read-minute", at=CURRENT - 30 * H)

    last_day = usage_selectors.app_dashboard(app=app, now=NOW)
    last_week = usage_selectors.app_dashboard(app=app, now=NOW, period="7d")

    assert [(p.policy, p.count) for p in last_day.rate_limited] == [
        ("org-fhir_read-minute", 3),
        ("token-fhir_read-minute", 1),
    ]
    assert last_week.rate_limited[0].count == 4


def test_todays_quota_use_and_when_it_runs_out_at_the_current_pace(app):
    org = app.organization  # sandbox tier: fhir_read 10,000 a day, eligibility 100
    sibling = AppFactory(organization=org)
    for hour, count in ((CURRENT - 12 * H, 5_000), (CURRENT - 2 * H, 3_000), (CURRENT - H, 600)):
        UsageHour.objects.create(
            hour=hour, app=sibling, organization=org, group="fhir_read", status_class="2xx", count=count
        )
    UsageHour.objects.create(  # yesterday: not today's use
        hour=CURRENT - 13 * H, app=app, organization=org, group="fhir_read", status_class="2xx", count=9_999
    )
    hit(app, 250, at=CURRENT + timedelta(minutes=10))
    hit(app, 50, status=403, error_code="consent_required")  # refused after the rate limit: counts
    hit(app, 40, status=403, error_code="insufficient_scope")  # refused before it: uses no quota
    hit(app, 3, group="eligibility")

    quotas = {q.group: q for q in usage_selectors.app_dashboard(app=app, now=NOW).quotas}

    reads = quotas["fhir_read"]
    assert (reads.per_day, reads.used, reads.app_used) == (10_000, 8_900, 300)
    # The last 60 minutes: 300 in this half hour, and half of the previous hour's 600.
    assert reads.pace_per_hour == 600
    # 1,100 left at 600 an hour: 110 minutes from 12:30.
    assert reads.runs_out_at == datetime(2026, 3, 10, 14, 20, tzinfo=UTC)
    assert not reads.exhausted and reads.percent == 89
    assert quotas["eligibility"].runs_out_at is None  # 97 left at 3 an hour: not today
    assert quotas["writes"].used == 0 and quotas["writes"].runs_out_at is None


def test_a_used_up_quota_is_exhausted(app):
    hit(app, 100, group="eligibility")
    quota = {q.group: q for q in usage_selectors.app_dashboard(app=app, now=NOW).quotas}["eligibility"]
    assert quota.exhausted and quota.runs_out_at is None and quota.percent == 100


def test_an_organizations_override_replaces_its_tiers_daily_quota(db):
    sandbox = tier("sandbox")
    assert sandbox.rate_quotas["fhir_read"]["per_day"] == 10_000
    overridden = SimpleNamespace(tier=sandbox, rate_quota_overrides={"fhir_read": {"per_day": 50_000}})
    assert usage_selectors.daily_quota(overridden, "fhir_read") == 50_000
    assert usage_selectors.daily_quota(overridden, "fhir_search") == sandbox.rate_quotas["fhir_search"]["per_day"]
    assert usage_selectors.daily_quota(SimpleNamespace(tier=sandbox), "writes") == 1_000
    assert usage_selectors.daily_quota(SimpleNamespace(tier=sandbox, rate_quota_overrides=None), "writes") == 1_000


@pytest.mark.parametrize(
    "code, counts",
    [
        ("", True),
        ("consent_required", True),
        ("not_found", True),
        ("quota_exceeded", False),
        ("invalid_token", False),
        ("tier_policy", False),
    ],
)
def test_which_responses_use_quota(code, counts):
    assert usage_selectors.counts_toward_quota(code) is counts


def test_the_cross_partner_dashboard_ranks_organizations_by_requests_today(app, other_app):
    hit(app, 3)
    hit(other_app, 5, status=429, error_code="quota_exceeded", policy="org-fhir_read-minute")
    hit(other_app, 2)
    usage.rollup(now=NOW)
    hit(app, 1, status=500, error_code="server_error")

    dashboard = usage_selectors.platform_dashboard(now=NOW)

    assert [(o.organization, o.requests, o.errors, o.rate_limited) for o in dashboard.top_organizations] == [
        (other_app.organization, 7, 5, 5),
        (app.organization, 4, 1, 0),
    ]
    assert dashboard.total == 11 and dashboard.quotas == []
    one = usage_selectors.platform_dashboard(now=NOW, organization=app.organization)
    assert one.total == 4 and one.top_organizations == [] and len(one.quotas) == 5
