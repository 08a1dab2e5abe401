"""Read (``GET /fhir/r4/<Type>/<id>``) and search (``GET /fhir/r4/<Type>?...``) of the clinical store.

Every request passes the layers of ``ProtectedAPIView`` (token, scope, organization, tier,
environment, partner type); then the handler applies ``api.fhir.access`` (environment, the patient
in context, consent) and writes the access audit (``api.audit.record_access``) for patient data:

- a read: one event, allowed with the consent grant it rests on, or refused with the refusal code
  (``not_found`` included: a read of another patient's record is a refused attempt, even though the
  caller only learns "not found");
- a search about one patient (the patient in context, or ``patient=`` from a user/system token):
  one event for the search, with that patient and grant;
- a search across patients: one event per patient whose data the page returned, with that patient's
  grant (the audit answers "who saw my data" without one row per resource), or one event without a
  patient when the page is empty or only a count was asked for.

Only GET (and HEAD) are served for now: any other method (OPTIONS included, whose DRF body would not
be FHIR) is 405 before any other layer speaks.
"""

from django.db.models import Q
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from api import policy
from api.audit import record_access
from api.fhir import render
from api.fhir.access import CrossPatientAccess, base_filter, category_filter, scope_categories
from api.fhir.resources import TYPES, FhirType, observation_data_class
from api.fhir.search import Sort, decode_cursor, encode_cursor, invalid_search, parse_count, reference_id, split_or
from api.fhir.search import token as parse_token
from api.permissions import auth_context, data_refusal, require_data_access, require_environment
from api.problems import FHIR_CONTENT_TYPE, Problem
from api.views import ProtectedAPIView
from partners.scopes import OBSERVATION_CATEGORY_CLASSES

SERVED_METHODS = ("GET", "HEAD")
JSON_FORMATS = ("json", "application/json", "application/fhir+json", "fhir+json", "application/json+fhir")
# Parameters about the result rather than the rows; every other name is a search parameter.
RESULT_PARAMETERS = ("_count", "_summary", "_format", "_cursor", "_sort")
DEFAULT_SORT = Sort("", None)
AUDITED_STATUSES = (403, 404)


class FhirView(ProtectedAPIView):
    """Shared by the read and search views of one type (``fhir_type``, given to ``as_view``)."""

    fhir_type: FhirType | None = None
    # Answers application/fhir+json whether the caller accepts that, application/json or anything.
    renderer_classes = (render.FHIRJSONRenderer, JSONRenderer)
    http_method_names = ["get", "head"]  # the Allow header of a 405
    action = ""

    def initial(self, request, *args, **kwargs):
        # 405 comes first: a POST is not a write a read-only tier should be told to upgrade for.
        if request.method not in SERVED_METHODS:
            raise MethodNotAllowed(request.method, f"{request.method} is not supported on this FHIR endpoint yet.")
        requested_format = request.GET.get("_format")
        if requested_format is not None and requested_format.lower() not in JSON_FORMATS:
            raise Problem("not_acceptable", f"_format={requested_format[:40]} is not served; this server speaks JSON.")
        self.audit_patient_id = None
        self.audit_resource_id = ""
        super().initial(request, *args, **kwargs)

    # --- the scope layer asks this: Observation scopes may be narrowed by category ------------------

    def get_required_resource_access(self, request):
        name = self.fhir_type.name
        action = "r" if self.action == "read" else "s"
        context = getattr(request, "auth_context", None)
        if name != "Observation" or context is None:
            return (name, action)
        allowed = scope_categories(context, action)
        if not allowed:  # None: every category; empty: nothing, refused as it stands
            return (name, action)
        if self.action == "read":
            row = self.visible_row(request, self.kwargs["resource_id"])
            category = row.category if row is not None else sorted(allowed)[0]
            return (name, action, {"category": category})
        for value in request.GET.getlist("category"):
            for alternative in split_or(value):
                code = parse_token(alternative)[1]
                if code not in allowed:
                    return (name, action, {"category": code})
        return (name, action, {"category": sorted(allowed)[0]})

    def visible_row(self, request, resource_id: str):
        """The row ``resource_id`` as the caller may see it (environment, patient in context), or None."""
        if not hasattr(self, "_row"):
            context = auth_context(request)
            self._row = self.fhir_type.model.objects.filter(
                base_filter(self.fhir_type, context), id=resource_id
            ).first()
        return self._row

    # --- audit ------------------------------------------------------------------------------------------

    def audit(self, request, *, outcome: str, patient_id=None, grant_id=None, refusal_code="", resource_id=""):
        if not self.fhir_type.is_patient_data:
            return
        record_access(
            request,
            resource_type=self.fhir_type.name,
            resource_id=resource_id,
            patient_id=patient_id,
            action=self.action,
            outcome=outcome,
            refusal_code=refusal_code,
            consent_grant_id=grant_id,
        )

    def handle_exception(self, exc):
        """Every refusal (scope, policy, consent, not found) of patient data is audited here, once."""
        request = self.request
        if (
            isinstance(exc, Problem)
            and exc.status_code in AUDITED_STATUSES
            and getattr(request, "auth_context", None) is not None
            and self.fhir_type.is_patient_data
        ):
            self.audit(
                request,
                outcome="refused",
                patient_id=getattr(self, "audit_patient_id", None) or request.auth_context.patient_id,
                grant_id=getattr(exc, "grant_id", None),
                refusal_code=exc.code,
                resource_id=getattr(self, "audit_resource_id", ""),
            )
        return super().handle_exception(exc)

    def fhir_response(self, body, status=200, **headers) -> Response:
        return Response(body, status=status, content_type=FHIR_CONTENT_TYPE, headers=headers)


@extend_schema(exclude=True)  # described by the CapabilityStatement at /fhir/r4/metadata
class FhirReadView(FhirView):
    action = "read"
    endpoint_group = "fhir_read"

    def get(self, request, resource_id: str):
        fhir_type = self.fhir_type
        self.audit_resource_id = resource_id
        row = self.visible_row(request, resource_id)
        if row is None:
            if fhir_type.is_patient_data:
                self.audit_patient_id = self._owner(request, resource_id)
            raise Problem("not_found", f"No {fhir_type.name}/{resource_id} is visible to this app.")
        require_environment(request, row.environment)
        patient_id = fhir_type.patient_of(row)
        self.audit_patient_id = patient_id
        decision = require_data_access(request, patient_id=patient_id, data_class=fhir_type.data_class(row))
        self.audit(request, outcome="allowed", patient_id=patient_id, grant_id=decision.grant_id, resource_id=row.id)
        return read_response(request, row)

    def _owner(self, request, resource_id: str) -> str | None:
        """Whose record a refused read was after, for the audit (never for the response)."""
        context = auth_context(request)
        column = self.fhir_type.patient_column
        found = (
            self.fhir_type.model.objects.filter(environment=context.app.environment, id=resource_id)
            .values_list(column, flat=True)
            .first()
        )
        return found or (resource_id if self.fhir_type.name == "Patient" else None)


def read_response(request, row) -> Response:
    """The body and headers of a read of ``row`` once every layer has let it through (also what
    bench/ serves with the layers off, so that the two differ by the layers alone)."""
    etag = render.etag(row)
    headers = {
        "ETag": etag,
        "Last-Modified": render.http_datetime(row.last_updated),
        "Cache-Control": "private, no-cache",
    }
    if etag in _etags(request.headers.get("If-None-Match", "")):
        return Response(status=304, headers=headers)
    return Response(render.resource(row), content_type=FHIR_CONTENT_TYPE, headers=headers)


def _etags(header: str) -> set[str]:
    tags = {tag.strip() for tag in header.split(",") if tag.strip()}
    return tags | {f"W/{tag}" for tag in tags if not tag.startswith("W/")}


@extend_schema(exclude=True)  # described by the CapabilityStatement at /fhir/r4/metadata
class FhirSearchView(FhirView):
    action = "search"
    endpoint_group = "fhir_search"

    def get(self, request):
        fhir_type = self.fhir_type
        context = auth_context(request)
        params = request.query_params
        require_environment(request, context.app.environment)
        count = parse_count(params.get("_count"))
        warnings: list[str] = []
        summary = params.get("_summary")
        if summary not in (None, "", "count", "false"):
            warnings.append(f"_summary={summary} is not supported and was ignored; count and false are.")
        only_total = summary == "count" or count == 0
        sort = self._sort(params, warnings)

        q = base_filter(fhir_type, context)
        applied: list[tuple[str, str]] = []
        for name in params:
            if name in RESULT_PARAMETERS:
                continue
            if name not in fhir_type.params:
                warnings.append(f"The search parameter {name} is not supported for {fhir_type.name} and was ignored.")
                continue
            values = params.getlist(name)
            q &= fhir_type.params[name].q(values)
            applied += [(name, value) for value in values]

        cross = None
        if fhir_type.is_patient_data:
            q, cross = self._restrict_to_visible_patients(request, context, q)
        if fhir_type.name == "Observation":
            allowed = scope_categories(context, "s")
            if allowed is not None:
                q &= category_filter(allowed)

        matches = fhir_type.model.objects.filter(q)
        total = matches.count()
        rows, cursor = [], params.get("_cursor")
        if not only_total:
            page = matches.order_by(*sort.order_by())
            if cursor:
                page = page.filter(sort.after(*decode_cursor(cursor, fhir_type.name, sort)))
            rows = list(page[: count + 1])
        has_next = len(rows) > count
        rows = rows[:count]

        self._audit_search(request, rows, cross)
        result = [*applied, *([("_sort", sort.name)] if sort.name else [])]
        if summary == "count":
            result.append(("_summary", "count"))
        self_params = [*result, ("_count", count), *([("_cursor", cursor)] if cursor else [])]
        next_params = None
        if has_next:
            next_params = [*result, ("_count", count), ("_cursor", encode_cursor(fhir_type.name, sort, rows[-1]))]
        bundle = render.searchset(
            request,
            resources=[render.resource(row) for row in rows],
            total=total,
            self_params=self_params,
            next_params=next_params,
            warnings=warnings,
        )
        return self.fhir_response(bundle, **{"Cache-Control": "no-store"})

    def _sort(self, params, warnings) -> Sort:
        raw = params.get("_sort")
        if raw is None or raw == "":
            return DEFAULT_SORT
        sorts = self.fhir_type.sorts
        if not sorts:
            warnings.append(f"_sort is not supported for {self.fhir_type.name} and was ignored.")
            return DEFAULT_SORT
        if raw not in sorts:
            raise invalid_search("_sort", f"_sort is one of {', '.join(sorts)} for {self.fhir_type.name}.")
        return sorts[raw]

    # --- the patient rules ------------------------------------------------------------------------------

    def _requested_patients(self, params) -> set[str]:
        wanted = set()
        for name in self.fhir_type.patient_params:
            for value in params.getlist(name):
                for alternative in split_or(value):
                    pid = alternative if name == "_id" else reference_id(alternative, "Patient", name)
                    if pid is not None:
                        wanted.add(pid)
        return wanted

    def _restrict_to_visible_patients(self, request, context, q: Q):
        """(the filter, a ``CrossPatientAccess`` when the search spans patients, else None)."""
        requested = self._requested_patients(request.query_params)
        if context.patient_id:
            others = sorted(requested - {context.patient_id})
            if others:
                self.audit_patient_id = others[0]
                raise Problem(
                    "forbidden",
                    f"This access token speaks for Patient/{context.patient_id}; it cannot search the data of "
                    f"Patient/{others[0]}.",
                )
            return q & self._one_patient(request, context.patient_id), None
        if len(requested) == 1:
            (patient_id,) = requested
            return q & self._one_patient(request, patient_id), None
        cross = CrossPatientAccess(self.fhir_type, context)
        return q & cross.q(), cross

    def _one_patient(self, request, patient_id: str) -> Q:
        """Consent for a search about one patient: refused (403) unless it covers what is asked. An
        Observation search without a category under a consent for some categories only is narrowed to
        those categories."""
        self.audit_patient_id = patient_id
        fhir_type = self.fhir_type
        column = Q(**{fhir_type.patient_column: patient_id})
        if fhir_type.name != "Observation":
            decision = require_data_access(request, patient_id=patient_id, data_class=fhir_type.data_class())
            self.search_grant = decision.grant_id
            return column
        categories = {
            parse_token(alternative)[1]
            for value in request.query_params.getlist("category")
            for alternative in split_or(value)
        }
        if categories:
            for data_class in sorted({observation_data_class(c) for c in categories}):
                self.search_grant = require_data_access(request, patient_id=patient_id, data_class=data_class).grant_id
            return column
        context = auth_context(request)
        every = policy.check_data_access(context=context, patient_id=patient_id, data_class="observations")
        if every.allowed:
            self.search_grant = every.grant_id
            return column
        narrowed = {}
        for category, data_class in OBSERVATION_CATEGORY_CLASSES.items():
            decision = policy.check_data_access(context=context, patient_id=patient_id, data_class=data_class)
            if decision.allowed:
                narrowed[category] = decision
        if not narrowed:
            raise data_refusal(every, patient_id=patient_id, data_class="observations")
        self.search_grant = next(iter(narrowed.values())).grant_id
        return column & category_filter(narrowed)

    def _audit_search(self, request, rows, cross: CrossPatientAccess | None):
        if not self.fhir_type.is_patient_data:
            return
        if cross is None:
            self.audit(
                request,
                outcome="allowed",
                patient_id=self.audit_patient_id,
                grant_id=getattr(self, "search_grant", None),
            )
            return
        patients = {}
        for row in rows:
            patients.setdefault(self.fhir_type.patient_of(row), cross.grant_id(row))
        if not patients:
            self.audit(request, outcome="allowed")
        for patient_id, grant_id in patients.items():
            self.audit(request, outcome="allowed", patient_id=patient_id, grant_id=grant_id)


def read_view(resource_type: str):
    return FhirReadView.as_view(fhir_type=TYPES[resource_type])


def search_view(resource_type: str):
    return FhirSearchView.as_view(fhir_type=TYPES[resource_type])
