"""Reads about OAuth tokens for the portal's token inspector.

Tokens are stored hashed (DOT's ``token_checksum``, the SHA-256 of the raw value), so a pasted
token is found by its checksum. The lookup is limited to the apps of the member's organizations in
the same query: another organization's token and a token that does not exist take the same path
and give the same ``None``, so the inspector cannot be used to learn anything about tokens the
member has no business seeing.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from partners import scopes as registry
from partners.models import App, Tier, User
from partners.oauth import token_checksum, token_patient_id


@dataclass(frozen=True)
class ScopeLine:
    name: str
    sentence: str
    known: bool


@dataclass(frozen=True)
class TokenReport:
    """What the inspector shows about one token. ``state`` is ``active``, ``expired`` or ``revoked``."""

    kind: str  # "access" | "refresh"
    app: App
    tier: Tier
    scopes: list[ScopeLine]
    issued_at: datetime
    expires_at: datetime | None
    state: str
    revoked_at: datetime | None
    end_user: User | None
    patient_id: str
    # The other token of the pair, when it still exists: an access token's refresh token, or the
    # access token a refresh token currently stands behind.
    partner_state: str = ""

    @property
    def organization(self):
        return self.app.organization

    @property
    def is_expired(self) -> bool:
        return self.state == "expired"


def _scope_lines(scope: str) -> list[ScopeLine]:
    lines = []
    for name in dict.fromkeys(scope.split()):
        try:
            lines.append(ScopeLine(name, registry.parse(name).sentence, True))
        except registry.UnknownScope as exc:
            lines.append(ScopeLine(name, str(exc), False))
    return lines


def _access_state(token: AccessToken, now: datetime) -> str:
    return "expired" if token.expires <= now else "active"


def _refresh_state(token: RefreshToken, now: datetime) -> tuple[str, datetime]:
    expires_at = token.created + timedelta(seconds=token.application.organization.tier.refresh_token_lifetime)
    if token.revoked is not None:
        return "revoked", expires_at
    return ("expired" if expires_at <= now else "active"), expires_at


def token_lookup_for_member(user: User, raw_token: str) -> TokenReport | None:
    """The access or refresh token with this value, if it belongs to an app of one of ``user``'s
    organizations; ``None`` otherwise (unknown, deleted on revocation, or someone else's)."""
    raw_token = (raw_token or "").strip()
    if not raw_token or not user.is_authenticated:
        return None
    checksum = token_checksum(raw_token)
    now = timezone.now()
    related = ("application", "application__organization", "application__organization__tier", "user")

    access = (
        AccessToken.objects.select_related(*related)
        .filter(token_checksum=checksum, application__organization__memberships__user=user)
        .first()
    )
    if access is not None:
        refresh = RefreshToken.objects.select_related(*related).filter(access_token=access).first()
        return TokenReport(
            kind="access",
            app=access.application,
            tier=access.application.organization.tier,
            scopes=_scope_lines(access.scope),
            issued_at=access.created,
            expires_at=access.expires,
            state=_access_state(access, now),
            revoked_at=None,
            end_user=access.user,
            patient_id=token_patient_id(access.scope.split(), access.user) or "",
            partner_state=_refresh_state(refresh, now)[0] if refresh else "",
        )

    # A refresh token's checksum is unique only together with ``revoked``: prefer the live row.
    refresh = (
        RefreshToken.objects.select_related(*related, "access_token")
        .filter(token_checksum=checksum, application__organization__memberships__user=user)
        .order_by(F("revoked").asc(nulls_first=True))
        .first()
    )
    if refresh is None:
        return None
    state, expires_at = _refresh_state(refresh, now)
    # A refresh token carries no scope of its own: it grants again what its access token had.
    scope = refresh.access_token.scope if refresh.access_token else ""
    return TokenReport(
        kind="refresh",
        app=refresh.application,
        tier=refresh.application.organization.tier,
        scopes=_scope_lines(scope),
        issued_at=refresh.created,
        expires_at=expires_at,
        state=state,
        revoked_at=refresh.revoked,
        end_user=refresh.user,
        patient_id=token_patient_id(scope.split(), refresh.user) or "",
        partner_state=_access_state(refresh.access_token, now) if refresh.access_token else "",
    )
