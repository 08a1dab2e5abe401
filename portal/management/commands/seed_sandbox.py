"""``manage.py seed_sandbox``: the demo data of every app, idempotent, with the logins it made.

It lives in the portal, the top layer, because it seeds every layer below it.
"""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from api.seed import DEFAULT_PATIENTS, seed_deprecations, seed_fhir_sandbox, synthetic_counts
from consent.seed import seed_consent
from partners.models import Organization
from partners.seed import seed_partners
from portal.changelog import changelog_entries_link_deprecations
from portal.search import doc_sections_rebuild


class Command(BaseCommand):
    help = (
        "Create (or refresh) the sandbox: tiers, an admin, a demo partner with an app, a demo patient, and "
        "synthetic FHIR data (organizations, practitioners, patients with observations, schedules, slots, "
        "appointments, coverage) in the care of the sandbox provider."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the logins and credentials as JSON.")
        parser.add_argument(
            "--patients",
            type=int,
            default=DEFAULT_PATIENTS,
            help=f"Synthetic patients besides the demo patient (default {DEFAULT_PATIENTS}). Deterministic and "
            "incremental: the same number again adds nothing, a larger one adds the difference.",
        )

    def handle(self, *args, **options):
        if options["patients"] < 0:
            raise CommandError("--patients must be zero or more.")
        result = {"url": settings.PUBLIC_BASE_URL + "/", **seed_partners()}
        result.update(seed_consent(patient_ids=[result["patient"]["fhir_patient_id"]]))
        provider = Organization.objects.get(slug=result["provider"]["organization"])
        fhir = seed_fhir_sandbox(patients=options["patients"], care_organization=provider)
        result["fhir"] = {**fhir, "stored": synthetic_counts()}
        result["deprecations"] = seed_deprecations()
        # What manage.py index_docs does: a fresh sandbox's first docs search finds an index ready.
        indexed = doc_sections_rebuild()
        result["docs_search"] = {"pages": indexed.pages, "reindexed": len(indexed.rebuilt)}
        # The changelog's history is loaded by a migration, before the deprecations exist.
        result["changelog"] = {"deprecations_linked": changelog_entries_link_deprecations()}
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        base = result["url"]
        app = result["app"]
        lines = [
            "",
            "Sandbox ready.",
            f"  Portal           {base}",
            f"  Django admin     {base}admin/",
            f"  Admin login      {result['admin']['email']} / {result['admin']['password']}",
            f"  Developer login  {result['developer']['email']} / {result['developer']['password']}",
            f"  Patient login    {result['patient']['email']} / {result['patient']['password']}"
            f"  (Patient/{result['patient']['fhir_patient_id']})",
            f"  Provider login   {result['provider']['email']} / {result['provider']['password']}"
            f"  ({result['provider']['organization']})",
            f"  Demo app         {app['name']} ({app['environment']})",
            f"    client_id      {app['client_id']}",
            f"    client_secret  {app['client_secret']}",
            f"    redirect URIs  {' '.join(app['redirect_uris'])}",
            f"  FHIR sandbox     {base}fhir/r4/  Patient/{fhir['demo_patient']} and {fhir['patients']} synthetic "
            f"patients (seed_sandbox --patients N for more)",
            "    stored         " + ", ".join(f"{n} {rt}" for rt, n in result["fhir"]["stored"].items()),
            f"  API reference    {base}api/reference/v2/ (and v1; v1 visits are deprecated)",
            "",
        ]
        self.stdout.write("\n".join(lines))
