"""Signed notes: the format and its checks (sans-I/O), and the owner's store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from p2p2p.errors import NoteRefused
from p2p2p.identity import Identity
from p2p2p.owner.notes import RATE_PER_MINUTE, NotesStore
from p2p2p.protocol import notes

from ..helpers.notes import keep

SHARE = "a" * 32
OTHER = "b" * 32


def signed(identity: Identity, body: str = "why is Q3 up?", **extra: object) -> dict[str, object]:
    return notes.sign(identity, notes.draft(SHARE, identity.public_key, "Ann", body, **extra))  # type: ignore[arg-type]


def test_canonical_bytes_are_deterministic_and_documented() -> None:
    author = Identity.generate()
    note = notes.draft(SHARE, author.public_key, "Zoë", "ünïcode ✓", on=notes.target("sales"))
    data = notes.canonical(note)
    assert data.startswith(b"p2p2p-note-v1\x00")
    body = json.loads(data[len(notes.DOMAIN) :])
    assert list(body) == sorted(body) and "sig" not in body
    assert b" " not in data.split(b"\x00", 1)[1].replace("ünïcode ✓".encode(), b"")
    assert "Zoë".encode() in data  # non-ASCII kept, not escaped
    shuffled = dict(reversed(list(note.items())))
    assert notes.canonical(shuffled) == data
    assert notes.target(row={"k": 1.5}, table="t")["row"] == {"k": "1.5"}  # no floats


def test_signatures_verify_and_every_change_is_caught() -> None:
    author = Identity.generate()
    note = signed(author, on=notes.target("sales", row={"sale_id": 17}))
    notes.verify(note)
    for field, value in (
        ("body", "why is Q3 down?"),
        ("share", OTHER),
        ("name", "Bob"),
        ("created", int(note["created"]) + 1),  # type: ignore[call-overload]
        ("target", {"kind": "share"}),
    ):
        with pytest.raises(NoteRefused, match="signature"):
            notes.verify({**note, field: value})
    intruder = Identity.generate()
    with pytest.raises(NoteRefused, match="signature"):
        notes.verify({**note, "author": intruder.public_key_b64})


def test_the_owner_refuses_wrong_share_future_old_and_malformed() -> None:
    author = Identity.generate()
    now = int(time.time() * 1000)
    notes.admit(signed(author), SHARE, now)
    with pytest.raises(NoteRefused, match="another share"):
        notes.admit(signed(author), OTHER, now)
    future = notes.sign(
        author, notes.draft(SHARE, author.public_key, "Ann", "x", now_ms=now + 3_600_000)
    )
    with pytest.raises(NoteRefused, match="future"):
        notes.admit(future, SHARE, now)
    old = notes.sign(
        author, notes.draft(SHARE, author.public_key, "Ann", "x", now_ms=now - 3_600_000)
    )
    with pytest.raises(NoteRefused, match="too old"):
        notes.admit(old, SHARE, now)
    with pytest.raises(NoteRefused, match="at most 4,000"):
        notes.draft(SHARE, author.public_key, "Ann", "x" * 4001)
    with pytest.raises(NoteRefused, match="parent"):
        notes.draft(SHARE, author.public_key, "Ann", "", kind="retract")
    with pytest.raises(NoteRefused, match="kind"):
        notes.draft(SHARE, author.public_key, "Ann", "x", kind="delete-everything")


def test_the_store_keeps_threads_refuses_replays_and_honours_retraction(tmp_path: Path) -> None:
    store = NotesStore(tmp_path / "n.sqlite", SHARE)
    ann, bob = Identity.generate(), Identity.generate()
    first = keep(store, signed(ann))
    reply = keep(store, signed(bob, "seasonal", kind="reply", parent=first["id"]))
    assert reply["seq"] == first["seq"] + 1
    with pytest.raises(NoteRefused, match="replay"):
        keep(store, dict(first))  # the same signed note sent again
    with pytest.raises(NoteRefused, match="not here"):
        keep(store, signed(bob, "?", kind="reply", parent="f" * 32))
    with pytest.raises(NoteRefused, match="only its author"):
        keep(store, signed(bob, "", kind="retract", parent=first["id"]))
    keep(store, signed(ann, "", kind="retract", parent=first["id"]))
    kept = {n["id"]: n for n in store.since(0)}
    assert kept[first["id"]]["body"] == "" and kept[first["id"]]["retracted_by"]
    assert kept[reply["id"]]["body"] == "seasonal"
    # Survives a restart of the owner (same share id, same file).
    again = NotesStore(tmp_path / "n.sqlite", SHARE)
    assert [n["id"] for n in again.since(0)] == [n["id"] for n in store.since(0)]


def test_only_the_author_the_owner_or_a_listed_viewer_resolves_a_note(tmp_path: Path) -> None:
    owner, ann, stranger, listed = (Identity.generate() for _ in range(4))
    store = NotesStore(tmp_path / "n.sqlite", SHARE, owner.public_key_b64)
    question = keep(store, signed(ann, "is Q3 right?"))
    with pytest.raises(NoteRefused, match="only its author or the owner"):
        keep(store, signed(stranger, "", kind="resolve", parent=question["id"]))
    keep(store, signed(listed, "", kind="resolve", parent=question["id"]), trusted=True)
    second = keep(store, signed(ann, "and Q4?"))
    keep(store, signed(owner, "", kind="resolve", parent=second["id"]))
    third = keep(store, signed(ann, "one more"))
    keep(store, signed(ann, "", kind="resolve", parent=third["id"]))
    resolved = [n["parent"] for n in store.since(0) if n["kind"] == "resolve"]
    assert resolved == [question["id"], second["id"], third["id"]]


def test_rate_limits_per_author_and_per_viewer_session(tmp_path: Path) -> None:
    store = NotesStore(tmp_path / "n.sqlite", SHARE)
    flood, calm = Identity.generate(), Identity.generate()
    for i in range(RATE_PER_MINUTE):
        keep(store, signed(flood, f"n{i}"))
    with pytest.raises(NoteRefused, match="a minute"):
        keep(store, signed(flood, "one too many"))
    keep(store, signed(calm, "others are not slowed"))
    for i in range(RATE_PER_MINUTE):  # fresh keys from one viewer session: same budget
        keep(store, signed(Identity.generate(), f"k{i}"), sender="session-1")
    with pytest.raises(NoteRefused, match="a minute"):
        keep(store, signed(Identity.generate(), "new key, same session"), sender="session-1")


def test_readers_tell_verified_retracted_and_forged_notes_apart() -> None:
    from p2p2p.client.remote import notes_frame

    author = Identity.generate()
    good = signed(author)
    forged = {**signed(author, "approved"), "body": "rejected"}  # changed after signing
    retracted = {**signed(author, "draft"), "body": "", "retracted_by": "r1"}
    assert [notes.signature_state(n) for n in (good, forged, retracted)] == [
        "verified",
        "forged",
        "retracted",
    ]
    frame = notes_frame([good, forged, retracted])
    assert dict(zip(frame["id"], frame["verified"], strict=True)) == {
        good["id"]: True,
        forged["id"]: False,
        retracted["id"]: True,
    }


def test_a_key_holder_is_a_known_code_never_free_text() -> None:
    assert notes.key_holder("visit") == "visit"
    assert notes.key_holder(notes.KEY_HOLDERS["visit"]) == "visit"  # older clients' words
    for claim in ("the owner's own key", "✓ verified · signed by the owner", 3, None, ""):
        assert notes.key_holder(claim) is None
