"""Serving tornado apps: the relay, the owner's embedded relay and the control endpoint.

One way to bind and start a server, and the two log functions a relay chooses from. A
log line never carries a query string: it can hold a link's token (``?t=``) and a
viewer's SQL.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import tornado.httpserver
import tornado.iostream
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


class Admission(Protocol):
    """Counts connections per peer address; refuses one past its limit."""

    def connect(self, peer: str) -> bool: ...

    def disconnect(self, peer: str) -> None: ...


TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 5\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 54\r\n\r\n"
    b"too many connections from your address: close some.\r\n"
)


class _AdmittingServer(tornado.httpserver.HTTPServer):
    admission: Admission

    def handle_stream(self, stream: tornado.iostream.IOStream, address: Any) -> None:
        peer = str(address[0]) if isinstance(address, tuple) else ""
        if not self.admission.connect(peer):
            stream.write(TOO_MANY_CONNECTIONS).add_done_callback(lambda _: stream.close())
            return
        # Counted until the socket closes, whatever protocol it ends up speaking: a
        # WebSocket takes its stream over from the HTTP connection (and replaces the
        # stream's close callback), so the one place every close passes is close().
        close = stream.close
        released = False

        def close_and_release(exc_info: Any = False) -> None:
            nonlocal released
            if not released:
                released = True
                self.admission.disconnect(peer)
            close(exc_info)

        stream.close = close_and_release  # type: ignore[method-assign]
        super().handle_stream(stream, address)


def listen(
    app: tornado.web.Application,
    host: str,
    port: int,
    header_timeout_s: float = HEADER_TIMEOUT_S,
    admission: Admission | None = None,
) -> tuple[tornado.httpserver.HTTPServer, int]:
    """Serve ``app`` on ``host:port`` (0: any free port); returns the server and its port.

    With ``admission``, each new connection is counted by peer address and one past the
    limit is answered 503 and closed before a byte of it is parsed.
    """
    sockets = tornado.netutil.bind_sockets(port, address=host)
    kind = tornado.httpserver.HTTPServer if admission is None else _AdmittingServer
    server = kind(
        app,
        max_body_size=MAX_REQUEST_BODY + 1024,
        idle_connection_timeout=header_timeout_s,  # tornado's header timeout too
        body_timeout=BODY_TIMEOUT_S,
    )
    if isinstance(server, _AdmittingServer) and admission is not None:
        server.admission = admission
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
