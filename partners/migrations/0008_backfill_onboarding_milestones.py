"""Backfill the onboarding milestones (0007) from what is left of the apps' history: ``first_token_at``
from the earliest access or refresh token still stored per app, ``first_success_at`` from the earliest
hour with a 2xx usage row. Tokens are purged when they expire and usage rows after 13 months, so an app
whose history is gone stays empty (the portal's funnel then counts it from its next token or call).

This partners migration reads the tables of oauth2_provider and api: migrations may cross the layers
the code keeps to (partners never imports api), because the schema they run against is the whole
project's. Only empty columns are filled, so it is safe to run against data the code already wrote."""

from django.db import migrations
from django.db.models import Min


def backfill(apps, schema_editor):
    App = apps.get_model("partners", "App")
    AccessToken = apps.get_model("oauth2_provider", "AccessToken")
    RefreshToken = apps.get_model("oauth2_provider", "RefreshToken")
    UsageHour = apps.get_model("api", "UsageHour")

    first_token: dict[int, object] = {}
    for model in (AccessToken, RefreshToken):
        rows = (
            model.objects.filter(application__isnull=False)
            .values("application_id")
            .annotate(first=Min("created"))
            .values_list("application_id", "first")
        )
        for app_id, first in rows:
            if app_id not in first_token or first < first_token[app_id]:
                first_token[app_id] = first
    first_success = dict(
        UsageHour.objects.filter(status_class="2xx")
        .values("app_id")
        .annotate(first=Min("hour"))
        .values_list("app_id", "first")
    )
    for app_id, first in first_token.items():
        App.objects.filter(pk=app_id, first_token_at__isnull=True).update(first_token_at=first)
    for app_id, first in first_success.items():
        App.objects.filter(pk=app_id, first_success_at__isnull=True).update(first_success_at=first)


class Migration(migrations.Migration):
    dependencies = [
        ("partners", "0007_add_onboarding_milestones"),
        ("oauth2_provider", "0001_initial"),  # AccessToken and RefreshToken, with created
        ("api", "0007_add_hourly_usage"),  # UsageHour
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
