"""The public keys an app registered for SMART Backend Services, by value or by URL.

A JWKS URL is fetched with short timeouts and a size cap, and cached for as long as its
``Cache-Control: max-age`` allows (at most an hour; not at all with ``no-store``/``no-cache``).
"""

import hashlib
import json
import re

import requests
from django.core.cache import cache

from partners.net import UnsafeURL, check_outbound_url

FETCH_TIMEOUT = (3.05, 5)  # connect, read
MAX_JWKS_BYTES = 64 * 1024
MAX_CACHE_SECONDS = 3600
_MAX_AGE = re.compile(r"max-age=(\d+)")


class KeysUnavailable(Exception):
    pass


def cache_seconds(cache_control: str) -> int:
    directives = cache_control.lower()
    if "no-store" in directives or "no-cache" in directives:
        return 0
    match = _MAX_AGE.search(directives)
    return min(int(match.group(1)), MAX_CACHE_SECONDS) if match else 0


def _cache_key(url: str) -> str:
    return "jwks:" + hashlib.sha256(url.encode()).hexdigest()


def fetch_jwks(url: str, *, refresh: bool = False) -> dict:
    key = _cache_key(url)
    if not refresh:
        cached = cache.get(key)
        if cached is not None:
            return cached
    try:
        check_outbound_url(url, require_https=True)
        with requests.get(url, timeout=FETCH_TIMEOUT, stream=True, allow_redirects=False) as response:
            response.raise_for_status()
            body = response.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
            if len(body) > MAX_JWKS_BYTES:
                raise KeysUnavailable(f"The JWK Set at {url} is larger than {MAX_JWKS_BYTES} bytes.")
            data = json.loads(body)
            ttl = cache_seconds(response.headers.get("Cache-Control", ""))
    except UnsafeURL as exc:
        raise KeysUnavailable(str(exc)) from exc
    except (requests.RequestException, ValueError) as exc:
        raise KeysUnavailable(f"Could not fetch the JWK Set at {url}: {exc.__class__.__name__}.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeysUnavailable(f'The document at {url} is not a JWK Set (no "keys" list).')
    if ttl:
        cache.set(key, data, ttl)
    return data


def key_set_of(app, *, refresh: bool = False) -> dict:
    if app.jwks:
        return app.jwks
    if app.jwks_url:
        return fetch_jwks(app.jwks_url, refresh=refresh)
    raise KeysUnavailable("This app has registered no public keys (a JWK Set or a JWKS URL) in the portal.")
