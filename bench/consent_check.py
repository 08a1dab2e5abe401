"""Consent ledger measure: the cost of the consent check does not grow with the ledger.

Times ``consent.services.check_access`` (N calls for a patient with an active grant, with their
provider's authorization to look up), one API request through the data layer
(``GET /api/v1/consents/status``: every layer, then the check for each of 9 data classes) and one
FHIR Consent search (the only read that joins the ledger, for ``meta.versionId``), first with
1,000 ledger events, then with 1,000,000, and prints each figure and the ratio large/small
(target: at most 1.2 for the check).

The ledger is filled the way it grows: per patient, a chain of 10 events (granted, superseded,
granted, revoked, denied, granted, expired, denied, granted, denied) over 4 grants, with valid
hashes and a ``LedgerHead``, a care relationship with one of a few providers, and grants spread
over 20 apps. Rows are written with ``bulk_create`` (grants) and COPY (events): inserts, which
the append-only ledger allows; it refuses changes only.

    .venv/bin/python bench/consent_check.py [--events 1000000] [--checks 2000]

PostgreSQL (its own database, ``marketplace_bench_consent``, emptied first) and Redis, as
``bench.harness.bench_env`` sets up.
"""

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import bench_env, ensure_database, report, unbounded_quotas

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/marketplace_bench_consent"
EVENTS_PER_PATIENT = 10
CHECKED_PATIENT = "bench-checked"
OTHER_APPS = 20
PROVIDERS = 5
CONSENT_TABLES = (
    "consent_ledgerevent",
    "consent_ledgerhead",
    "consent_consentgrant",
    "consent_carerelationship",
    "consent_appauthorization",
    "partners_outboxevent",
)
EVENT_COLUMNS = (
    "patient_id",
    "sequence",
    "kind",
    "grant_id",
    "app_id",
    "purpose",
    "text_label",
    "scopes",
    "actor",
    "channel",
    "reason",
    "occurred_at",
    "previous_hash",
    "hash",
)
# (kind, which of the patient's 4 grants, or None)
PATTERN = (
    ("granted", 0),
    ("superseded", 0),
    ("granted", 1),
    ("revoked", 1),
    ("denied", None),
    ("granted", 2),
    ("expired", 2),
    ("denied", None),
    ("granted", 3),
    ("denied", None),
)
GRANT_STATUSES = ("superseded", "revoked", "expired", "active")
SCOPES = ["launch/patient", "patient/Observation.rs", "patient/Patient.rs"]


def setup_fixtures():
    """The organizations, apps, text and token the measurements use; the consent tables emptied."""
    import secrets

    from django.db import connection
    from oauth2_provider.models import AccessToken, set_token_value

    from consent.models import ConsentText
    from consent.services import current_text
    from partners.models import App, Organization, Tier

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(CONSENT_TABLES)}")
    tier = Tier.objects.get(slug="strategic")
    developer, _ = Organization.objects.get_or_create(
        slug="bench-consent-dev", defaults={"name": "Bench developer", "partner_type": "developer", "tier": tier}
    )
    developer.rate_quota_overrides = unbounded_quotas()
    developer.save(update_fields=["rate_quota_overrides"])

    def app(name):
        found = App.objects.filter(name=name, organization=developer).first()
        return found or App.objects.create(
            organization=developer,
            name=name,
            environment=App.Environment.PRODUCTION,
            client_type=App.CLIENT_CONFIDENTIAL,
            authorization_grant_type=App.GRANT_CLIENT_CREDENTIALS,
            grant_types=[App.GRANT_CLIENT_CREDENTIALS],
            client_secret=secrets.token_urlsafe(32),
        )

    checked = app("Bench checked app")
    others = [app(f"Bench app {n}") for n in range(OTHER_APPS)]
    providers = [
        Organization.objects.get_or_create(
            slug=f"bench-provider-{n}",
            defaults={"name": f"Bench provider {n}", "partner_type": "provider", "tier": tier},
        )[0]
        for n in range(PROVIDERS)
    ]
    text = current_text() or ConsentText.objects.filter(published_at__isnull=False).first()
    raw = secrets.token_urlsafe(32)
    token = AccessToken(
        application=checked,
        expires=datetime.now(UTC) + timedelta(hours=2),
        scope="consent.read system/Consent.rs",
    )
    set_token_value(token, raw)
    token.save()
    return SimpleNamespace(checked=checked, apps=[checked, *others], providers=providers, text=text, token=raw)


def populate(fx, *, first_patient: int, patients: int) -> None:
    """Write ``patients`` patients' histories (10 events each, 4 grants, a care relationship)."""
    from django.db import connection, transaction

    from consent.ledger import GENESIS, event_hash
    from consent.models import AppAuthorization, CareRelationship, ConsentGrant, LedgerHead

    start = datetime(2024, 1, 1, tzinfo=UTC)
    label = fx.text.label
    batch = 2000
    for offset in range(first_patient, first_patient + patients, batch):
        ids = range(offset, min(offset + batch, first_patient + patients))
        with transaction.atomic():
            grants = []
            for p in ids:
                app = fx.apps[p % len(fx.apps)]
                for n, status in enumerate(GRANT_STATUSES):
                    created = start + timedelta(minutes=p % 100_000, seconds=n * 10)
                    grants.append(
                        ConsentGrant(
                            patient_id=f"b{p}",
                            app_id=app.pk,
                            purpose="app-access",
                            text_id=fx.text.pk,
                            scopes=SCOPES,
                            data_classes=["demographics", "observations"],
                            status=status,
                            channel="consent_screen",
                            expires_at=None,
                            ended_at=None if status == "active" else created + timedelta(seconds=5),
                        )
                    )
            ConsentGrant.objects.bulk_create(grants, batch_size=2000)
            rows, heads = [], []
            for i, p in enumerate(ids):
                patient_grants = grants[i * 4 : i * 4 + 4]
                app_id = patient_grants[0].app_id
                previous = GENESIS
                for sequence, (kind, which) in enumerate(PATTERN):
                    event = SimpleNamespace(
                        patient_id=f"b{p}",
                        sequence=sequence,
                        kind=kind,
                        grant_id=patient_grants[which].pk if which is not None else None,
                        app_id=app_id,
                        purpose="app-access",
                        text_label=label,
                        scopes=SCOPES,
                        actor=f"user:{p}",
                        channel="consent_screen",
                        reason="",
                        occurred_at=start + timedelta(minutes=p % 100_000, seconds=sequence),
                        previous_hash=previous,
                    )
                    event.hash = event_hash(event)
                    previous = event.hash
                    rows.append(
                        (
                            *(getattr(event, c) for c in EVENT_COLUMNS[:7]),
                            json.dumps(SCOPES),
                            *(getattr(event, c) for c in EVENT_COLUMNS[8:]),
                        )
                    )
                heads.append(LedgerHead(patient_id=f"b{p}", length=len(PATTERN), last_hash=previous))
            with (
                connection.cursor() as cursor,
                cursor.cursor.copy(f"COPY consent_ledgerevent ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            LedgerHead.objects.bulk_create(heads, batch_size=2000)
            CareRelationship.objects.bulk_create(
                [CareRelationship(patient_id=f"b{p}", organization=fx.providers[p % PROVIDERS]) for p in ids],
                batch_size=2000,
            )
    AppAuthorization.objects.bulk_create(
        [
            AppAuthorization(organization=provider, app=app, decision="enabled")
            for provider in fx.providers
            for app in fx.apps
        ],
        ignore_conflicts=True,
    )


def checked_patient(fx) -> None:
    """The measured patient: a granted, then superseded consent, and an active one for the checked
    app, recorded through the services like any other; held by a provider that enabled the app."""
    from consent.models import CareRelationship
    from consent.services import consent_grant

    CareRelationship.objects.get_or_create(patient_id=CHECKED_PATIENT, organization=fx.providers[0])
    consent_grant(patient_id=CHECKED_PATIENT, app=fx.checked, scopes=["patient/Observation.rs"], channel="api")
    consent_grant(patient_id=CHECKED_PATIENT, app=fx.checked, scopes=SCOPES, channel="api")


def settle() -> None:
    """VACUUM ANALYZE what was just written, so autovacuum does not run during the measurement and
    the planner knows the tables' sizes."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in CONSENT_TABLES:
            cursor.execute(f"VACUUM (ANALYZE) {table}")


def timed(fn, n: int, rounds: int = 5) -> dict:
    """``n`` timed calls in ``rounds`` rounds. Besides the median of all, the lowest round median:
    on a shared machine, noise only ever adds time, so it is the steadiest figure to compare."""
    for _ in range(min(200, n)):  # warm-up: connections, caches, plans
        fn()
    samples, round_medians = [], []
    for _ in range(rounds):
        this_round = []
        for _ in range(n // rounds):
            began = time.perf_counter()
            fn()
            this_round.append(time.perf_counter() - began)
        round_medians.append(statistics.median(this_round))
        samples += this_round
    samples.sort()
    return {
        "n": len(samples),
        "median_us": round(statistics.median(samples) * 1e6, 1),
        "best_round_median_us": round(min(round_medians) * 1e6, 1),
        "mean_us": round(statistics.fmean(samples) * 1e6, 1),
        "p95_us": round(samples[int(len(samples) * 0.95)] * 1e6, 1),
    }


def measure(fx, *, checks: int, requests: int) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from consent.services import check_access

    def check():
        decision = check_access(app=fx.checked, patient_id=CHECKED_PATIENT, data_class="lab_results")
        assert decision.allowed, decision

    client = Client(HTTP_HOST="127.0.0.1", secure=True, HTTP_AUTHORIZATION=f"Bearer {fx.token}")

    def status():
        response = client.get("/api/v1/consents/status", {"patient": CHECKED_PATIENT})
        assert response.status_code == 200, response.content

    def fhir_search():
        response = client.get("/fhir/r4/Consent", {"patient": CHECKED_PATIENT})
        assert response.status_code == 200 and response.json()["total"] == 2, response.content

    with CaptureQueriesContext(connection) as queries:
        check()
    return {
        "check_access": timed(check, checks),
        "check_access_queries": len(queries),
        "status_request": timed(status, requests),
        "fhir_consent_search": timed(fhir_search, requests),
    }


def counts() -> dict:
    from consent.models import CareRelationship, ConsentGrant, LedgerEvent

    return {
        "ledger_events": LedgerEvent.objects.count(),
        "grants": ConsentGrant.objects.count(),
        "care_relationships": CareRelationship.objects.count(),
    }


def ratio(large: dict, small: dict, key: str, figure: str) -> float:
    return round(large[key][figure] / small[key][figure], 3)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000, help="ledger size of the large run")
    parser.add_argument("--small", type=int, default=1_000, help="ledger size of the small run")
    parser.add_argument("--checks", type=int, default=2000, help="check_access calls timed at each size")
    parser.add_argument("--requests", type=int, default=300, help="API requests timed at each size")
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

    began = time.perf_counter()
    fx = setup_fixtures()
    checked_patient(fx)  # 3 events of its own
    small_patients = max(0, (args.small - 3) // EVENTS_PER_PATIENT)
    populate(fx, first_patient=0, patients=small_patients)
    settle()
    small_counts = counts()
    small = measure(fx, checks=args.checks, requests=args.requests)

    fill_began = time.perf_counter()
    large_patients = max(0, (args.events - 3) // EVENTS_PER_PATIENT) - small_patients
    populate(fx, first_patient=small_patients, patients=large_patients)
    settle()
    fill_seconds = round(time.perf_counter() - fill_began, 1)
    large_counts = counts()
    large = measure(fx, checks=args.checks, requests=args.requests)

    report(
        "consent check: 1,000 vs 1,000,000 ledger events (PostgreSQL, in process)",
        {
            "database": env["DATABASE_URL"].split("@")[-1],
            "small": {**small_counts, **small},
            "large": {**large_counts, **large},
            **{
                f"ratio_large_over_small_{figure}": {
                    key: ratio(large, small, key, figure)
                    for key in ("check_access", "status_request", "fhir_consent_search")
                }
                for figure in ("median_us", "best_round_median_us")
            },
            "target_check_access_ratio": 1.2,
            "seconds_to_fill_large_ledger": fill_seconds,
            "seconds_total": round(time.perf_counter() - began, 1),
        },
    )


if __name__ == "__main__":
    main()
