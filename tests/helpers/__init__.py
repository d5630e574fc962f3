"""What the tests share: real processes on loopback (``sharing``, ``jupyter``,
``upstream_app``), Chromium (``browser``), the notebooks' live world (``notebook_env``)."""

import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
# Tests write their screenshots to a build folder, so a test run leaves the tree clean;
# `make screenshots` points this at docs/screenshots to refresh those on purpose.
SCREENSHOTS = Path(os.environ.get("P2P2P_SCREENSHOTS") or REPO / "build" / "screenshots")
SCREENSHOTS.mkdir(parents=True, exist_ok=True)


def rows_of(store: str | Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """What plain DuckDB answers on a store file, read-only: the yardstick a test holds
    p2p2p's answers against."""
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()
