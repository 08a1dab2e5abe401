"""Issue 5 measures, with wrk against gunicorn on PostgreSQL and Redis, printed as ratios:

(a) GET /fhir/r4/Patient/{id} through every layer (token, scope, policy, consent, audit) against the
    same row query and response (``api.fhir.views.read_response``) with the layers off (target >= 0.6
    of its throughput), the median of alternating rounds;
(b) Observation search for one patient sorted by -date: page 50 against page 1 (target <= 1.2 in latency);
(c) the first page of that search with 1,000,000 observations in the store against 10,000
    (target <= 1.3 in latency).

It uses two databases filled by ``bench/synthetic_data.py``: ``marketplace_bench_fhir`` (100,000
patients, ~1,000,000 observations; fill it first) and ``marketplace_bench_fhir_small`` (1,000
patients, ~10,000 observations; filled here if empty).

    .venv/bin/python bench/fhir_core.py [--seconds 8] [--rounds 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import PYTHON, bench_env, ensure_database, gunicorn, report, wrk  # noqa: E402

# gunicorn's own advice for sync workers, (2 x cores) + 1: enough workers that one waiting on
# PostgreSQL or Redis leaves the cores to the others, as in production.
WORKERS = 2 * (os.cpu_count() or 1) + 1
LARGE = "postgres://postgres@127.0.0.1:5432/marketplace_bench_fhir"
SMALL = "postgres://postgres@127.0.0.1:5432/marketplace_bench_fhir_small"


def prepare(database_url: str, *, page_size: int) -> dict:
    env = bench_env(DATABASE_URL=database_url)
    result = subprocess.run(
        [PYTHON, str(ROOT / "bench" / "fhir_prepare.py"), str(page_size)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    ensure_database(bench_env(DATABASE_URL=LARGE))  # filled by bench/synthetic_data.py; migrated here
    small_env = bench_env(DATABASE_URL=SMALL)
    ensure_database(small_env)
    counts = subprocess.run(
        [
            PYTHON,
            "-c",
            "import django; django.setup(); from api.models import Observation; print(Observation.objects.count())",
        ],
        cwd=ROOT,
        env=small_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if int(counts or 0) < 5000:
        subprocess.run(
            [PYTHON, "manage.py", "seed_sandbox", "--patients", "1000"],
            cwd=ROOT,
            env=small_env,
            check=True,
            capture_output=True,
        )

    # The demo patient has 160 observations, so 50 pages of 2 exist in both stores.
    large_data, small_data = prepare(LARGE, page_size=2), prepare(SMALL, page_size=2)
    large_auth = [f"Authorization: Bearer {large_data['token']}"]
    small_auth = [f"Authorization: Bearer {small_data['token']}"]
    patient = large_data["patient"]
    # Both servers run side by side and every round measures each side once, in turn, so that
    # whatever else the machine does slows both sides of a ratio alike; the median round decides.
    with (
        gunicorn(bench_env(DATABASE_URL=LARGE), workers=WORKERS) as large,
        gunicorn(bench_env(DATABASE_URL=SMALL), workers=WORKERS) as small,
    ):
        measures = {
            "read_layered": (f"{large}/fhir/r4/Patient/{patient}", large_auth),
            "read_unchecked": (f"{large}/bench/fhir/Patient/{patient}", []),
            "search_page_50": (f"{large}{large_data['page50']}", large_auth),
            "search_page_1": (f"{large}{large_data['page1']}", large_auth),
            "search_page_1_small_store": (f"{small}{small_data['page1']}", small_auth),
        }
        for url, headers in measures.values():
            wrk(url, seconds=2, headers=headers)  # warm-up
        rounds = []
        for _ in range(args.rounds):
            results = {name: wrk(url, seconds=args.seconds, headers=h) for name, (url, h) in measures.items()}
            for name, result in results.items():
                assert result["non_2xx"] == 0, (name, result)
            rounds.append(
                {
                    "results": results,
                    "a": results["read_layered"]["rps"] / results["read_unchecked"]["rps"],
                    "b": results["search_page_50"]["latency_ms"]["50"] / results["search_page_1"]["latency_ms"]["50"],
                    "c": results["search_page_1"]["latency_ms"]["50"]
                    / results["search_page_1_small_store"]["latency_ms"]["50"],
                }
            )

    def median(ratio: str) -> float:
        return round(statistics.median(r[ratio] for r in rounds), 3)

    middle = sorted(rounds, key=lambda r: r["a"])[len(rounds) // 2]["results"]
    report(
        f"FHIR core (gunicorn, {WORKERS} workers each, PostgreSQL + Redis, median of {args.rounds} rounds)",
        {
            "observations_in_store": {"large": large_data["observations"], "small": small_data["observations"]},
            "patient_observations": large_data["patient_observations"],
            "median_round_of_a": middle,
            "each_round": [{ratio: round(r[ratio], 3) for ratio in "abc"} for r in rounds],
            "a_read_throughput_layered_over_unchecked": median("a"),
            "b_search_latency_p50_page50_over_page1": median("b"),
            "c_first_page_latency_p50_1M_over_10k": median("c"),
        },
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
