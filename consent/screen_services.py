"""Writes of the consent-screen record (``ConsentScreenShown``): a row when a consent screen is
shown, its decision when the patient answers it. The admins' consent completion rate
(``portal.ecosystem``) reads them.

Both are measurements taken on the way through the consent screen, so both are best effort: they
never raise, and each runs in a savepoint, so a failed write leaves the screen, the grant and the
authorization code exactly as they would have been without it.
"""

import logging
import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from consent import services
from consent.forms import REQUEST_MAX_AGE
from consent.models import ConsentScreenShown
from partners.models import App

logger = logging.getLogger(__name__)

ANSWERABLE = timedelta(seconds=REQUEST_MAX_AGE)  # how long a shown page can still be answered
DECISIONS = frozenset(ConsentScreenShown.Decision.values)


def consent_screen_show(*, patient_id: str, app: App, scopes, now: datetime | None = None) -> ConsentScreenShown | None:
    """Record that ``patient_id`` is being shown the consent screen for ``app`` asking ``scopes``;
    the row to sign into the page, or ``None`` when it could not be recorded.

    A reload of the same request (same patient, app and scopes, not yet answered, shown recently
    enough that its page can still be answered) is the same screen: its row is returned, not a new
    one, so a patient who refreshes the page is not counted as having abandoned the first."""
    now = now or timezone.now()
    scopes = list(scopes)
    try:
        with transaction.atomic():
            recent = ConsentScreenShown.objects.filter(
                patient_id=patient_id, app=app, decision="", shown_at__gt=now - ANSWERABLE
            ).order_by("-shown_at")
            # Scopes are compared here, not in SQL: JSON equality differs between databases, and a
            # patient has at most a handful of open screens for one app.
            for screen in recent[:10]:
                if screen.scopes == scopes:
                    return screen
            return ConsentScreenShown.objects.create(
                key=uuid.uuid4(),
                patient_id=patient_id,
                app=app,
                scopes=scopes,
                data_classes=services.data_classes_of(scopes),
                shown_at=now,
            )
    except Exception:  # measuring must never break the consent screen
        logger.warning("consent screen not recorded (app %s)", app.pk, exc_info=True)
        return None


def consent_screen_decide(*, key: str, decision: str, now: datetime | None = None) -> bool:
    """Record the patient's answer to the screen signed with ``key``: ``approved`` or ``denied``.
    The first answer stands (a page posted twice is decided once); whether this call recorded it."""
    if not key or decision not in DECISIONS:
        return False
    try:
        screen_key = uuid.UUID(str(key))
    except ValueError:
        return False
    try:
        with transaction.atomic():
            updated = ConsentScreenShown.objects.filter(key=screen_key, decision="").update(
                decision=decision, decided_at=now or timezone.now()
            )
    except Exception:  # measuring must never break the consent screen
        logger.warning("consent screen decision not recorded (%s)", decision, exc_info=True)
        return False
    return bool(updated)
