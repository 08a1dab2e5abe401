"""``/api/<version>/webhooks``: an app manages its own webhook subscriptions, reads their delivery log,
and asks for a test event, a redelivery or a replay.

The app is the token's app; every subscription is looked up through it, so another app's id is not
found (404), never forbidden. Any token of the app with ``webhooks.manage`` may manage them except one
issued to a patient's account: a subscription receives events about every patient who consented to the
app, which a token acting for one patient must not redirect (403 ``forbidden``).

The rules are ``partners.webhook_services``'s (the portal calls the same functions); this module maps
their refusals onto problem codes (``SERVICE_CODES``). v1 and v2 serve the same shape; the views are
bound to their version (``versioned_views``) as the other workflow endpoints are.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings

from api.exceptions import flatten_errors
from api.idempotency import HEADER as IDEMPOTENCY_HEADER
from api.idempotency import idempotent
from api.permissions import API_PERMISSION_CLASSES, LayerPermission, auth_context
from api.problems import Problem
from api.views import ProtectedAPIView, problem_responses
from api.workflows.common import (
    IDEMPOTENCY_PARAMETER,
    NO_STORE,
    PAGE_PARAMETERS,
    READ_ERRORS,
    WRITE_ERRORS,
    created,
    operation,
    page_serializer,
    paginate,
    validated,
)
from partners import event_services, webhook_selectors, webhook_services
from partners.event_models import WebhookDelivery
from partners.exceptions import InvalidState, NotPermitted, TierLimitReached

SCOPE = "webhooks.manage"
TAG = "webhooks"

# The problem code each coded refusal of the services is sent as.
SERVICE_CODES = (
    webhook_services.URL_REFUSED,
    webhook_services.UNKNOWN_EVENT_TYPE,
    webhook_services.REPLAY_WINDOW_EXCEEDED,
)

OPTIONAL_IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Optional here: a unique value per operation (a UUID); a retry with the same key and body returns "
    "the first result. Keys expire after 24 hours.",
)
SUBSCRIPTION_ID = OpenApiParameter(
    "subscription_id", str, OpenApiParameter.PATH, description="The subscription's id (whsub_...)."
)
DELIVERY_ID = OpenApiParameter("delivery_id", int, OpenApiParameter.PATH, description="The delivery's id.")

EXAMPLE_ID = "whsub_5f0c1d2e3a4b5c6d7e8f9a0b"
EXAMPLE_SUBSCRIPTION = {
    "id": EXAMPLE_ID,
    "url": "https://hooks.example.com/marketplace",
    "event_types": ["appointment.booked", "appointment.cancelled", "consent.revoked"],
    "description": "Scheduling service",
    "enabled": True,
    "disabled_reason": None,
    "disabled_at": None,
    "previous_secret_expires_at": None,
    "created_at": "2026-11-25T09:30:00Z",
    "updated_at": "2026-11-25T09:30:00Z",
}
EXAMPLE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - made up, for the docs
EXAMPLE_DELIVERY = {
    "id": 48213,
    "event_id": "evt_6f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "event_type": "appointment.booked",
    "sequence": 42,
    "reason": "event",
    "status": "succeeded",
    "next_attempt_at": None,
    "last_status_code": 200,
    "last_error": "",
    "created_at": "2026-11-25T09:30:01Z",
    "completed_at": "2026-11-25T09:30:07Z",
    "attempts": [
        {
            "number": 1,
            "started_at": "2026-11-25T09:30:01Z",
            "duration_ms": 10012,
            "status_code": None,
            "response_excerpt": "",
            "error": "Timed out after 10 s.",
            "succeeded": False,
        },
        {
            "number": 2,
            "started_at": "2026-11-25T09:30:06Z",
            "duration_ms": 184,
            "status_code": 200,
            "response_excerpt": '{"ok":true}',
            "error": "",
            "succeeded": True,
        },
    ],
}


# --- serializers ------------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "enum": list(webhook_services.SUBSCRIBABLE_EVENT_TYPES)})
class EventTypeField(serializers.CharField):
    """An event type, documented as the catalogue's list but read as any string: an unknown one is the
    service's to refuse, with its own code (422 unknown_event_type) rather than a bare validation error."""


_EVENT_TYPES_HELP = (
    "The event types to send, from the catalogue (GET /api/v1/event-types): "
    f"{', '.join(webhook_services.SUBSCRIBABLE_EVENT_TYPES)}. webhook.test is not subscribed to: it is sent on "
    "request (POST .../test)."
)


class WebhookCreateSerializer(serializers.Serializer):
    url = serializers.CharField(
        max_length=webhook_services.MAX_URL_LENGTH,
        help_text="Your endpoint: https (required for production apps), on a public address. Loopback, private, "
        "link-local and cloud-metadata addresses are refused (422 webhook_url_refused).",
    )
    event_types = serializers.ListField(child=EventTypeField(max_length=60), max_length=50, help_text=_EVENT_TYPES_HELP)
    description = serializers.CharField(
        max_length=webhook_services.MAX_DESCRIPTION_LENGTH,
        required=False,
        allow_blank=True,
        default="",
        help_text="For your own reference: what receives these events.",
    )


class WebhookUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(
        max_length=webhook_services.MAX_URL_LENGTH,
        required=False,
        help_text="A new endpoint, checked as on create; later attempts of pending deliveries go there too.",
    )
    event_types = serializers.ListField(
        child=EventTypeField(max_length=60), max_length=50, required=False, help_text=_EVENT_TYPES_HELP
    )
    description = serializers.CharField(
        max_length=webhook_services.MAX_DESCRIPTION_LENGTH, required=False, allow_blank=True
    )

    def validate(self, data):
        if not data:
            raise serializers.ValidationError("Give at least one of url, event_types and description.")
        return data


class WebhookRotateSerializer(serializers.Serializer):
    overlap_hours = serializers.IntegerField(
        min_value=0,
        max_value=webhook_services.MAX_OVERLAP_HOURS,
        required=False,
        default=webhook_services.DEFAULT_OVERLAP_HOURS,
        help_text="For how long every message is signed with the old secret too, so you can deploy the new one "
        f"without losing messages: 0 (the old one stops at once) to {webhook_services.MAX_OVERLAP_HOURS}; "
        f"default {webhook_services.DEFAULT_OVERLAP_HOURS}.",
    )


class WebhookDisableSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=webhook_services.MAX_REASON_LENGTH,
        required=False,
        allow_blank=True,
        default="",
        help_text="Why, for whoever looks at it later.",
    )


class WebhookEmptySerializer(serializers.Serializer):
    """No fields: send ``{}`` or no body."""


class WebhookReplaySerializer(serializers.Serializer):
    since = serializers.DateTimeField(
        help_text="Resend every event sent to this subscription that happened at or after this moment (RFC 3339, "
        "with a UTC offset): in the last 30 days, not in the future."
    )


class WebhookSubscriptionSerializer(serializers.Serializer):
    """A subscription as every version returns it: never with its secret."""

    id = serializers.CharField(help_text="whsub_...")
    url = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField(allow_blank=True)
    enabled = serializers.BooleanField(source="is_enabled", help_text="Whether events are sent to it.")
    disabled_reason = serializers.SerializerMethodField(
        help_text="Why it is disabled (by you, or by the platform after repeated failures); null while enabled."
    )
    disabled_at = serializers.DateTimeField(allow_null=True)
    previous_secret_expires_at = serializers.SerializerMethodField(
        help_text="After a rotation with an overlap: until when every message is signed with the previous secret "
        "too; null when only the current secret is used."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_disabled_reason(self, subscription) -> str | None:
        return None if subscription.is_enabled else subscription.disabled_reason

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_previous_secret_expires_at(self, subscription):
        expires = subscription.previous_secret_expires_at
        if subscription.previous_secret and expires is not None and expires > timezone.now():
            return serializers.DateTimeField().to_representation(expires)
        return None


class WebhookSubscriptionCreatedSerializer(WebhookSubscriptionSerializer):
    """The subscription as its creation returns it: the only response that carries its secret."""

    secret = serializers.CharField(
        help_text="The signing secret (whsec_...). Store it now: it is in this response only. Rotate it to get a "
        "new one."
    )


class WebhookSecretSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The subscription's id.")
    secret = serializers.CharField(help_text="The new signing secret. Store it now: it is in this response only.")
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True,
        help_text="Until when messages are also signed with the old secret; null when it stopped at once.",
    )


class WebhookAttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="1 for the first attempt.")
    started_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField(help_text="From connecting to the end of your answer (or the error).")
    status_code = serializers.IntegerField(allow_null=True, help_text="Your HTTP status; null when none came.")
    response_excerpt = serializers.CharField(allow_blank=True, help_text="The start of your response's body.")
    error = serializers.CharField(allow_blank=True, help_text="What went wrong when no status came (timeout, TLS...).")
    succeeded = serializers.BooleanField()


class WebhookDeliverySerializer(serializers.Serializer):
    """One event sent (or being sent) to one subscription, with every attempt."""

    id = serializers.IntegerField()
    event_id = serializers.SerializerMethodField(help_text="The event's id (evt_...), its webhook-id header.")
    event_type = serializers.CharField(source="event.type")
    sequence = serializers.IntegerField(
        allow_null=True,
        help_text="The event's number in this subscription's stream (kept on redelivery and replay); null for "
        "test events.",
    )
    reason = serializers.ChoiceField(
        choices=WebhookDelivery.Reason.values,
        help_text="event (it happened), redelivery and replay (you asked for it again), test (a test event).",
    )
    status = serializers.ChoiceField(
        choices=WebhookDelivery.Status.values,
        help_text="pending (waiting for its next attempt), succeeded, failed (retries used up, or 410 Gone), "
        "cancelled (the subscription was disabled first).",
    )
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    attempts = WebhookAttemptSerializer(source="attempt_log", many=True)

    def get_event_id(self, delivery) -> str:
        return event_services.event_id(delivery.event)


class WebhookReplayResultSerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="How many events were queued to be sent again.")
    since = serializers.DateTimeField()
    complete = serializers.BooleanField(
        help_text="false when one call's cap was reached: replay again from next_since for the rest."
    )
    next_since = serializers.DateTimeField(
        allow_null=True, help_text="Where the next replay starts; null when complete."
    )


# --- views --------------------------------------------------------------------------------------------


class NotForPatientTokens(LayerPermission):
    """Policy layer: webhooks are the app's own configuration, not something done for a patient."""

    def refusal(self, request, view, context):
        if not (context.patient_id or getattr(context.user, "fhir_patient_id", "")):
            return None
        return Problem(
            "forbidden",
            "This access token was issued to a patient's account, and a patient's token cannot manage the app's "
            "webhook subscriptions: they receive events about every patient who consented to the app.",
            fix="Manage webhooks with a token of your backend (client credentials with webhooks.manage), or in "
            "the developer portal.",
        )


def service_problem(exc: Exception) -> Exception:
    """What a refusal of ``partners.webhook_services`` is answered with."""
    if isinstance(exc, DjangoValidationError):
        items = exc.error_dict.items() if hasattr(exc, "error_dict") else [(None, exc.error_list)]
        detail, codes = {}, []
        for field, errors in items:
            key = api_settings.NON_FIELD_ERRORS_KEY if field in (None, "__all__") else field
            for error in errors:
                for message in error.messages:
                    detail.setdefault(key, []).append(ErrorDetail(message, code=error.code or "invalid"))
                codes.append(error.code)
        code = next((code for code in SERVICE_CODES if code in codes), None)
        if code is None:
            return DRFValidationError(detail)
        found = flatten_errors(detail)
        return Problem(code, " ".join(e["message"] for e in found if e["code"] == code), errors=found)
    if isinstance(exc, TierLimitReached):
        return Problem("webhook_limit_reached", str(exc))
    if isinstance(exc, webhook_services.SubscriptionDisabled):
        return Problem("webhook_disabled", str(exc))
    if isinstance(exc, NotPermitted):
        return Problem("forbidden", str(exc))
    return Problem("client_error", str(exc), status=409)


def call(service, **kwargs):
    """``service(**kwargs, actor=None)``, its refusals raised as problems: the app acts for itself."""
    try:
        return service(**kwargs, actor=None)
    except (DjangoValidationError, NotPermitted, InvalidState) as exc:
        raise service_problem(exc) from exc


class WebhookView(ProtectedAPIView):
    """Shared by the webhook endpoints of one version (``api_version``, given by ``versioned_views``)."""

    api_version = "v1"
    required_scopes = [SCOPE]
    permission_classes = (*API_PERMISSION_CLASSES, NotForPatientTokens)

    def subscription_or_404(self, request, subscription_id: str):
        subscription = webhook_selectors.subscription_of(app=auth_context(request).app, subscription_id=subscription_id)
        if subscription is None:
            raise Problem("not_found", f"This app has no webhook subscription {subscription_id}.")
        return subscription


def _subscription(subscription) -> dict:
    return WebhookSubscriptionSerializer(subscription).data


def _delivery(delivery) -> dict:
    return WebhookDeliverySerializer(delivery).data


class WebhookCollectionView(WebhookView):
    def get(self, request):
        subscriptions = webhook_selectors.subscriptions_of(auth_context(request).app)
        return paginate(
            request, subscriptions, time_field="created_at", kind="webhook-subscriptions", serialize=_subscription
        )

    def post(self, request):
        app = auth_context(request).app
        wanted = validated(WebhookCreateSerializer, request.data)

        def create():
            subscription = call(webhook_services.webhook_subscription_create, app=app, **wanted)
            return created(request, subscription.pk, WebhookSubscriptionCreatedSerializer(subscription).data)

        return idempotent(request, create)


class WebhookDetailView(WebhookView):
    def get(self, request, subscription_id: str):
        return Response(_subscription(self.subscription_or_404(request, subscription_id)), headers=NO_STORE)

    def patch(self, request, subscription_id: str):
        changes = validated(WebhookUpdateSerializer, request.data)
        subscription = self.subscription_or_404(request, subscription_id)

        def update():
            changed = call(webhook_services.webhook_subscription_update, subscription=subscription, **changes)
            return Response(_subscription(changed), headers=NO_STORE)

        return idempotent(request, update, required=False)

    def delete(self, request, subscription_id: str):
        subscription = self.subscription_or_404(request, subscription_id)

        def delete():
            call(webhook_services.webhook_subscription_delete, subscription=subscription)
            return Response(status=204, headers=NO_STORE)

        return idempotent(request, delete, required=False)


class WebhookRotateView(WebhookView):
    def post(self, request, subscription_id: str):
        wanted = validated(WebhookRotateSerializer, request.data)
        subscription = self.subscription_or_404(request, subscription_id)

        def rotate():
            rotated = call(
                webhook_services.webhook_subscription_rotate_secret,
                subscription=subscription,
                overlap_hours=wanted["overlap_hours"],
            )
            body = {
                "id": rotated.pk,
                "secret": rotated.secret,
                "previous_secret_expires_at": rotated.previous_secret_expires_at,
            }
            return Response(WebhookSecretSerializer(body).data, headers=NO_STORE)

        return idempotent(request, rotate)


class WebhookEnableView(WebhookView):
    def post(self, request, subscription_id: str):
        validated(WebhookEmptySerializer, request.data)
        subscription = self.subscription_or_404(request, subscription_id)

        def enable():
            enabled = call(webhook_services.webhook_subscription_enable, subscription=subscription)
            return Response(_subscription(enabled), headers=NO_STORE)

        return idempotent(request, enable)


class WebhookDisableView(WebhookView):
    def post(self, request, subscription_id: str):
        wanted = validated(WebhookDisableSerializer, request.data)
        subscription = self.subscription_or_404(request, subscription_id)

        def disable():
            disabled = call(
                webhook_services.webhook_subscription_disable, subscription=subscription, reason=wanted["reason"]
            )
            return Response(_subscription(disabled), headers=NO_STORE)

        return idempotent(request, disable)


class WebhookTestView(WebhookView):
    def post(self, request, subscription_id: str):
        validated(WebhookEmptySerializer, request.data)
        subscription = self.subscription_or_404(request, subscription_id)

        def send():
            delivery = call(webhook_services.webhook_test_send, subscription=subscription)
            return Response(_delivery(delivery), status=202, headers=NO_STORE)

        return idempotent(request, send)


class WebhookDeliveriesView(WebhookView):
    def get(self, request, subscription_id: str):
        subscription = self.subscription_or_404(request, subscription_id)
        return paginate(
            request,
            webhook_selectors.deliveries_of(subscription),
            time_field="created_at",
            kind=f"webhook-deliveries:{subscription.pk}",
            serialize=_delivery,
        )


class WebhookRedeliverView(WebhookView):
    def post(self, request, subscription_id: str, delivery_id: int):
        validated(WebhookEmptySerializer, request.data)
        subscription = self.subscription_or_404(request, subscription_id)
        delivery = webhook_selectors.delivery_of(subscription=subscription, delivery_id=delivery_id)
        if delivery is None:
            raise Problem("not_found", f"The webhook subscription {subscription_id} has no delivery {delivery_id}.")

        def redeliver():
            again = call(webhook_services.webhook_redeliver, delivery=delivery)
            return Response(_delivery(again), status=202, headers=NO_STORE)

        return idempotent(request, redeliver)


class WebhookReplayView(WebhookView):
    def post(self, request, subscription_id: str):
        wanted = validated(WebhookReplaySerializer, request.data)
        subscription = self.subscription_or_404(request, subscription_id)

        def replay():
            result = call(webhook_services.webhook_replay, subscription=subscription, since=wanted["since"])
            body = {
                "queued": result.queued,
                "since": result.since,
                "complete": result.complete,
                "next_since": result.next_since,
            }
            return Response(WebhookReplayResultSerializer(body).data, status=202, headers=NO_STORE)

        return idempotent(request, replay)


# --- OpenAPI, per version -------------------------------------------------------------------------------

_NEEDS = (
    f"Needs `{SCOPE}` and a token that is not a patient's (403 forbidden); another app's subscription is not "
    "found (404)."
)


def _bound(name: str, base: type, version: str, **handlers) -> type:
    return type(f"{name}{version.upper()}View", (base,), {"api_version": version, **handlers})


def versioned_views(version: str) -> dict:
    """The webhook views of ``version``, each with its OpenAPI description, for the URL conf."""

    def op(name: str, **kwargs):
        return operation(version, name, TAG, **kwargs)

    list_serializer = page_serializer(f"WebhookSubscriptionList{version.upper()}", WebhookSubscriptionSerializer)
    deliveries_serializer = page_serializer(f"WebhookDeliveryList{version.upper()}", WebhookDeliverySerializer)
    delivery_accepted = OpenApiResponse(
        WebhookDeliverySerializer, description="Queued: the delivery is pending; follow it in the delivery log."
    )
    collection = _bound(
        "WebhookCollection",
        WebhookCollectionView,
        version,
        get=op(
            "webhooks_list",
            summary="The app's webhook subscriptions",
            description=f"Newest first, paged by cursor (?limit=1..100, default 20). Never with secrets. {_NEEDS}",
            parameters=PAGE_PARAMETERS,
            responses={200: list_serializer, **problem_responses(*READ_ERRORS)},
        )(WebhookCollectionView.get),
        post=op(
            "webhooks_create",
            summary="Subscribe an endpoint to events",
            description="Events of the chosen types are POSTed to `url`, signed with the subscription's secret "
            "(Standard Webhooks), which this response carries and no other does: store it. The URL must be https "
            "for a production app and on a public address (422 webhook_url_refused); unknown event types are 422 "
            "unknown_event_type; the organization's tier caps its subscriptions across all its apps (409 "
            f"webhook_limit_reached). Needs an Idempotency-Key. {_NEEDS} See /docs/webhooks/.",
            parameters=[IDEMPOTENCY_PARAMETER],
            request=WebhookCreateSerializer,
            examples=[
                OpenApiExample(
                    "Subscribe",
                    request_only=True,
                    value={
                        "url": EXAMPLE_SUBSCRIPTION["url"],
                        "event_types": EXAMPLE_SUBSCRIPTION["event_types"],
                        "description": EXAMPLE_SUBSCRIPTION["description"],
                    },
                ),
                OpenApiExample(
                    "Subscribed",
                    response_only=True,
                    status_codes=["201"],
                    value={**EXAMPLE_SUBSCRIPTION, "secret": EXAMPLE_SECRET},
                ),
            ],
            responses={
                201: OpenApiResponse(
                    WebhookSubscriptionCreatedSerializer, description="Subscribed; Location names the subscription."
                ),
                **problem_responses(*WRITE_ERRORS),
            },
        )(WebhookCollectionView.post),
    )
    detail = _bound(
        "WebhookDetail",
        WebhookDetailView,
        version,
        get=op(
            "webhooks_read",
            summary="One webhook subscription",
            description=f"Without its secret. {_NEEDS}",
            parameters=[SUBSCRIPTION_ID],
            examples=[OpenApiExample("A subscription", response_only=True, value=EXAMPLE_SUBSCRIPTION)],
            responses={200: WebhookSubscriptionSerializer, **problem_responses(*READ_ERRORS)},
        )(WebhookDetailView.get),
        patch=op(
            "webhooks_update",
            summary="Change a subscription's URL, event types or description",
            description="Only the fields given change. A new URL is checked as on create (422 webhook_url_refused) "
            f"and receives the next attempts of pending deliveries too. An Idempotency-Key is optional. {_NEEDS}",
            parameters=[SUBSCRIPTION_ID, OPTIONAL_IDEMPOTENCY_PARAMETER],
            request=WebhookUpdateSerializer,
            responses={200: WebhookSubscriptionSerializer, **problem_responses(*WRITE_ERRORS)},
        )(WebhookDetailView.patch),
        delete=op(
            "webhooks_delete",
            summary="Delete a subscription",
            description="Nothing more is sent to it, pending deliveries included, and its delivery log goes with it. "
            f"An Idempotency-Key is optional. {_NEEDS}",
            parameters=[SUBSCRIPTION_ID, OPTIONAL_IDEMPOTENCY_PARAMETER],
            responses={204: OpenApiResponse(description="Deleted."), **problem_responses(*WRITE_ERRORS)},
        )(WebhookDetailView.delete),
    )
    rotate = _bound(
        "WebhookRotate",
        WebhookRotateView,
        version,
        post=op(
            "webhooks_rotate_secret",
            summary="Rotate a subscription's signing secret",
            description="Returns the new secret, once. For `overlap_hours` (default 24, at most 168) every message "
            "carries a signature with the old secret too, so your endpoint keeps verifying while you deploy the "
            "new one; `previous_secret_expires_at` says when the old one stops. With 0 it stops at once. Rotating "
            f"again during an overlap ends the older secret's. Needs an Idempotency-Key. {_NEEDS}",
            parameters=[SUBSCRIPTION_ID, IDEMPOTENCY_PARAMETER],
            request=WebhookRotateSerializer,
            examples=[
                OpenApiExample(
                    "Rotated",
                    response_only=True,
                    value={
                        "id": EXAMPLE_ID,
                        "secret": EXAMPLE_SECRET,
                        "previous_secret_expires_at": "2026-11-26T09:30:00Z",
                    },
                )
            ],
            responses={200: WebhookSecretSerializer, **problem_responses(*WRITE_ERRORS)},
        )(WebhookRotateView.post),
    )
    enable = _bound(
        "WebhookEnable",
        WebhookEnableView,
        version,
        post=op(
            "webhooks_enable",
            summary="Enable a subscription",
            description="Events are sent to it again from now on; replay what it missed while disabled "
            f"(POST .../replay). Enabling an enabled one changes nothing. Needs an Idempotency-Key. {_NEEDS}",
            parameters=[SUBSCRIPTION_ID, IDEMPOTENCY_PARAMETER],
            request=WebhookEmptySerializer,
            responses={200: WebhookSubscriptionSerializer, **problem_responses(*WRITE_ERRORS)},
        )(WebhookEnableView.post),
    )
    disable = _bound(
        "WebhookDisable",
        WebhookDisableView,
        version,
        post=op(
            "webhooks_disable",
            summary="Disable a subscription",
            description="Nothing is sent to it until it is enabled again, and its pending deliveries are cancelled. "
            "The platform disables a subscription itself when its endpoint keeps failing (disabled_reason says "
            f"so). Needs an Idempotency-Key. {_NEEDS}",
            parameters=[SUBSCRIPTION_ID, IDEMPOTENCY_PARAMETER],
            request=WebhookDisableSerializer,
            responses={200: WebhookSubscriptionSerializer, **problem_responses(*WRITE_ERRORS)},
        )(WebhookDisableView.post),
    )
    test = _bound(
        "WebhookTest",
        WebhookTestView,
        version,
        post=op(
            "webhooks_test",
            summary="Send a test event",
            description="Sends a `webhook.test` event to this subscription only (never to the event feed), signed "
            "like any other and without a sequence number: to check that your endpoint verifies signatures and "
            f"answers 2xx. 409 webhook_disabled when disabled. Needs an Idempotency-Key. {_NEEDS}",
            parameters=[SUBSCRIPTION_ID, IDEMPOTENCY_PARAMETER],
            request=WebhookEmptySerializer,
            responses={202: delivery_accepted, **problem_responses(*WRITE_ERRORS)},
        )(WebhookTestView.post),
    )
    deliveries = _bound(
        "WebhookDeliveries",
        WebhookDeliveriesView,
        version,
        get=op(
            "webhooks_deliveries_list",
            summary="A subscription's delivery log",
            description="Newest first, paged by cursor (?limit=1..100, default 20): each delivery with every "
            "attempt (your status code, how long it took, the start of your response, or the error). Kept 30 "
            f"days. {_NEEDS}",
            parameters=[SUBSCRIPTION_ID, *PAGE_PARAMETERS],
            examples=[
                OpenApiExample(
                    "A page",
                    response_only=True,
                    status_codes=["200"],
                    value={"data": [EXAMPLE_DELIVERY], "next_cursor": None, "next": None},
                )
            ],
            responses={200: deliveries_serializer, **problem_responses(*READ_ERRORS)},
        )(WebhookDeliveriesView.get),
    )
    redeliver = _bound(
        "WebhookRedeliver",
        WebhookRedeliverView,
        version,
        post=op(
            "webhooks_redeliver",
            summary="Send one delivery's event again",
            description="A new delivery of the same event: the same event id (webhook-id) and sequence number, so "
            "an endpoint that already has it can tell. 409 webhook_disabled when the subscription is disabled. "
            f"Needs an Idempotency-Key. {_NEEDS}",
            parameters=[SUBSCRIPTION_ID, DELIVERY_ID, IDEMPOTENCY_PARAMETER],
            request=WebhookEmptySerializer,
            responses={202: delivery_accepted, **problem_responses(*WRITE_ERRORS)},
        )(WebhookRedeliverView.post),
    )
    replay = _bound(
        "WebhookReplay",
        WebhookReplayView,
        version,
        post=op(
            "webhooks_replay",
            summary="Resend every event since a moment",
            description="Queues again, in sequence order and with their original sequence numbers, every event this "
            "subscription was sent that happened at or after `since`: to recover after an outage. `since` is "
            "within the last 30 days and not in the future (422 replay_window_exceeded). One call queues at "
            f"most {webhook_services.MAX_REPLAY:,}; when `complete` is false, replay again from `next_since`. "
            "Test events are not replayed. 409 webhook_disabled when the subscription is disabled. Needs an "
            f"Idempotency-Key: a retry with the same key queues nothing more. {_NEEDS}",
            parameters=[SUBSCRIPTION_ID, IDEMPOTENCY_PARAMETER],
            request=WebhookReplaySerializer,
            examples=[
                OpenApiExample("Replay", request_only=True, value={"since": "2026-11-24T00:00:00Z"}),
                OpenApiExample(
                    "Queued",
                    response_only=True,
                    status_codes=["202"],
                    value={"queued": 318, "since": "2026-11-24T00:00:00Z", "complete": True, "next_since": None},
                ),
            ],
            responses={
                202: OpenApiResponse(WebhookReplayResultSerializer, description="Queued."),
                **problem_responses(*WRITE_ERRORS),
            },
        )(WebhookReplayView.post),
    )
    return {
        "collection": collection,
        "detail": detail,
        "rotate": rotate,
        "enable": enable,
        "disable": disable,
        "test": test,
        "deliveries": deliveries,
        "redeliver": redeliver,
        "replay": replay,
    }
