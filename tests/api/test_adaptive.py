"""Adaptive limits (api.adaptive): the eligibility group's quotas tighten while its error rate or
latency is over a threshold and recover step by step once it is well; an app far above its own usual
rate is capped alone. The headers, the 429's detail, the dashboards and the admin's history show it.

Every test runs on whichever store the settings choose: the local-memory cache without ``REDIS_URL``,
Redis with it."""

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.urls import reverse

from api import adaptive
from api.adaptive import InForce
from api.adaptive_models import AdaptiveLimitChange
from api.usage_models import UsageHour
from partners.models import Membership
from tests.api.workflows.test_eligibility import check, insured, patient_token
from tests.factories import AppFactory, UserFactory, member

pytestmark = pytest.mark.django_db

T = 1_800_000_000.0  # a fixed clock, at the start of an hour (and so of a bucket and of a minute)
GROUP = "eligibility"
# The shipped defaults (settings.ADAPTIVE_GROUPS), spelled out so that tuning them moves no test.
RULES = {
    "error_rate": 0.2,
    "latency_ms": 2000,
    "min_requests": 20,
    "window_seconds": 60,
    "steps": (1.0, 0.5, 0.25),
    "recover_after_seconds": 120,
    "surge_multiple": 5,
    "surge_floor_per_minute": 30,
    "surge_cooldown_seconds": 300,
}
ROOMY = {"burst": 4, "per_minute": 40, "per_day": 1000, "per_token_per_minute": 40, "per_patient_per_minute": 40}


@pytest.fixture(autouse=True)
def clock(settings, monkeypatch):
    settings.ADAPTIVE_GROUPS = {GROUP: dict(RULES)}
    settings.ADAPTIVE_REFRESH_SECONDS = 0  # every call reads the stored limits: no copy to wait for
    now = {"now": T}
    monkeypatch.setattr(adaptive.time, "time", lambda: now["now"])
    adaptive.forget()
    yield now
    adaptive.forget()  # no limit of this test may hold a request of the next


def feed(app_id: int, times: int, *, status: int = 201, elapsed_ms: float = 400) -> None:
    for _ in range(times):
        adaptive.observe(GROUP, app_id, status, elapsed_ms)


def evaluate_at(clock, at: float) -> int:
    clock["now"] = at
    return adaptive.evaluate()


def policies(response) -> dict[str, int]:
    found = {}
    for item in response["RateLimit-Policy"].split(", "):
        name, *params = item.split(";")
        found[name.strip('"')] = int(dict(p.split("=") for p in params)["q"])
    return found


def history(app, hours: int, per_hour: int) -> None:
    """``hours`` rolled-up hours of ``app`` in the group before the clock's hour, ``per_hour`` each."""
    current = datetime.fromtimestamp(T, UTC)
    for offset in range(1, hours + 1):
        UsageHour.objects.create(
            hour=current - timedelta(hours=offset * 3),
            app=app,
            organization=app.organization,
            group=GROUP,
            status_class="2xx",
            count=per_hour,
        )


@pytest.fixture
def app():
    app = AppFactory()
    app.organization.rate_quota_overrides = {GROUP: ROOMY}
    app.organization.save()
    return app


# --- Tightening -------------------------------------------------------------------------------------


def test_an_error_rate_over_the_threshold_halves_the_group_s_quotas_and_the_api_says_why(client, settings, app):
    settings.RATE_LIMITS = True
    insured(app)
    raw = patient_token(app)
    feed(app.pk, 30)
    feed(app.pk, 10, status=503)  # 25% of the window: over 20%

    assert adaptive.evaluate() == 1

    why = (
        "The eligibility group is limited to 50% of its quotas because its error rate over the last minute "
        "reached 25% (threshold 20%); it recovers automatically."
    )
    assert adaptive.in_force(GROUP, app.pk) == InForce(0.5, None, why)
    assert adaptive.in_force("fhir_read", app.pk) is None  # only the adaptive group
    first = check(client, raw)
    assert first.status_code == 201, first.content
    assert policies(first) == {
        "org-eligibility-second": 2,
        "org-eligibility-minute": 20,
        "org-eligibility-day": 500,
        "token-eligibility-minute": 20,
        "patient-eligibility-minute": 20,
    }
    assert check(client, raw).status_code == 201
    refused = check(client, raw)  # the third in the same second: the halved burst is used up
    assert refused.status_code == 429
    body = refused.json()
    assert body["violated-policies"] == ["org-eligibility-second"]
    assert body["detail"].startswith("The org-eligibility-second quota (2 requests per second) is used up")
    assert body["detail"].endswith(why)

    row = AdaptiveLimitChange.objects.get()
    assert (row.group, row.app, row.factor, row.app_cap, row.reason, row.ended_at) == (
        GROUP,
        None,
        0.5,
        None,
        why,
        None,
    )
    assert row.started_at == datetime.fromtimestamp(T, UTC)
    assert (row.signals["n"], row.signals["errors"]) == (40, 10)


def test_a_mean_latency_over_the_threshold_tightens_too(app):
    feed(app.pk, 25, elapsed_ms=2500)

    adaptive.evaluate()

    assert adaptive.in_force(GROUP, app.pk).factor == 0.5
    assert "its mean latency over the last minute reached 2,500 ms (threshold 2,000 ms)" in (
        adaptive.in_force(GROUP, app.pk).explanation
    )


def test_too_few_responses_decide_nothing(app):
    feed(app.pk, 19, status=504)  # every one an error, but one short of min_requests

    assert adaptive.evaluate() == 0

    assert adaptive.in_force(GROUP, app.pk) is None
    assert not AdaptiveLimitChange.objects.exists()


def test_client_errors_are_neither_errors_nor_a_dilution_of_them(app):
    def factor() -> float:
        return adaptive.snapshot().groups[GROUP].factor

    feed(app.pk, 200, status=429)  # refusals and the caller's own mistakes say nothing of the group
    feed(app.pk, 50, status=422)
    feed(app.pk, 15)
    adaptive.evaluate()
    assert factor() == 1.0  # 15 responses that count: too few
    feed(app.pk, 4)
    feed(app.pk, 1, status=500)  # 1 in 20 is 5%
    adaptive.evaluate()
    assert factor() == 1.0

    feed(app.pk, 4, status=502)  # 5 in 24
    adaptive.evaluate()
    assert factor() == 0.5


# --- Recovery and hysteresis --------------------------------------------------------------------------


def test_it_tightens_a_window_at_a_time_and_recovers_a_step_at_a_time_after_two_calm_minutes(clock, app):
    timeline = []
    factor = 1.0
    for at in range(0, 500, 10):  # the beat's evaluations, every 10 s
        clock["now"] = T + at
        if at <= 60:
            feed(app.pk, 20, status=500)  # the payer is down for a minute
        else:
            feed(app.pk, 20)
        adaptive.evaluate()
        now = adaptive.in_force(GROUP, app.pk)
        if (now.factor if now else 1.0) != factor:
            factor = now.factor if now else 1.0
            timeline.append((at, factor))

    # Tighter at once, and again once a whole window at 50% still failed; the errors fall under 20% of
    # the window at +110 s; then each step back waits for 120 s of calm at the step before.
    assert timeline == [(0, 0.5), (60, 0.25), (230, 0.5), (350, 1.0)]
    rows = list(AdaptiveLimitChange.objects.order_by("started_at").values_list("factor", "started_at", "ended_at"))
    moment = lambda seconds: datetime.fromtimestamp(T + seconds, UTC)  # noqa: E731
    assert rows == [
        (0.5, moment(0), moment(60)),
        (0.25, moment(60), moment(230)),
        (0.5, moment(230), moment(350)),
    ]
    assert "recovers automatically" in AdaptiveLimitChange.objects.get(factor=0.25).reason


def test_bursts_between_calm_spells_never_let_it_flap_back_up(clock, app):
    factors = []
    for at in range(0, 600, 10):
        clock["now"] = T + at
        if at % 100 == 0:  # a burst of failures every 100 s, quiet in between
            feed(app.pk, 15)
            feed(app.pk, 10, status=503)
        adaptive.evaluate()
        now = adaptive.in_force(GROUP, app.pk)
        factors.append(now.factor if now else 1.0)

    # Each calm spell (40 s once a burst leaves the window) is shorter than the 120 s recovery needs.
    assert factors[0] == 0.5 and set(factors) == {0.5, 0.25}
    assert factors == sorted(factors, reverse=True)  # never looser again while the bursts go on
    assert AdaptiveLimitChange.objects.count() == 2


def test_a_state_that_lapsed_ends_the_rows_it_left_open(clock, app):
    feed(app.pk, 20, status=500)
    adaptive.evaluate()
    assert AdaptiveLimitChange.objects.filter(ended_at=None).count() == 1

    adaptive.cache.delete(adaptive.STATE_KEY)  # no evaluation for STATE_TTL: the limits lapsed
    assert adaptive.in_force(GROUP, app.pk) is None
    evaluate_at(clock, T + 100)

    assert AdaptiveLimitChange.objects.get().ended_at == datetime.fromtimestamp(T + 100, UTC)


# --- One app far above its usual rate ------------------------------------------------------------------


def test_an_app_far_above_its_usual_rate_is_capped_alone_until_it_calms_down(client, clock, settings, app):
    settings.RATE_LIMITS = True
    other = AppFactory()  # another organization, busy as usual
    other.organization.rate_quota_overrides = {GROUP: ROOMY}
    other.organization.save()
    history(app, 10, 120)  # 2 a minute over its active hours
    history(other, 10, 1_200)  # 20 a minute
    feed(app.pk, 60)
    feed(other.pk, 60)

    assert adaptive.evaluate() == 1

    why = (
        "This app is capped at 30 eligibility requests a minute because its rate over the last minute, 60 a "
        "minute, is more than 5 times its usual 2 a minute; the cap lifts once its rate has stayed under the "
        "cap for 5 minutes."
    )
    assert adaptive.in_force(GROUP, app.pk) == InForce(1.0, 30, why)
    assert adaptive.in_force(GROUP, other.pk) is None
    insured(app)
    capped = check(client, patient_token(app))
    assert capped.status_code == 201, capped.content
    assert policies(capped)["app-eligibility-minute"] == 30
    assert policies(capped)["org-eligibility-minute"] == 40  # the group itself is well
    insured(other, "p2", coverages=("c2",))
    free = check(client, patient_token(other, "p2"), patient="Patient/p2", coverage="Coverage/c2")
    assert free.status_code == 201, free.content
    assert "app-eligibility-minute" not in policies(free)

    row = AdaptiveLimitChange.objects.get()
    assert (row.app, row.app_cap, row.factor, row.reason, row.ended_at) == (app, 30, 1.0, why, None)

    # It keeps hammering (its refused requests count as its rate): the cap holds past five minutes.
    for at in range(60, 400, 60):
        clock["now"] = T + at
        feed(app.pk, 60, status=429)
        adaptive.evaluate()
    assert adaptive.in_force(GROUP, app.pk).app_cap == 30
    # It calms down: the cap lifts five minutes after its last minute over the cap.
    last_surge = T + 360
    evaluate_at(clock, last_surge + 290)
    assert adaptive.in_force(GROUP, app.pk) is not None
    evaluate_at(clock, last_surge + 300)
    assert adaptive.in_force(GROUP, app.pk) is None
    row.refresh_from_db()
    assert row.ended_at == datetime.fromtimestamp(last_surge + 300, UTC)


def test_an_app_without_history_is_held_to_the_floor_s_multiple(app):
    feed(app.pk, 150)  # 150 a minute: 5 times the 30 assumed, not more
    adaptive.evaluate()
    assert adaptive.in_force(GROUP, app.pk) is None

    feed(app.pk, 1)
    adaptive.evaluate()
    limit = adaptive.in_force(GROUP, app.pk)
    assert limit.app_cap == 150
    assert "the 30 a minute assumed for an app with no usage history" in limit.explanation


def test_a_capped_app_in_a_tightened_group_is_told_both(app):
    feed(app.pk, 100)
    feed(app.pk, 60, status=503)
    adaptive.evaluate()
    limit = adaptive.in_force(GROUP, app.pk)
    assert (limit.factor, limit.app_cap) == (0.5, 150)
    assert limit.explanation.startswith("The eligibility group is limited to 50%")
    assert "This app is capped at 150 eligibility requests a minute" in limit.explanation


# --- Cheap where it runs ------------------------------------------------------------------------------


def test_observations_wait_in_the_process_until_the_flush(settings, app):
    settings.USAGE_FLUSH_SECONDS = 3600
    adaptive.flush()
    feed(app.pk, 25, status=500)
    assert adaptive.evaluate() == 0  # nothing reached the shared buckets yet

    adaptive.flush()
    assert adaptive.evaluate() == 1


def test_in_force_answers_from_the_process_s_copy_between_refreshes(settings, app):
    settings.ADAPTIVE_REFRESH_SECONDS = 60
    with mock.patch.object(adaptive.cache, "get", wraps=adaptive.cache.get) as reads:
        for _ in range(100):
            assert adaptive.in_force(GROUP, app.pk) is None
    assert reads.call_count == 1


def test_observing_a_group_that_is_not_adaptive_costs_nothing(app):
    adaptive.observe("fhir_read", app.pk, 500, 9000)
    adaptive.flush()
    assert adaptive.read_signals({"fhir_read": adaptive.Rules(**RULES)}, T)["fhir_read"].requests == 0


# --- Seen on the dashboards and in the admin ------------------------------------------------------------


@pytest.fixture
def limited(app):
    """The group halved by errors, and ``app`` capped for a surge."""
    history(app, 10, 120)
    feed(app.pk, 100)
    feed(app.pk, 40, status=503)
    adaptive.evaluate()
    return app


def test_the_app_s_usage_page_shows_the_limits_in_force_and_their_history(client, limited):
    owner = member(Membership.Role.OWNER, organization=limited.organization)
    client.force_login(owner.user)

    response = client.get(reverse("portal:app-usage", args=[limited.pk]))

    assert response.status_code == 200
    page = response.text
    section = page[page.index('id="adaptive-title"') :]
    assert "Limits in force now" in page and 'class="alert alert-warning"' in page
    assert '<span class="badge badge-warning">50%</span>' in section
    assert '20 <span class="muted">of 40</span>' in section  # the per-minute quota as the limiter holds it
    assert '<span class="badge badge-warning">30 a minute</span>' in section  # the app's own cap
    assert "because its error rate over the last minute reached 29% (threshold 20%)" in section
    assert "This app is capped at 30 eligibility requests a minute" in section
    assert "140 responses, 29% server errors (5xx), mean latency 400 ms." in section
    assert section.count("In force</span>") == 2  # the group's row and the app's, still open
    [now] = response.context["usage"].adaptive
    assert (now.factor, now.per_minute, now.effective_per_minute, now.app_cap) == (0.5, 40, 20, 30)


def test_another_organization_s_page_shows_the_group_but_not_the_cap(client, limited):
    owner = member(Membership.Role.OWNER)
    other = AppFactory(organization=owner.organization)
    client.force_login(owner.user)

    response = client.get(reverse("portal:app-usage", args=[other.pk]))

    [now] = response.context["usage"].adaptive
    assert (now.factor, now.app_cap) == (0.5, None)
    assert "This app is capped" not in response.text
    assert [change.app_id for change in response.context["usage"].adaptive_changes] == [None]


def test_the_admin_summary_lists_the_limits_across_partners(client, limited):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    response = client.get("/admin/usage/")

    assert response.status_code == 200
    page = response.text
    assert "Adaptive limits in force now, every partner" in page
    assert f"{limited.name}" in page and f'?organization={limited.organization_id}">' in page
    [now] = response.context["usage"].adaptive
    assert [capped.app for capped in now.capped_apps] == [limited]
    assert now.per_minute is None  # across partners there is no one quota to show

    narrowed = client.get(f"/admin/usage/?organization={limited.organization_id}")
    [now] = narrowed.context["usage"].adaptive
    assert (now.per_minute, now.effective_per_minute) == (40, 20)


def test_the_admin_shows_the_history_read_only(client, limited, clock):
    for at in range(10, 400, 10):
        clock["now"] = T + at
        adaptive.evaluate()  # quiet from here on: the group recovers, the cap lifts
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    url = reverse("admin:api_adaptivelimitchange_changelist")

    response = client.get(url)

    assert response.status_code == 200
    assert "50% of quotas" in response.text and "capped at 30 a minute" in response.text
    assert client.get(url, {"in_force": "yes"}).status_code == 200
    assert client.get(url, {"kind": "app", "group": GROUP}).status_code == 200
    assert not AdaptiveLimitChange.objects.filter(ended_at=None).exists()
    row = AdaptiveLimitChange.objects.filter(app=limited).get()
    assert client.get(reverse("admin:api_adaptivelimitchange_change", args=[row.pk])).status_code == 200
    assert client.get(reverse("admin:api_adaptivelimitchange_add")).status_code == 403
    assert client.post(reverse("admin:api_adaptivelimitchange_delete", args=[row.pk])).status_code == 403


def test_the_evaluation_runs_as_a_beat_task_every_ten_seconds(settings, app):
    from api import tasks

    assert settings.CELERY_BEAT_SCHEDULE["evaluate-adaptive-limits"]["schedule"] == 10.0
    feed(app.pk, 20, status=500)
    assert tasks.evaluate_adaptive_limits.delay().get() == 1
