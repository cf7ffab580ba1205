"""Where limner may connect to on a client's say-so: the guard against server-side request forgery.

A URL a client hands limner (a file input today, a webhook later) must not make the server
reach into its own network: loopback, private and link-local addresses (the cloud metadata
service at 169.254.169.254 among them), carrier-grade NAT, multicast, and the IPv6 forms that
smuggle such an IPv4 address (``::ffff:127.0.0.1``, NAT64, 6to4). The host is resolved once;
every address it resolves to must be public, unless the operator allows the host or the
address (``LIMNER_FETCH_ALLOW_HOSTS``). The connection then goes to the resolved address, with
the original name in the Host header and TLS SNI, so a second DNS answer cannot swap it.

Written by hand because no well-kept library does resolution, classification and pinning for
httpx together; ``ipaddress`` does the address arithmetic.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

import httpx

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
# (host, port) -> addresses; socket.getaddrinfo by default, replaceable in tests.
Resolver = Callable[[str, int], list[IPAddress]]

ALLOW_SETTING = "LIMNER_FETCH_ALLOW_HOSTS"
HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,62}[a-z0-9_])?)*\.?$"
)

PRIVATE = tuple(ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
CGNAT = ip_network("100.64.0.0/10")
METADATA = frozenset(ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254"))
# IPv6 ranges whose low 32 bits are an IPv4 address the connection ends up at.
IPV4_TRANSLATED = ip_network("::ffff:0:0:0/96")  # RFC 2765 (the mapped form ::ffff:0:0/96 has ipv4_mapped)
NAT64 = ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
IPV4_COMPATIBLE = ip_network("::/96")  # deprecated ::a.b.c.d
LOCAL_NAT64 = ip_network("64:ff9b:1::/48")  # RFC 8215: private translation domains


class Refused(Exception):
    """limner will not (or cannot) connect to this URL; the message says why."""


@dataclass(frozen=True)
class AllowList:
    """Operator exceptions to the guard: host names (exact, case-insensitive) and networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def parse_allow_list(entries: Iterable[str], setting: str = ALLOW_SETTING) -> AllowList:
    """Hosts and CIDRs from ``LIMNER_FETCH_ALLOW_HOSTS`` (or ``setting``); raises ValueError on an entry
    that is neither."""
    hosts: set[str] = set()
    networks: list[Network] = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if not HOST_NAME.match(entry):
            raise ValueError(f"{setting}: {raw!r} is neither a host name nor an address or CIDR")
        hosts.add(entry.rstrip("."))
    return AllowList(frozenset(hosts), tuple(networks))


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, translated, NAT64, compatible, 6to4)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in IPV4_TRANSLATED or address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: IPAddress) -> str | None:
    """Why limner refuses to connect to ``address`` ("a loopback address", …), or None if it is public."""
    if isinstance(address, IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = classify(inner)
            return f"{reason} in IPv6 form ({inner})" if reason else None
        if address in LOCAL_NAT64:
            return "a local-use NAT64 address"
        if address.is_site_local:
            return "a site-local address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address in METADATA:
        kind = "a link-local" if address.is_link_local else "a private"
        return f"{kind} address (the cloud metadata service)"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, IPv4Address) and address in CGNAT:
        return "a carrier-grade NAT (shared) address"
    if any(address.version == net.version and address in net for net in PRIVATE):
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "a non-public address"
    return None


def system_resolver(host: str, port: int) -> list[IPAddress]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[IPAddress] = []
    for info in infos:
        address = ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


@dataclass(frozen=True)
class Target:
    """A checked URL and the one address limner connects to for it."""

    url: httpx.URL
    address: IPAddress
    all_addresses: tuple[IPAddress, ...] = field(default=())

    @property
    def host(self) -> str:
        """The host as sent on the wire (IDNA-encoded), for the Host header and SNI."""
        return self.url.raw_host.decode("ascii")

    @property
    def pinned_url(self) -> httpx.URL:
        return self.url.copy_with(host=str(self.address))

    def request(self, client: httpx.Client, method: str, **kwargs: Any) -> httpx.Request:
        """A request to the pinned address that the server sees as one to the original host."""
        headers = dict(kwargs.pop("headers", None) or {})
        host = f"[{self.host}]" if ":" in self.host else self.host
        headers["Host"] = host if self.url.port is None else f"{host}:{self.url.port}"
        extensions = dict(kwargs.pop("extensions", None) or {})
        if self.url.scheme == "https":
            extensions["sni_hostname"] = self.host
        return client.build_request(method, self.pinned_url, headers=headers, extensions=extensions, **kwargs)


def shown(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


def resolve_target(
    url: str,
    allow: AllowList,
    resolver: Resolver = system_resolver,
    *,
    setting: str = ALLOW_SETTING,
    action: str = "fetch from",
) -> Target:
    """Check ``url`` and resolve its host once; raise Refused if any address is off limits.

    ``setting`` and ``action`` name the allow-list and what limner would do there, for the
    message (file inputs: LIMNER_FETCH_ALLOW_HOSTS, "fetch from"; webhooks their own)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise Refused(f"{shown(url)} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise Refused(f"{shown(url)} is not an http(s) URL; limner fetches only http and https")
    host = parsed.host
    if not host:
        raise Refused(f"{shown(url)} has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise Refused(f"{host} does not resolve ({exc})") from None
        if not addresses:
            raise Refused(f"{host} does not resolve to any address")
    host_allowed = literal is None and allow.allows_host(host)
    verb = "is" if literal is not None else "resolves to"
    for address in addresses:
        reason = classify(address)
        if reason and not host_allowed and not allow.allows_address(address):
            raise Refused(
                f"{shown(url)} {verb} {address}, {reason}; limner does not {action} such addresses "
                f"unless an operator allows the host ({setting}, comma-separated hosts or CIDRs)"
            )
    return Target(parsed, addresses[0], tuple(addresses))
