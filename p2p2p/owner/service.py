"""Everything an owner runs, as one service: shares, tunnels to relays, an embedded relay.

The Jupyter server extension hosts it on the server's event loop, so shares outlive
kernel restarts and end with the server. Without the extension (plain IPython, a script)
the kernel hosts the same service on a private loop thread. Every method is a coroutine
on the hosting loop; blocking work (starting workers, closing them) runs on threads.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

import tornado.httpserver

from ..aio import spawn
from ..aio.web import listen
from ..client.target import MAX_RELAYS
from ..errors import BadLimits, P2P2PError, ShareExists, ShareOffline, UnknownShare
from ..identity import Identity
from ..paths import config_dir, record_embedded_relay
from ..protocol.shareid import check_name, name_from_path, share_id
from ..relay import RelayConfig, make_app
from ..store.file import check_store_file
from ..store.limits import Limits
from .links import kept_token
from .pulls import pullable
from .shares import Share, ShareManager, open_store
from .signin import SESSION_TTL_S
from .snapshots import remove_snapshot
from .tunnel import TunnelClient
from .viewers import Viewer
from .voila import VOILA_PATHS, DashboardServer

RELAY_ENV = "P2P2P_RELAY"
EMBEDDED_PORT = 8765  # tried first so links look alike from run to run; else any free port
REGISTER_TIMEOUT_S = 15.0


def configured_relay() -> str | None:
    """The relay to use when ``%share`` names none: ``$P2P2P_RELAY``, then the ``relay``
    key of ``config.json`` in the config directory; None means the embedded relay."""
    if os.environ.get(RELAY_ENV):
        return os.environ[RELAY_ENV].rstrip("/")
    path = config_dir() / "config.json"
    try:
        relay = json.loads(path.read_text()).get("relay")
    except (OSError, ValueError, AttributeError):
        return None
    return str(relay).rstrip("/") if relay else None


def _lan_address() -> str:
    """This machine's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing lookup only
            return str(probe.getsockname()[0])
        except OSError:
            return socket.gethostname()


class EmbeddedRelay:
    """A relay inside the owner's process, for when none is configured."""

    def __init__(self, host: str) -> None:
        self.host = host
        app, self.relay = make_app(RelayConfig())
        try:
            self.server, self.port = listen(app, host, EMBEDDED_PORT)
        except OSError:
            self.server, self.port = listen(app, host, 0)
        self._heartbeat = spawn(self.relay.heartbeat())
        shown = _lan_address() if host in ("0.0.0.0", "::", "") else host
        if ":" in shown:
            shown = f"[{shown}]"
        self.url = f"http://{shown}:{self.port}"
        # The owner's own tunnel dials the relay on loopback whatever address it shows.
        self.dial_url = f"http://127.0.0.1:{self.port}" if shown != host else self.url
        record_embedded_relay(self.url, _this_process())

    def close(self) -> None:
        self.server.stop()
        self._heartbeat.cancel()
        for tunnel in list(self.relay.tunnels):
            tunnel.close("the embedded relay stopped")
        server: tornado.httpserver.HTTPServer = self.server
        spawn(server.close_all_connections())


def _this_process() -> str:
    """Which kind of process this is (``paths.PROCESS_KINDS``)."""
    words = " ".join(sys.argv[:3]).lower()
    if "jupyter" in words or "voila" in words:
        return "jupyter"
    return "share" if "p2p2p" in words else "python"


class OwnerService:
    def __init__(self, identity: Identity, relay: str | None = None) -> None:
        self.manager = ShareManager(identity)
        self.relay = relay.rstrip("/") if relay else None
        # One tunnel per (relay, share): a relay fleet behind a load balancer routes by
        # share id, so a share's tunnel and its viewers meet on the same relay process.
        self.tunnels: dict[tuple[str, str], tuple[TunnelClient, asyncio.Task[None]]] = {}
        self.embedded: dict[str, EmbeddedRelay] = {}
        self.links: dict[str, str] = {}  # share id -> link; in memory only
        self.embedded_urls: set[str] = set()
        self.dashboards: dict[str, DashboardServer] = {}  # share id -> its Voila
        self._lock = asyncio.Lock()  # one share/unshare at a time

    # -- sharing -------------------------------------------------------------------
    async def share(
        self,
        path: str,
        name: str | None = None,
        listed: bool = False,
        title: str = "",
        relay: str | Sequence[str] | None = None,
        host: str | None = None,
        limits: dict[str, Any] | None = None,
        snapshot: dict[str, str] | None = None,
        refresh: bool = False,
        upstream: str = "",
        dashboard: bool | str = False,
        max_viewers: int | None = None,
        viewers: list[dict[str, Any]] | None = None,
        require_key: bool = False,
        browser_session_s: float | None = None,
        allow_pull: list[str] | str | None = None,
        exports: bool = True,
        keep_link: bool = False,
        rotate_link: bool = False,
        standby: bool = False,
    ) -> dict[str, Any]:
        """Share ``path``; with ``refresh``, serve a new copy under an existing share's
        link instead (after a new snapshot). ``keep_link``: the same link as the last
        start with it (``owner.links``); ``rotate_link``: a new lasting link now, and a
        share already running under the old one is restarted with it. Returns the
        share's status. ``standby``: when another live process with this key serves
        the share, wait and take over when it stops, instead of being refused."""
        resolved = check_store_file(path, "share")
        invited = [Viewer.from_dict(v, "viewer: ") for v in viewers or []]
        source = (snapshot or {}).get("source") or resolved
        name = check_name(name or name_from_path(source))
        try:
            share_limits = Limits(**(limits or {}))
        except (TypeError, ValueError) as exc:
            raise BadLimits(f"bad share limits: {exc}") from None
        async with self._lock:
            existing = next((s for s in self.manager.shares.values() if s.name == name), None)
            if existing is not None and refresh:
                return await self._replace_store(existing, resolved, share_limits, snapshot)
            if existing is not None and rotate_link:
                await self._remove(existing)  # the old link stops answering now
                existing = None
            if existing is not None and _source(existing) == source:
                # Running the notebook again: the same file under the same name is the
                # share that is already live (same link), not an error.
                if snapshot is not None:
                    remove_snapshot(resolved)
                return {**self.status(existing), "reused": True}
            if existing is not None:
                raise ShareExists(
                    f"a share named {name!r} is already active: %unshare {name} first, "
                    "pass --name for a second share of it, or --refresh to serve the file anew"
                )
            relays = [relay] if isinstance(relay, str) else list(relay or [])
            relay_url, dial_url = self._relay_for(relays[0] if relays else None, host)
            also = self._other_relays(relays[1:], relay_url)
            server = None
            if dashboard:
                notebook = dashboard if isinstance(dashboard, str) else None
                server = DashboardServer(
                    share_id(self.manager.identity.public_key, name), notebook, title or name
                )
                upstream = server.url
            executor = await asyncio.to_thread(open_store, resolved, share_limits)
            try:
                pulls = await asyncio.to_thread(pullable, executor, allow_pull or [])
            except P2P2PError:
                await asyncio.to_thread(executor.close)
                raise
            sid = share_id(self.manager.identity.public_key, name)
            lasting = None
            if keep_link or rotate_link:
                lasting = await asyncio.to_thread(
                    kept_token, self.manager.identity, self.manager.base_dir, sid, rotate_link
                )
            share, token = self.manager.add(
                resolved,
                name,
                listed=listed,
                limits=share_limits,
                title=title,
                relay=dial_url,
                snapshot=snapshot,
                executor=executor,
                upstream=upstream,
                viewers=invited,
                require_key=require_key,
                session_ttl_s=browser_session_s or SESSION_TTL_S,
                token=lasting,
            )
            if server is not None:
                share.upstream_paths = VOILA_PATHS  # Voila's own pages and kernels only
            if max_viewers is not None:
                share.max_viewers = max(1, int(max_viewers))
            share.allow_pull = pulls
            share.exports = bool(exports)
            share.also = tuple(also)
            self.links[share.share_id] = self.manager.link(relay_url, share, token, also)
            if share.viewers is not None:  # invite links name the share without its token
                url = f"{relay_url.rstrip('/')}/s/{share.share_id}/"
                await asyncio.to_thread(share.viewers.set_url, url)
            tunnels = [self._tunnel(url, share.share_id, standby) for url in (dial_url, *also)]
            if not await _registered_somewhere(tunnels, share.share_id):
                reasons = []
                for url, tunnel in zip((relay_url, *also), tunnels, strict=True):
                    reason = tunnel.refused.get(share.share_id) or tunnel.refusal
                    said = f", the relay said: {reason!r}" if reason else ""
                    reasons.append(f"{url} (tunnel {tunnel.state}{said})")
                await self._remove(share)
                raise ShareOffline(
                    f"no relay accepted the share within {REGISTER_TIMEOUT_S:g} s: "
                    f"{'; '.join(reasons)}. Check the relay URL, or leave --relay out to "
                    "use a relay on this machine"
                )
            if server is not None:
                # Voila starts once the link works: its pre-started kernel runs the
                # dashboard at once, and that queries the share through its link.
                try:
                    await server.start(
                        self.links[share.share_id],
                        share.max_viewers,
                        identified=bool(share.viewers and share.viewers.identified),
                    )
                except P2P2PError:
                    await self._remove(share)
                    raise
                self.dashboards[share.share_id] = server
            return self.status(share)

    async def _replace_store(
        self,
        share: Share,
        path: str,
        limits: Limits,
        snapshot: dict[str, str] | None,
    ) -> dict[str, Any]:
        executor = await asyncio.to_thread(open_store, path, limits)
        old_executor, old_path, old_snapshot = share.executor, share.path, share.snapshot
        share.executor, share.path, share.snapshot = executor, path, snapshot
        await asyncio.to_thread(old_executor.close)
        if old_snapshot is not None and old_path != path:
            remove_snapshot(old_path)
        return self.status(share)

    async def unshare(self, name: str | None = None) -> list[str]:
        """Stop one share (None: all of them); returns the names stopped."""
        async with self._lock:
            targets = (
                list(self.manager.shares.values()) if name is None else [self.manager.find(name)]
            )
            for share in targets:
                await self._remove(share)
            return [share.name for share in targets]

    async def _remove(self, share: Share) -> None:
        # Open dashboard pages notice by themselves within seconds (owner.api.live).
        self.manager.remove(share.share_id, close=False)  # unreachable from here on
        self.links.pop(share.share_id, None)
        server = self.dashboards.pop(share.share_id, None)
        if server is not None:
            await server.stop()
        await asyncio.to_thread(share.executor.close)
        if share.snapshot is not None:
            remove_snapshot(share.path)
        self._drop_idle()

    def _drop_idle(self) -> None:
        """Close tunnels no share uses any more.

        An embedded relay stays until the service stops: unsharing the last share must
        not take down the relay another notebook (or the next share) relies on, and a
        link of a revoked share should get "offline or revoked" from it, not a refused
        connection.
        """
        used = {
            (url, s.share_id) for s in self.manager.shares.values() for url in (s.relay, *s.also)
        }
        for key in list(self.tunnels):
            if key not in used:
                _client, task = self.tunnels.pop(key)
                task.cancel()

    def _relay_for(self, relay: str | None, host: str | None) -> tuple[str, str]:
        """(URL shown in links, URL the tunnel dials) for a new share."""
        chosen = relay or self.relay or configured_relay()
        if chosen:
            if host:
                raise P2P2PError("--host applies to the relay on this machine, not to --relay")
            if not chosen.startswith(("http://", "https://")):
                raise P2P2PError(f"the relay URL must start with http:// or https://: {chosen}")
            return chosen.rstrip("/"), chosen.rstrip("/")
        host = host or "127.0.0.1"
        embedded = self.embedded.get(host)
        if embedded is None:
            embedded = self.embedded[host] = EmbeddedRelay(host)
            self.embedded_urls.add(embedded.url)
        return embedded.url, embedded.dial_url

    def _other_relays(self, relays: list[str], first: str) -> list[str]:
        """The share's other relays (``--relay`` given again): public ones only, since a
        relay on this machine is already the first."""
        also: list[str] = []
        for url in relays:
            if not url.startswith(("http://", "https://")):
                raise P2P2PError(f"the relay URL must start with http:// or https://: {url}")
            url = url.rstrip("/")
            if url != first and url not in also:
                also.append(url)
        if len(also) >= MAX_RELAYS:
            raise P2P2PError(f"a share goes through at most {MAX_RELAYS} relays")
        return also

    def _tunnel(self, url: str, sid: str, standby: bool = False) -> TunnelClient:
        entry = self.tunnels.get((url, sid))
        if entry is not None and not entry[1].done():
            return entry[0]
        client = TunnelClient(url, self.manager, standby=standby, share_id=sid)
        self.tunnels[(url, sid)] = (client, spawn(client.run()))
        return client

    # -- status --------------------------------------------------------------------
    def status(self, share: Share | str) -> dict[str, Any]:
        if isinstance(share, str):
            share = self.manager.find(share)
        entry = self.tunnels.get((share.relay, share.share_id))
        tunnel = entry[0] if entry else None
        relays = []
        for url in (share.relay, *share.also):
            each = self.tunnels.get((url, share.share_id))
            relays.append({"url": url, "state": _state(each[0] if each else None, share)})
        link = self.links.get(share.share_id, "")
        shown_relay = link.split("/s/", 1)[0] if link else share.relay
        try:
            size = os.path.getsize(share.path)
        except OSError:
            size = 0
        return {
            "name": share.name,
            "share_id": share.share_id,
            "link": link,
            "path": share.path,
            "size_bytes": size,
            "snapshot": share.snapshot,
            "relay": shown_relay,
            "relay_embedded": shown_relay in self.embedded_urls,
            "relay_state": _state(tunnel, share),
            "relays": relays,
            "listed": share.listed,
            "title": share.title,
            "allow_pull": sorted(share.allow_pull),
            "exports": share.exports,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(share.started)),
            "viewers_now": sum(
                t.active_requests(share.share_id)
                for t, _task in (
                    self.tunnels.get((u, share.share_id)) or (None, None)
                    for u in (share.relay, *share.also)
                )
                if t is not None
            ),
            "queries": share.queries,
            "bytes_out": share.bytes_out,
            "recent_audit": [
                {
                    k: entry.get(k)
                    for k in (
                        "time",
                        "client",
                        "viewer",
                        "claimed_session",
                        "channel",
                        "outcome",
                        "rows",
                        "statement",
                    )
                }
                for entry in reversed(share.audit.recent)
            ][:10],
            "active": share.share_id in self.manager.shares,
            "identified": bool(share.viewers and share.viewers.identified),
            "viewers": [
                {**v, "last_query": share.viewer_seen.get(v["name"])}
                for v in (share.viewers.listing() if share.viewers else [])
            ],
            "dashboard": share.share_id in self.dashboards,
        }

    def shares(self) -> list[dict[str, Any]]:
        return [self.status(s) for s in sorted(self.manager.shares.values(), key=lambda s: s.name)]

    def find_status(self, name: str) -> dict[str, Any] | None:
        try:
            return self.status(name)
        except UnknownShare:
            return None

    async def close(self) -> None:
        """Revoke everything: the relay forgets every share of this service at once."""
        try:
            await self.unshare(None)
        finally:
            for _client, task in self.tunnels.values():
                task.cancel()
            self.tunnels.clear()
            for embedded in self.embedded.values():
                embedded.close()
            self.embedded.clear()


def _state(tunnel: TunnelClient | None, share: Share) -> str:
    """How a relay has the share: connected, standby (another process serves it there
    now), reconnecting, refused, or stopped."""
    if tunnel is None:
        return "stopped"
    if share.share_id in tunnel.standby_ids:
        return "standby"
    return "connected" if tunnel.state == "standby" else tunnel.state


OTHERS_S = 2.0  # once one relay took a share, how long the others get before status shows


async def _registered_somewhere(tunnels: list[TunnelClient], share_id: str) -> bool:
    """Whether any of ``tunnels`` got ``share_id`` confirmed in time. The share is live
    as soon as one relay has it; the others get a moment more, then go on reconnecting by
    themselves (a relay that is down now takes the share when it is back)."""
    waits = [
        asyncio.ensure_future(t.wait_registered(share_id, REGISTER_TIMEOUT_S)) for t in tunnels
    ]
    try:
        pending = set(waits)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(task.result() for task in done):
                if pending:
                    await asyncio.wait(pending, timeout=OTHERS_S)
                return True
        return False
    finally:
        for task in waits:
            task.cancel()


def _source(share: Share) -> str:
    return (share.snapshot or {}).get("source") or share.path
