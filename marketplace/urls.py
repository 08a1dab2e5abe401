"""URL map; see DESIGN.md for the paths partners depend on."""

from django.contrib import admin
from django.urls import include, path

from marketplace import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("", include("django_prometheus.urls")),
    path("oauth/", include("partners.oauth_urls")),
    path("me/", include("consent.urls")),
    path(".well-known/", include("api.wellknown_urls")),
    path("fhir/r4/", include("api.fhir_urls")),
    path("api/", include("api.urls")),
    path("accounts/", include("portal.account_urls")),
    path("", include("portal.urls")),
]
