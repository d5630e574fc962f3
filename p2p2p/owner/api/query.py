"""``GET|POST /api/query``: SQL over plain HTTP, for curl and scripts.

The token comes as ``?t=``, ``Authorization: Bearer`` or the share's cookie (the gate
checks it); the SQL as ``?sql=`` or the request body. ``format=arrow`` streams an Arrow
IPC stream; JSON (the default) is for people and is capped at ``JSON_MAX_ROWS`` rows.
Programs that want privacy from the relay use ``p2p2p.connect`` (``e2e``) instead.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing

from ...errors import BadParameters, P2P2PError
from ...store.arrow import open_ipc_stream, to_pandas
from ..shares import Share
from .access import ANONYMOUS, Caller
from .http import NO_STORE, Request, Response, once
from .results import Result, audit, start

__all__ = ["JSON_MAX_ROWS", "plain_query"]

JSON_MAX_ROWS = 10_000
CLIENT, CHANNEL = Caller(ANONYMOUS), "plain"  # the gate lets plain HTTP in stealth mode only


async def plain_query(share: Share, request: Request) -> Response:
    sql = request.arg("sql")
    if sql is None and request.body:
        sql = request.body.decode("utf-8", "replace")
    if not sql:
        raise BadParameters("send the SQL as ?sql=… or as the request body")
    fmt = request.arg("format") or "json"
    limit = _whole(request.arg("limit"))
    if fmt == "arrow":
        result = await start(share, sql, b"", None, CLIENT, CHANNEL, max_rows=limit)
        return Response(
            200,
            {"content-type": "application/vnd.apache.arrow.stream", **NO_STORE},
            _drain(share, result, sql),
        )
    cap = min(limit or JSON_MAX_ROWS, JSON_MAX_ROWS)
    result = await start(share, sql, b"", None, CLIENT, CHANNEL, max_rows=cap)
    chunks: list[bytearray] = []
    async with aclosing(result.pieces()) as pieces:
        async for ready, _last in pieces:
            chunks.extend(ready)
    info = result.stream.info
    audit(share, sql, CLIENT, CHANNEL, "ok", info)

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
    return Response(200, {"content-type": "application/json", **NO_STORE}, once(body))


async def _drain(share: Share, result: Result, sql: str) -> AsyncGenerator[bytes, None]:
    outcome = "cancelled"  # unless it ends below: the reader went away mid-result
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
        audit(share, sql, CLIENT, CHANNEL, outcome, result.stream.info)


def _whole(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return max(1, int(value))
    except ValueError:
        raise BadParameters(f"expected a whole number, got {value!r}") from None
