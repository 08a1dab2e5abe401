"""The changelog entries of what shipped with the docs portal and certification on 2026-11-25: the
changes a partner can see or must know of, published like the history in 0002. Data in the migration,
not read from a file, so it gives the same rows whenever it runs; an entry an admin already wrote under
the same slug is left as it is."""

import datetime

from django.db import migrations

NOV_25 = datetime.date(2026, 11, 25)

ENTRIES = [
    {
        "version": "oauth",
        "kind": "additive",
        "slug": "2026-11-25-oauth-errors-carry-correlation-id",
        "title": "OAuth error bodies carry the correlation id",
        "body": "The token, introspection and revocation endpoints' error bodies (`invalid_client`, "
        "`invalid_grant`, 429 `quota_exceeded`, ...) now carry `correlation_id`, the same value as the "
        "`X-Request-ID` response header, as API problems always did. Look a refusal up by it on "
        "`/diagnostics/` (see [Errors](errors.md)).",
        "affected_endpoints": "POST /oauth/token\nPOST /oauth/introspect\nPOST /oauth/revoke_token",
        "migration_notes": "Nothing to do: a new member of the error object, which OAuth clients ignore.",
    },
    {
        "version": "platform",
        "kind": "additive",
        "slug": "2026-11-25-why-was-i-denied",
        "title": "Why was I denied? Look up a 401, 403 or 429 by its correlation id",
        "body": "Every 401, 403 and 429 your apps get is kept for 7 days under its correlation id. Enter it "
        "on `/diagnostics/` to see which layer refused (token, scope, tier, environment, consent, "
        "organization, quota), the rule and the fix. Only your organization's requests are found.",
        "affected_endpoints": "/api\n/fhir/r4",
        "migration_notes": "",
    },
    {
        "version": "platform",
        "kind": "additive",
        "slug": "2026-11-25-certification-runs",
        "title": "Certification runs for sandbox apps; production tiers require a pass",
        "body": "Start a run from an app's **Certification** page: it checks what the sandbox recorded "
        "(PKCE, refresh, least-privilege scopes, honouring `Retry-After`, stopping after a consent "
        "revocation, https redirect URIs) and your webhook endpoint live. See "
        "[Certification](certification.md); `examples/` has a sample app that passes.",
        "affected_endpoints": "",
        "migration_notes": "The Production and Strategic tiers now require a passing run from the last 30 "
        "days before an admin can approve the upgrade. Run one from the sandbox before you ask.",
    },
    {
        "version": "platform",
        "kind": "additive",
        "slug": "2026-11-25-deprecation-notices",
        "title": "Deprecation notices by email and inbox, with your own call counts",
        "body": "When a deprecation is announced, and 90, 30 and 7 days before its sunset and at the sunset, "
        "the members of every organization whose apps called an affected endpoint in the last 30 days get "
        "one email and one inbox message listing those calls. See "
        "[Deprecation policy](deprecation-policy.md).",
        "affected_endpoints": "",
        "migration_notes": "",
    },
    {
        "version": "platform",
        "kind": "additive",
        "slug": "2026-11-25-status-and-metrics",
        "title": "/status/ shows the platform's health; /readyz checks the broker",
        "body": "`/status/` shows the database, cache, task broker, workers, queues, scheduled tasks and "
        "webhook backlog, as a page or as JSON. `/readyz` now also checks the broker, within 2 seconds. "
        "See [Status and metrics](status-and-metrics.md).",
        "affected_endpoints": "GET /readyz",
        "migration_notes": "",
    },
]


def load(apps, schema_editor):
    ChangelogEntry = apps.get_model("portal", "ChangelogEntry")
    for data in ENTRIES:
        ChangelogEntry.objects.get_or_create(slug=data["slug"], defaults={**data, "date": NOV_25, "published": True})


def unload(apps, schema_editor):
    ChangelogEntry = apps.get_model("portal", "ChangelogEntry")
    ChangelogEntry.objects.filter(slug__in=[data["slug"] for data in ENTRIES]).delete()


class Migration(migrations.Migration):
    dependencies = [("portal", "0002_load_changelog_history")]

    operations = [migrations.RunPython(load, unload)]
