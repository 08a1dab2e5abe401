"""The portal's own analytics: what developers read in the docs, what they search for (and do not
find), which error pages they land on. One ``PortalEvent`` row per visit; the reads that turn them
into the admin's "Portal analytics" page are ``portal.analytics_selectors``.

Counting is worth less than the page it counts: ``portal_event_record`` never raises, and a failure is
a logged warning. Bots (a User-Agent naming itself a bot, crawler or spider) and HEAD requests are not
counted. No address is stored: ``visitor`` is a keyed hash (from ``SECRET_KEY``) of the signed-in
user, else of the session, else of the address and User-Agent of that day, enough to count unique
visitors and not to recognise anyone. Events are kept ``PORTAL_ANALYTICS_RETENTION_DAYS``
(``portal_events_purge``, daily from beat).

Docs pages are served with ``Cache-Control: public, max-age=60``; a visit a shared cache answers is
not counted, which the figures tolerate.
"""

import functools
import logging
import re
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from partners.token_limits import client_address
from portal.models import PortalEvent

logger = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 180
_BOT_RE = re.compile(r"bot|crawler|spider", re.IGNORECASE)
_VISITOR_SALT = "portal.analytics.visitor"
PATH_MAX = PortalEvent._meta.get_field("path").max_length
QUERY_MAX = PortalEvent._meta.get_field("query").max_length


def retention_days() -> int:
    return int(getattr(settings, "PORTAL_ANALYTICS_RETENTION_DAYS", DEFAULT_RETENTION_DAYS))


def is_counted(request) -> bool:
    """Whether this request is a visit worth counting: a GET from something that is not a bot."""
    if request.method != "GET":
        return False
    return not _BOT_RE.search(request.META.get("HTTP_USER_AGENT", ""))


def visitor_of(request) -> str:
    """A stable, unlinkable id of who is visiting: the user, else the session, else the address and
    User-Agent of today (so an anonymous visitor without cookies is one visitor per day)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        value = f"user:{user.pk}"
    else:
        session = getattr(request, "session", None)
        session_key = getattr(session, "session_key", None)
        if session_key:
            value = f"session:{session_key}"
        else:
            day = timezone.now().date().isoformat()
            value = f"anonymous:{day}:{client_address(request)}:{request.META.get('HTTP_USER_AGENT', '')[:300]}"
    return salted_hmac(_VISITOR_SALT, value, algorithm="sha256").hexdigest()


def portal_event_record(
    *, request, kind: str, query: str = "", results: int | None = None, path: str | None = None
) -> PortalEvent | None:
    """Record one visit of ``request`` (unless it is a bot's or a HEAD); never raises."""
    try:
        if not is_counted(request):
            return None
        user = getattr(request, "user", None)
        # A savepoint: a failed insert must not break a transaction the page is running in.
        with transaction.atomic():
            return PortalEvent.objects.create(
                kind=kind,
                path=(path or request.path)[:PATH_MAX],
                query=query[:QUERY_MAX],
                results=results,
                user=user if user is not None and user.is_authenticated else None,
                visitor=visitor_of(request),
            )
    except Exception:  # counting must never fail the page it counts
        logger.warning("portal event not recorded (%s %s)", kind, getattr(request, "path", ""), exc_info=True)
        return None


def recorded(kind: str):
    """A view decorator: count each successful (200) response of the view as a ``kind`` visit."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            response = view(request, *args, **kwargs)
            if response.status_code == 200:
                portal_event_record(request=request, kind=kind)
            return response

        return wrapper

    return decorate


def portal_events_purge(*, now=None, days: int | None = None) -> int:
    """Delete events older than the retention period; returns how many were deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=retention_days() if days is None else days)
    deleted, _ = PortalEvent.objects.filter(at__lt=cutoff).delete()
    return deleted
