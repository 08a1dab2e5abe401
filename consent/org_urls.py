"""A provider organization's pages under /org/: which apps may reach its patients' records."""

from django.urls import path

from consent import views

app_name = "consent-org"

urlpatterns = [
    path("app-authorizations/", views.app_authorizations, name="app-authorizations"),
    path("app-authorizations/<int:app_id>/", views.app_authorization_decide, name="app-authorization-decide"),
]
