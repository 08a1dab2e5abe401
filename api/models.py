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
    """A FHIR Appointment; booked through ``POST /api/v1/visits`` it is also a *visit*: the app that
    booked it (``app_id``), the slot it took, its reason, and when and why it was cancelled."""

    resource_type = "Appointment"
    patient_id = models.CharField(max_length=64)
    slot_id = models.CharField(max_length=64, blank=True)
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20)
    practitioner_id = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    app_id = models.BigIntegerField(null=True, blank=True, help_text="The app that booked it, if one did.")
    booked_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancellation_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["environment", "patient_id", "start", "id"], name="appointment_patient_start"),
            models.Index(fields=["app_id", "booked_at", "id"], name="appointment_app_booked"),  # an app's visits
        ]


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


# --- Workflow records (/api/v1/) ---------------------------------------------------------------------


class LabResultShare(models.Model):
    """One lab result (an Observation) shared by an app, on the patient's consent, with another
    partner organization until ``expires_at``; revocable before then."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"

    id = models.CharField(primary_key=True, max_length=40)
    environment = models.CharField(max_length=20, choices=Environment.choices)
    app = models.ForeignKey("partners.App", on_delete=models.PROTECT, related_name="lab_result_shares")
    organization = models.ForeignKey(
        "partners.Organization", on_delete=models.PROTECT, related_name="lab_result_shares_made"
    )
    recipient = models.ForeignKey(
        "partners.Organization", on_delete=models.PROTECT, related_name="lab_result_shares_received"
    )
    observation_id = models.CharField(max_length=64)
    patient_id = models.CharField(max_length=64)
    purpose = models.CharField(max_length=500, blank=True)
    consent_grant_id = models.BigIntegerField(help_text="The patient's consent the share rests on.")
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["app", "created_at", "id"], name="labshare_app_created"),
            models.Index(fields=["recipient", "created_at", "id"], name="labshare_recipient_created"),
            models.Index(fields=["observation_id"], name="labshare_observation"),
        ]

    def __str__(self):
        return f"{self.id}: Observation/{self.observation_id} -> {self.recipient_id}"


class EligibilityCheck(models.Model):
    """One eligibility check of a patient's Coverage with its payer (simulated), and its answer."""

    class Outcome(models.TextChoices):
        ELIGIBLE = "eligible", "Eligible"
        NOT_ELIGIBLE = "not_eligible", "Not eligible"
        UNKNOWN = "unknown", "Unknown"

    id = models.CharField(primary_key=True, max_length=40)
    environment = models.CharField(max_length=20, choices=Environment.choices)
    app = models.ForeignKey("partners.App", on_delete=models.PROTECT, related_name="eligibility_checks")
    organization = models.ForeignKey("partners.Organization", on_delete=models.PROTECT, related_name="+")
    patient_id = models.CharField(max_length=64)
    coverage_id = models.CharField(max_length=64)
    payer = models.CharField(max_length=200)
    service_type = models.CharField(max_length=40)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    details = models.JSONField(default=dict, help_text="What the payer answered: plan, dates, cost sharing.")
    consent_grant_id = models.BigIntegerField(null=True, blank=True)
    payer_latency_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["app", "created_at", "id"], name="eligibility_app_created")]

    def __str__(self):
        return f"{self.id}: Patient/{self.patient_id} {self.outcome}"


class IdempotencyRecord(models.Model):
    """One ``Idempotency-Key`` an app sent with a POST: the request it came with (fingerprint) and,
    once the first attempt finished, the response every retry gets back. Keys expire after
    ``IDEMPOTENCY_KEY_HOURS``."""

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"

    app = models.ForeignKey("partners.App", on_delete=models.CASCADE, related_name="idempotency_records")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the method, path and JSON body.")
    state = models.CharField(max_length=20, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "key"], name="idempotency_one_key_per_app")]

    def __str__(self):
        return f"{self.key} ({self.state})"


class Deprecation(models.Model):
    """A published deprecation of part of the API: every response under ``path_prefix`` carries
    ``Deprecation``, ``Sunset`` and ``Link`` headers from ``announced_at``; from ``enforced_at`` on,
    requests get a 410 problem pointing at the migration guide. Data, not code: admins publish them."""

    path_prefix = models.CharField(
        max_length=200,
        unique=True,
        help_text="The path it covers, from /api/: 'v1/' for a whole version, 'v1/visits' for one resource.",
    )
    title = models.CharField(max_length=200)
    summary = models.TextField(help_text="What changes and why (Markdown).")
    replacement = models.CharField(max_length=200, blank=True, help_text="What to use instead: /api/v2/visits")
    migration_guide = models.CharField(
        max_length=300, help_text="The docs page that explains the move: /docs/migrating-to-v2/ or an absolute URL."
    )
    announced_at = models.DateTimeField(help_text="The Deprecation header's date; headers are sent from then on.")
    sunset_at = models.DateTimeField(help_text="The Sunset header's date: when it may stop working.")
    enforced_at = models.DateTimeField(
        null=True, blank=True, help_text="From this moment requests get 410 Gone. Empty: not decided yet."
    )
    published = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sunset_at", "path_prefix"]

    def __str__(self):
        return f"{self.path_prefix}: {self.title}"


from api.adaptive_models import AdaptiveLimitChange  # noqa: E402,F401
from api.deprecation_notice_models import DeprecationNotice  # noqa: E402,F401
from api.usage_models import UsageHour  # noqa: E402,F401
