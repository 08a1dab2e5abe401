"""Redirect URI rules (RFC 6749 §3.1.2, RFC 8252 for native apps, OAuth 2.0 Security BCP).

Registered redirect URIs are compared exactly at authorization time, so a registration must be
exact too: no wildcards, no fragments, absolute, and https in production. Loopback addresses are the
one exception to https (RFC 8252 §7.3), because traffic to them never leaves the device.
"""

import ipaddress
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

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
