"""The Celery application. Tasks live in each app's ``tasks.py`` and are autodiscovered.

A worker also reports that it is alive (``marketplace.health``: /status/ lists the workers heard from)
and, when ``WORKER_METRICS_PORT`` is set, serves its Prometheus metrics there (``marketplace.metrics``).
"""

import os
from pathlib import Path

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # prometheus_client writes there from the first metric it makes, which is on import: before
    # anything else of the project is (``celery -A marketplace`` imports this module first).
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

app = Celery("marketplace")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def _export_worker_metrics(sender=None, **kwargs):
    # In the worker's main process, before its pool forks: the pool's processes write where it reads.
    port = os.environ.get("WORKER_METRICS_PORT")
    if port:
        from marketplace.metrics import worker_exporter

        worker_exporter(int(port), os.environ.get("WORKER_METRICS_ADDR") or "0.0.0.0")  # noqa: S104


@signals.worker_ready.connect
def _worker_ready(sender=None, **kwargs):
    from marketplace.health import heartbeat_record

    heartbeat_record(sender.hostname, force=True)


@signals.heartbeat_sent.connect
def _worker_heartbeat(sender=None, **kwargs):
    # Celery's own worker heartbeat (every 2 s, from the main process while its event loop runs);
    # written to the cache at most every HEARTBEAT_EVERY seconds.
    from marketplace.health import heartbeat_record

    heartbeat_record(sender.eventer.hostname)


@signals.worker_shutdown.connect
def _worker_shutdown(sender=None, **kwargs):
    from marketplace.health import heartbeat_forget

    heartbeat_forget(sender.hostname)
