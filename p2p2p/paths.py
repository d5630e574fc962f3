"""Where p2p2p keeps its files: ``P2P2P_HOME`` if set, else the XDG directories."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def config_dir() -> Path:
    """Identity key and settings (private: created with mode 0700)."""
    home = os.environ.get("P2P2P_HOME")
    if home:
        return Path(home).expanduser() / "config"
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "p2p2p"


def data_dir() -> Path:
    """Audit logs and notes (private: created with mode 0700)."""
    home = os.environ.get("P2P2P_HOME")
    if home:
        return Path(home).expanduser() / "data"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "p2p2p"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed, owner-only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private_json(path: Path, record: Any) -> None:
    """Replace ``path`` with ``record`` as JSON readable by this user only.

    Owner-only from the first byte (no chmod after the fact), and never half written:
    a crash leaves the old file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)
