"""The local control endpoint: how kernels ask the server extension to share and unshare.

It listens on loopback only, on its own port (none of the Jupyter server's API is behind
it, and no Jupyter token is needed or used), and answers only callers that present the
per-server secret the extension handed to its kernels through their environment.
Browsers are refused outright (any ``Origin`` header), so a web page cannot drive it.

    GET    /shares           every active share's status
    GET    /shares/NAME      one share's status
    POST   /shares           {"path", "name", "listed", "title", "relay", "host", "limits",
                              "snapshot", "refresh"} -> the new share's status
    DELETE /shares/NAME      stop one share ("*": all) -> {"stopped": [names]}
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import tornado.web

from ..aio.web import quiet_log
from ..errors import P2P2PError, UnknownShare
from ..owner.service import OwnerService

URL_ENV = "P2P2P_CONTROL_URL"
SECRET_ENV = "P2P2P_CONTROL_SECRET"
LOOPBACK = ("127.0.0.1", "::1")
SHARE_FIELDS = (
    "path",
    "name",
    "listed",
    "title",
    "relay",
    "host",
    "limits",
    "snapshot",
    "refresh",
    "dashboard",
    "max_viewers",
    "viewers",
    "require_key",
    "browser_session_s",
    "allow_pull",
    "exports",
    "keep_link",
    "rotate_link",
    "standby",
)
MAX_BODY = 64 << 10


class ControlHandler(tornado.web.RequestHandler):
    service: OwnerService
    secret: str

    def initialize(self, service: OwnerService, secret: str) -> None:
        self.service = service
        self.secret = secret

    def check_xsrf_cookie(self) -> None:
        pass  # no cookies here: the bearer secret is the credential

    def prepare(self) -> None:
        scheme, _, presented = self.request.headers.get("Authorization", "").partition(" ")
        allowed = (
            self.request.remote_ip in LOOPBACK
            and "Origin" not in self.request.headers
            and scheme.lower() == "bearer"
            and hmac.compare_digest(presented.strip().encode(), self.secret.encode())
        )
        if not allowed:
            self.answer(403, {"error": "forbidden", "message": "not a kernel of this server"})

    def answer(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def fail(self, exc: P2P2PError) -> None:
        self.answer(404 if isinstance(exc, UnknownShare) else 400, exc.to_dict())

    def get(self, name: str | None = None) -> None:
        if name is None:
            self.answer(200, {"shares": self.service.shares()})
            return
        try:
            self.answer(200, self.service.status(name))
        except P2P2PError as exc:
            self.fail(exc)

    async def post(self, name: str | None = None) -> None:
        if name is not None or len(self.request.body) > MAX_BODY:
            self.answer(400, {"error": "bad_request", "message": "POST /shares with a JSON body"})
            return
        try:
            body = json.loads(self.request.body or b"{}")
            if not isinstance(body, dict) or not isinstance(body.get("path"), str):
                raise ValueError
        except ValueError:
            self.answer(400, {"error": "bad_request", "message": 'expected {"path": …}'})
            return
        unknown = set(body) - set(SHARE_FIELDS)
        if unknown:
            self.answer(
                400, {"error": "bad_request", "message": f"unknown fields {sorted(unknown)}"}
            )
            return
        try:
            self.answer(201, await self.service.share(**body))
        except P2P2PError as exc:
            self.fail(exc)

    async def delete(self, name: str | None = None) -> None:
        if name is None:
            self.answer(
                400, {"error": "bad_request", "message": "DELETE /shares/NAME or /shares/*"}
            )
            return
        try:
            stopped = await self.service.unshare(None if name == "*" else name)
        except P2P2PError as exc:
            self.fail(exc)
            return
        self.answer(200, {"stopped": stopped})


def make_control_app(service: OwnerService, secret: str) -> tornado.web.Application:
    args = {"service": service, "secret": secret}
    return tornado.web.Application(
        [
            (r"/shares", ControlHandler, args),
            (r"/shares/([^/]+)", ControlHandler, args),
        ],
        log_function=quiet_log,
    )
