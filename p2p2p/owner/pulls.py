"""Pulls: tables an owner lets subscribers copy and keep up to date (``--allow-pull``).

Data stays home by default. An owner who names tables with ``--allow-pull`` lets anyone
who may query the share also copy those tables, page by page, in the order of a cursor
column (``rowid`` unless the subscriber names one): each page is rows past the last
cursor value, so a copy can be resumed and brought up to date later. The statement is
built here, from names checked against the store's own schema, and runs through the
same executor, lockdown and grants as any query; the audit log records it as a pull.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import BadParameters, PullRefused
from ..protocol.pulls import CURSOR_COLUMN, MAX_PAGE_ROWS, ROWID
from ..store.executor import Executor, Params
from ..store.policy import quote_name
from .shares import Share

__all__ = ["pull_statement", "pullable"]


_TYPE = re.compile(
    r"[A-Z][A-Z0-9_ ]*(\(\d+(,\s*\d+)?\))?"
)  # BIGINT, DECIMAL(12,2), TIMESTAMP WITH TIME ZONE


def _relations(executor: Executor, only: list[str] | None = None) -> dict[str, dict[str, Any]]:
    return {str(r["name"]): r for r in executor.schema(only).get("relations", [])}


def pullable(executor: Executor, names: list[str] | str) -> frozenset[str]:
    """The tables named (a list, or ``--allow-pull``'s ``a,b``), each checked to exist
    in the store."""
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    if not names:
        return frozenset()
    known = _relations(executor)
    missing = [n for n in names if n not in known]
    if missing:
        raise BadParameters(
            f"--allow-pull names {', '.join(missing)}, which the store does not have "
            f"(it has: {', '.join(sorted(known)) or 'no tables'})"
        )
    return frozenset(names)


def pull_statement(
    share: Share, tables: tuple[str, ...] | None, message: dict[str, Any]
) -> tuple[str, Params]:
    """The SQL and parameters of one page of a pull, or why it is refused.

    ``tables``: what the caller is granted (None: everything)."""
    table = str(message.get("table", ""))
    if table not in share.allow_pull:
        allowed = ", ".join(sorted(share.allow_pull))
        raise PullRefused(
            f"the owner does not allow pulling {table!r}: "
            + (f"only {allowed} (--allow-pull)" if allowed else "this share allows no pulls")
        )
    if tables is not None and table not in tables:
        raise PullRefused(f"you are not granted the table {table!r}")
    # This one table's columns only: a page must not count every table's rows.
    relation = _relations(share.executor, [table]).get(table)
    if relation is None:
        raise PullRefused(f"the store no longer has {table!r}")
    columns = {str(c["name"]): str(c.get("type", "")) for c in relation.get("columns", [])}
    cursor = str(message.get("cursor") or ROWID)
    if cursor == ROWID and relation.get("kind") != "table":
        raise BadParameters(f"{table!r} is a view: name a cursor column to pull it (--cursor)")
    if cursor != ROWID and cursor not in columns:
        raise BadParameters(f"{table!r} has no column {cursor!r} to pull by")
    try:
        limit = max(1, min(int(message.get("limit") or MAX_PAGE_ROWS), MAX_PAGE_ROWS))
    except (TypeError, ValueError):
        raise BadParameters("a pull's limit must be a number of rows") from None
    after = message.get("after")
    key = quote_name(cursor) if cursor != ROWID else ROWID
    where = ""
    params: dict[str, Any] = {}
    if after is not None:
        if not isinstance(after, int | float | str):
            raise BadParameters("a pull's cursor value must be a number or text")
        # The value arrives as JSON (a number or text); the column's own type, from the
        # store's schema, says how to compare it.
        kind = columns.get(cursor, "BIGINT") if cursor != ROWID else "BIGINT"
        if not _TYPE.fullmatch(kind):
            raise BadParameters(f"cannot pull by {cursor!r}: its type {kind!r} has no order")
        where = f" WHERE {key} {'>=' if message.get('inclusive') else '>'} CAST($after AS {kind})"
        params["after"] = after
    sql = f"SELECT {key} AS {CURSOR_COLUMN}, * FROM {quote_name(table)}{where} ORDER BY {key} LIMIT {limit}"
    return sql, params or None
