from django.urls import include, path

from bench import views

urlpatterns = [
    path("bench/layered", views.LayeredProbe.as_view()),
    path("bench/unchecked", views.UncheckedProbe.as_view()),
    path("bench/fhir/Patient/<str:resource_id>", views.UncheckedPatientRead.as_view()),
    path("", include("marketplace.urls")),
]
