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
