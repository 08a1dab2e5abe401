"""The FHIR R4 CapabilityStatement served at ``/fhir/r4/metadata``.

It is pure FHIR: every key is an element of CapabilityStatement, and the SMART endpoints travel in
the ``oauth-uris`` extension SMART App Launch defines. ``rest[0].resource`` lists exactly what
``SERVED_RESOURCES`` holds, so the statement never claims a resource the server does not serve: the
issue that adds a FHIR resource registers it here in the same change.
"""

from dataclasses import dataclass

from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from api import discovery
from api.fhir import resources as fhir_core
from partners.oauth_views import fhir_base_url

FHIR_VERSION = "4.0.1"
FHIR_JSON = "application/fhir+json"
SOFTWARE_NAME = "Healthcare Marketplace FHIR API"
SMART_SECURITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
# oauth-uris sub-extension -> the discovery endpoint it names.
OAUTH_URIS = {
    "authorize": "authorization_endpoint",
    "token": "token_endpoint",
    "introspect": "introspection_endpoint",
    "revoke": "revocation_endpoint",
    "manage": "management_endpoint",
}


@dataclass(frozen=True)
class ServedResource:
    """What the server does with one resource type.

    ``interactions`` are FHIR TypeRestfulInteraction codes (``read``, ``search-type``, ...);
    ``search_params`` are ``(name, type)`` pairs (``("patient", "reference")``), or
    ``(name, type, documentation)`` triples.
    """

    interactions: tuple[str, ...] = ("read", "search-type")
    search_params: tuple[tuple[str, ...], ...] = ()
    documentation: str = ""


# Resource type -> what is served.
SERVED_RESOURCES: dict[str, ServedResource] = {
    "Consent": ServedResource(
        interactions=("read", "search-type"),
        search_params=(("patient", "reference"), ("status", "token")),
        documentation="The calling app's consents (a provider's backend service: also those of the patients "
        "whose records it holds). status: active, or inactive once revoked, expired or superseded. "
        "Paged by _count (default 20, at most 100) and the Bundle's next link.",
    ),
}
# The FHIR R4 core (api.fhir): each type's parameters as api.fhir.resources defines them.
SERVED_RESOURCES.update(
    {
        name: ServedResource(
            interactions=("read", "search-type"),
            search_params=tuple((p.name, p.type, p.documentation) for p in served.params.values()),
            documentation=f"{served.documentation} Paged by _count (default 20, at most 100; 0 or "
            "_summary=count for the total only) and the Bundle's next link.",
        )
        for name, served in fhir_core.TYPES.items()
    }
)


def _search_param(name: str, kind: str, documentation: str = "") -> dict:
    param = {"name": name, "type": kind}
    if documentation:
        param["documentation"] = documentation
    return param


def _resource_entry(resource_type: str, served: ServedResource) -> dict:
    entry = {"type": resource_type, "interaction": [{"code": code} for code in served.interactions]}
    if served.search_params:
        entry["searchParam"] = [_search_param(*param) for param in served.search_params]
    if served.documentation:
        entry["documentation"] = served.documentation
    return entry


def capability_statement(request) -> dict:
    urls = {**discovery.oauth_endpoints(request), "management_endpoint": discovery.management_endpoint(request)}
    rest = {
        "mode": "server",
        "security": {
            "extension": [
                {
                    "url": OAUTH_URIS_EXTENSION,
                    "extension": [{"url": name, "valueUri": urls[endpoint]} for name, endpoint in OAUTH_URIS.items()],
                }
            ],
            "service": [
                {
                    "coding": [{"system": SMART_SECURITY_SYSTEM, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}],
                    "text": "OAuth2 using the SMART-on-FHIR profile",
                }
            ],
            "description": "SMART App Launch 2.x: authorization code with PKCE for patient-facing apps, "
            "SMART Backend Services (client credentials with private_key_jwt) for system access. "
            "Discovery: .well-known/smart-configuration under this base.",
        },
    }
    # FHIR JSON allows no empty arrays, so no resource list until something is served.
    if SERVED_RESOURCES:
        rest["resource"] = [_resource_entry(name, served) for name, served in sorted(SERVED_RESOURCES.items())]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": timezone.now().replace(microsecond=0).isoformat(),
        "publisher": "Healthcare Marketplace",
        "kind": "instance",
        "software": {"name": SOFTWARE_NAME},
        "implementation": {"description": SOFTWARE_NAME, "url": fhir_base_url(request)},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [rest],
    }


@require_GET
def metadata_view(request):
    response = JsonResponse(capability_statement(request), content_type=FHIR_JSON)
    response["Access-Control-Allow-Origin"] = "*"
    return response
