"""A flood of notes as an attacker makes it: each signed by a key made for it alone."""

from __future__ import annotations

from typing import Any

from p2p2p.identity import Identity
from p2p2p.owner.notes import NotesStore
from p2p2p.protocol import notes


def signed_by_a_fresh_key(
    share_id: str, text: str, created_ms: int | None = None
) -> dict[str, Any]:
    author = Identity.generate()  # keys cost nothing: a flood uses a new one per note
    draft = notes.draft(share_id, author.public_key, "flood", text)
    if created_ms is not None:
        draft["created"] = created_ms
    return notes.sign(author, draft)


class NotesFeed:
    """A share's notes as a notes panel reads them (``notes_since``), growing on demand."""

    def __init__(self, share_id: str) -> None:
        self.share_id = share_id
        self.notes: list[dict[str, Any]] = []
        self.link = type("Link", (), {"share_id": share_id})()

    def add(self, count: int) -> None:
        for _ in range(count):
            note = signed_by_a_fresh_key(self.share_id, f"note {len(self.notes)}")
            self.notes.append({**note, "seq": len(self.notes) + 1})

    def notes_since(self, after: int = 0, wait_s: float = 0) -> tuple[list[Any], int]:
        return [n for n in self.notes if n["seq"] > after], len(self.notes)


def keep(store: NotesStore, note: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """``store.add`` with the proof of work a new key's note needs, as clients do it."""
    work = notes.prove_work(note, store.work_needed(kwargs.get("now_ms", 0) / 1000 or None))
    return store.add(note, work=work, **kwargs)
