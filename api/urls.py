"""Workflow and platform APIs under /api/."""

from django.urls import path

from api import consents, views
from api.workflows import visit_api

VISITS = {version: visit_api.versioned_views(version) for version in ("v1", "v2")}

app_name = "api"

urlpatterns = [
    path("v1/token-info", views.TokenInfoView.as_view(), name="token-info"),
    path("v1/consents", consents.ConsentCollectionView.as_view(), name="consents"),
    path("v1/consents/status", consents.ConsentStatusView.as_view(), name="consent-status"),
    path("v1/consents/<int:consent_id>/revoke", consents.ConsentRevokeView.as_view(), name="consent-revoke"),
    *[
        route
        for version, views_of in VISITS.items()
        for route in (
            path(f"{version}/visits", views_of["collection"].as_view(), name=f"{version}-visits"),
            path(f"{version}/visits/<str:visit_id>", views_of["detail"].as_view(), name=f"{version}-visit"),
            path(
                f"{version}/visits/<str:visit_id>/cancel", views_of["cancel"].as_view(), name=f"{version}-visit-cancel"
            ),
        )
    ],
]
