"""Refuse webhook destinations inside the network: private, loopback, link-local and other
non-global addresses, checked on the resolved address that the request then connects to."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlparse, urlunparse

from app.errors import DomainError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedDestination(DomainError):
    code = "REFUSED_DESTINATION"


class Unresolvable(DomainError):
    """The host name does not resolve (now): worth retrying."""

    code = "UNRESOLVABLE"


def forbidden(ip: IP) -> bool:
    """Not a public internet address (private, loopback, link-local, reserved, multicast…)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


@dataclass(frozen=True)
class Target:
    """Where to connect: the URL with its host replaced by the checked address."""

    url: str
    host_header: str
    sni_hostname: str
    address: str


async def resolve(url: str, *, allow_private: bool, private_hosts: Collection[str] = ()) -> Target:
    """Resolve the URL's host and refuse it unless every address is public, private ones are
    allowed, or the host (`host` or `host:port`) is listed in `private_hosts`."""
    parsed = urlparse(url)
    host = parsed.hostname
    if parsed.scheme not in ("http", "https") or not host:
        raise RefusedDestination(f"{url!r} is not an http(s) URL")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    allow_private = allow_private or host in private_hosts or f"{host}:{port}" in private_hosts
    try:
        literal: IP | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[IP] = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise Unresolvable(f"cannot resolve {host}: {exc}") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses:
            raise RefusedDestination(f"{host} has no address")
    bad = [str(a) for a in addresses if forbidden(a)]
    if bad and not allow_private:
        raise RefusedDestination(
            f"{host} resolves to a private, loopback or link-local address ({', '.join(bad)});"
            " set LIFTOFF_WEBHOOK_ALLOW_PRIVATE to allow it"
        )
    address = addresses[0]
    shown = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    netloc = f"{shown}:{parsed.port}" if parsed.port else shown
    host_header = host if not parsed.port else f"{host}:{parsed.port}"
    return Target(
        url=urlunparse(parsed._replace(netloc=netloc)),
        host_header=host_header,
        sni_hostname=host,
        address=str(address),
    )
