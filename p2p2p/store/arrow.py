"""Arrow results: reading an IPC stream that arrives in pieces (pipe frames, decrypted
chunks), and turning a table into pandas the way analysts expect."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pyarrow.ipc

if TYPE_CHECKING:
    import pandas as pd


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


@functools.cache
def _nullable() -> dict[pa.DataType, Any]:
    """Arrow integer (and boolean) types and the pandas nullable dtypes that keep them
    exact when a column has NULLs: numpy's int64 has no missing value, so pyarrow would
    go float. Made on first use: pandas is loaded only by those who want frames."""
    import pandas as pd

    return {
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


# Up to 15 significant digits a decimal survives a float64 exactly: the nearest double
# prints back as the same decimal (IEEE 754 guarantees 15), and pandas' arithmetic on it
# is numpy's, which Decimal objects and Arrow decimals are not (`x - 0.5` refused, a
# division overflowing precision 38).
FLOAT_DIGITS = 15


def _numbers(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """A decimal column as int64 (scale 0, every value fits) or float64 (every value at
    most 15 digits), each value converted with correct rounding; None when some value
    needs more, and only a Decimal keeps it."""
    scale = column.type.scale
    chunks = []
    for chunk in column.chunks:
        # decimal128 is 16 bytes per value, little-endian: the low word holds the whole
        # unscaled value when the high word is only its sign.
        words = np.frombuffer(
            chunk.buffers()[1], dtype=np.int64, count=2 * len(chunk), offset=16 * chunk.offset
        )
        low, high = words[0::2], words[1::2]
        valid = None if not chunk.null_count else chunk.is_valid().to_numpy(zero_copy_only=False)
        fits = high == (low >> 63)
        if scale:
            fits &= np.abs(low) < 10**FLOAT_DIGITS
        if not (fits.all() if valid is None else fits[valid].all()):
            return None
        mask = None if valid is None else ~valid
        if scale:
            # An exact integer over an exact power of ten: one correctly rounded division.
            chunks.append(pa.array(low / 10.0**scale, pa.float64(), mask=mask))
        else:
            chunks.append(pa.array(low, pa.int64(), mask=mask))
    return pa.chunked_array(chunks, pa.float64() if scale else pa.int64())


def _exact_numbers(table: pa.Table) -> tuple[pa.Table, dict[int, int]]:
    """The table with decimals as numbers where no digit is lost, and the scale of each
    decimal column made float (by position), so a display can show ``12.50``."""
    scales = {}
    for position, field in enumerate(table.schema):
        if isinstance(field.type, pa.Decimal128Type):
            numbers = _numbers(table.column(position))
            if numbers is not None:
                table = table.set_column(position, field.with_type(numbers.type), numbers)
                if field.type.scale:
                    scales[position] = field.type.scale
    return table, scales


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """A DataFrame with the values exactly as the store holds them, column by column:

    - integers (TINYINT … UBIGINT): numpy ``int8`` … ``uint64`` of the same width and
      signedness; a column with NULLs becomes pandas' nullable ``Int8`` … ``UInt64``
      (``<NA>`` for NULL), never float64 with NaN.
    - BOOLEAN: numpy ``bool``; with NULLs, pandas' nullable ``boolean``.
    - DECIMAL and HUGEINT (which Arrow carries as ``decimal128(38, 0)``): as numbers
      pandas computes with, without losing a digit. Whole numbers (HUGEINT, DECIMAL(p,0),
      ``round(sum(x))``) that fit become ``int64`` (``Int64`` with NULLs); others become
      ``float64`` when every value of the column has at most 15 significant digits, so
      each float prints back as exactly the stored decimal (``12.50`` is ``12.5``; a
      sum of floats is a float sum, not a decimal one; ``frame.attrs["decimal_scales"]``
      has each such column's scale by position). A column with a value of more
      digits stays ``object`` of ``decimal.Decimal``, exact. ``query_arrow`` (and the
      polars and arrow outputs) keep every decimal as a decimal.
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
    table, scales = _exact_numbers(table)
    frame: pd.DataFrame = table.to_pandas(date_as_object=False)
    if scales:
        frame.attrs["decimal_scales"] = scales
    if table.schema.pandas_metadata is not None:
        # Its index columns are no longer among the frame's, so positions would not match.
        return frame
    for position, column in enumerate(table.columns):
        # Only columns with NULLs are converted again, and only they: the common case
        # pays for one look at each column's null count, which Arrow already knows.
        nullable = _nullable().get(column.type)
        if nullable is not None and column.null_count:
            frame.isetitem(position, nullable.__from_arrow__(column))
    return frame


def kind_of_type(arrow_type: pa.DataType) -> str:
    """A column's family as a page formats it: ``int``, ``decimal``, ``float``, ``bool``,
    ``date``, ``time``, ``timestamp``, ``timestamptz``, ``text`` or ``other``."""
    types = pa.types
    if types.is_integer(arrow_type):
        return "int"
    if types.is_decimal(arrow_type):
        return "decimal"
    if types.is_floating(arrow_type):
        return "float"
    if types.is_boolean(arrow_type):
        return "bool"
    if types.is_date(arrow_type):
        return "date"
    if types.is_time(arrow_type):
        return "time"
    if types.is_timestamp(arrow_type):
        return "timestamptz" if arrow_type.tz else "timestamp"
    if types.is_string(arrow_type) or types.is_large_string(arrow_type):
        return "text"
    return "other"


def _trim_time(text: str) -> str:
    """``10:00:00.500000`` → ``10:00:00.5``; ``+0000`` → ``+00:00``: as people write them."""
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits].rstrip("0"), rest[digits:]
        text = head + ("." + fraction if fraction else "") + zone
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = text[:-2] + ":" + text[-2:]
    return text


def cell_texts(column: pa.ChunkedArray | pa.Array) -> list[str | None]:
    """Every value of a column as exact text (None for NULL): decimals digit for digit,
    integers of any size, floats at their shortest round-trip form, dates and times as
    written, timestamps with their zone. What a page shows is these, never a float."""
    kind = kind_of_type(column.type)
    try:
        texts: list[str | None] = pa.compute.cast(column, pa.string()).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import json

        return [
            None if value is None else json.dumps(value, default=str, ensure_ascii=False)
            for value in column.to_pylist()
        ]
    if kind in ("time", "timestamp", "timestamptz"):
        return [None if t is None else _trim_time(t) for t in texts]
    return texts
