"""SMART Backend Services client authentication: a ``private_key_jwt`` assertion (RFC 7523).

Rules (SMART App Launch 2.x, Backend Services): RS384 or ES384; ``kid`` in the header; ``iss`` and
``sub`` both the client id; ``aud`` the token endpoint URL; ``exp`` no more than five minutes ahead;
a ``jti`` never seen before (the validator records it).
"""

import json
import time

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from partners.jwks import KeysUnavailable, key_set_of
from partners.models import App

ALGORITHMS = ("RS384", "ES384")
MAX_LIFETIME = 300
CLOCK_SKEW = 60


class AssertionRejected(Exception):
    """Why the assertion does not authenticate the client; the text goes to the developer."""


def _unverified(assertion: str) -> tuple[dict, dict]:
    try:
        compact = jws.extract_compact(assertion.encode())
        return dict(compact.protected), json.loads(compact.payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise AssertionRejected("client_assertion is not a compact JWS (header.payload.signature).") from exc


def verify_client_assertion(assertion: str, *, token_urls: set[str], client_id: str | None) -> tuple[App, dict]:
    header, claims = _unverified(assertion)
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise AssertionRejected(f"alg {alg!r} is not accepted; sign with {' or '.join(ALGORITHMS)}.")
    if not header.get("kid"):
        raise AssertionRejected("The assertion's header has no kid; name the key that signed it.")
    issuer, subject = claims.get("iss"), claims.get("sub")
    if not issuer or issuer != subject:
        raise AssertionRejected("iss and sub must both be your client_id.")
    if client_id and client_id != issuer:
        raise AssertionRejected("client_id does not match the assertion's iss.")
    app = App.objects.select_related("organization", "organization__tier").filter(client_id=issuer).first()
    if app is None:
        raise AssertionRejected("No app has the client_id in iss.")

    try:
        key_set = KeySet.import_key_set(key_set_of(app))
        key = key_set.get_by_kid(header["kid"])
    except KeysUnavailable as exc:
        raise AssertionRejected(str(exc)) from exc
    except (JoseError, ValueError, KeyError) as exc:
        # An unknown kid may mean the app rotated keys since we cached its JWKS: look once more.
        try:
            key = KeySet.import_key_set(key_set_of(app, refresh=True)).get_by_kid(header["kid"])
        except (KeysUnavailable, JoseError, ValueError, KeyError):
            raise AssertionRejected(f"No registered key has kid {header['kid']!r}.") from exc
    try:
        verified = jwt.decode(assertion, key, algorithms=[alg])
    except JoseError as exc:
        raise AssertionRejected("The assertion's signature does not verify with the registered key.") from exc
    claims = dict(verified.claims)

    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if not token_urls & set(audiences):
        raise AssertionRejected(f"aud must be the token endpoint URL, {sorted(token_urls)[-1]}.")
    now = time.time()
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise AssertionRejected("The assertion has no exp.")
    if exp < now - CLOCK_SKEW:
        raise AssertionRejected("The assertion has expired; sign a new one.")
    if exp > now + MAX_LIFETIME + CLOCK_SKEW:
        raise AssertionRejected(f"exp is more than {MAX_LIFETIME} seconds ahead; keep assertions short-lived.")
    if not claims.get("jti"):
        raise AssertionRejected("The assertion has no jti; give every assertion a unique one.")
    return app, claims
