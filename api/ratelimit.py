"""Rate limits: every quota layer of a request admitted or refused at once, in one Redis round trip.

A request to an endpoint group (``partners.tiers.ENDPOINT_GROUPS``) is held to these policies, their
numbers from the organization's tier with its per-organization overrides on top
(``partners.tiers.effective_quotas``):

- the organization: a burst (1 s), a per-minute and a daily quota, shared by all its apps and tokens;
- the access token: its share of the organization's per-minute quota (``per_token_per_minute``);
- the patient the token speaks for: a share of it too (``per_patient_per_minute``), whichever app asks.

Windows are fixed and aligned to the clock (a minute window resets on the minute). One Lua script
checks every counter and, only if all have room, increments them all: admission is exact under any
concurrency, and a refused request consumes nothing. Without Redis (``REDIS_URL`` unset: development)
the same rule runs on the local-memory cache, exact within one process.

Every response of a limited endpoint carries ``RateLimit-Policy`` (every policy: name, ``q`` quota,
``w`` window) and ``RateLimit`` (the policy nearest to exhaustion: ``r`` remaining, ``t`` seconds to
its reset), as in the IETF draft "RateLimit header fields for HTTP"; a refusal is 429 ``rate_limited``
with ``Retry-After`` and the violated policies.
"""

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from api.problems import Problem
from partners.tiers import QUOTA_WINDOWS, effective_quotas

KEY_PREFIX = "rl:"
WINDOW_NAMES = {"burst": "second", "per_minute": "minute", "per_day": "day"}
WINDOW_LABELS = {QUOTA_WINDOWS[window]: name for window, name in WINDOW_NAMES.items()}  # seconds -> name

# KEYS: the counters; ARGV: for each counter, its quota then its window in seconds. Refuses without
# touching anything when any counter is full, returning {0, every counter's use}; otherwise increments
# them all and returns {1, every counter's new use}.
ADMIT_SCRIPT = """
local used = {}
local full = false
for i, key in ipairs(KEYS) do
  used[i] = tonumber(redis.call('GET', key) or '0')
  if used[i] >= tonumber(ARGV[2 * i - 1]) then
    full = true
  end
end
if full then
  local refused = {0}
  for i = 1, #KEYS do
    refused[#refused + 1] = used[i]
  end
  return refused
end
local counts = {1}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then
    redis.call('EXPIRE', key, tonumber(ARGV[2 * i]))
  end
  counts[#counts + 1] = count
end
return counts
"""
_scripts: dict = {}  # redis client id -> registered Script (EVALSHA, loaded once)


@dataclass(frozen=True)
class Policy:
    name: str  # what the headers and the problem call it: "org-fhir_read-minute"
    quota: int
    window: int  # seconds
    counter: str  # the scope the counter is kept for: "org:12", "token:ab12", "patient:123"

    def key(self, group: str, now: float) -> str:
        return f"{KEY_PREFIX}{self.counter}:{group}:{self.window}:{int(now // self.window)}"

    def reset_in(self, now: float) -> int:
        return max(1, math.ceil(self.window - (now % self.window)))


@dataclass
class Verdict:
    group: str
    policies: list[Policy]
    counts: list[int]  # each policy's use after this request (refused: before it)
    now: float
    violated: list[Policy]

    @property
    def admitted(self) -> bool:
        return not self.violated

    def remaining(self, index: int) -> int:
        return max(0, self.policies[index].quota - self.counts[index])

    def nearest(self) -> int:
        """The policy closest to refusing: the fewest requests left, then the soonest reset."""
        return min(range(len(self.policies)), key=lambda i: (self.remaining(i), self.policies[i].reset_in(self.now)))

    def headers(self) -> dict:
        if not self.policies:
            return {}
        policy_header = ", ".join(f'"{p.name}";q={p.quota};w={p.window}' for p in self.policies)
        if self.violated:
            shown = self.policies.index(self.violated[0])
            remaining, reset = 0, self.retry_after()
        else:
            shown = self.nearest()
            remaining, reset = self.remaining(shown), self.policies[shown].reset_in(self.now)
        headers = {
            "RateLimit-Policy": policy_header,
            "RateLimit": f'"{self.policies[shown].name}";r={remaining};t={reset}',
        }
        if self.violated:
            headers["Retry-After"] = str(reset)
        return headers

    def retry_after(self) -> int:
        return max(policy.reset_in(self.now) for policy in self.violated)


def policies_for(context, group: str) -> list[Policy]:
    organization = context.organization
    quotas = effective_quotas(context.tier.rate_quotas, organization.rate_quota_overrides, group)
    policies = [
        Policy(f"org-{group}-{WINDOW_NAMES[window]}", quotas[window], seconds, f"org:{organization.pk}")
        for window, seconds in QUOTA_WINDOWS.items()
        if quotas.get(window)
    ]
    if quotas.get("per_token_per_minute"):
        policies.append(
            Policy(f"token-{group}-minute", quotas["per_token_per_minute"], 60, f"token:{context.token_id}")
        )
    if context.patient_id and quotas.get("per_patient_per_minute"):
        policies.append(
            Policy(f"patient-{group}-minute", quotas["per_patient_per_minute"], 60, f"patient:{context.patient_id}")
        )
    return policies


def _admit_in_redis(keys: list[str], policies: list[Policy]) -> tuple[bool, list[int]]:
    from django_redis import get_redis_connection

    client = get_redis_connection("default")
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(ADMIT_SCRIPT)
    arguments = [value for policy in policies for value in (policy.quota, policy.window)]
    result = script(keys=keys, args=arguments)
    return bool(result[0]), [int(count) for count in result[1:]]


def _admit_in_cache(keys: list[str], policies: list[Policy]) -> tuple[bool, list[int]]:
    found = cache.get_many(keys)
    used = [int(found.get(key, 0)) for key in keys]
    if any(count >= policy.quota for count, policy in zip(used, policies, strict=True)):
        return False, used
    counts = []
    for key, policy in zip(keys, policies, strict=True):
        cache.add(key, 0, policy.window)
        counts.append(cache.incr(key))
    return True, counts


def admit(context, group: str, *, now: float | None = None) -> Verdict:
    """Count this request against every policy of ``group``, or refuse it without counting it."""
    now = time.time() if now is None else now
    policies = policies_for(context, group)
    if not policies:
        return Verdict(group, [], [], now, [])
    keys = [policy.key(group, now) for policy in policies]
    admitted, counts = (_admit_in_redis if settings.REDIS_URL else _admit_in_cache)(keys, policies)
    violated = [] if admitted else [p for p, count in zip(policies, counts, strict=True) if count >= p.quota]
    return Verdict(group, policies, counts, now, violated)


def refusal(verdict: Verdict, request) -> Problem:
    names = [policy.name for policy in verdict.violated]
    first = verdict.violated[0]
    return Problem(
        "rate_limited",
        f"The {first.name} quota ({first.quota} requests per {WINDOW_LABELS[first.window]}) is used up; "
        f"it resets in {verdict.retry_after()} s.",
        headers=verdict.headers(),
        **{"violated-policies": names, "retry_after": verdict.retry_after()},
    )
