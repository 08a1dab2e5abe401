"""Platform endpoints under /api/v1/, and the base class every protected API view extends."""

import time

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from api import adaptive, errors, ratelimit, sandbox_trace, usage
from api.authentication import BearerTokenAuthentication
from api.endpoints import endpoint_of
from api.permissions import API_PERMISSION_CLASSES, HasValidToken, describe_layers
from api.problems import PROBLEM_CONTENT_TYPE
from api.serializers import ProblemSerializer, TokenInfoSerializer
from marketplace import metrics, quota
from partners.scopes import UnknownScope, parse


class QuotaThrottle(BaseThrottle):
    """The rate-limit layer, after every permission layer (DRF checks throttles last): admits the
    request against its endpoint group's quotas or refuses it with 429 ``quota_exceeded``. The token
    layer may already have counted it, in its own round trip (``ratelimit.Plan``); then this only
    announces the verdict."""

    def allow_request(self, request, view):
        context = getattr(request, "auth_context", None)
        if context is None or not settings.RATE_LIMITS:
            return True
        verdict = getattr(request, "rate_verdict", None)
        if verdict is None:
            verdict = ratelimit.admit(context, view.get_endpoint_group(request))
            request.rate_verdict = verdict
        if not verdict.admitted:
            raise ratelimit.refusal(verdict, request)
        return True


class ProtectedAPIView(APIView):
    """An API view behind every layer: bearer token, then scope, organization, tier, environment
    and partner type (``api.permissions``), then the rate quotas of its endpoint group
    (``api.ratelimit``). Subclasses declare ``required_scopes`` or ``required_resource_access`` and,
    where they apply, ``allowed_partner_types`` and ``endpoint_group`` (a group, or a group per
    method; by default reads are ``fhir_read`` and writes ``writes``); in the handler they call
    ``require_environment`` and ``require_data_access`` for the records they touch."""

    authentication_classes = (BearerTokenAuthentication,)
    permission_classes = API_PERMISSION_CLASSES
    throttle_classes = (QuotaThrottle,)
    endpoint_group: str | dict | None = None

    def get_endpoint_group(self, request) -> str:
        group = self.endpoint_group
        if isinstance(group, dict):
            group = group.get(request.method)
        if group:
            return group
        return "fhir_read" if request.method in SAFE_METHODS else "writes"

    def rate_limited_group(self, request) -> str | None:
        """The group whose quotas this request is counted against, or None when it is not limited."""
        if not settings.RATE_LIMITS or QuotaThrottle not in self.throttle_classes:
            return None
        return self.get_endpoint_group(request)

    def check_permissions(self, request):
        """A request a permission layer refuses uses no quota: if the token layer already counted it,
        it is given back. Either way the refusal still says where the quotas stand."""
        try:
            super().check_permissions(request)
        except Exception:
            verdict = getattr(request, "rate_verdict", None)
            context = getattr(request, "auth_context", None)
            if verdict is not None:
                request.rate_verdict = quota.give_back(verdict)
            elif context is not None and self.rate_limited_group(request):
                request.rate_verdict = ratelimit.peek(context, self.get_endpoint_group(request))
            raise

    def initial(self, request, *args, **kwargs):
        request.started_at = time.monotonic()  # the adaptive limits time the response from here
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        verdict = getattr(request, "rate_verdict", None)
        if verdict is not None:
            for name, value in verdict.headers().items():
                if not response.has_header(name):
                    response[name] = value
        context = getattr(request, "auth_context", None)
        if context is not None:
            usage.record(
                app_id=context.app.pk,
                organization_id=context.organization.pk,
                group=self.get_endpoint_group(request),
                status=response.status_code,
                error_code=getattr(response, "problem_code", None),
                policy=verdict.violated[0].name if verdict is not None and verdict.violated else None,
                endpoint=endpoint_of(request),
            )
            started_at = getattr(request, "started_at", None) or time.monotonic()
            adaptive.observe(
                self.get_endpoint_group(request),
                context.app.pk,
                response.status_code,
                (time.monotonic() - started_at) * 1000,
            )
        self.count_response(request, response.status_code, getattr(response, "problem_code", None), verdict)
        sandbox_trace.record(self, request, response)  # certification's record; sandbox apps only, never raises
        return response

    def handle_exception(self, exc):
        try:
            return super().handle_exception(exc)
        except Exception:
            # Nothing made a problem of it: the error middleware answers 500, and finalize_response never runs.
            self.count_response(self.request, 500, None, None)
            raise

    def count_response(self, request, status: int, code: str | None, verdict) -> None:
        """The platform's metrics (``marketplace.metrics``) of every response, with a token or not: by
        endpoint group and status class, timed from where the adaptive limits time it; a 4xx problem
        by the layer that refused it; a 429 by the policy used up."""
        started_at = getattr(request, "started_at", None)
        entry = errors.ERRORS.get(code) if code else None
        metrics.api_response(
            group=self.get_endpoint_group(request),
            status=status,
            seconds=None if started_at is None else time.monotonic() - started_at,
            code=code,
            layer=entry.layer if entry else None,
        )
        if status == 429 and verdict is not None and verdict.violated:
            metrics.rate_limited(verdict.violated[0].name)


def problem_responses(*statuses: int) -> dict:
    """``extend_schema`` responses documenting each status as ``application/problem+json``."""
    return {
        (status, PROBLEM_CONTENT_TYPE): OpenApiResponse(ProblemSerializer, description="RFC 9457 problem details.")
        for status in statuses
    }


def versioned_schema(**kwargs):
    """``extend_schema`` for one API version's copy of a handler that several versions share.

    ``extend_schema`` marks the very function it decorates, so decorating the shared ``View.get`` once
    per version would leave every version with the last version's operation (its serializers, its
    operation id). This decorates a thin function of its own that calls the shared handler instead.
    """
    decorate = extend_schema(**kwargs)

    def apply(handler):
        def versioned(self, *args, **kw):
            return handler(self, *args, **kw)

        versioned.__name__, versioned.__qualname__, versioned.__doc__ = (
            handler.__name__,
            handler.__qualname__,
            handler.__doc__,
        )
        return decorate(versioned)

    return apply


def _granted_scope(name: str) -> dict:
    try:
        scope = parse(name)
    except UnknownScope:
        return {"name": name, "sentence": "", "kind": "unknown", "data_class": None}
    return {"name": name, "sentence": scope.sentence, "kind": scope.kind, "data_class": scope.data_class}


def token_info(context, request) -> dict:
    app, organization, tier = context.app, context.organization, context.tier
    return {
        "token_id": context.token_id,
        "kind": "system" if context.is_system else ("patient" if context.patient_id else "user"),
        "app": {"name": app.name, "client_id": app.client_id, "environment": app.environment},
        "organization": {
            "name": organization.name,
            "slug": organization.slug,
            "status": organization.status,
            "partner_type": organization.partner_type,
            "suspension_reason": None if organization.is_active else organization.suspension_reason,
        },
        "tier": {
            "slug": tier.slug,
            "name": tier.name,
            "rank": tier.rank,
            "write_access": tier.write_access,
            "token_lifetimes": {
                "patient_access_token": tier.patient_token_lifetime,
                "system_access_token": tier.system_token_lifetime,
                "refresh_token": tier.refresh_token_lifetime,
            },
        },
        "scopes": [_granted_scope(name) for name in context.scopes],
        "patient": {"id": context.patient_id, "reference": f"Patient/{context.patient_id}"}
        if context.patient_id
        else None,
        "issued_at": context.issued_at,
        "expires_at": context.expires_at,
        "expires_in": max(0, int((context.expires_at - timezone.now()).total_seconds())),
        "layers": describe_layers(context, request),
    }


class TokenInfoView(ProtectedAPIView):
    """What the calling token may do. Any valid token may ask, whatever its scopes, and so may an
    app of a suspended organization: the answer is how it learns why everything else is refused."""

    permission_classes = (HasValidToken,)

    @extend_schema(
        operation_id="token_info",
        summary="What the calling access token may do",
        description=(
            "The app, organization and tier behind the token, the scopes it carries with what each lets "
            "the app do, the patient it speaks for (if any), when it expires, and each authorization "
            "layer's verdict (token, scope, policy, data). Needs a valid token and no particular scope."
        ),
        tags=["platform"],
        responses={200: TokenInfoSerializer, **problem_responses(401, 405, 406, 429, 500)},
    )
    def get(self, request):
        data = TokenInfoSerializer(token_info(request.auth_context, request)).data
        return Response(data, headers={"Cache-Control": "no-store"})
