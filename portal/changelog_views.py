"""The changelog's pages and feeds.

- ``/changelog/``: every published entry, newest first, filtered by version, kind, endpoint and days
  (query string); public, like the docs.
- ``/changelog/feed.xml``: the same as Atom 1.0 (RFC 4287), with the same filters.
- ``/changelog/apps/<token>/feed.xml``: one app's feed, the entries touching an endpoint it called in
  the last 30 days with its call counts. Feed readers cannot sign in, so the address is the secret: the
  token is the app id signed (``portal.changelog.app_feed_token``); any other token is a 404.
- ``/apps/<id>/changelog/``: the same list as a portal page, for members of the app's organization.
"""

import re

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.feedgenerator import Atom1Feed
from django.utils.text import slugify
from django.views.decorators.http import conditional_page, require_POST, require_safe

from partners import selectors as partner_selectors
from partners import services as partner_services
from portal import analytics, changelog, docs
from portal.docs_views import MAX_AGE, _cacheable
from portal.forms import FILTER_DEFAULTS, ChangelogFilterForm
from portal.models import ChangelogEntry, PortalEvent
from portal.views import _app_or_404, perform

FEED_AUTHOR = "Healthcare Marketplace"
FEED_TITLE = "Healthcare Marketplace API changelog"
# A feed is polled; a reader only needs the recent entries, the page has them all.
FEED_LIMIT = 50
_ROOT_HREF_RE = re.compile(r'(href|src)="/(?!/)')


def _filter_query(request) -> str:
    """The filters of the query string, for the feed link that keeps them."""
    query = request.GET.copy()
    for key in list(query):
        if key not in FILTER_DEFAULTS or not query[key]:
            del query[key]
    return query.urlencode()


def _deprecation_url(entry: ChangelogEntry) -> str | None:
    """The deprecation's section on /deprecations/ (its anchor is the slugified prefix, as that page
    writes it), when the entry names a published one."""
    deprecation = entry.deprecation
    if deprecation is None or not deprecation.published:
        return None
    return f"{reverse('portal:deprecations')}#{slugify(deprecation.path_prefix)}"


def _views(entries, calls=None) -> list[dict]:
    calls = calls or {}
    return [
        {
            "view": changelog.present(entry, calls.get(entry.pk, ())),
            "deprecation_url": _deprecation_url(entry),
        }
        for entry in entries
    ]


# --- The page ------------------------------------------------------------------------------------


@require_safe
@analytics.recorded(PortalEvent.Kind.PAGE_VIEW)
def changelog_page(request):
    form = ChangelogFilterForm(request.GET)
    valid = form.is_valid()
    query = _filter_query(request) if valid else ""
    feed_path = reverse("portal:changelog-feed") + (f"?{query}" if query else "")
    context = {
        "form": form,
        "entries": _views(changelog.changelog_entries(**form.filters())) if valid else [],
        "filtered": form.is_filtered(),
        "feed_filtered": bool(query),
        "endpoint_choices": changelog.changelog_endpoint_choices(),
        "feed_path": feed_path,
        "feed_url": changelog.absolute(feed_path),
        "sections": docs.sections(),
        "page": docs.NAV_LINKS["changelog"],  # the sidebar shows the changelog as the current page
        "nav_section": "docs",
    }
    return _cacheable(request, render(request, "docs/changelog.html", context, status=200 if valid else 400))


@login_required
def app_changelog(request, pk):
    """The app's own changelog: what its feed holds, for members of its organization."""
    app = _app_or_404(request, pk)
    found = changelog.changelog_entries_for_app(app)
    context = {
        "app": app,
        "organization": app.organization,
        "entries": _views([f.entry for f in found], {f.entry.pk: f.calls for f in found}),
        "feed_url": changelog.app_feed_url(app),
        "membership": partner_selectors.membership_for(user=request.user, organization=app.organization),
    }
    return render(request, "portal/app_changelog.html", context)


@login_required
@require_POST
def app_changelog_feed_rotate(request, pk):
    app = _app_or_404(request, pk)
    return perform(
        request,
        lambda: partner_services.app_changelog_feed_rotate(app=app, actor=request.user),
        success="The feed has a new address: the old one no longer works. Update your feed reader.",
        then=reverse("portal:app-changelog", args=[app.pk]),
    )


# --- The feeds -----------------------------------------------------------------------------------


class ChangelogAtomFeed(Atom1Feed):
    """Django's Atom 1.0 with what it leaves out: the entry's full text as ``<content type="html">``,
    and categories with a scheme and a label (the entry's kind and version)."""

    def add_item_elements(self, handler, item):
        super().add_item_elements(handler, item)
        for term, scheme, label in item["labelled_categories"]:
            handler.addQuickElement("category", "", {"term": term, "scheme": scheme, "label": label})
        handler.addQuickElement("content", item["content"], {"type": "html"})


def _absolute_links(html: str) -> str:
    """A feed reader resolves a relative link against whatever it likes: every link gets our host."""
    return _ROOT_HREF_RE.sub(lambda m: f'{m[1]}="{changelog.absolute("/")}', html)


def _feed(*, title: str, subtitle: str, link: str, self_url: str, feed_id: str, items: list[dict]) -> HttpResponse:
    feed = ChangelogAtomFeed(
        title=title,
        link=link,
        description=subtitle,
        subtitle=subtitle,
        feed_url=self_url,
        feed_guid=feed_id,
        author_name=FEED_AUTHOR,
        author_link=changelog.absolute("/"),
        language="en",
    )
    scheme = changelog.absolute(reverse("portal:changelog"))
    for item in items:
        entry = item["view"].entry
        feed.add_item(
            title=f"{entry.get_kind_display()}: {entry.title}",
            link=changelog.permalink(entry),
            description=None,
            pubdate=changelog.published_at(entry),
            updateddate=changelog.updated_at(entry),
            unique_id=changelog.entry_id(entry),
            labelled_categories=[
                (entry.kind, f"{scheme}#kind", entry.get_kind_display()),
                (entry.version, f"{scheme}#version", entry.get_version_display()),
            ],
            content=_absolute_links(render_to_string("docs/_changelog_feed_entry.html", item)),
        )
    response = HttpResponse(content_type=feed.content_type)
    feed.write(response, "utf-8")
    return response


@require_safe
@conditional_page
def changelog_feed(request):
    form = ChangelogFilterForm(request.GET)
    if not form.is_valid():
        errors = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in form.errors.items())
        return HttpResponse(f"Bad filter: {errors}\n", status=400, content_type="text/plain; charset=utf-8")
    query = _filter_query(request)
    page = reverse("portal:changelog") + (f"?{query}" if query else "")
    self_path = reverse("portal:changelog-feed") + (f"?{query}" if query else "")
    response = _feed(
        title=FEED_TITLE + (" (filtered)" if query else ""),
        subtitle="What changed in the platform's APIs, newest first.",
        link=changelog.absolute(page),
        self_url=changelog.absolute(self_path),
        feed_id=changelog.feed_id("changelog" + (f"?{query}" if query else "")),
        items=_views(changelog.changelog_entries(**form.filters())[:FEED_LIMIT]),
    )
    patch_cache_control(response, public=True, max_age=MAX_AGE)
    return response


@require_safe
@conditional_page
def changelog_app_feed(request, token):
    app = changelog.app_for_feed_token(token)
    if app is None:
        raise Http404("No such feed.")
    found = changelog.changelog_entries_for_app(app, timezone.now())[:FEED_LIMIT]
    response = _feed(
        title=f"{FEED_TITLE}: {app.name}",
        subtitle=f"The changes touching the endpoints {app.name} called in the last 30 days.",
        link=changelog.absolute(reverse("portal:app-changelog", kwargs={"pk": app.pk})),
        self_url=changelog.app_feed_url(app),
        feed_id=changelog.feed_id(f"changelog/apps/{app.pk}"),
        items=_views([f.entry for f in found], {f.entry.pk: f.calls for f in found}),
    )
    # The address is the credential: no shared cache keeps a copy under it.
    patch_cache_control(response, private=True, max_age=MAX_AGE)
    return response
