"""Telling a relay's clients apart, and how many connections each may hold.

A client is its IP address. Behind a reverse proxy or load balancer every connection
comes from the proxy, so the relay takes the client's address from the proxy's
``X-Forwarded-For`` — but only when the connection really comes from one of the proxies
it was told about (``--proxy``; by default the loopback addresses, where a local nginx or
Caddy sits). A client that connects directly cannot choose its own address by sending
that header.

Connections are counted per peer (the TCP connection is counted before any header is
read, so behind a proxy that proxy's own connection limit applies, and proxies are not
limited here).
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
from collections.abc import Iterable
from typing import Any

__all__ = ["CONNECTIONS_PER_CLIENT", "Clients"]

# Enough for a browser with many share tabs open (about 6 connections per origin and one
# origin per share) and a notebook's connection pool; a slowloris run from one address
# is stopped at this many sockets.
CONNECTIONS_PER_CLIENT = 64

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


def parse_proxies(values: Iterable[str]) -> tuple[Network, ...]:
    """``--proxy`` values: addresses or networks, ``loopback`` (the default) or ``none``."""
    networks: list[Network] = []
    values = list(values) or ["loopback"]
    for value in values:
        if value == "none":
            continue
        if value == "loopback":
            networks.extend(LOOPBACK)
            continue
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(
                f"--proxy {value!r} is not an address or network (e.g. 10.0.0.5, 10.0.0.0/24, "
                "loopback, none)"
            ) from None
    return tuple(networks)


@dataclasses.dataclass
class Clients:
    proxies: tuple[Network, ...] = LOOPBACK
    max_connections: int = CONNECTIONS_PER_CLIENT  # per client address; 0: no limit
    open: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def is_proxy(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.proxies)

    def address(self, peer: str, forwarded_for: str | None) -> str:
        """Who the client is: the peer, or for a proxy the address it says it forwards for."""
        if not self.is_proxy(peer) or not forwarded_for:
            return peer
        # Each proxy appends the address it saw: the last entry is the one our proxy wrote.
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return peer

    def of(self, request: Any) -> str:
        """The client of a tornado request (``remote_ip`` is the TCP peer here)."""
        return self.address(request.remote_ip or "", request.headers.get("X-Forwarded-For"))

    def limited(self, client: str) -> bool:
        """Whether per-client limits apply (not to a proxy seen without a forwarded address)."""
        return bool(client) and not self.is_proxy(client)

    def connect(self, peer: str) -> bool:
        """Count a new connection from ``peer``; False when it holds too many already."""
        if self.max_connections and self.limited(peer) and self.open[peer] >= self.max_connections:
            return False
        self.open[peer] += 1
        return True

    def disconnect(self, peer: str) -> None:
        self.open[peer] -= 1
        if self.open[peer] <= 0:
            del self.open[peer]
