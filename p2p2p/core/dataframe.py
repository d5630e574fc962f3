"""Arrow results to pandas, the way analysts expect them."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Convert without Python-object detours: DECIMAL (and HUGEINT, which Arrow carries
    as decimal) become float64, as DuckDB's own ``.df()`` does; the exact values stay
    available through ``query_arrow``."""
    columns = []
    for field in table.schema:
        if pa.types.is_decimal(field.type):
            columns.append(pa.field(field.name, pa.float64(), field.nullable))
        else:
            columns.append(field)
    target = pa.schema(columns)
    if target != table.schema:
        table = table.cast(target)
    frame: pd.DataFrame = table.to_pandas()
    return frame
