"""Results as they arrive from any store: record batches gathered into one table, with a
word to the caller now and then on how far it got, and a ceiling no store's answer may
pass in this process's memory. Imports no DuckDB and no pandas, so a process that only
reads shares (a dashboard's kernel) need not load them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pyarrow as pa

from ..errors import ResultTooLarge

__all__ = ["PROGRESS_EVERY_S", "Progress", "collect"]

Progress = Callable[[int, int], None]  # (rows so far, bytes so far)
PROGRESS_EVERY_S = 0.25


def collect(
    schema: pa.Schema,
    batches: Iterator[pa.RecordBatch],
    progress: Progress | None,
    max_bytes: int | None = None,
) -> pa.Table:
    """Record batches into a table, telling ``progress`` how far it got now and then.

    ``max_bytes``: what was asked for. An honest store stops there (and says the result
    was truncated); one that sends far more (a modified owner) is cut off here, so no
    store decides how much of this process's memory its answer takes."""
    ceiling = None if max_bytes is None else 2 * max_bytes + (16 << 20)
    kept: list[pa.RecordBatch] = []
    rows = nbytes = 0
    shown = time.monotonic()
    for batch in batches:
        kept.append(batch)
        rows += batch.num_rows
        nbytes += batch.nbytes
        if ceiling is not None and nbytes > ceiling:
            raise ResultTooLarge(
                f"the answer passed {nbytes:,} bytes although at most {max_bytes:,} were "
                "asked for: cut off here"
            )
        if progress is not None and time.monotonic() - shown >= PROGRESS_EVERY_S:
            progress(rows, nbytes)
            shown = time.monotonic()
    return pa.Table.from_batches(kept, schema=schema)
