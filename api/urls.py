"""Workflow and platform APIs under /api/."""

from django.urls import path

from api import views

app_name = "api"

urlpatterns = [
    path("v1/token-info", views.TokenInfoView.as_view(), name="token-info"),
]
