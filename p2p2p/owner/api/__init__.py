"""The owner's API for one share, as seen through the tunnel.

Paths are relative to ``/s/<share_id>``:

* ``POST /.p2p2p/e2e`` — an end-to-end encrypted request (``envelope``) from a program;
  the access token travels inside the encryption.
* ``GET /api/info``, ``GET /api/schema``, ``GET|POST /api/query?sql=…&format=json|arrow``
  — the plain path for curl and browsers; the token comes as ``?t=`` or
  ``Authorization: Bearer``. JSON results are capped at ``JSON_MAX_ROWS`` rows.

Every request is checked against the share's token and every query goes through the
share's executor and is written to its audit log.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import threading
import time
import urllib.parse
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import WebSocketException

from ...aio import pages
from ...errors import BadParameters, Forbidden, P2P2PError
from ...protocol import envelope
from ...store.arrow import open_ipc_stream, to_pandas
from ...store.executor import ResultInfo, ResultStream
from ..audit import statement_hash
from ..shares import Share, ShareManager
from ..upstream import Upstream

COOKIE = "p2p2p_t"  # path-scoped to /s/<share id>/, so one name serves every share
COOKIE_MAX_AGE_S = 7 * 24 * 3600  # the token is checked on every request: revocation still works
JSON_MAX_ROWS = 10_000
OWN_PATHS = ("/api/info", "/api/schema", "/api/query", "/.p2p2p/e2e")
SEAL_PIECE = 1 << 20
# Read this much of a result on the thread that starts the query: a small result is then
# complete after one thread hop, and leaves in one tunnel frame.
FIRST_BYTES = 1 << 20
_STATUS = {
    "refused": 400,
    "query_failed": 400,
    "bad_parameters": 400,
    "timeout": 504,
    "too_large": 413,
    "resources": 507,
    "busy": 503,
    "forbidden": 403,
    "not_found": 404,
    "tampered": 400,
    "truncated": 400,
}


@dataclasses.dataclass
class Request:
    share_id: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str) -> str | None:
        values = urllib.parse.parse_qs(self.query).get(name)
        return values[-1] if values else None


@dataclasses.dataclass
class Response:
    status: int
    headers: dict[str, Any]  # a list value (set-cookie) means the header repeats
    body: AsyncGenerator[bytes, None]


async def _once(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


def json_response(status: int, obj: Any) -> Response:
    return Response(
        status, {"content-type": "application/json"}, _once(json.dumps(obj, default=str).encode())
    )


def html_response(status: int, page: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status,
        {
            "content-type": "text/html; charset=utf-8",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'",
            "referrer-policy": "no-referrer",
            "x-content-type-options": "nosniff",
            "cache-control": "no-store",
            **(headers or {}),
        },
        _once(page),
    )


def trade_token(share: Share, request: Request, token: str) -> Response:
    """A browser following the link: keep the token in an httpOnly cookie scoped to this
    share and send it to the same page without the token in its address."""
    base = f"/s/{share.share_id}/"
    rest = [(k, v) for k, v in urllib.parse.parse_qsl(request.query) if k != "t"]
    location = (
        base + request.path.lstrip("/") + ("?" + urllib.parse.urlencode(rest) if rest else "")
    )
    secure = "; Secure" if request.headers.get("x-forwarded-proto") == "https" else ""
    cookie = (
        f"{COOKIE}={token}; Path={base}; Max-Age={COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Lax{secure}"
    )
    return Response(
        303,
        {
            "location": location,
            "set-cookie": cookie,
            "cache-control": "no-store",
            "referrer-policy": "no-referrer",
        },
        _once(b""),
    )


def error_response(exc: P2P2PError) -> Response:
    return json_response(
        _STATUS.get(exc.code, 500), {"error": exc.code, "message": exc.message, **exc.details}
    )


async def stream_in_thread(
    chunks: Iterator[Any], close: Any
) -> AsyncGenerator[tuple[list[Any], bool], None]:
    """Pull a blocking iterator on a thread, at most two items ahead (backpressure).

    Yields ``(items, last)``: every item ready at that moment, and whether the iterator
    has ended, so a small result leaves as one piece instead of one network write per
    item, while a large one still streams.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in chunks:
                if stop.is_set():
                    break
                asyncio.run_coroutine_threadsafe(queue.put(("item", item)), loop).result()
            asyncio.run_coroutine_threadsafe(queue.put(("end", None)), loop).result()
        except BaseException as exc:  # handed to the consumer
            if not loop.is_closed():
                asyncio.run_coroutine_threadsafe(queue.put(("error", exc)), loop).result()
        finally:
            close()

    thread = threading.Thread(target=produce, name="p2p2p-result", daemon=True)
    thread.start()
    try:
        while True:
            ready = [await queue.get()]
            while not queue.empty():
                ready.append(queue.get_nowait())
            items = [value for kind, value in ready if kind == "item"]
            for kind, value in ready:
                if kind == "error":
                    raise value
            last = any(kind == "end" for kind, _ in ready)
            if items or last:
                yield items, last
            if last:
                return
    finally:
        stop.set()
        while not queue.empty():  # unblock a producer waiting for space
            queue.get_nowait()


class Result:
    """A started query: what arrived with its start, then the rest as it comes."""

    def __init__(self, stream: ResultStream, first: list[bytearray], rest: Iterator[bytearray]):
        self.stream = stream
        self.first = first
        self.rest = rest
        self.completed = False  # read to the end; otherwise closing it cancels the query

    async def pieces(self) -> AsyncGenerator[tuple[list[bytearray], bool], None]:
        """``(chunks, last)`` pieces of the Arrow IPC stream, as in ``stream_in_thread``."""
        if self.stream.done:
            self.completed = True
            yield self.first, True
            return
        handed_over = False
        try:
            yield self.first, False
            handed_over = True  # from here on the reading thread closes the stream
            async with aclosing(stream_in_thread(self.rest, self.stream.close)) as rest:
                async for ready, last in rest:
                    self.completed = last
                    yield ready, last
        finally:
            if not handed_over:  # the consumer left after the first piece: cancel the query
                await asyncio.to_thread(self.stream.close)


class Proxy:
    def __init__(self, manager: ShareManager) -> None:
        self.manager = manager
        self.upstream = Upstream()

    async def handle(self, request: Request) -> Response:
        share = self.manager.shares.get(request.share_id)
        if share is None or share.closing:
            if _wants_html(request):
                return html_response(404, pages.OFFLINE)
            return json_response(
                404, {"error": "offline", "message": "this share is offline or has been revoked"}
            )
        try:
            if request.path == "/.p2p2p/e2e" and request.method == "POST":
                return await self.e2e(share, request)
            from_url = request.arg("t")
            if not share.token_ok(_token(request)):
                if _wants_html(request):
                    return html_response(403, pages.BAD_TOKEN)
                raise Forbidden("the link's access token is missing, wrong or revoked")
            if from_url and request.method == "GET" and _wants_html(request):
                return trade_token(share, request, from_url)
            if share.upstream and request.path not in OWN_PATHS:
                if share.upstream_paths and not share.upstream_paths.fullmatch(request.path):
                    return json_response(
                        404, {"error": "not_found", "message": f"no such page {request.path}"}
                    )
                if (
                    request.path == "/"
                    and _wants_html(request)
                    and share.sessions >= share.max_viewers
                ):
                    return html_response(503, pages.BUSY, {"retry-after": "5"})
                return await self.to_upstream(share, request)
            if request.path == "/" and _wants_html(request):
                schema = await asyncio.to_thread(share.executor.schema)
                fingerprint = self.manager.identity.fingerprint
                return html_response(200, pages.landing(info(share), fingerprint, schema))
            if request.path == "/api/info":
                return json_response(200, info(share))
            if request.path == "/api/schema":
                return json_response(200, await asyncio.to_thread(share.executor.schema))
            if request.path == "/api/query":
                return await self.plain_query(share, request)
            return json_response(
                404, {"error": "not_found", "message": f"no such endpoint {request.path}"}
            )
        except P2P2PError as exc:
            return error_response(exc)

    # -- the share's web app (dashboard) ---------------------------------------------
    async def to_upstream(self, share: Share, request: Request) -> Response:
        try:
            status, headers, body = await self.upstream.request(
                share.upstream,
                share.share_id,
                request.method,
                request.path,
                request.query,
                request.headers,
                request.body,
                COOKIE,
            )
        except httpx.HTTPError:
            return html_response(502, pages.NO_DASHBOARD)
        return Response(status, headers, body)

    async def open_websocket(self, request: Request) -> Response | ClientConnection:
        """The upstream session for a viewer's WebSocket, or the response refusing it."""
        share = self.manager.shares.get(request.share_id)
        if share is None or share.closing:
            return json_response(404, {"error": "offline", "message": "this share is offline"})
        if not share.token_ok(_token(request)):
            return json_response(403, {"error": "forbidden", "message": "no valid access token"})
        if (
            not share.upstream
            or request.path in OWN_PATHS
            or (share.upstream_paths and not share.upstream_paths.fullmatch(request.path))
        ):
            return json_response(404, {"error": "not_found", "message": "no websocket here"})
        try:
            return await self.upstream.websocket(
                share.upstream,
                share.share_id,
                request.path,
                request.query,
                request.headers,
                COOKIE,
            )
        except (OSError, WebSocketException, TimeoutError) as exc:
            return json_response(502, {"error": "offline", "message": f"dashboard: {exc}"})

    # -- plain ---------------------------------------------------------------------
    async def plain_query(self, share: Share, request: Request) -> Response:
        sql = request.arg("sql")
        if sql is None and request.body:
            sql = request.body.decode("utf-8", "replace")
        if not sql:
            raise BadParameters("send the SQL as ?sql=… or as the request body")
        fmt = request.arg("format") or "json"
        limit = _int(request.arg("limit"))
        if fmt == "arrow":
            result = await self.start(share, sql, b"", None, "anonymous", "plain", max_rows=limit)
            return Response(
                200,
                {"content-type": "application/vnd.apache.arrow.stream"},
                self.drain(share, result, sql),
            )
        cap = min(limit or JSON_MAX_ROWS, JSON_MAX_ROWS)
        result = await self.start(share, sql, b"", None, "anonymous", "plain", max_rows=cap)
        chunks: list[bytearray] = []
        async with aclosing(result.pieces()) as pieces:
            async for ready, _last in pieces:
                chunks.extend(ready)
        info = result.stream.info
        self.audit(share, sql, "anonymous", "plain", "ok", info)

        def render() -> bytes:
            frame = to_pandas(open_ipc_stream(iter([*chunks, None]).__next__).read_all())
            # pandas writes the rows as JSON itself: embedding them saves a loads/dumps trip.
            rows = frame.to_json(orient="values", date_format="iso", default_handler=str)
            columns = json.dumps([str(c) for c in frame.columns])
            truncated = json.dumps(info.truncated)
            return (
                f'{{"columns": {columns}, "row_count": {info.rows}, '
                f'"truncated": {truncated}, "rows": {rows}}}'
            ).encode()

        body = await asyncio.to_thread(render)
        return Response(200, {"content-type": "application/json"}, _once(body))

    async def start(
        self,
        share: Share,
        sql: str,
        params: bytes,
        style: str | None,
        client: str,
        channel: str,
        **limits: Any,
    ) -> Result:
        def begin() -> Result:
            stream = share.executor.query_encoded(sql, params, style, **limits)
            rest = stream.ipc_chunks()
            first: list[bytearray] = []
            size = 0
            try:
                while size < FIRST_BYTES and (chunk := next(rest, None)) is not None:
                    first.append(chunk)
                    size += len(chunk)
            except BaseException:
                stream.close()
                raise
            return Result(stream, first, rest)

        try:
            return await asyncio.to_thread(begin)
        except P2P2PError as exc:
            self.audit(
                share,
                sql,
                client,
                channel,
                f"{exc.code}:{getattr(exc, 'rule', '')}".rstrip(":"),
                None,
            )
            raise

    async def drain(self, share: Share, result: Result, sql: str) -> AsyncGenerator[bytes, None]:
        outcome = "cancelled"
        try:
            async with aclosing(result.pieces()) as pieces:
                async for ready, _last in pieces:
                    share.bytes_out += sum(len(chunk) for chunk in ready)
                    yield b"".join(ready)
            outcome = "ok"
        except P2P2PError as exc:
            outcome = exc.code
            raise
        finally:
            self.audit(share, sql, "anonymous", "plain", outcome, result.stream.info)

    def audit(
        self,
        share: Share,
        sql: str,
        client: str,
        channel: str,
        outcome: str,
        info: ResultInfo | None,
    ) -> None:
        share.queries += 1
        share.audit.record(
            share_id=share.share_id,
            client=client,
            channel=channel,
            statement_sha256=statement_hash(sql),
            statement=sql[:10_000],
            outcome=outcome,
            rows=info.rows if info else 0,
            bytes=info.bytes if info else 0,
            truncated=bool(info and info.truncated),
            duration_ms=round(info.seconds * 1000, 1) if info else 0,
        )

    # -- end to end ------------------------------------------------------------------
    async def e2e(self, share: Share, request: Request) -> Response:
        public, secret = self.manager.identity.box_keys
        body = request.body
        try:
            session = envelope.OwnerSession(
                public, secret, share.share_id, body[: envelope.REQUEST_PREFIX_BYTES]
            )
            chunks = session.request.feed(body[envelope.REQUEST_PREFIX_BYTES :])
            session.request.close()
            message = json.loads(b"".join(chunks))
            if not isinstance(message, dict):
                raise ValueError
        except envelope.Tampered as exc:
            return error_response(exc)
        except ValueError:
            return error_response(envelope.Tampered("the encrypted request is not valid"))
        return Response(
            200,
            {"content-type": "application/octet-stream"},
            self.e2e_body(share, session, message),
        )

    async def e2e_body(
        self, share: Share, session: envelope.OwnerSession, message: dict[str, Any]
    ) -> AsyncGenerator[bytes, None]:
        seal = session.response.seal
        out = bytearray(session.response.header)  # leaves with the first answer piece

        def last_piece(answer: dict[str, Any]) -> bytes:
            """What is still pending plus the final, end-marked JSON answer."""
            return bytes(out + seal(json.dumps(answer).encode(), final=True))

        client = "anonymous"
        viewer = message.get("session")
        if isinstance(viewer, str) and viewer:
            client = f"anonymous session {viewer[:16]}"  # one dashboard viewer
        try:
            if not share.token_ok(message.get("token")):
                raise Forbidden("the link's access token is wrong or revoked")
            claimed = envelope.verify_claim(
                message.get("client"), share.share_id, session.client_public_key
            )
            if claimed != "anonymous":
                client = claimed
            op = message.get("op")
            if op in ("notes", "post_note"):
                sender = viewer if isinstance(viewer, str) and viewer else None
                yield last_piece({"ok": True, **await notes_op(share, op, message, sender)})
                return
            if op == "info":
                yield last_piece({"ok": True, "info": info(share)})
                return
            if op == "schema":
                schema = await asyncio.to_thread(share.executor.schema)
                yield last_piece({"ok": True, "schema": schema})
                return
            if op != "query":
                raise BadParameters(f"unknown operation {op!r}")
            sql = str(message.get("sql", ""))
            params = base64.b64decode(message.get("params") or "")
            style = message.get("style")
            limits = {
                k: message.get(k)
                for k in ("timeout_s", "max_rows", "max_bytes", "compression")
                if message.get(k) is not None
            }
            result = await self.start(share, sql, params, style, client, "e2e", **limits)
        except P2P2PError as exc:
            yield last_piece({"ok": False, "error": exc.to_dict()})
            return
        out += seal(json.dumps({"ok": True}).encode())
        stream = result.stream
        outcome = "cancelled"  # unless it ends below: the client went away mid-result
        try:
            async with aclosing(result.pieces()) as pieces:
                async for ready, last in pieces:
                    for chunk in ready:
                        share.bytes_out += len(chunk)
                        view = memoryview(chunk)
                        # A record batch can be tens of MiB; sealed pieces stay small so
                        # neither side buffers a whole batch twice and tunnel frames stay
                        # near their size.
                        for start in range(0, len(view), SEAL_PIECE):
                            out += seal(bytes(view[start : start + SEAL_PIECE]))
                            if len(out) >= SEAL_PIECE:
                                yield bytes(out)
                                out.clear()
                    if not last:  # at the end, the END marker below joins the last data
                        yield bytes(out)
                        out.clear()
            outcome = "ok"
            end = dataclasses.asdict(stream.info)
            yield last_piece({"ok": True, "end": end})
        except P2P2PError as exc:
            outcome = exc.code
            yield last_piece({"ok": False, "error": exc.to_dict()})
        finally:
            self.audit(share, sql, client, "e2e", outcome, stream.info)


NOTES_WAIT_MAX_S = 25.0


async def notes_op(
    share: Share, op: str, message: dict[str, Any], sender: str | None = None
) -> dict[str, Any]:
    """List the share's notes (optionally waiting for a newer one) or keep a signed note."""
    store = share.notes
    if store is None:
        raise BadParameters("this share keeps no notes")
    if op == "post_note":
        note = message.get("note")
        if not isinstance(note, dict):
            raise BadParameters("post_note needs the signed note")
        via = message.get("key_holder")
        via = str(via)[:40] if via else None
        kept = await asyncio.to_thread(store.add, note, None, via, sender)
        changed, share.notes_changed = share.notes_changed, None
        if changed is not None:
            changed.set()  # every waiting panel answers now
        return {"note": kept}
    after = message.get("after", 0)
    wait_s = message.get("wait_s", 0)
    if not isinstance(after, int) or not isinstance(wait_s, int | float):
        raise BadParameters("notes takes whole numbers: after, wait_s")
    wait_s = max(0.0, min(float(wait_s), NOTES_WAIT_MAX_S))
    if store.seq <= after and wait_s > 0:
        # Waiting costs an event, not a thread: open panels must never tie up the
        # threads that start queries (six waiting viewers would have stalled them all).
        if share.notes_changed is None:
            share.notes_changed = asyncio.Event()
        try:
            await asyncio.wait_for(share.notes_changed.wait(), wait_s)
        except TimeoutError:
            pass
    return {"notes": await asyncio.to_thread(store.since, after), "seq": store.seq}


def info(share: Share) -> dict[str, Any]:
    return {
        "name": share.name,
        "share_id": share.share_id,
        "title": share.title,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(share.started)),
        "queries": share.queries,
    }


def _token(request: Request) -> str | None:
    return (
        request.arg("t")
        or _bearer(request.headers.get("authorization", ""))
        or _cookie(request.headers.get("cookie", ""), COOKIE)
    )


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _bearer(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token else None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return max(1, int(value))
    except ValueError:
        raise BadParameters(f"expected a whole number, got {value!r}") from None
