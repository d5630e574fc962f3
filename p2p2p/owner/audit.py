"""The owner's audit log: append-only JSON lines, each chained to the one before.

Every line carries ``prev``, the SHA-256 of the previous line's exact bytes (64 zeros for
the first), so editing, inserting, reordering or deleting any line but the newest breaks
the chain at the next line. The newest entries can only be vouched for against a copy of
the head hash kept elsewhere: ``verify`` reports it for that purpose.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import AuditError

GENESIS = "0" * 64
RECENT = 20  # entries kept in memory for status displays


def _hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def asked_by(entry: dict[str, Any]) -> str:
    """Who an entry says asked, as the owner verified it: the viewer's name with the
    start of their key in identified mode, else the client (``anonymous`` or a key)."""
    client = str(entry.get("client", ""))
    viewer = entry.get("viewer")
    if not viewer:
        return client
    return f"{viewer} ({client[8:16]}…)" if client.startswith("ed25519:") else str(viewer)


def statement_hash(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


class AuditLog:
    """Appends chained entries; safe to share between threads of one process."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        report = verify(self.path) if self.path.exists() else VerifyReport(0, GENESIS)
        self._head = report.head
        self._seq = report.entries
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT)

    def record(self, **fields: Any) -> dict[str, Any]:
        reserved = {"seq", "time", "prev"} & set(fields)
        if reserved:
            raise ValueError(f"audit fields {sorted(reserved)} are set by the log itself")
        with self._lock:
            entry = {
                "seq": self._seq + 1,
                "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
                **fields,
                "prev": self._head,
            }
            line = json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str).encode()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line + b"\n")
            finally:
                os.close(fd)
            self._head = _hash(line)
            self._seq += 1
            self.recent.append(entry)
            return entry


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    entries: int
    head: str  # hash of the newest line: keep a copy elsewhere to vouch for the tail


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Check the whole chain; raises ``AuditError`` naming the first bad line."""
    prev = GENESIS
    count = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                raise AuditError(
                    f"line {number}: incomplete (no newline): the log was cut mid-write"
                )
            line = raw[:-1]
            try:
                entry = json.loads(line)
            except ValueError:
                raise AuditError(f"line {number}: not valid JSON") from None
            if not isinstance(entry, dict):
                raise AuditError(f"line {number}: not an audit entry")
            if entry.get("prev") != prev:
                raise AuditError(
                    f"line {number}: the chain is broken here (this line or the one before "
                    "it was edited, inserted or removed)"
                )
            if entry.get("seq") != number:
                raise AuditError(
                    f"line {number}: sequence number {entry.get('seq')!r}, expected {number}"
                )
            prev = _hash(line)
            count = number
    return VerifyReport(count, prev)
