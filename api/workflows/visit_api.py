"""``/api/<version>/visits``: schedule, list, read and cancel visits.

v1 and v2 share the views; they differ in the visit's shape only (``VisitV1Serializer``: flat
``start``/``end`` and a status string; ``VisitV2Serializer``: a ``period`` object and a ``status``
object). A view is bound to its version by ``as_view(api_version=...)``.
"""

from django.utils import timezone
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
from api.workflows import visits
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

DATA_CLASS = "appointments"


class VisitCreateSerializer(serializers.Serializer):
    slot = serializers.CharField(help_text="The free slot to book: Slot/<id> (see GET /fhir/r4/Slot?status=free).")
    patient = serializers.CharField(help_text="Patient/<id>. A patient token may book for its own patient only.")
    reason = serializers.CharField(max_length=500, help_text="Why the patient is coming, in their words.")

    def validate(self, data):
        return visits.VisitRequest(
            slot_id=reference_id(data["slot"], "Slot", "slot"),
            patient_id=reference_id(data["patient"], "Patient", "patient"),
            reason=data["reason"].strip(),
        )


class VisitCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class VisitV1Serializer(serializers.Serializer):
    """A visit as v1 returns it."""

    id = serializers.CharField()
    status = serializers.ChoiceField(choices=[visits.BOOKED, visits.CANCELLED])
    patient = PatientReferenceSerializer(source="patient_id")
    slot = serializers.SerializerMethodField()
    practitioner = serializers.SerializerMethodField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    reason = serializers.CharField()
    booked_at = serializers.DateTimeField()
    cancelled_at = serializers.DateTimeField(allow_null=True)
    cancellation_reason = serializers.CharField(allow_blank=True)
    appointment = serializers.SerializerMethodField(help_text="The visit's FHIR Appointment.")

    def get_slot(self, visit) -> str:
        return f"Slot/{visit.slot_id}"

    def get_practitioner(self, visit) -> str | None:
        return f"Practitioner/{visit.practitioner_id}" if visit.practitioner_id else None

    def get_appointment(self, visit) -> str:
        return f"Appointment/{visit.id}"


class VisitPeriodSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class VisitStatusSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=[visits.BOOKED, visits.CANCELLED])
    since = serializers.DateTimeField(help_text="When the visit took this status.")
    reason = serializers.CharField(allow_null=True, help_text="Why it was cancelled, when it was.")
    cancellable = serializers.BooleanField(help_text="Whether POST .../cancel would succeed now.")


class VisitV2Serializer(serializers.Serializer):
    """A visit as v2 returns it: its time as a ``period``, its status as an object."""

    id = serializers.CharField()
    status = serializers.SerializerMethodField()
    patient = PatientReferenceSerializer(source="patient_id")
    slot = serializers.SerializerMethodField()
    practitioner = serializers.SerializerMethodField()
    period = serializers.SerializerMethodField()
    reason = serializers.CharField()
    booked_at = serializers.DateTimeField()
    appointment = serializers.SerializerMethodField(help_text="The visit's FHIR Appointment.")

    def get_slot(self, visit) -> str:
        return f"Slot/{visit.slot_id}"

    def get_practitioner(self, visit) -> str | None:
        return f"Practitioner/{visit.practitioner_id}" if visit.practitioner_id else None

    def get_appointment(self, visit) -> str:
        return f"Appointment/{visit.id}"

    @extend_schema_field(VisitPeriodSerializer)
    def get_period(self, visit) -> dict:
        return VisitPeriodSerializer({"start": visit.start, "end": visit.end}).data

    @extend_schema_field(VisitStatusSerializer)
    def get_status(self, visit) -> dict:
        cancelled = visit.status == visits.CANCELLED
        return VisitStatusSerializer(
            {
                "code": visit.status,
                "since": visit.cancelled_at if cancelled else visit.booked_at,
                "reason": (visit.cancellation_reason or None) if cancelled else None,
                "cancellable": visit.status == visits.BOOKED and bool(visit.start) and visit.start > timezone.now(),
            }
        ).data


SERIALIZERS = {"v1": VisitV1Serializer, "v2": VisitV2Serializer}


class VisitView(ProtectedAPIView):
    """Shared by the visit endpoints of one version (``api_version``, given to ``as_view``)."""

    api_version = "v1"
    endpoint_group = {"GET": "fhir_read", "POST": "writes"}

    @property
    def visit_serializer(self):
        return SERIALIZERS[self.api_version]

    def represent(self, visit) -> dict:
        return self.visit_serializer(visit).data

    def visit_or_404(self, request, visit_id: str):
        context = auth_context(request)
        visit = visits.visible_visits(context=context).filter(id=visit_id).first()
        if visit is None:
            raise Problem("not_found", f"No visit {visit_id} was booked by this app.")
        return visit


class VisitCollectionView(VisitView):
    required_scopes = {"GET": ["appointments.read"], "POST": ["appointments.write"]}

    def get(self, request):
        context = auth_context(request)
        queryset = visits.visible_visits(context=context)
        patient = request.query_params.get("patient")
        if patient:
            queryset = queryset.filter(patient_id=reference_id(patient, "Patient", "patient"))
        if context.patient_id:
            # A patient's own list: refused outright (and audited) without their consent.
            checked_access(
                request,
                patient_id=context.patient_id,
                data_class=DATA_CLASS,
                resource_type="Appointment",
                action="search",
            )
        # Visits of patients who revoked their consent drop out of the list, like any of their data.
        access = policy.patients_with_access(context=context, data_class=DATA_CLASS)
        queryset = queryset.filter(access.q("patient_id"))
        status = request.query_params.get("status")
        if status:
            if status not in (visits.BOOKED, visits.CANCELLED):
                raise serializers.ValidationError({"status": ["Give booked or cancelled."]})
            queryset = queryset.filter(status=status)

        def audit(page):
            for patient_id in sorted({visit.patient_id for visit in page}):
                record_access(
                    request,
                    resource_type="Appointment",
                    patient_id=patient_id,
                    action="search",
                    outcome="allowed",
                    consent_grant_id=access.grant_id(patient_id),
                )

        return paginate(
            request, queryset, time_field="booked_at", kind="visits", serialize=self.represent, on_page=audit
        )

    def post(self, request):
        context = auth_context(request)
        wanted = validated(VisitCreateSerializer, request.data)
        if context.patient_id and wanted.patient_id != context.patient_id:
            raise Problem(
                "forbidden",
                f"This access token speaks for Patient/{context.patient_id}; it cannot book for another patient.",
            )

        decision = checked_access(
            request, patient_id=wanted.patient_id, data_class=DATA_CLASS, resource_type="Appointment", action="create"
        )

        def book():
            visit = visits.visit_schedule(request, context=context, wanted=wanted, grant_id=decision.grant_id)
            return created(request, visit.id, self.represent(visit))

        return idempotent(request, book)


class VisitDetailView(VisitView):
    required_scopes = ["appointments.read"]

    def get(self, request, visit_id: str):
        visit = self.visit_or_404(request, visit_id)
        decision = checked_access(
            request,
            patient_id=visit.patient_id,
            data_class=DATA_CLASS,
            resource_type="Appointment",
            action="read",
            resource_id=visit.id,
        )
        record_access(
            request,
            resource_type="Appointment",
            resource_id=visit.id,
            patient_id=visit.patient_id,
            action="read",
            outcome="allowed",
            consent_grant_id=decision.grant_id,
        )
        return Response(self.represent(visit), headers=NO_STORE)


class VisitCancelView(VisitView):
    required_scopes = ["appointments.write"]

    def post(self, request, visit_id: str):
        context = auth_context(request)
        reason = validated(VisitCancelSerializer, request.data)["reason"].strip()

        visit = self.visit_or_404(request, visit_id)
        decision = checked_access(
            request,
            patient_id=visit.patient_id,
            data_class=DATA_CLASS,
            resource_type="Appointment",
            action="update",
            resource_id=visit.id,
        )

        def cancel():
            cancelled = visits.visit_cancel(
                request, context=context, visit=visit, reason=reason, grant_id=decision.grant_id
            )
            return Response(self.represent(cancelled), headers=NO_STORE)

        return idempotent(request, cancel)


def versioned_views(version: str) -> dict:
    """The visit views of ``version``, each with its OpenAPI description, for the URL conf."""
    serializer = SERIALIZERS[version]
    list_serializer = page_serializer(f"VisitList{version.upper()}", serializer)
    collection = type(
        f"VisitCollection{version.upper()}View",
        (VisitCollectionView,),
        {
            "api_version": version,
            "get": operation(
                version,
                "visits_list",
                "visits",
                summary="The visits this app booked",
                description="Newest first, paged by cursor (?limit=1..100, default 20). Filter by ?patient= and "
                "?status=booked|cancelled. A patient token sees its own patient's visits. Needs "
                "`appointments.read` and the patient's consent to appointments.",
                parameters=[
                    OpenApiParameter("patient", str, description="Patient/<id>."),
                    OpenApiParameter("status", str, enum=[visits.BOOKED, visits.CANCELLED]),
                    *PAGE_PARAMETERS,
                ],
                responses={200: list_serializer, **problem_responses(*READ_ERRORS)},
            )(VisitCollectionView.get),
            "post": write_operation(
                version,
                "visits_schedule",
                "visits",
                summary="Schedule a visit in a free slot",
                description="The slot becomes busy and the visit a booked FHIR Appointment, in one transaction. "
                "409 slot_unavailable when the slot was taken meanwhile. Needs `appointments.write`, write "
                "access in the tier, the patient's consent to appointments, and an Idempotency-Key.",
                request=VisitCreateSerializer,
                success={201: OpenApiResponse(serializer, description="Booked; Location names the visit.")},
            )(VisitCollectionView.post),
        },
    )
    detail = type(
        f"VisitDetail{version.upper()}View",
        (VisitDetailView,),
        {
            "api_version": version,
            "get": operation(
                version,
                "visits_read",
                "visits",
                summary="One visit this app booked",
                responses={200: serializer, **problem_responses(*READ_ERRORS)},
            )(VisitDetailView.get),
        },
    )
    cancel = type(
        f"VisitCancel{version.upper()}View",
        (VisitCancelView,),
        {
            "api_version": version,
            "post": write_operation(
                version,
                "visits_cancel",
                "visits",
                summary="Cancel a visit and free its slot",
                description="Only a booked visit that has not started can be cancelled (409 visit_not_cancellable "
                "otherwise). Needs `appointments.write`, write access in the tier and an Idempotency-Key.",
                request=VisitCancelSerializer,
                success={200: serializer},
            )(VisitCancelView.post),
        },
    )
    return {"collection": collection, "detail": detail, "cancel": cancel}
