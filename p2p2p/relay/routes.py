"""The relay's routing table: share id → the tunnel of its owner, in memory only.

Nothing is written to disk, so a relay can restart at any time: owners reconnect and
re-register by themselves. Heartbeats close tunnels whose owner stopped answering, so a
dead owner's shares go offline within ``heartbeat_s × missed_beats``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from ..protocol.registration import ShareAd
from .clients import CONNECTIONS_PER_CLIENT, LOOPBACK, Clients, Network

if TYPE_CHECKING:
    from .tunnels import Tunnel

__all__ = ["GONE_KEPT", "GONE_KEPT_S", "Gone", "Relay", "RelayConfig"]

# Listed shares that went away, shown on the directory as offline with when they were
# last seen: in memory, at most this many, for at most this long (a restart forgets).
GONE_KEPT = 256
GONE_KEPT_S = 7 * 24 * 3600.0


@dataclasses.dataclass(frozen=True)
class Gone:
    share: ShareAd
    owner_key: bytes
    client: str
    when: float  # time.time() it was last routed


log = logging.getLogger("p2p2p.relay")


@dataclasses.dataclass
class RelayConfig:
    heartbeat_s: float = 5.0
    missed_beats: int = 3  # an owner silent this many beats is stale and disconnected
    response_timeout_s: float = 120.0  # until the owner sends the response head
    register_timeout_s: float = 10.0
    # Wildcard DNS and certificate are in place: browsers get an origin per share
    # (relay.origins). Loopback relays always have them (*.localhost).
    share_origins: bool = False
    header_timeout_s: float = 20.0  # slow headers (or an idle keep-alive) end the connection
    # Where a reverse proxy or load balancer connects from (its X-Forwarded-For is
    # believed and it is not limited per client); --proxy.
    proxies: tuple[Network, ...] = LOOPBACK
    connections_per_client: int = CONNECTIONS_PER_CLIENT  # 0: no limit


class Relay:
    """Which tunnel serves which share; the tunnels open now."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.routes: dict[str, tuple[Tunnel, ShareAd]] = {}
        self.tunnels: set[Tunnel] = set()
        self.clients = Clients(config.proxies, config.connections_per_client)
        self.gone: dict[str, Gone] = {}  # listed shares no longer routed, oldest first

    def register(self, tunnel: Tunnel) -> None:
        for share in tunnel.shares:
            previous = self.routes.get(share.share_id)
            if previous is not None and previous[0] is not tunnel:
                log.info("share %s moves to a new tunnel of the same owner", share.share_id)
            self.routes[share.share_id] = (tunnel, share)
            self.gone.pop(share.share_id, None)

    def unregister(self, tunnel: Tunnel, share_ids: set[str]) -> None:
        for share_id in share_ids:
            route = self.routes.get(share_id)
            if route is not None and route[0] is tunnel:
                del self.routes[share_id]
                if route[1].listed:
                    self._went(
                        share_id, Gone(route[1], tunnel.owner_key, tunnel.client, time.time())
                    )

    def _went(self, share_id: str, gone: Gone) -> None:
        self.gone.pop(share_id, None)
        self.gone[share_id] = gone
        cutoff = time.time() - GONE_KEPT_S
        for old in [sid for sid, g in self.gone.items() if g.when < cutoff]:
            del self.gone[old]
        while len(self.gone) > GONE_KEPT:
            del self.gone[next(iter(self.gone))]

    def stale(self, tunnel: Tunnel) -> bool:
        return (
            time.monotonic() - tunnel.last_seen > self.config.heartbeat_s * self.config.missed_beats
        )

    async def heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            for tunnel in list(self.tunnels):
                if self.stale(tunnel):
                    log.info("closing a stale tunnel (%d shares)", len(tunnel.shares))
                    tunnel.close("the owner stopped answering")
                    self.tunnels.discard(tunnel)
                else:
                    tunnel.conn.ping(b"hb")
                    await tunnel.flush()
