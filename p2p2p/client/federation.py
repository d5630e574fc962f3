"""Many stores as one: the same statement on every store of a group, at once.

A coordinator with one share per site asks one question of all of them. Each store
answers on its own machine, concurrently; the answers are stacked into one table whose
first column, ``_source``, names the store each row came from. Columns are matched by
name: a column one store lacks is NULL in its rows, and a column whose types cannot be
combined is an error naming the stores and types.

A store that is offline, refuses the statement or does not answer in time gives no rows,
and is never dropped silently: ``last_info.sources`` (and a DataFrame's
``attrs["sources"]``) says which stores answered and what each of the others said;
``strict=True`` turns any such failure into ``SourcesFailed``.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa

from ..errors import (
    BadTarget,
    ColumnTypesDiffer,
    P2P2PError,
    QueryTimeout,
    SourcesFailed,
    printable,
)
from ..protocol.tunnel import LIVE_PATH
from ..store.arrow import to_pandas
from ..store.executor import Params, ResultInfo
from .local import LocalStore
from .remote import RemoteStore
from .target import Target

__all__ = ["SOURCE", "FanOutInfo", "SourceResult", "StoreGroup", "stack"]

SOURCE = "_source"
STORE_SOURCE = "_source_from_store"  # a store's own _source column, if it sends one
MAX_PARALLEL = 16  # stores asked at once; the rest wait their turn
DEFAULT_TIMEOUT_S = 120.0  # a store that has not answered by then counts as failed
DEFAULT_MAX_BYTES = 256 << 20  # per store, as a share's own default: asked, and enforced here

# (store name, rows so far, bytes so far, "running" | "done" | "failed")
SourceProgress = Callable[[str, int, int, str], None]


@dataclass
class SourceResult:
    """What one store of the group did with the statement."""

    name: str
    ok: bool = False
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    truncated: bool = False
    error: str | None = None  # the error's stable code
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.name,
            "ok": self.ok,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 4),
            "truncated": self.truncated,
            "error": self.error,
            "message": self.message,
        }


@dataclass
class FanOutInfo(ResultInfo):
    """A ``ResultInfo`` for the stacked result, plus each store's own outcome."""

    sources: list[SourceResult] = field(default_factory=list)

    @property
    def answered(self) -> list[str]:
        return [s.name for s in self.sources if s.ok]

    @property
    def failed(self) -> list[SourceResult]:
        return [s for s in self.sources if not s.ok]

    def describe(self, source: str) -> str:
        line = super().describe(source)
        answered = f"{len(self.answered)} of {len(self.sources)} stores answered"
        if self.failed:
            answered += " (no rows from " + ", ".join(s.name for s in self.failed) + ")"
        return f"{line} · {answered}"


Store = LocalStore | RemoteStore


class StoreGroup:
    """Several stores under one name; ``query`` asks them all at once.

    ``members`` maps each store's name (shown in ``_source``) to what opens it: a target
    text (link, alias, ``local:PATH``), a resolved ``Target``, or an open store.
    """

    def __init__(
        self,
        members: Mapping[str, str | Target | Store],
        name: str = "group",
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not members:
            raise BadTarget(f"the group {name!r} has no stores")
        self.name = name
        self.timeout_s = timeout_s
        self.members = dict(members)
        self._open: dict[str, Store] = {
            k: v for k, v in self.members.items() if isinstance(v, LocalStore | RemoteStore)
        }
        self._lock = threading.Lock()
        self.last_info = FanOutInfo()

    def __repr__(self) -> str:
        return f"StoreGroup({self.name!r}: {', '.join(self.members)})"

    def store(self, name: str) -> Store:
        """The member's store, opened on first use (and again after a failed open)."""
        with self._lock:
            opened = self._open.get(name)
        if opened is not None:
            return opened
        from . import open_target
        from .target import resolve

        member = self.members[name]
        opened = open_target(resolve(member) if isinstance(member, str) else member)  # type: ignore[arg-type]
        with self._lock:
            self._open[name] = opened
        return opened

    # -- asking -------------------------------------------------------------------
    def query_arrow(
        self,
        sql: str,
        params: Params = None,
        progress: Callable[[int, int], None] | None = None,
        strict: bool = False,
        source_progress: SourceProgress | None = None,
        **limits: Any,
    ) -> pa.Table:
        """Every store's answer, stacked, with ``_source`` first."""
        started = time.monotonic()
        names = list(self.members)
        results = {n: SourceResult(n) for n in names}
        tables: dict[str, pa.Table] = {}
        seen = {n: (0, 0) for n in names}
        seen_lock = threading.Lock()
        over = threading.Event()  # the group has answered: late stores report nothing more
        # Each store's answer is capped here too, not only by its owner: one store of a
        # group (its owner modified, say) must not fill the coordinator's memory.
        limits = {**limits, "max_bytes": limits.get("max_bytes") or DEFAULT_MAX_BYTES}

        def tell(name: str, rows: int, nbytes: int, state: str) -> None:
            if over.is_set():
                return
            with seen_lock:
                seen[name] = (rows, nbytes)
                total_rows = sum(r for r, _ in seen.values())
                total_bytes = sum(b for _, b in seen.values())
            if source_progress is not None:
                source_progress(name, rows, nbytes, state)
            if progress is not None:
                progress(total_rows, total_bytes)

        def ask(name: str) -> tuple[pa.Table, SourceResult]:
            begun = time.monotonic()
            tell(name, 0, 0, "running")
            store = self.store(name)
            table = store.query_arrow(
                sql, params, progress=lambda r, b: tell(name, r, b, "running"), **limits
            )
            info = store.last_info
            answered = SourceResult(name, True, table.num_rows, info.bytes)
            answered.truncated, answered.seconds = info.truncated, time.monotonic() - begun
            return table, answered

        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(MAX_PARALLEL, len(names)), thread_name_prefix="p2p2p-fanout"
        )
        try:
            futures = {pool.submit(ask, n): n for n in names}
            done, late = concurrent.futures.wait(futures, timeout=self.timeout_s)
            for future in done:
                name = futures[future]
                try:
                    tables[name], results[name] = future.result()
                    tell(name, results[name].rows, results[name].bytes, "done")
                except P2P2PError as exc:
                    _failed(results[name], exc, time.monotonic() - started)
                    tell(name, 0, 0, "failed")
                except Exception as exc:  # a bug in one store's path must not hide the rest
                    _failed(results[name], P2P2PError(f"{type(exc).__name__}: {exc}"), 0)
                    tell(name, 0, 0, "failed")
            for future in late:
                name = futures[future]
                future.cancel()
                _failed(
                    results[name],
                    QueryTimeout(f"no answer within {self.timeout_s:g} s"),
                    self.timeout_s,
                )
                tell(name, 0, 0, "failed")
                self._drop(name)  # its answer in flight is cut; the next query reconnects
        finally:
            over.set()
            pool.shutdown(wait=False, cancel_futures=True)
        ordered = [results[n] for n in names]
        info = FanOutInfo(sources=ordered, seconds=time.monotonic() - started)
        self.last_info = info
        # Types that do not combine are an error naming the store and the column (its
        # details say which store), never a silent cast nor a silently dropped store.
        table = stack([(n, tables[n]) for n in names if n in tables])
        if strict and info.failed:
            raise SourcesFailed(
                "not every store answered (--strict): "
                + "; ".join(f"{s.name} said: {printable(str(s.message))}" for s in info.failed)
            )
        info.rows = table.num_rows
        info.bytes = sum(s.bytes for s in ordered)
        info.truncated = any(s.truncated for s in ordered)
        if info.truncated:
            info.truncated_by = "a store's limit"
        return table

    def _drop(self, name: str) -> None:
        """Close a member's connection (an answer that came too late is cut with it)."""
        if isinstance(self.members[name], LocalStore | RemoteStore):
            return  # a store the caller opened is theirs to close
        with self._lock:
            store = self._open.pop(name, None)
        if store is not None:
            store.close()

    def query(self, sql: str, params: Params = None, **kwargs: Any) -> pd.DataFrame:
        """``query_arrow`` as a DataFrame; ``attrs["sources"]`` holds each store's outcome."""
        frame = to_pandas(self.query_arrow(sql, params, **kwargs))
        frame.attrs["sources"] = [s.to_dict() for s in self.last_info.sources]
        return frame

    def status(self) -> list[dict[str, Any]]:
        """Each store: online or not right now, when last seen, where its dashboard is.

        Asks each share's relay whether the share is routed (``/.p2p2p/live``, answered
        by the relay itself: no owner spends anything on it), all at once."""
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=min(MAX_PARALLEL, len(self.members))
        ) as pool:
            return list(pool.map(_member_status, self.members.items()))

    def close(self) -> None:
        with self._lock:
            stores, self._open = list(self._open.values()), {}
        for store in stores:
            store.close()


def _member_status(item: tuple[str, str | Target | Store]) -> dict[str, Any]:
    from . import aliases
    from .target import LinkTarget, LocalTarget, resolve

    name, member = item
    try:
        target = resolve(member) if isinstance(member, str) else member
    except P2P2PError as exc:
        return {"name": name, "state": "unknown", "detail": exc.message, "link": ""}
    if isinstance(target, RemoteStore):
        target = LinkTarget(target.link)
    if isinstance(target, LocalStore | LocalTarget):
        path = target.path
        exists = os.path.exists(path)
        return {"name": name, "state": "local" if exists else "missing", "detail": path, "link": ""}
    assert isinstance(target, LinkTarget)
    link = target.link
    try:
        answer = httpx.get(f"{link.share_url}{LIVE_PATH}", timeout=3.0, trust_env=False)
        state = "online" if answer.status_code == 200 else "offline"
        detail = "" if state == "online" else "the share is offline or revoked"
    except httpx.HTTPError as exc:
        state, detail = "offline", f"its relay does not answer ({type(exc).__name__})"
    alias = target.alias
    if state == "online" and alias:
        aliases.seen(alias, time.time())
    return {
        "name": name,
        "state": state,
        "detail": detail,
        "last_seen": time.time()
        if state == "online"
        else (aliases.last_seen(alias) if alias else None),
        "link": link.full,
        "relay": link.base,
    }


def _failed(result: SourceResult, exc: P2P2PError, seconds: float) -> None:
    result.ok, result.error, result.message = False, exc.code, exc.message
    result.seconds = seconds


def stack(parts: Sequence[tuple[str, pa.Table]]) -> pa.Table:
    """Tables from several stores as one, ``_source`` first, columns matched by name.

    A column missing from a store is NULL in its rows; numbers of different widths widen
    (as Arrow promotes them); other differences are a ``ColumnTypesDiffer`` that names
    the column and which store sent which type.
    """
    if not parts:
        return pa.table({SOURCE: pa.array([], pa.string())})
    parts = [(name, _own_source_renamed(table)) for name, table in parts]
    _check_types(parts)
    labelled = [
        table.add_column(0, SOURCE, pa.array([name] * table.num_rows, pa.string()))
        for name, table in parts
    ]
    try:
        return pa.concat_tables(labelled, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # _check_types should have said
        raise ColumnTypesDiffer(f"the stores' answers do not combine: {exc}") from None


def _looks_like(name: str, other: str) -> bool:
    """Whether two column names read the same (width forms, zero-width characters)."""
    plain = "".join(c for c in unicodedata.normalize("NFKC", name) if c.isprintable())
    return plain.strip().lower() == other


def _own_source_renamed(table: pa.Table) -> pa.Table:
    """A store's answer never decides ``_source``: a column of that name it sent itself
    (a store can answer anything), or one that only looks like it, keeps its values
    under another name."""
    if not any(_looks_like(n, SOURCE) for n in table.column_names):
        return table
    names = [STORE_SOURCE if _looks_like(n, SOURCE) else n for n in table.column_names]
    return table.rename_columns(names)


def _check_types(parts: Sequence[tuple[str, pa.Table]]) -> None:
    first: dict[str, tuple[str, pa.DataType]] = {}
    for name, table in parts:
        for column in table.schema:
            if pa.types.is_null(column.type):
                continue  # a column of NULLs only fits any type
            seen = first.setdefault(column.name, (name, column.type))
            if seen[1] == column.type:
                continue
            try:
                pa.unify_schemas(
                    [pa.schema([(column.name, seen[1])]), pa.schema([column])],
                    promote_options="permissive",
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                shown = printable(repr(column.name), 200)
                raise ColumnTypesDiffer(
                    f"column {shown} is {printable(str(seen[1]), 200)} from {seen[0]} but "
                    f"{printable(str(column.type), 200)} from {name}: cast it to one type in "
                    f"the SQL (e.g. {printable(column.name, 200)}::VARCHAR)",
                    store=name,
                ) from None
