"""The platform's own Prometheus metrics, next to django-prometheus's (docs/status-and-metrics.md).

``/metrics`` (``django_prometheus.urls``) serves both from prometheus_client's registry. Every label
takes one of a few values known in advance (an endpoint group, a status class, a catalogue code, a
policy name, an outcome): never an app, a path with an id in it, or a patient, since each distinct
label set is a time series kept for ever.

Imports no app: the callers (``api.views``, ``partners.webhooks``, ``consent.services``, the token
endpoint) pass what they know.

Processes. A counter lives in the process that counts it. Under gunicorn (several worker processes)
and Celery's prefork pool, ``PROMETHEUS_MULTIPROC_DIR`` makes each process write its values to a file
there and the exporter sum the files (``marketplace/gunicorn_config.py`` sets it up for the web,
``worker_exporter`` below for a Celery worker). Without it (``runserver``, tests) ``/metrics`` shows
this process alone.
"""

import logging
import os
from pathlib import Path

from django.db import transaction
from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)

# prometheus_client appends ``_total`` to a counter's name in the exposition.
API_REQUESTS = Counter(
    "marketplace_api_requests",
    "API responses by endpoint group and status class (2xx, 4xx, ...).",
    ["group", "status_class"],
)
API_REQUEST_SECONDS = Histogram(
    "marketplace_api_request_seconds",
    "API response time by endpoint group, from the view's start to its finished response.",
    ["group"],
    # The defaults, plus 15 and 30 s: an eligibility check waits on a payer.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 15.0, 30.0),
)
API_REFUSALS = Counter(
    "marketplace_api_refusals",
    "API 4xx problems by the layer that refused (api.errors) and the error code.",
    ["layer", "code"],
)
RATE_LIMITED = Counter(
    "marketplace_rate_limited",
    "429 refusals by the policy that was used up (the first one named, as the response lists them).",
    ["policy"],
)
WEBHOOK_DELIVERIES = Counter(
    "marketplace_webhook_deliveries",
    "Webhook delivery attempts by outcome (partners.webhooks.delivery_attempt).",
    ["outcome"],
)
CONSENT_CHANGES = Counter(
    "marketplace_consent_changes",
    "Consent grants given, revoked and expired, counted once their transaction commits.",
    ["change"],
)

# Known values, shown at 0 from the start so that rate() over a restart has a series to begin with.
WEBHOOK_OUTCOMES = ("succeeded", "retrying", "failed", "cancelled", "skipped", "lost")
CONSENT_CHANGE_KINDS = ("granted", "revoked", "expired")
for _outcome in WEBHOOK_OUTCOMES:
    WEBHOOK_DELIVERIES.labels(outcome=_outcome)
for _change in CONSENT_CHANGE_KINDS:
    CONSENT_CHANGES.labels(change=_change)


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


def api_response(*, group: str, status: int, seconds: float | None, code: str | None, layer: str | None) -> None:
    """One finished API response: its count and time, and, for a 4xx problem, the refusal."""
    API_REQUESTS.labels(group=group, status_class=status_class(status)).inc()
    if seconds is not None:
        API_REQUEST_SECONDS.labels(group=group).observe(seconds)
    if code and layer and 400 <= status < 500:
        API_REFUSALS.labels(layer=layer, code=code).inc()


def rate_limited(policy: str) -> None:
    RATE_LIMITED.labels(policy=policy).inc()


def webhook_delivery(outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()


def consent_change(change: str) -> None:
    """Counted when the surrounding transaction commits: a grant rolled back never happened."""
    transaction.on_commit(lambda: CONSENT_CHANGES.labels(change=change).inc())


# --- A Celery worker's exporter ------------------------------------------------------------------


def reset_multiprocess_dir(*, keep_pid: int | None = None) -> Path | None:
    """Empty ``PROMETHEUS_MULTIPROC_DIR`` of the last run's files (they would be summed in again) and
    return it; None when the variable is unset. ``keep_pid``'s files stay: a process that already made
    its metrics (on import) goes on writing to the files it opened then."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return None
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    mine = f"_{keep_pid}.db"
    for stale in path.iterdir():
        if keep_pid is None or not stale.name.endswith(mine):
            stale.unlink(missing_ok=True)
    return path


def worker_exporter(port: int, addr: str = "0.0.0.0") -> bool:  # noqa: S104 - Prometheus scrapes it from outside
    """Serve a Celery worker's metrics on ``port`` (its webhook deliveries, consent expiries).

    Called in the worker's main process before its pool forks: with ``PROMETHEUS_MULTIPROC_DIR`` the
    last run's files are removed (not this process's own), each pool process writes its own file there
    and this server sums them all.
    A port already taken is logged and left: metrics are not worth a worker that will not start.
    """
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

    registry = REGISTRY
    if reset_multiprocess_dir(keep_pid=os.getpid()) is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    try:
        start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        log.warning("worker metrics not exported", extra={"port": port, "error": exc.__class__.__name__})
        return False
    log.info("worker metrics exported", extra={"port": port})
    return True
