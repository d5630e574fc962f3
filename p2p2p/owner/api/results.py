"""A query started for the API: read off the event loop's thread, streamed, audited.

The executor is blocking (it talks to a worker process over a pipe); the API is
asyncio. ``start`` hands a small request to an idle worker from the event loop and waits
for the pipe to be readable there (``loop.add_reader``), so a small answer costs no
thread hop at all (two fewer wake-ups per query, measured in docs/performance.md); a
long or big one goes on in a thread, which keeps the first megabyte so that it leaves in
one tunnel frame, and streams the rest through ``stream_in_thread`` with at most two
pieces read ahead, so a slow reader slows the worker. Every attempt, refused, failed,
cut or complete, is one line in the share's audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing
from typing import Any, TypeVar

from ...errors import NotInvited, P2P2PError
from ...store.executor import ResultInfo, ResultStream
from ..audit import statement_hash
from ..shares import Share
from ..viewers import REFRESH_S
from .access import Caller, still_allowed

__all__ = [
    "FIRST_BYTES",
    "Result",
    "audit",
    "outcome_of",
    "start",
    "stream_in_thread",
    "until_revoked",
]

T = TypeVar("T")

# Read this much of a result before its first piece leaves: a small result then leaves
# whole, in one tunnel frame.
FIRST_BYTES = 1 << 20
# How long the event loop waits for a query's answer itself (no thread hop either way)
# before a thread takes over the wait: most small queries answer well within it.
LOOP_WAIT_S = 0.25


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
            elif not self.completed:
                # The consumer left mid-result (the share was revoked, the client went
                # away): the reading thread may be blocked on a worker still computing,
                # so stop the worker now rather than when its next batch is ready.
                self.stream.abort()


async def start(
    share: Share,
    sql: str,
    params: bytes,
    style: str | None,
    caller: Caller,
    channel: str,
    claimed_session: str | None = None,
    **limits: Any,
) -> Result:
    """Run ``sql`` on a thread, reading only what ``caller`` may; a refusal or failure
    is audited here and raised."""

    started: list[ResultStream] = []
    given_up = threading.Event()  # whoever asked has gone before the query began answering

    def begin(stream: ResultStream | None) -> Result:
        if stream is None:
            stream = share.executor.query_encoded(
                sql, params, style, tables=caller.tables, **limits
            )
            started.append(stream)
        if given_up.is_set():
            stream.abort()
        return _first_piece(stream)

    async def begin_here_or_in_thread() -> Result:
        # A small answer is read on the event loop as the worker writes it; anything
        # else (no idle worker, a long query, a big answer) goes on in a thread.
        stream = share.executor.try_query_encoded(
            sql, params, style, tables=caller.tables, **limits
        )
        if stream is not None:
            started.append(stream)
            if await _answer_arrives(stream):
                return _first_piece(stream)
        return await asyncio.to_thread(begin, stream)

    def abort() -> None:
        given_up.set()
        for stream in started:
            stream.abort()

    try:
        beginning = asyncio.ensure_future(begin_here_or_in_thread())
        if caller.viewer is None:
            try:
                return await beginning
            except asyncio.CancelledError:
                # Unshared, or the client went away, while the query computed: its worker
                # stops now, not at the query's timeout.
                abort()
                raise
        # A long query may send nothing for a while: its viewer's removal must not wait
        # for its first byte.
        return await _unless_revoked(beginning, share, caller, abort)
    except P2P2PError as exc:
        audit(share, sql, caller, channel, outcome_of(exc), None, claimed_session)
        raise


def _first_piece(stream: ResultStream) -> Result:
    """The answer's first ``FIRST_BYTES`` (all of a small one) and the way to the rest."""
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


async def _answer_arrives(stream: ResultStream) -> bool:
    """Wait on the event loop for the whole answer to arrive from the worker; True if it
    did, so reading it cannot block. False once it takes longer than ``LOOP_WAIT_S`` or
    is bigger than ``FIRST_BYTES``: a thread reads on from what arrived. Leaving early
    (the caller went away) stops the query."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        while not stream.end_in_hand():
            remaining = began + LOOP_WAIT_S - loop.time()
            if remaining <= 0 or stream.bytes_in_hand() >= FIRST_BYTES:
                return False
            fd = stream.fileno()
            readable = loop.create_future()
            loop.add_reader(fd, _wake, readable)
            waited = loop.time()
            try:
                async with asyncio.timeout(remaining):
                    await readable
            except TimeoutError:
                return False
            finally:
                loop.remove_reader(fd)
            stream.take_available(loop.time() - waited)
        return True
    except BaseException:
        stream.discard()
        raise


def _wake(readable: asyncio.Future[None]) -> None:
    if not readable.done():  # the pipe stays readable until it is read: once is enough
        readable.set_result(None)


def audit(
    share: Share,
    sql: str,
    caller: Caller,
    channel: str,
    outcome: str,
    info: ResultInfo | None,
    claimed_session: str | None = None,
) -> None:
    """One line in the share's audit log (and one more in its query count).

    ``client`` is who the owner verified (a key's signature, or ``anonymous``), and in
    identified mode ``viewer`` the listed viewer's name; ``claimed_session`` is a label
    the client chose, written as such.
    """
    share.queries += 1
    claims = {"claimed_session": claimed_session} if claimed_session else {}
    if caller.viewer is not None:
        claims["viewer"] = caller.viewer.name
        share.viewer_seen[caller.viewer.name] = time.time()
    share.audit.record(
        share_id=share.share_id,
        client=caller.client,
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


async def until_revoked(
    result: Result, share: Share, caller: Caller
) -> AsyncGenerator[tuple[list[bytearray], bool], None]:
    """``result.pieces()``, cut off within ``REFRESH_S`` of the caller's access being
    removed, expiring or changing (identified mode), even while the query has nothing to
    send. The cut stops the query (``ResultStream.abort``) and raises ``NotInvited``."""
    async with aclosing(result.pieces()) as pieces:
        if caller.viewer is None:
            async for item in pieces:
                yield item
            return
        while True:
            if not still_allowed(share, caller):
                result.stream.abort()
                raise revoked()
            step = asyncio.ensure_future(anext(pieces))
            try:
                item = await _unless_revoked(step, share, caller, result.stream.abort)
            except StopAsyncIteration:
                return
            yield item


async def _unless_revoked(
    step: asyncio.Future[T], share: Share, caller: Caller, abort: Callable[[], None]
) -> T:
    """``step``'s result, unless the caller's access goes first (checked every
    ``REFRESH_S``): then ``abort`` stops the work (the thread doing it sees its worker
    gone) and ``NotInvited`` is raised. Leaving early for any other reason (the reader
    went away) aborts the work too."""
    try:
        while not step.done():
            await asyncio.wait({step}, timeout=REFRESH_S)
            if not step.done() and not still_allowed(share, caller):
                raise revoked()
    finally:
        if not step.done():
            abort()
            with contextlib.suppress(P2P2PError, StopAsyncIteration):
                await step
    return step.result()


def revoked() -> NotInvited:
    return NotInvited("your access to this share was removed or has ended; the answer was cut")
