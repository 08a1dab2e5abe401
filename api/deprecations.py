"""Deprecations, enforced: data (``api.models.Deprecation``) turned into headers, and at the end into 410.

A platform admin publishes a deprecation in Django admin; from its ``announced_at`` every response under
its ``path_prefix`` (errors included) carries

- ``Deprecation: @<unix time of announced_at>`` (RFC 9745),
- ``Sunset: <HTTP-date of sunset_at>`` (RFC 8594),
- ``Link: <migration guide>; rel="deprecation"; type="text/html"`` and, when there is one,
  ``<replacement>; rel="successor-version"``;

and from its ``enforced_at`` every request under the prefix gets a 410 ``endpoint_retired`` problem naming
the replacement and the migration guide, before authentication: a retired endpoint needs no token.

The published deprecations are few and change rarely, so matching a path against them costs neither a
query nor a cache round trip: each process keeps them for ``MEMO_SECONDS``, read from the shared cache,
which keeps them for ``CACHE_SECONDS`` and reads them from the database when it has none. Saving or
deleting a deprecation drops both copies (the signal receivers below): the process that saved sees it at
once, the others within ``MEMO_SECONDS`` with Redis (``CACHE_SECONDS`` with the per-process local-memory
cache). Deprecations carry their own dates, so a few seconds' delay never moves an announcement.
"""

import time
from dataclasses import dataclass
from datetime import datetime

import structlog
from django.core.cache import cache
from django.db import DatabaseError
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from django.utils.http import http_date

from api.models import Deprecation
from api.problems import API_PATH_PREFIX, Problem, problem_response

log = structlog.get_logger("api.deprecations")

CACHE_KEY = "api:deprecations:v1"
CACHE_SECONDS = 30
MEMO_SECONDS = 5

_memo: tuple[float, tuple] | None = None  # (monotonic expiry, rules) of this process


@dataclass(frozen=True)
class Rule:
    """One published deprecation, as the middleware needs it."""

    prefix: str  # normalized: no leading or trailing slash, relative to /api/ ("v1", "v1/visits")
    title: str
    replacement: str
    migration_guide: str
    announced_at: datetime
    sunset_at: datetime
    enforced_at: datetime | None

    def covers(self, relative_path: str) -> bool:
        return relative_path == self.prefix or relative_path.startswith(self.prefix + "/")

    def announced(self, now: datetime) -> bool:
        return self.announced_at <= now

    def enforced(self, now: datetime) -> bool:
        return self.enforced_at is not None and self.enforced_at <= now


def normalize_prefix(value: str) -> str:
    """``/api/v1/visits/``, ``api/v1/visits`` and ``v1/visits`` all name the same prefix: ``v1/visits``."""
    value = value.strip().strip("/")
    if value == "api" or value.startswith("api/"):
        value = value[4:]
    return value


def _load() -> tuple[Rule, ...]:
    rows = Deprecation.objects.filter(published=True).only(
        "path_prefix", "title", "replacement", "migration_guide", "announced_at", "sunset_at", "enforced_at"
    )
    rules = [
        Rule(
            prefix=normalize_prefix(row.path_prefix),
            title=row.title,
            replacement=row.replacement.strip(),
            migration_guide=row.migration_guide.strip(),
            announced_at=row.announced_at,
            sunset_at=row.sunset_at,
            enforced_at=row.enforced_at,
        )
        for row in rows
    ]
    # Longest prefix first: a deprecation of v1/visits wins over one of the whole of v1.
    return tuple(sorted((r for r in rules if r.prefix), key=lambda r: len(r.prefix), reverse=True))


def published_rules() -> tuple[Rule, ...]:
    global _memo
    memo = _memo
    if memo is not None and memo[0] > time.monotonic():
        return memo[1]
    rules = cache.get(CACHE_KEY)
    if rules is None:
        rules = _load()
        cache.set(CACHE_KEY, rules, CACHE_SECONDS)
    _memo = (time.monotonic() + MEMO_SECONDS, rules)
    return rules


def forget() -> None:
    """Drop this process's copy and the shared one: the next request reads the database."""
    global _memo
    _memo = None
    cache.delete(CACHE_KEY)


def rule_for(path: str) -> Rule | None:
    """The published deprecation covering ``path`` (a request path under /api/), longest prefix first."""
    if not path.startswith(API_PATH_PREFIX):
        return None
    relative = path[len(API_PATH_PREFIX) :].rstrip("/")
    for rule in published_rules():
        if rule.covers(relative):
            return rule
    return None


@receiver(post_save, sender=Deprecation, dispatch_uid="api.deprecations.saved")
@receiver(post_delete, sender=Deprecation, dispatch_uid="api.deprecations.deleted")
def _forget_rules(**kwargs):
    forget()


# --- headers and the 410 ---------------------------------------------------------------------------


def _absolute(request, target: str) -> str:
    if target.startswith(("https://", "http://")):
        return target
    return request.build_absolute_uri(target)


def deprecation_value(moment: datetime) -> str:
    """RFC 9745: a structured-field Date, ``@`` and the Unix time in seconds."""
    return f"@{int(moment.timestamp())}"


def link_value(request, rule: Rule) -> str:
    links = [f'<{_absolute(request, rule.migration_guide)}>; rel="deprecation"; type="text/html"']
    if rule.replacement:
        links.append(f'<{_absolute(request, rule.replacement)}>; rel="successor-version"')
    return ", ".join(links)


def add_headers(request, response, rule: Rule) -> None:
    response["Deprecation"] = deprecation_value(rule.announced_at)
    response["Sunset"] = http_date(rule.sunset_at.timestamp())
    links = link_value(request, rule)
    response["Link"] = f"{response['Link']}, {links}" if response.has_header("Link") else links


def retired(request, rule: Rule) -> Problem:
    guide = _absolute(request, rule.migration_guide)
    replacement = _absolute(request, rule.replacement) if rule.replacement else None
    since = rule.enforced_at.strftime("%Y-%m-%d")
    detail = f"{rule.title}: {request.path} was retired on {since}. "
    detail += f"Use {replacement} instead; the migration guide is {guide}." if replacement else f"See {guide}."
    return Problem(
        "endpoint_retired",
        detail,
        fix=f"Follow the migration guide ({guide})" + (f" and call {replacement} instead." if replacement else "."),
        replacement=replacement,
        migration_guide=guide,
        sunset=rule.sunset_at.isoformat(),
    )


class DeprecationMiddleware:
    """Deprecation headers on every response under a published deprecation's prefix; 410 once enforced.

    It sits outside the error middleware, so the problems that one makes carry the headers too, and
    in front of every view, so a retired endpoint answers 410 before any authentication.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            rule = rule_for(request.path_info)
        except DatabaseError:
            # The headers are advice: without the database the request fails further in, as a problem.
            log.warning("deprecations_unavailable", path=request.path_info, exc_info=True)
            rule = None
        if rule is None:
            return self.get_response(request)
        now = timezone.now()
        if rule.enforced(now):
            response = problem_response(request, retired(request, rule))
        else:
            response = self.get_response(request)
        if rule.announced(now) or rule.enforced(now):
            add_headers(request, response, rule)
        return response


def deprecation_announce(*, deprecation: Deprecation, base_url: str) -> None:
    """Tell every app, by webhook and event feed, that an endpoint is deprecated (``deprecation.announced``).
    Called in the transaction that publishes the deprecation."""
    from urllib.parse import urljoin

    from partners.services import event_publish

    event_publish(
        type="deprecation.announced",
        payload={
            "deprecation_id": deprecation.pk,
            "path_prefix": deprecation.path_prefix,
            "title": deprecation.title,
            "announced_at": deprecation.announced_at.isoformat(),
            "sunset_at": deprecation.sunset_at.isoformat(),
            "replacement": deprecation.replacement,
            "migration_guide": urljoin(base_url, deprecation.migration_guide) if deprecation.migration_guide else "",
        },
    )


def deprecation_state(deprecation: Deprecation, now: datetime) -> str:
    """draft, scheduled (announced later), announced, or enforced (answering 410)."""
    if not deprecation.published:
        return "draft"
    if deprecation.enforced_at and deprecation.enforced_at <= now:
        return "enforced"
    if deprecation.announced_at <= now:
        return "announced"
    return "scheduled"


def published_deprecations() -> list[Deprecation]:
    """What ``/deprecations/`` lists: the published deprecations, soonest sunset first, read from the
    same rows that drive the headers."""
    return list(Deprecation.objects.filter(published=True).order_by("sunset_at", "path_prefix"))
