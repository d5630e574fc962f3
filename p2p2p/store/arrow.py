"""Arrow results: reading an IPC stream that arrives in pieces (pipe frames, decrypted
chunks), and turning a table into pandas the way analysts expect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.ipc


class ChunkFile:
    """A readable file over DATA payloads, so pyarrow's IPC reader can parse them.

    ``read`` hands out memoryview slices of the payloads: pyarrow wraps them without
    copying, so a record batch body goes from the pipe into Arrow arrays in one copy.
    """

    closed = False

    def __init__(self, next_chunk: Any) -> None:
        self._next_chunk = next_chunk
        self._buf = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        while not self._buf and not self._eof:
            chunk = self._next_chunk()
            if chunk is None:
                self._eof = True
            else:
                self._buf = memoryview(chunk)
        return bool(self._buf)

    def read(self, size: int = -1) -> Any:
        if not self._fill():
            return b""
        if 0 <= size < len(self._buf):
            out, self._buf = self._buf[:size], self._buf[size:]
            return out
        out, self._buf = self._buf, memoryview(b"")
        if size < 0 or len(out) == size:
            return out
        # A read spanning pieces (a record batch body split into sealed pieces): gather
        # them into one buffer, copying each byte once.
        gathered = bytearray(size)
        gathered[: len(out)] = out
        have = len(out)
        while have < size and self._fill():
            take = min(size - have, len(self._buf))
            gathered[have : have + take] = self._buf[:take]
            self._buf = self._buf[take:]
            have += take
        return memoryview(gathered)[:have]


def open_ipc_stream(next_chunk: Callable[[], Any]) -> pa.ipc.RecordBatchStreamReader:
    """A record batch reader pulling pieces from ``next_chunk`` (None at the end)."""
    return pa.ipc.open_stream(pa.PythonFile(ChunkFile(next_chunk), mode="r"))


# Arrow integer (and boolean) types and the pandas nullable dtypes that keep them exact
# when a column has NULLs: numpy's int64 has no missing value, so pyarrow would go float.
_NULLABLE: dict[pa.DataType, Any] = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """A DataFrame with the values exactly as the store holds them, column by column:

    - integers (TINYINT … UBIGINT): numpy ``int8`` … ``uint64`` of the same width and
      signedness; a column with NULLs becomes pandas' nullable ``Int8`` … ``UInt64``
      (``<NA>`` for NULL), never float64 with NaN.
    - BOOLEAN: numpy ``bool``; with NULLs, pandas' nullable ``boolean``.
    - DECIMAL and HUGEINT (which Arrow carries as ``decimal128(38, 0)``): ``object``
      columns of ``decimal.Decimal`` at the column's scale, ``None`` for NULL, so sums,
      means and group keys stay exact. ``float(x)`` or ``.astype(float)`` when a float
      is wanted; the Arrow table (``query_arrow``) has them as decimals too.
    - FLOAT, DOUBLE: ``float32``, ``float64``; NULL is NaN.
    - DATE: ``datetime64[ms]`` (midnight), so ``.dt`` works, as with DuckDB's ``.df()``.
    - TIMESTAMP: ``datetime64`` at its own unit (``us`` for TIMESTAMP, ``ns``, ``ms``,
      ``s`` for the _NS, _MS, _S kinds); TIMESTAMP WITH TIME ZONE stays tz-aware, in
      the zone the stream names (UTC from DuckDB). NULL is NaT.
    - VARCHAR (and UUID, which DuckDB sends as text): pandas' ``str`` dtype; ENUM and
      other dictionary-encoded columns: ``category``.
    - INTERVAL: ``timedelta64`` for Arrow durations; DuckDB's month-day-nano intervals
      stay pyarrow ``MonthDayNano`` objects (months have no fixed length).
    - TIME: ``object`` of ``datetime.time``; BLOB: ``object`` of ``bytes``.
    - LIST/ARRAY: ``object`` of numpy arrays; STRUCT: ``object`` of ``dict``; MAP:
      ``object`` of lists of (key, value) tuples; the all-NULL type: ``object`` of None.
      Inside these, values are pyarrow's defaults (an integer list with NULLs becomes
      a float array).

    Column names may repeat and stay in order. A table that carries pandas metadata (it
    was made from a DataFrame) is rebuilt the way that metadata says instead.
    """
    frame: pd.DataFrame = table.to_pandas(date_as_object=False)
    if table.schema.pandas_metadata is not None:
        # Its index columns are no longer among the frame's, so positions would not match.
        return frame
    for position, column in enumerate(table.columns):
        # Only columns with NULLs are converted again, and only they: the common case
        # pays for one look at each column's null count, which Arrow already knows.
        nullable = _NULLABLE.get(column.type)
        if nullable is not None and column.null_count:
            frame.isetitem(position, nullable.__from_arrow__(column))
    return frame
