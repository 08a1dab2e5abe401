"""What ``consent.services.check_access`` decides from, kept in the shared cache.

Every read of patient data asks "may this app see this class of this patient's data?". The answer
rests on a few facts about the app and the patient (their latest grant, and whether the
organizations holding the patient's records let the app in) that take two queries to learn and
decide every data class at once. Those facts are kept for ``ACCESS_DECISION_CACHE_SECONDS`` (only
when the cache is shared, i.e. ``REDIS_URL`` is set) under generation stamps
(``marketplace.generational_cache``), and are stale the moment anything they rest on changes:

- ``consent:<app>:<patient>``: any grant of that patient to that app (granted, superseded, revoked,
  expired);
- ``patient:<patient>``: the organizations holding the patient's records (care relationships);
- ``app:<app>``: the app itself (its environment) and any provider's decision about it.

The decision itself is made from the facts at every call, so a grant's expiry counts from the
moment it passes, cached or not. The token layer may fetch the facts in the same round trip as the
token (``keys``); ``facts`` then reads them from what it fetched.
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from consent.models import AppAuthorization, CareRelationship, ConsentGrant
from marketplace import generational_cache
from partners.models import App

KEY_PREFIX = "access:"


@dataclass(frozen=True)
class AccessFacts:
    """The app's latest grant from the patient (``grant_id`` None: never asked or always denied), and
    whether an organization holding the patient's records refuses the app (which one, and in what
    words, is looked up when a refusal is answered: names change, and refusals are rare)."""

    grant_id: int | None = None
    status: str = ""
    data_classes: tuple[str, ...] = ()
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    authorization_refused: bool = False


def enabled() -> bool:
    return settings.ACCESS_DECISION_CACHE_SECONDS > 0


def _key(app_id: int, patient_id: str) -> str:
    return f"{KEY_PREFIX}{app_id}:{patient_id}"


def _dependencies(app_id: int, patient_id: str) -> tuple[str, ...]:
    return (f"consent:{app_id}:{patient_id}", f"patient:{patient_id}", f"app:{app_id}")


def keys(*, app_id: int, patient_id: str) -> list[str]:
    """The cache keys ``facts`` reads, for the token layer to fetch along with the token."""
    return generational_cache.keys(_key(app_id, patient_id), _dependencies(app_id, patient_id))


def facts(*, app_id: int, patient_id: str, load, found: dict | None = None) -> AccessFacts:
    """The cached facts, or ``load()``'s, stored for the next caller. ``found``: what a ``get_many``
    of ``keys`` returned, when the caller already fetched them."""
    if not enabled():
        return load()
    key = _key(app_id, patient_id)
    cached = generational_cache.lookup(key, _dependencies(app_id, patient_id), found)
    if cached.hit:
        return cached.value
    fresh = load()
    generational_cache.store(key, fresh, cached.stamps, settings.ACCESS_DECISION_CACHE_SECONDS)
    return fresh


def forget_consent(*, app_id: int, patient_id: str) -> None:
    """Called by every change of a grant, including the queryset updates that send no signal."""
    if enabled():
        generational_cache.bump(f"consent:{app_id}:{patient_id}")


@receiver(post_save, sender=ConsentGrant, dispatch_uid="access_cache_grant_saved")
@receiver(post_delete, sender=ConsentGrant, dispatch_uid="access_cache_grant_deleted")
def _grant_changed(sender, instance, **kwargs):
    forget_consent(app_id=instance.app_id, patient_id=instance.patient_id)


@receiver(post_save, sender=CareRelationship, dispatch_uid="access_cache_care_saved")
@receiver(post_delete, sender=CareRelationship, dispatch_uid="access_cache_care_deleted")
def _care_changed(sender, instance, **kwargs):
    if enabled():
        generational_cache.bump(f"patient:{instance.patient_id}")


@receiver(post_save, sender=AppAuthorization, dispatch_uid="access_cache_authorization_saved")
@receiver(post_delete, sender=AppAuthorization, dispatch_uid="access_cache_authorization_deleted")
def _authorization_changed(sender, instance, **kwargs):
    if enabled():
        generational_cache.bump(f"app:{instance.app_id}")


@receiver(post_save, sender=App, dispatch_uid="access_cache_app_saved")
@receiver(post_delete, sender=App, dispatch_uid="access_cache_app_deleted")
def _app_changed(sender, instance, **kwargs):
    if enabled():
        generational_cache.bump(f"app:{instance.pk}")
