"""The error catalogue: every error code the API can return, in one place.

Pure data: no Django, no request. The API renders these as RFC 9457 problem details on ``/api/``
and as FHIR ``OperationOutcome`` on ``/fhir/`` (see ``api.problems``); the docs portal renders one
page per code at ``/docs/errors/<code>/``, which is also each problem's ``type`` URI. A code, once
published, is never renamed or reused: partners branch on it.

Each entry says which *layer* refused (the order a request passes them in):

- ``token``: the bearer token (missing, unknown, expired, revoked);
- ``scope``: the scopes the token carries;
- ``policy``: what the app's organization may do (status, tier, environment, partner type, quotas);
- ``data``: whether this patient allowed this app this data (consent);
- ``request``: the request itself (address, method, body);
- ``server``: the platform failed.
"""

from dataclasses import dataclass

LAYERS = ("token", "scope", "policy", "data", "request", "server")


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int  # the HTTP status this code is sent with
    title: str  # short, the same for every occurrence
    layer: str  # one of LAYERS
    explanation: str  # one paragraph: what happened and why the platform refuses
    fix: str  # what the caller can do next
    fhir_issue: str  # the FHIR IssueType code used in an OperationOutcome


ERRORS: dict[str, ErrorCode] = {
    e.code: e
    for e in (
        # --- token -------------------------------------------------------------------------------
        ErrorCode(
            code="token_required",
            status=401,
            title="An access token is required",
            layer="token",
            explanation=(
                "The request carried no access token. Every API call must present an OAuth 2.0 bearer "
                "token in the Authorization header. Tokens sent in the query string (?access_token=) or "
                "in a form body are never accepted: they end up in server logs, browser history and "
                "Referer headers."
            ),
            fix=(
                "Get a token from /oauth/token/ (or the SMART launch flow) and send it as "
                "'Authorization: Bearer <access token>'."
            ),
            fhir_issue="security",
        ),
        ErrorCode(
            code="invalid_token",
            status=401,
            title="The access token is not valid",
            layer="token",
            explanation=(
                "The Authorization header carried a bearer token the platform cannot accept: it is "
                "malformed, was never issued, has expired, or was revoked (by the patient, by your app, "
                "or when your client secret or the user's account changed). The response's detail and "
                "the WWW-Authenticate header's error_description say which."
            ),
            fix=(
                "Get a new access token: use your refresh token if you have one, otherwise run the "
                "authorization flow again. Do not retry the request with the same token."
            ),
            fhir_issue="security",
        ),
        # --- scope -------------------------------------------------------------------------------
        ErrorCode(
            code="insufficient_scope",
            status=403,
            title="The access token lacks a required scope",
            layer="scope",
            explanation=(
                "The token is valid but was not granted the scope this endpoint needs. Scopes are what "
                "the user (or, for backend services, your registration) agreed your app may do; each "
                "endpoint's reference lists the scopes it requires. The response names the missing "
                "scopes in missing_scopes and in the WWW-Authenticate header's scope attribute."
            ),
            fix=(
                "Request the missing scope when you ask for the token (your organization's tier must "
                "allow it; see /tiers/), then call again with the new token. GET /api/v1/token-info "
                "shows what your current token carries."
            ),
            fhir_issue="security",
        ),
        # --- policy ------------------------------------------------------------------------------
        ErrorCode(
            code="organization_suspended",
            status=403,
            title="The app's organization is suspended",
            layer="policy",
            explanation=(
                "A platform administrator suspended the organization that owns this app, so none of its "
                "apps may call the API, whatever their tokens allow. The reason given by the "
                "administrator is in the response and was emailed to the organization's owners."
            ),
            fix=(
                "An owner of the organization should read the suspension notice in the portal inbox, "
                "resolve what it names, and contact platform support. Tokens work again as soon as the "
                "organization is reinstated."
            ),
            fhir_issue="security",
        ),
        ErrorCode(
            code="tier_policy",
            status=403,
            title="The organization's tier does not allow this",
            layer="policy",
            explanation=(
                "Your organization's tier does not include what this request needs, for example write "
                "access (creating or changing data). Tiers are the steps from sandbox to production; "
                "each allows more once its requirements are met."
            ),
            fix=(
                "See /tiers/ for what your tier allows and what the next one takes, then request an "
                "upgrade there. The response names the lowest tier that allows this request."
            ),
            fhir_issue="security",
        ),
        ErrorCode(
            code="environment_policy",
            status=403,
            title="The app's environment cannot reach this data",
            layer="policy",
            explanation=(
                "Apps live in one environment. Sandbox apps reach sandbox (synthetic) data only; "
                "production apps reach production data only. The request touched data of the other "
                "environment."
            ),
            fix=(
                "Use the credentials of an app registered in the environment of the data you want: a "
                "sandbox app for test data, a production app (tier Production or higher) for live data."
            ),
            fhir_issue="security",
        ),
        ErrorCode(
            code="partner_type_policy",
            status=403,
            title="This endpoint is not open to your partner type",
            layer="policy",
            explanation=(
                "Some endpoints are reserved to one kind of partner: recording consent from a signed "
                "form is for providers, eligibility responses are for payers, and so on. Your "
                "organization's partner type is not one this endpoint serves."
            ),
            fix=(
                "Check the endpoint's reference for who may call it. If your organization's partner type "
                "is recorded wrongly, ask platform support to correct it."
            ),
            fhir_issue="security",
        ),
        ErrorCode(
            code="forbidden",
            status=403,
            title="The request is not allowed",
            layer="policy",
            explanation=(
                "The platform refused the request for a reason that has no more specific code. The detail says why."
            ),
            fix="Read the detail; if it does not explain the refusal, contact support quoting the correlation id.",
            fhir_issue="security",
        ),
        ErrorCode(
            code="quota_exceeded",
            status=429,
            title="Too many requests",
            layer="policy",
            explanation=(
                "A rate quota of the request's endpoint group is used up: the organization's burst, "
                "minute or day, the token's or the patient's share of the minute, or an adaptive limit "
                "in force on a high-cost group; at the token endpoint, the client's or the IP address's "
                "quota, or too many failed attempts from the address. The violated-policies member names "
                "which; quotas come from the organization's tier."
            ),
            fix=(
                "Wait the number of seconds in the Retry-After header before retrying, and spread "
                "requests out. Higher tiers have higher quotas (/tiers/)."
            ),
            fhir_issue="throttled",
        ),
        ErrorCode(
            code="webhook_limit_reached",
            status=409,
            title="The tier's webhook subscriptions are all in use",
            layer="policy",
            explanation=(
                "Each tier allows a number of webhook subscriptions per organization, counted across all "
                "its apps, disabled subscriptions included. Your organization has that many already, so "
                "no more can be created. Nothing is wrong with the request itself: it would succeed once "
                "there is room, which is why this is a conflict with the current state (409) and not a "
                "refusal of the caller (403). The detail names your tier, its cap and the next tier's."
            ),
            fix=(
                "Delete a subscription you no longer need (DELETE /api/v1/webhooks/<id>), or subscribe one "
                "endpoint to several event types instead of one subscription per type. For more, request "
                "the next tier at /tiers/."
            ),
            fhir_issue="business-rule",
        ),
        # --- data --------------------------------------------------------------------------------
        ErrorCode(
            code="consent_required",
            status=403,
            title="The patient has not consented to this access",
            layer="data",
            explanation=(
                "The token and your organization's policies allow the request, but the patient has not "
                "given (or has withdrawn) consent for your app to see this kind of data. Consent is per "
                "patient, per app and per data class."
            ),
            fix=(
                "Ask the patient to approve your app for this data through the authorization flow. Do "
                "not retry until they have: the answer will not change."
            ),
            fhir_issue="security",
        ),
        ErrorCode(
            code="consent_revoked",
            status=403,
            title="The patient revoked their consent",
            layer="data",
            explanation=(
                "The patient withdrew your app's access, from My connected apps or through their provider. "
                "Your tokens for this patient were revoked at the same moment, and a consent.revoked event "
                "was sent to your webhooks and event feed."
            ),
            fix=(
                "Stop calling for this patient and delete what your policy says you must. Only the patient "
                "can grant access again, by going through your app's authorization flow."
            ),
            fhir_issue="security",
        ),
        ErrorCode(
            code="consent_expired",
            status=403,
            title="The patient's consent has expired",
            layer="data",
            explanation="The consent had an end date, and it has passed.",
            fix="Ask the patient to authorize your app again; the consent screen shows them what you ask for.",
            fhir_issue="security",
        ),
        ErrorCode(
            code="organization_authorization",
            status=403,
            title="The patient's provider has not authorized this app",
            layer="data",
            explanation=(
                "The patient may have consented, but the provider organization that holds their records "
                "decides separately which apps may reach them, and it has blocked your app or not enabled "
                "it yet. Production apps need each provider's explicit authorization."
            ),
            fix=(
                "Ask the provider organization named in the detail to enable your app. The patient cannot "
                "change this by consenting again."
            ),
            fhir_issue="forbidden",
        ),
        # --- request -----------------------------------------------------------------------------
        ErrorCode(
            code="not_found",
            status=404,
            title="Not found",
            layer="request",
            explanation=(
                "Nothing exists at this address, or what it names does not exist or is not visible to "
                "your app. The platform does not distinguish the two, so it cannot be used to probe "
                "for records."
            ),
            fix="Check the path and the identifier against the API reference (/api/reference/).",
            fhir_issue="not-found",
        ),
        ErrorCode(
            code="method_not_allowed",
            status=405,
            title="Method not allowed",
            layer="request",
            explanation="The endpoint exists but does not accept this HTTP method.",
            fix="Use one of the methods listed in the Allow header.",
            fhir_issue="not-supported",
        ),
        ErrorCode(
            code="not_acceptable",
            status=406,
            title="Cannot produce the requested media type",
            layer="request",
            explanation="The Accept header asks for a representation this endpoint cannot produce.",
            fix="Accept application/json (application/fhir+json on /fhir/), or omit the Accept header.",
            fhir_issue="not-supported",
        ),
        ErrorCode(
            code="payload_too_large",
            status=413,
            title="Request body too large",
            layer="request",
            explanation=(
                "The request body is larger than the platform accepts in one request. Large bodies are "
                "refused before they are read."
            ),
            fix="Send a smaller body: split batches into several requests.",
            fhir_issue="too-long",
        ),
        ErrorCode(
            code="unsupported_media_type",
            status=415,
            title="Unsupported media type",
            layer="request",
            explanation="The request body's Content-Type is not one this endpoint reads.",
            fix="Send the body as JSON with 'Content-Type: application/json' (application/fhir+json on /fhir/).",
            fhir_issue="not-supported",
        ),
        ErrorCode(
            code="malformed_request",
            status=400,
            title="Malformed request",
            layer="request",
            explanation="The request could not be read: the body is not well-formed JSON, or a header is malformed.",
            fix="Fix the syntax the detail points to and send the request again.",
            fhir_issue="structure",
        ),
        ErrorCode(
            code="validation_error",
            status=400,
            title="The request has invalid fields",
            layer="request",
            explanation=(
                "The request was readable but some values are missing or wrong. The errors list names "
                "each field (as a JSON pointer into the body) with what is wrong with it."
            ),
            fix="Correct each field listed in errors and send the request again.",
            fhir_issue="invalid",
        ),
        ErrorCode(
            code="client_error",
            status=400,
            title="The request cannot be served",
            layer="request",
            explanation=(
                "The request was refused for a reason that has no more specific code; the HTTP status "
                "and the detail say more."
            ),
            fix="Read the detail; if it does not explain the refusal, contact support quoting the correlation id.",
            fhir_issue="invalid",
        ),
        ErrorCode(
            code="idempotency_key_required",
            status=400,
            title="An Idempotency-Key header is required",
            layer="request",
            explanation=(
                "This endpoint changes something, so it needs an Idempotency-Key header: a unique value "
                "you choose per operation (a UUID is ideal, at most 255 printable characters). With it, "
                "a retry after a timeout or a dropped connection can never do the work twice."
            ),
            fix="Send 'Idempotency-Key: <a new UUID>' and reuse the same key only when retrying that same request.",
            fhir_issue="required",
        ),
        ErrorCode(
            code="idempotency_key_reused",
            status=422,
            title="The Idempotency-Key was used for a different request",
            layer="request",
            explanation=(
                "This app already sent this Idempotency-Key within the last 24 hours with a different "
                "method, path or body. A key names one operation; reusing it for another would make a "
                "retry ambiguous, so the request was not processed."
            ),
            fix="Use a new key for a new operation. Keys expire 24 hours after their first use.",
            fhir_issue="business-rule",
        ),
        ErrorCode(
            code="idempotency_request_in_progress",
            status=409,
            title="The first request with this Idempotency-Key is still running",
            layer="request",
            explanation=(
                "A request with the same Idempotency-Key is still being processed. The platform will "
                "not run the operation twice at once; once the first finishes, a retry returns its result."
            ),
            fix="Retry after the number of seconds in Retry-After with the same key and the same body.",
            fhir_issue="conflict",
        ),
        ErrorCode(
            code="slot_unavailable",
            status=409,
            title="The slot is no longer free",
            layer="request",
            explanation=(
                "The slot was booked (or blocked) by someone else since you last looked, or it has "
                "already started. A slot holds one visit."
            ),
            fix="Search free slots again (GET /fhir/r4/Slot?status=free&start=ge<now>) and book another one.",
            fhir_issue="conflict",
        ),
        ErrorCode(
            code="visit_not_cancellable",
            status=409,
            title="The visit cannot be cancelled",
            layer="request",
            explanation="The visit was already cancelled, or it has already taken place.",
            fix="Read the visit (GET /api/v1/visits/<id>) to see its status; nothing needs undoing.",
            fhir_issue="business-rule",
        ),
        ErrorCode(
            code="share_not_revocable",
            status=409,
            title="The share has already ended",
            layer="request",
            explanation=(
                "The lab-result share was already revoked, or its end date has passed: nothing is shared any more."
            ),
            fix="Read the share (GET /api/v1/lab-results/shares/<id>) to see its status; nothing needs undoing.",
            fhir_issue="business-rule",
        ),
        ErrorCode(
            code="webhook_url_refused",
            status=422,
            title="The webhook URL is refused",
            layer="request",
            explanation=(
                "The platform will not send events to this URL. A production app's endpoint must use https, "
                "since events carry patient data. And no endpoint may be on a loopback, private, link-local, "
                "shared or cloud-metadata address (127.0.0.1, 10.x, 192.168.x, 169.254.169.254, "
                "metadata.google.internal...), whatever its name resolves to: that would let a webhook reach "
                "machines inside the platform's network. The detail says which rule the URL broke."
            ),
            fix=(
                "Give a public https URL of your own endpoint. To receive webhooks on a development machine, "
                "expose it through a tunnelling service with a public https address, or read the event feed "
                "(GET /api/v1/events) instead."
            ),
            fhir_issue="value",
        ),
        ErrorCode(
            code="unknown_event_type",
            status=422,
            title="An event type is unknown or cannot be subscribed to",
            layer="request",
            explanation=(
                "A subscription names event types from the event catalogue. One of those given is not in the "
                "catalogue (check the spelling: appointment.booked, consent.revoked...), or it is webhook.test, "
                "which is sent to one subscription when you ask for it and is never subscribed to."
            ),
            fix=(
                "Choose from the event types the detail lists (GET /api/v1/event-types has the catalogue with "
                "each type's schema); send a test event with POST /api/v1/webhooks/<id>/test."
            ),
            fhir_issue="code-invalid",
        ),
        ErrorCode(
            code="replay_window_exceeded",
            status=422,
            title="The replay starts outside the 30-day window",
            layer="request",
            explanation=(
                "Events and their deliveries are kept for 30 days, so a replay can start at most 30 days ago, "
                "and not in the future. The since you sent is outside that window."
            ),
            fix=(
                "Send a since within the last 30 days. For what is older, read the current state through the "
                "APIs (your visits, lab-result shares, GET /api/v1/consents/status, the FHIR API)."
            ),
            fhir_issue="value",
        ),
        ErrorCode(
            code="webhook_disabled",
            status=409,
            title="The webhook subscription is disabled",
            layer="request",
            explanation=(
                "Nothing is sent to a disabled subscription, so a test event, a redelivery or a replay cannot "
                "be sent to it either. You disabled it, or the platform did after its endpoint kept failing: "
                "the subscription's disabled_reason says which."
            ),
            fix=(
                "Fix the endpoint if it was failing, enable the subscription (POST /api/v1/webhooks/<id>/enable), "
                "then send again; replay what it missed while disabled."
            ),
            fhir_issue="business-rule",
        ),
        ErrorCode(
            code="endpoint_retired",
            status=410,
            title="This endpoint has been retired",
            layer="request",
            explanation=(
                "This part of the API was deprecated, announced with Deprecation and Sunset headers on "
                "every response, and has now been switched off. The problem names its replacement and "
                "the migration guide."
            ),
            fix="Move to the replacement named in the problem, following the migration guide it links.",
            fhir_issue="not-supported",
        ),
        ErrorCode(
            code="event_cursor_expired",
            status=410,
            title="The event cursor has expired",
            layer="request",
            explanation=(
                "Events are kept for 30 days. Events that follow the cursor you sent were deleted before you "
                "read them, so carrying on from it would skip them without a word. This happens when an app "
                "has not read its event feed for longer than the retention window."
            ),
            fix=(
                "Call GET /api/v1/events without after to start again from the oldest event kept, and "
                "reconcile what you may have missed by reading the current state through the APIs (your "
                "visits, lab-result shares, GET /api/v1/consents/status, the FHIR API). Poll at least daily "
                "so that your cursor never falls out of the window."
            ),
            fhir_issue="deleted",
        ),
        # --- server ------------------------------------------------------------------------------
        ErrorCode(
            code="server_error",
            status=500,
            title="Internal server error",
            layer="server",
            explanation=(
                "The platform failed while handling the request. It was logged with the correlation id "
                "and the team is alerted; nothing you sent needs to change."
            ),
            fix=(
                "Retry later with exponential backoff. If it persists, contact support quoting the "
                "correlation id. Retrying a write is safe only with an Idempotency-Key."
            ),
            fhir_issue="exception",
        ),
        ErrorCode(
            code="service_unavailable",
            status=503,
            title="Service temporarily unavailable",
            layer="server",
            explanation="The platform or a service it depends on is temporarily unavailable (see /status/).",
            fix="Retry after the number of seconds in Retry-After, or later with exponential backoff.",
            fhir_issue="transient",
        ),
    )
}

# Which code a bare HTTP error (one raised without a code, e.g. Django's own 404) is sent as.
STATUS_CODES = {
    400: "malformed_request",
    401: "token_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    410: "endpoint_retired",
    415: "unsupported_media_type",
    429: "quota_exceeded",
    500: "server_error",
    503: "service_unavailable",
}


def get(code: str) -> ErrorCode:
    """The catalogue entry for ``code``; an unknown code is a programming error (KeyError)."""
    return ERRORS[code]


def code_for_status(status: int) -> str:
    """The code a bare HTTP error of ``status`` is sent as."""
    if status in STATUS_CODES:
        return STATUS_CODES[status]
    return "server_error" if status >= 500 else "client_error"


def docs_path(code: str) -> str:
    """The docs page of a code, which is also the problem's ``type`` (made absolute per request)."""
    return f"/docs/errors/{code}/"
