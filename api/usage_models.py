"""The rolled-up API usage: one row per app, endpoint, endpoint group, status class, error code,
rate-limit policy and UTC hour, with the number of responses counted for it.

Rows are written only by ``api.usage.rollup``, which *sets* each row to the hour's counted total
(an upsert on the unique key), so rerunning it never adds twice. Kept 13 months
(``api.usage.purge_older_than``). Imported at the bottom of ``api/models.py`` so Django finds it.
"""

from django.db import models


class UsageHour(models.Model):
    hour = models.DateTimeField(help_text="The UTC hour counted, as its first instant.")
    # The (app, hour) and (organization, hour) indexes below serve the per-app and per-organization
    # reads, and the unique constraint (hour first) the cross-partner ones and the retention purge:
    # no single-column indexes beside them for the rollup's writes to maintain.
    app = models.ForeignKey("partners.App", on_delete=models.CASCADE, related_name="usage_hours", db_index=False)
    organization = models.ForeignKey(
        "partners.Organization", on_delete=models.CASCADE, related_name="usage_hours", db_index=False
    )
    group = models.CharField(max_length=40, help_text="The endpoint group (partners.tiers.ENDPOINT_GROUPS).")
    status_class = models.CharField(max_length=3, help_text="2xx, 3xx, 4xx or 5xx.")
    error_code = models.CharField(max_length=60, blank=True, help_text="The problem code of an error; empty if none.")
    policy = models.CharField(max_length=100, blank=True, help_text="The violated rate-limit policy of a 429.")
    endpoint = models.CharField(
        max_length=200,
        blank=True,
        help_text="Method and route template: 'GET /api/v1/visits/{visit_id}' (api.endpoints). "
        "Empty in rows counted before 2026-11-25.",
    )
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-hour", "app_id", "group", "status_class"]
        verbose_name = "usage hour"
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "app", "group", "status_class", "error_code", "policy", "endpoint"],
                name="usagehour_one_row_per_key",
            ),
        ]
        indexes = [
            models.Index(fields=["app", "hour"], name="usagehour_app_hour"),
            models.Index(fields=["organization", "hour"], name="usagehour_org_hour"),
        ]

    def __str__(self):
        return f"{self.hour:%Y-%m-%d %H}:00 app {self.app_id} {self.group} {self.status_class}: {self.count}"
