"""A pull's page, as owner and subscriber agree on it (``owner.pulls``, ``client.pull``).

The subscriber asks, inside the end-to-end encryption, for ``{"op": "pull", "table",
"cursor", "after", "inclusive", "limit"}``; the owner answers rows past ``after`` in
cursor order, at most ``MAX_PAGE_ROWS`` of them, each with its cursor value first in
``CURSOR_COLUMN`` so the next page can start after the last one.
"""

from __future__ import annotations

__all__ = ["CURSOR_COLUMN", "MAX_PAGE_ROWS", "ROWID"]

MAX_PAGE_ROWS = 200_000
ROWID = "rowid"  # DuckDB's row number of a table: the cursor of an append-only table
CURSOR_COLUMN = "_p2p2p_cursor"
