"""Issue 5 measures, with wrk against gunicorn on PostgreSQL and Redis, printed as ratios:

(a) GET /fhir/r4/Patient/{id} through every layer (token, scope, policy, consent, audit) against the
    same rendering with the layers off (target >= 0.6 of its throughput);
(b) Observation search for one patient sorted by -date: page 50 against page 1 (target <= 1.2 in latency);
(c) the first page of that search with 1,000,000 observations in the store against 10,000
    (target <= 1.3 in latency).

It uses two databases filled by ``bench/synthetic_data.py``: ``marketplace_bench_fhir`` (100,000
patients, ~1,000,000 observations; fill it first) and ``marketplace_bench_fhir_small`` (1,000
patients, ~10,000 observations; filled here if empty).

    .venv/bin/python bench/fhir_core.py [--seconds 8]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import PYTHON, bench_env, ensure_database, gunicorn, report, wrk  # noqa: E402

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
    args = parser.parse_args()

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
    figures = {}
    for label, url in (("large", LARGE), ("small", SMALL)):
        data = prepare(url, page_size=2)
        env = bench_env(DATABASE_URL=url)
        auth = [f"Authorization: Bearer {data['token']}"]
        with gunicorn(env, workers=2) as base:
            wrk(f"{base}/fhir/r4/Patient/{data['patient']}", seconds=2, headers=auth)  # warm-up
            run = {}
            if label == "large":
                run["read_layered"] = wrk(
                    f"{base}/fhir/r4/Patient/{data['patient']}", seconds=args.seconds, headers=auth
                )
                run["read_unchecked"] = wrk(f"{base}/bench/fhir/Patient/{data['patient']}", seconds=args.seconds)
                run["search_page_50"] = wrk(f"{base}{data['page50']}", seconds=args.seconds, headers=auth)
            run["search_page_1"] = wrk(f"{base}{data['page1']}", seconds=args.seconds, headers=auth)
        for result in run.values():
            assert result["non_2xx"] == 0, result
        figures[label] = {
            "observations_in_store": data["observations"],
            "patient_observations": data["patient_observations"],
            **run,
        }

    large, small = figures["large"], figures["small"]
    report(
        "FHIR core (gunicorn, 2 workers, PostgreSQL + Redis)",
        {
            **figures,
            "a_read_throughput_layered_over_unchecked": round(
                large["read_layered"]["rps"] / large["read_unchecked"]["rps"], 3
            ),
            "b_search_latency_p50_page50_over_page1": round(
                large["search_page_50"]["latency_ms"]["50"] / large["search_page_1"]["latency_ms"]["50"], 3
            ),
            "c_first_page_latency_p50_1M_over_10k": round(
                large["search_page_1"]["latency_ms"]["50"] / small["search_page_1"]["latency_ms"]["50"], 3
            ),
        },
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
