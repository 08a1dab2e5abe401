"""Rate limits: every layer's quota from the tier (and the organization's overrides), exact admission
in one round trip, IETF RateLimit headers on every limited response, 429 problems that say which
policy refused and when to come back."""

import threading
from types import SimpleNamespace

import pytest
from django.db import connection

from api import ratelimit
from partners.models import Tier
from tests.api.fhir import helpers as fhir
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db

T = 1_800_000_000.0  # a fixed clock, at the start of a minute and of a day


@pytest.fixture(autouse=True)
def _limits_on(settings, monkeypatch):
    settings.RATE_LIMITS = True
    clock = {"now": T + 0.25}
    monkeypatch.setattr(ratelimit.time, "time", lambda: clock["now"])
    return clock


@pytest.fixture
def reader(db):
    app = AppFactory()
    fhir.patient("p1")
    fhir.consent(app, "p1")
    return app, fhir.patient_token(app, "p1")


def read(client, raw):
    return fhir.get(client, "/fhir/r4/Patient/p1", raw)


def policies(response) -> dict:
    found = {}
    for item in response["RateLimit-Policy"].split(", "):
        name, *params = item.split(";")
        found[name.strip('"')] = dict(p.split("=") for p in params)
    return found


def test_every_layer_s_policy_is_announced_from_the_tier(client, reader):
    app, raw = reader
    response = read(client, raw)
    assert response.status_code == 200
    quotas = app.organization.tier.rate_quotas["fhir_read"]
    assert policies(response) == {
        "org-fhir_read-second": {"q": str(quotas["burst"]), "w": "1"},
        "org-fhir_read-minute": {"q": str(quotas["per_minute"]), "w": "60"},
        "org-fhir_read-day": {"q": str(quotas["per_day"]), "w": "86400"},
        "token-fhir_read-minute": {"q": str(quotas["per_minute"] // 2), "w": "60"},
        "patient-fhir_read-minute": {"q": str(quotas["per_minute"] // 4), "w": "60"},
    }


def test_the_nearest_policy_counts_down(client, reader, _limits_on):
    app, raw = reader
    burst = app.organization.tier.rate_quotas["fhir_read"]["burst"]
    first, second = read(client, raw), read(client, raw)
    assert first["RateLimit"] == f'"org-fhir_read-second";r={burst - 1};t=1'
    assert second["RateLimit"] == f'"org-fhir_read-second";r={burst - 2};t=1'


def test_a_used_up_quota_is_429_with_retry_after_and_the_violated_policy(client, reader, _limits_on):
    app, raw = reader
    app.organization.rate_quota_overrides = {
        "fhir_read": {"per_minute": 3, "burst": 100, "per_token_per_minute": 100, "per_patient_per_minute": 100}
    }
    app.organization.save()
    statuses = [read(client, raw).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    _limits_on["now"] = T + 20.25
    refused = read(client, raw)
    body = fhir.outcome(refused, 429, "quota_exceeded", issue="throttled")
    assert refused["Retry-After"] == "40"
    assert refused["RateLimit"] == '"org-fhir_read-minute";r=0;t=40'
    assert "org-fhir_read-minute" in body["issue"][0]["diagnostics"]
    _limits_on["now"] = T + 60.25  # the next minute: a refused request consumed nothing
    assert read(client, raw).status_code == 200


def test_the_problem_on_api_names_the_violated_policies(client, reader, _limits_on):
    app, _ = reader
    raw = fhir.patient_token(app, "p1", scope="launch/patient consent.read")
    app.organization.rate_quota_overrides = {"fhir_read": {"burst": 1}}
    app.organization.save()
    url = "/api/v1/consents/status?patient=Patient/p1"
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    refused = client.get(url, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert refused.status_code == 429 and refused["Content-Type"] == "application/problem+json"
    body = refused.json()
    assert body["code"] == "quota_exceeded"
    assert body["violated-policies"] == ["org-fhir_read-second"]
    assert refused["Retry-After"] == "1"


def test_a_tier_change_and_an_override_apply_to_the_next_request(client, reader):
    app, raw = reader
    organization = app.organization
    assert policies(read(client, raw))["org-fhir_read-day"]["q"] == "10000"
    organization.tier = Tier.objects.get(slug="verified")
    organization.save()
    verified = Tier.objects.get(slug="verified").rate_quotas["fhir_read"]["per_day"]
    assert policies(read(client, raw))["org-fhir_read-day"]["q"] == str(verified)
    organization.rate_quota_overrides = {"fhir_read": {"per_day": 123}}
    organization.save()
    assert policies(read(client, raw))["org-fhir_read-day"]["q"] == "123"


def test_one_token_cannot_take_its_organization_s_whole_minute(client, reader):
    app, raw = reader
    app.organization.rate_quota_overrides = {
        "fhir_read": {"burst": 100, "per_minute": 100, "per_token_per_minute": 2, "per_patient_per_minute": 100}
    }
    app.organization.save()
    assert [read(client, raw).status_code for _ in range(3)] == [200, 200, 429]
    other = fhir.patient_token(app, "p1")  # another token of the same app and patient
    assert read(client, other).status_code == 200


def test_requests_about_one_patient_share_a_quota_across_tokens(client, reader):
    app, raw = reader
    app.organization.rate_quota_overrides = {
        "fhir_read": {"burst": 100, "per_minute": 100, "per_patient_per_minute": 2}
    }
    app.organization.save()
    other = fhir.patient_token(app, "p1")
    assert [read(client, t).status_code for t in (raw, other, raw)] == [200, 200, 429]


def test_limits_are_per_endpoint_group(client, reader):
    app, raw = reader
    app.organization.rate_quota_overrides = {"fhir_read": {"burst": 1}}
    app.organization.save()
    assert read(client, raw).status_code == 200
    assert read(client, raw).status_code == 429
    search = fhir.get(client, "/fhir/r4/Observation", raw, {"patient": "p1"})
    assert search.status_code == 200, search.content
    assert "org-fhir_search-second" in search["RateLimit-Policy"]


def test_overrides_are_validated(db):
    from django.core.exceptions import ValidationError

    organization = AppFactory().organization
    for bad in ({"fhir_reed": {"per_day": 1}}, {"fhir_read": {"per_week": 1}}, {"fhir_read": {"per_day": 0}}):
        organization.rate_quota_overrides = bad
        with pytest.raises(ValidationError):
            organization.full_clean()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_many_threads_hammering_one_quota_admit_exactly_the_quota(settings):
    app = AppFactory()
    app.organization.rate_quota_overrides = {
        # The minute, not the burst: a one-second counter could expire in real time mid-test.
        "writes": {"burst": 10_000, "per_minute": 37, "per_day": 100_000, "per_token_per_minute": 10_000}
    }
    app.organization.save()
    context = SimpleNamespace(
        app=app, organization=app.organization, tier=app.organization.tier, token_id="hammer", patient_id=None
    )
    start = threading.Barrier(20)
    admitted = []

    def hammer():
        try:
            start.wait()
            for _ in range(10):
                admitted.append(ratelimit.admit(context, "writes", now=T + 0.5).admitted)
        finally:
            connection.close()

    threads = [threading.Thread(target=hammer) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 200
    assert admitted.count(True) == 37


def test_every_response_is_counted_for_the_dashboards_with_the_policy_that_refused(client, reader):
    from api import usage
    from api.usage_models import UsageHour

    app, raw = reader
    app.organization.rate_quota_overrides = {"fhir_read": {"burst": 1}}
    app.organization.save()
    assert [read(client, raw).status_code for _ in range(2)] == [200, 429]
    usage.rollup()
    rows = {
        (row.group, row.status_class, row.error_code, row.policy): row.count
        for row in UsageHour.objects.filter(app=app)
    }
    assert rows == {("fhir_read", "2xx", "", ""): 1, ("fhir_read", "4xx", "quota_exceeded", "org-fhir_read-second"): 1}


def remaining(response) -> int:
    return int(response["RateLimit"].split(";r=")[1].split(";")[0])


def test_a_request_a_permission_layer_refuses_uses_no_quota_but_still_sees_its_headers(client, reader):
    app, raw = reader
    app.organization.rate_quota_overrides = {
        "fhir_read": {
            "burst": 100,
            "per_minute": 10,
            "per_day": 1000,
            "per_token_per_minute": 100,
            "per_patient_per_minute": 100,
        }
    }
    app.organization.save()
    assert remaining(read(client, raw)) == 9
    assert remaining(read(client, raw)) == 8  # from here on counted in the token's own round trip
    # The token lacks consent.read: the scope layer refuses, after the token layer counted it.
    refused = client.get("/api/v1/consents/status?patient=Patient/p1", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"
    assert refused["RateLimit"] == '"org-fhir_read-minute";r=8;t=60'
    assert remaining(read(client, raw)) == 7  # the refused request was given back


def test_a_refusal_before_the_token_was_ever_counted_also_carries_the_headers(client, reader):
    app, raw = reader
    refused = client.get("/api/v1/consents/status?patient=Patient/p1", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert refused.status_code == 403
    burst = app.organization.tier.rate_quotas["fhir_read"]["burst"]
    assert refused["RateLimit"] == f'"org-fhir_read-second";r={burst};t=1'


@pytest.mark.redis
def test_token_consent_and_quotas_cost_one_redis_round_trip(client, reader, monkeypatch):
    import redis

    _, raw = reader
    assert read(client, raw).status_code == 200
    assert read(client, raw).status_code == 200  # the process now has the token and the patient's facts
    commands = []
    real = redis.Redis.execute_command

    def spy(self, *args, **options):
        commands.append(args[0])
        return real(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", spy)
    response = read(client, raw)
    assert response.status_code == 200 and "RateLimit" in response
    # Usage counts go out in a pipeline, buffered per process outside tests: not a command here.
    assert commands == ["EVALSHA"]


@pytest.mark.redis
def test_a_tier_change_is_seen_by_the_one_round_trip_path_at_once(client, reader):
    app, raw = reader
    read(client, raw)
    read(client, raw)  # the process's copy of the token, whose tier is about to change
    organization = app.organization
    organization.tier = Tier.objects.get(slug="verified")
    organization.save()
    verified = Tier.objects.get(slug="verified").rate_quotas["fhir_read"]["per_day"]
    assert policies(read(client, raw))["org-fhir_read-day"]["q"] == str(verified)
