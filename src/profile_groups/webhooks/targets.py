"""Which webhook targets may be called (docs/webhooks.md, "Safety").

A target must be a public address: loopback, private, link-local, unspecified, multicast,
reserved and other special-purpose ranges (IPv6 too, and IPv4 addresses embedded in IPv6 ones)
are refused, unless WEBHOOK_ALLOW_PRIVATE_TARGETS is set. The check runs on the URL at create and
PATCH, and again at every delivery on the addresses the name resolves to then (so a name that
later resolves to a private address, DNS rebinding, is refused too); the delivery then connects
to the very address it checked.
"""

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESOLVE_TIMEOUT_SECONDS = 5.0
MAX_URL_LENGTH = 2048


class TargetRefused(Exception):
    """The URL or the address it resolves to may not be called (the message says why)."""


@dataclass(frozen=True)
class Target:
    url: SplitResult
    host: str
    port: int


def parse_url(raw: str) -> Target:
    """The URL's parts, or TargetRefused when it is not an absolute http(s) URL."""
    if len(raw) > MAX_URL_LENGTH:
        raise TargetRefused(f"The URL must be at most {MAX_URL_LENGTH} characters.")
    try:
        url = urlsplit(raw)
        port = url.port
    except ValueError as exc:
        raise TargetRefused(f"The URL is malformed: {exc}.") from None
    if url.scheme not in ("http", "https"):
        raise TargetRefused("The URL must start with http:// or https://.")
    host = url.hostname
    if not host:
        raise TargetRefused("The URL must name a host.")
    if url.username is not None or url.password is not None:
        # They would be sent to no one: the request goes to the checked address, not the netloc.
        raise TargetRefused("The URL must not carry credentials (user:password@); use a token.")
    return Target(url, host, port or (443 if url.scheme == "https" else 80))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
    )


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` resolves to now (an IP literal: itself)."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS
        )
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise TargetRefused(f"The host {host!r} could not be resolved ({exc}).") from None
    addresses: list[IPAddress] = []
    for _, _, _, _, sockaddr in infos:
        # An IPv6 sockaddr may carry a zone ("fe80::1%eth0"): link-local, refused below.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise TargetRefused(f"The host {host!r} could not be resolved.")
    return addresses


async def checked_address(target: Target, *, allow_private: bool) -> IPAddress:
    """The address to connect to: the first one `target`'s host resolves to, once every one of
    them is public (a name with any non-public address is refused as a whole)."""
    addresses = await resolve(target.host, target.port)
    if not allow_private:
        refused = [a for a in addresses if not is_public(a)]
        if refused:
            raise TargetRefused(
                f"The host {target.host!r} resolves to a non-public address ({refused[0]}); "
                "webhook targets must be public."
            )
    return addresses[0]


async def check_url(raw: str, *, allow_private: bool) -> None:
    """At create and PATCH: a TargetRefused for a URL the service would not call."""
    target = parse_url(raw)
    if allow_private:
        return  # development and tests: any target, resolvable or not yet
    await checked_address(target, allow_private=False)
