"""What the docs portal keeps in the database: the changelog (written by admins), the search index of
the docs pages (rebuilt from the Markdown), and the portal's own analytics (page views and searches).

The docs themselves are Markdown files in ``docs/`` (``portal.docs``); these tables never hold a page.
"""

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone


class ChangelogEntry(models.Model):
    """One change to the platform a partner may need to act on, published by an admin.

    ``affected_endpoints`` names what it touches as ``api.endpoints`` patterns, one per line, so the
    per-app feed can hold only the entries touching endpoints that app called."""

    class Kind(models.TextChoices):
        ADDITIVE = "additive", "Additive"
        DEPRECATION = "deprecation", "Deprecation"
        BREAKING = "breaking", "Breaking"
        FIX = "fix", "Fix"

    class Version(models.TextChoices):
        V1 = "v1", "API v1"
        V2 = "v2", "API v2"
        FHIR_R4 = "fhir-r4", "FHIR R4"
        OAUTH = "oauth", "OAuth 2.0 and SMART"
        EVENTS = "events", "Webhooks and events"
        PLATFORM = "platform", "Platform-wide"

    date = models.DateField(default=timezone.localdate, help_text="The day the change took effect.")
    version = models.CharField(max_length=20, choices=Version.choices)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=120, unique=True, help_text="The entry's permanent anchor and feed id.")
    body = models.TextField(help_text="What changed and why (Markdown).")
    affected_endpoints = models.TextField(
        blank=True,
        help_text="One per line: 'GET /api/v1/visits/{visit_id}' (one method, one route) or '/api/v1/visits' "
        "(every method on the route and below it).",
    )
    migration_notes = models.TextField(blank=True, help_text="What a partner has to do, if anything (Markdown).")
    deprecation = models.ForeignKey(
        "api.Deprecation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="changelog_entries",
        help_text="For a deprecation entry: the deprecation record that sends the headers.",
    )
    published = models.BooleanField(default=False, help_text="Only published entries are shown and in the feeds.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-date", "-id"]
        verbose_name_plural = "changelog entries"
        indexes = [models.Index(fields=["published", "-date"], name="changelog_published_date")]

    def __str__(self):
        return f"{self.date} {self.get_kind_display()}: {self.title}"

    def get_absolute_url(self):
        return f"{reverse('portal:changelog')}#{self.slug}"


class DocSection(models.Model):
    """One section (a heading and the text under it) of a rendered docs page: what search finds.

    Rebuilt from the rendered pages whenever a page's ``source_hash`` changes; never edited."""

    slug = models.CharField(max_length=100, help_text="The page: /docs/<slug>/")
    page_title = models.CharField(max_length=200)
    position = models.PositiveIntegerField(help_text="The section's order on its page.")
    anchor = models.CharField(max_length=200, blank=True, help_text="The heading's id; empty for the page's top.")
    heading = models.CharField(max_length=300)
    text = models.TextField(help_text="The section's plain text.")
    source_hash = models.CharField(max_length=64, help_text="The rendered page's hash when the section was indexed.")

    class Meta:
        ordering = ["slug", "position"]
        constraints = [models.UniqueConstraint(fields=["slug", "position"], name="docsection_one_per_position")]

    def __str__(self):
        return f"/docs/{self.slug}/#{self.anchor}: {self.heading}"


class PortalEvent(models.Model):
    """A visit the portal's analytics count: a docs page viewed, a search and how many it found, an
    error page visited. Append-only; kept ``PORTAL_ANALYTICS_RETENTION_DAYS``."""

    class Kind(models.TextChoices):
        PAGE_VIEW = "page_view", "Page view"
        SEARCH = "search", "Search"
        ERROR_PAGE = "error_page", "Error page visited"

    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    path = models.CharField(max_length=300)
    query = models.CharField(max_length=200, blank=True, help_text="A search's words, as typed.")
    results = models.PositiveIntegerField(null=True, blank=True, help_text="How many results a search found.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    visitor = models.CharField(
        max_length=64, blank=True, help_text="A salted hash of the session: unique visitors, no identity."
    )

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["kind", "at"], name="portalevent_kind_at")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind} {self.path}"
