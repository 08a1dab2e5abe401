"""``manage.py seed_sandbox``: the demo data of every app, idempotent, with the logins it made.

It lives in the portal, the top layer, because it seeds every layer below it.
"""

import json

from django.conf import settings
from django.core.management.base import BaseCommand

from consent.seed import seed_consent
from partners.seed import seed_partners


class Command(BaseCommand):
    help = "Create (or refresh) the sandbox: tiers, an admin, a demo partner with an app, a demo patient."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the logins and credentials as JSON.")

    def handle(self, *args, **options):
        result = {"url": settings.PUBLIC_BASE_URL + "/", **seed_partners()}
        result.update(seed_consent(patient_ids=[result["patient"]["fhir_patient_id"]]))
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
            "",
        ]
        self.stdout.write("\n".join(lines))
