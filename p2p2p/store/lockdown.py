"""Opening a store read-only with DuckDB locked down before any untrusted text runs.

Runs inside the sandboxed worker. Most settings go into the connect config; external
access is switched off and the configuration locked by the first two statements after
connecting, so no later SET, RESET or PRAGMA can undo them. After opening we read every setting back and check the
lock itself, and refuse to serve the store if anything differs (fail closed).
"""

from __future__ import annotations

import os
from typing import Any

import duckdb

from ..errors import StoreCorrupt, StoreLocked, StoreMissing, StoreUnavailable
from .file import check_store_file, data_file_hint, looks_like_duckdb
from .limits import Limits
from .policy import Catalog


def first_row(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The first row of a trusted helper query, with the result fully consumed.

    DuckDB 2.0 refuses new work on a connection whose previous result is unfinished.
    """
    rows = con.execute(sql, params).fetchall()
    return rows[0] if rows else None


def lockdown_config(limits: Limits, private_dir: str) -> dict[str, Any]:
    return {
        # No extensions: nothing installed, nothing loaded on demand.
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        "extension_directory": os.path.join(private_dir, "extensions"),
        # No secrets from disk.
        "allow_persistent_secrets": False,
        "secret_directory": os.path.join(private_dir, "secrets"),
        # A query must not see the host process's Python objects by name.
        "python_enable_replacements": False,
        # Nothing spills to disk; over the memory limit a query fails instead.
        "temp_directory": "",
        "home_directory": private_dir,
        "memory_limit": f"{limits.memory_limit_mb}MB",
        "threads": limits.threads,
    }


# Applied right after connecting, in this order, before any untrusted text: DuckDB
# refuses temp_directory in the connect config once external access is off, and the
# lock must come last.
LOCK_STATEMENTS = (
    # No files (other than the store), no network, no other databases.
    "SET enable_external_access = false",
    "SET lock_configuration = true",
)


# Read back after connecting: setting name -> expected rendering of current_setting().
def _expected(limits: Limits) -> dict[str, str]:
    return {
        "enable_external_access": "false",
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "allow_community_extensions": "false",
        "allow_unsigned_extensions": "false",
        "allow_persistent_secrets": "false",
        "python_enable_replacements": "false",
        "temp_directory": "",
        "threads": str(limits.threads),
        "lock_configuration": "true",
        "access_mode": "read_only",
    }


def open_store(path: str, limits: Limits, private_dir: str) -> duckdb.DuckDBPyConnection:
    check_store_file(path, header=False)
    try:
        con = duckdb.connect(path, read_only=True, config=lockdown_config(limits, private_dir))
    except duckdb.Error as exc:
        raise classify_open_error(path, exc) from None
    for statement in LOCK_STATEMENTS:
        con.execute(statement)
    verify_lockdown(con, limits)
    return con


def classify_open_error(path: str, exc: Exception) -> StoreUnavailable:
    text = str(exc)
    if "lock" in text.lower() and (
        "conflicting" in text.lower() or "could not set" in text.lower()
    ):
        return StoreLocked(
            f"the store {path} is open for writing in another process (often the notebook "
            "that built it): close that connection (con.close()) and try again",
            path=path,
        )
    if "no such file" in text.lower() or "cannot open file" in text.lower():
        return StoreMissing(f"the store {path} cannot be opened: {text}", path=path)
    if not looks_like_duckdb(path):
        # DuckDB's own words for a foreign file are about an in-memory database.
        return StoreCorrupt(
            f"the store {path} is not a DuckDB database file{data_file_hint(path)}", path=path
        )
    return StoreCorrupt(
        f"the store {path} is not a readable DuckDB database: {text.splitlines()[0]}", path=path
    )


def verify_lockdown(con: duckdb.DuckDBPyConnection, limits: Limits) -> None:
    wrong = []
    for name, want in _expected(limits).items():
        row = first_row(con, "SELECT current_setting(?)::VARCHAR", [name])
        got = "" if row is None or row[0] is None else str(row[0]).lower()
        if got != want:
            wrong.append(f"{name}={got!r} (wanted {want!r})")
    try:
        con.execute("SET enable_external_access = true")
        wrong.append("configuration is not locked")
    except duckdb.Error:
        pass
    if wrong:
        con.close()
        raise StoreUnavailable(
            "refusing to serve the store: the DuckDB lockdown did not hold: " + "; ".join(wrong)
        )


def catalog(con: duckdb.DuckDBPyConnection) -> Catalog:
    row = first_row(con, "SELECT current_database()")
    database = str(row[0]) if row else ""
    rows = con.execute(
        """
        SELECT schema_name, table_name FROM duckdb_tables()
         WHERE database_name = current_database() AND NOT internal AND NOT temporary
        UNION ALL
        SELECT schema_name, view_name FROM duckdb_views()
         WHERE database_name = current_database() AND NOT internal AND NOT temporary
        """
    ).fetchall()
    return Catalog.of(database, [(str(s), str(n)) for s, n in rows])


def describe(
    con: duckdb.DuckDBPyConnection, max_relations: int = 1000, granted: Catalog | None = None
) -> dict[str, Any]:
    """Tables and views with their columns and, for tables, exact row counts.

    With ``granted``, only the relations it holds (a caller granted some tables).
    """
    relations: list[dict[str, Any]] = []
    rows = con.execute(
        """
        SELECT schema_name, table_name, 'table', comment FROM duckdb_tables()
         WHERE database_name = current_database() AND NOT internal AND NOT temporary
        UNION ALL
        SELECT schema_name, view_name, 'view', comment FROM duckdb_views()
         WHERE database_name = current_database() AND NOT internal AND NOT temporary
        ORDER BY 1, 2 LIMIT ?
        """,
        [max_relations],
    ).fetchall()
    if granted is not None:
        rows = [r for r in rows if (str(r[0]).lower(), str(r[1]).lower()) in granted.relations]
    for schema, name, kind, comment in rows:
        columns = con.execute(
            """
            SELECT column_name, data_type, is_nullable, comment FROM duckdb_columns()
             WHERE database_name = current_database() AND schema_name = ? AND table_name = ?
             ORDER BY column_index
            """,
            [schema, name],
        ).fetchall()
        count = None
        if kind == "table":
            quoted = f'"{str(schema).replace(chr(34), chr(34) * 2)}"."{str(name).replace(chr(34), chr(34) * 2)}"'
            found = first_row(con, f"SELECT count(*) FROM {quoted}")
            count = int(found[0]) if found else None
        # The owner's COMMENT ON … texts: dashboards show them as friendly labels.
        relation: dict[str, Any] = {
            "schema": schema,
            "name": name,
            "kind": kind,
            "rows": count,
            "columns": [
                {"name": c, "type": t, "nullable": bool(n), **({"comment": m} if m else {})}
                for c, t, n, m in columns
            ],
        }
        if comment:
            relation["comment"] = comment
        relations.append(relation)
    row = first_row(con, "SELECT current_database()")
    return {"database": row[0] if row else "", "relations": relations}
