"""Request and Response of the share's API: plain data, no web framework.

The tunnel client turns each tunnel stream into a ``Request`` and sends the ``Response``
back; tests build them by hand. A response body is an async generator, so a result can
stream with backpressure and a query is cancelled when its reader stops reading.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import urllib.parse
from collections.abc import AsyncGenerator
from typing import Any

from ... import pages
from ...errors import P2P2PError

__all__ = [
    "Request",
    "Response",
    "error_response",
    "html_response",
    "json_response",
    "once",
    "script_response",
]


@dataclasses.dataclass
class Request:
    share_id: str
    method: str
    path: str  # below /s/<share id>, starting with "/"
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    # Set by the gate for a browser signed in to an identified share (owner.signin).
    viewer_session: Any = None

    def arg(self, name: str) -> str | None:
        values = urllib.parse.parse_qs(self.query).get(name)
        return values[-1] if values else None

    @property
    def wants_html(self) -> bool:
        """A browser navigating (rather than a program or a page's script)."""
        return "text/html" in self.headers.get("accept", "")


@dataclasses.dataclass
class Response:
    status: int
    headers: dict[str, Any]  # a list value (set-cookie) means the header repeats
    # A bytearray piece is never touched again by the generator that yielded it.
    body: AsyncGenerator[bytes | bytearray, None]


async def once(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


# The share's API answers (store values, notes, schema) are kept by no browser or proxy:
# a query's rows in a disk cache would outlive the share.
NO_STORE = {"cache-control": "no-store"}


def json_response(status: int, obj: Any) -> Response:
    body = json.dumps(obj, default=str).encode()
    return Response(status, {"content-type": "application/json", **NO_STORE}, once(body))


def script_response(script: bytes, request: Request | None = None) -> Response:
    """One of the owner's own scripts for a share's pages (sign-in, the live banner):
    revalidated on each page load, and a 304 when the browser has it already (every
    visit used to fetch it again)."""
    tag = '"' + hashlib.sha256(script).hexdigest()[:20] + '"'
    headers = {
        "content-type": "text/javascript; charset=utf-8",
        "cache-control": "no-cache",
        "etag": tag,
        "x-content-type-options": "nosniff",
    }
    if request is not None and tag in request.headers.get("if-none-match", ""):
        return Response(304, headers, once(b""))
    return Response(200, headers, once(script))


def html_response(status: int, page: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {**pages.HEADERS, **(headers or {})}, once(page))


def error_response(exc: P2P2PError) -> Response:
    """An error as JSON, with the status its type carries."""
    return json_response(exc.status, {"error": exc.code, "message": exc.message, **exc.details})
