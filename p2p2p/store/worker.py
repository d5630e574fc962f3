"""The sandboxed process that owns a store's only DuckDB handle.

Started by ``Executor`` as ``python -I -m p2p2p.store.worker IN_FD OUT_FD PATH LIMITS_JSON
PRIVATE_DIR``. It confines itself (``sandbox``), opens the store locked down
(``lockdown``), then serves one request at a time over two pipes (``frames``):

* every statement is checked by ``policy`` before DuckDB executes anything;
* results stream as an Arrow IPC stream in DATA frames; the worker only sends a frame
  when it holds a credit from the executor, so a slow reader pauses the query instead of
  piling up memory;
* a watchdog thread interrupts DuckDB once the query has worked ``timeout_s`` (time
  spent waiting for the reader does not count); the executor kills the whole process if
  even that does not stop it.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import re
import select
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

# Imported with the module, so before the worker confines itself (Landlock closes the
# filesystem once the store is open).
import pyarrow as pa
import pyarrow.ipc

from ..errors import (
    BadParameters,
    P2P2PError,
    QueryFailed,
    QueryRefused,
    QueryTimeout,
    ResourceExhausted,
    ResultTooLarge,
)
from . import sandbox
from .limits import Limits
from .pipe import HEADER, MEMORY_EXIT, Kind, encode_json, parse_header
from .policy import Catalog

T = TypeVar("T")
BATCH_ROWS = 65_536
CHECK_CACHE = 512
COMPRESSIONS = ("lz4", "zstd")
MAX_REQUEST = 64 << 20
# Less than this much Arrow output waits for the next batch or the end, so a small result
# leaves as one write (one DATA frame, together with END) instead of three.
COALESCE_BYTES = 256 << 10
COMPRESS_FROM = 16 << 10
MEMORY_GRACE_S = 1.0
SHOW_TABLES = re.compile(r"\s*SHOW\s+(ALL\s+)?TABLES\s*;?\s*", re.IGNORECASE)


class _Cancelled(Exception):
    pass


class Watchdog:
    """Interrupts DuckDB once a query has worked longer than its budget, or used too much.

    Memory is the worker's resident set, read from the kernel, so it counts what DuckDB's
    own accounting does not (a huge list or string built inside one function call). Over
    ``soft_mb`` the query is interrupted; over ``hard_mb`` (one call that an interrupt
    cannot stop) the worker exits with ``MEMORY_EXIT`` and the executor reports the
    query as out of memory and starts a new worker.
    """

    def __init__(self, interrupt: Callable[[], None], soft_mb: int = 0, hard_mb: int = 0) -> None:
        self._interrupt = interrupt
        self._soft = soft_mb << 20
        self._hard = hard_mb << 20
        self.memory_fired = False
        self._over_since = 0.0
        self._lock = threading.Lock()
        self._budget = 0.0
        self._used = 0.0
        self._active_since: float | None = None
        self._busy = threading.Event()  # set while DuckDB works: the watchdog sleeps otherwise
        self.fired = False
        threading.Thread(target=self._run, name="p2p2p-watchdog", daemon=True).start()

    def start_query(self, budget: float) -> None:
        with self._lock:
            self._budget, self._used, self._active_since, self.fired = budget, 0.0, None, False
            self.memory_fired, self._over_since = False, 0.0

    def run(self, fn: Callable[[], T]) -> T:
        with self._lock:
            self._active_since = time.monotonic()
        self._busy.set()
        try:
            return fn()
        finally:
            self._busy.clear()
            with self._lock:
                if self._active_since is not None:
                    self._used += time.monotonic() - self._active_since
                self._active_since = None

    @property
    def used(self) -> float:
        return self._used

    def _run(self) -> None:
        while True:
            self._busy.wait()
            time.sleep(0.02)
            with self._lock:
                over = (
                    self._active_since is not None
                    and self._used + time.monotonic() - self._active_since > self._budget
                )
                if over:
                    self.fired = True
            rss = resident_bytes() if self._soft else 0
            now = time.monotonic()
            if self._soft and rss > self._soft:
                self._over_since = self._over_since or now
                self.memory_fired = over = True
            else:
                self._over_since = 0.0
            # Past the hard bound, or still over the soft one a second after the first
            # interrupt: one call is allocating and no interrupt will stop it.
            if (self._hard and rss > self._hard) or (
                self._over_since and now - self._over_since > MEMORY_GRACE_S
            ):
                os._exit(MEMORY_EXIT)
            if over:
                # DuckDB can miss an interrupt that lands between operators: repeat it.
                self._interrupt()


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _open_statm() -> int:
    # Opened at import, before Landlock closes the filesystem; pread re-reads it live.
    try:
        return os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1


_STATM = _open_statm()


def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")  # already mapped: no file is read
    except OSError:
        return None


_LIBC = _libc()


def give_back_memory(above: int) -> None:
    """Return freed heap to the kernel after a big query, so the next one starts low.

    glibc keeps freed memory mapped; left resident, a finished query would count against
    the next query's resident bound.
    """
    if _LIBC is not None and resident_bytes() > above:
        _LIBC.malloc_trim(0)


def resident_bytes() -> int:
    """This process's resident set size (0 where /proc is not there to say)."""
    try:
        return int(os.pread(_STATM, 128, 0).split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class Worker:
    def __init__(
        self, fd_in: int, fd_out: int, path: str, limits: Limits, private_dir: str
    ) -> None:
        self.fd_in, self.fd_out = fd_in, fd_out
        self.path, self.limits, self.private_dir = path, limits, private_dir
        self.query_limits = limits
        self.seq = 0
        # Statements that passed the policy, oldest first, by (text, grant).
        # The value: the text to run instead (a limited caller's catalog listings filtered).
        self.checked: dict[tuple[str, frozenset[tuple[str, str]] | None], str] = {}
        self.grants: dict[tuple[str, ...], Catalog] = {}
        self.relations: dict[str, Any] = {}  # statements made ready to run, by their text

    # -- pipe I/O --------------------------------------------------------------
    def send(self, frame: bytes | list[Any]) -> None:
        parts = [frame] if isinstance(frame, bytes) else frame
        total = sum(len(p) for p in parts)
        views = [memoryview(p) for p in parts]
        while total:
            written = os.writev(self.fd_out, views)
            total -= written
            while views and written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            if views and written:
                views[0] = views[0][written:]

    def read_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            chunk = os.readv(self.fd_in, [view[got:]])
            if chunk == 0:
                raise EOFError
            got += chunk
        return bytes(buf)

    def read_frame(self) -> tuple[Kind, bytes]:
        kind, length = parse_header(self.read_exact(HEADER.size), MAX_REQUEST)
        return kind, self.read_exact(length) if length else b""

    def send_error(self, exc: P2P2PError) -> None:
        self.send(encode_json(Kind.ERROR, exc.to_dict()))

    # -- lifecycle ---------------------------------------------------------------
    def serve(self) -> None:
        import duckdb

        from . import lockdown

        confinement = sandbox.limit_resources(self.limits.effective_address_space_mb)
        try:
            con = lockdown.open_store(self.path, self.limits, self.private_dir)
            catalog = lockdown.catalog(con)
        except P2P2PError as exc:
            self.send_error(exc)
            return
        confinement += sandbox.landlock(sandbox.python_paths())
        self.con = con
        self.catalog = catalog
        self.duckdb = duckdb
        self.watchdog = Watchdog(
            con.interrupt, self.limits.resident_soft_mb, self.limits.resident_hard_mb
        )
        self.send(
            encode_json(
                Kind.READY,
                {
                    "pid": os.getpid(),
                    "database": catalog.database,
                    "relations": catalog.names(),
                    "sandbox": confinement,
                    "duckdb": duckdb.__version__,
                },
            )
        )
        while True:
            try:
                kind, payload = self.read_frame()
            except EOFError:
                return
            try:
                if kind is Kind.QUERY:
                    self.handle_query(json.loads(payload))
                elif kind is Kind.SCHEMA:
                    self.query_limits = self.limits
                    self.watchdog.start_query(self.limits.timeout_s)
                    request = json.loads(payload) if payload else {}
                    granted = self.catalog_for(request.get("tables"))
                    limited = granted if granted.limited else None
                    self.send(
                        encode_json(
                            Kind.INFO,
                            self.guarded(
                                functools.partial(lockdown.describe, con, granted=limited)
                            ),
                        )
                    )
                # A stray CREDIT/CANCEL after a finished query is harmless: ignore it.
            except P2P2PError as exc:
                self.send_error(exc)
            except (BrokenPipeError, EOFError):
                raise
            except Exception as exc:
                # A bug here must cost one query, not the worker; the message is ours, not
                # the store's, so it is safe to show.
                self.send_error(
                    P2P2PError(f"internal error in the store worker: {type(exc).__name__}: {exc}")
                )
            finally:
                give_back_memory(self.limits.memory_limit_mb << 19)

    def guarded(self, fn: Callable[[], T]) -> T:
        """Run a DuckDB call under the watchdog and turn its errors into ours."""
        duckdb = self.duckdb
        timeout = self.query_limits.timeout_s
        try:
            result = self.watchdog.run(fn)
        except duckdb.InterruptException:
            if self.watchdog.memory_fired:
                raise self.out_of_memory() from None
            raise self.timed_out(timeout) from None
        except duckdb.OutOfMemoryException:
            raise self.out_of_memory() from None
        except MemoryError:
            raise ResourceExhausted(
                "the query needed more memory than the worker may use"
            ) from None
        except (duckdb.Error, OSError, pa.ArrowException) as exc:
            # Errors raised while Arrow pulls batches arrive as OSError/ArrowException
            # carrying DuckDB's message.
            text = str(exc).strip()
            if self.watchdog.memory_fired:
                raise self.out_of_memory() from None
            if self.watchdog.fired or "INTERRUPT" in text:
                raise self.timed_out(timeout) from None
            if "Out of Memory" in text or "failed to allocate" in text:
                raise self.out_of_memory() from None
            raise QueryFailed(text) from None
        # DuckDB only looks for an interrupt between tasks, so a call can finish after the
        # watchdog fired; its answer is over budget all the same and is not returned.
        if self.watchdog.memory_fired:
            raise self.out_of_memory()
        if self.watchdog.fired:
            raise self.timed_out(timeout)
        return result

    @staticmethod
    def timed_out(timeout: float) -> QueryTimeout:
        return QueryTimeout(
            f"the query ran longer than {timeout:g} s and was stopped", timeout_s=timeout
        )

    def out_of_memory(self) -> ResourceExhausted:
        return ResourceExhausted(
            f"the query needed more than the store's memory limit ({self.limits.memory_limit_mb} MB)"
        )

    # -- queries -------------------------------------------------------------
    def catalog_for(self, tables: Any) -> Catalog:
        """What a caller may read: the whole store, or the relations it was granted."""
        if tables is None:
            return self.catalog
        if not isinstance(tables, list) or not all(isinstance(t, str) for t in tables):
            raise BadParameters("tables must be a list of table names")
        key = tuple(sorted({t.lower() for t in tables}))
        granted = self.grants.get(key)
        if granted is None:
            granted = _remember(self.grants, key, self.catalog.granted(key))
        return granted

    def check(self, sql: str, limits: Limits, catalog: Catalog | None = None) -> str:
        """Check ``sql`` for this caller; returns the text to run (``sql`` itself, or for
        a limited caller with its catalog listings filtered)."""
        from . import policy

        catalog = catalog or self.catalog
        policy.check_text(sql, limits.max_sql_chars)
        # The catalog is fixed for the worker's life (the store is read-only), so a text
        # that passed once passes again: dashboards and clients repeat their statements.
        key = (sql, catalog.relations if catalog.limited else None)
        if key in self.checked:
            return self.checked[key]
        try:
            runnable = self.check_parsed(sql, catalog)
        except RecursionError:
            raise QueryRefused(
                "too-complex", "the statement is nested too deeply to check"
            ) from None
        return _remember(self.checked, key, runnable)

    def check_parsed(self, sql: str, catalog: Catalog) -> str:
        from . import policy
        from .lockdown import first_row

        duckdb = self.duckdb
        kind = self.statement_kind(sql)
        inner = sql
        if kind == "EXPLAIN":
            offsets = [o for o, t in duckdb.tokenize(sql) if t != duckdb.token_type.comment]
            inner = policy.explain_inner(sql, offsets)
            if self.statement_kind(inner) == "EXPLAIN":
                raise QueryRefused("read-only-kind", "EXPLAIN EXPLAIN is not supported")
            if catalog.limited:
                raise policy.not_granted("EXPLAIN (a plan names the tables behind a view)", catalog)
        row = first_row(self.con, "SELECT json_serialize_sql(?::VARCHAR)", [inner])
        tree = json.loads(row[0]) if row else {"error": True}
        policy.check_tree(tree, catalog)
        if not catalog.limited:
            return sql
        filtered, replaced = policy.filter_catalog(tree, catalog, self.parse_node)
        if not replaced:
            return sql
        text = first_row(self.con, "SELECT json_deserialize_sql(?::JSON)", [json.dumps(filtered)])
        if not text or not text[0]:
            raise QueryRefused("unparseable", "the statement could not be rewritten for your grant")
        return str(text[0])

    def parse_node(self, sql: str) -> dict[str, Any]:
        """DuckDB's parse of one trusted SELECT of ours, as the query node of a tree."""
        from .lockdown import first_row

        row = first_row(self.con, "SELECT json_serialize_sql(?::VARCHAR)", [sql])
        node: dict[str, Any] = json.loads(row[0])["statements"][0]["node"]
        return node

    def statement_kind(self, sql: str) -> str:
        """The kind of the one statement in ``sql`` (refusing anything else)."""
        from . import policy

        try:
            statements = self.con.extract_statements(sql)
            kinds = [str(s.type) for s in statements]
        except self.duckdb.Error as exc:
            raise QueryFailed(str(exc).strip()) from None
        except ValueError:
            # The Python client has no name for some statement types (UPDATE EXTENSIONS).
            raise QueryRefused("read-only-kind", "this kind of statement is not allowed") from None
        policy.check_kinds(kinds)
        return kinds[0].rsplit(".", 1)[-1].upper()

    def read_params(self, header: dict[str, Any]) -> Any:
        style = header.get("params")
        if style is None:
            return None
        kind, payload = self.read_frame()
        if kind is not Kind.PARAMS:
            raise BadParameters("parameters were announced but not sent")
        try:
            table = pa.ipc.open_stream(payload).read_all()
            row = table.to_pylist()[0] if table.num_rows else {}
        except (pa.ArrowException, ValueError) as exc:
            raise BadParameters(f"the parameters could not be read: {exc}") from None
        if style == "positional":
            return [row[name] for name in table.column_names]
        return row

    def handle_query(self, header: dict[str, Any]) -> None:
        limits = self.limits.tightened(**{k: header.get(k) for k in Limits.QUERY_FIELDS})
        params = self.read_params(header)
        sql = str(header.get("sql", ""))
        self.query_limits = limits
        self.watchdog.start_query(limits.timeout_s)
        started = time.monotonic()
        self.seq = int(header.get("seq", 0))
        catalog = self.catalog_for(header.get("tables"))
        listing = SHOW_TABLES.fullmatch(sql) if catalog.limited else None
        if listing is not None:
            # The one catalog listing a limited caller gets: only what it may read.
            sql, params = self.granted_listing(bool(listing.group(1)), catalog), None
        else:
            sql = self.check(sql, limits, catalog)
        relation = self.relation(sql, params)
        reader = self.guarded(lambda: relation.to_arrow_reader(BATCH_ROWS))
        try:
            window = max(1, min(8, int(header.get("window", 2))))
            end, rest = self.stream(reader, limits, window, started, header.get("compression"))
        finally:
            # Release the result before answering: tearing down a query cut short (an
            # endless recursive CTE truncated at max_rows) can block, and must do so
            # here, under the watchdog, not later inside the next caller's query.
            self.release(reader)
        self.send([*self.data_frame(rest), encode_json(Kind.END, end)])

    def relation(self, sql: str, params: Any) -> Any:
        """DuckDB's relation for a statement: parsed and bound, not yet run. One without
        parameters is kept and run again when the same text comes back (dashboards and
        clients repeat theirs): a relation holds no result, each run reads the store
        anew, and making one parses and binds the statement, which costs as much again
        as running a small query (0.11-0.18 ms, measured)."""
        kept = self.relations.get(sql) if params is None else None
        if kept is not None:
            return kept
        try:
            relation = self.guarded(lambda: self.con.sql(sql, params=params))
        except QueryFailed as exc:
            if "parameter" in exc.message.lower():
                raise BadParameters(exc.message) from None
            raise
        if relation is None:
            raise QueryFailed("the statement produced no result")
        return _remember(self.relations, sql, relation) if params is None else relation

    @staticmethod
    def granted_listing(everything: bool, catalog: Catalog) -> str:
        """``SHOW [ALL] TABLES`` over only the granted relations (trusted SQL of ours)."""
        pairs = (
            ", ".join(
                "(" + ", ".join("'" + part.replace("'", "''") + "'" for part in pair) + ")"
                for pair in sorted(catalog.relations)
            )
            or "(NULL, NULL)"
        )
        if everything:
            return (
                "SELECT * FROM (SHOW ALL TABLES) "
                f"WHERE (lower(schema), lower(name)) IN ({pairs}) ORDER BY schema, name"
            )
        # SHOW TABLES lists the current schema (main) only, as DuckDB's own does.
        return (
            "SELECT name FROM (SHOW ALL TABLES) "
            f"WHERE lower(schema) = 'main' AND (lower(schema), lower(name)) IN ({pairs}) "
            "ORDER BY name"
        )

    def release(self, *handles: Any) -> None:
        self.watchdog.start_query(0.0)  # any time spent now is over budget: interrupt
        try:
            self.watchdog.run(lambda: [h.close() for h in handles if hasattr(h, "close")])
        except Exception:
            pass

    def stream(
        self,
        reader: Any,
        limits: Limits,
        credits: int,
        started: float,
        compression: str | None = None,
    ) -> tuple[dict[str, Any], list[Any]]:
        """Stream the result; returns the END statistics and the last unsent pieces."""
        sink = _Collector()
        writer: pa.ipc.RecordBatchStreamWriter | None = None

        def writer_for(first: pa.RecordBatch | None) -> pa.ipc.RecordBatchStreamWriter:
            # Compressed IPC buffers (lz4/zstd) are decoded transparently by any Arrow
            # reader. A small first batch (most often the whole answer) goes uncompressed:
            # a few bytes fewer save nothing on any line, and a compressed stream costs
            # the reader a trip through its thread pool (100 us for `SELECT 42`).
            small = first is None or first.nbytes < COMPRESS_FROM
            codec = compression if compression in COMPRESSIONS and not small else None
            options = pa.ipc.IpcWriteOptions(compression=codec)
            return pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), reader.schema, options=options)

        rows = 0
        truncated = ""
        cancelled = False
        try:
            while True:
                try:
                    batch = self.guarded(reader.read_next_batch)
                except StopIteration:
                    break
                if batch.num_rows == 0:
                    continue
                if rows >= limits.max_rows:
                    truncated = "max_rows"
                    break
                writer = writer or writer_for(batch)  # its schema counts against max_bytes
                take = min(batch.num_rows, limits.max_rows - rows)
                piece = batch.slice(0, take)
                budget = limits.max_bytes - sink.written
                if piece.nbytes > budget:
                    per_row = max(1.0, piece.nbytes / max(1, take))
                    take = int(budget / per_row)
                    while take > 0 and batch.slice(0, take).nbytes > budget:
                        take = take * 3 // 4
                    if take == 0 and rows == 0:
                        raise ResultTooLarge(
                            f"the first row alone exceeds the result limit of {limits.max_bytes} bytes"
                        )
                    piece = batch.slice(0, take)
                    truncated = "max_bytes"
                elif take < batch.num_rows:
                    truncated = "max_rows"
                if take:
                    writer.write_batch(piece)
                    rows += take
                    if sink.pending >= COALESCE_BYTES:
                        credits = self.flush(sink, credits)
                if truncated:
                    break
        except _Cancelled:
            cancelled = True
        (writer or writer_for(None)).close()
        rest = [] if cancelled else sink.take()
        return {
            "rows": rows,
            "bytes": sink.written,
            "truncated": bool(truncated),
            "truncated_by": truncated or None,
            "cancelled": cancelled,
            "db_seconds": round(self.watchdog.used, 6),
            "seconds": round(time.monotonic() - started, 6),
        }, rest

    def flush(self, sink: _Collector, credits: int) -> int:
        """Send what the writer produced, waiting for a credit first; returns credits left."""
        while credits <= 0 or self.pending_control():
            kind, payload = self.read_frame()
            if int.from_bytes(payload, "big") != self.seq:
                continue  # a late credit or cancel for an earlier query
            if kind is Kind.CANCEL:
                raise _Cancelled
            if kind is Kind.CREDIT:
                credits += 1
        self.send(self.data_frame(sink.take()))
        return credits - 1

    @staticmethod
    def data_frame(parts: list[Any]) -> list[Any]:
        """One DATA frame from the writer's pieces, without joining them (none if empty)."""
        size = sum(len(p) for p in parts)
        return [HEADER.pack(Kind.DATA, size), *parts] if size else []

    def pending_control(self) -> bool:
        readable, _, _ = select.select([self.fd_in], [], [], 0)
        return bool(readable)


def _remember(cache: dict[Any, T], key: Any, value: T) -> T:
    """Keep ``value`` under ``key`` in one of the worker's caches, which hold at most
    CHECK_CACHE entries: the oldest goes first."""
    if len(cache) >= CHECK_CACHE:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


class _Collector:
    """A write-only file for the Arrow IPC writer that hands over what was written."""

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.closed = False
        self.pending = 0  # bytes written and not yet taken
        self.written = 0  # bytes written in all

    def write(self, data: Any) -> int:
        # Large bodies arrive as pyarrow Buffers; holding the reference keeps the memory
        # alive until writev() has sent it, so nothing is copied here.
        self.parts.append(data)
        self.pending += len(data)
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def take(self) -> list[Any]:
        parts, self.parts = self.parts, []
        self.pending = 0
        return parts


def main(argv: list[str]) -> int:
    fd_in, fd_out, path, limits_json, private_dir = argv
    limits = Limits.from_mapping(json.loads(limits_json))
    worker = Worker(int(fd_in), int(fd_out), path, limits, private_dir)
    try:
        worker.serve()
    except (BrokenPipeError, EOFError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
