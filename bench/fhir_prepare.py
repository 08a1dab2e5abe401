"""Run by bench/fhir_core.py in a child process on one bench database: an app with a sandbox
patient-context token, that patient's consent, and the URLs of pages 1 and 50 of the patient's
Observation search. Prints them as one JSON line."""

import json
import secrets
import sys
from datetime import timedelta

import django

django.setup()

from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402
from oauth2_provider.models import AccessToken, set_token_value  # noqa: E402

from api.models import Observation  # noqa: E402
from consent.services import consent_grant  # noqa: E402
from partners.models import App, Organization, Tier, User  # noqa: E402

PATIENT_ID = "demo-patient-1"  # 160 observations: 50 pages of 2


def main(page_size: int) -> None:
    from bench.harness import unbounded_quotas

    organization, _ = Organization.objects.get_or_create(
        slug="bench-fhir",
        defaults={"name": "Bench", "partner_type": "developer", "tier": Tier.objects.get(slug="strategic")},
    )
    organization.rate_quota_overrides = unbounded_quotas()
    organization.save(update_fields=["rate_quota_overrides"])
    app = App.objects.filter(client_id="bench-fhir").first() or App.objects.create(
        client_id="bench-fhir",
        organization=organization,
        name="Bench FHIR",
        client_type="confidential",
        authorization_grant_type="authorization-code",
        grant_types=["authorization-code"],
        redirect_uris="https://bench.example/cb",
        client_secret=secrets.token_urlsafe(24),
    )
    user = User.objects.filter(fhir_patient_id=PATIENT_ID).first() or User.objects.create_user(
        email=f"bench-{PATIENT_ID}@example.test", password=None, fhir_patient_id=PATIENT_ID
    )
    consent_grant(patient_id=PATIENT_ID, app=app, scopes=["patient/*.rs"], channel="api")
    raw = secrets.token_urlsafe(32)
    token = AccessToken(
        application=app, user=user, expires=timezone.now() + timedelta(hours=2), scope="launch/patient patient/*.rs"
    )
    set_token_value(token, raw)
    token.save()

    client = Client(HTTP_HOST="127.0.0.1", secure=True)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert client.get(f"/fhir/r4/Patient/{PATIENT_ID}", **auth).status_code == 200
    first = url = f"/fhir/r4/Observation?patient={PATIENT_ID}&_sort=-date&_count={page_size}"
    for _ in range(1, 50):
        body = client.get(url, **auth).json()
        nexts = [link["url"] for link in body.get("link", []) if link["relation"] == "next"]
        assert nexts, "the patient has fewer than 50 pages of observations at this page size"
        url = nexts[0].split("127.0.0.1", 1)[1]
    print(
        json.dumps(
            {
                "token": raw,
                "patient": PATIENT_ID,
                "page1": first,
                "page50": url,
                "observations": Observation.objects.count(),
                "patient_observations": Observation.objects.filter(patient_id=PATIENT_ID).count(),
            }
        )
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
