"""The benchmark's probe: one small response behind every layer, and the same with the layers off."""

from django.http import Http404
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api.fhir.views import FhirView, read_response
from api.models import Patient
from api.views import ProtectedAPIView


class LayeredProbe(ProtectedAPIView):
    """Token, scope, organization, tier, environment and partner-type checks, then a tiny body."""

    required_scopes = ["events.read"]

    def get(self, request):
        return Response({"ok": True, "client_id": request.auth_context.client_id})


class UncheckedProbe(APIView):
    """The same handler and body with every check off: what the checks cost is the difference."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get(self, request):
        return Response({"ok": True, "client_id": "bench-client"})


class UncheckedPatientRead(APIView):
    """GET /fhir/r4/Patient/<id> with every layer off: no token, scope, policy, consent or audit;
    the same row query (environment and id) and the same response (``read_response``: FHIR body,
    ETag, Last-Modified, conditional 304) as the real view."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    renderer_classes = FhirView.renderer_classes

    def get(self, request, resource_id):
        row = Patient.objects.filter(environment="sandbox", id=resource_id).first()
        if row is None:
            raise Http404
        return read_response(request, row)
