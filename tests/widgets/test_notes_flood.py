"""A flood of notes from fresh keys: bounded at the owner, and cheap for open panels."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import ipywidgets.widgets.widget as widget_registry
import pytest

from p2p2p.errors import NoteRefused
from p2p2p.identity import Identity
from p2p2p.owner.notes import MAX_NOTES, SHARE_RATE_PER_MINUTE, NotesStore
from p2p2p.protocol import notes
from p2p2p.protocol.notes import WORK_BASE_BITS
from p2p2p.widgets.notes_panel import SHOWN_THREADS, BrowserSigner, NotesPanel

from ..helpers.notes import NotesFeed, keep, signed_by_a_fresh_key

SHARE = "b" * 32


def signed(text: str, created_ms: int | None = None) -> dict[str, Any]:
    return signed_by_a_fresh_key(SHARE, text, created_ms)


def test_fresh_keys_buy_a_flood_no_room_at_the_owner(tmp_path: Path) -> None:
    store = NotesStore(tmp_path / "notes.sqlite", SHARE)
    now = int(time.time() * 1000)
    # Without the work a new key's note needs, none gets in, and each costs the owner one
    # hash: no signature is checked.
    started = time.process_time()
    for i in range(1_000):
        with pytest.raises(NoteRefused, match="proof of work") as refused:
            store.add(signed(f"free {i}", now), now_ms=now, sender=f"session-{i}")
        assert refused.value.details["work_bits"] == WORK_BASE_BITS
    assert store.seq == 0 and time.process_time() - started < 2.0
    # Listed viewers skip the work, and still meet the share's own limit.
    kept = 0
    for i in range(SHARE_RATE_PER_MINUTE + 20):
        try:
            store.add(signed(f"listed {i}", now), now_ms=now, sender=f"v-{i}", trusted=True)
            kept += 1
        except NoteRefused as exc:
            assert "on this share" in str(exc)
    assert kept == SHARE_RATE_PER_MINUTE
    later = now + 61_000  # a minute on, the share takes notes again
    keep(store, signed("after the flood", later), now_ms=later)


def test_the_price_of_a_new_keys_note_rises_with_the_flood(tmp_path: Path) -> None:
    store = NotesStore(tmp_path / "notes.sqlite", SHARE)
    now = int(time.time() * 1000)
    prices = []
    for i in range(40):
        prices.append(store.work_needed(now / 1000))
        with contextlib.suppress(NoteRefused):  # the share's rate limit is not the point
            keep(store, signed(f"paid {i}", now), now_ms=now, sender=f"s-{i}")
    assert prices[0] == WORK_BASE_BITS and prices[-1] >= WORK_BASE_BITS + 3
    assert prices == sorted(prices)  # never cheaper while the flood lasts
    assert store.work_needed(now / 1000 + 61) == WORK_BASE_BITS  # and back after a minute
    # A key whose note was kept needs no work for its next one.
    author = Identity.generate()
    first = notes.sign(author, notes.draft(SHARE, author.public_key, "ann", "first"))
    keep(store, first, now_ms=now + 61_000)
    again = notes.sign(author, notes.draft(SHARE, author.public_key, "ann", "again"))
    store.add(again, now_ms=now + 61_000)


def test_a_share_keeps_a_bounded_number_of_notes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import p2p2p.owner.notes as owner_notes

    monkeypatch.setattr(owner_notes, "MAX_NOTES", 5)
    monkeypatch.setattr(owner_notes, "SHARE_RATE_PER_MINUTE", 1_000)
    store = NotesStore(tmp_path / "notes.sqlite", SHARE)
    for i in range(5):
        keep(store, signed(f"note {i}"))
    with pytest.raises(NoteRefused, match="at most 5 notes"):
        keep(store, signed("one too many"))
    assert MAX_NOTES >= 1_000


def test_an_open_panel_makes_one_row_per_new_note_and_closes_what_it_drops() -> None:
    feed = NotesFeed(SHARE)
    feed.add(SHOWN_THREADS + 100)
    panel = NotesPanel(feed, live=False)
    try:
        shown = len(panel.listing.children)
        assert shown == SHOWN_THREADS + 1  # the newest, and a line counting the rest
        assert "100 older notes not shown" in panel.listing.children[-1].value
        before = len(widget_registry._instances)
        started = time.process_time()
        for _ in range(20):  # twenty more notes, one at a time, each refreshing the panel
            feed.add(1)
            panel.refresh()
        per_note = (time.process_time() - started) / 20
        grown = len(widget_registry._instances) - before
        # One new row per note (a card and its buttons), the oldest shown row closed:
        # the number of live widgets stays where it was, give or take the count line.
        assert grown <= 5, f"{grown} widgets more after 20 notes"
        assert per_note < 0.5, f"{per_note:.2f} s of CPU per new note"
        assert f"{100 + 20} older notes not shown" in panel.listing.children[-1].value
    finally:
        panel.close()


def buttons_of(panel: NotesPanel) -> dict[str, list[str]]:
    """Each shown note's buttons, by description, keyed by the text it shows."""
    rows = {}
    for row in panel.listing.children:
        found: list[str] = []
        text = ""
        todo = [row]
        while todo:
            item = todo.pop()
            if isinstance(item, widgets.Button):
                found.append(item.description)
            if isinstance(item, widgets.HTML):
                text += item.value
            todo.extend(getattr(item, "children", ()))
        rows[text] = sorted(found)
    return rows


def test_a_browser_viewer_retracts_their_own_note_and_resolves_only_theirs() -> None:
    import base64

    from p2p2p.protocol.notes import draft, sign

    feed = NotesFeed(SHARE)
    viewer, other = Identity.generate(), Identity.generate()
    for who, text in ((viewer, "mine"), (other, "theirs")):
        note = sign(who, draft(SHARE, who.public_key, "x", text))
        feed.notes.append({**note, "seq": len(feed.notes) + 1})
    signer = BrowserSigner()
    # The browser names its key in standard base64, padded (WebCrypto's export).
    signer.public_key = base64.b64encode(viewer.public_key).decode()
    panel = NotesPanel(feed, signer=signer, live=False)
    try:
        panel.refresh()
        rows = buttons_of(panel)
        shown = {
            body: next(b for t, b in rows.items() if f">{body}<" in t)
            for body in ("mine", "theirs")
        }
        assert "Retract" in shown["mine"] and "Resolve" in shown["mine"]
        assert "Retract" not in shown["theirs"] and "Resolve" not in shown["theirs"]
        # A reply can be called off.
        panel._start_reply(panel.notes[0])
        assert panel.reply_to and panel.cancel_reply.layout.display == ""
        panel.cancel_reply.click()
        assert panel.reply_to is None and panel.cancel_reply.layout.display == "none"
    finally:
        panel.close()
