"""A retraction reaches the copies: every open notes panel drops the note's words, and
exports made afterwards carry none of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from p2p2p.identity import Identity
from p2p2p.owner.notes import NotesStore
from p2p2p.protocol.notes import draft, export_line, sign, verify_export
from p2p2p.widgets.notes_panel import NotesPanel

from ..helpers.notes import keep

SHARE = "b" * 32


class Feed:
    """The owner's notes store as a panel reads it through a link."""

    def __init__(self, store: NotesStore) -> None:
        self.store = store
        self.link = type("Link", (), {"share_id": SHARE})()

    def notes_since(self, after: int = 0, wait_s: float = 0) -> tuple[list[Any], int]:
        return self.store.since(after), self.store.seq


def test_a_retracted_note_leaves_every_open_panel_and_later_exports(tmp_path: Path) -> None:
    store = NotesStore(tmp_path / "notes.sqlite", SHARE)
    author, other = Identity.generate(), Identity.generate()
    mine = keep(store, sign(author, draft(SHARE, author.public_key, "Ann", "regret this")))
    keep(store, sign(other, draft(SHARE, other.public_key, "Bo", "stays")))
    panels = [NotesPanel(Feed(store), live=False) for _ in range(2)]
    try:
        for panel in panels:
            panel.refresh()
            assert "regret this" in [n["body"] for n in panel.notes]
        keep(
            store,
            sign(
                author,
                draft(SHARE, author.public_key, "Ann", "", kind="retract", parent=mine["id"]),
            ),
        )
        for panel in panels:
            panel.refresh()  # what the live thread does when the owner has something new
            assert "regret this" not in repr(panel.notes)
            assert "retracted by its author" in repr(panel.children) or any(
                n.get("retracted_by") for n in panel.notes
            )
            assert "stays" in [n["body"] for n in panel.notes]
        lines = [export_line(n) for n in store.since(0)]
        assert not any("regret this" in line for line in lines)
        assert verify_export(lines) >= 2  # the rest still verifies
    finally:
        for panel in panels:
            panel.close()
        store.close()
