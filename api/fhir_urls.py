"""The FHIR R4 base, /fhir/r4/: metadata, SMART discovery and the resources served
(each registered in ``api.capability.SERVED_RESOURCES``)."""

from django.urls import path

from api import capability, discovery, fhir_consent
from api.fhir import views as fhir_views
from api.fhir.resources import TYPES as FHIR_CORE_TYPES

app_name = "fhir"

urlpatterns = [
    path("metadata", capability.metadata_view, name="metadata"),
    path(".well-known/smart-configuration", discovery.smart_configuration_view, name="smart-configuration"),
    path("Consent", fhir_consent.ConsentSearchView.as_view(), name="consent-search"),
    path("Consent/<str:consent_id>", fhir_consent.ConsentReadView.as_view(), name="consent-read"),
]
# The FHIR R4 core (api.fhir): read and search of each type of the clinical store.
for _type in FHIR_CORE_TYPES:
    urlpatterns += [
        path(_type, fhir_views.search_view(_type), name=f"{_type.lower()}-search"),
        path(f"{_type}/<str:resource_id>", fhir_views.read_view(_type), name=f"{_type.lower()}-read"),
    ]
