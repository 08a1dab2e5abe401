"""Deprecation notices: the organizations whose apps still call a deprecated endpoint hear of it, by
portal inbox and by email, at each milestone and exactly once per milestone.

A beat task (``api.tasks.send_deprecation_notices``, hourly) calls ``deprecation_notices_send``, which
works in two steps, each safe to rerun or to run twice at once:

1. **Tell** (``_tell``). For each published deprecation, the milestone due now (``milestone_due``), and
   the organizations whose apps called an endpoint it covers in the last 30 days
   (``api.endpoints.calls_by_endpoint``, live counters included), one transaction per organization
   inserts its ``DeprecationNotice`` row and writes an inbox message for each active member. The row's
   unique constraint (deprecation, organization, milestone) is the claim: a retry, or a second
   scheduler running at the same moment, fails the insert (on PostgreSQL it waits for the winner's
   commit first) and writes nothing. The inbox messages commit with the row or not at all.
2. **Email** (``deprecation_notices_email``). Every row not yet emailed is worked through one
   recipient at a time: lock the row (``SELECT ... FOR UPDATE SKIP LOCKED``: a row another run is
   emailing is skipped, not waited for), send to the next recipient not yet emailed, mark them, commit.
   A send that fails leaves that recipient unmarked for the next run (and never rewrites the inbox);
   after ``MAX_EMAIL_ATTEMPTS`` failures the recipient is given up on and the admin page says so.

The residual window, honestly: the mark commits *after* the mail server has accepted the message. A
process that dies (or a database that fails the commit) in between leaves that one recipient unmarked,
and the next run emails them again. Email is therefore at-least-once for that one recipient in that
moment, and exactly once otherwise; the inbox message is exactly once always. No mail server lets us do
better (there is no transaction spanning SMTP and the database).

Which milestone: the milestones are the announcement, 90, 30 and 7 days before the sunset, and the
sunset; those before the announcement are dropped (a deprecation announced 20 days before its sunset has
only "announced", "7_days" and "sunset"). Only the *latest* milestone whose moment has come is ever sent:
an earlier one is superseded by it (its news is stale, and the latest notice says everything the earlier
one would have), so a late-published deprecation, or a scheduler that was down across a milestone,
never sends a burst of outdated notices. The latest one is sent however late it is, because what it says
stays true until the next milestone; and an organization whose apps start calling the endpoint after a
milestone was sent to others hears that milestone at the next run, once.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from api.deprecation_notice_models import DeprecationNotice
from api.deprecations import normalize_prefix
from api.endpoints import Pattern, calls_by_endpoint
from api.models import Deprecation
from partners.models import App, Organization
from partners.services import email_send, organization_notify_members

log = structlog.get_logger("api.deprecation_notices")

Milestone = DeprecationNotice.Milestone

# Days before the sunset of each countdown milestone.
COUNTDOWN = ((Milestone.DAYS_90, 90), (Milestone.DAYS_30, 30), (Milestone.DAYS_7, 7))
# An hourly beat run retries a failed recipient for about this many hours before giving up on them.
MAX_EMAIL_ATTEMPTS = 6
# Rows the email step takes on per run; the rest wait for the next run.
EMAIL_BATCH = 1000


@dataclass(frozen=True)
class Due:
    milestone: str
    at: datetime


def milestones(deprecation: Deprecation) -> list[Due]:
    """The deprecation's milestones, in order. Those that would fall before the announcement are
    dropped: nobody is told "90 days left" before being told of the deprecation at all."""
    announced, sunset = deprecation.announced_at, deprecation.sunset_at
    found = [Due(Milestone.ANNOUNCED, announced)]
    found += [
        Due(key, sunset - timedelta(days=days)) for key, days in COUNTDOWN if sunset - timedelta(days=days) > announced
    ]
    if sunset > announced:
        found.append(Due(Milestone.SUNSET, sunset))
    return found


def milestone_due(deprecation: Deprecation, now: datetime) -> Due | None:
    """The latest milestone whose moment has come, or ``None`` before the announcement (see the module
    docstring for why never an earlier one)."""
    due = [m for m in milestones(deprecation) if m.at <= now]
    return due[-1] if due else None


def pattern_of(deprecation: Deprecation) -> Pattern | None:
    """``v1/visits`` covers ``/api/v1/visits`` and everything below it, every method."""
    prefix = normalize_prefix(deprecation.path_prefix)
    return Pattern("", f"/api/{prefix}") if prefix else None


# --- What the notice says -------------------------------------------------------------------------


def _absolute(target: str) -> str:
    if not target or target.startswith(("https://", "http://")):
        return target
    return f"{settings.PUBLIC_BASE_URL}/{target.lstrip('/')}"


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def _days_left(deprecation: Deprecation, now: datetime) -> int:
    return max(0, math.ceil((deprecation.sunset_at - now) / timedelta(days=1)))


def compose(*, deprecation: Deprecation, milestone: str, calls: list[dict], now: datetime) -> tuple[str, str]:
    """The subject and body of one organization's notice, the same in the inbox and the email. Plain
    text: the inbox shows it with line breaks, the email as it is."""
    path = f"/api/{normalize_prefix(deprecation.path_prefix)}"
    sunset = _day(deprecation.sunset_at)
    days = _days_left(deprecation, now)
    if milestone == Milestone.ANNOUNCED:
        subject = f"Deprecated: {deprecation.title} ({path}), sunset {sunset}"
        lead = f"{deprecation.title} ({path} and everything under it) is deprecated."
    elif milestone == Milestone.SUNSET:
        subject = f"Sunset reached: {deprecation.title} ({path})"
        lead = f"{deprecation.title} ({path} and everything under it) reached its sunset on {sunset}."
    else:
        in_days = f"{days} day{'s' if days != 1 else ''}"
        subject = f"{in_days} to the sunset of {deprecation.title} ({path}): {sunset}"
        lead = f"{deprecation.title} ({path} and everything under it) reaches its sunset in {in_days}, on {sunset}."

    if deprecation.enforced_at is not None and deprecation.enforced_at <= now:
        after = f"Since {_day(deprecation.enforced_at)} every request to it gets 410 Gone (endpoint_retired)."
    elif deprecation.enforced_at is not None:
        after = f"From {_day(deprecation.enforced_at)} every request to it will get 410 Gone (endpoint_retired)."
    else:
        after = "After the sunset it may stop working: requests will get 410 Gone (endpoint_retired)."

    lines = [
        lead,
        f"Announced {_day(deprecation.announced_at)}; sunset {sunset}. {after}",
        "",
        f"Your organization's apps called it {sum(row['calls'] for row in calls):,} times in the last 30 days:",
    ]
    for app_id in dict.fromkeys(row["app_id"] for row in calls):
        rows = [row for row in calls if row["app_id"] == app_id]
        lines.append(f"- {rows[0]['app']} ({rows[0]['environment']}, app {app_id}):")
        lines += [f"    {row['endpoint']}: {row['calls']:,}" for row in rows]
    lines.append("")
    if deprecation.summary.strip():
        lines += [deprecation.summary.strip(), ""]
    if deprecation.replacement.strip():
        lines.append(f"Use instead: {_absolute(deprecation.replacement.strip())}")
    if deprecation.migration_guide.strip():
        lines.append(f"Migration guide: {_absolute(deprecation.migration_guide.strip())}")
    lines.append(f"Every deprecation and its dates: {_absolute(reverse('portal:deprecations'))}")
    lines.append(f"The deprecation policy: {_absolute('/docs/deprecation-policy/')}")
    lines += ["", "You get this because you are a member of an organization whose apps called these endpoints."]
    return subject[:200], "\n".join(lines)


# --- Step 1: tell ---------------------------------------------------------------------------------


def _calls_rows(found: dict[tuple[int, int, str], int], apps: dict[int, dict]) -> list[dict]:
    rows = [
        {
            "app_id": app_id,
            "app": apps.get(app_id, {}).get("name", f"App {app_id}"),
            "environment": apps.get(app_id, {}).get("environment", ""),
            "endpoint": endpoint,
            "calls": count,
        }
        for (_, app_id, endpoint), count in found.items()
    ]
    return sorted(rows, key=lambda row: (row["app"].lower(), row["app_id"], row["endpoint"]))


def _tell(*, deprecation: Deprecation, due: Due, organization: Organization, calls: list[dict], now: datetime) -> bool:
    """Insert the notice and its inbox messages in one transaction; ``False`` when the organization
    already had this milestone (another run won the insert) or has no one to tell."""
    subject, body = compose(deprecation=deprecation, milestone=due.milestone, calls=calls, now=now)
    with transaction.atomic():
        try:
            # The savepoint keeps the outer transaction usable after the insert loses: on PostgreSQL
            # the losing insert waits for the winner's commit, then fails on the unique constraint.
            with transaction.atomic():
                notice = DeprecationNotice.objects.create(
                    deprecation=deprecation,
                    organization=organization,
                    milestone=due.milestone,
                    milestone_at=due.at,
                    subject=subject,
                    body=body,
                    calls=calls,
                    created_at=now,
                )
        except IntegrityError:
            return False
        messages = organization_notify_members(
            organization=organization, subject=subject, body=body, link=reverse("portal:deprecations"), email=False
        )
        if not messages:
            # No active member: no row either, so whoever joins before the next milestone is told.
            transaction.set_rollback(True)
            return False
        notice.recipients = [
            {"user_id": m.recipient.pk, "email": m.recipient.email, "emailed_at": None, "attempts": 0, "error": ""}
            for m in messages
        ]
        notice.save(update_fields=["recipients"])
    log.info(
        "deprecation_notice_told",
        deprecation_id=deprecation.pk,
        organization_id=organization.pk,
        milestone=due.milestone,
        recipients=len(messages),
    )
    return True


def _deprecations_due(now: datetime) -> list[tuple[Deprecation, Due, Pattern]]:
    found = []
    for deprecation in Deprecation.objects.filter(published=True, announced_at__lte=now).order_by("pk"):
        due, pattern = milestone_due(deprecation, now), pattern_of(deprecation)
        if due is not None and pattern is not None:
            found.append((deprecation, due, pattern))
    return found


def deprecation_notices_tell(*, now: datetime | None = None) -> int:
    """Step 1 (module docstring): returns how many organizations were told."""
    now = now or timezone.now()
    due_now = _deprecations_due(now)
    if not due_now:
        return 0
    # One read of the usage (table and live counters) for every deprecation at once.
    found = calls_by_endpoint(patterns=[pattern for _, _, pattern in due_now], now=now)
    apps = {
        row["pk"]: row for row in App.objects.filter(pk__in={k[1] for k in found}).values("pk", "name", "environment")
    }
    told = 0
    for deprecation, due, pattern in due_now:
        per_organization: dict[int, dict] = {}
        for key, count in found.items():
            if pattern.covers(key[2]):
                per_organization.setdefault(key[0], {})[key] = count
        # Skip, without a failing insert each, the organizations that have this milestone already.
        already = set(
            DeprecationNotice.objects.filter(
                deprecation=deprecation, milestone=due.milestone, organization_id__in=per_organization
            ).values_list("organization_id", flat=True)
        )
        organizations = Organization.objects.in_bulk([pk for pk in per_organization if pk not in already])
        for organization_id in sorted(organizations):
            calls = _calls_rows(per_organization[organization_id], apps)
            told += _tell(
                deprecation=deprecation, due=due, organization=organizations[organization_id], calls=calls, now=now
            )
    return told


# --- Step 2: email --------------------------------------------------------------------------------


def _email_next(notice_id: int) -> str:
    """Email the next recipient of one notice under its row lock: ``sent``, ``gave_up`` (try the next
    recipient), ``later`` (leave the rest to the next run), or ``done`` (nothing left, or another run
    has the row)."""
    with transaction.atomic():
        notice = (
            DeprecationNotice.objects.select_for_update(skip_locked=True)
            .filter(pk=notice_id, emailed_at__isnull=True)
            .first()
        )
        if notice is None:
            return "done"
        recipient = next((r for r in notice.recipients if not r.get("emailed_at") and not r.get("gave_up_at")), None)
        now = timezone.now()
        if recipient is None:
            given_up = any(r.get("gave_up_at") for r in notice.recipients)
            notice.email_state = DeprecationNotice.EmailState.FAILED if given_up else DeprecationNotice.EmailState.SENT
            notice.emailed_at = now
            notice.save(update_fields=["email_state", "emailed_at"])
            return "done"
        recipient["attempts"] = recipient.get("attempts", 0) + 1
        try:
            email_send(to=[recipient["email"]], subject=notice.subject, body=notice.body)
        except Exception as exc:  # any backend's failure: kept on the row, retried by the next run
            recipient["error"] = notice.email_error = f"{type(exc).__name__}: {exc}"[:500]
            outcome = "later"
            if recipient["attempts"] >= MAX_EMAIL_ATTEMPTS:
                recipient["gave_up_at"] = now.isoformat()
                outcome = "gave_up"
            log.warning(
                "deprecation_notice_email_failed", notice_id=notice.pk, attempts=recipient["attempts"], exc_info=True
            )
        else:
            recipient["emailed_at"] = now.isoformat()
            recipient["error"] = ""
            outcome = "sent"
        # The window the module docstring names: the mail is out, this commit is not yet.
        notice.save(update_fields=["recipients", "email_error"])
        return outcome


def deprecation_notices_email(*, limit: int = EMAIL_BATCH) -> int:
    """Step 2 (module docstring): returns how many emails were sent."""
    pending = list(
        DeprecationNotice.objects.filter(emailed_at__isnull=True)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for notice_id in pending:
        while (outcome := _email_next(notice_id)) in ("sent", "gave_up"):
            sent += outcome == "sent"
    return sent


def deprecation_notices_send(*, now: datetime | None = None) -> dict:
    """Tell the organizations due a notice, then email every notice not yet emailed (this run's and any
    an earlier run could not). Call it outside a transaction: emails go out as each row commits."""
    told = deprecation_notices_tell(now=now)
    emailed = deprecation_notices_email()
    return {"told": told, "emailed": emailed}
