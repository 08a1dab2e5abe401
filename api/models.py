"""The clinical resource store behind the FHIR R4 API, and the access audit.

Each resource type has its own table: the typed, indexed columns its searches use, and ``body``,
the resource as FHIR JSON (without ``meta``, which is rendered from ``version_id`` and
``last_updated``). Sandbox and production data never mix: every row carries its environment and
every query filters on it first.
"""

from django.db import models

from marketplace.append_only import AppendOnlyModel


class Environment(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox"
    PRODUCTION = "production", "Production"


class FhirResource(models.Model):
    id = models.CharField(primary_key=True, max_length=64)
    environment = models.CharField(max_length=20, choices=Environment.choices, default=Environment.SANDBOX)
    version_id = models.PositiveIntegerField(default=1)
    last_updated = models.DateTimeField()
    synthetic = models.BooleanField(default=False, help_text="Generated test data, never a real person.")
    body = models.JSONField()

    resource_type = ""

    class Meta:
        abstract = True

    def __str__(self):
        return f"{self.resource_type}/{self.id}"


class Patient(FhirResource):
    resource_type = "Patient"
    identifier_system = models.CharField(max_length=200, blank=True)
    identifier_value = models.CharField(max_length=100, blank=True)
    family = models.CharField(max_length=100, blank=True)
    given = models.CharField(max_length=100, blank=True)
    name_text = models.CharField(max_length=250, blank=True, help_text="Lower-cased given and family names.")
    birth_date = models.DateField(null=True, blank=True)
    gender = models.CharField(max_length=20, blank=True)
    managing_organization_id = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["environment", "identifier_value"], name="patient_identifier"),
            models.Index(fields=["environment", "family", "id"], name="patient_family"),
            models.Index(fields=["environment", "birth_date", "id"], name="patient_birthdate"),
        ]


class Practitioner(FhirResource):
    resource_type = "Practitioner"
    family = models.CharField(max_length=100, blank=True)
    given = models.CharField(max_length=100, blank=True)


class Organization(FhirResource):
    """A FHIR Organization (a clinic, a lab, a payer): clinical data, not a partner organization."""

    resource_type = "Organization"
    name = models.CharField(max_length=200, blank=True)


class Observation(FhirResource):
    resource_type = "Observation"
    patient_id = models.CharField(max_length=64)
    category = models.CharField(max_length=40)
    code = models.CharField(max_length=40, help_text="LOINC code.")
    effective = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["environment", "patient_id", "effective", "id"], name="obs_patient_date"),
            models.Index(fields=["environment", "patient_id", "category", "effective", "id"], name="obs_patient_cat"),
            models.Index(fields=["environment", "patient_id", "code", "effective", "id"], name="obs_patient_code"),
        ]


class Schedule(FhirResource):
    resource_type = "Schedule"
    practitioner_id = models.CharField(max_length=64)


class Slot(FhirResource):
    resource_type = "Slot"
    schedule_id = models.CharField(max_length=64)
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(max_length=20)

    class Meta:
        indexes = [
            models.Index(fields=["environment", "schedule_id", "start", "id"], name="slot_schedule_start"),
            models.Index(fields=["environment", "status", "start", "id"], name="slot_status_start"),
        ]


class Appointment(FhirResource):
    resource_type = "Appointment"
    patient_id = models.CharField(max_length=64)
    slot_id = models.CharField(max_length=64, blank=True)
    start = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20)

    class Meta:
        indexes = [models.Index(fields=["environment", "patient_id", "start", "id"], name="appointment_patient_start")]


class Coverage(FhirResource):
    resource_type = "Coverage"
    patient_id = models.CharField(max_length=64)
    payor = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20)

    class Meta:
        indexes = [models.Index(fields=["environment", "patient_id", "id"], name="coverage_patient")]


RESOURCE_MODELS = {
    model.resource_type: model
    for model in (Patient, Practitioner, Organization, Observation, Schedule, Slot, Appointment, Coverage)
}


class AccessEvent(AppendOnlyModel):
    """One touch of patient data, or a refused attempt at one. Written in the transaction of the
    access it records; never changed. Writers only insert: a beat task later seals events into
    hash-chained batches (``AuditBatch``), so no writer ever waits on a chain lock."""

    class Outcome(models.TextChoices):
        ALLOWED = "allowed", "Allowed"
        REFUSED = "refused", "Refused"

    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField(db_index=True)
    app_id = models.BigIntegerField(null=True)  # indexed with id, below
    client_id = models.CharField(max_length=100, blank=True)
    organization_id = models.BigIntegerField(null=True, db_index=True)
    user_id = models.BigIntegerField(null=True)
    patient_id = models.CharField(max_length=64, blank=True)  # indexed with id, below
    token_id = models.CharField(
        max_length=64, blank=True, help_text="A prefix of the token's SHA-256; never the token."
    )
    resource_type = models.CharField(max_length=40, blank=True)
    resource_id = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=20, help_text="read, search, create, update, delete")
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    refusal_code = models.CharField(max_length=60, blank=True)
    consent_grant_id = models.BigIntegerField(null=True)
    environment = models.CharField(max_length=20, blank=True)
    ip = models.GenericIPAddressField(null=True)
    user_agent = models.CharField(max_length=300, blank=True)
    correlation_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Every insert maintains every index, on the hottest write there is: only what is read.
            models.Index(fields=["app_id", "id"], name="accessevent_app_id"),  # a partner's own log
            models.Index(fields=["patient_id", "id"], name="accessevent_patient"),  # who saw my data
            models.Index(fields=["correlation_id"], name="accessevent_correlation"),  # support look-ups
        ]

    def __str__(self):
        return f"{self.action} {self.resource_type}/{self.resource_id} {self.outcome}"


class AuditBatch(models.Model):
    """A sealed run of access events, ``first_event_id``..``last_event_id``: the digest of their
    content, chained to the previous batch's hash."""

    sequence = models.PositiveIntegerField(unique=True)
    first_event_id = models.BigIntegerField()
    last_event_id = models.BigIntegerField()
    event_count = models.PositiveIntegerField()
    events_digest = models.CharField(max_length=64)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField()

    class Meta:
        ordering = ["sequence"]

    def __str__(self):
        return f"batch {self.sequence}: events {self.first_event_id}-{self.last_event_id}"
