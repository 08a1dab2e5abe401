"""Registration rules: redirect URIs (RFC 6749 §3.1.2, RFC 8252 for native apps, OAuth 2.0 Security
BCP) and the public keys of SMART Backend Services apps.

Registered redirect URIs are compared exactly at authorization time, so a registration must be
exact too: no wildcards, no fragments, absolute, and https in production. Loopback addresses are the
one exception to https (RFC 8252 §7.3), because traffic to them never leaves the device.
"""

import ipaddress
import json
import warnings
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

MAX_REDIRECT_URIS = 10
MAX_REDIRECT_URI_LENGTH = 2000
LOOPBACK_HOSTS = {"localhost"}


def is_loopback_host(host: str) -> bool:
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_redirect_uri(uri: str, *, environment: str) -> None:
    if len(uri) > MAX_REDIRECT_URI_LENGTH:
        raise ValidationError(f"{uri[:60]}… is longer than {MAX_REDIRECT_URI_LENGTH} characters.")
    if "*" in uri:
        raise ValidationError(f"{uri}: wildcards are not allowed; register each redirect URI exactly.")
    if "#" in uri:
        raise ValidationError(f"{uri}: a redirect URI must not contain a fragment (#…).")
    parts = urlsplit(uri)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValidationError(
            f"{uri}: must be an absolute http or https URL, such as https://app.example.com/callback."
        )
    if parts.username or parts.password:
        raise ValidationError(f"{uri}: must not contain a user name or password.")
    if environment == "production" and parts.scheme != "https" and not is_loopback_host(parts.hostname):
        raise ValidationError(
            f"{uri}: production apps must use https (http is allowed only for loopback addresses such as 127.0.0.1)."
        )


def parse_redirect_uris(raw: str, *, environment: str) -> list[str]:
    """Split whitespace- or newline-separated URIs, validate each, and return them de-duplicated.

    Every problem is reported at once, so a form shows all of them after one submit.
    """
    uris = list(dict.fromkeys(raw.split()))
    if len(uris) > MAX_REDIRECT_URIS:
        raise ValidationError(f"Register at most {MAX_REDIRECT_URIS} redirect URIs (you gave {len(uris)}).")
    errors = []
    for uri in uris:
        try:
            validate_redirect_uri(uri, environment=environment)
        except ValidationError as exc:
            errors.extend(exc.messages)
    if errors:
        raise ValidationError(errors)
    return uris


# --- Public keys (SMART Backend Services) ------------------------------------------------------
#
# An app authenticates at the token endpoint with a JWT it signs (private_key_jwt). It registers the
# public half by value (a JWK Set) or by URL. SMART Backend Services signs with RS384 or ES384, so
# only RSA and P-384 EC keys can ever verify an assertion; anything else is refused at registration
# rather than at the first failed token request.

MAX_JWKS_KEYS = 10
MAX_JWKS_BYTES = 20 * 1024
MAX_JWKS_URL_LENGTH = 500
KEY_ALGORITHMS = {"RSA": "RS384", "EC": "ES384"}
MIN_RSA_BITS = 2048
# Members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4).
PRIVATE_KEY_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def _key_problems(index: int, key) -> list[str]:
    if not isinstance(key, dict):
        return [f'Key {index}: each entry of "keys" must be a JSON object (a JWK).']
    label = f"Key {key.get('kid')!r}" if isinstance(key.get("kid"), str) and key.get("kid") else f"Key {index}"
    problems = []
    private = [member for member in PRIVATE_KEY_MEMBERS if member in key]
    if private:
        problems.append(
            f"{label} contains private key material ({', '.join(private)}). Register the public key only, "
            "and keep the private key on your server."
        )
    kty = key.get("kty")
    if kty not in KEY_ALGORITHMS:
        problems.append(f"{label}: kty must be RSA or EC (got {kty!r}).")
    if not isinstance(key.get("kid"), str) or not key.get("kid").strip():
        problems.append(f"{label} has no kid. Give every key an id; your assertions name it in their header.")
    alg = key.get("alg")
    if alg is not None and kty in KEY_ALGORITHMS and alg != KEY_ALGORITHMS[kty]:
        problems.append(f"{label}: an {kty} key signs with {KEY_ALGORITHMS[kty]} here (got alg {alg!r}).")
    if key.get("use", "sig") != "sig":
        problems.append(f'{label}: use must be "sig" (got {key.get("use")!r}).')
    if kty == "EC" and key.get("crv") != "P-384":
        problems.append(f"{label}: ES384 needs a P-384 key (got crv {key.get('crv')!r}).")
    return problems


def validate_jwks(jwks) -> dict:
    """Check a JWK Set of public signing keys; raise ``ValidationError`` listing every problem."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValidationError('A JWK Set is a JSON object with a "keys" list: {"keys": [{...}, ...]}.')
    keys = jwks["keys"]
    if not keys:
        raise ValidationError('The "keys" list is empty: add at least one public key.')
    if len(json.dumps(jwks, separators=(",", ":"))) > MAX_JWKS_BYTES:
        raise ValidationError(f"The JWK Set is larger than {MAX_JWKS_BYTES // 1024} KB; register fewer keys.")
    if len(keys) > MAX_JWKS_KEYS:
        raise ValidationError(f"Register at most {MAX_JWKS_KEYS} keys (you gave {len(keys)}).")
    problems = [problem for index, key in enumerate(keys, start=1) for problem in _key_problems(index, key)]
    kids = [key.get("kid") for key in keys if isinstance(key, dict)]
    duplicates = sorted({kid for kid in kids if isinstance(kid, str) and kids.count(kid) > 1})
    if duplicates:
        problems.append(f"Each kid must be unique; repeated: {', '.join(duplicates)}.")
    if problems:
        raise ValidationError(problems)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc's SecurityWarning on small keys: refused below
            key_set = KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValidationError(f"A key is not a valid JWK: {exc}") from exc
    for key in key_set:
        if key.key_type == "RSA" and key.raw_value.key_size < MIN_RSA_BITS:
            problems.append(f"Key {key.kid!r}: RSA keys need at least {MIN_RSA_BITS} bits.")
    if problems:
        raise ValidationError(problems)
    return jwks


def validate_jwks_url(url: str, *, allow_loopback_http: bool) -> str:
    """A JWKS URL must be https; http only for a loopback address, and only in development."""
    if len(url) > MAX_JWKS_URL_LENGTH:
        raise ValidationError(f"The URL is longer than {MAX_JWKS_URL_LENGTH} characters.")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValidationError(f"{url}: must be an absolute https URL, such as https://app.example.com/jwks.json.")
    if parts.username or parts.password or parts.fragment:
        raise ValidationError(f"{url}: must not contain a user name, password or #fragment.")
    if parts.scheme != "https" and not (allow_loopback_http and is_loopback_host(parts.hostname)):
        raise ValidationError(
            f"{url}: must use https"
            + (" (http is allowed only for loopback addresses in development)." if allow_loopback_http else ".")
        )
    return url


def validate_rate_quota_overrides(value) -> None:
    """``{"<endpoint group>": {"<window>": <positive whole number>}}``, with the groups and windows the
    tiers use (``partners.tiers``)."""
    from partners.tiers import ENDPOINT_GROUPS
    from partners.tiers import QUOTA_KEYS as windows

    if not isinstance(value, dict):
        raise ValidationError('Give an object: {"fhir_read": {"per_day": 50000}}.')
    for group, quotas in value.items():
        if group not in ENDPOINT_GROUPS:
            raise ValidationError(f"{group!r} is not an endpoint group; use one of {', '.join(ENDPOINT_GROUPS)}.")
        if not isinstance(quotas, dict):
            raise ValidationError(f"{group}: give an object of windows.")
        for window, count in quotas.items():
            if window not in windows:
                raise ValidationError(f"{group}.{window} is not a window; use one of {', '.join(windows)}.")
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise ValidationError(f"{group}.{window} must be a whole number of requests, at least 1.")
