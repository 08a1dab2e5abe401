"""The portal's analytics in Django admin: the events, read-only, and ``/admin/portal/analytics/``
(``portal_analytics_view``), the page that sums them up with the onboarding funnel. Routed in
``marketplace/urls.py`` before the admin's own URLs, as ``/admin/usage/`` is; registered from
``portal/admin.py``."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from api.admin import ReadOnlyAdmin
from portal import analytics, analytics_selectors
from portal.models import PortalEvent


@admin.register(PortalEvent)
class PortalEventAdmin(ReadOnlyAdmin):
    """Every counted visit, as recorded; ``/admin/portal/analytics/`` sums them up."""

    list_display = ["at", "kind", "path", "query", "results", "user"]
    list_display_links = None
    list_filter = ["kind"]
    list_select_related = ["user"]
    search_fields = ["path", "query"]
    date_hierarchy = "at"
    ordering = ["-at"]
    show_full_result_count = False
    change_list_template = "admin/portal/portalevent/change_list.html"


def portal_analytics_view(request):
    """``/admin/portal/analytics/?days=7|30|90``: the docs pages read most, the searches (and those
    that found nothing), the error pages visited, and the onboarding funnel of the developers who
    signed up in the period. Staff who may view portal events only."""
    if not request.user.has_perm("portal.view_portalevent"):
        raise PermissionDenied
    days = analytics_selectors.period_days(request.GET.get("days"))
    context = {
        **admin.site.each_context(request),
        "title": "Portal analytics",
        "analytics": analytics_selectors.dashboard(days=days),
        "periods": analytics_selectors.PERIODS.items(),
        "retention_days": analytics.retention_days(),
    }
    return TemplateResponse(request, "admin/portal/analytics.html", context)
