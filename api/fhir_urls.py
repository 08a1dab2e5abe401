"""The FHIR R4 base, /fhir/r4/: metadata, SMART discovery and (later) the clinical resources."""

from django.urls import path

from api import capability, discovery

app_name = "fhir"

urlpatterns = [
    path("metadata", capability.metadata_view, name="metadata"),
    path(".well-known/smart-configuration", discovery.smart_configuration_view, name="smart-configuration"),
]
