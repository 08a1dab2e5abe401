"""``/api/<version>/eligibility-checks``: check a patient's coverage with their payer, list and read the
checks an app ran.

v1 and v2 serve the same shape. The views are still bound to their version (``versioned_views``, as
visits are), so that each version's OpenAPI document describes them under its own operation ids.
Every view is in the ``eligibility`` endpoint group: a check is the costliest call (a payer round
trip), and the rate limiter gives that group its own, smallest quota.
"""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from api import policy
from api.audit import record_access
from api.idempotency import idempotent
from api.permissions import auth_context
from api.problems import Problem
from api.serializers import PatientReferenceSerializer
from api.views import ProtectedAPIView, problem_responses
from api.workflows import eligibility
from api.workflows.common import (
    NO_STORE,
    PAGE_PARAMETERS,
    READ_ERRORS,
    checked_access,
    created,
    operation,
    page_serializer,
    paginate,
    reference_id,
    validated,
    write_operation,
)

SERVICE_TYPE_HELP = "; ".join(f"{key}: {label}" for key, label in eligibility.SERVICE_TYPES.items())


class EligibilityCreateSerializer(serializers.Serializer):
    patient = serializers.CharField(help_text="Patient/<id>. A patient token may check its own patient only.")
    coverage = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        default=None,
        help_text="Coverage/<id>, one of the patient's. Omitted: the patient's active coverage.",
    )
    service_type = serializers.ChoiceField(
        choices=list(eligibility.SERVICE_TYPE_KEYS), help_text=f"What the patient needs. {SERVICE_TYPE_HELP}."
    )

    # References are checked field by field, so that every bad field is listed in one answer.
    def validate_patient(self, value):
        return reference_id(value, "Patient")

    def validate_coverage(self, value):
        return reference_id(value, "Coverage") if value else None

    def validate(self, data):
        return eligibility.CheckRequest(
            patient_id=data["patient"], coverage_id=data.get("coverage"), service_type=data["service_type"]
        )


class EligibilityAmountSerializer(serializers.Serializer):
    amount = serializers.IntegerField(help_text="In whole currency units.")
    currency = serializers.CharField()


class EligibilityDeductibleSerializer(EligibilityAmountSerializer):
    remaining = serializers.IntegerField(help_text="What the patient still pays before the plan shares costs.")


class EligibilityDetailsSerializer(serializers.Serializer):
    """What the payer answered. An eligible answer carries the plan and cost sharing; the others say why."""

    payer_name = serializers.CharField(required=False)
    coverage_status = serializers.CharField(required=False, help_text="The coverage's status as the payer sees it.")
    reason = serializers.CharField(required=False, help_text="Why the answer is not_eligible or unknown.")
    plan = serializers.CharField(required=False)
    member_id = serializers.CharField(required=False)
    in_network = serializers.BooleanField(required=False, help_text="Whether the service is in the plan's network.")
    copay = EligibilityAmountSerializer(required=False)
    coinsurance_percent = serializers.IntegerField(required=False)
    deductible = EligibilityDeductibleSerializer(required=False)
    period = serializers.DictField(required=False, help_text="The coverage's FHIR period, when it has one.")


class EligibilityCheckSerializer(serializers.Serializer):
    """A check as every version returns it."""

    id = serializers.CharField()
    outcome = serializers.ChoiceField(choices=list(eligibility.OUTCOMES))
    patient = PatientReferenceSerializer(source="patient_id")
    coverage = serializers.SerializerMethodField(help_text="The Coverage that was checked.")
    payer = serializers.CharField(allow_blank=True, help_text="Organization/<id> of the payer asked; empty if none.")
    service_type = serializers.ChoiceField(choices=list(eligibility.SERVICE_TYPE_KEYS))
    details = serializers.SerializerMethodField()
    payer_latency_ms = serializers.IntegerField(help_text="How long the payer took to answer.")
    checked_at = serializers.DateTimeField(source="created_at")

    def get_coverage(self, check) -> str:
        return f"Coverage/{check.coverage_id}"

    @extend_schema_field(EligibilityDetailsSerializer)
    def get_details(self, check) -> dict:
        return check.details


class EligibilityView(ProtectedAPIView):
    """Shared by the eligibility endpoints of one version (``api_version``, given by ``versioned_views``)."""

    api_version = "v1"
    # Checks are the costly, adaptive group; reading past checks is an ordinary read.
    endpoint_group = {"GET": "fhir_read", "POST": "eligibility"}

    def represent(self, check) -> dict:
        return EligibilityCheckSerializer(check).data

    def check_or_404(self, request, check_id: str):
        context = auth_context(request)
        check = eligibility.visible_checks(context=context).filter(id=check_id).first()
        if check is None:
            raise Problem("not_found", f"No eligibility check {check_id} was run by this app.")
        return check


class EligibilityCollectionView(EligibilityView):
    required_scopes = ["eligibility.read"]

    def get(self, request):
        context = auth_context(request)
        queryset = eligibility.visible_checks(context=context)
        patient = request.query_params.get("patient")
        if patient:
            queryset = queryset.filter(patient_id=reference_id(patient, "Patient", "patient"))
        if context.patient_id:
            # A patient's own list: refused outright (and audited) without their consent.
            checked_access(
                request,
                patient_id=context.patient_id,
                data_class=eligibility.DATA_CLASS,
                resource_type="Coverage",
                action="search",
            )
        # Checks of patients who withdrew their consent drop out of the list, like any of their data.
        access = policy.patients_with_access(context=context, data_class=eligibility.DATA_CLASS)
        queryset = queryset.filter(access.q("patient_id"))

        def audit(page):
            for patient_id in sorted({check.patient_id for check in page}):
                record_access(
                    request,
                    resource_type="Coverage",
                    patient_id=patient_id,
                    action="search",
                    outcome="allowed",
                    consent_grant_id=access.grant_id(patient_id),
                )

        return paginate(
            request,
            queryset,
            time_field="created_at",
            kind="eligibility-checks",
            serialize=self.represent,
            on_page=audit,
        )

    def post(self, request):
        context = auth_context(request)
        wanted = validated(EligibilityCreateSerializer, request.data)
        if context.patient_id and wanted.patient_id != context.patient_id:
            raise Problem(
                "forbidden",
                f"This access token speaks for Patient/{context.patient_id}; it cannot check another patient's "
                "eligibility.",
            )
        decision = checked_access(
            request,
            patient_id=wanted.patient_id,
            data_class=eligibility.DATA_CLASS,
            resource_type="Coverage",
            action="read",
            resource_id=wanted.coverage_id or "",
        )

        def check():
            made = eligibility.eligibility_check(request, context=context, wanted=wanted, grant_id=decision.grant_id)
            return created(request, made.id, self.represent(made))

        return idempotent(request, check)


class EligibilityDetailView(EligibilityView):
    required_scopes = ["eligibility.read"]

    def get(self, request, check_id: str):
        check = self.check_or_404(request, check_id)
        decision = checked_access(
            request,
            patient_id=check.patient_id,
            data_class=eligibility.DATA_CLASS,
            resource_type="Coverage",
            action="read",
            resource_id=check.coverage_id,
        )
        record_access(
            request,
            resource_type="Coverage",
            resource_id=check.coverage_id,
            patient_id=check.patient_id,
            action="read",
            outcome="allowed",
            consent_grant_id=decision.grant_id,
        )
        return Response(self.represent(check), headers=NO_STORE)


def versioned_views(version: str) -> dict:
    """The eligibility views of ``version``, each with its OpenAPI description, for the URL conf."""
    suffix = version.upper()
    list_serializer = page_serializer(f"EligibilityCheckList{suffix}", EligibilityCheckSerializer)
    collection = type(
        f"EligibilityCollection{suffix}View",
        (EligibilityCollectionView,),
        {
            "api_version": version,
            "get": operation(
                version,
                "eligibility_checks_list",
                "eligibility-checks",
                summary="The eligibility checks this app ran",
                description="Newest first, paged by cursor (?limit=1..100, default 20). Filter by ?patient=. A "
                "patient token sees its own patient's checks; checks of patients who withdrew their consent to "
                "coverage are left out. Needs `eligibility.read`.",
                parameters=[
                    OpenApiParameter("patient", str, description="Patient/<id>."),
                    *PAGE_PARAMETERS,
                ],
                responses={200: list_serializer, **problem_responses(*READ_ERRORS)},
            )(EligibilityCollectionView.get),
            "post": write_operation(
                version,
                "eligibility_checks_create",
                "eligibility-checks",
                summary="Check a patient's eligibility with their payer",
                description="Asks the payer of the patient's coverage (the one named, or the patient's active one) "
                "whether it covers the service type, and records the answer: eligible (with plan and cost "
                "sharing), not_eligible (the coverage is not active) or unknown (no payer to ask). The payer "
                "takes a while to answer; the eligibility quota is the tier's smallest. Needs `eligibility.read`, "
                "write access in the tier, the patient's consent to coverage, and an Idempotency-Key: a retry "
                "with the same key returns the first answer without asking the payer again.",
                request=EligibilityCreateSerializer,
                success={
                    201: OpenApiResponse(EligibilityCheckSerializer, description="Checked; Location names the check.")
                },
            )(EligibilityCollectionView.post),
        },
    )
    detail = type(
        f"EligibilityDetail{suffix}View",
        (EligibilityDetailView,),
        {
            "api_version": version,
            "get": operation(
                version,
                "eligibility_checks_read",
                "eligibility-checks",
                summary="One eligibility check this app ran",
                description="Needs `eligibility.read` and the patient's consent to coverage. Another app's check "
                "is not found (404).",
                responses={200: EligibilityCheckSerializer, **problem_responses(*READ_ERRORS)},
            )(EligibilityDetailView.get),
        },
    )
    return {"collection": collection, "detail": detail}
