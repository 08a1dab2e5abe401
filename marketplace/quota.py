"""Quota counters: several fixed windows admitted or refused together, in one Redis round trip.

The engine under the API's rate limits (``api.ratelimit``) and the token endpoint's
(``partners.token_limits``); it knows policies, counters, quotas and windows, and the IETF
RateLimit headers that announce them, nothing of tiers or requests.

A ``Policy`` is one quota over one window for one scope ("org:12", "token:ab12", "ip:10.0.0.1");
its counter's key carries the window's index, so windows are fixed and aligned to the clock (a
minute window resets on the minute) and a counter expires with its window.

One Lua script checks every counter and, only if all have room, increments them all: admission is
exact under any concurrency, and a refused request consumes nothing. The same script can first read
other keys of the shared cache (a token's stamp, the consent facts) and admit only if one of them
still holds an expected value, so a request that needs both costs a single round trip
(``admit_with_reads``). Without Redis (``REDIS_URL`` unset: development) admission runs on the
local-memory cache, exact within one process.
"""

import contextlib
import math
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache

# KEYS: ARGV[1] keys to read first, then the counters. ARGV[2]: the value the first read key must
# hold for the counters to be touched ('' for no such condition); then, per counter, its quota and
# its window in seconds. Returns {verdict, counts..., reads...}: verdict -1 when the condition failed
# (counts are then zeros), 0 when a counter is full (nothing incremented; counts are the uses before
# this request), 1 when admitted (counts are the new uses).
ADMIT_SCRIPT = """
local n_read = tonumber(ARGV[1])
local reads = {}
if n_read > 0 then
  reads = redis.call('MGET', unpack(KEYS, 1, n_read))
end
local n_counters = #KEYS - n_read
local result = {}
if ARGV[2] ~= '' and reads[1] ~= ARGV[2] then
  result[1] = -1
  for i = 1, n_counters do
    result[#result + 1] = 0
  end
else
  -- Count first, then give back if any counter went over: a script runs alone, so no other request
  -- ever sees the counts in between, and the common case (admitted) costs one call per counter.
  local counts = {}
  local full = false
  for i = 1, n_counters do
    local key = KEYS[n_read + i]
    counts[i] = redis.call('INCR', key)
    if counts[i] == 1 then
      redis.call('EXPIRE', key, tonumber(ARGV[2 + 2 * i]))
    end
    if counts[i] > tonumber(ARGV[1 + 2 * i]) then
      full = true
    end
  end
  if full then
    result[1] = 0
    for i = 1, n_counters do
      redis.call('DECR', KEYS[n_read + i])
      result[#result + 1] = counts[i] - 1
    end
  else
    result[1] = 1
    for i = 1, n_counters do
      result[#result + 1] = counts[i]
    end
  end
end
for i = 1, n_read do
  result[#result + 1] = reads[i] or false
end
return result
"""
# Gives one request back to each counter that still exists (a DECR of an expired key would make a
# -1 that never expires).
REFUND_SCRIPT = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('DECR', key)
  end
end
return 0
"""
KEY_PREFIX = "rl:"
_scripts: dict = {}  # (redis client id, script) -> registered Script (EVALSHA, loaded once)


@dataclass(frozen=True)
class Counter:
    key: str  # the Redis key, window included: the counter starts over in each window
    quota: int
    window: int  # seconds; the key expires with its window


@dataclass(frozen=True)
class Admission:
    """What the script did: ``evaluated`` False when its condition failed (nothing was counted),
    ``admitted``, and each counter's use (after this request if admitted, before it if not)."""

    evaluated: bool
    admitted: bool
    counts: tuple[int, ...]


def _client():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def _script(client, text: str = ADMIT_SCRIPT):
    script = _scripts.get((id(client), text))
    if script is None:
        script = _scripts[(id(client), text)] = client.register_script(text)
    return script


def _run(read_keys: list[str], condition: str, counters: list[Counter]) -> tuple[Admission, list]:
    client = _client()
    arguments = [len(read_keys), condition]
    for counter in counters:
        arguments += [counter.quota, counter.window]
    result = _script(client)(keys=[*read_keys, *(c.key for c in counters)], args=arguments)
    verdict, counts, reads = int(result[0]), result[1 : 1 + len(counters)], result[1 + len(counters) :]
    admission = Admission(verdict >= 0, verdict == 1, tuple(int(count) for count in counts))
    return admission, reads


def _admit_in_cache(counters: list[Counter], guards: list[Counter] = ()) -> Admission:
    """The scripts' rule on the local-memory cache (exact within one process): ``counts`` are the
    counters' then the guards'."""
    everything = [*counters, *guards]
    found = cache.get_many([counter.key for counter in everything])
    used = [int(found.get(counter.key, 0)) for counter in everything]
    if any(count >= counter.quota for count, counter in zip(used, everything, strict=True)):
        return Admission(True, False, tuple(used))
    counts = []
    for counter in counters:
        cache.add(counter.key, 0, counter.window)
        counts.append(cache.incr(counter.key))
    return Admission(True, True, (*counts, *used[len(counters) :]))


def admit(counters: list[Counter]) -> Admission:
    """Count one request against every counter, or refuse it without counting it."""
    if not counters:
        return Admission(True, True, ())
    if settings.REDIS_URL:
        return _run([], "", counters)[0]
    return _admit_in_cache(counters)


def admit_with_reads(cache_keys: list[str], condition, counters: list[Counter]) -> tuple[Admission, dict]:
    """``admit``, in the round trip that also reads ``cache_keys`` from the shared cache (Redis only).

    The counters are touched only if the first of ``cache_keys`` holds ``condition`` (an integer the
    cache stored; ``None``: no condition). Returns the admission and ``{key: value}`` of the keys
    found, values decoded as ``cache.get_many`` would.
    """
    client = cache.client  # django-redis: makes keys and decodes values as the cache does
    raw_keys = [client.make_key(key) for key in cache_keys]
    admission, reads = _run(raw_keys, "" if condition is None else str(condition), counters)
    found = {key: client.decode(value) for key, value in zip(cache_keys, reads, strict=True) if value is not None}
    return admission, found


def refund(counters: list[Counter]) -> None:
    """Give back one request to each counter (it was counted, then refused by a later layer)."""
    if not counters:
        return
    if settings.REDIS_URL:
        client = _client()
        _script(client, REFUND_SCRIPT)(keys=[counter.key for counter in counters])
        return
    for counter in counters:
        with contextlib.suppress(ValueError):  # the window ended and the counter with it
            cache.decr(counter.key)


# --- Policies and verdicts -----------------------------------------------------------------------

WINDOW_NAMES = {1: "second", 60: "minute", 3600: "hour", 86_400: "day"}  # seconds -> name in prose


def window_name(seconds: int) -> str:
    return WINDOW_NAMES.get(seconds, f"{seconds} seconds")


@dataclass(frozen=True)
class Policy:
    name: str  # what the headers and the refusal call it: "org-fhir_read-minute"
    quota: int
    window: int  # seconds
    scope: str  # whose counter: "org:12", "token:ab12", "patient:123", "ip:10.0.0.1"

    def key(self, group: str, now: float) -> str:
        return f"{KEY_PREFIX}{self.scope}:{group}:{self.window}:{int(now // self.window)}"

    def reset_in(self, now: float) -> int:
        return max(1, math.ceil(self.window - (now % self.window)))


@dataclass
class Verdict:
    """The policies that held one request and what they said. ``counts``: each policy's use after
    this request (refused: before it, as nothing was counted)."""

    group: str
    policies: tuple[Policy, ...] | list[Policy]
    counts: list[int]
    now: float
    violated: list[Policy]
    counted: bool = True  # False once refunded, or when only peeked at

    @property
    def admitted(self) -> bool:
        return not self.violated

    def counters(self) -> list[Counter]:
        return counters(self.policies, self.group, self.now)

    def remaining(self, index: int) -> int:
        return max(0, self.policies[index].quota - self.counts[index])

    def nearest(self) -> int:
        """The policy closest to refusing: the fewest requests left, then the soonest reset."""
        return min(range(len(self.policies)), key=lambda i: (self.remaining(i), self.policies[i].reset_in(self.now)))

    def retry_after(self) -> int:
        return max(policy.reset_in(self.now) for policy in self.violated)

    def headers(self) -> dict:
        """``RateLimit-Policy`` (every policy: name, ``q`` quota, ``w`` window) and ``RateLimit``
        (the policy nearest to refusing: ``r`` remaining, ``t`` seconds to its reset), as in the IETF
        draft "RateLimit header fields for HTTP"; ``Retry-After`` too when refused."""
        if not self.policies:
            return {}
        policy_header = _policy_header(tuple(self.policies))
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

    def refunded(self) -> "Verdict":
        """This verdict once its request is given back (``refund``)."""
        counts = [max(0, count - 1) for count in self.counts] if self.counted and self.admitted else self.counts
        return Verdict(self.group, self.policies, counts, self.now, self.violated, counted=False)


@lru_cache(maxsize=4096)
def _policy_header(policies: tuple[Policy, ...]) -> str:
    return ", ".join(f'"{p.name}";q={p.quota};w={p.window}' for p in policies)


def counters(policies, group: str, now: float) -> list[Counter]:
    return [Counter(policy.key(group, now), policy.quota, policy.window) for policy in policies]


def verdict_of(group: str, policies, now: float, admission: Admission) -> Verdict:
    if admission.admitted:
        violated = []
    else:
        violated = [p for p, count in zip(policies, admission.counts, strict=True) if count >= p.quota]
    return Verdict(group, policies, list(admission.counts), now, violated)


def check(policies, group: str, *, now: float | None = None) -> Verdict:
    """Count one request of ``group`` against every policy, or refuse it without counting it."""
    now = time.time() if now is None else now
    if not policies:
        return Verdict(group, [], [], now, [])
    return verdict_of(group, policies, now, admit(counters(policies, group, now)))


def peek(policies, group: str, *, now: float | None = None) -> Verdict:
    """Where each policy stands, counting nothing (for a response refused before it was counted)."""
    now = time.time() if now is None else now
    if not policies:
        return Verdict(group, [], [], now, [], counted=False)
    keys = [counter.key for counter in counters(policies, group, now)]
    if settings.REDIS_URL:
        values = _client().mget(keys)
    else:
        found = cache.get_many(keys)
        values = [found.get(key) for key in keys]
    counts = [int(value or 0) for value in values]
    return Verdict(group, policies, counts, now, [], counted=False)


def give_back(verdict: Verdict) -> Verdict:
    """Refund an admitted verdict's request (a later layer refused it); the verdict as it now stands."""
    if verdict.counted and verdict.admitted and verdict.policies:
        refund(verdict.counters())
    return verdict.refunded()


# --- Guards: counters a request must find room in, but that something else counts ------------------
#
# A guard is a policy whose counter counts other events than the requests it holds (failed attempts,
# say): a request is refused while the guard is full, yet admitting it adds nothing to it. The guards
# are checked in the same script run as the counted policies, so they cost no extra round trip; the
# events themselves are counted with ``add`` once they have happened.

# KEYS: the counters to increment, then the guards. ARGV[1]: how many keys are counters; then, per
# key, its quota and its window in seconds. Returns {verdict, counts...}: verdict 0 when a key is full
# (nothing incremented; counts are the uses before this request), 1 when admitted (counters: their new
# uses; guards: their uses, untouched).
GUARDED_ADMIT_SCRIPT = """
local n_counted = tonumber(ARGV[1])
local used = {}
local full = false
for i = 1, #KEYS do
  used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used[i] >= tonumber(ARGV[2 * i]) then
    full = true
  end
end
if not full then
  for i = 1, n_counted do
    local count = redis.call('INCR', KEYS[i])
    if count == 1 then
      redis.call('EXPIRE', KEYS[i], tonumber(ARGV[1 + 2 * i]))
    end
    used[i] = count
  end
end
local result = {full and 0 or 1}
for i = 1, #KEYS do
  result[#result + 1] = used[i]
end
return result
"""
# Counts one event into each key, quota or not (ARGV: each key's window in seconds); returns the counts.
ADD_SCRIPT = """
local result = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then
    redis.call('EXPIRE', key, tonumber(ARGV[i]))
  end
  result[i] = count
end
return result
"""


def admit_guarded(counted: list[Counter], guards: list[Counter]) -> Admission:
    """``admit`` for ``counted``, refused too while any of ``guards`` is full; guards are never
    incremented. ``counts``: the counters' then the guards'."""
    everything = [*counted, *guards]
    if not everything:
        return Admission(True, True, ())
    if settings.REDIS_URL:
        client = _client()
        arguments = [len(counted)]
        for counter in everything:
            arguments += [counter.quota, counter.window]
        result = _script(client, GUARDED_ADMIT_SCRIPT)(keys=[c.key for c in everything], args=arguments)
        return Admission(True, int(result[0]) == 1, tuple(int(count) for count in result[1:]))
    return _admit_in_cache(counted, guards)


@dataclass
class GuardedVerdict(Verdict):
    """A verdict whose last policies, ``guards``, were checked but not counted: their ``counts`` are
    their uses as found, and giving the request back leaves them alone."""

    guards: tuple[Policy, ...] = ()

    def _n_counted(self) -> int:
        return len(self.policies) - len(self.guards)

    def counters(self) -> list[Counter]:
        return counters(self.policies[: self._n_counted()], self.group, self.now)

    def refunded(self) -> "GuardedVerdict":
        counts = list(self.counts)
        if self.counted and self.admitted:
            n = self._n_counted()
            counts[:n] = [max(0, count - 1) for count in counts[:n]]
        return GuardedVerdict(
            self.group, self.policies, counts, self.now, self.violated, counted=False, guards=self.guards
        )


def check_guarded(
    policies: list[Policy], guards: list[Policy], group: str, *, now: float | None = None
) -> GuardedVerdict:
    """``check`` of ``policies``, refused too while a guard is full; the guards are announced and
    checked in the same round trip but not counted (see ``add``)."""
    now = time.time() if now is None else now
    everything = [*policies, *guards]
    if not everything:
        return GuardedVerdict(group, [], [], now, [])
    admission = admit_guarded(counters(policies, group, now), counters(guards, group, now))
    plain = verdict_of(group, everything, now, admission)
    return GuardedVerdict(group, everything, plain.counts, now, plain.violated, guards=tuple(guards))


def add(policies: list[Policy], group: str, *, now: float | None = None) -> list[int]:
    """Count one event into each policy's counter whatever its quota (a failed attempt a guard
    watches, once it has happened); returns the new counts. One round trip."""
    now = time.time() if now is None else now
    found = counters(policies, group, now)
    if not found:
        return []
    if settings.REDIS_URL:
        client = _client()
        result = _script(client, ADD_SCRIPT)(keys=[c.key for c in found], args=[c.window for c in found])
        return [int(count) for count in result]
    counts = []
    for counter in found:
        cache.add(counter.key, 0, counter.window)
        counts.append(cache.incr(counter.key))
    return counts
