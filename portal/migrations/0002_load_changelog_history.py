"""The changelog as it was written by hand in docs/changelog.md until 2026-11-25, one published entry
per bullet, so /changelog/ and the feeds start with the platform's whole history.

The data is here, not read from a file: a migration must give the same rows whenever it runs. Kinds
follow each bullet's bold label ("Docs." is additive: a new page; "Renamed, never delivered." is a fix
of an announcement); the version is where the change lives (a change to both v1 and v2 that first
shipped in v1 is "v1"; one across /api/ and /fhir/ is "platform"); affected endpoints are the routes
the bullet names, as ``api.endpoints`` patterns.
"""

import datetime

from django.db import migrations

NOV_24 = datetime.date(2026, 11, 24)
NOV_25 = datetime.date(2026, 11, 25)

# Oldest first: ids grow down the list, and the changelog shows the highest id first within a day, so
# each day reads in the order the hand-written file had.
ENTRIES = [
    # --- 2026-11-24 — v1 ---
    {
        "date": NOV_24,
        "version": "platform",
        "kind": "additive",
        "slug": "2026-11-24-problem-details",
        "title": "Errors are problem details on /api/ and OperationOutcomes on /fhir/",
        "body": "Errors on `/api/` are RFC 9457 problem details and on `/fhir/` FHIR OperationOutcomes, each "
        "with a `type` URI under `/docs/errors/`, the correlation id and the fix. See [Errors](errors.md).",
        "affected_endpoints": "/api\n/fhir/r4",
    },
    {
        "date": NOV_24,
        "version": "v1",
        "kind": "additive",
        "slug": "2026-11-24-token-info",
        "title": "GET /api/v1/token-info: what the calling token may do",
        "body": "`GET /api/v1/token-info`: what the calling token may do, layer by layer.",
        "affected_endpoints": "GET /api/v1/token-info",
    },
    {
        "date": NOV_24,
        "version": "oauth",
        "kind": "additive",
        "slug": "2026-11-24-discovery",
        "title": "Discovery documents: SMART configuration, authorization server metadata, JWKS",
        "body": "Discovery: `/fhir/r4/.well-known/smart-configuration`, `/.well-known/oauth-authorization-server`, "
        "`/.well-known/openid-configuration`, `/.well-known/jwks.json`, and `/fhir/r4/metadata`.",
        "affected_endpoints": "GET /fhir/r4/.well-known/smart-configuration\n"
        "GET /.well-known/oauth-authorization-server\n"
        "GET /.well-known/openid-configuration\n"
        "GET /.well-known/jwks.json\n"
        "GET /fhir/r4/metadata",
    },
    {
        "date": NOV_24,
        "version": "oauth",
        "kind": "additive",
        "slug": "2026-11-24-oauth-and-smart",
        "title": "OAuth 2.0 and SMART App Launch 2.x",
        "body": "OAuth 2.0 and SMART App Launch 2.x: authorization code with PKCE (S256 only), client "
        "credentials with a secret or a `private_key_jwt` assertion (SMART Backend Services), refresh tokens "
        "with rotation, introspection (`/oauth/introspect/`) and revocation (`/oauth/revoke_token/`). See "
        "[Authentication](authentication.md).",
        "affected_endpoints": "/oauth/authorize\n/oauth/token\n/oauth/introspect\n/oauth/revoke_token",
    },
    # --- 2026-11-24 — v1 (consent and the FHIR core) ---
    {
        "date": NOV_24,
        "version": "oauth",
        "kind": "fix",
        "slug": "2026-11-24-refresh-token-needs-offline-access",
        "title": "A refresh token only with offline_access or online_access",
        "body": "Authorization-code grants without `offline_access` or `online_access` no longer receive a "
        "refresh token, as the consent screen says.",
        "affected_endpoints": "POST /oauth/token",
        "migration_notes": "If your app needs a refresh token, ask for `offline_access` (or `online_access`) "
        "in the authorization request.",
    },
    {
        "date": NOV_24,
        "version": "platform",
        "kind": "additive",
        "slug": "2026-11-24-consent-error-codes",
        "title": "A patient's data needs their consent: new error codes on the data layer",
        "body": "New error codes `consent_revoked`, `consent_expired` and `organization_authorization` on the "
        "data layer; a patient's data now needs their consent (and their providers' authorization). See "
        "[Consent](consent.md).",
        "affected_endpoints": "/fhir/r4\n/api/v1",
    },
    {
        "date": NOV_24,
        "version": "fhir-r4",
        "kind": "additive",
        "slug": "2026-11-24-fhir-read-and-search",
        "title": "FHIR R4 read and search of eight resource types",
        "body": "FHIR R4 read and search of Patient, Practitioner, Organization, Observation, Schedule, Slot, "
        "Appointment and Coverage, with keyset paging; the CapabilityStatement lists them. See "
        "[The FHIR API](fhir-api.md).",
        "affected_endpoints": "GET /fhir/r4/Patient\nGET /fhir/r4/Practitioner\nGET /fhir/r4/Organization\n"
        "GET /fhir/r4/Observation\nGET /fhir/r4/Schedule\nGET /fhir/r4/Slot\nGET /fhir/r4/Appointment\n"
        "GET /fhir/r4/Coverage\nGET /fhir/r4/metadata",
    },
    {
        "date": NOV_24,
        "version": "v1",
        "kind": "additive",
        "slug": "2026-11-24-consent-api",
        "title": "Consent: status, provider-recorded consents, revocation, and FHIR Consent",
        "body": "Consent: `GET /api/v1/consents/status`, `POST /api/v1/consents` (providers, from a signed "
        "form), `POST /api/v1/consents/{id}/revoke`; FHIR `Consent` read and search at `/fhir/r4/Consent`.",
        "affected_endpoints": "GET /api/v1/consents/status\nPOST /api/v1/consents\n"
        "POST /api/v1/consents/{consent_id}/revoke\nGET /fhir/r4/Consent",
    },
    # --- 2026-11-24 — v1 and v2 (workflow APIs) ---
    {
        "date": NOV_24,
        "version": "platform",
        "kind": "fix",
        "slug": "2026-11-24-problem-code-is-a-string",
        "title": "In the OpenAPI document a problem's code is a string, not an enum",
        "body": "In the OpenAPI document a problem's `code` is a string, no longer an enum: new error codes are "
        "additive, and clients generated from the document must not reject one they do not know.",
        "migration_notes": "Regenerate clients from `/api/schema/v1/` or `/api/schema/v2/`, so that an error "
        "code your client does not know yet is not a parse error.",
    },
    {
        "date": NOV_24,
        "version": "platform",
        "kind": "additive",
        "slug": "2026-11-24-openapi-and-reference",
        "title": "OpenAPI 3 documents and an interactive reference per version",
        "body": "Each version's OpenAPI 3 document at `/api/schema/v1/` and `/api/schema/v2/`, and an "
        "interactive reference at `/api/reference/v1/` and `/api/reference/v2/`. Every operation documents "
        "410 `endpoint_retired` and the deprecation headers.",
    },
    {
        "date": NOV_24,
        "version": "v1",
        "kind": "deprecation",
        "slug": "2026-11-24-v1-visits-deprecated",
        "title": "/api/v1/visits is deprecated: sunset 2027-06-30",
        "body": "`/api/v1/visits`: announced on 2026-11-24, sunset 2027-06-30; its responses carry `Deprecation`, "
        "`Sunset` and `Link` headers. See [Versions and deprecations](versioning.md).",
        "affected_endpoints": "/api/v1/visits",
        "migration_notes": "Move to `/api/v2/visits` before 2027-06-30: the requests are the same, a visit "
        "reads differently (its time is a `period`, its status an object). See "
        "[Migrating to v2](migrating-to-v2.md).",
        "deprecation_prefix": "v1/visits",
    },
    {
        "date": NOV_24,
        "version": "v2",
        "kind": "breaking",
        "slug": "2026-11-24-api-v2",
        "title": "/api/v2/: a visit's time is a period and its status an object",
        "body": "`/api/v2/` runs beside `/api/v1/`. Its one breaking change: a visit's time is a `period` "
        "object and its status an object (`code`, `since`, `reason`, `cancellable`). Every other endpoint is "
        "the same in both; `/api/v2/token-info` and `/api/v2/consents` are new paths for the same endpoints. "
        "See [Migrating to v2](migrating-to-v2.md).",
        "affected_endpoints": "/api/v1/visits\n/api/v2/visits",
        "migration_notes": "When you move a visit call to v2, read `period.start` and `period.end` instead of "
        "`start` and `end`, and `status.code` instead of `status`. Everything else moves by changing "
        "`/api/v1/` to `/api/v2/`.",
    },
    {
        "date": NOV_24,
        "version": "v1",
        "kind": "additive",
        "slug": "2026-11-24-eligibility-checks",
        "title": "Eligibility checks",
        "body": "Eligibility checks under `/api/v1/` and `/api/v2/`: `POST /eligibility-checks` asks the payer "
        "(simulated in the sandbox) whether the patient's coverage covers a service type and records the "
        "answer; `GET /eligibility-checks` and `GET /eligibility-checks/{id}`. Needs `eligibility.read` and the "
        "patient's consent to coverage. See [Eligibility checks](eligibility-checks.md).",
        "affected_endpoints": "/api/v1/eligibility-checks\n/api/v2/eligibility-checks",
    },
    {
        "date": NOV_24,
        "version": "v1",
        "kind": "additive",
        "slug": "2026-11-24-lab-result-shares",
        "title": "Lab-result shares",
        "body": "Lab-result shares under `/api/v1/` and `/api/v2/`: `POST /lab-results/{observation_id}/shares` "
        "shares one laboratory result with another partner organization until `expires_at` (at most 365 "
        "days), on the patient's consent to lab results; `GET /lab-results/shares`, "
        "`GET /lab-results/shares/{id}` (with `consent_active`) and `POST /lab-results/shares/{id}/revoke`. New "
        "events `lab_result.shared` and `lab_result.share_revoked`; error code `share_not_revocable`. See "
        "[Lab-result shares](lab-result-shares.md).",
        "affected_endpoints": "/api/v1/lab-results\n/api/v2/lab-results",
    },
    {
        "date": NOV_24,
        "version": "v1",
        "kind": "additive",
        "slug": "2026-11-24-idempotent-writes",
        "title": "Idempotent writes: the Idempotency-Key header",
        "body": "Idempotent writes: every POST to a workflow API requires an `Idempotency-Key` header "
        "(`idempotency_key_required`); a retry returns the first success with `Idempotent-Replayed: true`, a "
        "retry while it runs is 409 `idempotency_request_in_progress`, another request under the same key is "
        "422 `idempotency_key_reused`; keys expire after 24 hours. `POST /api/v1/consents` accepts the header "
        "and does not require it. See [Idempotent requests](idempotency.md).",
        "affected_endpoints": "POST /api/v1\nPOST /api/v2",
        "migration_notes": "Send a new `Idempotency-Key` (a UUID) with every POST to a workflow API, and the "
        "same key again when you retry that request.",
    },
    {
        "date": NOV_24,
        "version": "v1",
        "kind": "additive",
        "slug": "2026-11-24-visits",
        "title": "Visits: book, cancel and list",
        "body": "Visits under `/api/v1/` and `/api/v2/`: `POST /visits` books a free slot for a patient (the "
        "slot becomes busy, the visit a booked FHIR Appointment), `POST /visits/{id}/cancel` frees it, "
        "`GET /visits` and `GET /visits/{id}` show the app's own visits. New events `visit.booked` and "
        "`visit.cancelled`; new error codes `slot_unavailable` and `visit_not_cancellable`. See "
        "[Visits](visits.md).",
        "affected_endpoints": "/api/v1/visits\n/api/v2/visits",
    },
    # --- 2026-11-24 — rate limits ---
    {
        "date": NOV_24,
        "version": "platform",
        "kind": "additive",
        "slug": "2026-11-24-usage-dashboards",
        "title": "Usage dashboards in the portal",
        "body": "Usage dashboards: `/apps/<id>/usage/` in the portal. See [Usage](usage.md).",
    },
    {
        "date": NOV_24,
        "version": "platform",
        "kind": "additive",
        "slug": "2026-11-24-rate-limits",
        "title": "Rate limits: RateLimit headers and 429 on /api/ and /fhir/",
        "body": "Every limited response on `/api/` and `/fhir/` carries `RateLimit-Policy` and `RateLimit` "
        "headers; a used-up quota is 429 `rate_limited` with `Retry-After` and `violated-policies` (a FHIR "
        "`OperationOutcome` with code `throttled` on `/fhir/`). Quotas hold per organization (burst, minute, "
        "day), per token and per patient, per endpoint group. See [Rate limits](rate-limits.md).",
        "affected_endpoints": "/api\n/fhir/r4",
        "migration_notes": "On a 429, wait for `Retry-After` seconds before you retry.",
    },
    # --- 2026-11-25 — rate limits: adaptive limits, the token endpoint, generated tables ---
    {
        "date": NOV_25,
        "version": "platform",
        "kind": "additive",
        "slug": "2026-11-25-docs-portal",
        "title": "The docs at /docs/, with tables generated from the configuration and a page per error code",
        "body": "The docs are served at `/docs/`; the rate-limit and tier tables are generated from the tiers' "
        "configuration when the page loads. Every error code has its page at `/docs/errors/<code>/`, the URI "
        "each problem carries in `type` (generated from the error catalogue; `/docs/errors/rate_limited/` "
        "leads to `quota_exceeded`).",
    },
    {
        "date": NOV_25,
        "version": "platform",
        "kind": "additive",
        "slug": "2026-11-25-ratelimit-headers-on-refusals",
        "title": "Refused requests carry the RateLimit headers too",
        "body": "A request the token, scope or policy layers refuse now carries the `RateLimit` headers too.",
        "affected_endpoints": "/api\n/fhir/r4",
    },
    {
        "date": NOV_25,
        "version": "oauth",
        "kind": "additive",
        "slug": "2026-11-25-token-endpoint-limits",
        "title": "The token endpoint is limited per client and per address",
        "body": "The token endpoint is limited per client (the `token` group of the tier: "
        "`client-token-second`, `-minute`, `-day`) and per IP address (`ip-token-minute`, and "
        "`ip-token-failures`: 20 failed attempts in 15 minutes refuse the address until the window ends). Its "
        '429 is an OAuth error (`"error": "quota_exceeded"`) with `Retry-After` and `RateLimit` headers. See '
        "[Token endpoint limits](token-endpoint-limits.md).",
        "affected_endpoints": "POST /oauth/token",
        "migration_notes": "Reuse an access token until it expires rather than asking for one per request.",
    },
    {
        "date": NOV_25,
        "version": "platform",
        "kind": "additive",
        "slug": "2026-11-25-adaptive-limits",
        "title": "Adaptive limits on eligibility checks",
        "body": "Adaptive limits on the `eligibility` group: its quotas tighten (to 50%, then 25%) while its "
        "error rate or latency is above threshold and recover step by step; an app far above its usual rate "
        "is capped alone (`app-eligibility-minute`). The headers' `q` shows the limit in force, the 429's "
        "`detail` says why, and both dashboards show it. See [Adaptive limits](adaptive-limits.md).",
        "affected_endpoints": "POST /api/v1/eligibility-checks\nPOST /api/v2/eligibility-checks",
    },
    {
        "date": NOV_25,
        "version": "platform",
        "kind": "fix",
        "slug": "2026-11-25-quota-exceeded-code",
        "title": "The 429 problem's code is quota_exceeded (it was rate_limited)",
        "body": "The 429 problem's code is `quota_exceeded` (its `type` is `/docs/errors/quota_exceeded/`); it was "
        "`rate_limited` since 2026-11-24. See [Rate limits](rate-limits.md).",
        "affected_endpoints": "/api\n/fhir/r4",
        "migration_notes": "Match on the status 429, or on either code while you update.",
    },
    # --- 2026-11-25 — events and webhooks ---
    {
        "date": NOV_25,
        "version": "events",
        "kind": "fix",
        "slug": "2026-11-25-visit-events-renamed",
        "title": "visit.booked and visit.cancelled are appointment.booked and appointment.cancelled",
        "body": "The events announced on 2026-11-24 as `visit.booked` and `visit.cancelled` are "
        "`appointment.booked` and `appointment.cancelled`. No app ever received them under the old names: "
        "there were no webhooks or event feed until today.",
        "migration_notes": "Subscribe to `appointment.booked` and `appointment.cancelled`.",
    },
    {
        "date": NOV_25,
        "version": "platform",
        "kind": "additive",
        "slug": "2026-11-25-deprecations-page",
        "title": "/deprecations/ lists every published deprecation",
        "body": "`/deprecations/` lists every published deprecation with its announcement, sunset and "
        "enforcement dates, a countdown, the replacement and the migration guide, from the records that send "
        "the `Deprecation` and `Sunset` headers.",
    },
    {
        "date": NOV_25,
        "version": "events",
        "kind": "additive",
        "slug": "2026-11-25-event-types-endpoint",
        "title": "GET /api/v1/event-types: the catalogue, for code generation",
        "body": "`GET /api/v1/event-types`: the catalogue with each type's JSON Schema and example, for code "
        "generation.",
        "affected_endpoints": "GET /api/v1/event-types\nGET /api/v2/event-types",
    },
    {
        "date": NOV_25,
        "version": "events",
        "kind": "additive",
        "slug": "2026-11-25-event-feed",
        "title": "The event feed: GET /api/v1/events",
        "body": "The event feed, `GET /api/v1/events?after=<cursor>` (scope `events.read`): the same messages as "
        "webhooks, in order, for apps that cannot receive them; kept 30 days, after which a stale cursor is "
        "410 `event_cursor_expired`. See [Events](events.md#the-event-feed).",
        "affected_endpoints": "GET /api/v1/events\nGET /api/v2/events",
    },
    {
        "date": NOV_25,
        "version": "events",
        "kind": "additive",
        "slug": "2026-11-25-webhooks",
        "title": "Webhooks, signed as Standard Webhooks",
        "body": "Webhooks, signed as [Standard Webhooks](https://www.standardwebhooks.com/) (`webhook-id`, "
        "`webhook-timestamp`, `webhook-signature`), with a per-subscription `sequence`, retries over about three "
        "days, secret rotation, test events, redelivery, replay of the last 30 days and a delivery log: in the "
        "portal and under `/api/v1/webhooks` (scope `webhooks.manage`). New error codes `webhook_url_refused`, "
        "`unknown_event_type`, `webhook_limit_reached`, `webhook_disabled` and `replay_window_exceeded`. See "
        "[Webhooks](webhooks.md).",
        "affected_endpoints": "/api/v1/webhooks\n/api/v2/webhooks",
    },
    {
        "date": NOV_25,
        "version": "events",
        "kind": "additive",
        "slug": "2026-11-25-event-catalogue",
        "title": "The event catalogue: eleven event types, each with a JSON Schema",
        "body": "The event catalogue: `appointment.booked`, `appointment.cancelled`, `consent.granted`, "
        "`consent.revoked`, `consent.expired`, `lab_result.shared`, `lab_result.share_revoked`, "
        "`patient.updated`, `tier.changed`, `deprecation.announced` and `webhook.test`, each with a versioned "
        "JSON Schema and an example. An event about a patient reaches only the apps holding the patient's "
        "active consent to that class of data when it happens. See [Events](events.md).",
    },
]


def load(apps, schema_editor):
    ChangelogEntry = apps.get_model("portal", "ChangelogEntry")
    Deprecation = apps.get_model("api", "Deprecation")
    for data in ENTRIES:
        data = dict(data)
        prefix = data.pop("deprecation_prefix", None)
        # A database seeded before this migration already has the deprecation; a fresh one gets it from
        # seed_sandbox, which links it then (portal.changelog.changelog_entry_link_deprecation).
        deprecation = Deprecation.objects.filter(path_prefix=prefix).first() if prefix else None
        ChangelogEntry.objects.update_or_create(
            slug=data.pop("slug"), defaults={**data, "deprecation": deprecation, "published": True}
        )


def unload(apps, schema_editor):
    ChangelogEntry = apps.get_model("portal", "ChangelogEntry")
    ChangelogEntry.objects.filter(slug__in=[data["slug"] for data in ENTRIES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_add_changelog_search_and_analytics"),
        ("api", "0009_count_usage_per_endpoint"),
    ]

    operations = [migrations.RunPython(load, unload)]
