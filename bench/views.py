"""The benchmark's probe: one small response behind every layer, and the same with the layers off."""

from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

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
    """GET /fhir/r4/Patient/<id> with every layer off: the row rendered as FHIR, nothing checked,
    nothing audited. The same rendering the real view uses."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get(self, request, resource_id):
        from django.http import Http404

        from api.fhir import render
        from api.models import Patient

        row = Patient.objects.filter(environment="sandbox", pk=resource_id).first()
        if row is None:
            raise Http404
        response = Response(render.resource(row), content_type="application/fhir+json")
        response["ETag"] = render.etag(row)
        return response
