"""``GET /api/<version>/events``: the event feed, for partners that cannot receive webhooks; and
``GET /api/<version>/event-types``: the event catalogue, for partners' code generation.

The feed is the calling app's rows of ``EventRecipient`` in ``position`` order. Positions are given per
app without gaps, and a fan-out holds its app's counter row until it commits, so a row becomes visible
only after every row before it: a reader that has seen position ``n`` never later finds a new row below
``n``. That makes the position a safe keyset, and a missing ``after + 1`` proof that events the caller
has not read were purged (``event_cursor_expired``) rather than merely not yet visible.

Each item is ``partners.event_services.envelope``, the very message a webhook carries (without the
per-subscription ``sequence``). Events about a patient are shown under the same rule as the rest of
that patient's data: only while the app may see that class of their data now (``api.policy``), each
page's reads written to the access audit. A patient-context token sees its own patient's events only.

v1 and v2 serve the same shape; the views are bound to their version (``versioned_views``) as the other
workflow endpoints are.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core import signing
from django.db.models import Q
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from api import policy
from api.audit import record_access
from api.permissions import auth_context
from api.problems import PROBLEM_CONTENT_TYPE, Problem
from api.serializers import ProblemSerializer
from api.views import ProtectedAPIView, problem_responses
from api.workflows.common import CURSOR_SALT, NO_STORE, READ_ERRORS, operation
from partners import event_services, events
from partners.event_models import EventCounter, EventRecipient
from partners.models import OutboxEvent

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
CURSOR_KIND = "events"
RETENTION_DAYS = event_services.RETENTION.days

# What the access audit names a read of each class of patient data an event carries.
AUDIT_RESOURCE_TYPES = {"appointments": "Appointment", "lab_results": "Observation", "demographics": "Patient"}

# The examples the catalogue and the docs show: a fixed moment, and an id derived from the type's name,
# so the rendered docs and the OpenAPI document do not change from one build to the next.
EXAMPLE_OCCURRED_AT = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def example_envelope(event_type: events.EventType, *, sequence: int | None = None) -> dict:
    """The message a receiver gets for ``event_type``'s example, built by the same ``envelope`` as a
    real one (so the example cannot drift from the real shape)."""
    event = OutboxEvent(
        id=uuid.uuid5(uuid.NAMESPACE_URL, f"https://developer.example.com/events/{event_type.name}"),
        type=event_type.name,
        payload=event_type.example,
        version=event_type.version,
        occurred_at=EXAMPLE_OCCURRED_AT,
    )
    return event_services.envelope(event, sequence=sequence)


# --- cursors -------------------------------------------------------------------------------------


def _signer() -> signing.Signer:
    # Not signing.dumps: that adds a timestamp, and a poller that is up to date must get back the very
    # cursor it sent, byte for byte.
    return signing.Signer(salt=f"{CURSOR_SALT}.events")


def feed_cursor(*, app_id: int, position: int) -> str:
    """The opaque cursor of the point after ``position`` in ``app_id``'s feed."""
    return _signer().sign_object({"k": CURSOR_KIND, "a": app_id, "p": position}, compress=False)


def cursor_position(raw: str, *, app_id: int) -> int:
    """The position a cursor this server signed for this app's feed names; ``malformed_request`` for
    anything else (a forged or damaged cursor, another list's, another app's)."""
    try:
        data = _signer().unsign_object(raw)
    except (signing.BadSignature, ValueError):
        data = None
    position = data.get("p") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("k") != CURSOR_KIND
        or data.get("a") != app_id
        or not isinstance(position, int)
        or isinstance(position, bool)
        or position < 0
    ):
        raise Problem(
            "malformed_request",
            "The cursor is not one this server gave for your app's event feed; pass the next_cursor of a "
            "previous page, or leave after out to start from the oldest event kept.",
        )
    return position


# --- reading the feed --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedPage:
    rows: list  # EventRecipient, with their events, in position order
    next_position: int


def parse_limit(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_LIMIT
    message = f"Give a whole number from 1 to {MAX_LIMIT}."
    try:
        limit = int(raw)
    except ValueError:
        raise ValidationError({"limit": [message]}) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError({"limit": [message]})
    return limit


def parse_types(raw: str | None) -> list[str]:
    """The event types of ``?types=a,b``, each one the feed carries; [] when not given."""
    names = list(dict.fromkeys(name.strip() for name in (raw or "").split(",") if name.strip()))
    unknown = [name for name in names if name not in events.CATALOGUE]
    if unknown:
        raise ValidationError(
            {"types": [f"Unknown event type(s): {', '.join(unknown)}. GET /api/v1/event-types lists them."]}
        )
    unfed = [name for name in names if not events.get(name).feed]
    if unfed:
        raise ValidationError(
            {"types": [f"{', '.join(unfed)} is sent to one webhook subscription only and never appears in the feed."]}
        )
    return names


def _patient_types_by_class(types: list[str]) -> dict[str, list[str]]:
    by_class: dict[str, list[str]] = {}
    for event_type in events.CATALOGUE.values():
        if event_type.audience == events.PATIENT and (not types or event_type.name in types):
            by_class.setdefault(event_type.data_class, []).append(event_type.name)
    return by_class


class _Visibility:
    """Which of the app's events about patients it may see now, and the consent each read rests on.

    The fan-out let an event through on the consent in force when it happened; a read later is a read
    later, held to the consent in force now, like a search of the same data (a patient who withdrew
    their consent drops out of the feed as out of every list)."""

    def __init__(self, context, types: list[str]):
        self.context = context
        # Only the classes the page can show: a filter on consent.* costs no consent lookups at all.
        self.by_class = _patient_types_by_class(types)
        if context.patient_id:
            self._decisions = {
                data_class: policy.check_data_access(
                    context=context, patient_id=context.patient_id, data_class=data_class
                )
                for data_class in self.by_class
            }
        else:
            self._sets = {
                data_class: policy.patients_with_access(context=context, data_class=data_class)
                for data_class in self.by_class
            }

    def q(self) -> Q:
        every_patient_type = [e.name for e in events.CATALOGUE.values() if e.audience == events.PATIENT]
        visible = ~Q(event__type__in=every_patient_type)
        for data_class, names in self.by_class.items():
            if self.context.patient_id:
                if self._decisions[data_class].allowed:
                    visible |= Q(event__type__in=names)
            else:
                visible |= Q(event__type__in=names) & self._sets[data_class].q("event__patient_id")
        return visible

    def grant_id(self, data_class: str, patient_id: str) -> int | None:
        if self.context.patient_id:
            return self._decisions[data_class].grant_id
        return self._sets[data_class].grant_id(patient_id)


def feed_page(*, context, after: int | None, limit: int, types: list[str]) -> tuple[FeedPage, _Visibility]:
    """One page of the calling app's feed after position ``after`` (None: from the oldest kept event).

    ``next_position`` moves past every row this page looked at, shown or not (filtered out by type, or
    about a patient the app may no longer see), so a caller filtering on a rare type never holds a cursor
    that ages out of the retention window while events it would not have seen go by."""
    app_id = context.app.pk
    # Read before the rows: every position up to it belongs to a committed fan-out, so the rows up to it
    # are all there to read (see the module's docstring).
    high = EventCounter.objects.filter(key=f"app:{app_id}").values_list("value", flat=True).first() or 0
    start = after or 0
    lost = (
        after is not None
        and high > after
        and not EventRecipient.objects.filter(app_id=app_id, position=after + 1).exists()
    )
    if lost:
        raise Problem(
            "event_cursor_expired",
            f"Events are kept for {RETENTION_DAYS} days, and some that follow your cursor have been deleted "
            "before you read them.",
            retention_days=RETENTION_DAYS,
        )
    visibility = _Visibility(context, types)
    rows = EventRecipient.objects.filter(app_id=app_id, position__gt=start, position__lte=high).filter(visibility.q())
    if types:
        rows = rows.filter(event__type__in=types)
    if context.patient_id:
        rows = rows.filter(event__patient_id=context.patient_id)
    found = list(rows.select_related("event").order_by("position")[: limit + 1])
    page, more = found[:limit], len(found) > limit
    next_position = page[-1].position if more else max(high, start)
    return FeedPage(rows=page, next_position=next_position), visibility


def audit_page(request, page: FeedPage, visibility: _Visibility) -> None:
    """A read of each patient's data the page shows, one row per patient and kind of data."""
    seen = set()
    for row in page.rows:
        event_type = events.CATALOGUE.get(row.event.type)
        if event_type is None or event_type.audience != events.PATIENT or not row.event.patient_id:
            continue
        seen.add((row.event.patient_id, event_type.data_class))
    for patient_id, data_class in sorted(seen):
        record_access(
            request,
            resource_type=AUDIT_RESOURCE_TYPES.get(data_class, "Patient"),
            patient_id=patient_id,
            action="search",
            outcome="allowed",
            consent_grant_id=visibility.grant_id(data_class, patient_id),
        )


# --- serializers (the OpenAPI shapes; the views return ``envelope`` itself) --------------------------


class EventSerializer(serializers.Serializer):
    """One event, as the feed lists it and a webhook body carries it (a webhook adds ``sequence``)."""

    id = serializers.CharField(
        help_text="evt_ and 32 hex digits: the same in the feed and in webhooks (the webhook-id header). "
        "Deduplicate on it."
    )
    # A string, not an enum: new event types are added over time (additive, docs/versioning.md).
    type = serializers.CharField(help_text="The event type: appointment.booked, consent.revoked, ... (/docs/events/).")
    version = serializers.IntegerField(help_text="The version of data's schema for this type.")
    occurred_at = serializers.DateTimeField(help_text="When the change happened (UTC).")
    data = serializers.DictField(help_text="The type's payload; its JSON schema is in GET /api/v1/event-types.")


class EventFeedSerializer(serializers.Serializer):
    data = EventSerializer(many=True, help_text="In feed order (oldest first); empty when you are up to date.")
    next_cursor = serializers.CharField(
        help_text="Never null: pass it as ?after= to get what follows. Store it once you have processed the page; "
        "when data is empty it is the cursor you sent."
    )
    next = serializers.URLField(help_text="The next page's URL: this request with after=next_cursor.")


class EventTypeSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The event type, as an event's type and a subscription's event_types.")
    summary = serializers.CharField()
    audience = serializers.CharField(
        help_text="Who receives it: patient (apps with an active consent covering data_class), app (the app the "
        "consent is for), organization (every app of the organization), everyone (every app), subscription "
        "(the one webhook subscription it is sent to; never in the feed)."
    )
    data_class = serializers.CharField(
        allow_null=True, help_text="For a patient event: the class of data a consent must cover."
    )
    version = serializers.IntegerField(help_text="The current version of data's schema.")
    cause = serializers.CharField(help_text="What makes it happen.")
    in_feed = serializers.BooleanField(help_text="Whether GET /api/v1/events carries it (false for webhook.test).")
    docs = serializers.URLField(help_text="Its section of the events documentation.")
    schema = serializers.DictField(help_text="The JSON Schema (2020-12) of the whole message: envelope and data.")
    example = EventSerializer(help_text="An example message of this type.")


class EventTypeListSerializer(serializers.Serializer):
    data = EventTypeSerializer(many=True)


def event_type_anchor(name: str) -> str:
    """Its section's id on /docs/events/: appointment.booked -> appointment-booked."""
    return name.replace(".", "-").replace("_", "-")


def describe_event_type(request, event_type: events.EventType) -> dict:
    return {
        "name": event_type.name,
        "summary": event_type.summary,
        "audience": event_type.audience,
        "data_class": event_type.data_class,
        "version": event_type.version,
        "cause": event_type.cause,
        "in_feed": event_type.feed,
        "docs": request.build_absolute_uri(f"/docs/events/#{event_type_anchor(event_type.name)}"),
        "schema": events.envelope_schema(event_type),
        "example": example_envelope(event_type),
    }


# --- views -------------------------------------------------------------------------------------------


class EventFeedView(ProtectedAPIView):
    api_version = "v1"
    required_scopes = ["events.read"]
    endpoint_group = "fhir_read"

    def get(self, request):
        context = auth_context(request)
        limit = parse_limit(request.query_params.get("limit"))
        types = parse_types(request.query_params.get("types"))
        raw_after = request.query_params.get("after")
        after = cursor_position(raw_after, app_id=context.app.pk) if raw_after else None
        page, visibility = feed_page(context=context, after=after, limit=limit, types=types)
        audit_page(request, page, visibility)
        if raw_after and page.next_position == after:
            next_cursor = raw_after
        else:
            next_cursor = feed_cursor(app_id=context.app.pk, position=page.next_position)
        params = request.query_params.copy()
        params["after"] = next_cursor
        next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        body = {
            "data": [event_services.envelope(row.event) for row in page.rows],
            "next_cursor": next_cursor,
            "next": next_url,
        }
        return Response(body, headers={**NO_STORE, "Link": f'<{next_url}>; rel="next"'})


class EventTypeListView(ProtectedAPIView):
    """Any valid token of an active organization may read the catalogue: it is public in the docs."""

    api_version = "v1"
    endpoint_group = "fhir_read"

    def get(self, request):
        body = {"data": [describe_event_type(request, event_type) for event_type in events.CATALOGUE.values()]}
        return Response(body)


def _feed_example() -> dict:
    return {
        "data": [
            example_envelope(events.get("appointment.booked")),
            example_envelope(events.get("consent.revoked")),
        ],
        "next_cursor": "eyJrIjoiZXZlbnRzIiwiYSI6NDIsInAiOjEyOH0:q3Vd0rM2h8kE1cYwXyT5nLz7aBfJ6sUoPiGmR4eN9tA",
        "next": "https://sandbox.example.org/api/v1/events?after=eyJrIjoiZXZlbnRzIiwiYSI6NDIsInAiOjEyOH0%3Aq3Vd0rM2h8kE1cYwXyT5nLz7aBfJ6sUoPiGmR4eN9tA",
    }


def versioned_views(version: str) -> dict:
    """The event views of ``version``, each with its OpenAPI description, for the URL conf."""
    suffix = version.upper()
    feed_errors = problem_responses(*READ_ERRORS)
    feed_errors[(410, PROBLEM_CONTENT_TYPE)] = OpenApiResponse(
        ProblemSerializer,
        description=f"event_cursor_expired: events after your cursor were deleted ({RETENTION_DAYS}-day retention) "
        "before you read them. Start again without after and reconcile through the APIs. (Also "
        "endpoint_retired, should this operation ever be retired.)",
    )
    feed = type(
        f"EventFeed{suffix}View",
        (EventFeedView,),
        {
            "api_version": version,
            "get": operation(
                version,
                "events_list",
                "events",
                summary="The event feed: what happened that your app may know of",
                description="Your app's events in feed order, oldest first: the same ids, types, versions and data "
                "as your webhooks receive, for partners that cannot receive webhooks (or to catch up). Start "
                "without `after`; then pass each page's `next_cursor` as `after`. `next_cursor` is never null: "
                "an empty `data` means you are up to date, and returns the cursor you sent, so poll again later "
                'with it. The `Link` header carries the same next URL (`rel="next"`). Events are kept '
                f"{RETENTION_DAYS} days: a cursor whose following events were deleted is 410 "
                "`event_cursor_expired`. Events about a patient appear while your app may see that class of "
                "their data (their consent); a patient-context token sees its own patient's events only. Needs "
                "`events.read`. See /docs/events/.",
                parameters=[
                    OpenApiParameter(
                        "after", str, description="The next_cursor of the previous page; leave out to start."
                    ),
                    OpenApiParameter("limit", int, description=f"1 to {MAX_LIMIT}; default {DEFAULT_LIMIT}."),
                    OpenApiParameter(
                        "types",
                        str,
                        description="Comma-separated event types to keep (appointment.booked,consent.revoked); "
                        "the cursor still moves past the others.",
                    ),
                ],
                responses={
                    200: OpenApiResponse(EventFeedSerializer, description="A page of the feed, oldest first."),
                    **feed_errors,
                },
                examples=[OpenApiExample("A page", value=_feed_example(), response_only=True, status_codes=["200"])],
            )(EventFeedView.get),
        },
    )
    types = type(
        f"EventTypeList{suffix}View",
        (EventTypeListView,),
        {
            "api_version": version,
            "get": operation(
                version,
                "event_types_list",
                "events",
                summary="The event catalogue: every event type, its JSON schema and an example",
                description="Every event type the platform publishes: who receives it, the version of its "
                "payload, the JSON Schema of the whole message (for validation or code generation) and an "
                "example. Any valid token may read it; the same catalogue is at /docs/events/.",
                responses={
                    200: OpenApiResponse(EventTypeListSerializer, description="Every event type, in catalogue order."),
                    **problem_responses(401, 403, 405, 406, 429, 500),
                },
            )(EventTypeListView.get),
        },
    )
    return {"feed": feed, "types": types}
