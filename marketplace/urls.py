"""URL map; see DESIGN.md for the paths partners depend on."""

from django.contrib import admin
from django.urls import include, path

from marketplace import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("", include("django_prometheus.urls")),
    path("accounts/", include("portal.account_urls")),
    path("", include("portal.urls")),
]
