"""Sandbox seed data of the partners app: an admin, a demo organization, its developer and app, and
a demo patient login. Idempotent: running it again leaves one of each and the same credentials, so
the logins that ``make run`` prints always work.
"""

import os

from django.db import transaction
from django.utils import timezone

from partners.models import App, Membership, Organization, Tier, User

DEMO_CLIENT_ID = "demo-acme-sandbox"


def _password(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _user(email: str, password: str, **fields) -> User:
    user, _ = User.objects.get_or_create(email=email, defaults=fields)
    for key, value in fields.items():
        setattr(user, key, value)
    user.email_verified_at = user.email_verified_at or timezone.now()
    user.set_password(password)
    user.save()
    return user


@transaction.atomic
def seed_partners() -> dict:
    admin_password = _password("SEED_ADMIN_PASSWORD", "sandbox-admin-pass")
    developer_password = _password("SEED_DEVELOPER_PASSWORD", "sandbox-developer-pass")
    patient_password = _password("SEED_PATIENT_PASSWORD", "sandbox-patient-pass")
    app_secret = _password("SEED_APP_SECRET", "demo-sandbox-client-secret-change-me")

    admin = _user(
        "admin@marketplace.test",
        admin_password,
        first_name="Platform",
        last_name="Admin",
        is_staff=True,
        is_superuser=True,
    )
    developer = _user("developer@acme-health.test", developer_password, first_name="Dana", last_name="Developer")
    patient = _user(
        "patient@example.test",
        patient_password,
        first_name="Pat",
        last_name="Patient",
        fhir_patient_id="demo-patient-1",
    )

    sandbox = Tier.objects.get(slug="sandbox")
    organization, _ = Organization.objects.get_or_create(
        slug="acme-health",
        defaults={
            "name": "Acme Health Apps",
            "partner_type": Organization.PartnerType.DEVELOPER,
            "tier": sandbox,
            "website": "https://acme-health.example",
            "created_by": developer,
        },
    )
    Membership.objects.get_or_create(
        user=developer, organization=organization, defaults={"role": Membership.Role.OWNER}
    )

    app = App.objects.filter(client_id=DEMO_CLIENT_ID).first() or App(client_id=DEMO_CLIENT_ID)
    app.organization = organization
    app.user = developer
    app.name = "Acme Patient Companion"
    app.environment = App.Environment.SANDBOX
    app.client_type = App.CLIENT_CONFIDENTIAL
    app.grant_types = [App.GRANT_AUTHORIZATION_CODE, App.GRANT_CLIENT_CREDENTIALS]
    app.authorization_grant_type = App.GRANT_AUTHORIZATION_CODE
    app.redirect_uris = "http://127.0.0.1:8765/callback https://acme-health.example/oauth/callback"
    app.description = "A demo patient-facing app: reads lab results and books visits in the sandbox."
    app.homepage_url = "https://acme-health.example"
    app.privacy_policy_url = "https://acme-health.example/privacy"
    app.algorithm = App.RS256_ALGORITHM
    app.client_secret = app_secret  # hashed on save
    app.save()

    return {
        "admin": {"email": admin.email, "password": admin_password},
        "developer": {
            "email": developer.email,
            "password": developer_password,
            "organization": organization.slug,
        },
        "patient": {"email": patient.email, "password": patient_password, "fhir_patient_id": patient.fhir_patient_id},
        "app": {
            "name": app.name,
            "client_id": app.client_id,
            "client_secret": app_secret,
            "environment": app.environment,
            "redirect_uris": app.redirect_uri_list,
        },
    }
