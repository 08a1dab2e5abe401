"""Synthetic data measure: how fast the sandbox seed generates and stores a large clinical store.

Times ``api.seed.seed_fhir_sandbox`` (what ``manage.py seed_sandbox --patients N`` runs) filling
an empty PostgreSQL store with 100,000 synthetic patients and everything that hangs off them
(~1,000,000 Observations, Coverage, Appointments, 500 practitioners' Schedules and Slots), written
with COPY in chunks of 1,000 patients, and prints rows per second, observations per second and the
total seconds; then times a second seed with the same N (idempotent: nothing to add) and prints
the peak memory of the process (chunks keep it flat whatever N is).

It LEAVES THE DATABASE POPULATED (``marketplace_bench_fhir``, sandbox environment, synthetic rows,
VACUUM ANALYZEd) for the other benchmarks that need a large clinical store (FHIR search, paging,
bulk export): point ``bench.harness.bench_env(DATABASE_URL=...)`` at it. ``--keep`` tops up an
existing fill (only missing patients are written) instead of emptying the clinical tables first.

    .venv/bin/python bench/synthetic_data.py [--patients 100000] [--keep] [--anchor 2026-11-24]

PostgreSQL, as ``bench.harness.bench_env`` sets it up; its own database, created if missing.
"""

import argparse
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import bench_env, ensure_database, report

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/marketplace_bench_fhir"


def empty_store() -> None:
    from django.db import connection

    from api.models import RESOURCE_MODELS
    from consent.models import CareRelationship

    tables = [model._meta.db_table for model in RESOURCE_MODELS.values()] + [CareRelationship._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)}")


def settle() -> dict:
    """VACUUM ANALYZE the clinical tables (so the next benchmark finds statistics and a visibility
    map, and no autovacuum running), and return their sizes."""
    from django.db import connection

    from api.models import RESOURCE_MODELS

    sizes = {}
    with connection.cursor() as cursor:
        for resource_type, model in RESOURCE_MODELS.items():
            table = model._meta.db_table
            cursor.execute(f"VACUUM (ANALYZE) {table}")
            cursor.execute("SELECT pg_total_relation_size(%s)", [table])
            sizes[resource_type] = f"{cursor.fetchone()[0] / 2**20:.0f} MiB"
    return sizes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="top up the existing fill instead of emptying it")
    parser.add_argument("--anchor", type=date.fromisoformat, default=None, help="history end / slot window start")
    parser.add_argument("--database-url", default=DATABASE_URL)
    args = parser.parse_args()

    env = bench_env(DATABASE_URL=args.database_url)
    ensure_database(env)
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings

    if not settings.DATABASE_IS_POSTGRES:
        raise SystemExit("This benchmark needs PostgreSQL (COPY, and a database that means something).")

    from api.seed import seed_fhir_sandbox, synthetic_counts
    from consent.seed import seed_consent
    from partners.models import Organization
    from partners.seed import seed_partners

    if not args.keep:
        empty_store()
    logins = seed_partners()
    provider = Organization.objects.get(
        slug=seed_consent(patient_ids=[logins["patient"]["fhir_patient_id"]])["provider"]["organization"]
    )

    def progress(done, total):
        if done % 10_000 == 0 or done == total:
            print(f"  {done:,}/{total:,} patients, {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)

    began = time.perf_counter()
    fill = seed_fhir_sandbox(patients=args.patients, anchor=args.anchor, care_organization=provider, progress=progress)
    fill_seconds = time.perf_counter() - began
    rows = sum(fill["inserted"].values())

    began = time.perf_counter()
    again = seed_fhir_sandbox(patients=args.patients, anchor=args.anchor, care_organization=provider)
    again_seconds = time.perf_counter() - began

    began = time.perf_counter()
    sizes = settle()
    settle_seconds = time.perf_counter() - began
    observations = fill["inserted"].get("Observation", 0)
    report(
        f"synthetic data: {args.patients:,} patients into PostgreSQL (COPY, chunks of 1,000 patients)",
        {
            "database": env["DATABASE_URL"].split("@")[-1],
            "anchor": fill["anchor"],
            "rows_inserted": fill["inserted"],
            "rows_inserted_total": rows,
            "seconds_total": round(fill_seconds, 1),
            "rows_per_second": round(rows / fill_seconds),
            "observations_per_second": round(observations / fill_seconds),
            "patients_per_second": round(fill["inserted"].get("Patient", 0) / fill_seconds),
            "second_seed_same_n": {
                "rows_inserted": sum(again["inserted"].values()),
                "seconds": round(again_seconds, 1),
            },
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "vacuum_analyze_seconds": round(settle_seconds, 1),
            "table_sizes": sizes,
            "stored_synthetic_rows": synthetic_counts(),
        },
    )


if __name__ == "__main__":
    main()
