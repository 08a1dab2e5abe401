"""Rate limits on the token endpoint: each client's quota from its tier, each address's quota, and an
address locked out by its failed attempts; one 429 shape, RateLimit headers on every answer."""

import base64
import secrets
import threading
import time
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import RequestFactory
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from marketplace import quota
from partners import token_limits
from partners.models import Tier
from tests.oauth.conftest import CLIENT_SECRET, REDIRECT_URI, make_app

pytestmark = pytest.mark.django_db

T = 1_800_000_000.0  # a fixed clock, at the start of a minute, of 15 minutes and of a day
TOKEN_URL = "/oauth/token/"
ROOMY = {"burst": 1000, "per_minute": 1000, "per_day": 100_000}
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(autouse=True)
def clock(settings, monkeypatch):
    settings.RATE_LIMITS = True
    now = {"now": T + 0.25}
    monkeypatch.setattr(token_limits, "time", SimpleNamespace(time=lambda: now["now"]))
    return now


def backend(*, tier_slug="verified", quotas=None, **fields):
    app = make_app(tier_slug=tier_slug, grant_types=("client-credentials",), **fields)
    if quotas is not None:
        app.organization.rate_quota_overrides = {"token": quotas}
        app.organization.save()
    return app


def basic(client_id: str, secret: str = CLIENT_SECRET) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def post(client, data, *, ip="198.51.100.1", **extra):
    return client.post(
        TOKEN_URL, urlencode(data), content_type="application/x-www-form-urlencoded", REMOTE_ADDR=ip, **extra
    )


def token(client, app_or_id, *, secret=CLIENT_SECRET, ip="198.51.100.1", scope="system/*.rs"):
    """A client-credentials request authenticated with HTTP Basic."""
    client_id = getattr(app_or_id, "client_id", app_or_id)
    data = {"grant_type": "client_credentials", "scope": scope}
    return post(client, data, ip=ip, HTTP_AUTHORIZATION=basic(client_id, secret))


def policies(response) -> dict:
    found = {}
    for item in response["RateLimit-Policy"].split(", "):
        name, *params = item.split(";")
        found[name.strip('"')] = dict(p.split("=") for p in params)
    return found


# --- Headers -------------------------------------------------------------------------------------


def test_a_token_response_announces_every_policy_that_held_it(client):
    app = backend()
    response = token(client, app)
    assert response.status_code == 200, response.content
    quotas = Tier.objects.get(slug="verified").rate_quotas["token"]
    assert policies(response) == {
        "client-token-second": {"q": str(quotas["burst"]), "w": "1"},
        "client-token-minute": {"q": str(quotas["per_minute"]), "w": "60"},
        "client-token-day": {"q": str(quotas["per_day"]), "w": "86400"},
        "ip-token-minute": {"q": "120", "w": "60"},
        "ip-token-failures": {"q": "20", "w": "900"},
    }
    assert response["RateLimit"] == f'"client-token-second";r={quotas["burst"] - 1};t=1'
    assert not response.has_header("Retry-After")
    assert "access_token" in response.json()


def test_error_responses_carry_the_headers_too(client):
    app = backend(tier_slug="sandbox")  # the Sandbox tier has no system scopes: invalid_scope
    response = token(client, app)
    assert response.json()["error"] == "invalid_scope"
    assert "client-token-minute" in policies(response)
    assert response.has_header("RateLimit")


# --- Per client ----------------------------------------------------------------------------------


def test_a_client_s_quota_comes_from_its_tier_s_token_group_with_overrides(client):
    app = backend(quotas={"burst": 100, "per_minute": 2})
    assert [token(client, app).status_code for _ in range(3)] == [200, 200, 429]
    other = backend(quotas=ROOMY)  # the same address, another client: its own quota
    assert token(client, other).status_code == 200


def test_a_tier_change_and_an_override_apply_to_the_next_request(client):
    app = backend()
    organization = app.organization
    assert policies(token(client, app))["client-token-day"]["q"] == str(
        Tier.objects.get(slug="verified").rate_quotas["token"]["per_day"]
    )
    organization.tier = Tier.objects.get(slug="production")
    organization.save()
    assert policies(token(client, app))["client-token-day"]["q"] == str(
        Tier.objects.get(slug="production").rate_quotas["token"]["per_day"]
    )
    organization.rate_quota_overrides = {"token": {"per_day": 123}}
    organization.save()
    assert policies(token(client, app))["client-token-day"]["q"] == "123"


def test_the_429_names_the_policy_its_quota_and_when_to_come_back(client, clock):
    app = backend(quotas={"burst": 100, "per_minute": 1})
    assert token(client, app).status_code == 200
    clock["now"] = T + 20.25
    refused = token(client, app)
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    assert refused["Retry-After"] == "40"
    assert refused["RateLimit"] == '"client-token-minute";r=0;t=40'
    assert "client-token-minute" in policies(refused)
    assert refused["Cache-Control"] == "no-store"
    assert refused.json() == {
        "error": "quota_exceeded",
        "error_description": (
            "The client-token-minute quota (1 token request per minute for this client) is used up; it resets in 40 s."
        ),
        "error_uri": "http://testserver/docs/errors/quota_exceeded/",
        "violated-policies": ["client-token-minute"],
        "retry_after": 40,
        "correlation_id": refused["X-Request-ID"],  # as every error has
    }
    clock["now"] = T + 60.25  # the next minute
    assert token(client, app).status_code == 200


# --- How the client is named ---------------------------------------------------------------------


def test_the_client_is_named_by_http_basic(client):
    app = backend(quotas={"burst": 100, "per_minute": 1})
    assert token(client, app, ip="198.51.100.1").status_code == 200
    refused = token(client, app, ip="198.51.100.2")  # another address: the client's quota still holds
    assert refused.json()["violated-policies"] == ["client-token-minute"]


def test_the_client_is_named_by_the_client_id_field(client):
    app = backend(quotas={"burst": 100, "per_minute": 1})
    data = {
        "grant_type": "client_credentials",
        "scope": "system/*.rs",
        "client_id": app.client_id,
        "client_secret": CLIENT_SECRET,
    }
    assert post(client, data, ip="198.51.100.1").status_code == 200
    refused = post(client, data, ip="198.51.100.2")
    assert refused.json()["violated-policies"] == ["client-token-minute"]


def _key_app(quotas):
    key = RSAKey.generate_key(2048, parameters={"kid": "limits-key"})
    return backend(quotas=quotas, jwks=KeySet([key]).as_dict(private=False)), key


def _assertion(app, key, *, iss=None):
    now = int(time.time())
    claims = {
        "iss": iss or app.client_id,
        "sub": iss or app.client_id,
        "aud": f"http://testserver{TOKEN_URL}",
        "exp": now + 240,
        "jti": secrets.token_hex(16),
    }
    return jwt.encode({"alg": "RS384", "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=["RS384"])


def _assertion_request(client, assertion, *, ip="198.51.100.1"):
    data = {
        "grant_type": "client_credentials",
        "scope": "system/*.rs",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }
    return post(client, data, ip=ip)


def test_the_client_is_named_by_a_client_assertion_s_iss(client):
    app, key = _key_app({"burst": 100, "per_minute": 1})
    first = _assertion_request(client, _assertion(app, key))
    assert first.status_code == 200, first.content
    assert "client-token-minute" in policies(first)
    refused = _assertion_request(client, _assertion(app, key), ip="198.51.100.2")
    assert refused.json()["violated-policies"] == ["client-token-minute"]


def test_an_assertion_s_iss_names_the_client_but_never_authenticates_it(client):
    app, _key = _key_app(ROOMY)
    impostor = RSAKey.generate_key(2048, parameters={"kid": "limits-key"})
    response = _assertion_request(client, _assertion(app, impostor))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "client-token-minute" in policies(response)  # counted against the app it named
    assert response["RateLimit"] == '"ip-token-failures";r=19;t=900'  # and a failure of the address


def test_an_unknown_client_id_is_still_held_to_the_address_quota(client, settings):
    settings.TOKEN_ENDPOINT_IP_PER_MINUTE = 2
    first = token(client, "no-such-client")
    assert first.status_code == 401
    assert set(policies(first)) == {"ip-token-minute", "ip-token-failures"}
    assert token(client, "no-such-client").status_code == 401
    refused = token(client, "no-such-client")
    assert refused.status_code == 429
    assert refused.json()["violated-policies"] == ["ip-token-minute"]


# --- Per address ---------------------------------------------------------------------------------


def test_one_address_is_limited_across_clients(client, settings):
    settings.TOKEN_ENDPOINT_IP_PER_MINUTE = 3
    apps = [backend(quotas=ROOMY) for _ in range(4)]
    assert [token(client, app, ip="203.0.113.5").status_code for app in apps] == [200, 200, 200, 429]
    refused = token(client, apps[3], ip="203.0.113.5")
    assert refused.json()["violated-policies"] == ["ip-token-minute"]
    assert "3 token requests per minute from one address" in refused.json()["error_description"]
    assert token(client, apps[3], ip="203.0.113.6").status_code == 200


def test_failed_attempts_lock_the_address_even_for_right_credentials(client, settings, clock):
    settings.TOKEN_ENDPOINT_IP_FAILURES_PER_15_MINUTES = 3
    app = backend(quotas=ROOMY)
    attacker, other = "203.0.113.66", "203.0.113.67"
    wrong = [token(client, app, secret="guess", ip=attacker) for _ in range(3)]
    assert [r.json()["error"] for r in wrong] == ["invalid_client"] * 3
    assert [r["RateLimit"] for r in wrong] == [
        '"ip-token-failures";r=2;t=900',
        '"ip-token-failures";r=1;t=900',
        '"ip-token-failures";r=0;t=900',
    ]
    refused = token(client, app, ip=attacker)  # the right secret, from the locked address
    assert refused.status_code == 429
    assert refused["Retry-After"] == "900"
    body = refused.json()
    assert body["violated-policies"] == ["ip-token-failures"]
    assert "3 failed token requests per 15 minutes" in body["error_description"]
    assert "even with valid credentials" in body["error_description"]
    assert token(client, app, ip=other).status_code == 200  # another address still gets tokens
    clock["now"] = T + 900.25  # the window ended
    assert token(client, app, ip=attacker).status_code == 200


def test_invalid_grant_and_unauthorized_client_count_as_failures_other_errors_do_not(client, settings):
    settings.TOKEN_ENDPOINT_IP_FAILURES_PER_15_MINUTES = 2
    code_app = make_app()  # authorization code only
    code_app.organization.rate_quota_overrides = {"token": ROOMY}
    code_app.organization.save()
    bad_code = post(
        client,
        {
            "grant_type": "authorization_code",
            "code": "not-a-code",
            "redirect_uri": REDIRECT_URI,
            "code_verifier": "v" * 50,
        },
        HTTP_AUTHORIZATION=basic(code_app.client_id),
    )
    assert bad_code.json()["error"] == "invalid_grant"
    assert bad_code["RateLimit"] == '"ip-token-failures";r=1;t=900'
    sandbox = backend(tier_slug="sandbox", quotas=ROOMY)
    for _ in range(3):
        assert token(client, sandbox).json()["error"] == "invalid_scope"  # not a failure
    wrong_grant = token(client, code_app)  # client credentials for an app without that grant
    assert wrong_grant.json()["error"] == "unauthorized_client"
    assert token(client, sandbox).status_code == 429


def test_the_address_comes_from_x_forwarded_for_only_behind_a_trusted_proxy(settings):
    request = RequestFactory().post(TOKEN_URL, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7")
    settings.TRUST_X_FORWARDED_FOR = False
    assert token_limits.client_address(request) == "10.0.0.2"
    settings.TRUST_X_FORWARDED_FOR = True
    assert token_limits.client_address(request) == "198.51.100.7"


def test_an_ipv6_address_is_limited_by_its_64_bit_prefix():
    factory = RequestFactory()
    one = factory.post(TOKEN_URL, REMOTE_ADDR="2001:db8:1:2::1")
    two = factory.post(TOKEN_URL, REMOTE_ADDR="2001:db8:1:2:ffff::9")
    assert token_limits.client_address(one) == token_limits.client_address(two) == "2001:db8:1:2::/64"
    assert token_limits.client_address(factory.post(TOKEN_URL, REMOTE_ADDR="::ffff:192.0.2.1")) == "192.0.2.1"


# --- Switches and admin --------------------------------------------------------------------------


def test_rate_limits_off_means_no_limits_and_no_headers(client, settings):
    settings.RATE_LIMITS = False
    app = backend(quotas={"burst": 1, "per_minute": 1})
    responses = [token(client, app) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert not any(r.has_header("RateLimit-Policy") or r.has_header("RateLimit") for r in responses)


def test_token_overrides_are_accepted_and_validated():
    organization = backend().organization
    organization.rate_quota_overrides = {"token": {"burst": 5, "per_minute": 50, "per_day": 500}}
    organization.full_clean(exclude=["created_by"])
    organization.rate_quota_overrides = {"token": {"per_hour": 5}}
    with pytest.raises(ValidationError, match=r"token\.per_hour is not a window"):
        organization.full_clean(exclude=["created_by"])


# --- Real Redis ----------------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_many_threads_at_one_client_s_boundary_admit_exactly_the_quota():
    # The boundary is the minute's: the counters expire on Redis's own clock, and a 1 s burst window
    # could end while the threads are still asking.
    app = backend(quotas={"burst": 10_000, "per_minute": 37, "per_day": 100_000})
    factory = RequestFactory()
    start = threading.Barrier(20)
    admitted = []

    def hammer(n):
        try:
            start.wait()
            for i in range(10):
                request = factory.post(
                    TOKEN_URL,
                    {"grant_type": "client_credentials"},
                    REMOTE_ADDR=f"10.0.{n}.{i}",  # many addresses: only the client's quota binds
                    HTTP_AUTHORIZATION=basic(app.client_id),
                )
                admitted.append(token_limits.check(request, now=T + 0.5).admitted)
        finally:
            connection.close()

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 200
    assert admitted.count(True) == 37
    failures = token_limits.failure_policy("10.0.0.0")
    assert quota.peek([failures], token_limits.GROUP, now=T + 0.5).counts == [0]  # a guard is never counted
