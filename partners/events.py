"""The event catalogue: every event type the platform publishes, who receives it, its payload schema.

An event is written to the outbox (``OutboxEvent``) in the transaction of the change it announces
(``partners.services.event_publish``), then fanned out once (``partners.event_services``) to the apps
that may see it, who read it from the event feed and, where they subscribed, receive it as a webhook.
Webhooks and the feed carry the same id, type and ``data``.

Who receives an event (``audience``):

- ``patient``: every app that holds an active consent covering ``data_class`` for the patient the
  event is about, when the event happens (consent-aware fan-out); an app without one never learns
  of it, whoever caused it.
- ``app``: the app the event is about (a consent of its own: it must learn of a revocation although
  the consent is no longer active).
- ``organization``: every app of the organization the event is about.
- ``everyone``: every app (platform notices).
- ``subscription``: the one webhook subscription it was sent to (test events), never the feed.

Payloads are versioned: ``version`` is the version of ``data``'s schema. A change that could break a
receiver (a field removed, renamed or retyped) is a new version, announced in the changelog; new
optional fields are not.
"""

from dataclasses import dataclass, field

PATIENT, APP, ORGANIZATION, EVERYONE, SUBSCRIPTION = "patient", "app", "organization", "everyone", "subscription"

_STRING = {"type": "string"}
_DATETIME = {"type": "string", "format": "date-time"}
_NULLABLE_DATETIME = {"type": ["string", "null"], "format": "date-time"}
_PATIENT_REFERENCE = {"type": "string", "pattern": "^Patient/[A-Za-z0-9\\-.]{1,64}$"}


def _object(required: dict, optional: dict | None = None) -> dict:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": True,  # new optional fields are additive, never a new version
    }


_CONSENT = {
    "consent_id": {"type": "integer"},
    "patient": _PATIENT_REFERENCE,
    "client_id": _STRING,
    "scopes": {"type": "array", "items": _STRING},
    "data_classes": {"type": "array", "items": _STRING},
    "text": _STRING,
    "status": {"enum": ["active", "revoked", "expired", "superseded"]},
}
_VISIT = {
    "visit_id": _STRING,
    "status": {"enum": ["booked", "cancelled"]},
    "patient": _PATIENT_REFERENCE,
    "slot": _STRING,
    "start": _NULLABLE_DATETIME,
    "end": _NULLABLE_DATETIME,
}
_SHARE = {
    "share_id": _STRING,
    "observation": _STRING,
    "patient": _PATIENT_REFERENCE,
    "recipient": _STRING,
    "purpose": _STRING,
    "expires_at": _DATETIME,
}
_CONSENT_EXAMPLE = {
    "consent_id": 812,
    "patient": "Patient/p-1001",
    "client_id": "app_7Hq2",
    "scopes": ["launch/patient", "patient/Observation.rs"],
    "data_classes": ["lab_results", "observations"],
    "text": "app-access v3",
    "status": "active",
}
_VISIT_EXAMPLE = {
    "visit_id": "vis_01J9Z3K6W8",
    "status": "booked",
    "patient": "Patient/p-1001",
    "slot": "Slot/slot-42",
    "start": "2026-12-01T15:00:00+00:00",
    "end": "2026-12-01T15:30:00+00:00",
}
_SHARE_EXAMPLE = {
    "share_id": "shr_01J9Z4",
    "observation": "Observation/lab-7f3a",
    "patient": "Patient/p-1001",
    "recipient": "second-opinion-labs",
    "purpose": "Second opinion on HbA1c",
    "expires_at": "2026-12-24T00:00:00+00:00",
}


@dataclass(frozen=True)
class EventType:
    name: str
    summary: str  # one sentence for the catalogue and the docs
    audience: str
    data_schema: dict
    example: dict
    data_class: str | None = None  # for a patient event: the class of data a consent must cover
    version: int = 1
    cause: str = ""  # what makes it happen, for the docs
    tags: tuple = field(default=())

    @property
    def feed(self) -> bool:
        """Whether the event feed carries it (test events are for one subscription only)."""
        return self.audience != SUBSCRIPTION


CATALOGUE: dict[str, EventType] = {
    event.name: event
    for event in (
        EventType(
            "appointment.booked",
            "A visit was booked for a patient.",
            PATIENT,
            _object(_VISIT),
            _VISIT_EXAMPLE,
            data_class="appointments",
            cause="POST /api/v1/visits",
        ),
        EventType(
            "appointment.cancelled",
            "A booked visit was cancelled and its slot freed.",
            PATIENT,
            _object(_VISIT, {"cancellation_reason": _STRING}),
            {**_VISIT_EXAMPLE, "status": "cancelled", "cancellation_reason": "Feeling better"},
            data_class="appointments",
            cause="POST /api/v1/visits/{id}/cancel",
        ),
        EventType(
            "consent.granted",
            "A patient granted your app access (or widened it); the grant's scopes and data classes are in force.",
            APP,
            _object(_CONSENT),
            _CONSENT_EXAMPLE,
            cause="the consent screen, or POST /api/v1/consents",
        ),
        EventType(
            "consent.revoked",
            "A patient (or an admin on their behalf) revoked your app's access; its tokens for that patient "
            "are already revoked.",
            APP,
            _object(_CONSENT, {"revoked_at": _DATETIME, "reason": _STRING}),
            {
                **_CONSENT_EXAMPLE,
                "status": "revoked",
                "revoked_at": "2026-11-20T09:12:44+00:00",
                "reason": "Revoked from My connected apps",
            },
            cause="/me/apps/, or an admin",
        ),
        EventType(
            "consent.expired",
            "A consent with an expiry date reached it; your app's tokens for that patient are revoked.",
            APP,
            _object(_CONSENT, {"expired_at": _DATETIME}),
            {
                "consent_id": 812,
                "patient": "Patient/p-1001",
                "client_id": "app_7Hq2",
                "scopes": ["launch/patient"],
                "data_classes": ["demographics"],
                "text": "app-access v3",
                "status": "expired",
                "expired_at": "2026-11-20T00:00:00+00:00",
            },
            cause="the daily expiry sweep",
        ),
        EventType(
            "lab_result.shared",
            "A patient's lab result was shared with a partner organization.",
            PATIENT,
            _object(_SHARE),
            _SHARE_EXAMPLE,
            data_class="lab_results",
            cause="POST /api/v1/lab-results/{observation_id}/shares",
        ),
        EventType(
            "lab_result.share_revoked",
            "A lab-result share was ended before its expiry.",
            PATIENT,
            _object(_SHARE, {"revoked_at": _DATETIME}),
            {**_SHARE_EXAMPLE, "revoked_at": "2026-11-21T10:00:00+00:00"},
            data_class="lab_results",
            cause="POST /api/v1/lab-results/shares/{id}/revoke",
        ),
        EventType(
            "patient.updated",
            "A patient's contact details changed (phone, email, home address).",
            PATIENT,
            _object(
                {"patient": _PATIENT_REFERENCE, "version_id": _STRING, "changed": {"type": "array", "items": _STRING}}
            ),
            {"patient": "Patient/p-1001", "version_id": "4", "changed": ["telecom", "address"]},
            data_class="demographics",
            cause="a change to the Patient resource",
        ),
        EventType(
            "tier.changed",
            "Your organization moved to another tier; quotas and capabilities changed with it.",
            ORGANIZATION,
            _object(
                {
                    "organization": _STRING,
                    "from_tier": _STRING,
                    "to_tier": _STRING,
                    "changed_at": _DATETIME,
                }
            ),
            {
                "organization": "acme-health",
                "from_tier": "sandbox",
                "to_tier": "verified",
                "changed_at": "2026-11-22T14:00:00+00:00",
            },
            cause="an admin approving an upgrade request, or changing the tier",
        ),
        EventType(
            "deprecation.announced",
            "An endpoint is deprecated: when it sunsets, what replaces it, and where the migration guide is.",
            EVERYONE,
            _object(
                {
                    "deprecation_id": {"type": "integer"},
                    "path_prefix": _STRING,
                    "title": _STRING,
                    "announced_at": _DATETIME,
                    "sunset_at": _DATETIME,
                    "replacement": _STRING,
                    "migration_guide": _STRING,
                }
            ),
            {
                "deprecation_id": 3,
                "path_prefix": "/api/v1/visits",
                "title": "v1 visits move to v2",
                "announced_at": "2026-11-24T00:00:00+00:00",
                "sunset_at": "2027-06-30T00:00:00+00:00",
                "replacement": "/api/v2/visits",
                "migration_guide": "https://developer.example.com/docs/migrating-to-v2/",
            },
            cause="a platform admin publishing a deprecation",
        ),
        EventType(
            "webhook.test",
            "A test event you asked for, to check your endpoint verifies signatures and answers 2xx.",
            SUBSCRIPTION,
            _object({"subscription_id": _STRING, "message": _STRING}),
            {"subscription_id": "whsub_5f0c", "message": "Test event from the developer portal"},
            cause="the portal's Send test event, or POST /api/v1/webhooks/{id}/test",
        ),
    )
}


def get(name: str) -> EventType:
    return CATALOGUE[name]


def envelope_schema(event: EventType) -> dict:
    """The JSON schema of the whole message a receiver gets (webhook body and feed item)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": event.name,
        "type": "object",
        "required": ["id", "type", "version", "occurred_at", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^evt_[0-9a-f]{32}$"},
            "type": {"const": event.name},
            "version": {"const": event.version},
            "occurred_at": _DATETIME,
            "sequence": {"type": "integer", "minimum": 1},
            "data": event.data_schema,
        },
    }
