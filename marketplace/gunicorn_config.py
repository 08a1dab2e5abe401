"""gunicorn's settings for the Procfile's web process: the Prometheus metrics of all its workers as one.

Named so that gunicorn does not pick it up by itself (it would read ./gunicorn.conf.py): only the
Procfile's web process asks for it (``--config marketplace/gunicorn_config.py``). Loaded as a file, not
imported as part of the ``marketplace`` package, so the master process stays free of the project.

Each gunicorn worker is a process with its own counters, and a scrape of /metrics reaches one of them.
With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client keeps every process's values in a file there
and django-prometheus's /metrics view sums the files, so any worker answers for all of them
(docs/status-and-metrics.md). The variable must be set before a worker imports prometheus_client,
which is why it is set here, in the master, and not in Django's settings.
"""

import os
import shutil
from pathlib import Path

_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(os.environ.get("VAR_DIR") or "var") / "prometheus" / "web")
)


def on_starting(server):
    # The last run's files would be summed in again: a fresh start is a fresh set of counters. (Not
    # marketplace.metrics' helper: importing the project here would put it in the master too.)
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    Path(_metrics_dir).mkdir(parents=True, exist_ok=True)


def child_exit(server, worker):
    # A dead worker's counters stay in the sums (totals never go back); its live gauges must not.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
