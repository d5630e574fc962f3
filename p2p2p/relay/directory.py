"""What a relay shows of itself: ``/`` (the shares owners chose to list) and ``/healthz``."""

from __future__ import annotations

import html
import json

import tornado.web

from .routes import Relay

__all__ = ["DirectoryHandler", "HealthHandler"]


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
        listed = [
            {
                "share_id": sid,
                "name": share.name,
                "title": share.title,
                "online": not self.relay.stale(tunnel),
            }
            for sid, (tunnel, share) in sorted(self.relay.routes.items())
            if share.listed
        ]
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
            f"<p>Listed shares (owners opt in; links carry their own access tokens):</p><ul>{rows or '<li>none</li>'}</ul>"
        )
