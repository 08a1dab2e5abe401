"""The project's URLs plus test-only views under /api/ and /fhir/r4/."""

from django.urls import path

from marketplace.urls import urlpatterns as project_urlpatterns
from tests.api import views

urlpatterns = [
    path("api/test/events", views.EventsView.as_view()),
    path("api/test/provider-only", views.ProviderOnlyView.as_view()),
    path("api/test/production-data", views.ProductionDataView.as_view()),
    path("api/test/lab-results/<str:patient_id>", views.LabResultsView.as_view()),
    path("api/test/visits", views.VisitsView.as_view()),
    path("api/test/broken", views.BrokenView.as_view()),
    path("api/test/plain-broken", views.plain_broken_view),
    path("api/test/plain-get-only", views.plain_get_only_view),
    path("api/test/plain-not-found", views.plain_not_found_view),
    path("fhir/r4/TestObservation", views.ObservationView.as_view()),
    path("fhir/r4/TestObservationSearch", views.ObservationSearchView.as_view()),
    path("fhir/r4/test/events", views.EventsView.as_view()),
    path("fhir/r4/test/visits", views.VisitsView.as_view()),
    path("fhir/r4/test/broken", views.BrokenView.as_view()),
    *project_urlpatterns,
]
