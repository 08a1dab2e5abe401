"""Consent endpoints under /api/v1/consents: an app reads where it stands with a patient, a provider
records a consent given on a signed form, and the recorder (or the app's own organization) revokes.

Each view validates, calls one consent service (or reads through ``consent.selectors``) and answers
with ``ConsentSerializer``; every refusal is a problem (``api.problems``).
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from api import policy
from api.idempotency import idempotent
from api.permissions import auth_context, require_environment
from api.problems import Problem
from api.serializers import (
    ConsentRecordSerializer,
    ConsentRevokeSerializer,
    ConsentSerializer,
    ConsentStatusQuerySerializer,
    ConsentStatusSerializer,
)
from api.views import ProtectedAPIView, problem_responses
from consent import selectors
from consent import services as consent_services
from partners.exceptions import InvalidState, NotPermitted

NO_STORE = {"Cache-Control": "no-store"}


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def patient_id_from(value: str, field: str = "patient") -> str:
    patient_id = selectors.normalize_patient_id(value)
    if not patient_id or "/" in patient_id:
        raise ValidationError({field: ["Give the patient's FHIR logical id: 123 or Patient/123."]})
    return patient_id


def _as_drf_validation_error(exc: DjangoValidationError) -> ValidationError:
    if hasattr(exc, "error_dict"):
        return ValidationError(exc.message_dict)
    return ValidationError(exc.messages)


class ConsentStatusView(ProtectedAPIView):
    """Where the calling app stands with one patient."""

    required_scopes = ["consent.read"]

    @extend_schema(
        operation_id="consent_status",
        summary="The calling app's consent for a patient, and what the data layer would allow",
        description=(
            "The calling app's most recent consent for the patient (state `none` when the patient never "
            "consented), each provider organization holding the patient's records with its decision about "
            "the app, and, per data class, what a request for that data would get: allowed, or the error "
            "code it would be refused with (consent_required, consent_revoked, consent_expired, "
            "organization_authorization). A token that speaks for a patient may ask about that patient "
            "only. Needs the scope `consent.read`."
        ),
        tags=["consents"],
        parameters=[
            OpenApiParameter("patient", str, OpenApiParameter.QUERY, required=True, description="123 or Patient/123.")
        ],
        responses={200: ConsentStatusSerializer, **problem_responses(400, 401, 403, 405, 406, 429, 500)},
    )
    def get(self, request):
        context = auth_context(request)
        patient_id = patient_id_from(validated(ConsentStatusQuerySerializer, request.query_params)["patient"])
        if context.patient_id and context.patient_id != patient_id:
            raise Problem(
                "forbidden",
                f"This access token speaks for Patient/{context.patient_id}; it cannot ask about another patient.",
            )
        grant = selectors.latest_grant(app=context.app, patient_id=patient_id)
        # Which providers hold a patient's records is itself health information: it is shown once the
        # patient has consented to this app (in any state), to a token speaking for the patient, and
        # to a provider about itself.
        may_see_care = grant is not None or context.patient_id == patient_id
        authorizations = [
            a
            for a in selectors.organization_authorizations(app=context.app, patient_id=patient_id)
            if may_see_care or a.organization.pk == context.organization.pk
        ]
        access = []
        for data_class in sorted(consent_services.CLINICAL_CLASSES):
            decision = policy.check_data_access(context=context, patient_id=patient_id, data_class=data_class)
            detail = decision.detail or None
            if detail and not may_see_care:
                detail = detail.split(" Also: ")[0]  # the clause naming the providers
            access.append(
                {
                    "data_class": data_class,
                    "allowed": decision.allowed,
                    "code": None if decision.allowed else (decision.code or "consent_required"),
                    "detail": detail,
                }
            )
        body = ConsentStatusSerializer(
            {"patient": patient_id, "consent": grant, "organization_authorization": authorizations, "access": access}
        ).data
        return Response(body, headers=NO_STORE)


class ConsentCollectionView(ProtectedAPIView):
    """A provider records a consent a patient gave on a signed form."""

    required_scopes = ["consent.write"]
    allowed_partner_types = {"provider"}

    @extend_schema(
        operation_id="consent_record",
        summary="Record a consent a patient gave on a signed form (providers)",
        description=(
            "A provider organization records, on the patient's behalf, the consent they gave on a signed "
            "form for an app. The provider must hold the patient's records, and the app must live in the "
            "calling app's environment. The consent is recorded under the current consent text, written to "
            "the patient's consent ledger, and announced to the app with a `consent.granted` event. When the "
            "patient's active consent for that app already covers these scopes under the current text, it "
            "is returned unchanged with 200; otherwise the new consent replaces it (201). Needs the scope "
            "`consent.write`, write access in the tier, and a provider organization."
        ),
        tags=["consents"],
        request=ConsentRecordSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="Optional here: a unique value per operation (a UUID); a retry with the same key and "
                "body returns the first result. Keys expire after 24 hours.",
            )
        ],
        examples=[
            OpenApiExample(
                "Signed form",
                request_only=True,
                value={
                    "patient": "Patient/123",
                    "client_id": "a1b2c3",
                    "scopes": ["patient/Observation.rs", "patient/Patient.rs"],
                    "source_document": "DocumentReference/signed-consent-2026-0142",
                    "expires_at": "2027-01-01T00:00:00Z",
                },
            )
        ],
        responses={
            201: OpenApiResponse(ConsentSerializer, description="Recorded."),
            200: OpenApiResponse(ConsentSerializer, description="An active consent already covered it."),
            **problem_responses(400, 401, 403, 405, 406, 409, 413, 415, 429, 500),
        },
    )
    def post(self, request):
        context = auth_context(request)
        data = validated(ConsentRecordSerializer, request.data)
        patient_id = patient_id_from(data["patient"])
        app = selectors.app_by_client_id(data["client_id"])
        if app is None:
            raise ValidationError({"client_id": ["No app is registered with this client_id."]})
        require_environment(request, app.environment)

        def record():
            started = timezone.now()
            try:
                grant = consent_services.consent_record_for_patient(
                    organization=context.organization,
                    app=app,
                    patient_id=patient_id,
                    scopes=data["scopes"],
                    source_document=data["source_document"],
                    recorded_by=context.user,
                    expires_at=data.get("expires_at"),
                )
            except NotPermitted as exc:
                raise Problem("forbidden", str(exc)) from exc
            except InvalidState as exc:
                raise Problem("client_error", str(exc), status=409) from exc
            except DjangoValidationError as exc:
                raise _as_drf_validation_error(exc) from exc
            created = grant.created_at >= started
            grant = selectors.grant_by_id(grant.pk)
            return Response(ConsentSerializer(grant).data, status=201 if created else 200, headers=NO_STORE)

        # Before the workflow APIs required it, this endpoint took no Idempotency-Key: it accepts one
        # (and honours it) without making it required, which would break v1 clients.
        return idempotent(request, record, required=False)


class ConsentRevokeView(ProtectedAPIView):
    """The organization that recorded a consent, or the one whose app it is for, revokes it."""

    required_scopes = ["consent.write"]
    # Withdrawing access is never held back by the tier: a read-only tier may still revoke.
    requires_write_access = False

    @extend_schema(
        operation_id="consent_revoke",
        summary="Revoke a consent",
        description=(
            "Revokes the consent now: the app's tokens for that patient stop working at their next request, "
            "the patient's consent ledger records it, and the app receives a `consent.revoked` event. The "
            "provider organization that recorded the consent may revoke it, and so may the organization "
            "whose app it is for; to anyone else it does not exist (404). Idempotent: revoking a consent "
            "that is no longer active (already revoked, expired or superseded) changes nothing and answers "
            "200 with its state as it is. Needs the scope `consent.write`; any tier may revoke."
        ),
        tags=["consents"],
        parameters=[OpenApiParameter("consent_id", int, OpenApiParameter.PATH, description="The consent's id.")],
        request=ConsentRevokeSerializer,
        responses={200: ConsentSerializer, **problem_responses(400, 401, 403, 404, 405, 406, 413, 415, 429, 500)},
    )
    def post(self, request, consent_id: int):
        context = auth_context(request)
        data = validated(ConsentRevokeSerializer, request.data if request.data else {})
        organization = context.organization
        grant = selectors.grant_for_revocation(organization=organization, grant_id=consent_id)
        if grant is None:
            raise Problem("not_found", f"No consent {consent_id} was recorded by or given to {organization.name}.")
        require_environment(request, grant.app.environment)
        consent_services.consent_revoke(
            grant=grant,
            actor=f"organization:{organization.slug}",
            channel="api",
            reason=data["reason"].strip() or f"Revoked through the API by {organization.name}.",
        )
        grant = selectors.grant_by_id(grant.pk)
        return Response(ConsentSerializer(grant).data, headers=NO_STORE)
