"""The token endpoint's refusals: each carries its correlation id, and one of a known app is kept.

``/oauth/token/`` answers errors in OAuth's own shape (RFC 6749 §5.2: ``error``,
``error_description``, ``error_uri``), not as problems. Each error body gets a ``correlation_id``
member too (the ``X-Request-ID`` the middleware puts on every response), as every problem has one.

A refusal that is about the client (not a malformed request) and names an app goes to the denial log
(``marketplace.denial_log``) for the app's members' "Why was I denied?", like the API's refusals
(``api.denials``, which this layer may not import): 429 ``quota_exceeded``, 401 ``invalid_client``,
and the 400s ``invalid_grant``, ``unauthorized_client``, ``invalid_scope`` and ``access_denied`` (a
suspended organization). The app is the one the request names (HTTP Basic, ``client_id`` or a
client assertion's ``iss``, as the rate limits count it), unverified when its credentials failed:
anyone can name a client id, so the page says the request named the app, not that it sent it. A
request naming no registered app belongs to no partner and is not kept. ``invalid_request`` and
``unsupported_grant_type`` say the request is malformed, not that the client was refused.

Recording never fails the response: whatever goes wrong is logged and the answer goes out.
"""

import json
import logging
import time

from marketplace import denial_log, quota
from marketplace.denial_log import Denial
from partners import token_limits

log = logging.getLogger(__name__)

PATH = "/oauth/token"

# error -> (layer in the portal's words, docs page, fix)
REFUSALS = {
    "quota_exceeded": (
        "quota",
        "/docs/errors/quota_exceeded/",
        "Wait the number of seconds in Retry-After before asking again, and keep each access token until it "
        "expires instead of asking for one per call. Higher tiers have higher token quotas (/tiers/).",
    ),
    "invalid_client": (
        "token",
        "/docs/authentication/",
        "Check the client credentials the app sends: its client id and secret (HTTP Basic, or client_id and "
        "client_secret in the body), or a client assertion signed with a key registered on the app's page. "
        "Rotate the secret on the app's page if it is lost. Do not retry in a loop: failed attempts lock the "
        "address out.",
    ),
    "invalid_grant": (
        "token",
        "/docs/token-endpoint-limits/",
        "Get a new grant: run the authorization flow again for a new code, or use the latest refresh token. "
        "Codes are used once, refresh tokens rotate, and both belong to the client (and code_verifier) they "
        "were issued for.",
    ),
    "unauthorized_client": (
        "policy",
        "/docs/authentication/",
        "Use a grant type the app is registered for (its page lists them), or register it for this one.",
    ),
    "invalid_scope": (
        "scope",
        "/docs/scopes/",
        "Ask only for scopes the app's tier and environment allow (see /tiers/); the description names the "
        "scope that was refused.",
    ),
    "access_denied": (
        "organization",
        "/docs/errors/organization_suspended/",
        "An owner of the organization should read the suspension notice in the portal inbox and contact "
        "platform support; tokens are issued again once the organization is reinstated.",
    ),
}

DEFAULT_RULES = {
    "invalid_client": "Client authentication failed for this app's client id: the secret, or the client "
    "assertion, did not verify.",
    "invalid_grant": "The authorization code or refresh token is wrong, expired, already used, or was issued to "
    "another client.",
    "unauthorized_client": "The app is not registered for this grant type.",
}


def _body(response) -> dict | None:
    if response.status_code < 400 or not response.get("Content-Type", "").startswith("application/json"):
        return None
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def with_correlation_id(request, response):
    """``response``, its OAuth error body (if it is one) carrying the request's correlation id."""
    correlation_id = getattr(request, "request_id", None)
    body = _body(response) if correlation_id else None
    if body is not None and "error" in body and "correlation_id" not in body:
        body["correlation_id"] = correlation_id
        response.content = json.dumps(body).encode()
    return response


def _quota_rule(verdict) -> str:
    rules = []
    for policy in getattr(verdict, "violated", None) or ():
        requests = "token request" if policy.quota == 1 else "token requests"
        if policy.name.endswith("-failures"):
            minutes = policy.window // 60
            rules.append(f"{policy.name}: {policy.quota} failed {requests} per {minutes} minutes from one address")
        else:
            whose = "from one address" if policy.scope.startswith("ip:") else "for this client"
            rules.append(f"{policy.name}: {policy.quota} {requests} per {quota.window_name(policy.window)} {whose}")
    return "; ".join(rules)


def _rule(error: str, body: dict, verdict) -> str:
    description = str(body.get("error_description") or "")
    if error == "quota_exceeded":
        return _quota_rule(verdict) or ", ".join(body.get("violated-policies") or []) or description
    return description or DEFAULT_RULES.get(error, error)


def denial_of(request, response, verdict=None) -> Denial | None:
    """The denial a token endpoint answer makes, or None (not a refusal of a client, or no app named)."""
    body = _body(response)
    error = body.get("error") if body else None
    correlation_id = getattr(request, "request_id", None)
    if error not in REFUSALS or not correlation_id:
        return None
    # The rate limits looked the named app up already; with the limits off, nothing did.
    app = request.token_limit_app if hasattr(request, "token_limit_app") else token_limits.named_app(request)
    if app is None:
        return None
    layer, docs, fix = REFUSALS[error]
    return Denial(
        correlation_id=correlation_id,
        at=time.time(),
        organization_id=app.organization_id,
        app_id=app.pk,
        method=request.method,
        path=PATH,
        status=response.status_code,
        code=error,
        layer=layer,
        rule=_rule(error, body, verdict),
        detail=str(body.get("error_description") or ""),
        fix=fix,
        docs=docs,
    )


def record(request, response, verdict=None) -> None:
    """Keep the token endpoint's refusal of a named app in the denial log. Never raises."""
    try:
        denial = denial_of(request, response, verdict)
        if denial is not None:
            denial_log.store(denial)
    except Exception:  # the answer goes out whatever happens here
        log.warning("denial log: could not record a token endpoint refusal", exc_info=True)
