"""FHIR R4 ``Consent``: a patient's consent grant as the FHIR resource, read and searched at
``/fhir/r4/Consent``.

The rendering is pure FHIR (every key is an element of R4 ``Consent``; tests validate it with
``fhir.resources``). Which grants a token sees is ``consent.selectors.grants_visible_to``: the
calling app's own, and for a provider's backend service the grants of patients whose records it
holds. A Consent describes the app's own access, so reading it needs a Consent scope but not a
consent covering the "consent" data class: an app whose consent was revoked can still learn so.

Organizations and apps are not served as FHIR resources, so they are referenced logically
(``identifier`` and ``display``), never by a literal reference the server could not resolve.
"""

from datetime import datetime

from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from api.fhir.render import FHIRJSONRenderer, fhir_instant, http_datetime, searchset
from api.fhir.search import Sort, decode_cursor, encode_cursor, invalid_search, parse_count
from api.permissions import auth_context
from api.problems import FHIR_CONTENT_TYPE, Problem
from api.views import ProtectedAPIView
from consent import selectors
from consent.models import ConsentGrant
from partners import scopes as registry

CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC = "http://loinc.org"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_ACTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentaction"
# FHIR Consent.status codes (http://hl7.org/fhir/consent-state-codes).
FHIR_STATUSES = ("draft", "proposed", "active", "rejected", "inactive", "entered-in-error")
# The platform's grant states and the FHIR status each is shown as.
STATUS_FOR_STATE = {"active": "active", "revoked": "inactive", "expired": "inactive", "superseded": "inactive"}
# Relative references a signed form's reference may be, for Consent.sourceReference.
SOURCE_REFERENCE_TYPES = ("Consent/", "DocumentReference/", "Contract/", "QuestionnaireResponse/")
# Newest first; the signed keyset cursor of the FHIR core (api.fhir.search) pages it.
NEWEST_FIRST = Sort("", None, descending=True)


# --- rendering -------------------------------------------------------------------------------------


def data_class_system(site: str) -> str:
    return f"{site}/fhir/CodeSystem/data-class"


def organization_system(site: str) -> str:
    return f"{site}/fhir/NamingSystem/organization"


def client_id_system(site: str) -> str:
    return f"{site}/fhir/NamingSystem/client-id"


def policy_uri(site: str, text) -> str:
    return f"{site}/docs/consent/texts/{text.purpose}/v{text.version}"


def organization_reference(site: str, organization) -> dict:
    return {
        "type": "Organization",
        "identifier": {"system": organization_system(site), "value": organization.slug},
        "display": organization.name,
    }


def _source(document: str) -> dict:
    if document.startswith(("https://", "http://")):
        return {"sourceAttachment": {"url": document, "title": "Signed consent form"}}
    if document.startswith(SOURCE_REFERENCE_TYPES):
        return {"sourceReference": {"reference": document}}
    return {"sourceReference": {"display": document}}


def consent_resource(grant: ConsentGrant, *, site: str, now: datetime | None = None) -> dict:
    """``grant`` (from ``consent.selectors.with_history``) as an R4 Consent. ``site`` is the
    platform's absolute origin, under which the platform's code systems and policies live."""
    now = now or timezone.now()
    state = selectors.grant_state(grant, now=now)
    ended = selectors.grant_end(grant, now=now)
    patient = {"reference": f"Patient/{grant.patient_id}"}
    performer = [patient]
    if grant.recorded_by_organization_id:
        performer.append(organization_reference(site, grant.recorded_by_organization))
    period = {"start": fhir_instant(grant.created_at)}
    end = ended or grant.expires_at
    if end is not None:
        period["end"] = fhir_instant(end)
    version = getattr(grant, "version", None) or 1
    last_updated = getattr(grant, "last_event_at", None) or grant.created_at
    resource = {
        "resourceType": "Consent",
        "id": str(grant.pk),
        "meta": {"versionId": str(version), "lastUpdated": fhir_instant(last_updated)},
        "status": STATUS_FOR_STATE[state],
        "scope": {
            "coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy", "display": "Privacy Consent"}]
        },
        "category": [{"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": patient,
        "dateTime": fhir_instant(grant.created_at),
        "performer": performer,
        "organization": [organization_reference(site, grant.app.organization)],
        **(_source(grant.source_document) if grant.source_document else {}),
        "policy": [{"uri": policy_uri(site, grant.text)}],
        "provision": {
            "type": "permit",
            "period": period,
            "actor": [
                {
                    "role": {
                        "coding": [{"system": PARTICIPATION_TYPE, "code": "IRPT", "display": "information recipient"}]
                    },
                    "reference": {
                        "type": "Device",
                        "identifier": {"system": client_id_system(site), "value": grant.app.client_id},
                        "display": grant.app.name,
                    },
                }
            ],
            "action": [{"coding": [{"system": CONSENT_ACTION_SYSTEM, "code": "access", "display": "Access"}]}],
        },
    }
    classes = [
        {"system": data_class_system(site), "code": key, "display": registry.DATA_CLASSES[key].description}
        for key in grant.data_classes
        if key in registry.DATA_CLASSES
    ]
    if classes:  # FHIR JSON has no empty arrays
        resource["provision"]["class"] = classes
    return resource


# --- the views -------------------------------------------------------------------------------------


def site_origin(request) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def _visible(request):
    context = auth_context(request)
    return selectors.grants_visible_to(
        app=context.app,
        organization=context.organization,
        is_system=context.is_system,
        patient_id=context.patient_id,
    )


class FHIRConsentView(ProtectedAPIView):
    # Answers application/fhir+json whether the caller accepts that, application/json or anything.
    renderer_classes = (FHIRJSONRenderer, JSONRenderer)

    def fhir_response(self, body: dict, **headers) -> Response:
        return Response(body, content_type=FHIR_CONTENT_TYPE, headers=headers)


@extend_schema(exclude=True)  # described by the CapabilityStatement at /fhir/r4/metadata
class ConsentReadView(FHIRConsentView):
    required_resource_access = ("Consent", "r")

    def get(self, request, consent_id: str):
        grant = None
        if consent_id.isdigit() and len(consent_id) < 19:
            grant = selectors.for_rendering(_visible(request)).filter(pk=int(consent_id)).first()
        if grant is None:
            raise Problem("not_found", f"No Consent/{consent_id} is visible to this app.")
        (grant,) = selectors.with_history([grant])
        resource = consent_resource(grant, site=site_origin(request))
        return self.fhir_response(
            resource,
            ETag=f'W/"{resource["meta"]["versionId"]}"',
            **{"Last-Modified": http_datetime(grant.last_event_at or grant.created_at), "Cache-Control": "no-store"},
        )


def status_filter(values: list[str], now: datetime) -> Q:
    """FHIR statuses asked for -> the grants shown with them (see ``STATUS_FOR_STATE``)."""
    wanted = Q(pk__in=[])  # draft, proposed, rejected, entered-in-error: no grant is shown so
    if "active" in values:
        wanted |= selectors.in_force(now)
    if "inactive" in values:
        wanted |= ~selectors.in_force(now)
    return wanted


@extend_schema(exclude=True)  # described by the CapabilityStatement at /fhir/r4/metadata
class ConsentSearchView(FHIRConsentView):
    required_resource_access = ("Consent", "s")

    def get(self, request):
        params = request.query_params
        grants = _visible(request)
        applied = []
        if "patient" in params:
            patient_id = selectors.normalize_patient_id(params["patient"].rsplit("/Patient/", 1)[-1])
            if not patient_id or "/" in patient_id:
                raise invalid_search("patient", "Search by the patient's reference: patient=Patient/123 or 123.")
            grants = grants.filter(patient_id=patient_id)
            applied.append(("patient", f"Patient/{patient_id}"))
        if "status" in params:
            values = [v.strip().rsplit("|", 1)[-1] for v in params["status"].split(",") if v.strip()]
            unknown = [v for v in values if v not in FHIR_STATUSES]
            if not values or unknown:
                raise invalid_search("status", f"status is one or more of {', '.join(FHIR_STATUSES)}, comma-separated.")
            grants = grants.filter(status_filter(values, timezone.now()))
            applied.append(("status", ",".join(values)))
        count = parse_count(params.get("_count"))
        total = grants.count()
        page = selectors.for_rendering(grants).order_by(*NEWEST_FIRST.order_by())
        cursor = params.get("_cursor") or None
        if cursor:
            page = page.filter(NEWEST_FIRST.after(*decode_cursor(cursor, "Consent", NEWEST_FIRST)))
        rows = list(page[: count + 1]) if count else []
        has_next = len(rows) > count
        rows = selectors.with_history(rows[:count])
        site, now = site_origin(request), timezone.now()
        paged = [*applied, ("_count", count)]
        bundle = searchset(
            request,
            resources=[consent_resource(grant, site=site, now=now) for grant in rows],
            total=total,
            self_params=[*paged, *([("_cursor", cursor)] if cursor else [])],
            next_params=[*paged, ("_cursor", encode_cursor("Consent", NEWEST_FIRST, rows[-1]))] if has_next else None,
        )
        return self.fhir_response(bundle, **{"Cache-Control": "no-store"})
