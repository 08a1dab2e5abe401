"""Certification: the sandbox trace its checks read, the runs a partner starts, and each run's check
results. Imported by ``partners.models``.

The trace lives here, in the lowest layer, because both of its writers may reach it: the token
endpoint (partners) records tokens issued, the API (``api.sandbox_trace``) records calls and 429s.
The suite that reads it (``api.certification``) also reads consent, so it lives in the API.
"""

from datetime import timedelta

from django.conf import settings
from django.db import models

from partners.models import App

# How long sandbox behaviour is kept, and so how far back the checks can look.
TRACE_RETENTION = timedelta(days=14)
# How long a passing run counts for the tier checklist and the approval of a tier that requires one.
PASS_VALID_FOR = timedelta(days=30)


class SandboxTrace(models.Model):
    """One fact about a sandbox app's behaviour, kept ``TRACE_RETENTION`` for certification: an API
    call (its endpoint, status, the patient it was for, which of the token's scopes it needed), a 429
    (and the ``Retry-After`` it said), or a token issued (grant, PKCE, scopes). Production apps are
    never traced. The hourly usage rollup keeps counts; certification needs the order of events."""

    class Kind(models.TextChoices):
        API_CALL = "api_call", "API call"
        RATE_LIMITED = "rate_limited", "Refused with 429"
        TOKEN_ISSUED = "token_issued", "Token issued"

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField(help_text="When the request arrived.")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    endpoint = models.CharField(max_length=300, blank=True, help_text='"GET /fhir/r4/Patient/{resource_id}"')
    endpoint_group = models.CharField(max_length=40, blank=True)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    problem_code = models.CharField(max_length=60, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    patient_id = models.CharField(max_length=64, blank=True, help_text="FHIR logical id, as consent names it.")
    token_id = models.CharField(max_length=16, blank=True, help_text="The first 16 hex of the token's SHA-256.")
    scopes = models.JSONField(default=list, blank=True, help_text="The token's scopes (granted, for a token).")
    scopes_used = models.JSONField(default=list, blank=True, help_text="The token's scopes this call needed.")
    retry_after = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds, for a 429.")
    grant_type = models.CharField(max_length=40, blank=True)
    pkce_method = models.CharField(max_length=10, blank=True, help_text="S256 when a code_verifier was checked.")

    class Meta:
        indexes = [
            models.Index(fields=["app", "at"], name="sandbox_trace_app_at"),
            models.Index(fields=["at"], name="sandbox_trace_at"),  # the purge
            # A call with a revoked token is attributed through the token it was issued as.
            models.Index(fields=["token_id"], name="sandbox_trace_token", condition=models.Q(kind="token_issued")),
        ]

    def __str__(self):
        return f"{self.app_id} {self.kind} {self.endpoint or self.grant_type} {self.at:%Y-%m-%d %H:%M:%S}"


class CertificationRun(models.Model):
    """One run of the certification suite (``api.certification``) against a sandbox app's recorded
    behaviour and live webhook endpoints. Its results are written all at once when it ends."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        ERROR = "error", "Error"

    OPEN = (Status.QUEUED, Status.RUNNING)

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="certification_runs")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="Why the run stopped with status error (for admins).")

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # One run at a time per app, whatever two clicks race.
            models.UniqueConstraint(
                fields=["app"],
                condition=models.Q(status__in=["queued", "running"]),
                name="certification_one_open_run_per_app",
            ),
        ]
        indexes = [models.Index(fields=["app", "status", "finished_at"], name="certification_run_lookup")]

    def __str__(self):
        return f"Certification run #{self.pk} of {self.app} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN

    @property
    def passed(self) -> bool:
        return self.status == self.Status.PASSED


class CertificationCheckResult(models.Model):
    """One check of a run: passed or not, the evidence it saw, and where the docs explain it."""

    run = models.ForeignKey(CertificationRun, on_delete=models.CASCADE, related_name="results")
    key = models.CharField(max_length=60)
    position = models.PositiveSmallIntegerField(default=0)
    title = models.CharField(max_length=120)
    passed = models.BooleanField()
    summary = models.TextField()
    evidence = models.JSONField(default=list, blank=True, help_text="Lines of evidence, most telling first.")
    docs_url = models.CharField(max_length=200)

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="certification_result_once_per_check")]

    def __str__(self):
        return f"{self.key}: {'passed' if self.passed else 'failed'}"
