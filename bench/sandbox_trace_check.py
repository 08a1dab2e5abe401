"""What certification's sandbox trace costs a sandbox app's request, with wrk against gunicorn on
PostgreSQL and Redis: throughput of the layered probe (``/bench/layered``, a sandbox app's token) with
``SANDBOX_TRACE=1`` (one INSERT per request, api/sandbox_trace.py) over the same server with it off,
the median of alternating rounds. Production apps are never traced, so they pay nothing.

    .venv/bin/python bench/sandbox_trace_check.py [--seconds 6] [--rounds 3]
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import bench_env, ensure_database, gunicorn, report, throughput_rounds  # noqa: E402
from bench.layered_check import make_token  # noqa: E402

WORKERS = 2 * (os.cpu_count() or 1) + 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    env = bench_env()
    ensure_database(env)
    os.environ.update(env)
    raw, _ = make_token()  # the bench organization's sandbox app, with quotas that never bind
    auth = [f"Authorization: Bearer {raw}"]

    from partners.models import SandboxTrace

    traced_before = SandboxTrace.objects.count()
    with (
        gunicorn({**env, "SANDBOX_TRACE": "1"}, workers=WORKERS) as traced,
        gunicorn({**env, "SANDBOX_TRACE": "0"}, workers=WORKERS) as untraced,
    ):
        rounds = throughput_rounds(
            traced, untraced, "/bench/layered", seconds=args.seconds, rounds=args.rounds, headers=auth
        )
    rows_written = SandboxTrace.objects.count() - traced_before

    report(
        f"Sandbox trace (gunicorn, {WORKERS} workers, PostgreSQL + Redis)",
        {
            "throughput_traced_over_untraced": round(statistics.median(r[0] for r in rounds), 3),
            "each_round": [round(r[0], 3) for r in rounds],
            "median_round": {"traced": rounds[len(rounds) // 2][1], "untraced": rounds[len(rounds) // 2][2]},
            "trace_rows_written": rows_written,
        },
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
