"""Owners' tunnels as the relay holds them: ``/tunnel``, registration, then streams.

An owner dials in over a websocket, answers a fresh challenge by signing its share
list (``protocol.registration``), and from then on answers the requests the relay opens
as streams on that websocket (``aio.tunnel``). A tunnel serves one owner key; it may add
shares later by asking for a new challenge, without cutting the others' requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import tornado.websocket

from ..aio import spawn
from ..aio.tunnel import TunnelConnection
from ..errors import RegistrationRefused, RemoteProtocolError
from ..identity import b64
from ..protocol import mailbox, registration
from .routes import Relay

__all__ = ["Tunnel", "TunnelHandler"]

log = logging.getLogger("p2p2p.relay")


class Tunnel(TunnelConnection):
    """The relay's end of one owner's tunnel (it opens the streams)."""

    def __init__(self, handler: TunnelHandler, relay: Relay) -> None:
        super().__init__(initiator=True, write=self._write_frame)
        self.handler = handler
        self.relay = relay
        self.challenge = registration.new_challenge()
        self.owner_key = b""
        self.shares: list[registration.ShareAd] = []
        self.last_seen = time.monotonic()
        self.registered = asyncio.Event()
        self.instance = ""  # the owner process's own random id (reconnects keep it)
        # Whether this process waits for a share another live process serves, instead
        # of being refused (``share --standby``; also a process that served before).
        self.standby = False
        self.client = relay.clients.of(handler.request)  # who opened it

    async def _write_frame(self, frame: bytes) -> None:
        await self.handler.write_message(frame, binary=True)

    def on_write_failed(self) -> None:
        self.close("tunnel closed")

    def receive(self, message: bytes) -> None:
        self.last_seen = time.monotonic()
        super().receive(message)

    def on_control(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "register" and self.challenge:
            challenge, self.challenge = self.challenge, ""  # each challenge answers once
            try:
                owner_key, shares = registration.check(message, challenge)
                if self.registered.is_set() and owner_key != self.owner_key:
                    raise RegistrationRefused("a tunnel serves one owner key")
                self.instance = str(message.get("instance") or "")[:64]
                self.standby = bool(message.get("standby"))
            except RegistrationRefused as exc:
                self.conn.control({"type": "refused", "message": exc.message})
                spawn(self._refuse())
                return
            taken = self._taken(shares)
            waiting = set(taken) if self.standby else set()
            refused = {} if self.standby else taken
            shares = [s for s in shares if s.share_id not in refused]
            # A re-registration replaces the share list: what is no longer there is gone.
            dropped = {s.share_id for s in self.shares} - {s.share_id for s in shares}
            self.owner_key, self.shares = owner_key, shares
            self.relay.unregister(self, dropped)
            active = self.relay.register(self, waiting)
            self.registered.set()
            self.conn.control(
                {
                    "type": "registered",
                    "shares": sorted(active),
                    "standby": sorted({s.share_id for s in shares} - active),
                    "refused": refused,
                }
            )
            for share_id in sorted(active):
                self.deliver(share_id)
            self.flush_soon()
        elif kind == "rechallenge" and self.registered.is_set():
            # The owner adds shares without reconnecting (which would cut the others'
            # requests): it gets a fresh challenge to sign the new list with.
            self.challenge = registration.new_challenge()
            self.conn.control({"type": "challenge", "challenge": self.challenge})
            self.flush_soon()
        elif kind == "delivered":
            # The owner took these (kept, or refused for good): forget them, send more.
            share_id = str(message.get("share", ""))
            route = self.relay.routes.get(share_id)
            if route is not None and route[0] is self:
                ids = [str(i) for i in message.get("ids", [])][: mailbox.BATCH]
                self.relay.mailbox.delivered(share_id, ids)
                self.deliver(share_id)
        elif kind == "unregister":
            gone = {str(s) for s in message.get("shares", [])}
            self.shares = [s for s in self.shares if s.share_id not in gone]
            self.relay.unregister(self, gone)

    def _taken(self, shares: list[registration.ShareAd]) -> dict[str, str]:
        """Shares already served by another live process of the same owner, and why each
        stays with it: the newcomer is told so instead of silently taking the route (and
        leaving the first one's link dead once it stops). A reconnecting process sends
        the same instance id and gets its shares back; the others' shares on this tunnel
        are registered as usual."""
        taken = {}
        for ad in shares:
            route = self.relay.routes.get(ad.share_id)
            if route is None or route[0] is self:
                continue
            other = route[0]
            if other.closed or self.relay.stale(other) or not other.instance:
                continue
            if self.instance and other.instance != self.instance:
                taken[ad.share_id] = (
                    f"the share {ad.name!r} is already being served through this relay by "
                    "another process with the same key: stop that one first, or start "
                    "this one with --standby to take over when it stops"
                )
        return taken

    def deliver(self, share_id: str) -> None:
        """The next batch of notes that waited for this share, if any."""
        items = self.relay.mailbox.pending(share_id, mailbox.BATCH)
        if not items:
            return
        self.conn.control(
            {
                "type": "queued",
                "share": share_id,
                "notes": [{"id": q.id, "sealed": b64(q.sealed), "queued": q.queued} for q in items],
            }
        )
        self.flush_soon()

    def promoted(self, share_ids: list[str]) -> None:
        """This standby tunnel now carries ``share_ids``: the owner starts answering."""
        self.conn.control({"type": "promoted", "shares": share_ids})
        self.flush_soon()

    async def _refuse(self) -> None:
        await self.flush()  # the owner learns why before the socket closes
        self.handler.close(4003, "registration refused")

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.cut("offline", reason)
        self.relay.unregister(self, {s.share_id for s in self.shares})
        self.handler.close()


class TunnelHandler(tornado.websocket.WebSocketHandler):
    relay: Relay
    tunnel: Tunnel

    def initialize(self, relay: Relay) -> None:
        self.relay = relay

    def check_origin(self, origin: str) -> bool:
        return True  # owners are programs, not pages; they prove themselves by signature

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.tunnel = Tunnel(self, self.relay)
        self.relay.tunnels.add(self.tunnel)
        self.set_nodelay(True)
        self.tunnel.conn.control({"type": "challenge", "challenge": self.tunnel.challenge})
        # Nothing is awaited here: tornado delivers no message until open() returns.
        self.tunnel.flush_soon()
        spawn(self._expect_registration())

    async def _expect_registration(self) -> None:
        try:
            await asyncio.wait_for(
                self.tunnel.registered.wait(), self.relay.config.register_timeout_s
            )
        except TimeoutError:
            self.close(4008, "no registration in time")

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.close(4002, "binary frames only")
            return
        try:
            self.tunnel.receive(message)
        except RemoteProtocolError as exc:
            log.info("closing a tunnel that broke the protocol: %s", exc)
            self.close(4002, "protocol error")
            return
        self.tunnel.flush_soon()

    def on_close(self) -> None:
        self.tunnel.close("tunnel closed")
        self.relay.tunnels.discard(self.tunnel)
