"""Framing between the executor and its sandboxed worker process (sans-I/O).

A frame is ``kind`` (1 byte) + ``length`` (4 bytes, big endian) + ``payload``. The
executor treats the worker as untrusted: ``parse_header`` refuses frames over a size cap
and unknown kinds before any payload is read.
"""

from __future__ import annotations

import enum
import json
import struct
from typing import Any

from ..errors import WorkerCrashed

HEADER = struct.Struct(">BI")
# The exit status of a worker that stopped itself: its resident memory passed the hard
# bound (Limits.resident_hard_mb) inside one call that an interrupt could not stop.
MEMORY_EXIT = 75


class Kind(enum.IntEnum):
    # executor -> worker
    QUERY = 1  # JSON request
    PARAMS = 2  # Arrow IPC stream with one row: the bound parameters
    CREDIT = 3  # the executor consumed a DATA frame: the worker may send one more
    CANCEL = 4  # stop the current result; the worker answers END
    SCHEMA = 5  # describe the store
    # worker -> executor
    READY = 16  # JSON: catalog, sandbox status
    DATA = 17  # a piece of an Arrow IPC stream
    END = 18  # JSON: rows, bytes, truncated, elapsed
    ERROR = 19  # JSON: P2P2PError.to_dict()
    INFO = 20  # JSON answer to SCHEMA


def encode(kind: Kind, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def encode_json(kind: Kind, obj: Any) -> bytes:
    return encode(kind, json.dumps(obj, separators=(",", ":"), default=str).encode())


def decode_json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise WorkerCrashed(f"the store worker sent a malformed message ({exc})") from exc


def parse_header(header: bytes, max_payload: int) -> tuple[Kind, int]:
    """Validate a frame header from the other side; refuse unknown kinds and oversize frames."""
    kind_byte, length = HEADER.unpack(header)
    try:
        kind = Kind(kind_byte)
    except ValueError:
        raise WorkerCrashed(f"the store worker sent an unknown frame kind {kind_byte}") from None
    if length > max_payload:
        raise WorkerCrashed(
            f"the store worker sent a {length}-byte frame; the cap is {max_payload}"
        )
    return kind, length
