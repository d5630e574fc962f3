"""Answers from elsewhere, combined here: DuckDB in this process, over your own frames.

A fan-out's result, a remote share's answer and the analyst's own DataFrames and files
meet in one SQL statement, run by an in-memory DuckDB in this process. This is your own
machine and your own data, so none of a share's lockdown applies: ``read_parquet`` on
your files works. Nothing here reaches any share.

    p2p2p.combine("SELECT * FROM sites JOIN budget USING (site)", sites=frame, budget=other)
    %%p2pquery here          (in a notebook: every DataFrame the SQL names is a table)
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, TypeAlias

import duckdb
import pandas as pd
import pyarrow as pa

from ..errors import BadParameters, QueryFailed
from ..store.arrow import to_pandas
from ..store.executor import Params, ResultInfo

__all__ = ["HERE", "combine", "combine_arrow", "frames_named_in"]

HERE = "here"  # the %%p2pquery target for this process's own DuckDB
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
Frame: TypeAlias = pd.DataFrame | pa.Table


def frames_named_in(sql: str, namespace: Mapping[str, Any]) -> dict[str, Frame]:
    """The DataFrames and Arrow tables of ``namespace`` whose names the SQL mentions."""
    words = set(_WORD.findall(sql))
    return {
        name: value
        for name, value in namespace.items()
        if name in words and isinstance(value, pd.DataFrame | pa.Table)
    }


def combine_arrow(sql: str, params: Params = None, **tables: Frame) -> tuple[pa.Table, ResultInfo]:
    """Run ``sql`` in a fresh in-memory DuckDB where each keyword is a table."""
    started = time.monotonic()
    con = duckdb.connect(":memory:")
    try:
        for name, frame in tables.items():
            if not isinstance(frame, pd.DataFrame | pa.Table):
                raise BadParameters(
                    f"{name!r} is a {type(frame).__name__}: combine takes DataFrames and "
                    "Arrow tables"
                )
            con.register(name, frame)
        try:
            relation = con.sql(sql, params=params or None)
            table = relation.to_arrow_table() if relation is not None else pa.table({})
        except duckdb.Error as exc:
            raise QueryFailed(str(exc).splitlines()[0]) from None
    finally:
        con.close()
    info = ResultInfo(rows=table.num_rows, bytes=table.nbytes, seconds=time.monotonic() - started)
    return table, info


def combine(sql: str, params: Params = None, **tables: Frame) -> pd.DataFrame:
    """``combine_arrow`` as a DataFrame."""
    table, _info = combine_arrow(sql, params, **tables)
    return to_pandas(table)
