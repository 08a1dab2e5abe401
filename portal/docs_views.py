"""The docs portal: public pages, no login. What a page shows is ``portal.docs``'s business."""

from django.shortcuts import redirect, render
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

from portal import analytics, docs
from portal import search as docs_search
from portal.models import PortalEvent

# Short: a page's generated tables follow the tiers, which an admin may change at any moment.
MAX_AGE = 60


def _cacheable(request, response):
    # A signed-in visitor's page carries their name and organizations in the navigation: never for a
    # shared cache.
    if request.user.is_authenticated:
        patch_cache_control(response, private=True, max_age=MAX_AGE)
    else:
        patch_cache_control(response, public=True, max_age=MAX_AGE)
    return response


@analytics.recorded(PortalEvent.Kind.PAGE_VIEW)
@require_safe
def index(request):
    context = {"sections": docs.sections(), "nav_section": "docs", "is_index": True}
    return _cacheable(request, render(request, "docs/index.html", context))


@analytics.recorded(PortalEvent.Kind.PAGE_VIEW)
@require_safe
def page(request, slug):
    found = docs.page(slug)
    if found is None:
        return render(
            request,
            "docs/not_found.html",
            {"slug": slug, "sections": docs.sections(), "nav_section": "docs"},
            status=404,
        )
    context = {
        "page": found,
        "body": found.html(),
        "sections": docs.sections(),
        "nav_section": "docs",
    }
    return _cacheable(request, render(request, "docs/page.html", context))


@analytics.recorded(PortalEvent.Kind.ERROR_PAGE)
@require_safe
def error_page(request, code):
    """``/docs/errors/<code>/``: the page every problem's ``type`` URI points at."""
    if code in docs.RENAMED_ERROR_CODES:
        return redirect("portal:docs-error", code=docs.RENAMED_ERROR_CODES[code], permanent=True)
    error = docs.error_code(code)
    if error is None:
        return render(
            request,
            "docs/not_found.html",
            {"slug": f"errors/{code}", "sections": docs.sections(), "nav_section": "docs"},
            status=404,
        )
    context = {
        "error": error,
        "page": docs.page("errors"),  # the sidebar shows the errors page as the current one
        "sections": docs.sections(),
        "nav_section": "docs",
        "renamed_from": [old for old, new in docs.RENAMED_ERROR_CODES.items() if new == code],
    }
    return _cacheable(request, render(request, "docs/error.html", context))


@analytics.recorded(PortalEvent.Kind.PAGE_VIEW)
@require_safe
def deprecations(request):
    """``/deprecations/``: every published deprecation with its dates, a countdown to its sunset, what
    replaces it and the migration guide; from the records that send the ``Deprecation`` headers."""
    from django.utils import timezone

    from api.deprecations import deprecation_state, published_deprecations

    now = timezone.now()
    listed = [
        {
            "deprecation": deprecation,
            "state": deprecation_state(deprecation, now),
            "days_to_sunset": max(0, (deprecation.sunset_at - now).days),
            "summary": docs.render(deprecation.summary, slug="deprecations").html(),
            "api_path": "/api/" + deprecation.path_prefix.strip("/") + "/",
        }
        for deprecation in published_deprecations()
    ]
    context = {"deprecations": listed, "sections": docs.sections(), "nav_section": "docs", "now": now}
    return _cacheable(request, render(request, "docs/deprecations.html", context))


@require_safe
def search(request):
    """``/docs/search/?q=``: the docs sections that match, best first (``portal.search``). Every search
    is counted with how many it found, so the admins see what developers looked for and did not find.
    Never cached by a shared cache: each search is a visit to count."""
    raw = request.GET.get("q", "")
    query = docs_search.clean_query(raw)
    results = docs_search.search(query) if query else []
    if query:
        analytics.portal_event_record(request=request, kind=PortalEvent.Kind.SEARCH, query=query, results=len(results))
    context = {
        "search_query": query,
        "results": results,
        "truncated": len(raw.strip()) > docs_search.MAX_QUERY_LENGTH,
        "max_query_length": docs_search.MAX_QUERY_LENGTH,
        "max_results": docs_search.MAX_RESULTS,
        "sections": docs.sections(),
        "nav_section": "docs",
        "is_search": True,
    }
    response = render(request, "docs/search.html", context)
    patch_cache_control(response, private=True, max_age=0)
    return response
