"""Endpoints as the changelog, the deprecations and the usage counters name them.

An endpoint is its method and route template, the way the OpenAPI documents write paths:
``GET /api/v1/visits/{visit_id}``, ``POST /fhir/r4/Patient``. Usage is counted per endpoint
(``api.usage``), so "which apps called what a change touches" is a query, not a guess.

A changelog entry or a deprecation names what it touches as *patterns*, one per line:

- ``GET /api/v1/visits/{visit_id}``: that method on that route;
- ``/api/v1/visits``: every method on that route and every route below it;
- ``POST /api/v1/visits``: that method on that route and below it.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CONVERTER = re.compile(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>")
_PATTERN = re.compile(r"^(?:(?P<method>[A-Z]+)\s+)?(?P<path>/[^\s]*)$")


def route_template(route: str) -> str:
    """Django's ``api/v1/visits/<str:visit_id>`` as ``/api/v1/visits/{visit_id}``."""
    return "/" + _CONVERTER.sub(r"{\1}", route).lstrip("/")


def endpoint_of(request) -> str:
    """The endpoint a request was routed to: ``GET /api/v1/visits/{visit_id}``; the raw path when it
    was not routed (a 404)."""
    match = getattr(request, "resolver_match", None)
    path = route_template(match.route) if match is not None and match.route else request.path_info
    return f"{request.method} {path.rstrip('/') or '/'}"


class InvalidPattern(ValueError):
    pass


@dataclass(frozen=True)
class Pattern:
    method: str  # "" for every method
    path: str  # no trailing slash

    @classmethod
    def parse(cls, text: str) -> "Pattern":
        found = _PATTERN.match(" ".join(text.split()))
        if not found:
            raise InvalidPattern(
                f"{text.strip()!r} is not an endpoint: write 'GET /api/v1/visits/{{visit_id}}' or '/api/v1/visits'."
            )
        method = found["method"] or ""
        if method and method not in METHODS:
            raise InvalidPattern(f"{method} is not an HTTP method.")
        return cls(method, found["path"].rstrip("/") or "/")

    def covers(self, endpoint: str) -> bool:
        method, _, path = endpoint.partition(" ")
        if self.method and self.method != method:
            return False
        return _at_or_below(path, self.path)

    def overlaps(self, other: "Pattern") -> bool:
        """Whether the two name a common endpoint: their methods agree (or one names every method) and
        one's path is the other's or below it. ``/api/v1/visits`` and ``GET /api/v1/visits/{visit_id}``
        overlap, both ways."""
        if self.method and other.method and self.method != other.method:
            return False
        return _at_or_below(self.path, other.path) or _at_or_below(other.path, self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}".strip()


def _at_or_below(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def parse_patterns(text: str) -> list[Pattern]:
    """One pattern per non-empty line; ``InvalidPattern`` names the first line that is not one."""
    return [Pattern.parse(line) for line in text.splitlines() if line.strip()]


def covered(endpoint: str, patterns: list[Pattern]) -> bool:
    return any(pattern.covers(endpoint) for pattern in patterns)


RECENT = timedelta(days=30)


def calls_by_endpoint(
    *,
    patterns: list[Pattern] | None = None,
    app_ids: list[int] | None = None,
    organization_id: int | None = None,
    since: datetime | None = None,
    now: datetime | None = None,
) -> dict[tuple[int, int, str], int]:
    """``{(organization id, app id, endpoint): calls}`` since ``since`` (default: the last 30 days),
    live counters included, restricted to the endpoints ``patterns`` cover when given. Every response
    counts, errors too: an app that gets 4xx from an endpoint still calls it."""
    from api.usage_selectors import UsageReader

    now = now or timezone.now()
    since = since or now - RECENT
    reader = UsageReader(since=since, now=now, organization_id=organization_id)
    totals = reader.totals(by=("organization_id", "app_id", "endpoint"), since=since)
    wanted = None if app_ids is None else set(app_ids)
    return {
        (organization, app, endpoint): count
        for (organization, app, endpoint), count in totals.items()
        if endpoint
        and count
        and (wanted is None or app in wanted)
        and (patterns is None or covered(endpoint, patterns))
    }
