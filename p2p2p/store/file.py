"""The store file itself: is there a DuckDB database at this path?

Checked once, here, by everything that is about to use a store (the executor before it
starts a worker, the worker before it connects, the owner before it shares), so a
missing or foreign file gets the same clear error everywhere, before any process starts.
"""

from __future__ import annotations

import os

from ..errors import StoreCorrupt, StoreMissing

__all__ = ["DUCKDB_MAGIC", "check_store_file", "data_file_hint", "looks_like_duckdb"]

DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file


def check_store_file(path: str | os.PathLike[str], doing: str = "open", header: bool = True) -> str:
    """The resolved path of an existing DuckDB database file, or ``StoreMissing`` /
    ``StoreCorrupt`` saying what is wrong (``doing``: "open", "share", … for the message).

    ``header=False`` checks only that the file is there: the worker then tells a broken
    file from a locked one by what DuckDB says when it opens it."""
    shown = os.fspath(path)
    resolved = os.path.realpath(os.path.expanduser(shown))
    if not os.path.exists(resolved):
        raise StoreMissing(f"cannot {doing} {shown}: no such file (it does not exist)", path=shown)
    if not os.path.isfile(resolved):
        raise StoreMissing(f"cannot {doing} {shown}: not a file", path=shown)
    if not header:
        return resolved
    try:
        with open(resolved, "rb") as handle:
            head = handle.read(12)
    except OSError as exc:
        raise StoreMissing(f"cannot {doing} {shown}: {exc.strerror}", path=shown) from None
    if head[8:12] != DUCKDB_MAGIC:
        raise StoreCorrupt(f"cannot {doing} {shown}: it is not a DuckDB database file", path=shown)
    return resolved


def looks_like_duckdb(path: str) -> bool:
    """Whether the file starts as a DuckDB database does. Only for a process that holds
    no DuckDB connection to it (a worker whose open failed): closing any descriptor of a
    file drops every POSIX lock this process holds on it, a writer's included."""
    try:
        with open(path, "rb") as handle:
            return handle.read(12)[8:12] == DUCKDB_MAGIC
    except OSError:
        return True  # nothing more to say than DuckDB did


DATA_FILES = {
    ".csv": "read_csv", ".tsv": "read_csv", ".parquet": "read_parquet",
    ".json": "read_json", ".jsonl": "read_json", ".ndjson": "read_json",
}  # fmt: skip


def data_file_hint(path: str) -> str:
    """For a data file given as a store: how to read it instead."""
    reader = DATA_FILES.get(os.path.splitext(path)[1].lower())
    if reader is None:
        return ""
    name = os.path.basename(path)
    return (
        f" but a data file: read your own files with `%%p2pquery here` "
        f"(SELECT * FROM {reader}('{name}')), or make a store of it first"
    )
