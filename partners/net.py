"""Outbound HTTP to addresses partners give us (JWKS URLs now, webhooks later) without SSRF.

A URL is refused when its host resolves to a loopback, private, link-local, multicast, reserved or
cloud-metadata address. The check runs on the resolved addresses, right before connecting, so a
name that later re-resolves to an internal address (DNS rebinding) is caught too.
``ALLOW_PRIVATE_NETWORK_URLS`` (development and tests only) lifts the rule.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class UnsafeURL(ValueError):
    pass


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def check_outbound_url(url: str, *, require_https: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise UnsafeURL(f"{url} is not an absolute http(s) URL.")
    allow_private = getattr(settings, "ALLOW_PRIVATE_NETWORK_URLS", False)
    if require_https and parts.scheme != "https" and not allow_private:
        raise UnsafeURL(f"{url} must use https.")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as exc:
        raise UnsafeURL(f"{parts.hostname} does not resolve.") from exc
    for info in infos:
        address = info[4][0]
        if not _is_public(address):
            raise UnsafeURL(f"{parts.hostname} resolves to {address}, a non-public address; it is refused.")
