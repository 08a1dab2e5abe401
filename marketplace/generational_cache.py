"""Values kept in the shared cache under generation stamps, so a change makes them stale at once.

A cached value depends on a few things (an app, a patient, the pair of both). Each thing has a
generation key holding a random stamp; the value is stored with the stamps read when it was looked
up. A reader fetches the value and the current stamps in one round trip (``get_many``, one MGET on
Redis) and uses the value only if the stamps still match. A writer that changes a thing calls
``bump``, which gives it a new stamp, so every value resting on it is stale, whoever cached it.

Why stamps rather than deleting keys:

- a change of one thing (a provider's decision about an app) reaches values whose keys nobody can
  list (every patient's decision for that app);
- a reader that looked a value up before a writer committed stores what it read under the stamps
  it saw *before* the bump, so its stale value is never used (deleting instead leaves that race
  open for the whole timeout). ``bump`` runs at once, for reads in the writer's own transaction,
  and again when the transaction commits, which closes the race.

Stamps are random, not counters: a stamp evicted from the cache and made again must never equal one
an older value was stored under. Nothing here is used unless the cache is shared by every process
(the caller passes ``seconds`` > 0 only then); a per-process cache could not hear another
process's bump.
"""

import secrets

from django.core.cache import cache
from django.db import transaction

GENERATION_PREFIX = "gen:"


class Lookup:
    """What ``lookup`` found: ``hit`` and ``value``, and the stamps to store a fresh value under."""

    __slots__ = ("hit", "stamps", "value")

    def __init__(self, hit: bool, value, stamps: tuple):
        self.hit = hit
        self.value = value
        self.stamps = stamps


def _generation_keys(dependencies) -> list[str]:
    return [GENERATION_PREFIX + name for name in dependencies]


def keys(key: str, dependencies) -> list[str]:
    """Every cache key ``lookup`` reads, for a caller that fetches them together with its own."""
    return [key, *_generation_keys(dependencies)]


def lookup(key: str, dependencies, found: dict | None = None) -> Lookup:
    """The value at ``key`` if every dependency's stamp is still the one it was stored under.
    ``found``: what a ``get_many`` of ``keys(key, dependencies)`` already returned, if one did."""
    generation_keys = _generation_keys(dependencies)
    if found is None:
        found = cache.get_many([key, *generation_keys])
    stamps = tuple(found.get(name) for name in generation_keys)
    stored = found.get(key)
    if stored is not None and stored[0] == stamps:
        return Lookup(True, stored[1], stamps)
    return Lookup(False, None, stamps)


def store(key: str, value, stamps: tuple, seconds: int) -> None:
    if seconds > 0:
        cache.set(key, (stamps, value), seconds)


def bump(*dependencies) -> None:
    """Make every value resting on ``dependencies`` stale, now and again when the transaction commits."""
    generation_keys = _generation_keys(dependencies)
    if not generation_keys:
        return

    def renew():
        # Integers: the Redis cache stores them as they are, so reading a stamp unpickles nothing.
        cache.set_many({name: secrets.randbits(62) for name in generation_keys}, None)

    renew()
    transaction.on_commit(renew)
