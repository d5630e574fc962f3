"""``/s/<id>/.p2p2p/queue``: notes for a share whose owner is away (``relay.mailbox``).

``GET`` gives the owner's key and name as this relay last saw them (the sender checks
them against the share id before sealing anything); ``POST`` queues one sealed note
while the share is offline; ``DELETE …/queue/<item>`` with the sender's secret takes
one back before it is delivered.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time

import tornado.web

from ..errors import NoteRefused
from ..identity import b64
from ..protocol.mailbox import MAX_SEALED
from .forward import client_of, json_error, other_shares_origin
from .routes import Relay

__all__ = ["QUEUE_PATH", "QueueHandler"]

QUEUE_PATH = r"/s/([a-z2-7]{32})/\.p2p2p/queue(?:/([0-9a-f]{32}))?"
RETRACT_HEADER = "X-P2P2P-Retract"
_TAG = re.compile(r"[0-9a-f]{64}")


class QueueHandler(tornado.web.RequestHandler):
    relay: Relay

    def initialize(self, relay: Relay) -> None:
        self.relay = relay

    def check_xsrf_cookie(self) -> None:
        pass  # no cookies are read here

    def prepare(self) -> None:
        self.set_header("Cache-Control", "no-store")

    def _owner(self, share_id: str) -> tuple[bytes, str] | None:
        if other_shares_origin(self.request, share_id):
            json_error(self, 404, "not_found", "this address belongs to another share")
            return None
        known = self.relay.mailbox.owner_of(share_id)
        if known is None:
            json_error(
                self, 404, "not_found",
                "this relay has not carried that share since it started: notes cannot wait here",
            )  # fmt: skip
        return known

    def get(self, share_id: str, item: str | None) -> None:
        known = self._owner(share_id)
        if known is None:
            return
        self.finish(
            {
                "owner": b64(known[0]),
                "name": known[1],
                "online": share_id in self.relay.routes,
                "ttl_s": self.relay.mailbox.ttl_s,
            }
        )

    def post(self, share_id: str, item: str | None) -> None:
        if item is not None or self._owner(share_id) is None:
            return
        if share_id in self.relay.routes:
            json_error(self, 409, "online", "the share is online: send the note to its owner")
            return
        try:
            body = json.loads(self.request.body)
            sealed = base64.b64decode(str(body["sealed"]), validate=True)
            tag = str(body["tag"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            json_error(self, 400, "bad_parameters", "a queued note is {sealed, tag}")
            return
        if not 48 < len(sealed) <= MAX_SEALED or not _TAG.fullmatch(tag):
            json_error(self, 400, "bad_parameters", "not a sealed note")
            return
        try:
            queued = self.relay.mailbox.post(
                share_id, client_of(self.relay, self.request), sealed, tag
            )
        except NoteRefused as exc:
            json_error(self, 429, exc.code, exc.message)
            return
        self.finish(
            {"id": queued.id, "expires": time.time() + self.relay.mailbox.ttl_s, "kept": "memory"}
        )

    def delete(self, share_id: str, item: str | None) -> None:
        if item is None or self._owner(share_id) is None:
            return
        secret = self.request.headers.get(RETRACT_HEADER, "")
        if not self.relay.mailbox.retract(share_id, item, secret[:100]):
            json_error(
                self, 404, "not_found", "no such waiting note (delivered, expired or not yours)"
            )
            return
        self.finish({"retracted": item})
