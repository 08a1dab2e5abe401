"""The four tiers of the upgrade path. Admins may edit them later; this seeds what a new install has."""

from django.db import migrations

READ_SCOPES = [
    "launch/patient", "openid", "fhirUser", "offline_access", "online_access",
    "patient/*.read", "patient/*.rs", "user/*.read", "user/*.rs",
    "appointments.read", "consent.read", "eligibility.read", "events.read", "lab_results.read",
]
WRITE_SCOPES = ["appointments.write", "webhooks.manage", "lab_results.share"]
VERIFIED_SCOPES = ["system/*.read", "system/*.rs", "consent.write"]


def quotas(factor):
    base = {
        "fhir_read": {"burst": 10, "per_minute": 120, "per_day": 10_000},
        "fhir_search": {"burst": 5, "per_minute": 60, "per_day": 5_000},
        "writes": {"burst": 2, "per_minute": 30, "per_day": 1_000},
        "eligibility": {"burst": 1, "per_minute": 5, "per_day": 100},
        "token": {"burst": 2, "per_minute": 20, "per_day": 2_000},
    }
    return {group: {window: count * factor for window, count in windows.items()} for group, windows in base.items()}


TIERS = [
    {
        "slug": "sandbox", "name": "Sandbox", "rank": 0,
        "summary": "Where every organization starts: sandbox apps on synthetic data, credentials at once.",
        "allowed_scopes": READ_SCOPES + WRITE_SCOPES,
        "write_access": True, "production_credentials": False, "max_apps": 3, "max_webhook_subscriptions": 2,
        "rate_quotas": quotas(1), "patient_token_lifetime": 3600, "system_token_lifetime": 300,
        "refresh_token_lifetime": 60 * 60 * 24 * 30,
        "requires_security_questionnaire": False, "requires_baa": False, "requires_certification": False,
        "requires_admin_approval": False,
    },
    {
        "slug": "verified", "name": "Verified", "rank": 1,
        "summary": "A reviewed partner: backend services, provider-recorded consent, higher sandbox quotas.",
        "allowed_scopes": READ_SCOPES + WRITE_SCOPES + VERIFIED_SCOPES,
        "write_access": True, "production_credentials": False, "max_apps": 10, "max_webhook_subscriptions": 5,
        "rate_quotas": quotas(3), "patient_token_lifetime": 3600, "system_token_lifetime": 300,
        "refresh_token_lifetime": 60 * 60 * 24 * 90,
        "requires_security_questionnaire": True, "requires_baa": False, "requires_certification": False,
        "requires_admin_approval": True,
    },
    {
        "slug": "production", "name": "Production", "rank": 2,
        "summary": "Live patient data: production credentials under a signed business associate agreement.",
        "allowed_scopes": READ_SCOPES + WRITE_SCOPES + VERIFIED_SCOPES,
        "write_access": True, "production_credentials": True, "max_apps": 20, "max_webhook_subscriptions": 10,
        "rate_quotas": quotas(10), "patient_token_lifetime": 3600, "system_token_lifetime": 300,
        "refresh_token_lifetime": 60 * 60 * 24 * 90,
        "requires_security_questionnaire": True, "requires_baa": True, "requires_certification": True,
        "requires_admin_approval": True,
    },
    {
        "slug": "strategic", "name": "Strategic", "rank": 3,
        "summary": "High-volume partners with a named contact: the largest quotas and subscription caps.",
        "allowed_scopes": READ_SCOPES + WRITE_SCOPES + VERIFIED_SCOPES,
        "write_access": True, "production_credentials": True, "max_apps": 50, "max_webhook_subscriptions": 25,
        "rate_quotas": quotas(50), "patient_token_lifetime": 3600, "system_token_lifetime": 300,
        "refresh_token_lifetime": 60 * 60 * 24 * 180,
        "requires_security_questionnaire": True, "requires_baa": True, "requires_certification": True,
        "requires_admin_approval": True,
    },
]


def seed_tiers(apps, schema_editor):
    Tier = apps.get_model("partners", "Tier")
    for values in TIERS:
        Tier.objects.update_or_create(slug=values["slug"], defaults=values)


def unseed_tiers(apps, schema_editor):
    # Tiers may be in use by then; leave them rather than fail the reversal.
    pass


class Migration(migrations.Migration):
    dependencies = [("partners", "0001_initial")]

    operations = [migrations.RunPython(seed_tiers, unseed_tiers)]
