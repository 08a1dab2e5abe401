"""The first published consent text: what a patient agrees to when they let an app reach their data."""

from django.db import migrations
from django.utils import timezone

BODY = """\
**You are letting an app see some of your health information.**

- The app sees only what you allow on this screen. You can untick anything marked optional.
- The app's developer is bound by our platform rules and, for live data, by a business associate
  agreement. They may not sell your information.
- You can stop it at any time under **My connected apps**. When you do, the app loses access at once.
- Every time the app reads your information, we record it, and you can ask us for that record.
"""

DATA_CLASSES = [
    "all_records", "demographics", "care_team", "observations", "lab_results", "vital_signs", "scheduling",
    "appointments", "coverage", "consent", "events",
]


def seed(apps, schema_editor):
    ConsentText = apps.get_model("consent", "ConsentText")
    now = timezone.now()
    ConsentText.objects.get_or_create(
        purpose="app-access",
        version=1,
        defaults={
            "title": "Letting an app use your health information",
            "body": BODY,
            "data_classes": DATA_CLASSES,
            "effective_at": now,
            "published_at": now,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("consent", "0002_ledger_append_only_trigger")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
