"""The relay as a tornado application: its routes, and running it as a process."""

from __future__ import annotations

import asyncio
from typing import Any

import tornado.routing
import tornado.web

from ..aio.web import listen, log_every_request, quiet_log
from .directory import DirectoryHandler, HealthHandler
from .forward import SHARE_PATH, ShareHandler, ShareSocketHandler, UpgradeMatches
from .queue import QUEUE_PATH, QueueHandler
from .routes import Relay, RelayConfig
from .tunnels import TunnelHandler

__all__ = ["make_app", "serve"]


def make_app(
    config: RelayConfig | None = None, access_log: bool = False
) -> tuple[tornado.web.Application, Relay]:
    relay = Relay(config or RelayConfig())
    settings: dict[str, Any] = {"log_function": log_every_request if access_log else quiet_log}
    app = tornado.web.Application(
        [
            (r"/healthz", HealthHandler, {"relay": relay}),
            (r"/tunnel", TunnelHandler, {"relay": relay}),
            (QUEUE_PATH, QueueHandler, {"relay": relay}),
            tornado.routing.Rule(UpgradeMatches(SHARE_PATH), ShareSocketHandler, {"relay": relay}),
            (SHARE_PATH, ShareHandler, {"relay": relay}),
            (r"/", DirectoryHandler, {"relay": relay}),
        ],
        websocket_max_message_size=(1 << 20) + (64 << 10),
        **settings,
    )
    return app, relay


async def serve(
    host: str,
    port: int,
    config: RelayConfig | None = None,
    ready: Any = None,
    access_log: bool = False,
) -> None:
    app, relay = make_app(config, access_log)
    server, bound = listen(app, host, port, relay.config.header_timeout_s, relay.clients)
    heartbeat = asyncio.ensure_future(relay.heartbeat())
    if ready is not None:
        ready(server, bound)  # the port it really listens on (``--port 0``: a free one)
    try:
        await asyncio.Event().wait()
    finally:
        heartbeat.cancel()
        server.stop()
