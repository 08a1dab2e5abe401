"""Every write to an app's webhook subscriptions, and the sends a partner asks for: a test event, a
redelivery, a replay. Keyword-only, transactional, named ``<noun>_<verb>``; the portal and the API
(``api/workflows/webhook_api.py``) both call these, so the rules cannot differ between them.

``actor`` is the member acting in the portal (their role is checked: developers and above manage), or
``None`` for the app itself, calling the API with a token its layers have already authorized
(``webhooks.manage``).

Refusals:

- a field that is wrong raises Django's ``ValidationError`` by field; the ones a partner must tell
  apart carry a ``code`` (``URL_REFUSED``, ``UNKNOWN_EVENT_TYPE``, ``REPLAY_WINDOW_EXCEEDED``), which
  the API sends as its problem code;
- the tier's cap raises ``TierLimitReached``; a disabled subscription asked to send raises
  ``SubscriptionDisabled``; a role or a suspended organization, ``NotPermitted`` / ``InvalidState``.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from partners import event_services, events, net
from partners.event_models import EventCounter, WebhookDelivery, WebhookSubscription, new_webhook_secret
from partners.exceptions import InvalidState, TierLimitReached
from partners.models import App, Organization, OutboxEvent, Tier, User
from partners.services import _require_active, _require_member

# Codes on ValidationError that the API turns into problem codes of their own.
URL_REFUSED = "webhook_url_refused"
UNKNOWN_EVENT_TYPE = "unknown_event_type"
REPLAY_WINDOW_EXCEEDED = "replay_window_exceeded"

# Test events go to one subscription on request (audience "subscription"); nobody subscribes to them.
SUBSCRIBABLE_EVENT_TYPES = tuple(name for name, event_type in events.CATALOGUE.items() if event_type.feed)
TEST_EVENT_TYPE = "webhook.test"

DEFAULT_OVERLAP_HOURS = 24
MAX_OVERLAP_HOURS = 7 * 24
# Nothing older is kept (events and their deliveries are purged after it), so nothing older can be resent.
REPLAY_WINDOW = event_services.RETENTION
# One replay call queues at most this many; the answer says where to start the next call.
MAX_REPLAY = 10_000
MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 200
MAX_REASON_LENGTH = 300


class SubscriptionDisabled(InvalidState):
    """Sending was asked of a disabled subscription: enable it first."""

    code = "webhook_disabled"


@dataclass(frozen=True)
class Replay:
    """What ``webhook_replay`` queued. When ``complete`` is false, the cap was reached: replay again
    from ``next_since`` for the rest (events at that very moment may be sent twice, never skipped)."""

    queued: int
    since: datetime
    complete: bool
    next_since: datetime | None


# --- checks ------------------------------------------------------------------------------------


def _authorize(app: App, actor: User | None) -> None:
    if actor is not None:
        _require_member(actor, app.organization, permission="can_manage_apps")
    _require_active(app.organization)


def _refused(field: str, message: str, code: str) -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code)})


def _check_address(url: str, *, production: bool) -> None:
    """Raises ``net.UnsafeURL`` when the platform must not send to ``url``: the sender's own rule
    (``partners.net``), so what saves is what can be sent to. One place to switch it."""
    net.validate_webhook_url(url, production=production)


def _url_error(url: str, *, app: App) -> ValidationError | None:
    if not url:
        return ValidationError("Give the https URL of your endpoint.", code="required")
    if len(url) > MAX_URL_LENGTH:
        return ValidationError(f"A URL is at most {MAX_URL_LENGTH} characters.", code="max_length")
    try:
        URLValidator(schemes=["https", "http"])(url)
    except ValidationError:
        return ValidationError("Give an absolute URL: https://your-host/path.", code="invalid")
    try:
        _check_address(url, production=app.is_production)
    except net.UnsafeURL as exc:
        return ValidationError(f"This URL is refused: {exc}", code=URL_REFUSED)
    return None


def _event_types_error(event_types) -> tuple[list[str], ValidationError | None]:
    """The types in catalogue order, without repeats, or what is wrong with them."""
    if isinstance(event_types, str) or not isinstance(event_types, list | tuple):
        return [], ValidationError("Give a list of event types.", code="invalid")
    wanted = {str(name).strip() for name in event_types}
    if not wanted:
        return [], ValidationError("Choose at least one event type.", code="required")
    unknown = sorted(name for name in wanted if name not in events.CATALOGUE)
    not_subscribable = sorted(
        name for name in wanted if name in events.CATALOGUE and name not in SUBSCRIBABLE_EVENT_TYPES
    )
    messages = []
    if unknown:
        messages.append(f"No event type is called {', '.join(unknown)}.")
    if not_subscribable:
        messages.append(
            f"{', '.join(not_subscribable)} cannot be subscribed to: a test event is sent to one subscription "
            "when you ask for it."
        )
    if messages:
        messages.append(f"Choose from: {', '.join(SUBSCRIBABLE_EVENT_TYPES)}.")
        return [], ValidationError(" ".join(messages), code=UNKNOWN_EVENT_TYPE)
    return [name for name in SUBSCRIBABLE_EVENT_TYPES if name in wanted], None


def _description_error(description: str) -> ValidationError | None:
    if len(description) > MAX_DESCRIPTION_LENGTH:
        return ValidationError(f"A description is at most {MAX_DESCRIPTION_LENGTH} characters.", code="max_length")
    return None


def _cleaned(*, app: App, url: str | None, event_types, description: str | None) -> dict:
    """The given fields, cleaned; every field's error at once, so a partner fixes a request in one round.
    ``None`` means "not given" (and is not checked)."""
    errors, values = {}, {}
    if url is not None:
        url = url.strip()
        if (error := _url_error(url, app=app)) is not None:
            errors["url"] = error
        values["url"] = url
    if event_types is not None:
        values["event_types"], error = _event_types_error(event_types)
        if error is not None:
            errors["event_types"] = error
    if description is not None:
        description = description.strip()
        if (error := _description_error(description)) is not None:
            errors["description"] = error
        values["description"] = description
    if errors:
        raise ValidationError(errors)
    return values


def _require_room(organization: Organization, *, lock: bool) -> None:
    if lock:
        # Two creates at once both see room for one more; the organization's row makes them take turns.
        organization = Organization.objects.select_for_update().select_related("tier").get(pk=organization.pk)
    tier = organization.tier
    cap = tier.max_webhook_subscriptions
    used = WebhookSubscription.objects.filter(app__organization=organization).count()
    if used < cap:
        return
    bigger = Tier.objects.filter(rank__gt=tier.rank, max_webhook_subscriptions__gt=cap).order_by("rank").first()
    message = (
        f"The {tier.name} tier allows {cap} webhook subscription{'s' if cap != 1 else ''} per organization, "
        f"across all its apps and counting disabled ones, and {organization.name} has {used}. "
        "Delete one you no longer need"
    )
    if bigger is not None:
        message += (
            f", or move to the {bigger.name} tier, which allows {bigger.max_webhook_subscriptions}: request it "
            "on the Tiers page (/tiers/)."
        )
    else:
        message += "; for more, contact platform support."
    raise TierLimitReached(message)


def _require_enabled(subscription: WebhookSubscription) -> None:
    if not subscription.is_enabled:
        reason = f" ({subscription.disabled_reason})" if subscription.disabled_reason else ""
        raise SubscriptionDisabled(
            f"The webhook subscription {subscription.pk} is disabled{reason}, so nothing is sent to it. Enable it "
            "first."
        )


def _locked(subscription: WebhookSubscription) -> WebhookSubscription:
    return (
        WebhookSubscription.objects.select_for_update()
        .select_related("app", "app__organization")
        .get(pk=subscription.pk)
    )


def subscription_stop(*, subscription: WebhookSubscription, reason: str, now: datetime, keep=None) -> bool:
    """Disable the subscription and cancel the deliveries waiting for it (all but ``keep``, the one
    the sender is finishing); False when it was already disabled. Shared by an admin's or the app's
    own ``webhook_subscription_disable`` and the sender's automatic disabling (``partners.webhooks``)."""
    disabled = WebhookSubscription.objects.filter(pk=subscription.pk, is_enabled=True).update(
        is_enabled=False, disabled_reason=reason[:MAX_REASON_LENGTH], disabled_at=now, updated_at=now
    )
    if not disabled:
        return False
    waiting = WebhookDelivery.objects.filter(subscription_id=subscription.pk, status=WebhookDelivery.Status.PENDING)
    if keep is not None:
        waiting = waiting.exclude(pk=keep.pk)
    waiting.update(
        status=WebhookDelivery.Status.CANCELLED,
        completed_at=now,
        next_attempt_at=None,
        claimed_until=None,
        last_error="The subscription was disabled.",
    )
    return True


# --- subscriptions -----------------------------------------------------------------------------


@transaction.atomic
def webhook_subscription_create(
    *, app: App, url: str, event_types: list[str], description: str = "", actor: User | None
) -> WebhookSubscription:
    """Subscribe ``app`` to ``event_types`` at ``url``. The subscription's ``secret`` is the signing
    secret: show it to the caller now, it is never shown again."""
    _authorize(app, actor)
    _require_room(app.organization, lock=False)  # say so before the partner fixes every field in vain
    values = _cleaned(app=app, url=url, event_types=event_types, description=description or "")
    _require_room(app.organization, lock=True)
    return WebhookSubscription.objects.create(app=app, created_by=actor, **values)


@transaction.atomic
def webhook_subscription_update(
    *,
    subscription: WebhookSubscription,
    actor: User | None,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
) -> WebhookSubscription:
    """Change what is given (``None`` leaves a field as it is). A new URL is checked as on create and
    is where every later attempt goes, pending ones included."""
    _authorize(subscription.app, actor)
    subscription = _locked(subscription)
    values = _cleaned(app=subscription.app, url=url, event_types=event_types, description=description)
    if values:
        for field, value in values.items():
            setattr(subscription, field, value)
        subscription.save(update_fields=[*values, "updated_at"])
    return subscription


@transaction.atomic
def webhook_subscription_enable(*, subscription: WebhookSubscription, actor: User | None) -> WebhookSubscription:
    """Send to it again, from the next event on; what was cancelled while it was disabled can be replayed."""
    _authorize(subscription.app, actor)
    subscription = _locked(subscription)
    if not subscription.is_enabled:
        subscription.is_enabled = True
        subscription.disabled_reason = ""
        subscription.disabled_at = None
        subscription.save(update_fields=["is_enabled", "disabled_reason", "disabled_at", "updated_at"])
    return subscription


@transaction.atomic
def webhook_subscription_disable(
    *, subscription: WebhookSubscription, actor: User | None, reason: str = ""
) -> WebhookSubscription:
    """Stop sending to it: new events are not delivered and its pending deliveries are cancelled. The
    sender disables a failing endpoint through ``subscription_stop`` too, and tells the members."""
    _authorize(subscription.app, actor)
    subscription = _locked(subscription)
    if not subscription.is_enabled:
        return subscription
    reason = reason.strip()
    if not reason:
        reason = f"Disabled by {actor.email}." if actor is not None else "Disabled through the API."
    subscription_stop(subscription=subscription, reason=reason, now=timezone.now())
    subscription.refresh_from_db()
    return subscription


@transaction.atomic
def webhook_subscription_delete(*, subscription: WebhookSubscription, actor: User | None) -> None:
    """Delete it with its delivery log: its pending deliveries go with it (a worker holding one finds it
    gone and sends nothing), and so does its sequence counter."""
    _authorize(subscription.app, actor)
    subscription = _locked(subscription)
    EventCounter.objects.filter(key=f"subscription:{subscription.pk}").delete()
    subscription.delete()


@transaction.atomic
def webhook_subscription_rotate_secret(
    *, subscription: WebhookSubscription, actor: User | None, overlap_hours: int = DEFAULT_OVERLAP_HOURS
) -> WebhookSubscription:
    """A new signing secret, in the returned subscription's ``secret``: show it now, it is never shown
    again. For ``overlap_hours`` (0 to 7 days) every message is signed with the old secret too
    (``previous_secret`` until ``previous_secret_expires_at``), so the receiver can switch when it is
    ready; with 0 the old secret stops at once. Only one previous secret is kept: rotating again during
    an overlap ends the older one's."""
    _authorize(subscription.app, actor)
    if (
        isinstance(overlap_hours, bool)
        or not isinstance(overlap_hours, int)
        or not 0 <= overlap_hours <= MAX_OVERLAP_HOURS
    ):
        raise ValidationError(
            {
                "overlap_hours": ValidationError(
                    f"Give a whole number of hours from 0 to {MAX_OVERLAP_HOURS}.", code="invalid"
                )
            }
        )
    subscription = _locked(subscription)
    if overlap_hours:
        subscription.previous_secret = subscription.secret
        subscription.previous_secret_expires_at = timezone.now() + timedelta(hours=overlap_hours)
    else:
        subscription.previous_secret = ""
        subscription.previous_secret_expires_at = None
    subscription.secret = new_webhook_secret()
    subscription.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return subscription


# --- sends on request --------------------------------------------------------------------------


@transaction.atomic
def webhook_test_send(*, subscription: WebhookSubscription, actor: User | None) -> WebhookDelivery:
    """Send a ``webhook.test`` event to this subscription only: never to the feed or to other
    subscriptions (the event is written already dispatched, so no fan-out picks it up). It carries no
    sequence number, so the subscription's stream of real events stays without gaps."""
    _authorize(subscription.app, actor)
    subscription = _locked(subscription)
    _require_enabled(subscription)
    app = subscription.app
    event = OutboxEvent.objects.create(
        type=TEST_EVENT_TYPE,
        payload={
            "subscription_id": subscription.pk,
            "message": "Test event from the developer portal"
            if actor is not None
            else "Test event requested through the API",
        },
        app=app,
        organization=app.organization,
        version=events.get(TEST_EVENT_TYPE).version,
        dispatched_at=timezone.now(),
    )
    (delivery,) = event_services.deliveries_create(
        event=event, subscriptions=[subscription], reason=WebhookDelivery.Reason.TEST, sequences={}
    )
    return delivery


@transaction.atomic
def webhook_redeliver(*, delivery: WebhookDelivery, actor: User | None) -> WebhookDelivery:
    """Send a delivery's event again, as a new delivery with the same event id and sequence number
    (a receiver that already has it recognises it by its id). Any delivery may be redelivered, even one
    still being retried: the receiver deduplicates by id."""
    subscription = delivery.subscription
    _authorize(subscription.app, actor)
    subscription = _locked(subscription)
    _require_enabled(subscription)
    (again,) = event_services.deliveries_create(
        event=delivery.event,
        subscriptions=[subscription],
        reason=WebhookDelivery.Reason.REDELIVERY,
        sequences={subscription.pk: delivery.sequence},
    )
    return again


def _replay_since_error(since: datetime, now: datetime) -> ValidationError | None:
    if timezone.is_naive(since):
        return ValidationError("Give the time with its UTC offset, e.g. 2026-11-20T09:00:00Z.", code="invalid")
    if since > now:
        return ValidationError(
            "Give a moment in the past: there is nothing to replay after now.", code=REPLAY_WINDOW_EXCEEDED
        )
    if since < now - REPLAY_WINDOW:
        return ValidationError(
            f"Events are kept for {REPLAY_WINDOW.days} days, so a replay starts at most {REPLAY_WINDOW.days} days ago "
            f"(after {(now - REPLAY_WINDOW).isoformat(timespec='seconds')}).",
            code=REPLAY_WINDOW_EXCEEDED,
        )
    return None


@transaction.atomic
def webhook_replay(
    *, subscription: WebhookSubscription, since: datetime, actor: User | None, limit: int = MAX_REPLAY
) -> Replay:
    """Send again, in sequence order and with their original sequence numbers, every event this
    subscription was sent (as an event, not a test) that happened at or after ``since``, within the
    last 30 days: to recover after an outage or a disabled period. At most ``limit`` per call."""
    now = timezone.now()
    if (error := _replay_since_error(since, now)) is not None:
        raise ValidationError({"since": error})
    _authorize(subscription.app, actor)
    subscription = _locked(subscription)
    _require_enabled(subscription)
    originals = WebhookDelivery.objects.filter(
        subscription=subscription, reason=WebhookDelivery.Reason.EVENT, event__occurred_at__gte=since
    ).order_by("sequence", "id")
    chosen = list(originals.values_list("event_id", "sequence")[: limit + 1])
    complete = len(chosen) <= limit
    chosen = chosen[:limit]
    next_since = None
    if not complete:
        # The earliest of what is left, not the last one sent: sequence and time order can differ by a
        # little (events are numbered when fanned out), and a continuation must never skip one.
        next_since = originals.filter(sequence__gt=chosen[-1][1]).aggregate(at=Min("event__occurred_at"))["at"]
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                subscription=subscription,
                event_id=event_id,
                sequence=sequence,
                reason=WebhookDelivery.Reason.REPLAY,
                next_attempt_at=now,
            )
            for event_id, sequence in chosen
        ],
        batch_size=1000,
    )
    if deliveries:
        ids = [delivery.pk for delivery in deliveries]  # created in sequence order, so queued in it
        # deliveries_create makes one event's deliveries; this is one subscription's many events.
        transaction.on_commit(lambda: event_services.queue_deliveries(ids))
    return Replay(queued=len(deliveries), since=since, complete=complete, next_since=next_since)
