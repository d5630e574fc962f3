"""The owner's notes for one share: a small SQLite file in the owner's data directory.

Never in the shared DuckDB file (it is read-only, and notes are not the owner's data).
The file is named by the share id, so notes survive unsharing and sharing again under
the same name. Safe to use from several threads.
"""

from __future__ import annotations

import collections
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import NoteRefused
from ..protocol.notes import WORK_BASE_BITS, WORK_MAX_BITS, admit, check_shape, work_bits

RATE_PER_MINUTE = 20  # notes per author key
# Keys cost nothing to make and a viewer's session is whatever the client says, so
# neither bounds a flood; the share as a whole does: this many notes a minute from
# everyone together, and this many kept at all.
SHARE_RATE_PER_MINUTE = 60
MAX_NOTES = 5_000
QUEUED_MAX_AGE_MS = 31 * 24 * 3600 * 1000  # a note that waited at a relay (TTL 7 days there)


class NotesStore:
    def __init__(self, path: Path, share_id: str, owner_key: str = "") -> None:
        self.share_id = share_id
        self.owner_key = owner_key  # its notes may resolve anyone's
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS notes (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "id TEXT UNIQUE NOT NULL, note TEXT NOT NULL, received INTEGER NOT NULL, "
            "retracted_by TEXT, via TEXT)"
        )
        self._lock = threading.Lock()
        self._recent: dict[str, collections.deque[float]] = {}
        self.seq = int(self._db.execute("SELECT coalesce(max(seq), 0) FROM notes").fetchone()[0])
        # Authors of notes kept here: their next notes need no proof of work.
        self._known = {
            str(json.loads(row[0]).get("author"))
            for row in self._db.execute("SELECT note FROM notes")
        }
        # New keys' notes with their work done, in the last minute.
        self._fresh: collections.deque[float] = collections.deque(maxlen=10_000)

    def work_needed(self, now_s: float | None = None) -> int:
        """Bits of proof of work a note from a new key needs now: more, the more such
        notes arrived in the last minute (doubling the work per doubling of the load)."""
        now_s = time.time() if now_s is None else now_s
        while self._fresh and self._fresh[0] < now_s - 60:
            self._fresh.popleft()
        extra = (len(self._fresh) // 8).bit_length()
        return min(WORK_BASE_BITS + extra, WORK_MAX_BITS)

    def add(
        self,
        note: dict[str, Any],
        now_ms: int | None = None,
        via: str | None = None,
        sender: str | None = None,
        work: object = None,
        trusted: bool = False,
        queued: bool = False,
    ) -> dict[str, Any]:
        """Check and keep a signed note; returns it as stored. Raises ``NoteRefused``.

        ``via`` is the owner's own remark on how it came (e.g. signed by a key the dashboard
        kernel held for a browser without Ed25519); it is not part of what was signed.
        ``sender`` (a viewer's session) is rate limited as well as the author key, so
        fresh keys do not buy a flood more room. A note from an author not seen here
        before, and not ``trusted`` (a listed viewer), needs ``work`` (a proof-of-work
        nonce, ``protocol.notes.prove_work``), checked before its signature.

        ``queued``: it waited at a relay while the owner was away (``protocol.mailbox``),
        so it may be up to ``QUEUED_MAX_AGE_MS`` old; its work was done at the base price
        of the time it was written, and the relay's caps bounded how many came.
        """
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        check_shape(note)
        fresh = not trusted and str(note["author"]) not in self._known
        if fresh:
            needed = WORK_BASE_BITS if queued else self.work_needed(now_ms / 1000)
            if work_bits(note, work) < needed:
                raise NoteRefused(
                    f"a note from a key this share has not seen needs a small proof of work "
                    f"({needed} bits; p2p2p clients and dashboards do it by themselves)",
                    work_bits=needed,
                )
            # Counted once the work is done, kept or not: a flood raises the price of
            # the next note even while the rate limits below turn it away.
            self._fresh.append(now_ms / 1000)
        admit(note, self.share_id, now_ms, QUEUED_MAX_AGE_MS if queued else None)
        if self.seq >= MAX_NOTES:
            raise NoteRefused(
                f"this share keeps at most {MAX_NOTES:,} notes; the owner can export and start afresh"
            )
        if not queued:
            self._rate(str(note["author"]), now_ms / 1000, RATE_PER_MINUTE, "per author")
            if sender:
                self._rate(f"sender:{sender}", now_ms / 1000, RATE_PER_MINUTE, "per viewer")
            self._rate("share", now_ms / 1000, SHARE_RATE_PER_MINUTE, "on this share")
        with self._lock:
            if self._get(note["id"]) is not None:
                raise NoteRefused("a note with this id is already here (a replay)")
            parent = self._get(note["parent"]) if note.get("parent") else None
            if note.get("parent") and parent is None:
                raise NoteRefused("the note it refers to is not here")
            if note["kind"] == "retract":
                assert parent is not None
                if parent["author"] != note["author"]:
                    raise NoteRefused("only its author can retract a note")
            if note["kind"] == "resolve":
                if parent is None:
                    raise NoteRefused("a resolve names the note it resolves")
                if note["author"] not in (parent["author"], self.owner_key) and not trusted:
                    raise NoteRefused(
                        "only its author or the owner can resolve a note (in an identified "
                        "share, a listed viewer too)"
                    )
            stored = json.dumps(note, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            cursor = self._db.execute(
                "INSERT INTO notes (id, note, received, via) VALUES (?, ?, ?, ?)",
                (note["id"], stored, now_ms, via),
            )
            if note["kind"] == "retract":
                # The body goes; the signed retraction stays as the record of why.
                assert parent is not None
                self._db.execute(
                    "UPDATE notes SET note = ?, retracted_by = ? WHERE id = ?",
                    (json.dumps({**parent, "body": ""}), note["id"], parent["id"]),
                )
            self.seq = int(cursor.lastrowid or self.seq)
            self._known.add(str(note["author"]))
        return {**note, "seq": self.seq, "received": now_ms, "via": via}

    def _rate(self, key: str, now_s: float, limit: int, whose: str) -> None:
        recent = self._recent.setdefault(key, collections.deque())
        while recent and recent[0] < now_s - 60:
            recent.popleft()
        if len(recent) >= limit:
            raise NoteRefused(f"at most {limit} notes a minute {whose}: try again shortly")
        recent.append(now_s)
        if len(self._recent) > 10_000:  # one entry per key seen this minute: keep it small
            self._recent = {k: v for k, v in self._recent.items() if v and v[-1] >= now_s - 60}

    def _get(self, note_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT note FROM notes WHERE id = ?", (note_id,)).fetchone()
        return dict(json.loads(row[0])) if row else None

    def since(self, after: int = 0) -> list[dict[str, Any]]:
        """Notes after sequence number ``after``, oldest first; a retracted note keeps its
        place without its body (``retracted_by`` names the signed retraction)."""
        rows = self._db.execute(
            "SELECT seq, note, received, retracted_by, via FROM notes WHERE seq > ? ORDER BY seq",
            (after,),
        ).fetchall()
        return [
            {
                **json.loads(note),
                "seq": seq,
                "received": received,
                "retracted_by": retracted,
                "via": via,
            }
            for seq, note, received, retracted, via in rows
        ]

    def close(self) -> None:
        self._db.close()
