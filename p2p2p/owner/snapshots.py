"""Sharing a store this kernel holds open for writing: serve a consistent snapshot.

DuckDB lets only one process write a file, and while it does no other process may even
read it, so the share's workers cannot open a store the owner's notebook still has
open read-write. Rather than asking the owner to close it, ``%share`` copies the store
through the notebook's own connection (``COPY FROM DATABASE``: one transaction, so the
copy is consistent) and serves the copy; ``%share PATH --refresh`` replaces it.

The copy is taken in the kernel (it holds the write connection); the owner service
serves it and deletes it when the share ends.
"""

from __future__ import annotations

import datetime
import os
import secrets
from pathlib import Path
from typing import Any

import duckdb

from ..errors import P2P2PError
from ..paths import data_dir, private_dir


def snapshot_dir() -> Path:
    return private_dir(data_dir() / "snapshots")


def writer_in(namespace: dict[str, Any], path: str) -> tuple[str, Any, str] | None:
    """``(variable, connection, database name)`` of a connection in ``namespace`` that has
    ``path`` attached read-write, if any."""
    target = os.path.realpath(path)
    for variable, value in list(namespace.items()):
        if variable.startswith("_") or not isinstance(value, duckdb.DuckDBPyConnection):
            continue
        try:
            rows = (
                value.cursor()
                .execute("SELECT database_name, path, readonly FROM duckdb_databases()")
                .fetchall()
            )
        except duckdb.Error:
            continue  # a closed connection
        for database, db_path, readonly in rows:
            if db_path and not readonly and os.path.realpath(db_path) == target:
                return variable, value, str(database)
    return None


def take(connection: Any, database: str, name: str) -> tuple[str, str]:
    """Copy ``database`` into a new private file; returns ``(path, taken at)``."""
    taken = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    dest = snapshot_dir() / f"{name}-{secrets.token_hex(4)}.duckdb"
    alias = f"p2p2p_snapshot_{secrets.token_hex(4)}"
    quoted_db = '"' + database.replace('"', '""') + '"'
    # A cursor of the notebook's connection: its own pending results stay untouched.
    cursor = connection.cursor()
    try:
        cursor.execute(f"ATTACH '{str(dest).replace(chr(39), chr(39) * 2)}' AS {alias}")
        try:
            cursor.execute(f"COPY FROM DATABASE {quoted_db} TO {alias}")
        finally:
            cursor.execute(f"DETACH {alias}")
    except duckdb.Error as exc:
        for leftover in (dest, dest.with_suffix(".duckdb.wal")):
            leftover.unlink(missing_ok=True)
        raise P2P2PError(f"could not take a snapshot of {database}: {exc}") from None
    finally:
        cursor.close()
    return str(dest), taken


def remove_snapshot(path: str) -> None:
    """Delete a snapshot copy we made (never a file outside the snapshot directory)."""
    snapshots = os.path.realpath(snapshot_dir())
    if os.path.dirname(os.path.realpath(path)) != snapshots:
        return
    for leftover in (path, path + ".wal"):
        try:
            os.unlink(leftover)
        except FileNotFoundError:
            pass
