"""Shape data for portal pages: the tiers page (one row per capability, the current tier beside the
next) and the app page (its registered keys)."""

from dataclasses import dataclass

from partners.models import Tier
from portal.templatetags.portal_tags import duration

QUOTA_WINDOW_LABELS = (("burst", "per second"), ("per_minute", "per minute"), ("per_day", "per day"))


@dataclass(frozen=True)
class Row:
    label: str
    current: str
    next: str = ""
    improves: bool = False


def _yes_no(value: bool) -> str:
    return "Yes" if value else "No"


def capability_rows(current: Tier, upcoming: Tier | None) -> list[Row]:
    specs = [
        ("Production credentials", "production_credentials", _yes_no),
        ("Write access", "write_access", _yes_no),
        ("Apps", "max_apps", lambda v: f"{v:,}"),
        ("Webhook subscriptions", "max_webhook_subscriptions", lambda v: f"{v:,}"),
        ("Patient-app access token lifetime", "patient_token_lifetime", duration),
        ("Backend-services token lifetime", "system_token_lifetime", duration),
        ("Refresh token lifetime", "refresh_token_lifetime", duration),
    ]
    rows = []
    for label, attr, fmt in specs:
        now = getattr(current, attr)
        later = getattr(upcoming, attr) if upcoming else None
        rows.append(
            Row(
                label=label,
                current=fmt(now),
                next=fmt(later) if upcoming else "",
                improves=upcoming is not None and later != now and bool(later > now),
            )
        )
    return rows


@dataclass(frozen=True)
class QuotaRow:
    group: str
    label: str
    current: list[str]
    next: list[str]


def quota_rows(current: Tier, upcoming: Tier | None) -> list[QuotaRow]:
    rows = []
    for group, label, quota in current.quota_rows:
        later = upcoming.quota_for(group) if upcoming else {}
        rows.append(
            QuotaRow(
                group=group,
                label=label,
                current=[_count(quota.get(window)) for window, _ in QUOTA_WINDOW_LABELS],
                next=[_count(later.get(window)) for window, _ in QUOTA_WINDOW_LABELS] if upcoming else [],
            )
        )
    return rows


def added_scopes(current: Tier, upcoming: Tier | None) -> list[str]:
    if upcoming is None:
        return []
    have = set(current.allowed_scopes)
    return [scope for scope in upcoming.allowed_scopes if scope not in have]


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "—"


@dataclass(frozen=True)
class RegisteredKey:
    kid: str
    kty: str
    alg: str


def registered_keys(app) -> list[RegisteredKey]:
    """The public keys an app registered by value, as the detail page lists them."""
    return [
        RegisteredKey(str(key.get("kid", "")), str(key.get("kty", "")), str(key.get("alg", "")))
        for key in (app.jwks or {}).get("keys", [])
    ]
