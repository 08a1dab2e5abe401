"""Outbound HTTP to addresses partners give us (JWKS URLs, webhook endpoints) without SSRF.

A URL is refused when its host resolves to a loopback, private, link-local, multicast, reserved,
shared (CGNAT) or cloud-metadata address. The check runs on the resolved addresses, right before
connecting, so a name that later re-resolves to an internal address (DNS rebinding) is caught too.

Two ways of connecting:

- ``check_outbound_url`` (JWKS) checks, then the caller's HTTP client resolves the name again. It
  leaves a window between the two lookups; ``ALLOW_PRIVATE_NETWORK_URLS`` (development and tests
  only) lifts its rule entirely.
- ``resolve_outbound`` (webhooks) resolves once and returns the checked addresses, and the caller
  connects to one of exactly those (``partners.webhooks``): the name is never looked up a second
  time, so it cannot be rebound in between. ``WEBHOOKS_ALLOW_LOOPBACK`` (development only, and only
  with ``DEBUG``) admits loopback addresses and nothing else: a receiver on 127.0.0.1 works while
  10.x, 169.254.x and metadata names are still refused. ``ALLOW_PRIVATE_NETWORK_URLS`` has no say
  here: a webhook worker would otherwise reach the whole private network in development.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class UnsafeURL(ValueError):
    pass


# Names of cloud metadata services, refused before any lookup: a resolver inside the cloud may
# answer them with an address our checks would not recognise as special.
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
# Suffixes that only ever name machines on a private network (RFC 6762 mDNS, cloud-internal DNS).
PRIVATE_SUFFIXES = (".internal", ".local", ".localdomain", ".home.arpa", ".intranet", ".lan")

# NAT64 prefixes carry an IPv4 address in their last 32 bits; a gateway forwards to it.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo, NAT64), if any: each reaches
    that IPv4 host, so it is judged as that host."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if any(ip in network for network in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _unwrap(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a scoped IPv6 (fe80::1%eth0) keeps its zone
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded_ipv4(ip) or ip
    return ip


def _is_public(address: str) -> bool:
    ip = _unwrap(address)
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def _is_loopback(address: str) -> bool:
    return _unwrap(address).is_loopback


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


# --- Webhooks: resolve once, check every address, connect to a checked one -------------------


class Unresolvable(UnsafeURL):
    """The name does not resolve (now): not shown to be unsafe, but there is nowhere to connect."""


@dataclass(frozen=True)
class Target:
    """Where to send a request: the URL's parts and the checked addresses to connect to."""

    scheme: str
    hostname: str  # for the Host header, TLS SNI and the certificate check
    port: int
    path: str  # path and query, as sent in the request line
    addresses: tuple[str, ...]  # every one checked; connect to these, never to a new lookup

    @property
    def host_header(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _loopback_allowed() -> bool:
    return bool(getattr(settings, "WEBHOOKS_ALLOW_LOOPBACK", False))


def _split(url: str):
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port out of range or not a number
        raise UnsafeURL(f"{url} is not a valid URL.") from exc
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise UnsafeURL(f"{url} is not an absolute http(s) URL.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL("A webhook URL must not carry a user name or password; verify our signature instead.")
    hostname = parts.hostname.rstrip(".")
    if hostname in METADATA_NAMES or hostname.endswith(PRIVATE_SUFFIXES):
        raise UnsafeURL(f"{hostname} names a private or cloud-metadata host, which webhooks may not reach.")
    return parts, hostname, port or (443 if parts.scheme == "https" else 80)


def _check_address(hostname: str, address: str) -> None:
    if _is_public(address):
        return
    if _loopback_allowed() and _is_loopback(address):
        return
    raise UnsafeURL(f"{hostname} resolves to {address}, a private or internal address webhooks may not reach.")


def resolve_outbound(url: str) -> Target:
    """Resolve ``url``'s host once and check every address it resolves to (one bad address refuses
    the lot: which one a client would pick is not ours to guess). Raises ``UnsafeURL``, or its
    subclass ``Unresolvable`` when the name does not resolve."""
    parts, hostname, port = _split(url)
    try:
        infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"{hostname} does not resolve.") from exc
    addresses = tuple(dict.fromkeys(info[4][0] for info in infos))  # in the resolver's order, once each
    if not addresses:
        raise Unresolvable(f"{hostname} does not resolve.")
    for address in addresses:
        _check_address(hostname, address)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=parts.scheme, hostname=hostname, port=port, path=path, addresses=addresses)


def validate_webhook_url(url: str, *, production: bool) -> None:
    """The save-time check of a webhook endpoint; raises ``UnsafeURL`` with a message for the form.

    A production app's endpoint must use https (loopback aside, when ``WEBHOOKS_ALLOW_LOOPBACK``
    admits it). A name that does not resolve yet is accepted: it is not shown to be unsafe, and
    every delivery resolves and checks it again anyway, which is the check that counts.
    """
    parts, _, _ = _split(url)
    try:
        target = resolve_outbound(url)
    except Unresolvable:
        target = None
    if production and parts.scheme != "https":
        loopback = target is not None and all(_is_loopback(a) for a in target.addresses)
        if not (loopback and _loopback_allowed()):
            raise UnsafeURL("A production app's webhook URL must use https.")
