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

from ..protocol.mailbox import TTL_S
from ..protocol.registration import ShareAd
from .clients import CONNECTIONS_PER_CLIENT, LOOPBACK, Clients, Network
from .mailbox import Mailbox

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
    queue_ttl_s: float = TTL_S  # how long a note for an offline share waits (--queue-ttl)


class Relay:
    """Which tunnel serves which share; the tunnels open now."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.routes: dict[str, tuple[Tunnel, ShareAd]] = {}
        # Live tunnels of other processes with the share's key, waiting to take it over
        # when the routed one goes (``share --standby``), first come first served.
        self.standby: dict[str, list[tuple[Tunnel, ShareAd]]] = {}
        self.tunnels: set[Tunnel] = set()
        self.clients = Clients(config.proxies, config.connections_per_client)
        self.gone: dict[str, Gone] = {}  # listed shares no longer routed, oldest first
        self.mailbox = Mailbox(config.queue_ttl_s)  # notes waiting for owners who are away

    def register(self, tunnel: Tunnel, waiting: set[str] | None = None) -> set[str]:
        """Route ``tunnel``'s shares to it, except those in ``waiting`` (another live
        process has them): it stands by for those. Returns the ids routed to it."""
        active = set()
        for share in tunnel.shares:
            queue = self.standby.setdefault(share.share_id, [])
            queue[:] = [entry for entry in queue if entry[0] is not tunnel]
            if waiting and share.share_id in waiting:
                queue.append((tunnel, share))
                continue
            if not queue:
                del self.standby[share.share_id]
            previous = self.routes.get(share.share_id)
            if previous is not None and previous[0] is not tunnel:
                log.info("share %s moves to a new tunnel of the same owner", share.share_id)
            self.routes[share.share_id] = (tunnel, share)
            self.gone.pop(share.share_id, None)
            self.mailbox.seen(share.share_id, tunnel.owner_key, share.name)
            active.add(share.share_id)
        return active

    def unregister(self, tunnel: Tunnel, share_ids: set[str]) -> None:
        for share_id in share_ids:
            queue = self.standby.get(share_id)
            if queue is not None:
                queue[:] = [entry for entry in queue if entry[0] is not tunnel]
            route = self.routes.get(share_id)
            if route is not None and route[0] is tunnel:
                del self.routes[share_id]
                if self._take_over(share_id):
                    continue
                if route[1].listed:
                    self._went(
                        share_id, Gone(route[1], tunnel.owner_key, tunnel.client, time.time())
                    )
            if queue is not None and not queue:
                self.standby.pop(share_id, None)

    def _take_over(self, share_id: str) -> bool:
        """The first live standby of ``share_id`` gets its route (the owner's process
        that stopped is not coming back on that tunnel)."""
        queue = self.standby.get(share_id) or []
        while queue:
            tunnel, share = queue.pop(0)
            if tunnel.closed or self.stale(tunnel):
                continue
            self.routes[share_id] = (tunnel, share)
            log.info("share %s taken over by a standby process", share_id)
            tunnel.promoted([share_id])
            tunnel.deliver(share_id)
            return True
        return False

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
