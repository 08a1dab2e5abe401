"""Sandbox seed data of the consent app: a provider organization that holds the demo patient's
records (so organization authorization applies to them) and its owner's login. Idempotent."""

import os

from django.db import transaction
from django.utils import timezone

from consent.models import CareRelationship
from partners.models import Membership, Organization, Tier, User

SANDBOX_PROVIDER_SLUG = "sandbox-health-system"


@transaction.atomic
def seed_consent(*, patient_ids) -> dict:
    password = os.environ.get("SEED_PROVIDER_PASSWORD", "sandbox-provider-pass")
    provider_admin, _ = User.objects.get_or_create(
        email="admin@sandbox-health.test", defaults={"first_name": "Casey", "last_name": "Clinician"}
    )
    provider_admin.email_verified_at = provider_admin.email_verified_at or timezone.now()
    provider_admin.set_password(password)
    provider_admin.save()
    provider, _ = Organization.objects.get_or_create(
        slug=SANDBOX_PROVIDER_SLUG,
        defaults={
            "name": "Sandbox Health System",
            "partner_type": Organization.PartnerType.PROVIDER,
            "tier": Tier.objects.get(slug="verified"),
            "website": "https://sandbox-health.example",
            "created_by": provider_admin,
        },
    )
    Membership.objects.get_or_create(user=provider_admin, organization=provider, defaults={"role": "owner"})
    for patient_id in patient_ids:
        CareRelationship.objects.get_or_create(patient_id=patient_id, organization=provider)
    return {"provider": {"email": provider_admin.email, "password": password, "organization": provider.slug}}
