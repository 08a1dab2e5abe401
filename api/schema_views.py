"""``/api/schema/<version>/`` (the version's OpenAPI 3 document, JSON) and ``/api/reference/<version>/``
(Swagger UI on that document, its assets served by this site from drf-spectacular-sidecar: no CDN).

Both are public: a partner reads them before having a token, and a stale token must not hide them.
An unknown version is a 404 problem, like any address nothing is served at.
"""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from api.openapi import VERSIONS, UnknownVersion, check_version, schema_for
from api.problems import Problem


def _known(version: str) -> str:
    try:
        return check_version(version)
    except UnknownVersion:
        raise Problem(
            "not_found", f"There is no API version {version!r}. Published versions: {', '.join(VERSIONS)}."
        ) from None


class SchemaView(SpectacularJSONAPIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(exclude=True)
    def get(self, request, version: str):
        schema = schema_for(_known(version))
        return Response(
            schema,
            headers={
                "Content-Disposition": f'inline; filename="marketplace-api-{version}.json"',
                "Cache-Control": "public, max-age=300",
            },
        )


class ReferenceView(SpectacularSwaggerView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(exclude=True)
    def get(self, request, version: str):
        self.url = reverse("api:schema", kwargs={"version": _known(version)})
        self.title = f"Healthcare Marketplace API {version} reference"
        return super().get(request)
