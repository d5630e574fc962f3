"""``p2p2p pull``: a local copy of the tables an owner allows copying, kept up to date.

Data stays home unless its owner says otherwise (``--allow-pull``). Where they do, a
subscriber copies those tables into a DuckDB file of their own, page by page in the
order of a cursor column (``rowid`` unless ``--cursor`` names one). Each page is
written in one transaction together with a row in ``_p2p2p_pulls`` that records where
the copy got to, so an interrupted pull resumes without duplicating rows, and a later
pull fetches only rows past the cursor. With a key column (``--key``), rows that come
again replace their earlier copy (the first page of a later pull starts *at* the last
cursor value, so rows that arrived with that same value are not missed). ``--full``
starts a table over.

Memory stays flat: one page (at most ``PAGE_ROWS`` rows) is held at a time.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import BadTarget, PullRefused
from ..identity import b64
from ..protocol.pulls import CURSOR_COLUMN, ROWID
from ..store.policy import quote_name
from .remote import RemoteStore

__all__ = ["PAGE_ROWS", "PULLS_TABLE", "PullReport", "pull"]

PULLS_TABLE = "_p2p2p_pulls"
PAGE_ROWS = 50_000

# (table, rows copied so far in this run)
PullProgress = Callable[[str, int], None]


@dataclass
class PullReport:
    table: str
    rows: int
    pages: int
    cursor: str
    last: Any  # the cursor value the copy reached
    seconds: float
    started_over: bool


def _as_json(value: Any) -> Any:
    """A cursor value as it travels (JSON): numbers stay numbers, the rest text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)  # dates, timestamps, decimals: the owner casts to the column's type


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {PULLS_TABLE} ("
        "pulled_at TIMESTAMP, pull_id VARCHAR, share_id VARCHAR, share_name VARCHAR, "
        "owner_key VARCHAR, table_name VARCHAR, cursor_column VARCHAR, cursor_value VARCHAR, "
        "rows BIGINT, started_over BOOLEAN)"
    )


def _where_it_got(
    con: duckdb.DuckDBPyConnection, share_id: str, table: str
) -> tuple[str, Any] | None:
    row = con.execute(
        f"SELECT cursor_column, cursor_value FROM {PULLS_TABLE} WHERE share_id = ? AND "
        "table_name = ? ORDER BY pulled_at DESC, rowid DESC LIMIT 1",
        [share_id, table],
    ).fetchone()
    if row is None:
        return None
    cursor, value = str(row[0]), row[1]
    return cursor, (json.loads(value) if value is not None else None)


def pull(
    store: RemoteStore,
    into: str,
    tables: list[str] | None = None,
    cursors: dict[str, str] | None = None,
    keys: dict[str, str] | None = None,
    full: bool = False,
    page_rows: int = PAGE_ROWS,
    progress: PullProgress | None = None,
) -> list[PullReport]:
    """Copy (or bring up to date) ``tables`` of the share into the DuckDB file ``into``."""
    if not isinstance(store, RemoteStore):
        raise BadTarget("a pull copies from a share: give its link or alias")
    allowed = list(store.info().get("allow_pull") or [])
    wanted = tables or allowed
    if not wanted:
        raise PullRefused(
            f"the owner of {store.name!r} allows no pulls: its data stays home "
            "(they can allow some tables with --allow-pull)"
        )
    for table in wanted:
        if table not in allowed:
            raise PullRefused(
                f"the owner of {store.name!r} does not allow pulling {table!r}: "
                + (f"only {', '.join(allowed)} (--allow-pull)" if allowed else "no tables")
            )
    cursors, keys = cursors or {}, keys or {}
    run = uuid.uuid4().hex[:12]
    reports = []
    con = duckdb.connect(into)
    try:
        _prepare(con)
        for table in wanted:
            reports.append(
                _pull_table(
                    con,
                    store,
                    table,
                    cursors.get(table),
                    keys.get(table),
                    full,
                    page_rows,
                    run,
                    progress,
                    into,
                )
            )
    finally:
        con.close()
    return reports


def _pull_table(
    con: duckdb.DuckDBPyConnection,
    store: RemoteStore,
    table: str,
    cursor: str | None,
    key: str | None,
    full: bool,
    page_rows: int,
    run: str,
    progress: PullProgress | None,
    into: str,
) -> PullReport:
    started = time.monotonic()
    share_id = store.link.share_id
    got = None if full else _where_it_got(con, share_id, table)
    if got is not None and cursor is not None and got[0] != cursor:
        raise BadTarget(
            f"{table!r} was pulled by {got[0]!r} so far: pull by {cursor!r} with --full"
        )
    cursor = cursor or (got[0] if got else ROWID)
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'",
        [table],
    ).fetchone()
    if got is None and not full and exists and exists[0]:
        raise BadTarget(
            f"{into} already has a table {table!r} that no pull of this share made: "
            "pull into another file, or pass --full to replace it"
        )
    if full or got is None:
        con.execute(f"DROP TABLE IF EXISTS {quote_name(table)}")
        con.execute(
            f"DELETE FROM {PULLS_TABLE} WHERE share_id = ? AND table_name = ?", [share_id, table]
        )
    after = got[1] if got else None
    # A later pull with a key starts at the last value (replacing those rows), so rows
    # that arrived with the same cursor value since are not missed.
    inclusive = key is not None and after is not None
    rows = pages = 0
    while True:
        page = store.pull_page(table, cursor, _as_json(after), inclusive, page_rows)
        inclusive = False
        if page.num_rows == 0:
            break
        last = page.column(CURSOR_COLUMN)[page.num_rows - 1].as_py()
        data = page.drop_columns([CURSOR_COLUMN])
        record = [
            run, share_id, store.name, b64(store.owner_key), table, cursor,
            json.dumps(_as_json(last)), data.num_rows, full and pages == 0,
        ]  # fmt: skip
        _write_page(con, table, data, key, record)
        after = last
        rows += data.num_rows
        pages += 1
        if progress is not None:
            progress(table, rows)
        if page.num_rows < page_rows and not store.last_info.truncated:
            break
    return PullReport(table, rows, pages, cursor, after, time.monotonic() - started, full)


def _write_page(
    con: duckdb.DuckDBPyConnection,
    table: str,
    data: pa.Table,
    key: str | None,
    record: list[Any],
) -> None:
    """One page into the copy and the record of where the copy got to, in one
    transaction: an interrupted pull resumes from the last page written, exactly."""
    con.execute("BEGIN")
    try:
        con.register("_p2p2p_page", data)
        con.execute(f"CREATE TABLE IF NOT EXISTS {quote_name(table)} AS FROM _p2p2p_page LIMIT 0")
        if key is not None:
            con.execute(
                f"DELETE FROM {quote_name(table)} WHERE {quote_name(key)} IN "
                f"(SELECT {quote_name(key)} FROM _p2p2p_page)"
            )
        con.execute(f"INSERT INTO {quote_name(table)} BY NAME FROM _p2p2p_page")
        con.execute(f"INSERT INTO {PULLS_TABLE} VALUES (now(), ?, ?, ?, ?, ?, ?, ?, ?, ?)", record)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_p2p2p_page")
