"""Workflow and platform APIs under /api/."""

from django.urls import path

from api import consents, views

app_name = "api"

urlpatterns = [
    path("v1/token-info", views.TokenInfoView.as_view(), name="token-info"),
    path("v1/consents", consents.ConsentCollectionView.as_view(), name="consents"),
    path("v1/consents/status", consents.ConsentStatusView.as_view(), name="consent-status"),
    path("v1/consents/<int:consent_id>/revoke", consents.ConsentRevokeView.as_view(), name="consent-revoke"),
]
