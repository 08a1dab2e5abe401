"""Rows of the clinical store as FHIR R4 JSON, and searchset Bundles.

A stored ``body`` is the resource without ``meta``; ``meta.versionId`` and ``meta.lastUpdated`` are
rendered from the row, so they can never disagree with the ``ETag`` and ``Last-Modified`` headers.
Everything here is pure FHIR: no key outside the specification.
"""

from datetime import UTC, datetime
from urllib.parse import urlencode

from django.utils import timezone
from django.utils.http import http_date
from rest_framework.renderers import JSONRenderer

from api.problems import FHIR_CONTENT_TYPE
from partners.oauth_views import fhir_base_url

# Keys of a stored body the row itself decides.
ROW_KEYS = ("resourceType", "id", "meta")


class FHIRJSONRenderer(JSONRenderer):
    media_type = FHIR_CONTENT_TYPE
    format = "fhir"


def fhir_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_datetime(moment: datetime) -> str:
    return http_date(moment.timestamp())


def etag(row) -> str:
    return f'W/"{row.version_id}"'


def resource(row) -> dict:
    """The row as its FHIR resource: type and id from the row, ``meta`` from its version columns."""
    body = {
        "resourceType": row.resource_type,
        "id": row.id,
        "meta": {"versionId": str(row.version_id), "lastUpdated": fhir_instant(row.last_updated)},
    }
    body.update((key, value) for key, value in row.body.items() if key not in ROW_KEYS)
    return body


def search_url(request, params) -> str:
    """An absolute search URL on the request's own host: ``params`` is a list of (name, value)."""
    base = request.build_absolute_uri(request.path)
    return f"{base}?{urlencode(params)}" if params else base


def outcome_entry(warnings: list[str]) -> dict:
    """The Bundle entry that tells the client what the server did not honour (``search.mode=outcome``)."""
    return {
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "not-supported", "diagnostics": text} for text in warnings],
        },
        "search": {"mode": "outcome"},
    }


def searchset(
    request,
    *,
    resources: list[dict],
    total: int | None,
    self_params: list,
    next_params: list | None = None,
    warnings: list[str] | None = None,
) -> dict:
    """A searchset Bundle: ``total``, absolute ``self`` (and ``next``) links, the matches, then an
    OperationOutcome entry for what was ignored. FHIR JSON has no empty arrays, so no ``entry`` key
    when there is nothing to list."""
    links = [{"relation": "self", "url": search_url(request, self_params)}]
    if next_params is not None:
        links.append({"relation": "next", "url": search_url(request, next_params)})
    bundle = {"resourceType": "Bundle", "type": "searchset", "timestamp": fhir_instant(timezone.now())}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    base = fhir_base_url(request)
    entries = [
        {"fullUrl": f"{base}/{item['resourceType']}/{item['id']}", "resource": item, "search": {"mode": "match"}}
        for item in resources
    ]
    if warnings:
        entries.append(outcome_entry(warnings))
    if entries:
        bundle["entry"] = entries
    return bundle
