"""``/api/<version>/lab-results/...``: share a lab result with another organization, list, read and
revoke the shares an app made.

v1 and v2 serve the same shape. The views are still bound to their version (``versioned_views``, as
visits are), so that each version's OpenAPI document describes them under its own operation ids and a
later version can change the shape without touching the other.
"""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from api.idempotency import idempotent
from api.permissions import auth_context
from api.problems import Problem
from api.serializers import PatientReferenceSerializer
from api.views import ProtectedAPIView, problem_responses
from api.workflows import lab_shares
from api.workflows.common import (
    NO_STORE,
    PAGE_PARAMETERS,
    READ_ERRORS,
    checked_access,
    operation,
    page_serializer,
    paginate,
    reference_id,
    validated,
    write_operation,
)


class LabShareCreateSerializer(serializers.Serializer):
    recipient = serializers.SlugField(
        max_length=60, help_text="The slug of the partner organization to share with: active, and not your own."
    )
    expires_at = serializers.DateTimeField(
        help_text="When the share ends by itself (ISO 8601, with a UTC offset): in the future, at most 365 days ahead."
    )
    purpose = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        default="",
        help_text="Why the result is shared, in words the patient would recognise (a second opinion, a referral).",
    )

    def validate(self, data):
        return lab_shares.ShareRequest(
            recipient=data["recipient"], expires_at=data["expires_at"], purpose=data["purpose"].strip()
        )


class LabShareRevokeSerializer(serializers.Serializer):
    """No fields: send ``{}`` or no body."""


class LabShareSerializer(serializers.Serializer):
    """A share as every version returns it."""

    id = serializers.CharField()
    status = serializers.SerializerMethodField(
        help_text="active; revoked (ended early by your app); expired (its expires_at has passed)."
    )
    observation = serializers.SerializerMethodField(help_text="The shared laboratory Observation.")
    patient = PatientReferenceSerializer(source="patient_id")
    recipient = serializers.CharField(source="recipient.slug", help_text="The recipient organization's slug.")
    purpose = serializers.CharField(allow_blank=True)
    starts_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    @extend_schema_field(serializers.ChoiceField(choices=list(lab_shares.STATUSES)))
    def get_status(self, share) -> str:
        return lab_shares.share_status(share)

    def get_observation(self, share) -> str:
        return f"Observation/{share.observation_id}"


class LabShareDetailSerializer(LabShareSerializer):
    """A share as its detail returns it: with whether the patient's consent still stands."""

    consent_active = serializers.SerializerMethodField(
        help_text="Whether the patient's consent to this app for lab results is still in force. When false "
        "the share no longer counts, whatever its status: revoke it."
    )

    def get_consent_active(self, share) -> bool:
        return self.context["consent_active"]


class LabShareView(ProtectedAPIView):
    """Shared by the lab-share endpoints of one version (``api_version``, given by ``versioned_views``)."""

    api_version = "v1"
    endpoint_group = {"GET": "fhir_read", "POST": "writes"}

    def represent(self, share) -> dict:
        return LabShareSerializer(share).data

    def share_or_404(self, request, share_id: str):
        context = auth_context(request)
        share = lab_shares.visible_shares(context=context).filter(id=share_id).first()
        if share is None:
            raise Problem("not_found", f"No lab-result share {share_id} was made by this app.")
        return share


def _share_url(request, share_id: str) -> str:
    # Under the version prefix the request came in on, whatever it is mounted as.
    base = request.path[: request.path.index("/lab-results/")]
    return request.build_absolute_uri(f"{base}/lab-results/shares/{share_id}")


class LabShareCreateView(LabShareView):
    required_scopes = ["lab_results.share"]

    def post(self, request, observation_id: str):
        context = auth_context(request)
        wanted = validated(LabShareCreateSerializer, request.data)
        observation = lab_shares.lab_observation(context=context, observation_id=observation_id)
        if context.patient_id and observation.patient_id != context.patient_id:
            raise Problem(
                "forbidden",
                f"This access token speaks for Patient/{context.patient_id}; it cannot share another patient's "
                "lab results.",
            )
        decision = checked_access(
            request,
            patient_id=observation.patient_id,
            data_class=lab_shares.DATA_CLASS,
            resource_type="Observation",
            action="create",
            resource_id=observation.id,
        )

        def share():
            made = lab_shares.lab_result_share(
                request, context=context, observation=observation, wanted=wanted, grant_id=decision.grant_id
            )
            headers = {"Location": _share_url(request, made.id), **NO_STORE}
            return Response(self.represent(made), status=201, headers=headers)

        return idempotent(request, share)


class LabShareCollectionView(LabShareView):
    required_scopes = ["lab_results.read"]

    def get(self, request):
        context = auth_context(request)
        queryset = lab_shares.visible_shares(context=context)
        observation = request.query_params.get("observation")
        if observation:
            queryset = queryset.filter(observation_id=reference_id(observation, "Observation", "observation"))
        status = request.query_params.get("status")
        if status:
            if status not in lab_shares.STATUSES:
                raise serializers.ValidationError({"status": [f"Give one of {', '.join(lab_shares.STATUSES)}."]})
            queryset = lab_shares.with_status(queryset, status)
        # A list shows the shares whatever the patient's consent (consent_active is on the detail only:
        # one consent decision per row would make a page cost a query per patient).
        return paginate(request, queryset, time_field="created_at", kind="lab-shares", serialize=self.represent)


class LabShareDetailView(LabShareView):
    required_scopes = ["lab_results.read"]

    def get(self, request, share_id: str):
        context = auth_context(request)
        share = self.share_or_404(request, share_id)
        consent_active = lab_shares.share_consent_active(context=context, share=share)
        body = LabShareDetailSerializer(share, context={"consent_active": consent_active}).data
        return Response(body, headers=NO_STORE)


class LabShareRevokeView(LabShareView):
    required_scopes = ["lab_results.share"]

    def post(self, request, share_id: str):
        context = auth_context(request)
        validated(LabShareRevokeSerializer, request.data)
        share = self.share_or_404(request, share_id)

        def revoke():
            revoked = lab_shares.lab_result_share_revoke(request, context=context, share=share)
            return Response(self.represent(revoked), headers=NO_STORE)

        return idempotent(request, revoke)


def versioned_views(version: str) -> dict:
    """The lab-share views of ``version``, each with its OpenAPI description, for the URL conf."""
    suffix = version.upper()
    list_serializer = page_serializer(f"LabShareList{suffix}", LabShareSerializer)
    create = type(
        f"LabShareCreate{suffix}View",
        (LabShareCreateView,),
        {
            "api_version": version,
            "post": write_operation(
                version,
                "lab_shares_create",
                "lab-results",
                summary="Share a lab result with another organization",
                description="Shares one laboratory Observation of your app's environment with another active "
                "partner organization (`recipient`, its slug) until `expires_at` (at most 365 days ahead). "
                "Needs `lab_results.share`, write access in the tier, the patient's consent to lab results, and "
                "an Idempotency-Key. A patient token shares its own patient's results only (403 forbidden). "
                "404 for an unknown or non-laboratory observation. Announces `lab_result.shared`.",
                parameters=[
                    OpenApiParameter("observation_id", str, OpenApiParameter.PATH, description="The Observation's id.")
                ],
                request=LabShareCreateSerializer,
                success={201: OpenApiResponse(LabShareSerializer, description="Shared; Location names the share.")},
            )(LabShareCreateView.post),
        },
    )
    collection = type(
        f"LabShareCollection{suffix}View",
        (LabShareCollectionView,),
        {
            "api_version": version,
            "get": operation(
                version,
                "lab_shares_list",
                "lab-results",
                summary="The lab-result shares this app made",
                description="Newest first, paged by cursor (?limit=1..100, default 20). Filter by ?observation= "
                "and ?status=active|revoked|expired. A patient token sees its own patient's shares. Needs "
                "`lab_results.read`; shares are listed whatever the patient's consent (read one for "
                "`consent_active`).",
                parameters=[
                    OpenApiParameter("observation", str, description="Observation/<id>."),
                    OpenApiParameter("status", str, enum=list(lab_shares.STATUSES)),
                    *PAGE_PARAMETERS,
                ],
                responses={200: list_serializer, **problem_responses(*READ_ERRORS)},
            )(LabShareCollectionView.get),
        },
    )
    detail = type(
        f"LabShareDetail{suffix}View",
        (LabShareDetailView,),
        {
            "api_version": version,
            "get": operation(
                version,
                "lab_shares_read",
                "lab-results",
                summary="One lab-result share this app made",
                description="With `consent_active`: whether the patient's consent to lab results still stands. "
                "Needs `lab_results.read`. Another app's share is not found (404).",
                responses={200: LabShareDetailSerializer, **problem_responses(*READ_ERRORS)},
            )(LabShareDetailView.get),
        },
    )
    revoke = type(
        f"LabShareRevoke{suffix}View",
        (LabShareRevokeView,),
        {
            "api_version": version,
            "post": write_operation(
                version,
                "lab_shares_revoke",
                "lab-results",
                summary="End a lab-result share early",
                description="Only an active share can be revoked (409 share_not_revocable when it is revoked or "
                "expired already). Needs `lab_results.share`, write access in the tier and an Idempotency-Key; "
                "it needs "
                "no consent, so a share can be ended after the patient withdrew theirs. Announces "
                "`lab_result.share_revoked`.",
                request=LabShareRevokeSerializer,
                success={200: LabShareSerializer},
            )(LabShareRevokeView.post),
        },
    )
    return {"create": create, "collection": collection, "detail": detail, "revoke": revoke}
