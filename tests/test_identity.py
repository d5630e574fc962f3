from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import nacl.signing
import pytest

from p2p2p.errors import IdentityError
from p2p2p.identity import Identity


def test_created_once_owner_only(p2p2p_home: Path) -> None:
    first, created = Identity.load_or_create()
    assert created and first.path is not None
    assert first.path.is_relative_to(p2p2p_home)
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.path.parent.stat().st_mode) == 0o700
    again, created_again = Identity.load_or_create()
    assert not created_again and again.public_key == first.public_key


def test_signatures_verify_with_the_public_key() -> None:
    identity, _ = Identity.load_or_create()
    signature = identity.sign(b"hello")
    nacl.signing.VerifyKey(identity.public_key).verify(b"hello", signature)


def test_refuses_a_key_readable_by_others() -> None:
    identity, _ = Identity.load_or_create()
    assert identity.path is not None
    os.chmod(identity.path, 0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        Identity.load_or_create()


def test_refuses_a_damaged_key() -> None:
    identity, _ = Identity.load_or_create()
    assert identity.path is not None
    identity.path.write_text("not a key\n")
    with pytest.raises(IdentityError, match="not a p2p2p identity"):
        Identity.load(identity.path)


def test_cli_keys_creates_then_shows(p2p2p_home: Path) -> None:
    env = {**os.environ, "P2P2P_HOME": str(p2p2p_home)}
    cmd = [sys.executable, "-m", "p2p2p", "keys", "--json"]
    first = json.loads(
        subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    )
    second = json.loads(
        subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    )
    assert first["created"] and not second["created"]
    assert first["public_key"] == second["public_key"]
    assert Path(first["path"]).is_relative_to(p2p2p_home)
    human = subprocess.run(cmd[:-1], env=env, capture_output=True, text=True, check=True).stdout
    assert first["fingerprint"] in human and first["public_key"] in human
