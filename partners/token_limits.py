"""Rate limits on the token endpoint (``/oauth/token/``): per client, per address, and against
credential stuffing.

Each token request is held to:

- the client's quota, ``client-token-second``/``-minute``/``-day``, from its organization's tier
  (the ``token`` endpoint group) with the organization's overrides on top, read on every request so a
  tier change applies to the next one. The client is whichever app the request names (HTTP Basic,
  the ``client_id`` field, or the unverified ``iss`` of a ``client_assertion``): naming is enough to be
  counted, authenticating is DOT's business afterwards;
- the address's quota, ``ip-token-minute`` (``TOKEN_ENDPOINT_IP_PER_MINUTE``), whoever it names;
- the address's failures, ``ip-token-failures`` (``TOKEN_ENDPOINT_IP_FAILURES_PER_15_MINUTES`` per
  15 minutes): a guard, checked but not counted by the request. A response of ``invalid_client``,
  ``invalid_grant`` or ``unauthorized_client`` counts one failure afterwards; once the count reaches
  the quota the address is refused, right credentials or not, until the window ends.

All of it is one run of ``marketplace.quota``'s script (one Redis round trip); a failure costs a
second. The counting and the headers are ``marketplace.quota``'s.
"""

import base64
import binascii
import dataclasses
import ipaddress
import json
import logging
import time
from urllib.parse import unquote_plus

from django.conf import settings
from django.http import JsonResponse

from marketplace import quota
from marketplace.quota import GuardedVerdict, Policy
from partners.models import App
from partners.tiers import QUOTA_WINDOWS, effective_quotas

log = logging.getLogger(__name__)

GROUP = "token"
FAILURE_WINDOW = 15 * 60
FAILURE_ERRORS = frozenset({"invalid_client", "invalid_grant", "unauthorized_client"})
WINDOW_NAMES = {"burst": "second", "per_minute": "minute", "per_day": "day"}
ERROR_PATH = "/docs/errors/quota_exceeded/"  # api.errors.docs_path; partners may not import api
IPV6_PREFIX = 64  # django-ratelimit's default too: one host commonly holds a whole /64
MAX_CLIENT_ID_LENGTH = 100  # DOT's column; anything longer names no app


# --- Who is asking -------------------------------------------------------------------------------


def client_address(request) -> str:
    """The caller's address as the limits key it: REMOTE_ADDR, or the last X-Forwarded-For entry
    when a trusted load balancer appends it (``TRUST_X_FORWARDED_FOR``, as the access audit reads
    it); an IPv6 address by its /64."""
    raw = request.META.get("REMOTE_ADDR") or ""
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        raw = forwarded or raw
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64] or "unknown"
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


def _basic_client_id(request) -> str | None:
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    # RFC 6749 §2.3.1: the id is form-encoded before it is joined to the secret.
    return unquote_plus(decoded.partition(":")[0]) or None


def _assertion_issuer(request) -> str | None:
    from partners.client_assertions import AssertionRejected, _unverified

    assertion = request.POST.get("client_assertion")
    if not assertion:
        return None
    try:
        _header, claims = _unverified(assertion)
    except AssertionRejected:
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None


def claimed_client_id(request) -> str | None:
    """The client id the request names, unverified: enough to count against, never to trust."""
    return _basic_client_id(request) or request.POST.get("client_id") or _assertion_issuer(request) or None


def named_app(request) -> App | None:
    client_id = claimed_client_id(request)
    if not client_id or len(client_id) > MAX_CLIENT_ID_LENGTH:
        return None
    return App.objects.select_related("organization__tier").filter(client_id=client_id).first()


# --- Policies ------------------------------------------------------------------------------------


def client_policies(app: App) -> list[Policy]:
    organization = app.organization
    quotas = effective_quotas(organization.tier.rate_quotas, organization.rate_quota_overrides, GROUP)
    return [
        Policy(f"client-{GROUP}-{WINDOW_NAMES[window]}", quotas[window], seconds, f"client:{app.pk}")
        for window, seconds in QUOTA_WINDOWS.items()
        if quotas.get(window)
    ]


def address_policy(address: str) -> Policy | None:
    per_minute = settings.TOKEN_ENDPOINT_IP_PER_MINUTE
    return Policy(f"ip-{GROUP}-minute", per_minute, 60, f"ip:{address}") if per_minute else None


def failure_policy(address: str) -> Policy | None:
    failures = settings.TOKEN_ENDPOINT_IP_FAILURES_PER_15_MINUTES
    return Policy(f"ip-{GROUP}-failures", failures, FAILURE_WINDOW, f"ip:{address}") if failures else None


# --- Checking and counting -----------------------------------------------------------------------


def check(request, *, now: float | None = None) -> GuardedVerdict:
    """Count this token request against the client's and the address's quotas, or refuse it
    without counting it; refused too while the address's failures are at their quota."""
    address = client_address(request)
    app = named_app(request)
    counted = [*(client_policies(app) if app is not None else []), *filter(None, [address_policy(address)])]
    guards = list(filter(None, [failure_policy(address)]))
    request.token_limit_address = address
    request.token_limit_app = app  # the named app, for the denial log (partners.token_denials)
    return quota.check_guarded(counted, guards, GROUP, now=time.time() if now is None else now)


def is_failure(response) -> bool:
    if response.status_code not in (400, 401):
        return False
    try:
        error = json.loads(response.content).get("error")
    except (ValueError, AttributeError):
        return False
    return error in FAILURE_ERRORS


def settle(request, verdict: GuardedVerdict, response) -> GuardedVerdict:
    """Count a failed attempt against the address (a second round trip, on failures only); the
    verdict as it then stands, for the response's headers."""
    if not verdict.guards or not is_failure(response):
        return verdict
    guard = verdict.guards[-1]
    (failures,) = quota.add([guard], GROUP, now=time.time())
    if failures == guard.quota:
        log.warning(
            "token endpoint: address locked out after failed attempts",
            extra={"address": request.token_limit_address, "failures": failures, "window": guard.window},
        )
    counts = [*verdict.counts[:-1], failures]
    return dataclasses.replace(verdict, counts=counts)


def add_headers(response, verdict: GuardedVerdict) -> None:
    for name, value in verdict.headers().items():
        if not response.has_header(name):
            response[name] = value


# --- The refusal ---------------------------------------------------------------------------------


def describe(policy: Policy, now: float) -> str:
    reset = policy.reset_in(now)
    requests = "token request" if policy.quota == 1 else "token requests"
    if policy.name.endswith("-failures"):
        return (
            f"The {policy.name} quota ({policy.quota} failed {requests} per {policy.window // 60} minutes "
            f"from one address) is used up, so this address is refused, even with valid credentials, "
            f"until it resets in {reset} s."
        )
    whose = "from one address" if policy.scope.startswith("ip:") else "for this client"
    return (
        f"The {policy.name} quota ({policy.quota} {requests} per {quota.window_name(policy.window)} {whose}) "
        f"is used up; it resets in {reset} s."
    )


def refusal(verdict: GuardedVerdict) -> JsonResponse:
    """429 in the token endpoint's own error shape (RFC 6749 §5.2), naming the violated policies."""
    retry_after = verdict.retry_after()
    body = {
        "error": "quota_exceeded",
        "error_description": " ".join(describe(policy, verdict.now) for policy in verdict.violated),
        "error_uri": f"{settings.PUBLIC_BASE_URL}{ERROR_PATH}",
        "violated-policies": [policy.name for policy in verdict.violated],
        "retry_after": retry_after,
    }
    response = JsonResponse(body, status=429)
    add_headers(response, verdict)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response
