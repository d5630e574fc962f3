"""A DuckDB file on this machine: yours, so queried with your trust unless you ask otherwise.

``LocalStore(path)`` runs SQL in this process's own DuckDB, read-only, with the limits
you set (none by default): big queries spill to a private temporary folder, and your own
files (``read_parquet('x.parquet')``, CSV) are readable, as in plain DuckDB.
``LocalStore(path, as_viewer=True)`` runs it instead through the sandboxed executor and
lockdown that serve a share of this file, so an owner sees exactly what a viewer would
get, refusals included.

When this process already holds the file open for writing (a notebook that is building
the store), DuckDB lets no second connection in; the caller then passes that connection
and the query runs on a cursor of it (``via`` says so).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from ..errors import (
    BadLimits,
    BadParameters,
    QueryFailed,
    QueryTimeout,
    ResourceExhausted,
    ResultTooLarge,
    StoreLocked,
)
from ..store.arrow import to_pandas
from ..store.executor import Executor, Params, ResultInfo
from ..store.file import check_store_file
from ..store.lockdown import classify_open_error, describe
from .results import PROGRESS_EVERY_S, Progress, collect

__all__ = ["PROGRESS_EVERY_S", "LocalStore", "OwnLimits", "Progress", "collect"]

BATCH_ROWS = 65_536


@dataclasses.dataclass(frozen=True)
class OwnLimits:
    """What you allow your own queries (``%config P2PMagics.local_limits``). ``None``:
    no limit. ``memory_limit`` and ``threads`` are DuckDB's own settings ("8GB", 4);
    unset, DuckDB's defaults apply (80% of RAM, every core)."""

    timeout_s: float | None = None
    max_rows: int | None = None
    max_bytes: int | None = None
    memory_limit: str | None = None
    threads: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> OwnLimits:
        data = dict(data or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise BadLimits(
                f"unknown local limit(s): {', '.join(unknown)} (known: {', '.join(known)})"
            )
        for name in ("timeout_s", "max_rows", "max_bytes", "threads"):
            value = data.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise BadLimits(f"local limit {name} must be a positive number, got {value!r}")
        memory = data.get("memory_limit")
        if memory is not None and not isinstance(memory, str):
            raise BadLimits(
                f'local limit memory_limit is DuckDB\'s text, like "8GB", got {memory!r}'
            )
        return cls(**data)

    def tightened(self, **requested: Any) -> OwnLimits:
        """A cell's ``--limit``/``--timeout``: within yours, never past them."""
        changes = {}
        for name, value in requested.items():
            if value is None:
                continue
            if name not in ("timeout_s", "max_rows", "max_bytes"):
                raise BadLimits(f"limit {name} cannot be set per query")
            current = getattr(self, name)
            changes[name] = value if current is None else min(value, current)
        return dataclasses.replace(self, **changes)


# A connection of the caller's that holds the file open for writing: (its variable
# name, the connection, the name the file is attached under).
Writer = tuple[str, duckdb.DuckDBPyConnection, str]
# Our read-only connection is let go after this long unused: while it is open, no other
# process can write the file (a script rebuilding the store would be refused).
IDLE_CLOSE_S = 30.0


class LocalStore:
    """A DuckDB file on this machine (see the module docstring for the two trusts).

    ``writer``: called before each query, it names a connection of the caller's that
    holds the file open for writing, if any (the notebook's own ``con``); the query then
    runs on a cursor of it, as DuckDB lets no second connection in."""

    def __init__(
        self,
        path: str,
        *,
        as_viewer: bool = False,
        limits: Mapping[str, Any] | None = None,
        writer: Callable[[], Writer | None] | None = None,
    ) -> None:
        self.path = path
        self.as_viewer = as_viewer
        self.last_info = ResultInfo()
        self.executor: Executor | None = None
        self._own: _OwnConnection | None = None
        if as_viewer:
            if limits:
                raise BadLimits(
                    "as a viewer the share's limits apply: set them with %share --timeout/"
                    "--max-rows/--max-bytes, not local limits"
                )
            self.executor = Executor(path)
        else:
            self._own = _OwnConnection(path, OwnLimits.from_mapping(limits), writer)

    @property
    def via(self) -> str:
        """How the last query read the file, in words."""
        if self._own is None:
            return "as a viewer of a share of it would (the share's lockdown and limits)"
        if self._own.used_writer:
            return (
                f"through this notebook's own connection `{self._own.used_writer}`, which "
                "holds the file open for writing"
            )
        return "read-only, in this process, with your own limits"

    @property
    def writer_used(self) -> str:
        """The variable of the caller's writer connection the last query went through."""
        return "" if self._own is None else self._own.used_writer

    @property
    def limits(self) -> OwnLimits | None:
        return None if self._own is None else self._own.limits

    def set_limits(self, limits: Mapping[str, Any] | None) -> None:
        """New own limits (``%config P2PMagics.local_limits`` changed)."""
        if self._own is not None:
            self._own.limits = OwnLimits.from_mapping(limits)

    def query_arrow(
        self, sql: str, params: Params = None, progress: Progress | None = None, **limits: Any
    ) -> pa.Table:
        if self.executor is not None:
            with self.executor.query(sql, params, **limits) as stream:
                table = collect(stream.schema, iter(stream), progress)
                self.last_info = stream.info
            return table
        assert self._own is not None
        table, self.last_info = self._own.query(sql, params, progress, **limits)
        return table

    def query(self, sql: str, params: Params = None, **limits: Any) -> pd.DataFrame:
        return to_pandas(self.query_arrow(sql, params, **limits))

    def export_arrow(self, sql: str, params: Params = None, **limits: Any) -> pa.Table:
        """As ``query_arrow``: a file here has no owner to ask (or tell) about a download."""
        return self.query_arrow(sql, params, **limits)

    def query_progress(self) -> float | None:
        """How far the running query is, 0-100, when DuckDB can tell (own trust only)."""
        return None if self._own is None else self._own.progress()

    def schema(self) -> dict[str, Any]:
        if self.executor is not None:
            return self.executor.schema()
        assert self._own is not None
        return self._own.schema()

    def release(self) -> None:
        """Let go of the file until the next query (own trust): while our read-only
        connection is open, nobody, this process included, may open it for writing."""
        if self._own is not None:
            self._own.close_if_idle()

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()
        if self._own is not None:
            self._own.close()


def _counting(cursor: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor that keeps count of how far its query is (``query_progress``), without
    DuckDB's own bar, which would print into the cell. A cursor does not inherit these
    settings from its connection, hence on each one."""
    cursor.execute("SET enable_progress_bar = true")
    cursor.execute("SET enable_progress_bar_print = false")
    return cursor


class _OwnConnection:
    """This process's DuckDB on the file: a cursor per query, so a running query can be
    interrupted (timeout, Ctrl+C) without touching others."""

    def __init__(
        self, path: str, limits: OwnLimits, writer: Callable[[], Writer | None] | None
    ) -> None:
        # Exists-only: opening the file here would close a descriptor of it, and that
        # drops every POSIX lock this process holds on it, a writer's included.
        check_store_file(path, header=False)
        self.path = path
        self.limits = limits
        self.used_writer = ""
        self._writer = writer
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._idle: threading.Timer | None = None
        self._last_used = 0.0
        self._queries = 0
        self._running: duckdb.DuckDBPyConnection | None = None
        # Spill where nobody else looks, not next to the store (often not writable).
        self.spill_dir = tempfile.mkdtemp(prefix="p2p2p-spill-")

    def _open(self) -> duckdb.DuckDBPyConnection:
        try:
            # No config: any other config than an existing read-only connection's (the
            # notebook's own, say) is refused by DuckDB's instance cache.
            con = duckdb.connect(self.path, read_only=True)
        except duckdb.ConnectionException as exc:
            if "different configuration" in str(exc):
                raise StoreLocked(
                    f"this process already has {self.path} open for writing, through a "
                    "connection p2p2p cannot find in the notebook's variables: query it "
                    "with that connection, or close it",
                    path=self.path,
                ) from None
            raise classify_open_error(self.path, exc) from None
        except duckdb.Error as exc:
            raise classify_open_error(self.path, exc) from None
        con.execute("SET temp_directory = ?", [self.spill_dir])
        return con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        found = self._writer() if self._writer is not None else None
        if found is not None:
            variable, connection, database = found
            self.used_writer = variable
            cursor = connection.cursor()
            # The writer may have the store attached under a name of its own.
            cursor.execute(f'USE "{database.replace(chr(34), chr(34) * 2)}"')
            return _counting(cursor)
        self.used_writer = ""
        with self._lock:
            if self._con is None:
                self._con = self._open()
            self._queries += 1
            cursor = self._con.cursor()
        # Settings of the database instance (ours, read-only), shared by its cursors.
        if self.limits.memory_limit is not None:
            _setting(cursor, "memory_limit", self.limits.memory_limit)
        if self.limits.threads is not None:
            _setting(cursor, "threads", str(int(self.limits.threads)))
        return _counting(cursor)

    def done(self, cursor: duckdb.DuckDBPyConnection) -> None:
        cursor.close()
        if self.used_writer:
            return
        with self._lock:
            self._queries -= 1
            self._last_used = time.monotonic()
            # One timer at a time, not one per query (a thread each, a millisecond of a
            # small query): when it fires early it waits out the rest.
            if self._idle is None:
                self._start_idle_timer(IDLE_CLOSE_S)

    def _start_idle_timer(self, after_s: float) -> None:
        self._idle = threading.Timer(after_s, self._on_idle_timer)
        self._idle.daemon = True
        self._idle.start()

    def _on_idle_timer(self) -> None:
        with self._lock:
            self._idle = None
            left = self._last_used + IDLE_CLOSE_S - time.monotonic()
            if self._con is not None and (self._queries or left > 0):
                self._start_idle_timer(IDLE_CLOSE_S if self._queries else max(left, 0.05))
                return
        self.close_if_idle()

    def close_if_idle(self) -> None:
        with self._lock:
            if self._queries == 0 and self._con is not None:
                with contextlib.suppress(duckdb.Error):
                    self._con.close()
                self._con = None

    def progress(self) -> float | None:
        running = self._running
        if running is None:
            return None
        try:
            value = float(running.query_progress())
        except (duckdb.Error, TypeError, ValueError):
            return None
        return value if value >= 0 else None

    def query(
        self, sql: str, params: Params, progress: Progress | None, **requested: Any
    ) -> tuple[pa.Table, ResultInfo]:
        limits = self.limits.tightened(**requested)
        started = time.monotonic()
        cursor = self.cursor()
        timer: threading.Timer | None = None
        fired = threading.Event()
        if limits.timeout_s is not None:

            def stop() -> None:
                fired.set()
                cursor.interrupt()

            timer = threading.Timer(limits.timeout_s, stop)
            timer.daemon = True
            timer.start()
        self._running = cursor
        try:
            with _duckdb_errors(limits, fired):
                table, info = self._run(cursor, sql, params, progress, limits)
        finally:
            self._running = None
            if timer is not None:
                timer.cancel()
            self.done(cursor)
        info.seconds = time.monotonic() - started
        info.db_seconds = info.seconds
        return table, info

    @staticmethod
    def _run(
        cursor: duckdb.DuckDBPyConnection,
        sql: str,
        params: Params,
        progress: Progress | None,
        limits: OwnLimits,
    ) -> tuple[pa.Table, ResultInfo]:
        info = ResultInfo()
        relation = cursor.sql(sql, params=params or None)
        if relation is None:  # SET, CREATE TEMP … and the like: done, nothing to show
            return pa.table({}), info
        reader = relation.to_arrow_reader(BATCH_ROWS)
        kept: list[pa.RecordBatch] = []
        shown = time.monotonic()
        try:
            for batch in reader:
                if limits.max_rows is not None and info.rows >= limits.max_rows:
                    info.truncated, info.truncated_by = True, "max_rows"
                    break
                if limits.max_rows is not None and info.rows + batch.num_rows > limits.max_rows:
                    batch = batch.slice(0, limits.max_rows - info.rows)
                    info.truncated, info.truncated_by = True, "max_rows"
                if limits.max_bytes is not None and info.bytes + batch.nbytes > limits.max_bytes:
                    per_row = max(1.0, batch.nbytes / max(1, batch.num_rows))
                    take = int((limits.max_bytes - info.bytes) / per_row)
                    if take <= 0 and not kept:
                        raise ResultTooLarge(
                            f"the first row alone passes your local limit of "
                            f"{limits.max_bytes:,} bytes"
                        )
                    batch = batch.slice(0, max(0, take))
                    info.truncated, info.truncated_by = True, "max_bytes"
                kept.append(batch)
                info.rows += batch.num_rows
                info.bytes += batch.nbytes
                if info.truncated:
                    break
                if progress is not None and time.monotonic() - shown >= PROGRESS_EVERY_S:
                    progress(info.rows, info.bytes)
                    shown = time.monotonic()
            # Stopped exactly at the cap: one more batch tells "more exist" from "that was all".
            if (
                not info.truncated
                and info.rows == limits.max_rows
                and reader.read_next_batch().num_rows
            ):
                info.truncated, info.truncated_by = True, "max_rows"
        except StopIteration:
            pass
        finally:
            reader.close()
            relation.close()
        return pa.Table.from_batches(kept, schema=reader.schema), info

    def schema(self) -> dict[str, Any]:
        cursor = self.cursor()
        try:
            return describe(cursor)
        finally:
            self.done(cursor)

    def close(self) -> None:
        with self._lock:
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            # Only our own connection: the notebook's writer is the notebook's to close.
            if self._con is not None:
                with contextlib.suppress(duckdb.Error):
                    self._con.close()
                self._con = None
        shutil.rmtree(self.spill_dir, ignore_errors=True)


def _setting(cursor: duckdb.DuckDBPyConnection, name: str, value: str) -> None:
    try:
        cursor.execute(f"SET {name} = ?", [value])
    except duckdb.Error as exc:
        raise BadLimits(f"local limit {name}={value!r}: {str(exc).splitlines()[0]}") from None


@contextlib.contextmanager
def _duckdb_errors(limits: OwnLimits, timed_out: threading.Event) -> Iterator[None]:
    """DuckDB's exceptions as ours, with the same codes a share would give."""
    try:
        yield
    except duckdb.InterruptException:
        if timed_out.is_set():
            raise QueryTimeout(
                f"the query ran longer than your local limit of {limits.timeout_s:g} s and "
                "was stopped (%config P2PMagics.local_limits)",
                timeout_s=limits.timeout_s,
            ) from None
        raise KeyboardInterrupt from None
    except duckdb.OutOfMemoryException as exc:
        raise ResourceExhausted(
            f"DuckDB ran out of memory: {str(exc).splitlines()[0]} (local_limits memory_limit "
            "raises DuckDB's share of RAM; spilling goes to a temporary folder)"
        ) from None
    except (duckdb.Error, pa.ArrowException) as exc:
        text = str(exc).strip()
        if timed_out.is_set() or "INTERRUPT" in text.upper():
            raise QueryTimeout(
                f"the query ran longer than your local limit of {limits.timeout_s:g} s",
                timeout_s=limits.timeout_s,
            ) from None
        if isinstance(exc, duckdb.InvalidInputException) and "parameter" in text.lower():
            raise BadParameters(text) from None
        raise QueryFailed(text) from None
