"""The store file itself: is there a DuckDB database at this path?

Checked once, here, by everything that is about to use a store (the executor before it
starts a worker, the worker before it connects, the owner before it shares), so a
missing or foreign file gets the same clear error everywhere, before any process starts.
"""

from __future__ import annotations

import os

from ..errors import StoreCorrupt, StoreMissing

__all__ = ["DUCKDB_MAGIC", "check_store_file"]

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
