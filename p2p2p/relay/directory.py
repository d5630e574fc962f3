"""What a relay shows of itself: ``/`` (the shares owners chose to list) and ``/healthz``."""

from __future__ import annotations

import html
import json

import tornado.web

from .routes import Relay

__all__ = ["LISTED_PER_OWNER", "DirectoryHandler", "HealthHandler"]

LISTED_PER_OWNER = 3
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
        listed = []
        per_owner: dict[bytes, int] = {}
        for sid, (tunnel, share) in sorted(self.relay.routes.items()):
            if not share.listed:
                continue
            # Keys cost nothing, but one tunnel serves one key: a key that lists dozens of
            # shares ("official copy, paste your token at …") gets a few lines, no more.
            seen = per_owner[tunnel.owner_key] = per_owner.get(tunnel.owner_key, 0) + 1
            if seen > LISTED_PER_OWNER:
                continue
            listed.append(
                {
                    "share_id": sid,
                    "name": share.name,
                    "title": share.title[:TITLE_CHARS],
                    "online": not self.relay.stale(tunnel),
                }
            )
        if "application/json" in self.request.headers.get("Accept", ""):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"shares": listed}))
            return
        rows = "".join(
            f"<li><b>{html.escape(str(s['title'] or s['name']))}</b> "
            f"<code>{html.escape(str(s['share_id']))}</code> {'online' if s['online'] else 'offline'}</li>"
            for s in listed
        )
        self.finish(
            "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            "<title>p2p2p relay</title><h1>p2p2p relay</h1>"
            "<p>Listed shares (owners opt in; links carry their own access tokens). Names and "
            "titles are their owners' words: this relay checks neither, and no share ever "
            f"asks you for a token here.</p><ul>{rows or '<li>none</li>'}</ul>"
        )
