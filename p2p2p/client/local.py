"""A DuckDB file on this machine, queried through the same sandboxed executor as a share.

Local results still pass the store's lockdown: what works on a share works here, and
what a share would refuse is refused here too, before it reaches the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pyarrow as pa

from ..errors import ResultTooLarge
from ..store.arrow import to_pandas
from ..store.executor import Executor, Params, ResultInfo

__all__ = ["PROGRESS_EVERY_S", "LocalStore", "Progress", "collect"]

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


class LocalStore:
    """A DuckDB file on this machine, through the same sandboxed executor as shares."""

    def __init__(self, path: str) -> None:
        self.executor = Executor(path)
        self.last_info = ResultInfo()

    def query_arrow(
        self, sql: str, params: Params = None, progress: Progress | None = None, **limits: Any
    ) -> pa.Table:
        with self.executor.query(sql, params, **limits) as stream:
            table = collect(stream.schema, iter(stream), progress)
            self.last_info = stream.info
        return table

    def query(self, sql: str, params: Params = None, **limits: Any) -> pd.DataFrame:
        return to_pandas(self.query_arrow(sql, params, **limits))

    def schema(self) -> dict[str, Any]:
        return self.executor.schema()

    def close(self) -> None:
        self.executor.close()
