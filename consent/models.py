"""Consent: versioned texts, grants, the append-only hash-chained ledger, and organizations'
authorization of apps.

Patients are referred to by FHIR logical id (``Patient/<id>`` without the prefix), never by a key
into the API's tables. Consent and authorization are kept apart: a patient may consent while the
organizations holding their records have not authorized the app, and the check says which is missing.
"""

from django.conf import settings
from django.db import models

from marketplace.append_only import AppendOnlyError, AppendOnlyModel
from partners.models import App, Organization

__all__ = ["AppendOnlyError"]  # raised by ConsentText and LedgerEvent; callers catch it from here


class ConsentText(models.Model):
    """What a patient is asked to agree to, per purpose, in plain language. Once published a
    version never changes; a new version supersedes it, and grants keep the version they were given
    under."""

    purpose = models.SlugField(max_length=60)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    body = models.TextField(help_text="Markdown, in plain language.")
    data_classes = models.JSONField(default=list, help_text="The data classes (partners.scopes) this text covers.")
    effective_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["purpose", "-version"]
        constraints = [models.UniqueConstraint(fields=["purpose", "version"], name="consent_text_version_once")]

    def __str__(self):
        return f"{self.purpose} v{self.version}"

    def save(self, *args, **kwargs):
        if self.pk:
            stored = ConsentText.objects.filter(pk=self.pk).values("published_at").first()
            if stored and stored["published_at"] is not None:
                raise AppendOnlyError(f"{self} is published and cannot change; publish a new version instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.published_at is not None:
            raise AppendOnlyError(f"{self} is published and cannot be deleted.")
        return super().delete(*args, **kwargs)

    @property
    def label(self) -> str:
        return f"{self.purpose}:v{self.version}"

    def adds_data_classes_to(self, earlier: "ConsentText") -> list[str]:
        return sorted(set(self.data_classes) - set(earlier.data_classes))


class ConsentGrant(models.Model):
    """A patient's consent that an app may use some of their data, for a purpose, under one text."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"
        SUPERSEDED = "superseded", "Superseded"

    class Channel(models.TextChoices):
        CONSENT_SCREEN = "consent_screen", "Consent screen"
        SIGNED_FORM = "signed_form", "Recorded by a provider from a signed form"
        API = "api", "API"

    patient_id = models.CharField(max_length=64)
    app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="consent_grants")
    purpose = models.SlugField(max_length=60)
    text = models.ForeignKey(ConsentText, on_delete=models.PROTECT, related_name="grants")
    scopes = models.JSONField(default=list)
    data_classes = models.JSONField(default=list)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    channel = models.CharField(max_length=20, choices=Channel.choices)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recorded_by_organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source_document = models.CharField(
        max_length=500, blank=True, help_text="Reference to the signed form a provider recorded this from."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.TextField(blank=True)
    last_access_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient_id", "app", "purpose"],
                condition=models.Q(status="active"),
                name="consent_one_active_grant",
            )
        ]
        indexes = [models.Index(fields=["patient_id", "app", "status"], name="consent_grant_lookup")]

    def __str__(self):
        return f"Patient/{self.patient_id} → {self.app} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class LedgerEvent(AppendOnlyModel):
    """One event in a patient's consent history. Append-only, hash-chained per patient.

    The chain is per patient, not global: each patient's history verifies on its own, and two
    patients' consents are recorded concurrently without queueing on one platform-wide lock. Every
    event's ``hash`` covers its content and the previous event's hash in the same patient's chain,
    and ``LedgerHead`` holds each chain's length and last hash, so an edit, a removal (even of the
    last event) or a reordering is detected by ``manage.py verify_ledger``.
    """

    class Kind(models.TextChoices):
        GRANTED = "granted", "Granted"
        DENIED = "denied", "Denied"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"
        SUPERSEDED = "superseded", "Superseded"

    patient_id = models.CharField(max_length=64)
    sequence = models.PositiveIntegerField(help_text="Position in this patient's chain, from 0.")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    grant = models.ForeignKey(ConsentGrant, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    app = models.ForeignKey(App, on_delete=models.PROTECT, related_name="+")
    purpose = models.SlugField(max_length=60)
    text_label = models.CharField(max_length=80, blank=True)
    scopes = models.JSONField(default=list)
    actor = models.CharField(max_length=120, help_text='Who: "user:<id>", "organization:<slug>", "system".')
    channel = models.CharField(max_length=20, choices=ConsentGrant.Channel.choices)
    reason = models.TextField(blank=True)
    occurred_at = models.DateTimeField()
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["patient_id", "sequence"]
        constraints = [models.UniqueConstraint(fields=["patient_id", "sequence"], name="ledger_chain_position_once")]

    def __str__(self):
        return f"Patient/{self.patient_id} #{self.sequence} {self.kind}"


class LedgerHead(models.Model):
    """The end of a patient's chain: how long it is and its last hash. Appends lock this row, which
    serializes one patient's events while other patients' proceed in parallel."""

    patient_id = models.CharField(max_length=64, primary_key=True)
    length = models.PositiveIntegerField(default=0)
    last_hash = models.CharField(max_length=64, blank=True)

    def __str__(self):
        return f"Patient/{self.patient_id}: {self.length} events"


class CareRelationship(models.Model):
    """A provider organization that holds a patient's records, and so decides which apps may reach
    them (``AppAuthorization``), independently of the patient's consent."""

    patient_id = models.CharField(max_length=64, db_index=True)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="care_relationships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["patient_id", "organization"], name="care_relationship_once")]

    def __str__(self):
        return f"Patient/{self.patient_id} at {self.organization}"


class AppAuthorization(models.Model):
    """A provider organization's decision about an app, for all of its patients.

    Without a decision, sandbox apps are enabled (synthetic data) and production apps are not: a
    provider enables a production app explicitly before it reaches its patients' records.
    """

    class Decision(models.TextChoices):
        ENABLED = "enabled", "Enabled"
        BLOCKED = "blocked", "Blocked"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="app_authorizations")
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="authorizations")
    decision = models.CharField(max_length=20, choices=Decision.choices)
    reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "app"], name="app_authorization_once")]

    def __str__(self):
        return f"{self.organization} {self.decision} {self.app}"


class ConsentScreenShown(models.Model):
    """One consent screen a patient was shown, and what became of it: the denominator of the admins'
    consent completion rate (``portal.ecosystem``).

    Written by ``consent.screen_services`` only: a row when the screen first renders for an
    authorization request that asks a patient for health data (a reload of the same request, while
    its page can still be answered, reuses the row), then ``decision`` when the patient answers the
    page carrying its ``key``. The key travels inside the signed consent request, so a page
    re-rendered after a form error, or answered twice, is still the one screen. A screen never
    answered stays undecided: abandoned once its page can no longer be answered
    (``consent.forms.REQUEST_MAX_AGE``).
    """

    class Decision(models.TextChoices):
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"

    key = models.UUIDField(unique=True, editable=False, help_text="Signed into the page; names it on the POST.")
    patient_id = models.CharField(max_length=64)
    # Cascade, unlike grants: these rows are measurements, not evidence of consent, and go with the app.
    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="consent_screens")
    scopes = models.JSONField(default=list, help_text="What the app asked for, as validated.")
    data_classes = models.JSONField(default=list)
    shown_at = models.DateTimeField()
    decision = models.CharField(max_length=20, choices=Decision.choices, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-shown_at"]
        verbose_name = "consent screen shown"
        verbose_name_plural = "consent screens shown"
        indexes = [
            models.Index(fields=["shown_at"], name="consent_screen_shown_at"),
            models.Index(fields=["patient_id", "app", "shown_at"], name="consent_screen_reuse"),
        ]

    def __str__(self):
        return f"Patient/{self.patient_id} shown {self.app} ({self.decision or 'undecided'})"
