"""A query started for the API: read off its thread, streamed, audited.

The executor is blocking (it talks to a worker process over a pipe); the API is
asyncio. ``start`` runs the statement on a thread and keeps the first megabyte, so a
small result is complete after one thread hop and leaves in one tunnel frame; a big one
streams the rest through ``stream_in_thread`` with at most two pieces read ahead, so a
slow reader slows the worker. Every attempt, refused, failed, cut or complete, is one
line in the share's audit log.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing
from typing import Any

from ...errors import P2P2PError
from ...store.executor import ResultInfo, ResultStream
from ..audit import statement_hash
from ..shares import Share

__all__ = ["FIRST_BYTES", "Result", "audit", "outcome_of", "start", "stream_in_thread"]

# Read this much of a result on the thread that starts the query: a small result is then
# complete after one thread hop, and leaves in one tunnel frame.
FIRST_BYTES = 1 << 20


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


async def start(
    share: Share,
    sql: str,
    params: bytes,
    style: str | None,
    client: str,
    channel: str,
    claimed_session: str | None = None,
    **limits: Any,
) -> Result:
    """Run ``sql`` on a thread; a refusal or failure is audited here and raised."""

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
        audit(share, sql, client, channel, outcome_of(exc), None, claimed_session)
        raise


def audit(
    share: Share,
    sql: str,
    client: str,
    channel: str,
    outcome: str,
    info: ResultInfo | None,
    claimed_session: str | None = None,
) -> None:
    """One line in the share's audit log (and one more in its query count).

    ``client`` is who the owner verified (a key's signature, or ``anonymous``);
    ``claimed_session`` is a label the client chose, written as such.
    """
    share.queries += 1
    claims = {"claimed_session": claimed_session} if claimed_session else {}
    share.audit.record(
        share_id=share.share_id,
        client=client,
        **claims,
        channel=channel,
        statement_sha256=statement_hash(sql),
        statement=sql[:10_000],
        outcome=outcome,
        rows=info.rows if info else 0,
        bytes=info.bytes if info else 0,
        truncated=bool(info and info.truncated),
        duration_ms=round(info.seconds * 1000, 1) if info else 0,
    )


def outcome_of(exc: P2P2PError) -> str:
    """How the audit log names a refusal: its code, and the rule for a lockdown one."""
    return f"{exc.code}:{getattr(exc, 'rule', '')}".rstrip(":")
