"""Serving tornado apps: the relay, the owner's embedded relay and the control endpoint.

One way to bind and start a server, and the two log functions a relay chooses from. A
log line never carries a query string: it can hold a link's token (``?t=``) and a
viewer's SQL.
"""

from __future__ import annotations

import logging

import tornado.httpserver
import tornado.netutil
import tornado.web

from ..protocol.tunnel import MAX_REQUEST_BODY

__all__ = ["BODY_TIMEOUT_S", "HEADER_TIMEOUT_S", "listen", "log_every_request", "quiet_log"]

log = logging.getLogger("p2p2p.relay")


# A connection may take this long to send a request's headers, and sit idle between
# requests this long; a client that dribbles its headers (slowloris) is cut off then,
# instead of holding a socket for minutes. Bodies are at most 1 MiB: 30 s is plenty.
HEADER_TIMEOUT_S = 20.0
BODY_TIMEOUT_S = 30.0


def listen(
    app: tornado.web.Application, host: str, port: int, header_timeout_s: float = HEADER_TIMEOUT_S
) -> tuple[tornado.httpserver.HTTPServer, int]:
    """Serve ``app`` on ``host:port`` (0: any free port); returns the server and its port."""
    sockets = tornado.netutil.bind_sockets(port, address=host)
    server = tornado.httpserver.HTTPServer(
        app,
        max_body_size=MAX_REQUEST_BODY + 1024,
        idle_connection_timeout=header_timeout_s,  # tornado's header timeout too
        body_timeout=BODY_TIMEOUT_S,
    )
    server.add_sockets(sockets)
    return server, int(sockets[0].getsockname()[1])


def quiet_log(handler: tornado.web.RequestHandler) -> None:
    """Server errors only: a line per request would name share ids and client addresses
    (and, inside Jupyter, fill the server's log)."""
    if handler.get_status() >= 500:
        log.warning("%d %s %s", handler.get_status(), handler.request.method, handler.request.path)


def log_every_request(handler: tornado.web.RequestHandler) -> None:
    """``--access-log``: every request, by path, status, time and client."""
    request = handler.request
    log.info(
        "%d %s %s %s %.1f ms",
        handler.get_status(),
        request.method,
        request.path,
        request.remote_ip,
        1000 * request.request_time(),
    )
