"""Notes through a real relay to a real owner, exported and verified by the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import p2p2p
from p2p2p.errors import P2P2PError
from p2p2p.identity import Identity

from ..helpers.sharing import Relay, Share, cli


@pytest.fixture()
def shared(relay: Relay, sample_store: str, tmp_path: Path) -> Iterator[Share]:
    process = Share(sample_store, relay.url, tmp_path / "owner", "--name", "clinic")
    yield process
    process.stop()


def test_a_signed_note_reaches_the_owner_and_anyone_can_verify_it(
    shared: Share, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2P2P_NAME", "Consultant")
    me, _ = Identity.load_or_create()
    store = p2p2p.connect(shared.link)
    first = store.post_note("why is north so high in 2023?", on="sales", row={"sale_id": 17})
    reply = store.post_note("seasonal, see Q3", kind="reply", parent=first["id"])
    frame = store.notes()
    assert list(frame["body"]) == ["seasonal, see Q3", "why is north so high in 2023?"]
    assert frame["verified"].all() and set(frame["name"]) == {"Consultant"}
    assert frame["on"].iloc[1] == "sales row sale_id=17"
    # The same signed note again is a replay; a changed one does not verify.
    with pytest.raises(P2P2PError, match="replay"):
        store._single({"op": "post_note", "note": {k: first[k] for k in first if k != "seq"}})
    forged = {**reply, "id": "e" * 32, "body": "all fine, nothing to see"}
    with pytest.raises(P2P2PError, match="signature"):
        store._single({"op": "post_note", "note": forged})

    exported = cli(shared.home, "notes", "export", "clinic", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.splitlines()
    assert len(lines) == 2 and all(
        json.loads(line)["author"] == me.public_key_b64 for line in lines
    )
    path = tmp_path / "notes.jsonl"
    path.write_text(exported.stdout)
    checked = cli(tmp_path / "auditor", "notes", "verify", str(path))  # someone else's machine
    assert checked.returncode == 0 and "ok: 2 notes" in checked.stdout, checked.stderr
    path.write_text(exported.stdout.replace("seasonal, see Q3", "seasonal, see Q4"))
    tampered = cli(tmp_path / "auditor", "notes", "verify", str(path))
    assert tampered.returncode != 0 and "line" in tampered.stderr and "signature" in tampered.stderr

    # Retraction: the body leaves the owner's store; the export still verifies.
    store.post_note("", kind="retract", parent=first["id"])
    frame = store.notes()
    assert frame.loc[frame["id"] == first["id"], "retracted"].item()
    assert "why is north" not in " ".join(frame["body"])
    after = cli(shared.home, "notes", "export", "clinic")
    path.write_text(after.stdout)
    assert "why is north" not in after.stdout
    assert cli(tmp_path / "auditor", "notes", "verify", str(path)).returncode == 0


def test_waiting_for_notes_returns_when_one_arrives(shared: Share) -> None:
    import threading
    import time

    Identity.load_or_create()
    watcher, writer = p2p2p.connect(shared.link), p2p2p.connect(shared.link)
    _, seq = watcher.notes_since(0)
    got: list[list[dict[str, object]]] = []
    thread = threading.Thread(target=lambda: got.append(watcher.notes_since(seq, wait_s=20)[0]))
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    writer.post_note("live?")
    thread.join(10)
    assert got and got[0][-1]["body"] == "live?"
    assert time.monotonic() - started < 1.5  # pushed, not found by a later poll


def test_many_waiting_panels_do_not_hold_up_queries(shared: Share) -> None:
    import threading
    import time

    waiters = [p2p2p.connect(shared.link) for _ in range(10)]  # more than the owner's threads

    def wait(store: object) -> None:
        try:
            store.notes_since(10**9, wait_s=15)  # type: ignore[attr-defined]
        except P2P2PError:
            pass  # the share stops when the test ends: waiting panels are told so

    threads = [threading.Thread(target=wait, args=(w,), daemon=True) for w in waiters]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    assert int(p2p2p.connect(shared.link).query("SELECT 7 AS x")["x"][0]) == 7
    assert time.monotonic() - started < 5  # was stuck until the waits timed out
