"""Webhook delivery, following the Standard Webhooks specification (https://www.standardwebhooks.com/).

Each message carries ``webhook-id`` (the event's id: the same on every retry, redelivery and replay,
so a receiver can drop duplicates), ``webhook-timestamp`` (seconds, when the attempt was made) and
``webhook-signature`` (``v1,`` and the base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}`` under the
subscription's secret; two of them, space-separated, while a rotated-out secret is still honoured).

At least once, never lost, rarely twice:

- ``partners.event_services`` queues a ``deliver_webhook`` task per delivery once it commits; the
  task (``acks_late``) calls ``delivery_attempt``.
- ``delivery_attempt`` claims the delivery for ``WEBHOOK_CLAIM_SECONDS`` with one conditional
  UPDATE, so two workers holding the same message (a redelivered task, a duplicate from the sweep)
  never send it at once; the loser returns ``"skipped"``. No transaction is open during the HTTP
  call: the claim, then the outcome, are each their own short transaction.
- ``deliveries_due_queue`` (beat, every 5 s) queues every delivery that is due and not held: retries
  whose wait was too long to leave in the broker, and deliveries whose worker died mid-attempt.
  This sweep, not the broker, is what makes a killed worker's delivery go out after a restart: the
  broker's copy of an unacknowledged task only comes back after the Redis visibility timeout (26 h,
  longer than any retry wait), and a message can be lost outright. Once the dead worker's lease
  passes, the next sweep hands the delivery to a live worker. The attempt it was in stays in the
  log as interrupted and counts towards the schedule (it may have reached the receiver).

Retries follow the specification's schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h)
with ±10 % jitter, stretched to ``Retry-After`` on 429 and 503. A receiver answering 410 Gone, or
one still failing once the schedule is used up, has its subscription disabled and the organization's
members told (email and a portal notice).

Connections go to the address ``partners.net.resolve_outbound`` checked, never to a second lookup
of the name (no DNS rebinding), with the original Host header, TLS SNI and certificate check against
the name. Redirects are not followed: a 3xx is a failed attempt.
"""

import base64
import hashlib
import hmac
import io
import json
import logging
import random
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.timesince import timesince
from urllib3.util import ssl_match_hostname

from marketplace import metrics
from partners import event_services
from partners.event_models import DeliveryAttempt, WebhookDelivery, WebhookSubscription
from partners.net import Target, Unresolvable, UnsafeURL, resolve_outbound

logger = logging.getLogger(__name__)

# Standard Webhooks' schedule: attempt n (n >= 1) failing waits RETRY_SCHEDULE[n - 1] for the next.
RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
JITTER = 0.1
MAX_WAIT = 86400  # a Retry-After beyond a day is read as a day
# A wait up to this long goes to the broker with an ETA (the worker keeps it in memory); a longer one
# is left to the sweep. 330 s covers the 5-minute step with its jitter.
QUEUE_AHEAD_SECONDS = 330
# The sweep leaves a due delivery this long to the task already queued for it before queuing another.
SWEEP_GRACE = timedelta(seconds=15)
SWEEP_BATCH = 500
# A task run a moment before its ETA (clocks of two machines) still finds its delivery due.
DUE_TOLERANCE = timedelta(seconds=1)
RESPONSE_READ_LIMIT = 2048
EXCERPT_CHARS = 500
USER_AGENT = "HealthMarketplace-Webhooks/1"
INTERRUPTED = "interrupted: the worker stopped before the attempt finished"

SUCCEEDED, RETRYING, FAILED, CANCELLED, SKIPPED, LOST = (
    "succeeded",
    "retrying",
    "failed",
    "cancelled",
    "skipped",
    "lost",
)


# --- Signing ---------------------------------------------------------------------------------


def _secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64 HMAC-SHA256>`` signature of ``{msg_id}.{timestamp}.{body}``."""
    message = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(subscription: WebhookSubscription, msg_id: str, timestamp: int, body: bytes, *, now) -> str:
    """The ``webhook-signature`` value: the current secret's signature and, during a rotation, the
    previous secret's too, so a receiver verifies with whichever it has."""
    signatures = [sign(subscription.secret, msg_id, timestamp, body)]
    expires = subscription.previous_secret_expires_at
    if subscription.previous_secret and expires is not None and expires > now:
        signatures.append(sign(subscription.previous_secret, msg_id, timestamp, body))
    return " ".join(signatures)


def message_body(delivery: WebhookDelivery) -> bytes:
    message = event_services.envelope(delivery.event, sequence=delivery.sequence)
    return json.dumps(message, separators=(",", ":")).encode()


# --- One HTTP request ------------------------------------------------------------------------


@dataclass
class Response:
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""
    retry_after: float | None = None  # seconds, from a 429 or 503

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """``Retry-After`` in seconds: delay-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT by definition
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _ca_certs() -> str:
    return certifi.where()  # the same roots as requests, whatever the host's store holds


def _connection(target: Target, address: str, *, timeout: float):
    if target.scheme == "https":
        return urllib3.connection.HTTPSConnection(
            address,
            target.port,
            timeout=timeout,
            cert_reqs="CERT_REQUIRED",
            ca_certs=_ca_certs(),
            server_hostname=target.hostname,  # SNI: the name, not the pinned address
            assert_hostname=target.hostname,  # and the certificate must be the name's
        )
    return urllib3.connection.HTTPConnection(address, target.port, timeout=timeout)


# urllib3 checks the certificate's name itself, with its own CertificateError (a ValueError).
_TLS_ERRORS = (ssl.SSLError, ssl.CertificateError, urllib3.exceptions.SSLError, ssl_match_hostname.CertificateError)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, _TLS_ERRORS):
        return f"tls: {text}"
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # a subclass of urllib3's TimeoutError
        return f"connection failed: {text}"
    if isinstance(exc, (TimeoutError, urllib3.exceptions.TimeoutError)):
        return f"timeout: {text}"
    return f"connection error: {text}"


def _connect(target: Target, *, deadline: float, connect_timeout: float):
    """A connection to the first checked address that answers; its addresses in the resolver's order,
    as an ordinary client would try them."""
    error = "connection failed"
    for address in target.addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        conn = _connection(target, address, timeout=min(connect_timeout, remaining))
        try:
            conn.connect()
        except (OSError, urllib3.exceptions.HTTPError, *_TLS_ERRORS) as exc:
            conn.close()
            error = _describe(exc)
            if isinstance(exc, _TLS_ERRORS):
                break  # the name's certificate is wrong wherever we connect: no point trying the others
            continue
        return conn, ""
    return None, error


class _DeadlineSocket:
    """A connected socket whose every read and write may wait only until the attempt's deadline.

    A per-read timeout alone would let a receiver that drips its answer a byte at a time hold a
    worker for ever; here each read gets what is left of the whole, so the attempt ends on time
    without a watchdog thread. http.client reads through ``makefile``, urllib3 sets timeouts through
    ``settimeout`` (ignored: the deadline decides); everything else is the socket's own.
    """

    def __init__(self, sock, deadline: float):
        self._sock = sock
        self._deadline = deadline

    def _arm(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the attempt's time is up")
        self._sock.settimeout(remaining)

    def recv_into(self, buffer, nbytes=0, flags=0):
        self._arm()
        return self._sock.recv_into(buffer, nbytes, flags)

    def recv(self, bufsize, flags=0):
        self._arm()
        return self._sock.recv(bufsize, flags)

    def sendall(self, data, flags=0):
        self._arm()
        return self._sock.sendall(data, flags)

    def send(self, data, flags=0):
        self._arm()
        return self._sock.send(data, flags)

    def makefile(self, mode="rb", buffering=-1, **kwargs):
        # As socket.makefile does: the reader holds the socket open after the connection lets it go
        # (http.client closes the connection once it has the headers of a "Connection: close" answer).
        self._sock._io_refs += 1
        return io.BufferedReader(socket.SocketIO(self, "rb"), io.DEFAULT_BUFFER_SIZE)

    def _decref_socketios(self):
        self._sock._decref_socketios()

    def settimeout(self, value):
        pass

    def __getattr__(self, name):
        return getattr(self._sock, name)


def post(target: Target, body: bytes, headers: dict, *, connect_timeout: float, total_timeout: float) -> Response:
    """POST ``body`` to ``target`` within ``total_timeout`` seconds in all (connecting included);
    the status decides, the body is read only for the log (at most ``RESPONSE_READ_LIMIT`` bytes)."""
    deadline = time.monotonic() + total_timeout
    conn, error = _connect(target, deadline=deadline, connect_timeout=connect_timeout)
    if conn is None:
        return Response(error=error)
    conn.sock = _DeadlineSocket(conn.sock, deadline)
    response = None
    try:
        try:
            conn.request("POST", target.path, body=body, headers=headers, preload_content=False, decode_content=False)
            response = conn.getresponse()
        except Exception as exc:  # every failure of the receiver is an attempt's outcome
            if time.monotonic() >= deadline:
                return Response(error=f"timeout: no response within {total_timeout:g} s")
            return Response(error=_describe(exc))
        result = Response(status_code=response.status)
        chunks, size = [], 0
        try:
            while size < RESPONSE_READ_LIMIT:
                chunk = response.read1(RESPONSE_READ_LIMIT - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except Exception:  # noqa: S110 - the status is the answer; the body is only for the log
            pass
        result.excerpt = _excerpt(b"".join(chunks))
        if 300 <= response.status < 400:
            location = response.headers.get("location", "")
            result.error = f"redirect ({response.status}) to {location[:200]} not followed"
        if response.status in (429, 503):
            result.retry_after = parse_retry_after(response.headers.get("retry-after"), now=timezone.now())
        return result
    finally:
        if response is not None:
            response.close()  # the socket closes with its last user, without reading the rest
        conn.close()


def _excerpt(raw: bytes) -> str:
    # A NUL cannot be stored in a PostgreSQL text column; the rest is shown as the receiver sent it.
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")[:EXCERPT_CHARS]


# --- Attempts --------------------------------------------------------------------------------


def retry_wait(attempt: int, *, retry_after: float | None = None) -> float | None:
    """Seconds to wait after failed attempt number ``attempt``; None once the schedule is used up."""
    if attempt >= MAX_ATTEMPTS:
        return None
    wait = RETRY_SCHEDULE[attempt - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    if retry_after is not None:
        wait = max(wait, retry_after)
    return min(wait, MAX_WAIT)


def _relaxed_commit() -> None:
    """Let this transaction's commit return before its WAL reaches the disk (PostgreSQL).

    A delivery's state is cheap to lose: if the database crashed in the fraction of a second before
    the WAL is flushed, the claim or outcome would be forgotten and the delivery sent again, which
    at-least-once delivery allows (receivers drop duplicates by ``webhook-id``). What it saves is two
    disk flushes per attempt, most of an attempt's time against a receiver that answers at once.
    Disabling a subscription (and telling its members) still commits durably.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _due(now):
    """Deliveries a worker may take now: pending, due, and not held by a live claim."""
    return WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )


@dataclass
class _Claim:
    delivery: WebhookDelivery
    attempt: DeliveryAttempt
    lease_until: datetime


def _claim(delivery_id: int, now) -> _Claim | str:
    """Take the delivery for one attempt, or say why not: ``skipped`` (another worker holds it, it is
    not due, it is finished or gone) or ``cancelled`` (its subscription is disabled)."""
    lease_until = now + timedelta(seconds=settings.WEBHOOK_CLAIM_SECONDS)
    with transaction.atomic():
        _relaxed_commit()
        claimed = (
            _due(now)
            .filter(pk=delivery_id)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + DUE_TOLERANCE))
            .update(claimed_until=lease_until, attempts=F("attempts") + 1)
        )
        if not claimed:
            return SKIPPED
        delivery = WebhookDelivery.objects.select_related("subscription", "event").get(pk=delivery_id)
        # A retry, redelivery or replay of an event about a patient goes out only while the app may
        # still see it: a consent revoked since the event stops what was still waiting.
        refusal = (
            "The subscription is disabled."
            if not delivery.subscription.is_enabled
            else None
            if event_services.may_still_see(delivery.event, delivery.subscription.app_id)
            else "The patient's consent no longer covers this event for this app."
        )
        if refusal:
            WebhookDelivery.objects.filter(pk=delivery_id).update(
                status=WebhookDelivery.Status.CANCELLED,
                attempts=F("attempts") - 1,
                claimed_until=None,
                completed_at=now,
                last_error=refusal,
            )
            return CANCELLED
        # Written before the request, so that a worker dying mid-request leaves the truth in the log.
        attempt = DeliveryAttempt.objects.create(
            delivery=delivery, number=delivery.attempts, started_at=now, error=INTERRUPTED
        )
    return _Claim(delivery, attempt, lease_until)


def delivery_attempt(*, delivery_id: int) -> str:
    """Make the delivery's next attempt, if it is due and no other worker holds it; what came of it:
    ``succeeded``, ``retrying``, ``failed``, ``cancelled``, ``skipped`` (not ours to send now), or
    ``lost`` (the lease ran out mid-attempt and another worker took over)."""
    claim = _claim(delivery_id, timezone.now())
    if isinstance(claim, str):
        metrics.webhook_delivery(claim)
        return claim
    delivery = claim.delivery
    subscription = delivery.subscription
    body = message_body(delivery)
    msg_id = event_services.event_id(delivery.event)
    now = timezone.now()
    timestamp = int(now.timestamp())
    started = time.monotonic()
    try:
        target = resolve_outbound(subscription.url)
    except Unresolvable as exc:
        response = Response(error=f"dns: {exc}")
    except UnsafeURL:
        host = urlsplit(subscription.url).hostname or subscription.url
        response = Response(error=f"refused: {host} resolves to a non-public address")
    else:
        headers = {
            "Host": target.host_header,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(subscription, msg_id, timestamp, body, now=now),
        }
        response = post(
            target,
            body,
            headers,
            connect_timeout=settings.WEBHOOK_CONNECT_TIMEOUT,
            total_timeout=settings.WEBHOOK_TOTAL_TIMEOUT,
        )
    duration_ms = int((time.monotonic() - started) * 1000)
    outcome = _record(claim, response, duration_ms)
    metrics.webhook_delivery(outcome)  # once its own transaction has committed
    return outcome


def _record(claim: _Claim, response: Response, duration_ms: int) -> str:
    delivery, number = claim.delivery, claim.attempt.number
    now = timezone.now()
    error = response.error
    if response.retry_after is not None and not error:
        error = f"asked to retry after {response.retry_after:g} s"
    disable_reason = ""
    changes = {"last_status_code": response.status_code, "claimed_until": None, "completed_at": now}
    if response.succeeded:
        outcome = SUCCEEDED
        changes["status"] = WebhookDelivery.Status.SUCCEEDED
    elif response.status_code == 410:
        outcome = FAILED
        changes["status"] = WebhookDelivery.Status.FAILED
        disable_reason = f"The endpoint answered 410 Gone on {now:%Y-%m-%d %H:%M} UTC."
    elif (wait := retry_wait(number, retry_after=response.retry_after)) is None:
        outcome = FAILED
        changes["status"] = WebhookDelivery.Status.FAILED
        span = timesince(delivery.created_at, now, depth=1).replace("\xa0", " ")
        disable_reason = f"Disabled after {number} failed attempts over about {span}."
    else:
        outcome = RETRYING
        next_attempt_at = now + timedelta(seconds=wait)
        changes.update(next_attempt_at=next_attempt_at, completed_at=None)
    changes["last_error"] = error[:300]
    with transaction.atomic():
        if not disable_reason:
            _relaxed_commit()
        DeliveryAttempt.objects.filter(pk=claim.attempt.pk).update(
            duration_ms=duration_ms,
            status_code=response.status_code,
            response_excerpt=response.excerpt,
            error=error[:300],
            succeeded=response.succeeded,
        )
        # Only while our lease holds: past it another worker may own the delivery, and its word wins.
        if not WebhookDelivery.objects.filter(pk=delivery.pk, claimed_until=claim.lease_until).update(**changes):
            logger.warning("webhook_delivery_lease_lost", extra={"delivery_id": delivery.pk, "attempt": number})
            return LOST
        if disable_reason:
            subscription_disable(subscription=delivery.subscription, reason=disable_reason, now=now, delivery=delivery)
        if outcome == RETRYING and wait <= QUEUE_AHEAD_SECONDS:
            transaction.on_commit(lambda: _queue(delivery.pk, eta=next_attempt_at))
    logger.info(
        "webhook_delivery_attempt",
        extra={
            "delivery_id": delivery.pk,
            "subscription_id": delivery.subscription_id,
            "attempt": number,
            "status_code": response.status_code,
            "outcome": outcome,
            "duration_ms": duration_ms,
        },
    )
    return outcome


def _queue(delivery_id: int, *, eta=None) -> bool:
    from partners.tasks import deliver_webhook

    try:
        if eta is None:
            deliver_webhook.delay(delivery_id)
        else:
            deliver_webhook.apply_async(args=[delivery_id], eta=eta)
    except Exception:  # the broker is down: the sweep queues it once it is back
        logger.warning("webhook_delivery_not_queued", extra={"delivery_id": delivery_id}, exc_info=True)
        return False
    return True


def subscription_disable(*, subscription: WebhookSubscription, reason: str, now, delivery=None) -> bool:
    """Stop sending to a subscription that cannot take messages, cancel what waits for it, and tell
    the organization's members; False if it was already disabled (they were told then)."""
    from partners.services import organization_notify_members
    from partners.webhook_services import subscription_stop

    if not subscription_stop(subscription=subscription, reason=reason, now=now, keep=delivery):
        return False
    app = subscription.app
    body = (
        f"We stopped sending webhooks for {app.name} to {subscription.url}. {reason}\n\n"
        "Messages waiting for it were cancelled. Once the endpoint answers 2xx again, enable the "
        "subscription and replay what it missed from the delivery log."
    )
    if delivery is not None:
        body += f"\n\nLast message: {event_services.event_id(delivery.event)} ({delivery.event.type})."
    organization_notify_members(
        organization=app.organization,
        subject=f"Webhooks for {app.name} are disabled",
        body=body,
        link=f"/apps/{app.pk}/webhooks/",
    )
    return True


# --- The sweep -------------------------------------------------------------------------------


def deliveries_due_queue(*, limit: int = SWEEP_BATCH) -> int:
    """Queue deliveries whose time has come and that no live worker holds (beat, every 5 s); how many.

    Picks up retries too long to have waited in the broker, deliveries whose queued task was lost,
    and deliveries whose worker died mid-attempt (once its lease has passed). A delivery just queued
    is left alone for ``SWEEP_GRACE``, and each one queued here is stamped so the next sweeps leave
    it alone as long: a backlog of busy workers is not flooded with copies (a copy would only be
    skipped, but it costs a broker round trip and a query).
    """
    now = timezone.now()
    with transaction.atomic():
        due = (
            _due(now)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now - SWEEP_GRACE))
            .order_by("next_attempt_at")
        )
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)  # two beat runs overlapping split the work
        ids = list(due.values_list("pk", flat=True)[:limit])
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(next_attempt_at=now)
    queued = 0
    for delivery_id in ids:
        if not _queue(delivery_id):
            break  # the broker is down: these wait for a later sweep
        queued += 1
    return queued
