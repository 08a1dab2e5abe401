"""The history of the adaptive limits (``api.adaptive``): one row per stretch of time a tightened group
factor or a per-app cap was in force, from when it started to when it ended (empty while it still is).

Rows are written only by ``api.adaptive.evaluate``; the limits themselves are read from the shared
cache, never from here, so the API pays nothing for this table. Imported at the bottom of
``api/models.py`` so Django finds it.
"""

from django.db import models


class AdaptiveLimitChange(models.Model):
    group = models.CharField(max_length=40, help_text="The endpoint group (settings.ADAPTIVE_GROUPS).")
    app = models.ForeignKey(
        "partners.App",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="adaptive_limit_changes",
        db_index=False,  # the (app, started_at) index below serves it
        help_text="The app capped alone; empty when the whole group was tightened.",
    )
    factor = models.FloatField(default=1.0, help_text="The share of the group's quotas in force (1.0: all of them).")
    app_cap = models.PositiveIntegerField(null=True, blank=True, help_text="The app's own cap, requests per minute.")
    reason = models.TextField(help_text="Why, as the 429's detail and the dashboards said it.")
    signals = models.JSONField(default=dict, blank=True, help_text="What was measured when it started.")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True, help_text="Empty while it is in force.")

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "adaptive limit change"
        indexes = [
            models.Index(fields=["group", "started_at"], name="adaptivelimit_group_started"),
            models.Index(fields=["app", "started_at"], name="adaptivelimit_app_started"),
        ]

    def __str__(self):
        what = f"app {self.app_id} capped at {self.app_cap}/min" if self.app_id else f"{self.factor:.0%} of quotas"
        return f"{self.group}: {what} from {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def in_force(self) -> bool:
        return self.ended_at is None
