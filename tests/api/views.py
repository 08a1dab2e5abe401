"""Test-only API views, one per layer, served by tests.api.urls."""

from django.http import Http404, JsonResponse
from django.views.decorators.http import require_GET
from rest_framework import serializers
from rest_framework.response import Response

from api.permissions import require_data_access, require_environment
from api.views import ProtectedAPIView


class EventsView(ProtectedAPIView):
    required_scopes = ["events.read"]

    def get(self, request):
        return Response({"events": []})

    def post(self, request):
        return Response({"received": request.data}, status=201)


class ProviderOnlyView(ProtectedAPIView):
    allowed_partner_types = {"provider"}

    def get(self, request):
        return Response({"ok": True})


class ProductionDataView(ProtectedAPIView):
    def get(self, request):
        require_environment(request, "production")
        return Response({"ok": True})


class LabResultsView(ProtectedAPIView):
    def get(self, request, patient_id):
        require_data_access(request, patient_id=patient_id, data_class="lab_results")
        return Response({"ok": True})


class ObservationView(ProtectedAPIView):
    required_resource_access = ("Observation", "r")

    def get(self, request):
        return Response({"resourceType": "Bundle"})


class VisitSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=20)
    slots = serializers.ListField(child=serializers.IntegerField(min_value=1))


class VisitsView(ProtectedAPIView):
    required_scopes = ["appointments.write"]

    def post(self, request):
        serializer = VisitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data, status=201)


class BrokenView(ProtectedAPIView):
    def get(self, request):
        raise RuntimeError("boom")


def plain_broken_view(request):
    raise RuntimeError("boom outside DRF")


@require_GET
def plain_get_only_view(request):
    return JsonResponse({"ok": True})


def plain_not_found_view(request):
    raise Http404("No Visit matches the given query (internal table visits_visit).")


class ObservationSearchView(ProtectedAPIView):
    """Which scope grants a search depends on the category asked for (SMART v2 narrowed scopes)."""

    def get_required_resource_access(self, request):
        category = request.GET.get("category")
        return ("Observation", "s", {"category": category} if category else {})

    def get(self, request):
        return Response({"resourceType": "Bundle"})
