"""URL map; see DESIGN.md for the paths partners depend on."""

from django.contrib import admin
from django.urls import include, path

from api.admin import usage_summary_view
from consent.views import ConsentAuthorizationView
from marketplace import views
from portal.analytics_admin import portal_analytics_view
from portal.ecosystem_admin import ecosystem_health_view

urlpatterns = [
    path("admin/usage/", admin.site.admin_view(usage_summary_view), name="admin-usage"),
    path("admin/portal/analytics/", admin.site.admin_view(portal_analytics_view), name="admin-portal-analytics"),
    path("admin/ecosystem/", admin.site.admin_view(ecosystem_health_view), name="admin-ecosystem"),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("", include("django_prometheus.urls")),
    # The consent screen answers /oauth/authorize/ before DOT's routes; the name
    # oauth2_provider:authorize still reverses to this same path.
    path("oauth/authorize/", ConsentAuthorizationView.as_view()),
    path("oauth/", include("partners.oauth_urls")),
    path("me/", include("consent.urls")),
    path(".well-known/", include("api.wellknown_urls")),
    path("fhir/r4/", include("api.fhir_urls")),
    path("api/", include("api.urls")),
    path("accounts/", include("portal.account_urls")),
    path("org/", include("consent.org_urls")),
    path("", include("portal.urls")),
]
