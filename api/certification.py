"""The certification suite: does a sandbox app behave as a production app must?

A partner starts a run from the portal (``certification_run_request``); a worker runs every check
(``certification_run_execute``, the ``run_certification`` task) and writes the results all at once
(``partners.certification_services``). A run passes when every check passes; a passing run from the
last 30 days is a requirement of the tiers that say so, enforced when an admin approves one.

Most checks read what the sandbox recorded of the app (``partners.certification_models.SandboxTrace``,
kept 14 days: ``TRACE_RETENTION``) and consent's records; ``webhook_signature`` calls the app's
webhook endpoints live, through the same SSRF rules as every webhook delivery (``partners.net``).
Each check returns whether it passed, a one-line summary and the evidence it saw (counts, times, the
offending endpoint, scope or patient), and links to its section of ``docs/certification.md``.

The suite lives in the API layer because it reads the API's trace and consent's grants; partners
keeps the runs, so the tier checklist and the approval can see them without reaching upwards.
"""

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from consent.models import ConsentGrant
from partners import certification_services, events, webhooks
from partners.certification_models import TRACE_RETENTION, CertificationRun, SandboxTrace
from partners.event_models import new_webhook_secret
from partners.models import App, User
from partners.net import Unresolvable, UnsafeURL, resolve_outbound
from partners.oauth import PATIENT_CONTEXT_SCOPES
from partners.validators import is_loopback_host

logger = logging.getLogger(__name__)

DOCS_PATH = "/docs/certification/"
# A call that arrives this little before Retry-After ran out is not held against the app (the clocks of
# two web workers, and the time the 429 took to reach it).
RETRY_AFTER_TOLERANCE = timedelta(seconds=0.5)
MAX_RATE_LIMITS_CHECKED = 200
MAX_REVOCATIONS_CHECKED = 50
MAX_EVIDENCE_LINES = 10
# Sign-in scopes serve the id_token, which the platform cannot watch the app use: not judged.
IDENTITY_SCOPES = frozenset({"openid", "fhirUser", "profile"})
REFRESH_SCOPES = frozenset({"offline_access", "online_access"})
CALLS = (SandboxTrace.Kind.API_CALL, SandboxTrace.Kind.RATE_LIMITED)


@dataclass(frozen=True)
class Window:
    """What a run looks at: the trace from ``since`` to ``now``."""

    since: datetime
    now: datetime
    run_id: int | None = None

    @property
    def days(self) -> int:
        return max(1, round((self.now - self.since).total_seconds() / 86400))

    @property
    def phrase(self) -> str:
        return f"in the last {self.days} days"


@dataclass
class Outcome:
    passed: bool
    summary: str
    evidence: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Check:
    key: str
    title: str
    run: Callable[[App, Window], Outcome]

    @property
    def docs_url(self) -> str:
        return f"{DOCS_PATH}#{self.key}"


# --- helpers ------------------------------------------------------------------------------------------


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]  # str.capitalize would lower "URI"


def _each(count: int, noun: str) -> str:
    return f"the one {noun}" if count == 1 else f"each of the {count} {noun}s"


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():.2f} s"


def _trace(app: App, window: Window):
    return SandboxTrace.objects.filter(app=app, at__gte=window.since, at__lte=window.now)


def _call_line(row: SandboxTrace) -> str:
    outcome = " ".join(str(part) for part in (row.status, row.problem_code) if part)
    return f"{row.endpoint} at {_when(row.at)}" + (f" ({outcome})" if outcome else "")


def _capped(lines: list[str], total: int | None = None) -> list[str]:
    total = len(lines) if total is None else total
    shown = lines[:MAX_EVIDENCE_LINES]
    if total > len(shown):
        shown.append(f"… and {total - len(shown)} more.")
    return shown


# --- the checks ---------------------------------------------------------------------------------------


def check_pkce_authorization_code(app: App, window: Window) -> Outcome:
    issued = _trace(app, window).filter(kind=SandboxTrace.Kind.TOKEN_ISSUED, grant_type="authorization_code")
    with_pkce = issued.filter(pkce_method="S256").order_by("-at")
    count, total = with_pkce.count(), issued.count()
    if count:
        latest = with_pkce.first()
        return Outcome(
            True,
            f"{_n(count, 'token')} issued through authorization code with a PKCE S256 verifier {window.phrase}; "
            f"the latest at {_when(latest.at)}.",
            [f"{_when(row.at)}: scopes {' '.join(row.scopes) or '(none)'}" for row in with_pkce[:3]],
        )
    if total:
        return Outcome(
            False,
            f"{_n(total, 'token')} issued through authorization code {window.phrase}, none with a PKCE S256 "
            "code_verifier.",
        )
    return Outcome(
        False,
        f"No token was issued to this app through authorization code {window.phrase}: run the authorization "
        "code flow with PKCE (code_challenge_method=S256) against the sandbox, as a sandbox patient.",
    )


def check_token_refresh(app: App, window: Window) -> Outcome:
    refreshed = (
        _trace(app, window).filter(kind=SandboxTrace.Kind.TOKEN_ISSUED, grant_type="refresh_token").order_by("-at")
    )
    count = refreshed.count()
    if count:
        return Outcome(
            True,
            f"{_n(count, 'refresh_token grant')} succeeded {window.phrase}; "
            f"the latest at {_when(refreshed.first().at)}.",
        )
    return Outcome(
        False,
        f"No refresh_token grant succeeded {window.phrase}: ask for offline_access (or online_access) and "
        "refresh the access token before it expires, instead of sending the patient through sign-in again.",
    )


def check_least_privilege_scopes(app: App, window: Window) -> Outcome:
    trace = _trace(app, window)
    tokens = list(trace.filter(kind=SandboxTrace.Kind.TOKEN_ISSUED).values_list("scopes", "grant_type"))
    if not tokens:
        return Outcome(False, f"No token was issued to this app {window.phrase}, so there is nothing to judge.")
    granted: dict[str, int] = {}
    for scopes, _grant in tokens:
        for name in scopes:
            granted[name] = granted.get(name, 0) + 1
    refreshed = any(grant == "refresh_token" for _scopes, grant in tokens)
    calls = trace.filter(kind__in=CALLS)
    used: set[str] = set()
    for names in calls.values_list("scopes_used", flat=True).distinct():
        used.update(names or ())
    patient_context = any(
        set(names or ()) & PATIENT_CONTEXT_SCOPES
        for names in calls.exclude(patient_id="").values_list("scopes", flat=True).distinct()
    )
    unused, not_judged, in_use = [], [], []
    for name in sorted(granted):
        if name in IDENTITY_SCOPES:
            not_judged.append(name)
        elif name in REFRESH_SCOPES:
            (in_use if refreshed else unused).append(name)
        elif name in PATIENT_CONTEXT_SCOPES:
            (in_use if patient_context else unused).append(name)
        else:
            (in_use if name in used else unused).append(name)

    def why_unused(name: str) -> str:
        if name in REFRESH_SCOPES:
            return "the app never refreshed a token"
        if name in PATIENT_CONTEXT_SCOPES:
            return "no call was for the patient in context"
        return "no call needed it"

    evidence = [f"{name}: granted in {_n(granted[name], 'token')}; {why_unused(name)}" for name in unused]
    if in_use:
        evidence.append(f"Used: {' '.join(in_use)}")
    if not_judged:
        evidence.append(f"Not judged (sign-in identity, used through the id_token): {' '.join(not_judged)}")
    if unused:
        return Outcome(
            False,
            f"Of the {_n(len(granted), 'scope')} granted {window.phrase}, {len(unused)} "
            f"{'was' if len(unused) == 1 else 'were'} never used: "
            f"{' '.join(unused)}. Ask only for the scopes your app uses.",
            evidence,
        )
    return Outcome(True, f"Every scope granted {window.phrase} was used by the app ({len(in_use)} in all).", evidence)


def check_honours_retry_after(app: App, window: Window) -> Outcome:
    trace = _trace(app, window)
    refusals = list(trace.filter(kind=SandboxTrace.Kind.RATE_LIMITED).order_by("-at")[:MAX_RATE_LIMITS_CHECKED])
    if not refusals:
        return Outcome(
            False,
            f"No 429 was recorded for this app {window.phrase}, so there is no evidence it waits out Retry-After. "
            "Provoke one in the sandbox (call one endpoint quickly until a 429 comes back) and let your app wait.",
        )
    violations, honoured = [], []
    for refusal in reversed(refusals):
        answered = refusal.at + timedelta(milliseconds=refusal.duration_ms)
        wait = timedelta(seconds=refusal.retry_after or 0)
        early = trace.filter(
            kind__in=CALLS,
            endpoint_group=refusal.endpoint_group,
            at__gt=answered,
            at__lt=answered + wait - RETRY_AFTER_TOLERANCE,
        ).order_by("at")
        first = early.first()
        if first is not None:
            violations.append(
                f"429 on {refusal.endpoint} at {_when(answered)} said Retry-After {refusal.retry_after} s; "
                f"{_n(early.count(), 'call')} to the {refusal.endpoint_group} group came before it ran out, the first "
                f"{_seconds(first.at - answered)} later ({_call_line(first)})"
            )
        else:
            following = trace.filter(kind__in=CALLS, endpoint_group=refusal.endpoint_group, at__gt=answered)
            after = following.order_by("at").first()
            honoured.append(
                f"429 on {refusal.endpoint} at {_when(answered)}, Retry-After {refusal.retry_after} s: "
                + (f"next call {_seconds(after.at - answered)} later" if after else "no call to that group since")
            )
    if violations:
        return Outcome(
            False,
            f"After {len(violations)} of {_n(len(refusals), '429')} {window.phrase} the app called the same "
            "quota group again before Retry-After ran out.",
            _capped(violations),
        )
    return Outcome(
        True,
        f"After {_each(len(refusals), '429')} {window.phrase} the app waited out Retry-After before calling "
        "the same quota group again.",
        _capped(honoured),
    )


def _probe(subscription, *, signed: bool, window: Window) -> webhooks.Response:
    """POST a ``webhook.test`` message to the subscription, signed with its secret or with a wrong one,
    through the delivery path's SSRF rules: resolve once, check every address, connect to a checked one."""
    now = timezone.now()
    msg_id = f"evt_{uuid.uuid4().hex}"
    message = {
        "id": msg_id,
        "type": "webhook.test",
        "version": events.get("webhook.test").version,
        "occurred_at": now.isoformat().replace("+00:00", "Z"),
        "data": {
            "subscription_id": subscription.pk,
            # The same words for both messages: only the signature tells them apart.
            "message": f"Certification run #{window.run_id}: verify the signature, answer 2xx if it is valid "
            "and 4xx if it is not.",
        },
    }
    body = json.dumps(message, separators=(",", ":")).encode()
    timestamp = int(now.timestamp())
    if signed:
        signature = webhooks.signature_header(subscription, msg_id, timestamp, body, now=now)
    else:
        signature = webhooks.sign(new_webhook_secret(), msg_id, timestamp, body)
    try:
        target = resolve_outbound(subscription.url)
    except Unresolvable as exc:
        return webhooks.Response(error=f"dns: {exc}")
    except UnsafeURL:
        host = urlsplit(subscription.url).hostname or subscription.url
        return webhooks.Response(error=f"refused: {host} resolves to a non-public address")
    headers = {
        "Host": target.host_header,
        "content-type": "application/json",
        "user-agent": webhooks.USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
    return webhooks.post(
        target,
        body,
        headers,
        connect_timeout=settings.WEBHOOK_CONNECT_TIMEOUT,
        total_timeout=settings.WEBHOOK_TOTAL_TIMEOUT,
    )


def _answer(response: webhooks.Response) -> str:
    return str(response.status_code) if response.status_code is not None else (response.error or "no answer")


def check_webhook_signature(app: App, window: Window) -> Outcome:
    subscriptions = list(app.webhook_subscriptions.filter(is_enabled=True).order_by("created_at"))
    if not subscriptions:
        return Outcome(
            False,
            "The app has no enabled webhook subscription to test. Add one on its Webhooks page and run again.",
        )
    evidence, failures = [], []
    for subscription in subscriptions:
        good = _probe(subscription, signed=True, window=window)
        bad = _probe(subscription, signed=False, window=window)
        rejected = bad.status_code is not None and 400 <= bad.status_code < 500
        evidence.append(
            f"{subscription.url}: correctly signed test event → {_answer(good)}; bad signature → {_answer(bad)}"
        )
        if not good.succeeded:
            failures.append(f"{subscription.url} did not accept a correctly signed event ({_answer(good)})")
        if not rejected:
            failures.append(
                f"{subscription.url} accepted an event with a bad signature ({_answer(bad)}); it must answer 4xx"
                if bad.succeeded
                else f"{subscription.url} answered a bad signature with {_answer(bad)}, not 4xx"
            )
    if failures:
        return Outcome(False, "; ".join(failures) + ".", evidence)
    return Outcome(
        True,
        f"{_sentence(_each(len(subscriptions), 'enabled subscription'))} accepted a correctly signed test event and "
        "rejected one with a bad signature.",
        evidence,
    )


def check_stops_after_revocation(app: App, window: Window) -> Outcome:
    revoked = ConsentGrant.objects.filter(
        app=app, status=ConsentGrant.Status.REVOKED, ended_at__gte=window.since, ended_at__lte=window.now
    ).order_by("-ended_at")
    total = revoked.count()
    if not total:
        return Outcome(
            False,
            f"No consent for this app was revoked {window.phrase}, so there is no evidence it stops. Revoke a sandbox "
            "patient's consent (My connected apps, /me/apps/) after the app has used it, then let the app run on.",
        )
    trace = _trace(app, window).filter(kind__in=CALLS)
    violations, honoured = [], []
    for grant in list(revoked[:MAX_REVOCATIONS_CHECKED]):
        calls = trace.filter(patient_id=grant.patient_id, at__gt=grant.ended_at)
        regained = (
            ConsentGrant.objects.filter(app=app, patient_id=grant.patient_id, created_at__gt=grant.ended_at)
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        if regained is not None:  # the patient consented again: calls from then on are fine
            calls = calls.filter(at__lt=regained)
        count = calls.count()
        subject = f"Patient/{grant.patient_id} revoked at {_when(grant.ended_at)}"
        if count <= 1:
            first = calls.order_by("at").first()
            honoured.append(
                f"{subject}: "
                + (
                    f"one call since ({_call_line(first)}), which told the app; none after it"
                    if first
                    else "no call since"
                )
            )
            continue
        later = list(calls.order_by("at")[1 : MAX_EVIDENCE_LINES + 1])
        violations.append(
            f"{subject}: {_n(count - 1, 'call')} after the refusal that told the app: "
            + "; ".join(_call_line(row) for row in later[:3])
            + (" …" if count - 1 > 3 else "")
        )
    checked = min(total, MAX_REVOCATIONS_CHECKED)
    if violations:
        return Outcome(
            False,
            f"After {len(violations)} of {_n(checked, 'revocation')} {window.phrase} the app kept calling for "
            "the patient.",
            _capped(violations),
        )
    return Outcome(
        True,
        f"After {_each(checked, 'revocation')} {window.phrase} the app stopped calling for the patient.",
        _capped(honoured),
    )


def check_https_redirect_uris(app: App, window: Window) -> Outcome:
    uris = app.redirect_uri_list
    if not uris:
        return Outcome(True, "The app registers no redirect URI, so no authorization code can travel over http.")
    plain, loopback = [], []
    for uri in uris:
        parts = urlsplit(uri)
        if parts.scheme == "https":
            continue
        if parts.scheme == "http" and parts.hostname and is_loopback_host(parts.hostname):
            loopback.append(uri)  # RFC 8252 §7.3: native apps; the traffic never leaves the device
            continue
        plain.append(uri)
    if plain:
        return Outcome(
            False,
            f"Not https: {' '.join(plain)} ({len(plain)} of {_n(len(uris), 'redirect URI')}). An authorization code "
            "sent over http can be read on the way; register https URIs.",
            [f"Not https: {uri}" for uri in plain],
        )
    evidence = [f"Loopback (allowed for native apps, RFC 8252): {uri}" for uri in loopback]
    return Outcome(True, f"{_sentence(_each(len(uris), 'redirect URI'))} uses https.", evidence)


CHECKS = (
    Check("pkce_authorization_code", "Authorization code with PKCE", check_pkce_authorization_code),
    Check("token_refresh", "Refreshes its access token", check_token_refresh),
    Check("least_privilege_scopes", "Asks only for the scopes it uses", check_least_privilege_scopes),
    Check("honours_retry_after", "Waits out Retry-After after a 429", check_honours_retry_after),
    Check("webhook_signature", "Verifies webhook signatures", check_webhook_signature),
    Check("stops_after_revocation", "Stops calling for a patient who revoked consent", check_stops_after_revocation),
    Check("https_redirect_uris", "Redirect URIs use https", check_https_redirect_uris),
)
CHECK_KEYS = tuple(check.key for check in CHECKS)


# --- runs -----------------------------------------------------------------------------------------------


def certification_run_request(*, app: App, user: User) -> CertificationRun:
    """Queue a run (``partners.certification_services.certification_run_start``: sandbox apps, one
    at a time) and ask a worker to run it once that commits."""
    with transaction.atomic():
        run = certification_services.certification_run_start(app=app, user=user)
        transaction.on_commit(lambda: _queue(run.pk))
    return run


def _queue(run_id: int) -> None:
    from api.tasks import run_certification

    try:
        run_certification.delay(run_id)
    except Exception:  # the broker is down: the run stays queued until it counts as abandoned
        logger.warning("certification_run_not_queued", extra={"run_id": run_id}, exc_info=True)


def run_checks(app: App, window: Window) -> list[dict]:
    """Every check's result, in order, as ``certification_run_finish`` takes them."""
    results = []
    for check in CHECKS:
        outcome = check.run(app, window)
        results.append(
            {
                "key": check.key,
                "title": check.title,
                "passed": outcome.passed,
                "summary": outcome.summary,
                "evidence": outcome.evidence,
                "docs_url": check.docs_url,
            }
        )
    return results


def certification_run_execute(*, run_id: int) -> str:
    """Run every check of a queued run and record the outcome: ``passed``, ``failed``, ``error`` (a
    check crashed: nothing of the run is kept but the error) or ``skipped`` (not queued any more)."""
    run = certification_services.certification_run_begin(run_id=run_id)
    if run is None:
        return "skipped"
    now = timezone.now()
    window = Window(since=now - TRACE_RETENTION, now=now, run_id=run.pk)
    try:
        results = run_checks(run.app, window)
    except Exception as exc:
        logger.exception("certification_run_crashed", extra={"run_id": run.pk})
        certification_services.certification_run_error(run=run, message=f"{type(exc).__name__}: {exc}")
        return CertificationRun.Status.ERROR.value
    return certification_services.certification_run_finish(run=run, results=results).status
