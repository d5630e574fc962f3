"""The front door of the store: every untrusted statement enters here.

``Executor`` owns a small pool of sandboxed worker processes for one store (see
``worker``); callers never touch DuckDB themselves. The rules themselves run inside the
worker (``policy`` on the statement, ``lockdown`` on the connection, ``sandbox`` on the
process); this module adds what only the caller's side can: each query is limited in time, memory, rows and bytes, and streamed
back as Arrow record batches with credit-based flow control, so a slow reader pauses the
query rather than filling memory.

A worker that stops answering is killed and replaced; a worker that crashes (for
example an allocation the OS refused) costs that one query, not the caller's process.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.ipc

from ..errors import (
    BadParameters,
    P2P2PError,
    QueryTimeout,
    ResourceExhausted,
    StoreBusy,
    StoreUnavailable,
    WorkerCrashed,
)
from .arrow import open_ipc_stream
from .file import check_store_file
from .limits import RESIDENT_SLACK_MB, Limits
from .pipe import HEADER, MEMORY_EXIT, Kind, encode, encode_json, parse_header

# Time the executor grants a worker past its own watchdog before killing it.
HARD_KILL_GRACE_S = 3.0
STARTUP_TIMEOUT_S = 60.0
CONTROL_FRAME_MAX = 16 << 20
WINDOW = 2
# A request up to this size is written from the event loop (try_query_encoded): the
# request pipe of an idle worker is empty and holds at least this much, so it cannot block.
SMALL_REQUEST = 32 << 10
LANDING = 1 << 20  # at most this much is read from a worker's pipe in one go by an event loop

Params = Mapping[str, Any] | Sequence[Any] | None

_live_workers: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()


@atexit.register
def _kill_all_workers() -> None:
    for worker in list(_live_workers):
        worker.kill()


@dataclasses.dataclass
class ResultInfo:
    """What happened to a query; complete once its stream has ended."""

    rows: int = 0
    bytes: int = 0
    truncated: bool = False
    truncated_by: str | None = None
    cancelled: bool = False
    seconds: float = 0.0
    db_seconds: float = 0.0

    def describe(self, source: str) -> str:
        """One line: rows, time, where it came from, and whether it is complete."""
        rows = f"{self.rows:,} row{'s' if self.rows != 1 else ''}"
        parts = [rows, _duration(self.seconds), source]
        if self.truncated:
            parts.append(f"TRUNCATED by {self.truncated_by or 'a limit'} (more rows exist)")
        return " · ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


class _WorkerTimeout(Exception):
    pass


class WorkerProcess:
    """One sandboxed worker process and the two pipes to it."""

    def __init__(self, path: str, limits: Limits) -> None:
        self.limits = limits
        self.private_dir = tempfile.mkdtemp(prefix="p2p2p-worker-")
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        env = {
            "HOME": self.private_dir,
            "TMPDIR": self.private_dir,
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-m",
                    "p2p2p.store.worker",
                    str(req_r),
                    str(resp_w),
                    path,
                    json.dumps(limits.to_dict()),
                    self.private_dir,
                ],
                pass_fds=(req_r, resp_w),
                env=env,
                cwd=self.private_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(req_r)
            os.close(resp_w)
        self.fd_out, self.fd_in = req_w, resp_r
        _widen_pipe(resp_r)
        self.inbox = bytearray()  # read from the pipe, not yet taken as frames
        self._landing: memoryview | None = None  # take_available's read buffer
        self.alive = True
        _live_workers.add(self)
        try:
            kind, payload = self.read_frame(time.monotonic() + STARTUP_TIMEOUT_S, CONTROL_FRAME_MAX)
        except (_WorkerTimeout, WorkerCrashed):
            self.kill()
            raise StoreUnavailable(f"the worker for {path} did not start") from None
        if kind is Kind.ERROR:
            self.kill()
            raise P2P2PError.from_dict(json.loads(payload))
        if kind is not Kind.READY:
            self.kill()
            raise WorkerCrashed(f"the worker for {path} sent {kind.name} instead of READY")
        self.ready: dict[str, Any] = json.loads(payload)

    def send(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd_out, view) :]
        except OSError:
            self.kill()
            raise self.death() from None

    def read_exact(self, n: int, deadline: float | None) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = min(n, len(self.inbox))
        if got:  # what an event loop already read (take_available) comes first
            view[:got] = self.inbox[:got]
            del self.inbox[:got]
        while got < n:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self.fd_in], [], [], remaining)[0]:
                    raise _WorkerTimeout
            count = os.readv(self.fd_in, [view[got:]])
            if count == 0:
                self.kill()
                raise self.death()
            got += count
        return buf

    def read_frame(self, deadline: float | None, max_payload: int) -> tuple[Kind, bytearray]:
        kind, length = parse_header(bytes(self.read_exact(HEADER.size, deadline)), max_payload)
        return kind, self.read_exact(length, deadline) if length else bytearray()

    def take_available(self) -> None:
        """Read what the worker has written so far, without waiting for more: for a
        caller that was told the pipe is readable (an event loop), so no thread blocks."""
        # Into a buffer kept for it: os.read(fd, 1 MiB) allocates (and maps) a new 1 MiB
        # object on every call, 20 us for a 200-byte answer; this is 2-3 us.
        if self._landing is None:
            self._landing = memoryview(bytearray(LANDING))
        try:
            count = os.readv(self.fd_in, [self._landing])
        except BlockingIOError:
            return
        except OSError:
            self.kill()
            raise self.death() from None
        if not count:
            self.kill()
            raise self.death()
        self.inbox += self._landing[:count]

    def end_in_hand(self, max_payload: int) -> bool:
        """Whether the inbox holds whole frames up to an END or ERROR: the answer can
        then be read to its end without touching the pipe."""
        view, at = memoryview(self.inbox), 0
        while at + HEADER.size <= len(view):
            kind, length = parse_header(bytes(view[at : at + HEADER.size]), max_payload)
            at += HEADER.size + length
            if at > len(view):
                return False
            if kind in (Kind.END, Kind.ERROR):
                return True
        return False

    def death(self) -> P2P2PError:
        """What to tell the caller about a worker that went away mid-query."""
        code = self.exit_code()
        if code == MEMORY_EXIT:
            return ResourceExhausted(
                f"the query needed more memory than the store allows ({self.limits.memory_limit_mb}"
                f" MB, plus {RESIDENT_SLACK_MB} MB for the worker itself); it was stopped and "
                "the store restarts for the next query"
            )
        return WorkerCrashed(self.death_message(code))

    def exit_code(self) -> int | None:
        code = self.proc.poll()
        if code is None:
            try:
                code = self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                code = None
        return code

    def death_message(self, code: int | None) -> str:
        if code is not None and code < 0:
            name = (
                signal.Signals(-code).name
                if -code in signal.Signals._value2member_map_
                else str(-code)
            )
            return (
                f"the store worker was stopped by {name} while running the query (usually a query "
                "that needed more memory than the share allows); it restarts for the next query"
            )
        return "the store worker stopped unexpectedly; it restarts for the next query"

    def kill(self) -> None:
        if not self.alive:
            return
        self.alive = False
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for fd in (self.fd_in, self.fd_out):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        shutil.rmtree(self.private_dir, ignore_errors=True)
        _live_workers.discard(self)


class Executor:
    """Runs untrusted SQL against one DuckDB file through sandboxed workers."""

    def __init__(self, path: str | os.PathLike[str], limits: Limits | None = None) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.limits = limits or Limits()
        check_store_file(self.path, header=False)
        self._cond = threading.Condition()
        self._idle: list[WorkerProcess] = []
        self._count = 0
        self._waiting = 0  # callers of _acquire waiting for a worker to come back
        self._closed = False
        self._seq = 0
        self.last_ready: dict[str, Any] = {}

    # -- worker pool -------------------------------------------------------------
    def _acquire(self, wait_s: float) -> WorkerProcess:
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                if self._closed:
                    raise StoreUnavailable(f"the store {self.path} is closed")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive and worker.proc.poll() is None:
                        return worker
                    worker.kill()
                    self._count -= 1
                if self._count < self.limits.workers:
                    self._count += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreBusy(
                        f"all {self.limits.workers} query slots of this store are busy; try again shortly"
                    )
                self._waiting += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting -= 1
        try:
            worker = WorkerProcess(self.path, self.limits)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise
        self.last_ready = worker.ready
        return worker

    def _take_idle(self) -> WorkerProcess | None:
        """A worker that is idle now, or None: never waits, never starts one. Nor does it
        take a worker that a caller already waiting for one was just woken to take."""
        with self._cond:
            while self._idle and not self._closed and not self._waiting:
                worker = self._idle.pop()
                if worker.alive and worker.proc.poll() is None:
                    return worker
                worker.kill()
                self._count -= 1
            return None

    def _release(self, worker: WorkerProcess) -> None:
        with self._cond:
            # Bytes left over past a query's end would be read as the next one's answer.
            if worker.alive and not self._closed and not worker.inbox:
                self._idle.append(worker)
            else:
                worker.kill()
                self._count -= 1
            self._cond.notify()

    def warm(self) -> dict[str, Any]:
        """Start a worker now (opening the store) and report its sandbox."""
        self._release(self._acquire(self.limits.timeout_s))
        return self.last_ready

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for worker in idle:
            worker.kill()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries -------------------------------------------------------------------
    def query(
        self,
        sql: str,
        params: Params = None,
        *,
        timeout_s: float | None = None,
        max_rows: int | None = None,
        max_bytes: int | None = None,
        compression: str | None = None,
        tables: Sequence[str] | None = None,
    ) -> ResultStream:
        """Start a query; iterate the returned stream for Arrow record batches.

        ``tables``: the caller may read only these tables and views (``"name"`` or
        ``"schema.name"``); anything else is refused with the rule ``table-not-granted``,
        and catalog listings show only these. ``None``: the whole store.
        """
        param_bytes, style = encode_params(params)
        return self.query_encoded(
            sql,
            param_bytes,
            style,
            timeout_s=timeout_s,
            max_rows=max_rows,
            max_bytes=max_bytes,
            compression=compression,
            tables=tables,
        )

    def query_encoded(
        self,
        sql: str,
        param_bytes: bytes,
        style: str | None,
        *,
        timeout_s: float | None = None,
        max_rows: int | None = None,
        max_bytes: int | None = None,
        compression: str | None = None,
        tables: Sequence[str] | None = None,
    ) -> ResultStream:
        """``query`` with parameters already in their wire form (see ``encode_params``):
        a remote caller's parameters go to the worker without being decoded here."""
        limits, frames, seq = self._request(
            sql,
            param_bytes,
            style,
            compression=compression,
            tables=tables,
            timeout_s=timeout_s,
            max_rows=max_rows,
            max_bytes=max_bytes,
        )
        return self._send_query(self._acquire(limits.timeout_s), frames, seq, limits)

    def try_query_encoded(
        self, sql: str, param_bytes: bytes, style: str | None, **options: Any
    ) -> ResultStream | None:
        """``query_encoded`` (the same ``options``) if a worker is idle now and the request
        is small, else None (nothing was sent). It never blocks, so an event loop may call
        it, then wait for ``ResultStream.fileno`` to be readable and read with
        ``take_available``: a small answer then costs no thread."""
        limits, frames, seq = self._request(sql, param_bytes, style, **options)
        if len(frames) > SMALL_REQUEST:
            return None
        worker = self._take_idle()
        return None if worker is None else self._send_query(worker, frames, seq, limits)

    def _request(
        self,
        sql: str,
        param_bytes: bytes,
        style: str | None,
        *,
        compression: str | None = None,
        tables: Sequence[str] | None = None,
        timeout_s: float | None = None,
        max_rows: int | None = None,
        max_bytes: int | None = None,
    ) -> tuple[Limits, bytes, int]:
        """A query's limits and its frames for the worker, checked before any is sent."""
        if style not in (None, "named", "positional"):
            raise BadParameters(f"unknown parameter style {style!r}")
        if compression not in (None, "lz4", "zstd"):
            raise BadParameters(f"unknown compression {compression!r} (use lz4, zstd or none)")
        limits = self.limits.tightened(timeout_s=timeout_s, max_rows=max_rows, max_bytes=max_bytes)
        with self._cond:
            self._seq = (self._seq + 1) % (1 << 31)
            seq = self._seq
        header = {
            "sql": sql,
            "seq": seq,
            "window": WINDOW,
            "params": style,
            "compression": compression,
            "tables": None if tables is None else list(tables),
            **{name: getattr(limits, name) for name in Limits.QUERY_FIELDS},
        }
        frames = encode_json(Kind.QUERY, header)
        if style is not None:
            frames += encode(Kind.PARAMS, param_bytes)
        return limits, frames, seq

    def _send_query(
        self, worker: WorkerProcess, frames: bytes, seq: int, limits: Limits
    ) -> ResultStream:
        try:
            worker.send(frames)
        except BaseException:
            self._release(worker)
            raise
        return ResultStream(self, worker, seq, limits)

    def query_arrow(
        self, sql: str, params: Params = None, **limits: Any
    ) -> tuple[pa.Table, ResultInfo]:
        with self.query(sql, params, **limits) as stream:
            table = stream.read_all()
            return table, stream.info

    def schema(self, tables: Sequence[str] | None = None) -> dict[str, Any]:
        """Tables and views of the store, their columns, and exact row counts of tables.

        ``tables``: only these (a caller granted some tables; see ``query``).
        """
        worker = self._acquire(self.limits.timeout_s)
        try:
            worker.send(
                encode_json(Kind.SCHEMA, {"tables": None if tables is None else list(tables)})
            )
            try:
                kind, payload = worker.read_frame(
                    time.monotonic() + self.limits.timeout_s + HARD_KILL_GRACE_S, CONTROL_FRAME_MAX
                )
            except _WorkerTimeout:
                worker.kill()
                raise QueryTimeout("describing the store took too long") from None
            if kind is Kind.ERROR:
                raise P2P2PError.from_dict(json.loads(payload))
            if kind is not Kind.INFO:
                worker.kill()
                raise WorkerCrashed(f"the worker answered {kind.name} to a schema request")
            result: dict[str, Any] = json.loads(payload)
            return result
        finally:
            self._release(worker)


class ResultStream:
    """A query's result as it arrives: Arrow record batches, then ``info``.

    Use as a context manager or read it to the end; closing it early cancels the query
    on the worker. Iterating yields ``pyarrow.RecordBatch``; ``ipc_chunks`` yields the
    raw Arrow IPC stream instead (for forwarding without decoding).
    """

    def __init__(self, executor: Executor, worker: WorkerProcess, seq: int, limits: Limits) -> None:
        self._executor = executor
        self._worker: WorkerProcess | None = worker
        self._seq = seq
        self._limits = limits
        self._waited = 0.0
        self._started = time.monotonic()
        self._owed_credit = False
        self._reader: pa.ipc.RecordBatchStreamReader | None = None
        self._max_payload = limits.max_bytes + CONTROL_FRAME_MAX
        self._owning = threading.Lock()  # whether _worker is still this stream's
        self._aborted = False
        self.info = ResultInfo()
        self.done = False

    # -- for an event loop (see Executor.try_query_encoded) ------------------------
    def fileno(self) -> int:
        """The pipe the answer arrives on (-1 once the stream is finished)."""
        return self._worker.fd_in if self._worker is not None else -1

    def take_available(self, waited_s: float = 0.0) -> None:
        """Read what has arrived, without waiting (the pipe was seen readable);
        ``waited_s`` is the time spent waiting for it, counted against the timeout."""
        self._waited += waited_s
        worker = self._worker
        if worker is None:
            return
        try:
            worker.take_available()
        except P2P2PError:
            self._finish(kill=True)
            raise

    def end_in_hand(self) -> bool:
        """Whether the rest of the answer has arrived: reading it cannot block."""
        worker = self._worker
        if worker is None:
            return True
        try:
            return worker.end_in_hand(self._max_payload)
        except P2P2PError:
            self._finish(kill=True)
            raise

    def bytes_in_hand(self) -> int:
        return len(self._worker.inbox) if self._worker is not None else 0

    def discard(self) -> None:
        """Stop the query at once and give its slot back, without waiting on the
        worker: it is killed, and a new one takes the next query."""
        self.abort()
        self._finish(kill=True)

    # -- frames ------------------------------------------------------------------
    def _next_data(self) -> bytearray | None:
        """The next DATA payload, or None at the end. Raises the query's error."""
        worker = self._worker
        if worker is None:
            return None
        budget = self._limits.timeout_s + HARD_KILL_GRACE_S - self._waited
        began = time.monotonic()
        try:
            # The credit lets the worker send one more DATA frame; once its END is here
            # there is none to send, and the credit would only wake an idle worker (on
            # the cores a small query's four processes share).
            if self._owed_credit and not worker.end_in_hand(self._max_payload):
                worker.send(encode(Kind.CREDIT, self._seq.to_bytes(4, "big")))
            self._owed_credit = False
            kind, payload = worker.read_frame(began + max(0.0, budget), self._max_payload)
        except _WorkerTimeout:
            self._finish(kill=True)
            raise QueryTimeout(
                f"the query ran longer than {self._limits.timeout_s:g} s and did not stop when "
                "interrupted; its worker was killed and will restart",
                timeout_s=self._limits.timeout_s,
            ) from None
        except P2P2PError:
            self._finish(kill=True)
            raise
        finally:
            self._waited += time.monotonic() - began
        if kind is Kind.DATA:
            self._owed_credit = True
            return payload
        if kind is Kind.END:
            stats = json.loads(payload)
            self.info = ResultInfo(
                rows=int(stats["rows"]),
                bytes=int(stats["bytes"]),
                truncated=bool(stats["truncated"]),
                truncated_by=stats.get("truncated_by"),
                cancelled=bool(stats.get("cancelled")),
                seconds=time.monotonic() - self._started,
                db_seconds=float(stats.get("db_seconds", 0.0)),
            )
            self._finish(kill=False)
            return None
        if kind is Kind.ERROR:
            error = P2P2PError.from_dict(json.loads(payload))
            # After a memory blow-up the worker keeps its address space mapped, and an
            # internal error (a bare P2P2PError) means unknown state: replace it.
            self._finish(kill=isinstance(error, ResourceExhausted) or type(error) is P2P2PError)
            raise error
        self._finish(kill=True)
        raise WorkerCrashed(f"the worker sent an unexpected {kind.name} frame")

    def _finish(self, kill: bool) -> None:
        with self._owning:  # from here on an abort() cannot reach this worker
            worker, self._worker = self._worker, None
            kill = kill or self._aborted  # killed a moment ago: never back to the pool
        self.done = True
        if worker is not None:
            if kill:
                worker.kill()
            self._executor._release(worker)

    # -- public ------------------------------------------------------------------
    def ipc_chunks(self) -> Iterator[bytearray]:
        """The result as consecutive pieces of one Arrow IPC stream."""
        if self._reader is not None:
            raise RuntimeError("this result is already being read as record batches")
        while (chunk := self._next_data()) is not None:
            yield chunk

    def _open_reader(self) -> pa.ipc.RecordBatchStreamReader:
        if self._reader is None:
            self._reader = open_ipc_stream(self._next_data)
        return self._reader

    @property
    def schema(self) -> pa.Schema:
        return self._open_reader().schema

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        reader = self._open_reader()
        while True:
            try:
                yield reader.read_next_batch()
            except StopIteration:
                break
        # Consume the END frame that follows the IPC end-of-stream marker.
        while self._next_data() is not None:
            pass

    def read_all(self) -> pa.Table:
        schema = self.schema
        return pa.Table.from_batches(list(self), schema=schema)

    def close(self) -> None:
        """Cancel the query if it is still running; the worker goes back to the pool."""
        worker = self._worker
        if worker is None:
            return
        try:
            worker.send(encode(Kind.CANCEL, self._seq.to_bytes(4, "big")))
            self._owed_credit = False
            # Drain what was already in flight (at most the credit window) up to END/ERROR.
            for _ in range(WINDOW + 64):
                if self._next_data() is None:
                    break
            else:
                self._finish(kill=True)
        except P2P2PError:
            # The worker is gone (killed by ``abort``, or it died): its slot comes back.
            self._finish(kill=True)

    def abort(self) -> None:
        """Stop the query now, from any thread: its worker process is killed.

        For an answer that must end while another thread may be blocked reading it (a
        viewer's access was removed): that reader sees the worker gone and cleans up, and
        a new worker takes the next query.
        """
        # Under the lock that _finish takes: a worker this stream has already handed back
        # to the pool (its reader finished on another thread a moment ago) is serving
        # someone else's query now, and must not be killed for this one.
        with self._owning:
            worker = self._worker
            if worker is not None and worker.alive:
                self._aborted = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(worker.proc.pid, signal.SIGKILL)

    def __enter__(self) -> ResultStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if self._worker is not None:
            try:
                self.close()
            except Exception:
                pass


def _widen_pipe(fd: int) -> None:
    """Results move in MiB-sized frames; a 1 MiB pipe (Linux) saves many wake-ups."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass


def encode_params(params: Params) -> tuple[bytes, str | None]:
    """Parameters as a one-row Arrow table: types survive the trip to the worker."""
    if params is None:
        return b"", None
    if isinstance(params, Mapping):
        names = [str(k) for k in params]
        values = list(params.values())
        style = "named"
        for name in names:
            if not name.isidentifier():
                raise BadParameters(f"parameter name {name!r} must be an identifier")
    elif isinstance(params, str | bytes):
        raise BadParameters("parameters must be a mapping or a list, not a single string")
    else:
        values = list(params)
        names = [f"p{i + 1}" for i in range(len(values))]
        style = "positional"
    try:
        table = pa.table(
            {name: pa.array([value]) for name, value in zip(names, values, strict=True)}
        )
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        raise BadParameters(f"a parameter value cannot be sent to the store: {exc}") from None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes(), style
