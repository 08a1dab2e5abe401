"""Rate limits: every quota layer of a request admitted or refused at once, in one Redis round trip.

A request to an endpoint group (``partners.tiers.ENDPOINT_GROUPS``) is held to these policies, their
numbers from the organization's tier with its per-organization overrides on top
(``partners.tiers.effective_quotas``) and, for an adaptive group, tightened by ``api.adaptive``:

- the organization: a burst (1 s), a per-minute and a daily quota, shared by all its apps and tokens;
- the access token: its share of the organization's per-minute quota (``per_token_per_minute``);
- the patient the token speaks for: a share of it too (``per_patient_per_minute``), whichever app asks;
- for an adaptive group, an app far above its own usual rate: a cap of its own (``app-<group>-minute``).

The counting is ``marketplace.quota``'s: fixed clock-aligned windows, one Lua script that admits
all-or-none. From a token's second request in a process on, the token layer runs that script in the
same round trip that checks the token (``Plan``, ``api.authentication``); a request the permission
layers then refuse is given back. The verdict is announced on the response with ``RateLimit-Policy``
and ``RateLimit`` headers; a refusal is 429 ``quota_exceeded`` with ``Retry-After`` and the violated
policies.
"""

import time

from api import adaptive
from api.problems import Problem
from marketplace import quota
from marketplace.quota import Policy, Verdict
from partners.tiers import QUOTA_WINDOWS, effective_quotas

WINDOW_NAMES = {"burst": "second", "per_minute": "minute", "per_day": "day"}


_UNSET = object()


def policies_for(context, group: str, in_force=_UNSET) -> tuple[Policy, ...]:
    organization = context.organization
    quotas = effective_quotas(context.tier.rate_quotas, organization.rate_quota_overrides, group)
    if in_force is _UNSET:
        in_force = adaptive.in_force(group, context.app.pk)

    def tightened(count: int) -> int:
        return max(1, int(count * in_force.factor)) if in_force else count

    policies = [
        Policy(f"org-{group}-{WINDOW_NAMES[window]}", tightened(quotas[window]), seconds, f"org:{organization.pk}")
        for window, seconds in QUOTA_WINDOWS.items()
        if quotas.get(window)
    ]
    if quotas.get("per_token_per_minute"):
        policies.append(
            Policy(f"token-{group}-minute", tightened(quotas["per_token_per_minute"]), 60, f"token:{context.token_id}")
        )
    if context.patient_id and quotas.get("per_patient_per_minute"):
        policies.append(
            Policy(
                f"patient-{group}-minute",
                tightened(quotas["per_patient_per_minute"]),
                60,
                f"patient:{context.patient_id}",
            )
        )
    if in_force and in_force.app_cap:
        policies.append(Policy(f"app-{group}-minute", in_force.app_cap, 60, f"app:{context.app.pk}"))
    return tuple(policies)


def admit(context, group: str, *, now: float | None = None) -> Verdict:
    """Count this request against every policy of ``group``, or refuse it without counting it."""
    return quota.check(policies_for(context, group), group, now=now)


def peek(context, group: str) -> Verdict:
    """Where the request's policies stand, without counting it."""
    return quota.peek(policies_for(context, group), group)


class Plan:
    """The quota counters of a request worked out from the process's copy of its token, so that the
    token layer can admit them in the round trip that checks the copy is still current."""

    def __init__(self, group: str):
        self.group = group
        self.now = time.time()
        self.context = None
        self.policies: tuple[Policy, ...] = ()

    def counters_for(self, token, context) -> list[quota.Counter]:
        """The counters of ``context`` (built from ``token``, the process's copy). The copy never
        changes, so its policies are worked out once per group and adaptive limit in force, and
        kept on it."""
        self.context = context
        in_force = adaptive.in_force(self.group, context.app.pk)
        memo = token.__dict__.setdefault("_rate_policies", {})
        policies = memo.get((self.group, in_force))
        if policies is None:
            policies = memo[(self.group, in_force)] = policies_for(context, self.group, in_force)
        self.policies = policies
        return quota.counters(policies, self.group, self.now)

    def verdict(self, admission: quota.Admission) -> Verdict:
        return quota.verdict_of(self.group, self.policies, self.now, admission)


def refusal(verdict: Verdict, request) -> Problem:
    names = [policy.name for policy in verdict.violated]
    first = verdict.violated[0]
    detail = (
        f"The {first.name} quota ({first.quota} requests per {quota.window_name(first.window)}) is used up; "
        f"it resets in {verdict.retry_after()} s."
    )
    in_force = adaptive.in_force(verdict.group, getattr(request.auth_context.app, "pk", None))
    if in_force:
        detail += f" {in_force.explanation}"
    return Problem(
        "quota_exceeded",
        detail,
        headers=verdict.headers(),
        **{"violated-policies": names, "retry_after": verdict.retry_after()},
    )
