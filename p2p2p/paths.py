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


# -- relays built into an owner's process ---------------------------------------------
# A relay that runs inside a Jupyter server (or `p2p2p share`) dies with it, and a client
# on this machine then meets "connection refused". The record lets that client say which
# process it was instead; it names nothing secret.
def runtime_dir() -> Path:
    """Per-user files that matter only while processes run (private)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return private_dir(Path(base) / "p2p2p")
    import tempfile

    return private_dir(Path(tempfile.gettempdir()) / f"p2p2p-{os.getuid()}")


def _relay_record(url: str) -> Path:
    safe = "".join(c if c.isalnum() else "-" for c in url.split("://", 1)[-1])
    return runtime_dir() / f"embedded-relay-{safe}.json"


def record_embedded_relay(url: str, process: str) -> None:
    write_private_json(_relay_record(url), {"url": url, "pid": os.getpid(), "process": process})


def embedded_relay_gone(url: str) -> str | None:
    """What to tell someone who cannot reach ``url``, if a process of this user ran a
    relay there and has stopped; None when nothing here knows the address."""
    try:
        record = json.loads(_relay_record(url.rstrip("/")).read_text())
        pid = int(record["pid"])
        process = str(record["process"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
        running = True
    except ProcessLookupError:
        running = False
    except PermissionError:
        running = True
    if running:
        return f"it is the relay built into {process} (pid {pid}), which runs but does not answer"
    return (
        f"it was the relay built into {process} (pid {pid}), which has stopped; the share's "
        "link stopped with it: ask the owner for a new link"
    )
