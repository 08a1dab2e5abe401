"""Who was told of a deprecation, what, and when: one row per deprecation, organization and milestone.

The unique constraint is the claim that makes a notice exactly once: whichever run inserts the row
writes the inbox messages in the same transaction; every other run (a retry, a second scheduler) fails
the insert and tells nobody. Written only by ``api.deprecation_notices``. Imported at the bottom of
``api/models.py`` so Django finds it.
"""

from django.db import models
from django.utils import timezone


class DeprecationNotice(models.Model):
    class Milestone(models.TextChoices):
        ANNOUNCED = "announced", "Announced"
        DAYS_90 = "90_days", "90 days before sunset"
        DAYS_30 = "30_days", "30 days before sunset"
        DAYS_7 = "7_days", "7 days before sunset"
        SUNSET = "sunset", "Sunset"

    class EmailState(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent to every recipient"
        FAILED = "failed", "Given up on some recipients"

    # PROTECT: the record of who was told outlives an admin's change of mind; unpublish instead.
    deprecation = models.ForeignKey("api.Deprecation", on_delete=models.PROTECT, related_name="notices")
    organization = models.ForeignKey(
        "partners.Organization", on_delete=models.CASCADE, related_name="deprecation_notices"
    )
    milestone = models.CharField(max_length=20, choices=Milestone.choices)
    milestone_at = models.DateTimeField(help_text="The milestone's moment, from the deprecation's dates.")
    subject = models.CharField(max_length=200)
    body = models.TextField(help_text="What the inbox messages and the emails said, word for word.")
    calls = models.JSONField(
        default=list,
        help_text='The calls listed: [{"app_id": 3, "app": "Scheduler", "environment": "sandbox", '
        '"endpoint": "GET /api/v1/visits/{visit_id}", "calls": 120}], over the 30 days before the notice.',
    )
    recipients = models.JSONField(
        default=list,
        help_text='One per member told: {"user_id", "email", "emailed_at", "attempts", "error", "gave_up_at"}.',
    )
    created_at = models.DateTimeField(
        default=timezone.now, help_text="When the organization was told: its members' inbox messages were written."
    )
    email_state = models.CharField(max_length=20, choices=EmailState.choices, default=EmailState.PENDING)
    emailed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the email step finished: every recipient emailed (or given up on)."
    )
    email_error = models.TextField(blank=True, help_text="The last failed send, if any.")

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["deprecation", "organization", "milestone"], name="deprecationnotice_once_per_milestone"
            ),
        ]
        indexes = [
            # The email step's work list: only the few rows not yet emailed are in it.
            models.Index(
                fields=["created_at"], condition=models.Q(emailed_at__isnull=True), name="deprecationnotice_unemailed"
            ),
        ]

    def __str__(self):
        return f"{self.deprecation_id} {self.milestone} to {self.organization_id}"

    @property
    def total_calls(self) -> int:
        return sum(row.get("calls", 0) for row in self.calls)
