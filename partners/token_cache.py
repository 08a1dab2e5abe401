"""Bearer-token lookups from the shared cache: at most one cache hit, or one indexed query.

An access token is resolved to the row with its app, organization, tier and user. That join is
the API's most frequent query, so the result is kept in the shared cache (Redis) for a short time
and forgotten the moment anything it depends on changes:

- the token is deleted (revocation, refresh rotation, suspension, consent revocation) or saved;
- its app, organization, tier or user is saved.

The cache is used only when it is shared by every process (``TOKEN_CACHE_SECONDS`` > 0, set when
``REDIS_URL`` is): a per-process cache could not be told that another process revoked a token.

Unpickling the token's five model instances costs more CPU than the round trip, so the shared cache
holds the graph *and* a small random stamp made when the graph was stored; each process keeps the
graph it last unpickled with its stamp, and a request reads only the stamp. The same stamp means the
same graph; forgetting a token deletes both keys, so no process can use its copy after that. The
copies are read, never changed (nothing in a request writes to its token, app, organization, tier
or user).
"""

import secrets

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from oauth2_provider.models import AccessToken

from marketplace import quota
from partners.models import App, Organization, Tier, User

PREFIX = "tok:"
STAMP_PREFIX = "tokstamp:"
_LOCAL_MAX = 20_000
# checksum -> (stamp, token): this process's unpickled copies.
_local: dict[str, tuple[int, AccessToken]] = {}


def _key(checksum: str) -> str:
    return PREFIX + checksum


def _stamp_key(checksum: str) -> str:
    return STAMP_PREFIX + checksum


def _load(checksum: str):
    return (
        AccessToken.objects.select_related("application__organization__tier", "user")
        .filter(token_checksum=checksum)
        .first()
    )


def access_token_by_checksum(checksum: str):
    """The AccessToken (with app, organization, tier and user loaded), or ``None``."""
    return access_token_with(checksum)[0]


def access_token_with(checksum: str, also: list[str] | tuple = (), counters_for=None):
    """``(token, found, admission)``: the token as ``access_token_by_checksum`` gives it; whichever of
    the cache keys ``also`` are present, fetched in the same round trip (None when nothing was fetched:
    no shared cache, or no ``also``); and, when ``counters_for`` is given, the quota admission of the
    counters it returns for the token (``marketplace.quota``), also in that round trip.

    The counters are worked out from this process's copy of the token and counted only if the copy is
    still current; ``admission`` is None when they were not counted (no current copy: the caller
    counts the request itself, against the token it got).
    """
    seconds = settings.TOKEN_CACHE_SECONDS
    if seconds <= 0:
        return _load(checksum), None, None
    stamp_key = _stamp_key(checksum)
    local = _local.get(checksum)
    counters = counters_for(local[1]) if (local is not None and counters_for is not None) else None
    if counters and settings.REDIS_URL:
        admission, found = quota.admit_with_reads([stamp_key, *also], local[0], counters)
        stamp = found.pop(stamp_key, None)
        if admission.evaluated:
            return local[1], (found if also else None), admission
    else:
        found = cache.get_many([stamp_key, *also])
        stamp = found.pop(stamp_key, None)
    found = found if also else None
    if stamp is not None:
        if local is not None and local[0] == stamp:
            return local[1], found, None
        token = cache.get(_key(checksum))  # a second round trip, once per process and stamp
        if token is not None:
            _remember(checksum, stamp, token)
            return token, found, None
    token = _load(checksum)
    if token is not None:
        remaining = int((token.expires - timezone.now()).total_seconds())
        if remaining > 0:
            stamp = secrets.randbits(62)
            cache.set_many({_key(checksum): token, stamp_key: stamp}, min(seconds, remaining))
            _remember(checksum, stamp, token)
    return token, found, None


def _remember(checksum: str, stamp: int, token) -> None:
    if len(_local) >= _LOCAL_MAX:
        _local.clear()
    _local[checksum] = (stamp, token)


def forget(checksums) -> None:
    keys = [key for c in checksums if c for key in (_stamp_key(c), _key(c))]
    if keys and settings.TOKEN_CACHE_SECONDS > 0:
        cache.delete_many(keys)
        # Again at commit: a request that read the row before the change committed may have put it
        # back in between.
        transaction.on_commit(lambda: cache.delete_many(keys))


def forget_tokens_of(**filters) -> None:
    if settings.TOKEN_CACHE_SECONDS > 0:
        forget(AccessToken.objects.filter(**filters).values_list("token_checksum", flat=True))


@receiver(post_delete, sender=AccessToken, dispatch_uid="token_cache_token_deleted")
@receiver(post_save, sender=AccessToken, dispatch_uid="token_cache_token_saved")
def _token_changed(sender, instance, **kwargs):
    forget([instance.token_checksum])


@receiver(post_save, sender=App, dispatch_uid="token_cache_app_saved")
def _app_changed(sender, instance, **kwargs):
    forget_tokens_of(application=instance)


@receiver(post_save, sender=Organization, dispatch_uid="token_cache_org_saved")
def _organization_changed(sender, instance, **kwargs):
    forget_tokens_of(application__organization=instance)


@receiver(post_save, sender=Tier, dispatch_uid="token_cache_tier_saved")
def _tier_changed(sender, instance, **kwargs):
    forget_tokens_of(application__organization__tier=instance)


@receiver(post_save, sender=User, dispatch_uid="token_cache_user_saved")
def _user_changed(sender, instance, **kwargs):
    forget_tokens_of(user=instance)
