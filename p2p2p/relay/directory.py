"""What a relay shows of itself: ``/`` (the shares owners chose to list) and ``/healthz``."""

from __future__ import annotations

import collections
import html
import json
import time
from typing import Any

import tornado.web

from ..identity import fingerprint
from .routes import Relay

__all__ = [
    "LISTED_PER_ADDRESS",
    "LISTED_PER_OWNER",
    "DirectoryHandler",
    "HealthHandler",
    "listed_shares",
]

LISTED_PER_OWNER = 3
# Keys cost nothing, addresses a little more: many fresh keys from one client address
# still get only this many lines in all.
LISTED_PER_ADDRESS = 6
TITLE_CHARS = 80


class HealthHandler(tornado.web.RequestHandler):
    def initialize(self, relay: Relay) -> None:
        self.relay = relay

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(
            json.dumps(
                {"ok": True, "tunnels": len(self.relay.tunnels), "shares": len(self.relay.routes)}
            )
        )


class DirectoryHandler(tornado.web.RequestHandler):
    """Shares whose owners chose ``--listed``; nothing else is ever shown."""

    def initialize(self, relay: Relay) -> None:
        self.relay = relay

    def get(self) -> None:
        listed = listed_shares(self.relay)
        if "application/json" in self.request.headers.get("Accept", ""):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"shares": listed}))
            return
        rows = "".join(
            f"<li><b>{html.escape(str(s['title'] or s['name']))}</b> "
            f"<code>{html.escape(str(s['share_id']))}</code> "
            f"{'online' if s['online'] else 'offline'}{_seen(s)} · owner key "
            f"<code>{html.escape(str(s['owner_key']))}</code></li>"
            for s in listed
        )
        self.finish(
            "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            "<title>p2p2p relay</title><h1>p2p2p relay</h1>"
            "<p>Listed shares (owners opt in; links carry their own access tokens). Names and "
            "titles are their owners' words: this relay checks neither, and no share ever "
            "asks you for a token here. Compare a share's owner key with the one its owner "
            f"gave you.</p><ul>{rows or '<li>none</li>'}</ul>"
        )


def listed_shares(relay: Relay) -> list[dict[str, Any]]:
    """The directory's lines: opted-in shares, a few per owner key and per address.

    A key (or an address) that lists dozens of shares ("official copy, paste your token
    at …") gets a few lines, no more. Each line names its owner key, the one thing on it
    the relay has checked.
    """
    listed = []
    per_owner: collections.Counter[bytes] = collections.Counter()
    per_address: collections.Counter[str] = collections.Counter()
    now = time.time()
    lines = [
        (sid, share, tunnel.owner_key, tunnel.client, not relay.stale(tunnel), now)
        for sid, (tunnel, share) in sorted(relay.routes.items())
    ] + [  # went away lately: offline, with when they were last seen, newest first
        (sid, g.share, g.owner_key, g.client, False, g.when)
        for sid, g in reversed(relay.gone.items())
    ]
    for sid, share, owner_key, client, online, seen in lines:
        if not share.listed:
            continue
        per_owner[owner_key] += 1
        address = client if relay.clients.limited(client) else ""
        per_address[address] += 1
        if per_owner[owner_key] > LISTED_PER_OWNER or (
            address and per_address[address] > LISTED_PER_ADDRESS
        ):
            continue
        listed.append(
            {
                "share_id": sid,
                "name": share.name,
                "title": share.title[:TITLE_CHARS],
                "online": online,
                "last_seen": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seen)),
                "owner_key": fingerprint(owner_key),
            }
        )
    return listed


def _seen(line: dict[str, Any]) -> str:
    if line["online"]:
        return ""
    return f" (last seen {html.escape(str(line['last_seen']).replace('T', ' ').rstrip('Z'))} UTC)"
