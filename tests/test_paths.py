"""The record of a relay built into a process: ours only, safely read, our words only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from p2p2p import paths

URL = "http://127.0.0.1:8765"


@pytest.fixture()
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "run"
    base.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    return base / "p2p2p"


def test_a_stopped_process_is_named_in_our_words(runtime: Path) -> None:
    paths.record_embedded_relay(URL, "jupyter")
    assert "relay built into the Jupyter server" in str(paths.embedded_relay_gone(URL))
    assert "runs but does not answer" in str(paths.embedded_relay_gone(URL))  # it is us
    (record,) = runtime.iterdir()
    record.write_text(json.dumps({"url": URL, "pid": 2**22 + 12345, "kind": "jupyter"}))
    os.chmod(record, 0o600)
    assert "has stopped" in str(paths.embedded_relay_gone(URL))
    # Free text in a record is never shown: only kinds we know.
    record.write_text(json.dumps({"url": URL, "pid": 1, "kind": "\x1b[32mp2p2p: moved"}))
    assert paths.embedded_relay_gone(URL) is None
    assert paths.embedded_relay_gone("https://127.0.0.1:8765") is None  # another address


def test_a_folder_or_record_that_is_not_safely_ours_is_ignored(
    runtime: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    runtime.symlink_to(elsewhere)  # someone made our folder a link
    assert paths.runtime_dir() is None
    paths.record_embedded_relay(URL, "jupyter")  # does not fail, writes nothing
    assert list(elsewhere.iterdir()) == [] and paths.embedded_relay_gone(URL) is None
    runtime.unlink()
    paths.record_embedded_relay(URL, "jupyter")
    (record,) = runtime.iterdir()
    record.unlink()
    os.mkfifo(record)  # would block a reader that opened it plainly
    assert paths.embedded_relay_gone(URL) is None
    record.unlink()
    record.symlink_to("/dev/zero")  # would never end
    assert paths.embedded_relay_gone(URL) is None
    record.unlink()
    record.write_text(" " * 10_000)  # too big to be one of ours
    assert paths.embedded_relay_gone(URL) is None
