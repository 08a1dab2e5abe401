"""Webhook delivery against a real HTTP receiver on loopback, every message verified with the
``standardwebhooks`` package: signatures (and both during a rotation), retries on the schedule with
the same ``webhook-id``, Retry-After, 410, the schedule used up, timeouts, redirects, SSRF refused at
delivery after resolution (DNS rebinding included), claims, the sweep, and a worker killed mid-request.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from partners import event_services, net, webhooks
from partners.event_models import DeliveryAttempt, WebhookDelivery, WebhookSubscription
from partners.models import InboxMessage
from partners.services import event_publish
from tests.factories import AppFactory, member
from tests.partners.webhook_receiver import Receiver, Reply, certificates, closed_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _webhook_settings(settings):
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    settings.WEBHOOK_CONNECT_TIMEOUT = 1
    settings.WEBHOOK_TOTAL_TIMEOUT = 2


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


def publish_tier_change(organization):
    with transaction.atomic():
        return event_publish(
            type="tier.changed",
            payload={
                "organization": organization.slug,
                "from_tier": "sandbox",
                "to_tier": "verified",
                "changed_at": timezone.now().isoformat(),
            },
            organization=organization,
        )


def subscribe(url: str, app=None, **fields) -> WebhookSubscription:
    app = app or AppFactory()
    return WebhookSubscription.objects.create(app=app, url=url, event_types=["tier.changed"], **fields)


def deliver_event(subscription: WebhookSubscription) -> WebhookDelivery:
    """An event through the real path: published to the outbox, fanned out to the subscription."""
    event = publish_tier_change(subscription.app.organization)
    (delivery_id,) = event_services.event_fan_out(event_id=event.pk)
    return WebhookDelivery.objects.get(pk=delivery_id)


def make_due(delivery: WebhookDelivery) -> None:
    """As if the wait before its next attempt had passed."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def verify(secret: str, received) -> dict:
    return Webhook(secret).verify(received.body, received.headers)


# --- Signing ---------------------------------------------------------------------------------


def test_sign_is_the_standard_webhooks_signature():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    from datetime import UTC, datetime

    stamp = 1_700_000_000
    expected = Webhook(secret).sign("msg_1", datetime.fromtimestamp(stamp, tz=UTC), '{"a":1}')
    assert webhooks.sign(secret, "msg_1", stamp, b'{"a":1}') == expected


@pytest.mark.django_db
def test_a_delivery_reaches_the_receiver_and_verifies(receiver):
    subscription = subscribe(receiver.url)
    delivery = deliver_event(subscription)

    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "succeeded"

    (received,) = receiver.requests
    message = verify(subscription.secret, received)
    assert message["id"] == received.headers["webhook-id"] == event_services.event_id(delivery.event)
    assert message["type"] == "tier.changed"
    assert message["sequence"] == 1
    assert message == event_services.envelope(delivery.event, sequence=1)
    assert received.body == json.dumps(message, separators=(",", ":")).encode()  # compact
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"] == "HealthMarketplace-Webhooks/1"
    assert received.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 5
    assert received.path == "/hooks/in"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert delivery.claimed_until is None and delivery.completed_at is not None
    (attempt,) = DeliveryAttempt.objects.filter(delivery=delivery)
    assert (attempt.number, attempt.status_code, attempt.succeeded, attempt.error) == (1, 200, True, "")
    assert attempt.response_excerpt == "ok"
    # Done is done: the same task again (a redelivered message) sends nothing.
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "skipped"
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_during_a_rotation_both_secrets_verify(receiver):
    old = WebhookSubscription().secret  # a fresh secret of the model's kind
    subscription = subscribe(
        receiver.url, previous_secret=old, previous_secret_expires_at=timezone.now() + timedelta(hours=24)
    )
    assert webhooks.delivery_attempt(delivery_id=deliver_event(subscription).pk) == "succeeded"
    received = receiver.requests[-1]
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert verify(subscription.secret, received) == verify(old, received)

    # Once the old secret has expired, only the new one signs.
    subscription.previous_secret_expires_at = timezone.now() - timedelta(seconds=1)
    subscription.save()
    assert webhooks.delivery_attempt(delivery_id=deliver_event(subscription).pk) == "succeeded"
    received = receiver.requests[-1]
    verify(subscription.secret, received)
    with pytest.raises(WebhookVerificationError):
        verify(old, received)


# --- Retries ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_receiver_down_then_up_gets_the_event_with_the_same_id(django_capture_on_commit_callbacks, monkeypatch):
    from partners.tasks import deliver_webhook

    queued = []
    monkeypatch.setattr(deliver_webhook, "apply_async", lambda args, eta: queued.append((args, eta)))
    port = closed_port()
    subscription = subscribe(f"http://127.0.0.1:{port}/hooks/in")
    delivery = deliver_event(subscription)

    # Down: refused twice, each attempt logged, the next one on the schedule.
    for number, wait in ((1, 5), (2, 300)):
        before = timezone.now()
        with django_capture_on_commit_callbacks(execute=True):
            assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "retrying"
        delivery.refresh_from_db()
        assert delivery.status == "pending" and delivery.attempts == number
        assert delivery.claimed_until is None
        waited = (delivery.next_attempt_at - before).total_seconds()
        assert wait * 0.9 - 1 <= waited <= wait * 1.1 + 1
        # A short wait goes to the broker with its ETA; the sweep would find it anyway.
        assert queued[-1] == ([delivery.pk], delivery.next_attempt_at)
        attempt = DeliveryAttempt.objects.get(delivery=delivery, number=number)
        assert attempt.error.startswith("connection failed") and not attempt.succeeded
        assert attempt.status_code is None
        # Not due yet: a task run early (or twice) sends nothing.
        assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "skipped"
        make_due(delivery)

    # Up: the third attempt gets through.
    with Receiver(port=port) as receiver:
        assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    (received,) = receiver.requests
    assert received.headers["webhook-id"] == event_services.event_id(delivery.event)
    verify(subscription.secret, received)
    assert list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("number", "succeeded")) == [
        (1, False),
        (2, False),
        (3, True),
    ]


@pytest.mark.django_db
def test_retries_carry_the_same_webhook_id_and_each_verifies(receiver):
    receiver.script(Reply(500, body=b"oops"), Reply(502))
    subscription = subscribe(receiver.url)
    delivery = deliver_event(subscription)
    outcomes = []
    for _ in range(3):
        outcomes.append(webhooks.delivery_attempt(delivery_id=delivery.pk))
        make_due(delivery)
    assert outcomes == ["retrying", "retrying", "succeeded"]
    assert {r.headers["webhook-id"] for r in receiver.requests} == {event_services.event_id(delivery.event)}
    assert [verify(subscription.secret, r)["sequence"] for r in receiver.requests] == [1, 1, 1]
    codes = list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("status_code", "response_excerpt"))
    assert codes == [(500, "oops"), (502, "ok"), (200, "ok")]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "retry_after", "at_least", "at_most"),
    [
        (429, "120", 120, 121),  # longer than the schedule's 5 s: Retry-After wins
        (503, "2", 4.5, 5.5),  # shorter: the schedule wins
        (429, "http-date", 595, 601),
        (503, "999999", 86400, 86400),  # capped at a day
        (429, "soon", 4.5, 5.5),  # unreadable: the schedule
    ],
)
def test_retry_after_is_honoured_on_429_and_503(receiver, status, retry_after, at_least, at_most):
    if retry_after == "http-date":
        retry_after = format_datetime(timezone.now() + timedelta(seconds=600), usegmt=True)
    receiver.script(Reply(status, headers={"Retry-After": retry_after}))
    delivery = deliver_event(subscribe(receiver.url))
    before = timezone.now()
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "retrying"
    delivery.refresh_from_db()
    waited = (delivery.next_attempt_at - before).total_seconds()
    assert at_least - 1 <= waited <= at_most + 1
    assert delivery.last_status_code == status


@pytest.mark.django_db
def test_a_long_wait_is_left_to_the_sweep_not_the_broker(receiver, django_capture_on_commit_callbacks, monkeypatch):
    from partners.tasks import deliver_webhook

    queued = []
    monkeypatch.setattr(deliver_webhook, "apply_async", lambda args, eta: queued.append(args))
    receiver.script(Reply(429, headers={"Retry-After": "3600"}))
    delivery = deliver_event(subscribe(receiver.url))
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "retrying"
    assert queued == []


# --- Giving up -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_410_gone_disables_the_subscription_and_tells_the_members(
    receiver, mailoutbox, django_capture_on_commit_callbacks
):
    receiver.script(Reply(410, body=b"gone"))
    subscription = subscribe(receiver.url)
    owner = member(organization=subscription.app.organization)
    delivery, waiting = deliver_event(subscription), deliver_event(subscription)

    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "failed"

    delivery.refresh_from_db()
    subscription.refresh_from_db()
    assert delivery.status == "failed" and delivery.last_status_code == 410
    assert not subscription.is_enabled
    assert subscription.disabled_reason.startswith("The endpoint answered 410 Gone on ")
    assert subscription.disabled_at is not None
    waiting.refresh_from_db()
    assert waiting.status == "cancelled"
    link = f"/apps/{subscription.app.pk}/webhooks/"
    notice = InboxMessage.objects.get(recipient=owner.user)
    assert notice.link == link and "410 Gone" in notice.body
    (email,) = mailoutbox
    assert email.to == [owner.user.email] and link in email.body
    # A task still queued for it finds it cancelled and sends nothing.
    assert webhooks.delivery_attempt(delivery_id=waiting.pk) == "skipped"
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_a_disabled_subscription_s_delivery_is_cancelled(receiver):
    subscription = subscribe(receiver.url)
    delivery = deliver_event(subscription)
    WebhookSubscription.objects.filter(pk=subscription.pk).update(is_enabled=False)
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "cancelled"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.claimed_until) == ("cancelled", 0, None)
    assert receiver.requests == []


@pytest.mark.django_db
def test_the_schedule_used_up_disables_with_an_email_and_a_portal_notice(
    receiver, mailoutbox, django_capture_on_commit_callbacks
):
    receiver.script(*[Reply(500) for _ in range(10)])
    subscription = subscribe(receiver.url)
    owner = member(organization=subscription.app.organization)
    delivery = deliver_event(subscription)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(days=3, hours=4))

    waits = []
    for number in range(1, 11):
        before = timezone.now()
        with django_capture_on_commit_callbacks(execute=True):
            outcome = webhooks.delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        if number < 10:
            assert outcome == "retrying"
            waits.append((delivery.next_attempt_at - before).total_seconds())
            make_due(delivery)
    assert outcome == "failed"
    for waited, scheduled in zip(waits, webhooks.RETRY_SCHEDULE, strict=True):
        assert scheduled * 0.9 - 1 <= waited <= scheduled * 1.1 + 1

    assert (delivery.status, delivery.attempts) == ("failed", 10)
    subscription.refresh_from_db()
    assert not subscription.is_enabled
    assert subscription.disabled_reason == "Disabled after 10 failed attempts over about 3 days."
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 10
    assert len(receiver.requests) == 10
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    notice = InboxMessage.objects.get(recipient=owner.user)
    assert notice.link == f"/apps/{subscription.app.pk}/webhooks/"
    assert "Disabled after 10 failed attempts" in notice.body
    (email,) = mailoutbox
    assert "disabled" in email.subject and f"/apps/{subscription.app.pk}/webhooks/" in email.body


# --- Timeouts, redirects, what is read back --------------------------------------------------


@pytest.mark.django_db
def test_a_slow_receiver_times_out(receiver, settings):
    settings.WEBHOOK_TOTAL_TIMEOUT = 0.5
    receiver.script(Reply(200, delay=3))
    delivery = deliver_event(subscribe(receiver.url))
    started = time.monotonic()
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "retrying"
    assert time.monotonic() - started < 2
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.error.startswith("timeout") and attempt.status_code is None
    assert 400 <= attempt.duration_ms < 2000


@pytest.mark.django_db
def test_a_receiver_dripping_its_answer_is_cut_off_at_the_total_timeout(receiver, settings):
    settings.WEBHOOK_TOTAL_TIMEOUT = 1
    receiver.script(Reply(200, drip=0.2, delay=5))  # each read is quick; the whole never ends
    delivery = deliver_event(subscribe(receiver.url))
    started = time.monotonic()
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "retrying"
    assert time.monotonic() - started < 2.5
    assert DeliveryAttempt.objects.get(delivery=delivery).error == "timeout: no response within 1 s"


@pytest.mark.django_db
def test_a_refused_connection_is_a_failed_attempt():
    delivery = deliver_event(subscribe(f"http://127.0.0.1:{closed_port()}/"))
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "retrying"
    assert DeliveryAttempt.objects.get(delivery=delivery).error.startswith("connection failed")


@pytest.mark.django_db
def test_redirects_are_not_followed(receiver):
    receiver.script(Reply(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}))
    delivery = deliver_event(subscribe(receiver.url))
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "retrying"
    assert len(receiver.requests) == 1
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.status_code == 302 and not attempt.succeeded
    assert attempt.error == "redirect (302) to http://169.254.169.254/latest/meta-data/ not followed"


@pytest.mark.django_db
def test_only_the_start_of_a_large_response_is_kept(receiver):
    receiver.script(Reply(200, body=b"\x00" + "é".encode() * 50_000))
    delivery = deliver_event(subscribe(receiver.url))
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    excerpt = DeliveryAttempt.objects.get(delivery=delivery).response_excerpt
    assert len(excerpt) == 500 and excerpt.startswith("\ufffdé") and "\x00" not in excerpt


# --- SSRF ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://10.1.2.3/hooks", "10.1.2.3"),
        ("http://192.168.0.10/hooks", "192.168.0.10"),
        ("http://[::ffff:10.1.2.3]/hooks", "::ffff:10.1.2.3"),
        ("http://[fd00:ec2::254]/latest/", "fd00:ec2::254"),
        ("http://0.0.0.0:8000/", "0.0.0.0"),  # noqa: S104 - an address under test, not a bind
        ("http://2130706433/", "2130706433"),  # 127.0.0.1 written as one number
    ],
)
def test_non_public_addresses_are_refused_at_delivery(settings, url, host):
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    delivery = deliver_event(subscribe(url))
    started = time.monotonic()
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "retrying"
    assert time.monotonic() - started < 0.5  # refused, not tried
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.error == f"refused: {host} resolves to a non-public address"


@pytest.mark.django_db
def test_loopback_is_refused_unless_development_allows_it(receiver, settings):
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    delivery = deliver_event(subscribe(receiver.url))
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "retrying"
    assert receiver.requests == []
    assert DeliveryAttempt.objects.get(delivery=delivery).error == (
        "refused: 127.0.0.1 resolves to a non-public address"
    )

    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    make_due(delivery)
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    assert len(receiver.requests) == 1


@pytest.fixture
def dns(monkeypatch):
    """Answers for made-up names, one lookup after another (the last one repeats), each answer a list
    of addresses; real lookups for everything else."""
    real = socket.getaddrinfo
    answers: dict[str, list[list[str]]] = {}
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            lookups.append(host)
            queue = answers[host]
            addresses = queue.pop(0) if len(queue) > 1 else queue[0]
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(net.socket, "getaddrinfo", getaddrinfo)
    getaddrinfo.answers, getaddrinfo.lookups = answers, lookups
    return getaddrinfo


@pytest.mark.django_db
def test_a_name_rebound_to_a_private_address_after_saving_is_refused_at_delivery(dns):
    dns.answers["hooks.partner.test"] = [["93.184.216.34"], ["10.0.0.5"]]
    url = "https://hooks.partner.test/in"
    net.validate_webhook_url(url, production=True)  # public when the subscription is saved
    delivery = deliver_event(subscribe(url))
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "retrying"
    assert DeliveryAttempt.objects.get(delivery=delivery).error == (
        "refused: hooks.partner.test resolves to a non-public address"
    )


def test_one_private_address_among_public_ones_refuses_the_name(dns):
    dns.answers["hooks.partner.test"] = [["93.184.216.34", "10.0.0.5"]]
    with pytest.raises(net.UnsafeURL, match=r"10\.0\.0\.5"):
        net.validate_webhook_url("https://hooks.partner.test/in", production=True)


@pytest.mark.django_db
def test_delivery_connects_to_the_address_it_checked_never_a_second_lookup(receiver, dns):
    # The first lookup answers loopback (admitted in development); any later one would answer a
    # private address. The message arrives, under its name, so the connection used the first answer.
    dns.answers["hooks.partner.test"] = [["127.0.0.1"], ["10.0.0.5"]]
    subscription = subscribe(f"http://hooks.partner.test:{receiver.port}/in")
    delivery = deliver_event(subscription)
    assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    assert dns.lookups == ["hooks.partner.test"]
    (received,) = receiver.requests
    assert received.headers["host"] == f"hooks.partner.test:{receiver.port}"
    verify(subscription.secret, received)


@pytest.mark.django_db
def test_https_goes_to_the_checked_address_with_the_name_s_sni_and_certificate(dns, tmp_path, monkeypatch):
    ca, cert, key = certificates(tmp_path, "hooks.partner.test")
    monkeypatch.setattr(webhooks, "_ca_certs", lambda: ca)
    dns.answers["hooks.partner.test"] = [["127.0.0.1"]]
    dns.answers["impostor.partner.test"] = [["127.0.0.1"]]
    with Receiver(tls=(cert, key)) as receiver:
        subscription = subscribe(f"https://hooks.partner.test:{receiver.port}/in")
        assert webhooks.delivery_attempt(delivery_id=deliver_event(subscription).pk) == "succeeded"
        verify(subscription.secret, receiver.requests[0])
        assert receiver.server_names == ["hooks.partner.test"]
        assert receiver.requests[0].headers["host"] == f"hooks.partner.test:{receiver.port}"

        # Another name at the same address: its certificate is not that name's, so nothing is sent.
        impostor = subscribe(f"https://impostor.partner.test:{receiver.port}/in")
        delivery = deliver_event(impostor)
        assert webhooks.delivery_attempt(delivery_id=delivery.pk) == "retrying"
        assert DeliveryAttempt.objects.get(delivery=delivery).error.startswith("tls: ")
        assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hooks",
        "http://localhost:8000/hooks",
        "http://[::1]/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",  # shared address space (CGNAT)
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[2002:a00:1::]/",  # 6to4 of 10.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata/",
        "http://printer.local/",
        "http://user:secret@93.184.216.34/",
        "ftp://93.184.216.34/",
        "not a url",
        "http://93.184.216.34:99999/",
    ],
)
def test_unsafe_urls_are_refused_when_saved(settings, url):
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    with pytest.raises(net.UnsafeURL):
        net.validate_webhook_url(url, production=False)


def test_development_admits_loopback_and_nothing_else(settings):
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    net.validate_webhook_url("http://127.0.0.1:8000/hooks", production=True)
    net.validate_webhook_url("http://localhost:8000/hooks", production=False)
    for url in ("http://10.0.0.1/", "http://169.254.169.254/", "http://metadata.google.internal/"):
        with pytest.raises(net.UnsafeURL):
            net.validate_webhook_url(url, production=False)


def test_production_apps_need_https(settings):
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    with pytest.raises(net.UnsafeURL, match="https"):
        net.validate_webhook_url("http://93.184.216.34/hooks", production=True)
    net.validate_webhook_url("http://93.184.216.34/hooks", production=False)
    net.validate_webhook_url("https://93.184.216.34/hooks", production=True)


def test_a_name_that_does_not_resolve_yet_can_be_saved():
    net.validate_webhook_url("https://not-yet-live.invalid/hooks", production=True)


# --- Claims and the sweep --------------------------------------------------------------------


@pytest.fixture
def tasks_held(monkeypatch):
    """For tests whose transactions really commit: the tasks queued on commit (which the test process
    would otherwise run at once) are only recorded, so the test runs each step itself."""
    from partners.tasks import deliver_webhook, fan_out_event

    held = []
    monkeypatch.setattr(fan_out_event, "delay", lambda *args: held.append(("fan_out", args)))
    monkeypatch.setattr(deliver_webhook, "delay", lambda *args: held.append(("deliver", args)))
    monkeypatch.setattr(
        deliver_webhook,
        "apply_async",
        lambda args=(), **options: held.append(("deliver", tuple(args))),
    )
    return held


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_second_worker_cannot_claim_a_delivery_in_flight(receiver, tasks_held):
    release = threading.Event()
    receiver.script(Reply(200, hold=release))
    delivery = deliver_event(subscribe(receiver.url))
    outcomes = {}

    def first_worker():
        outcomes["first"] = webhooks.delivery_attempt(delivery_id=delivery.pk)
        connection.close()

    thread = threading.Thread(target=first_worker)
    thread.start()
    try:
        assert receiver.wait_for(1, timeout=10)  # the first worker's request is at the receiver
        outcomes["second"] = webhooks.delivery_attempt(delivery_id=delivery.pk)
    finally:
        release.set()
        thread.join(timeout=10)
    assert outcomes == {"first": "succeeded", "second": "skipped"}
    assert len(receiver.requests) == 1


@pytest.mark.django_db
def test_the_sweep_requeues_a_delivery_whose_worker_died(receiver, monkeypatch):
    subscription = subscribe(receiver.url)
    dead, live, fresh, later = (deliver_event(subscription) for _ in range(4))
    now = timezone.now()
    # dead: its worker claimed it and made attempt 1, then died; the lease has passed.
    WebhookDelivery.objects.filter(pk=dead.pk).update(
        attempts=1, claimed_until=now - timedelta(seconds=1), next_attempt_at=now - timedelta(minutes=2)
    )
    DeliveryAttempt.objects.create(delivery=dead, number=1, started_at=now, error=webhooks.INTERRUPTED)
    # live: a worker holds it right now. fresh: just queued, its own task will come. later: not due.
    WebhookDelivery.objects.filter(pk=live.pk).update(
        claimed_until=now + timedelta(seconds=30), next_attempt_at=now - timedelta(minutes=2)
    )
    WebhookDelivery.objects.filter(pk=later.pk).update(next_attempt_at=now + timedelta(hours=2))

    queued = []
    monkeypatch.setattr(webhooks, "_queue", lambda delivery_id, eta=None: queued.append(delivery_id) or True)
    assert webhooks.deliveries_due_queue() == 1
    assert queued == [dead.pk]
    # Stamped: the next sweeps leave it to the task just queued for a while.
    assert webhooks.deliveries_due_queue() == 0
    assert fresh.pk not in queued and later.pk not in queued

    # The queued task, run by a live worker, makes attempt 2 and gets through.
    make_due(dead)
    assert webhooks.delivery_attempt(delivery_id=dead.pk) == "succeeded"
    assert list(DeliveryAttempt.objects.filter(delivery=dead).values_list("number", "succeeded", "error")) == [
        (1, False, webhooks.INTERRUPTED),
        (2, True, ""),
    ]
    assert receiver.requests[0].headers["webhook-id"] == event_services.event_id(dead.event)


@pytest.mark.django_db
def test_the_sweep_delivers_through_the_task(receiver):
    delivery = deliver_event(subscribe(receiver.url))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=1))
    assert webhooks.deliveries_due_queue() == 1  # tasks run eagerly in the test process
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    assert len(receiver.requests) == 1


# --- A real worker killed mid-request --------------------------------------------------------


def _worker(env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "marketplace",
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kill takes the pool's children too
    )


def _stop(process: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.postgres  # the worker subprocess must reach the test database, which SQLite keeps in memory
@pytest.mark.redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_killed_mid_delivery_delivers_after_restart(receiver, settings, tmp_path, monkeypatch):
    from marketplace.celery import app as celery_app

    release = threading.Event()
    receiver.script(Reply(200, hold=release))  # the first request hangs until the worker is dead
    subscription = subscribe(receiver.url)
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "marketplace.settings",
        "WEBHOOKS_ALLOW_LOOPBACK": "1",
        "DEBUG": "1",
        "WEBHOOK_CONNECT_TIMEOUT": "1",
        "WEBHOOK_TOTAL_TIMEOUT": "4",
        "WEBHOOK_CLAIM_SECONDS": "6",
        "LOG_LEVEL": "INFO",
    }
    log = tmp_path / "worker.log"
    monkeypatch.setattr(webhooks, "SWEEP_GRACE", timedelta(seconds=1))
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False  # this test's tasks go through Redis to the workers
    celery_app.control.purge()

    first = _worker(env, log)
    second = None
    try:
        # The real path: published and committed; the worker fans it out and delivers.
        event = publish_tier_change(subscription.app.organization)
        assert receiver.wait_for(1, timeout=60), log.read_text()
        _stop(first, signal.SIGKILL)  # mid-request: the receiver has not answered
        release.set()
        delivery = WebhookDelivery.objects.get(event=event)
        assert delivery.status == "pending" and delivery.claimed_until is not None

        second = _worker(env, log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            delivery.refresh_from_db()
            if delivery.status == "succeeded":
                break
            webhooks.deliveries_due_queue()  # beat's job, every 5 s in production
            time.sleep(0.5)
        assert delivery.status == "succeeded", log.read_text()
    finally:
        celery_app.conf.task_always_eager = eager
        release.set()
        _stop(first, signal.SIGKILL)
        if second is not None:
            _stop(second)
    assert len(receiver.requests) == 2
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids == {event_services.event_id(event)}
    verify(subscription.secret, receiver.requests[1])
    assert list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("number", "succeeded", "error")) == [
        (1, False, webhooks.INTERRUPTED),
        (2, True, ""),
    ]
