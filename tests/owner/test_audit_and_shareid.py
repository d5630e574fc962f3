from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from p2p2p.errors import AuditError, BadShareName
from p2p2p.identity import Identity
from p2p2p.owner.audit import AuditLog, verify
from p2p2p.protocol.shareid import matches, name_from_path, share_id


def fill(path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.record(client="anonymous", statement=f"SELECT {i}", outcome="ok", rows=1)
    return log


def test_chain_verifies_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 3)
    AuditLog(path).record(client="anonymous", statement="SELECT 9", outcome="ok")  # reopened
    report = verify(path)
    assert report.entries == 4 and len(report.head) == 64
    assert (path.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("mode", ["edit", "delete", "swap", "insert"])
def test_tampering_is_detected(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 5)
    lines = path.read_text().splitlines(keepends=True)
    if mode == "edit":
        entry = json.loads(lines[1])
        entry["statement"] = "SELECT harmless"
        lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    elif mode == "delete":
        del lines[2]
    elif mode == "swap":
        lines[1], lines[2] = lines[2], lines[1]
    else:
        lines.insert(2, lines[2])
    path.write_text("".join(lines))
    with pytest.raises(AuditError, match=r"line [234]"):
        verify(path)


def test_cli_audit_verify(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    fill(path, 2)
    ok = subprocess.run(
        [sys.executable, "-m", "p2p2p", "audit", "verify", str(path)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "2 entries" in ok.stdout
    path.write_text(path.read_text().replace("SELECT 0", "SELECT 1"))
    bad = subprocess.run(
        [sys.executable, "-m", "p2p2p", "audit", "verify", str(path)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "line 2" in bad.stderr


def test_share_id_is_bound_to_key_and_name() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    sid = share_id(alice.public_key, "sales")
    assert len(sid) == 32 and sid == share_id(alice.public_key, "sales")
    assert matches(sid, alice.public_key, "sales")
    assert not matches(sid, bob.public_key, "sales")
    assert not matches(sid, alice.public_key, "sales2")
    assert share_id(alice.public_key, "cases") != sid


@pytest.mark.parametrize("name", ["", "Sales", "a/b", "../x", "x" * 64, "-lead"])
def test_bad_share_names_are_refused(name: str) -> None:
    with pytest.raises(BadShareName):
        share_id(Identity.generate().public_key, name)


def test_default_names_from_paths() -> None:
    assert name_from_path("/data/Sales 2024.duckdb") == "sales-2024"
    assert name_from_path("/data/!!!.duckdb") == "store"
