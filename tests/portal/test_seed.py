import json
from io import StringIO

import pytest
from django.contrib.auth.hashers import check_password
from django.core.management import call_command

from consent.models import CareRelationship
from partners.models import App, Membership, Organization, User

pytestmark = pytest.mark.django_db


def seed(*args) -> str:
    out = StringIO()
    call_command("seed_sandbox", *args, stdout=out)
    return out.getvalue()


def counts():
    return [model.objects.count() for model in (User, Organization, Membership, App, CareRelationship)]


def test_seed_is_idempotent_and_its_printed_logins_work(client):
    seed()
    first = counts()
    data = json.loads(seed("--json"))
    assert counts() == first
    assert data["url"].endswith("/")
    for role in ("admin", "developer", "patient", "provider"):
        assert client.login(email=data[role]["email"], password=data[role]["password"]), role
    app = App.objects.get(client_id=data["app"]["client_id"])
    assert check_password(data["app"]["client_secret"], app.client_secret)
    assert app.environment == "sandbox"
    patient = User.objects.get(email=data["patient"]["email"])
    assert patient.fhir_patient_id == data["patient"]["fhir_patient_id"]
    assert CareRelationship.objects.filter(patient_id=patient.fhir_patient_id).exists()
    assert User.objects.get(email=data["admin"]["email"]).is_staff


def test_the_human_output_names_every_login():
    text = seed()
    for expected in ("Admin login", "Developer login", "Patient login", "Provider login", "client_secret"):
        assert expected in text


def test_the_seeded_deprecation_is_announced_once_to_every_app_s_feed():
    from partners import event_services
    from partners.models import EventRecipient, OutboxEvent

    seed()
    seed()
    (event,) = OutboxEvent.objects.filter(type="deprecation.announced")
    event_services.event_fan_out(event_id=event.pk)  # the worker's job, after the seed's commit
    demo = App.objects.get(client_id="demo-acme-sandbox")
    assert EventRecipient.objects.filter(event=event, app=demo).exists()
    assert EventRecipient.objects.filter(event=event).count() == App.objects.count()
