"""Shared helpers of the consent tests (ledger, services, API, FHIR, admin)."""

from consent.models import CareRelationship, ConsentGrant
from consent.services import consent_grant
from partners.models import Organization
from tests.factories import AppFactory, OrganizationFactory, UserFactory

PATIENT = "123"
OBSERVATIONS = "patient/Observation.rs"


def patient_user(patient_id: str = PATIENT):
    return UserFactory(fhir_patient_id=patient_id)


def provider(name: str = "Riverside Clinic", **kwargs) -> Organization:
    return OrganizationFactory(name=name, partner_type=Organization.PartnerType.PROVIDER, **kwargs)


def holds(organization: Organization, patient_id: str = PATIENT) -> CareRelationship:
    return CareRelationship.objects.create(organization=organization, patient_id=patient_id)


def provider_app(organization: Organization | None = None, **kwargs):
    return AppFactory(organization=organization or provider(), **kwargs)


def grant(app, patient_id: str = PATIENT, scopes=(OBSERVATIONS,), **kwargs) -> ConsentGrant:
    kwargs.setdefault("channel", ConsentGrant.Channel.CONSENT_SCREEN)
    return consent_grant(patient_id=patient_id, app=app, scopes=list(scopes), **kwargs)


def problem(response, status: int, code: str, content_type: str = "application/problem+json") -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == content_type
    body = response.json()
    if content_type == "application/problem+json":
        assert body["code"] == code, body
    else:
        codes = [e["valueCode"] for e in body["extension"] if e["url"].endswith("/problem-code")]
        assert codes == [code], body
    return body
