"""The changelog: entries an admin publishes (``portal.models.ChangelogEntry``), read by ``/changelog/``,
its Atom feed, and each app's own feed.

Each entry names what it touches as ``api.endpoints`` patterns, one per line. An app's feed holds the
entries touching an endpoint the app called in the last 30 days, which ``api.endpoints.calls_by_endpoint``
counts from the usage the API records per endpoint; nothing here matches endpoints by itself.

Reads (the ``changelog_*`` selectors) and the few writes (``changelog_entry_publish`` and
``changelog_entry_unpublish``, for the admin's actions) are both here: the changelog is small and
nothing else writes it.
"""

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from api.endpoints import InvalidPattern, Pattern, calls_by_endpoint
from api.openapi import VERSIONS
from portal.docs import render_markdown
from portal.models import ChangelogEntry

logger = logging.getLogger(__name__)

# A tag: URI (RFC 4151) needs a date on which the name was ours; this one never changes, so neither
# do the ids feed readers remember entries by (an entry's slug is its permanent part).
TAG_DATE = "2026-11-24"
# The per-app feed's token is ``signing`` of the app id under this salt and no timestamp: a feed reader
# cannot sign in, so the unguessable URL is the credential, and it must not expire under the reader.
APP_FEED_SALT = "portal.changelog.app-feed"
# /api/v1/... and /api/v2/...: the versions that have an interactive reference at /api/reference/<v>/.
_API_VERSION_RE = re.compile(r"^/api/(v\d+)(?:/|$)")


# --- Patterns ------------------------------------------------------------------------------------


def entry_patterns(entry: ChangelogEntry) -> list[Pattern]:
    """The entry's patterns. The admin form refuses a bad line, but a row written another way (the
    shell, a fixture) must not take the changelog page down: its bad lines are skipped and logged."""
    patterns = []
    for line in entry.affected_endpoints.splitlines():
        if not line.strip():
            continue
        try:
            patterns.append(Pattern.parse(line))
        except InvalidPattern:
            logger.warning("changelog entry %s: skipping %r, not an endpoint pattern", entry.slug, line)
    return patterns


def reference_url(pattern: Pattern) -> str | None:
    """The interactive API reference of the pattern's version, for an /api/vN/ path; None otherwise."""
    match = _API_VERSION_RE.match(pattern.path)
    if match is None or match[1] not in VERSIONS:
        return None
    return reverse("api:reference", kwargs={"version": match[1]})


# --- Reading -------------------------------------------------------------------------------------


def published_entries() -> QuerySet[ChangelogEntry]:
    return ChangelogEntry.objects.filter(published=True).select_related("deprecation").order_by("-date", "-id")


def changelog_entries(
    *,
    version: str = "",
    kind: str = "",
    endpoint: Pattern | None = None,
    since: date | None = None,
    until: date | None = None,
) -> list[ChangelogEntry]:
    """Published entries, newest first; each filter that is given narrows them: ``version`` and
    ``kind`` are the model's choices, ``endpoint`` keeps the entries whose patterns overlap it,
    ``since`` and ``until`` are days, both included."""
    entries = published_entries()
    if version:
        entries = entries.filter(version=version)
    if kind:
        entries = entries.filter(kind=kind)
    if since:
        entries = entries.filter(date__gte=since)
    if until:
        entries = entries.filter(date__lte=until)
    if endpoint is None:
        return list(entries)
    return [entry for entry in entries if any(endpoint.overlaps(p) for p in entry_patterns(entry))]


def changelog_endpoint_choices() -> list[str]:
    """Every pattern the published entries name, for the endpoint filter's suggestions."""
    found = {str(pattern) for entry in published_entries() for pattern in entry_patterns(entry)}
    return sorted(found, key=lambda text: (text.split(" ")[-1], text))


@dataclass(frozen=True)
class EndpointCalls:
    endpoint: str  # "GET /api/v1/visits/{visit_id}"
    calls: int


@dataclass(frozen=True)
class AppEntry:
    """An entry of an app's changelog, with the app's calls, in the last 30 days, to the endpoints it touches."""

    entry: ChangelogEntry
    calls: tuple[EndpointCalls, ...] = field(default=())

    @property
    def total_calls(self) -> int:
        return sum(c.calls for c in self.calls)


def changelog_entries_for_app(app, now: datetime | None = None) -> list[AppEntry]:
    """The published entries touching at least one endpoint ``app`` called in the last 30 days, newest
    first, each with the app's call count per endpoint it touches (most called first)."""
    called: dict[str, int] = {}
    # The organization narrows what the usage reader reads to this app's own rows and counters.
    counted = calls_by_endpoint(app_ids=[app.pk], organization_id=app.organization_id, now=now or timezone.now())
    for (_, _, endpoint), count in counted.items():
        called[endpoint] = called.get(endpoint, 0) + count
    if not called:
        return []
    found = []
    for entry in published_entries():
        patterns = entry_patterns(entry)
        touched = [
            EndpointCalls(endpoint, count)
            for endpoint, count in called.items()
            if any(pattern.covers(endpoint) for pattern in patterns)
        ]
        if touched:
            touched.sort(key=lambda c: (-c.calls, c.endpoint))
            found.append(AppEntry(entry, tuple(touched)))
    return found


# --- Presenting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AffectedEndpoint:
    text: str
    reference: str | None  # the API reference of its version, if it has one


@dataclass(frozen=True)
class EntryView:
    """What the page and the feeds show of one entry, rendered once."""

    entry: ChangelogEntry
    body: SafeString
    migration_notes: SafeString
    endpoints: tuple[AffectedEndpoint, ...]
    calls: tuple[EndpointCalls, ...] = ()


def present(entry: ChangelogEntry, calls: tuple[EndpointCalls, ...] = ()) -> EntryView:
    return EntryView(
        entry=entry,
        body=render_markdown(entry.body),
        migration_notes=render_markdown(entry.migration_notes) if entry.migration_notes.strip() else SafeString(""),
        endpoints=tuple(AffectedEndpoint(str(p), reference_url(p)) for p in entry_patterns(entry)),
        calls=calls,
    )


def absolute(path: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{path}"


def permalink(entry: ChangelogEntry) -> str:
    return absolute(entry.get_absolute_url())


def _tag_authority() -> str:
    return urlsplit(settings.PUBLIC_BASE_URL).hostname or "localhost"


def feed_id(specific: str = "changelog") -> str:
    return f"tag:{_tag_authority()},{TAG_DATE}:{specific}"


def entry_id(entry: ChangelogEntry) -> str:
    """Stable across edits of the date, the title or the text: the same id in every feed it is in."""
    return feed_id(f"changelog/{entry.slug}")


def published_at(entry: ChangelogEntry) -> datetime:
    """The day the change took effect, as the start of that day in UTC."""
    return datetime.combine(entry.date, time.min, tzinfo=UTC)


def updated_at(entry: ChangelogEntry) -> datetime:
    """The last edit, never before the publication: a row made before its date (the history the data
    migration loaded, an entry written ahead) is updated when it takes effect."""
    return max(entry.updated_at, published_at(entry))


# --- The per-app feed's address ---------------------------------------------------------------------


def app_feed_token(app) -> str:
    return signing.dumps([app.pk, app.changelog_feed_generation], salt=APP_FEED_SALT)


def app_for_feed_token(token: str):
    """The app a per-app feed token names, or None when the token is not one we signed or its address
    has been rotated since."""
    from partners.models import App

    try:
        signed = signing.loads(token, salt=APP_FEED_SALT)
    except signing.BadSignature:
        return None
    # The first addresses (2026-11-25) signed the bare app id: they are generation 1.
    if isinstance(signed, int):
        app_id, generation = signed, 1
    elif isinstance(signed, list) and len(signed) == 2:
        app_id, generation = signed
    else:
        return None
    if not isinstance(app_id, int) or not isinstance(generation, int):
        return None
    return App.objects.select_related("organization").filter(pk=app_id, changelog_feed_generation=generation).first()


def app_feed_url(app) -> str:
    return absolute(reverse("portal:changelog-app-feed", kwargs={"token": app_feed_token(app)}))


# --- Writing (the admin's actions) -------------------------------------------------------------------


@transaction.atomic
def changelog_entry_publish(*, entry: ChangelogEntry) -> bool:
    """Show the entry on /changelog/ and in the feeds. False when it already was."""
    return _set_published(entry, True)


@transaction.atomic
def changelog_entry_unpublish(*, entry: ChangelogEntry) -> bool:
    """Take the entry off /changelog/ and out of the feeds (a reader that fetched it keeps it). False
    when it already was."""
    return _set_published(entry, False)


def _set_published(entry: ChangelogEntry, published: bool) -> bool:
    # The update is conditional, so two admins acting at once change the row once.
    changed = (
        ChangelogEntry.objects.filter(pk=entry.pk)
        .exclude(published=published)
        .update(published=published, updated_at=timezone.now())
    )
    if changed:
        entry.published = published
    return bool(changed)


@transaction.atomic
def changelog_entries_link_deprecations() -> int:
    """Link each deprecation entry that links no deprecation to the one whose prefix is a route the
    entry names (``/api/v1/visits`` and ``v1/visits``); an admin's own choice is never replaced. For the
    sandbox's seed, whose deprecations are made after the migration that loads the changelog's history.
    Returns how many it linked."""
    from api.models import Deprecation

    by_path = {"/api/" + d.path_prefix.strip("/"): d for d in Deprecation.objects.all()}
    linked = 0
    for entry in ChangelogEntry.objects.filter(kind=ChangelogEntry.Kind.DEPRECATION, deprecation__isnull=True):
        found = next((by_path[p.path] for p in entry_patterns(entry) if not p.method and p.path in by_path), None)
        if found is not None:
            linked += ChangelogEntry.objects.filter(pk=entry.pk, deprecation__isnull=True).update(deprecation=found)
    return linked
