"""Issue 3 measure: throughput of one authenticated request through the whole layered check
(token -> scope -> organization -> tier -> environment -> partner type) against the same view with
the checks off, on gunicorn with PostgreSQL and Redis; and the database queries the check costs.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marketplace_bench REDIS_URL=redis://127.0.0.1:6379/2 \
        .venv/bin/python bench/layered_check.py [--seconds 10]
"""

import argparse
import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import bench_env, ensure_database, gunicorn, report, unbounded_quotas, wrk


def make_token() -> str:
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from oauth2_provider.models import AccessToken, set_token_value

    from partners.models import App, Organization, Tier

    organization, _ = Organization.objects.get_or_create(
        slug="bench-org",
        defaults={"name": "Bench", "partner_type": "developer", "tier": Tier.objects.get(slug="strategic")},
    )
    organization.rate_quota_overrides = unbounded_quotas()
    organization.save(update_fields=["rate_quota_overrides"])
    app = App.objects.filter(client_id="bench-client").first() or App.objects.create(
        client_id="bench-client",
        organization=organization,
        name="Bench",
        client_type=App.CLIENT_CONFIDENTIAL,
        authorization_grant_type=App.GRANT_CLIENT_CREDENTIALS,
        grant_types=[App.GRANT_CLIENT_CREDENTIALS],
        client_secret=secrets.token_urlsafe(32),
    )
    raw = secrets.token_urlsafe(32)
    token = AccessToken(application=app, expires=timezone.now() + timedelta(hours=2), scope="events.read system/*.rs")
    set_token_value(token, raw)
    token.save()

    client = Client(HTTP_HOST="127.0.0.1", secure=True)
    counts = []
    for _ in range(2):  # first with the token cache cold, then warm
        with CaptureQueriesContext(connection) as queries:
            status = client.get("/bench/layered", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code
        assert status == 200, status
        counts.append(len(queries))
    return raw, {"token_cache_cold": counts[0], "token_cache_warm": counts[1]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    env = bench_env()
    ensure_database(env)
    os.environ.update(env)
    raw, queries = make_token()

    with gunicorn(env, workers=2) as base:
        auth = [f"Authorization: Bearer {raw}"]
        wrk(f"{base}/bench/layered", seconds=2, headers=auth)  # warm-up
        checked = wrk(f"{base}/bench/layered", seconds=args.seconds, connections=args.connections, headers=auth)
        unchecked = wrk(f"{base}/bench/unchecked", seconds=args.seconds, connections=args.connections)
    assert checked["non_2xx"] == 0, checked

    report(
        "layered check vs checks off (gunicorn, 2 workers)",
        {
            "database": env["DATABASE_URL"].split("@")[-1],
            "cache": env["REDIS_URL"],
            "layered": checked,
            "unchecked": unchecked,
            "throughput_ratio_layered_over_unchecked": round(checked["rps"] / unchecked["rps"], 3),
            "queries_per_checked_request": queries,
            "token_cache_seconds": int(env.get("TOKEN_CACHE_SECONDS", "60")),
        },
    )


if __name__ == "__main__":
    main()
