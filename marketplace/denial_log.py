"""The denial log: each refusal of an identified app, kept for a week under its correlation id.

The store under the portal's "Why was I denied?" (``api.denials`` records the API's refusals and looks
them up; ``partners.oauth_views`` records the token endpoint's). It knows denials, apps and
correlation ids, nothing of problems, OAuth or members, so every app may write to it.

Where it lives, and why not in the database: refusals come fastest exactly when something is wrong,
a client looping on a used-up quota can be refused thousands of times a second, and each refusal
would otherwise cost an INSERT on the request path and a table that grows with the loop. A denial is
a diagnostic aid, not a record anyone must keep (the access audit keeps what the law asks for), so
it goes to the shared cache (Redis) with a TTL: one round trip per refusal, nothing to clean up, and
losing it to a Redis flush is acceptable. Patient ids are never stored.

Memory is bounded twice:

- every denial expires ``DENIAL_LOG_DAYS`` after it happened;
- each app keeps at most ``DENIAL_LOG_PER_APP_PER_HOUR`` denials per clock hour: the first ones of
  the hour are kept, the rest are not (a runaway loop repeats the same refusal anyway). The count and
  the write are one Lua script, so the cap costs no extra round trip; once an app's hour is full, the
  process remembers it and stops asking until the next hour, so a flood costs nothing at all.

The worst case is then ``apps x per-hour cap x 24 x days`` denials of a few hundred bytes each, and
only for apps that are refused all the time.

Keys are per app, ``denial:<app id>:<correlation id>``: a caller may choose its own ``X-Request-ID``,
so one app reusing another's id never touches the other's denial, and a lookup reads only the keys
of the apps it may see (one ``MGET``). An app refused twice under one id keeps the later denial.

Nothing here may fail a response: ``store`` catches and logs every error of the cache.
"""

import json
import logging
import time
from dataclasses import asdict, dataclass, fields

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)

KEY_PREFIX = "denial:"
COUNT_PREFIX = "denial-count:"
HOUR = 3600

# KEYS[1]: the app's counter for this hour; KEYS[2]: the denial's key. ARGV: the encoded denial, the
# per-hour cap, the counter's lifetime and the denial's, in seconds. Returns 1 when stored, 0 when the
# app's hour is full (nothing stored).
STORE_SCRIPT = """
local used = redis.call('INCR', KEYS[1])
if used == 1 then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
end
if used > tonumber(ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', tonumber(ARGV[4]))
return 1
"""
_scripts: dict = {}  # redis client id -> registered script (EVALSHA, loaded once)

# app id -> the hour (index) this process saw its cap reached in: no round trip until the next hour.
_full: dict[int, int] = {}
_FULL_MAX = 10_000


@dataclass(frozen=True)
class Denial:
    """One refusal, as the portal explains it.

    ``layer`` is the plain-language layer (``token``, ``scope``, ``tier``, ``environment``,
    ``consent``, ``organization_authorization``, ``quota``...; ``api.denials.LAYERS`` names and
    explains each), ``rule`` what was broken this time ("the token lacks the scope ..."), ``docs``
    the path of the page about the code (``/docs/errors/<code>/``).
    """

    correlation_id: str
    at: float  # Unix time
    organization_id: int
    app_id: int
    method: str
    path: str  # the route template, ``/fhir/r4/Observation/{resource_id}``: never raw ids
    status: int
    code: str
    layer: str
    rule: str
    detail: str
    fix: str
    docs: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Denial | None":
        try:
            data = json.loads(text)
            return cls(**{f.name: data[f.name] for f in fields(cls)})
        except (TypeError, ValueError, KeyError):
            return None  # written by another version of this class: as good as expired


def key(app_id: int, correlation_id: str) -> str:
    return f"{KEY_PREFIX}{app_id}:{correlation_id}"


def _count_key(app_id: int, hour: int) -> str:
    return f"{COUNT_PREFIX}{app_id}:{hour}"


def ttl() -> int:
    return int(settings.DENIAL_LOG_DAYS * 86_400)


def per_app_per_hour() -> int:
    return settings.DENIAL_LOG_PER_APP_PER_HOUR


def _store_in_redis(denial: Denial, count_key: str, cap: int) -> bool:
    from django_redis import get_redis_connection

    client = get_redis_connection("default")
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(STORE_SCRIPT)
    codec = cache.client  # django-redis: makes keys and encodes values as the cache does, so get_many reads them
    stored = script(
        keys=[codec.make_key(count_key), codec.make_key(key(denial.app_id, denial.correlation_id))],
        args=[codec.encode(denial.to_json()), cap, HOUR + 60, ttl()],
    )
    return bool(int(stored))


def _store_in_cache(denial: Denial, count_key: str, cap: int) -> bool:
    cache.add(count_key, 0, HOUR + 60)
    if cache.incr(count_key) > cap:
        return False
    cache.set(key(denial.app_id, denial.correlation_id), denial.to_json(), ttl())
    return True


def store(denial: Denial) -> bool:
    """Keep ``denial`` for ``DENIAL_LOG_DAYS``, unless its app's hour is full. True when kept. Never
    raises: a cache that is down costs the denial, never the response it explains."""
    cap = per_app_per_hour()
    if cap <= 0 or not denial.correlation_id:
        return False
    hour = int(time.time() // HOUR)
    if _full.get(denial.app_id) == hour:
        return False
    count_key = _count_key(denial.app_id, hour)
    try:
        if settings.REDIS_URL:
            stored = _store_in_redis(denial, count_key, cap)
        else:
            stored = _store_in_cache(denial, count_key, cap)
    except Exception:  # a diagnostic aid: whatever the cache does, the response goes out as it is
        log.warning("denial log: could not store a denial", exc_info=True)
        return False
    if not stored:
        if len(_full) >= _FULL_MAX:
            _full.clear()
        _full[denial.app_id] = hour
    return stored


def fetch(app_ids, correlation_id: str) -> list[Denial]:
    """The denials kept under ``correlation_id`` for any of ``app_ids`` (one round trip), newest first."""
    app_ids = list(app_ids)
    if not app_ids or not correlation_id:
        return []
    found = cache.get_many([key(app_id, correlation_id) for app_id in app_ids])
    denials = [Denial.from_json(text) for text in found.values() if isinstance(text, str)]
    wanted = set(app_ids)
    kept = [d for d in denials if d is not None and d.app_id in wanted and d.correlation_id == correlation_id]
    return sorted(kept, key=lambda d: d.at, reverse=True)


def forget_full() -> None:
    """Forget which apps' hours this process saw full (tests; a cap raised at run time)."""
    _full.clear()
