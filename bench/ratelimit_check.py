"""Issue 7 measures, with wrk against gunicorn on PostgreSQL and Redis:

(a) throughput of the layered probe (``/bench/layered``: token, scope, policy layers) with every rate
    limit layer on (``RATE_LIMITS=1``: the organization's three windows, the token's and, for patient
    tokens, the patient's share, all in one Lua script) against the same server with them off
    (target >= 0.9), the median of alternating rounds;
(b) 200 concurrent clients hammering one quota at its boundary (a daily quota of 1,000 requests, so no
    window rolls over during the run): how many requests were admitted (exactly 1,000 expected).

    .venv/bin/python bench/ratelimit_check.py [--seconds 6] [--rounds 3]
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import bench_env, ensure_database, gunicorn, report, throughput_rounds, wrk  # noqa: E402
from bench.layered_check import make_token  # noqa: E402

WORKERS = 2 * (os.cpu_count() or 1) + 1
BOUNDARY_QUOTA = 1000


def set_quotas(overrides: dict) -> None:
    from partners.models import Organization

    organization = Organization.objects.get(slug="bench-org")
    organization.rate_quota_overrides = overrides
    organization.save(update_fields=["rate_quota_overrides"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    env = bench_env()
    ensure_database(env)
    os.environ.update(env)
    raw, _ = make_token()  # the bench organization, with quotas that never bind
    auth = [f"Authorization: Bearer {raw}"]

    with (
        gunicorn({**env, "RATE_LIMITS": "1"}, workers=WORKERS) as limited,
        gunicorn({**env, "RATE_LIMITS": "0"}, workers=WORKERS) as unlimited,
    ):
        rounds = throughput_rounds(
            limited, unlimited, "/bench/layered", seconds=args.seconds, rounds=args.rounds, headers=auth
        )

        # (b): only the daily window can refuse, and it cannot roll over during the run.
        from bench.harness import unbounded_quotas

        overrides = unbounded_quotas()
        overrides["fhir_read"]["per_day"] = BOUNDARY_QUOTA
        from django.core.cache import cache

        cache.clear()  # the day's counters start at zero
        set_quotas(overrides)
        boundary = wrk(f"{limited}/bench/layered", seconds=args.seconds, connections=200, threads=2, headers=auth)
        set_quotas(unbounded_quotas())

    total = boundary["requests"]
    report(
        f"Rate limits (gunicorn, {WORKERS} workers, PostgreSQL + Redis)",
        {
            "a_throughput_limits_on_over_off": round(statistics.median(r[0] for r in rounds), 3),
            "a_each_round": [round(r[0], 3) for r in rounds],
            "a_median_round": {"on": rounds[len(rounds) // 2][1], "off": rounds[len(rounds) // 2][2]},
            "b_concurrent_clients": 200,
            "b_quota": BOUNDARY_QUOTA,
            "b_requests_sent": total,
            "b_admitted": total - boundary["non_2xx"],
            "b_refused_429": boundary["non_2xx"],
        },
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
