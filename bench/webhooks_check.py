"""Issue 8 measures, on PostgreSQL (and Redis as the broker), printed as JSON:

(a) deliveries per second of one worker: ``partners.webhooks.delivery_attempt`` in a loop in one
    process (claim, sign, POST on a new connection to the pinned address, record the attempt and the
    outcome), against a fast receiver on loopback in a subprocess (asyncio, answers 200 at once);
    beside it the same POSTs alone (``partners.webhooks.post``), so the database's share shows;
(b) the time to fan one ``deprecation.announced`` event out to 1,000 apps each with a subscription
    for it (``partners.event_services.event_fan_out``: feed rows, numbering, 1,000 deliveries in one
    transaction, then 1,000 tasks to the broker after commit), the median of a few events; beside it
    the same with the broker step left out.

    .venv/bin/python bench/webhooks_check.py [--deliveries 3000] [--subscriptions 1000] [--rounds 5]

The receiver is on loopback, which delivery refuses outside development: this process turns
``WEBHOOKS_ALLOW_LOOPBACK`` on for itself after setup (the settings refuse it with DEBUG off).
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import PYTHON, bench_env, ensure_database, free_port, report  # noqa: E402

ORGANIZATION = "bench-webhooks"
FAN_OUT_TITLE = "bench fan-out"


# --- The receiver (a subprocess) ---------------------------------------------------------------


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def serve(port: int) -> None:
    async def main():
        server = await asyncio.start_server(_answer, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def start_receiver() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([PYTHON, __file__, "--serve", str(port)], cwd=ROOT)
    import socket

    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        raise SystemExit("the receiver did not start")
    return process, f"http://127.0.0.1:{port}/hooks"


# --- Setup -------------------------------------------------------------------------------------


def bench_organization():
    from partners.models import Organization, Tier

    organization, _ = Organization.objects.get_or_create(
        slug=ORGANIZATION,
        defaults={"name": "Bench webhooks", "partner_type": "developer", "tier": Tier.objects.get(slug="strategic")},
    )
    return organization


def bench_apps(organization, count: int) -> list:
    """``count`` apps of the bench organization, made once and kept between runs."""
    from partners.models import App

    existing = list(App.objects.filter(organization=organization).order_by("pk"))
    missing = [
        App(
            organization=organization,
            client_id=f"bench-hooks-{n:05d}",
            name=f"Bench hooks {n}",
            client_type=App.CLIENT_CONFIDENTIAL,
            authorization_grant_type=App.GRANT_CLIENT_CREDENTIALS,
            grant_types=[App.GRANT_CLIENT_CREDENTIALS],
            client_secret=f"bench-secret-{n}",
            hash_client_secret=False,  # hashing 1,000 secrets would be the setup's whole cost
        )
        for n in range(len(existing), count)
    ]
    App.objects.bulk_create(missing)
    return list(App.objects.filter(organization=organization).order_by("pk"))[:count]


def reset(organization) -> None:
    from partners.event_models import EventRecipient, WebhookSubscription
    from partners.models import OutboxEvent

    WebhookSubscription.objects.filter(app__organization=organization).delete()  # and their deliveries
    OutboxEvent.objects.filter(organization=organization).delete()
    OutboxEvent.objects.filter(type="deprecation.announced", payload__title=FAN_OUT_TITLE).delete()
    EventRecipient.objects.filter(app__organization=organization).delete()


# --- (a) one worker's deliveries per second ----------------------------------------------------


def measure_deliveries(app, url: str, count: int) -> dict:
    from django.utils import timezone

    from partners import webhooks
    from partners.event_models import WebhookDelivery, WebhookSubscription
    from partners.models import OutboxEvent
    from partners.net import resolve_outbound

    subscription = WebhookSubscription.objects.create(app=app, url=url, event_types=["tier.changed"])
    payload = {"organization": ORGANIZATION, "from_tier": "sandbox", "to_tier": "verified", "changed_at": "now"}
    now = timezone.now()
    events = OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(type="tier.changed", payload=payload, organization=app.organization, dispatched_at=now)
            for _ in range(count)
        ]
    )
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(subscription=subscription, event=event, sequence=n, next_attempt_at=now)
            for n, event in enumerate(events, start=1)
        ]
    )
    ids = [d.pk for d in deliveries]

    # The POSTs alone: the same body and headers, the same fresh connection each time.
    sample = deliveries[0]
    sample.event, sample.subscription = events[0], subscription
    body = webhooks.message_body(sample)
    target = resolve_outbound(url)
    headers = {"Host": target.host_header, "content-type": "application/json", "webhook-id": "evt_x"}
    started = time.perf_counter()
    for _ in range(count):
        assert webhooks.post(target, body, headers, connect_timeout=3, total_timeout=10).succeeded
    http_seconds = time.perf_counter() - started

    outcomes = {}
    started = time.perf_counter()
    for delivery_id in ids:
        outcome = webhooks.delivery_attempt(delivery_id=delivery_id)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    seconds = time.perf_counter() - started
    assert outcomes == {"succeeded": count}, outcomes
    return {
        "deliveries": count,
        "per_second": round(count / seconds, 1),
        "ms_each": round(seconds / count * 1000, 2),
        "http_only_per_second": round(count / http_seconds, 1),
        "http_only_ms_each": round(http_seconds / count * 1000, 2),
    }


# --- (b) one event to 1,000 subscriptions --------------------------------------------------------


def measure_fan_out(apps: list, url: str, rounds: int) -> dict:
    from django.db import transaction

    from marketplace.celery import app as celery_app
    from partners import event_services
    from partners.event_models import WebhookSubscription
    from partners.models import App
    from partners.services import event_publish

    WebhookSubscription.objects.bulk_create(
        [WebhookSubscription(app=app, url=url, event_types=["deprecation.announced"]) for app in apps]
    )
    payload = {
        "deprecation_id": 1,
        "path_prefix": "/api/v1/visits",
        "title": FAN_OUT_TITLE,
        "announced_at": "2026-11-24T00:00:00+00:00",
        "sunset_at": "2027-06-30T00:00:00+00:00",
        "replacement": "/api/v2/visits",
        "migration_guide": "https://developer.example.com/docs/migrating-to-v2/",
    }

    def one(queue: bool) -> tuple[float, int]:
        with transaction.atomic():
            event = event_publish(type="deprecation.announced", payload=payload)
        celery_app.control.purge()  # its fan-out task: this process runs the fan-out itself
        original = event_services.queue_deliveries
        if not queue:
            event_services.queue_deliveries = lambda ids: None
        try:
            started = time.perf_counter()
            made = event_services.event_fan_out(event_id=event.pk)
            seconds = time.perf_counter() - started
        finally:
            event_services.queue_deliveries = original
        celery_app.control.purge()  # no worker is listening: drop the 1,000 delivery tasks
        return seconds, len(made)

    one(True)  # warm-up
    with_broker = [one(True) for _ in range(rounds)]
    without_broker = [one(False) for _ in range(rounds)]
    deliveries = {made for _, made in with_broker + without_broker}
    return {
        "subscriptions": len(apps),
        "apps_in_database": App.objects.count(),  # the event's audience: every app gets a feed row
        "deliveries_per_event": sorted(deliveries),
        "seconds_median": round(statistics.median(s for s, _ in with_broker), 3),
        "seconds_each": [round(s, 3) for s, _ in with_broker],
        "without_broker_seconds_median": round(statistics.median(s for s, _ in without_broker), 3),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the receiver subprocess
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    env = bench_env()
    ensure_database(env)
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    settings.WEBHOOKS_ALLOW_LOOPBACK = True  # the receiver is on loopback; see the module's docstring

    receiver, url = start_receiver()
    try:
        organization = bench_organization()
        reset(organization)
        apps = bench_apps(organization, args.subscriptions)
        deliveries = measure_deliveries(apps[0], url, args.deliveries)
        reset(organization)
        fan_out = measure_fan_out(apps, url, args.rounds)
        reset(organization)
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    report(
        f"Webhooks ({connection.vendor}, one process)",
        {"a_one_worker_deliveries": deliveries, "b_fan_out_one_event": fan_out},
    )


if __name__ == "__main__":
    main()
